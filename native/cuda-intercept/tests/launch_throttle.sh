#!/usr/bin/env bash
# make check: shim-launch. Every launch route spends compute tokens, a launch
# with none left waits until the grant covers it (and the wait is counted as
# throttled time), and launches pass through untouched while compute is not
# enforced. Allocation files are made and granted with omai-shm-tool; the
# workload runs under the shim against the simulated driver.
#   launch_throttle.sh BUILD_DIR
set -euo pipefail
B=$1
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
U=GPU-00000000-0000-4000-8000-000000000000
echo "gpu index=0 uuid=$U name=\"check\" memory=85899345920 pci=0000:17:00.0 numa=0 sms=132" > "$W/sim.conf"
export OMAI_SIM_CONFIG=$W/sim.conf OMAI_SIM_STATE=$W LD_LIBRARY_PATH=$B/sim
fail() { echo "shim-launch: FAILED: $*" >&2; exit 1; }
field() { # field DIR NAME -> the device-0 value of NAME= in omai-shm-tool show
    "$B/bin/omai-shm-tool" show "$1" | awk -v k="$2" '/^device 0 / { for (i = 1; i <= NF; i++) if (index($i, k "=") == 1) print substr($i, length(k) + 2) }'
}
run() { # run DIR ARGS... : omai-workload under the shim with DIR's files
    OMAI_CONTROL_FILE=$1/control OMAI_USAGE_FILE=$1/usage LD_PRELOAD=$B/lib/libomai-shim.so \
        "$B/bin/omai-workload" "${@:2}" > "$W/out" 2>&1 || fail "omai-workload ${*:2}: $(cat "$W/out")"
}

# Compute not enforced: nothing is charged.
"$B/bin/omai-shm-tool" create "$W/off" "$U=64GiB" > /dev/null
run "$W/off" launch kernel 3 0
[[ $(field "$W/off" launches) == 0 ]] || fail "launches were charged while compute is not enforced"

# Enforced: each route charges one launch at the default cost (100 us; no agent has set one).
"$B/bin/omai-shm-tool" create "$W/on" "$U=64GiB" > /dev/null
"$B/bin/omai-shm-tool" set-compute "$W/on" 0 500 hard-cap > /dev/null
"$B/bin/omai-shm-tool" grant "$W/on" 0 600000 > /dev/null
n=0
for route in kernel ptsz kernel-ex cooperative multi-device graph; do
    run "$W/on" launch "$route" 1 0
    n=$((n + 1))
    [[ $(field "$W/on" launches) == "$n" ]] || fail "route $route did not charge exactly one launch"
done
[[ $(field "$W/on" consumed_ns) == 600000 ]] || fail "6 launches should have spent 600000 ns, spent $(field "$W/on" consumed_ns)"
[[ $(field "$W/on" throttled_ns) == 0 ]] || fail "launches within the grant waited"

# The grant is spent: the next launch charges itself, then waits until 100 us
# more are granted (given 300 ms after its charge shows up).
run "$W/on" launch kernel 1 0 &
runner=$!
for _ in $(seq 200); do [[ $(field "$W/on" launches) == 7 ]] && break; sleep 0.05; done
[[ $(field "$W/on" launches) == 7 ]] || fail "the seventh launch was never charged"
sleep 0.3
kill -0 "$runner" 2> /dev/null || fail "a launch without tokens did not wait for its grant"
"$B/bin/omai-shm-tool" grant "$W/on" 0 100000 > /dev/null
wait "$runner" || fail "the throttled launch failed"
throttled=$(field "$W/on" throttled_ns)
(( throttled >= 300000000 )) || fail "throttled_ns is $throttled after a wait of at least 300 ms"
echo "shim-launch: 6 launch routes charged, no charge when not enforced, a launch without tokens waited $((throttled / 1000000)) ms for its grant"
