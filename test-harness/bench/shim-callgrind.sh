#!/usr/bin/env bash
# Instructions the OMAI shim adds per driver call, counted with callgrind
# against the simulated driver (docs/benchmarks.md, "Shim overhead").
#
#   test-harness/bench/shim-callgrind.sh [N1 N2]      default 2000 6000
#
# omai-shim-bench runs a loop of N1 and of N2 calls of one kind, with and
# without LD_PRELOAD=libomai-shim.so. Differences between the two loop counts
# cancel start-up and one-time set-up, so every figure is per loop iteration:
#
#   added = (Ir_shim(N2) - Ir_shim(N1) - (Ir_plain(N2) - Ir_plain(N1))) / (N2 - N1)
#
# i.e. everything the shim adds per call, driver calls it makes included. The
# simulator's state is reset before every run so its own cost is the same
# with and without the shim.
# Needs: make -C native all and make -C simulator/native all (or any Maven build), valgrind (callgrind_annotate).
set -euo pipefail

N1=${1:-2000}
N2=${2:-6000}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
B=$ROOT/native/build
for f in "$B/lib/libomai-shim.so" "$B/bin/omai-shim-bench" "$B/bin/omai-shm-tool" "$B/sim/libcuda.so.1"; do
    [[ -e $f ]] || { echo "shim-callgrind: $f is missing; run make -C native all and make -C simulator/native all" >&2; exit 1; }
done
command -v valgrind >/dev/null && command -v callgrind_annotate >/dev/null \
    || { echo "shim-callgrind: valgrind (with callgrind_annotate) is not installed" >&2; exit 1; }

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
U0=GPU-00000000-0000-4000-8000-000000000000
U1=GPU-00000000-0000-4000-8000-000000000001
gpu() { echo "gpu index=$1 uuid=$2 name=\"bench\" memory=85899345920 pci=0000:1$1:00.0 numa=0 sms=132"; }
gpu 0 $U0 > "$WORK/one.conf"
{ gpu 0 $U0; gpu 1 $U1; } > "$WORK/two.conf"
"$B/bin/omai-shm-tool" create "$WORK/alloc" "$U0=64GiB" "$U1=64GiB" > /dev/null
# Launches: compute enforced with a grant that never runs out (the hot path: tokens available), and an
# allocation without compute enforcement (launches pass through after the flag check).
"$B/bin/omai-shm-tool" create "$WORK/compute" "$U0=64GiB" "$U1=64GiB" > /dev/null
"$B/bin/omai-shm-tool" set-compute "$WORK/compute" 0 500 hard-cap > /dev/null
"$B/bin/omai-shm-tool" grant "$WORK/compute" 0 4000000000000000000 > /dev/null
export OMAI_SIM_STATE=$WORK LD_LIBRARY_PATH=$B/sim
ALLOC=alloc

# run CONF PRELOAD MODE N -> callgrind output file path
run() {
    local out=$WORK/cg.$ALLOC.$1.$2.$3.$4
    rm -f "$WORK"/sim-state
    export OMAI_CONTROL_FILE=$WORK/$ALLOC/control OMAI_USAGE_FILE=$WORK/$ALLOC/usage
    if [[ $2 == yes ]]; then
        OMAI_SIM_CONFIG=$WORK/$1.conf LD_PRELOAD=$B/lib/libomai-shim.so \
            valgrind --tool=callgrind --callgrind-out-file="$out" "$B/bin/omai-shim-bench" "$3" "$4" 2>> "$WORK/vg.log"
    else
        OMAI_SIM_CONFIG=$WORK/$1.conf \
            valgrind --tool=callgrind --callgrind-out-file="$out" "$B/bin/omai-shim-bench" "$3" "$4" 2>> "$WORK/vg.log"
    fi
    echo "$out"
}
total() { awk '!done && /^(summary|totals):/ {print $2; done=1}' "$1"; }
printf '%-52s %9s %9s %9s\n' "loop iteration (GPUs visible to the process)" "plain" "shim" "added"
row() { # label conf mode
    local p1 p2 s1 s2
    p1=$(run "$2" no "$3" "$N1"); p2=$(run "$2" no "$3" "$N2")
    s1=$(run "$2" yes "$3" "$N1"); s2=$(run "$2" yes "$3" "$N2")
    local plain=$(( ($(total "$p2") - $(total "$p1")) / (N2 - N1) ))
    local shim=$(( ($(total "$s2") - $(total "$s1")) / (N2 - N1) ))
    printf '%-52s %9d %9d %9d\n' "$1" "$plain" "$shim" "$((shim - plain))"
}
row "cuMemAlloc_v2, accounted (1 GPU)"                 one alloc-only
row "cuMemAlloc_v2, accounted (2 GPUs: +cuCtxGetDevice)" two alloc-only
row "cuMemAlloc_v2 + cuMemFree_v2, accounted (1 GPU)"  one alloc
row "cuMemGetInfo_v2, virtualised view (1 GPU)"        one meminfo
row "cuCtxGetDevice, passed through (not hooked)"      one passthru
row "cuLaunchKernel, compute not enforced (1 GPU)"     one launch
ALLOC=compute
row "cuLaunchKernel, charged, tokens left (1 GPU)"     one launch
row "cuLaunchKernel, charged (2 GPUs: +cuCtxGetDevice)" two launch
echo "(instructions per loop iteration, loops of $N1 and $N2 calls; $(valgrind --version))"
