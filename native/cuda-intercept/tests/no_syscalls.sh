#!/usr/bin/env bash
# make check: shim-no-syscalls. The shim's hot path makes no system call: under
# strace, going from a loop of 100 to one of 1100 accounted allocations (and
# memory queries, and launches that spend compute tokens) must add exactly as many syscalls with the shim as without it
# (the simulated driver makes its own; the shim's first use maps the files and
# claims a slot once, nothing after that).
#   no_syscalls.sh BUILD_DIR
set -euo pipefail
B=$1
if ! command -v strace >/dev/null; then
    echo "shim-no-syscalls: skipped: strace not installed"
    exit 0
fi
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
U=GPU-00000000-0000-4000-8000-000000000000
echo "gpu index=0 uuid=$U name=\"check\" memory=85899345920 pci=0000:17:00.0 numa=0 sms=132" > "$W/sim.conf"
"$B/bin/omai-shm-tool" create "$W/alloc" "$U=64GiB" > /dev/null
# Launches charge compute tokens; the grant never runs out here, so none waits (waiting sleeps).
"$B/bin/omai-shm-tool" set-compute "$W/alloc" 0 500 hard-cap > /dev/null
"$B/bin/omai-shm-tool" grant "$W/alloc" 0 4000000000000000000 > /dev/null
export OMAI_SIM_CONFIG=$W/sim.conf OMAI_SIM_STATE=$W LD_LIBRARY_PATH=$B/sim
export OMAI_CONTROL_FILE=$W/alloc/control OMAI_USAGE_FILE=$W/alloc/usage
count() { # preload mode n (a fresh simulator state each time, so its own work is the same)
    rm -f "$W/sim-state"
    LD_PRELOAD=$1 strace -f -o "$W/trace" "$B/bin/omai-shim-bench" "$2" "$3"
    wc -l < "$W/trace"
}
for mode in alloc meminfo launch; do
    plain=$(( $(count "" "$mode" 1100) - $(count "" "$mode" 100) ))
    shim=$(( $(count "$B/lib/libomai-shim.so" "$mode" 1100) - $(count "$B/lib/libomai-shim.so" "$mode" 100) ))
    if [[ $plain != "$shim" ]]; then
        echo "shim-no-syscalls: FAILED: $mode: 1000 more iterations made $shim more syscalls with the shim," \
             "$plain without" >&2
        exit 1
    fi
done
echo "shim-no-syscalls: no syscall per accounted allocation, free, memory query or charged launch (strace)"
