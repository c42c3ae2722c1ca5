#!/bin/sh
# `make check` smoke test of the simulated driver: one GPU, two processes
# share its memory, a kernel occupies it, NVML sees the process, bad config
# fails clearly. The thorough tests are the Java ones (io.omai.simulator.sim).
set -eu
BUILD=$1
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
export OMAI_SIM_CONFIG=$DIR/sim.conf OMAI_SIM_STATE=$DIR LD_LIBRARY_PATH=$BUILD/sim
echo 'gpu uuid=GPU-00000000-0000-4000-8000-000000000001 memory=1GiB name="NVIDIA H100 80GB HBM3"' > "$OMAI_SIM_CONFIG"

fail() { echo "sim-smoke: FAILED: $*" >&2; exit 1; }
expect() { # expect OUTPUT PATTERN WHAT
    printf '%s\n' "$1" | grep -q -- "$2" || { printf '%s\n' "$1" >&2; fail "$3"; }
}

out=$("$BUILD/bin/omai-workload" alloc alloc 768MiB meminfo sleep 1 2>&1 & 
      sleep 0.3; "$BUILD/bin/omai-workload" alloc alloc 512MiB 2>&1 || true; wait)
expect "$out" "op=meminfo free=268435456 total=1073741824 status=CUDA_SUCCESS" "first process sees its allocation"
expect "$out" "op=alloc route=alloc bytes=536870912 status=CUDA_ERROR_OUT_OF_MEMORY" "second process is refused beyond the shared pool"

out=$("$BUILD/bin/omai-workload" launch kernel 3 2000 counters)
expect "$out" "op=launch route=kernel count=3 usec=2000" "kernel launch"
expect "$out" "kernels_run=3 busy_us=6000" "kernel time accounted"

out=$("$BUILD/bin/omai-workload" alloc managed 64MiB sleep 1 & sleep 0.5; "$BUILD/bin/omai-nvml-query" procs 0; wait)
expect "$out" "op=proc gpu=0 pid=[0-9]* used=67108864" "NVML lists the process and its memory"

out=$("$BUILD/bin/omai-nvml-query" telemetry 0)
expect "$out" "op=telemetry gpu=0 temperature_c=45 power_mw=70000 sm_clock_mhz=1410 mem_clock_mhz=1593 ecc_corrected=0 ecc_uncorrected=0" "NVML telemetry defaults"
"$BUILD/bin/omai-sim-ctl" set 0 temperature 83 >/dev/null
"$BUILD/bin/omai-sim-ctl" set 0 ecc-uncorrected 2 >/dev/null
"$BUILD/bin/omai-sim-ctl" set 0 power-mw unsupported >/dev/null
out=$("$BUILD/bin/omai-nvml-query" telemetry 0)
expect "$out" "temperature_c=83 power_mw=unsupported sm_clock_mhz=1410" "omai-sim-ctl set steers NVML telemetry"
expect "$out" "ecc_corrected=0 ecc_uncorrected=2" "ECC counts as set"
out=$("$BUILD/bin/omai-sim-ctl" set 0 temperature -3 2>&1 || true)
expect "$out" "bad value '-3' for temperature" "a bad telemetry value is refused by name"

out=$("$BUILD/bin/omai-cudart-loader" --per-thread resolve cuLaunchKernel resolve cuMemAlloc 3000)
expect "$out" "name=cuLaunchKernel version=12080 flags=2 status=0 symbol_status=0 symbol=cuLaunchKernel_ptsz" "per-thread lookup"
expect "$out" "name=cuMemAlloc version=3000 flags=2 status=500 symbol_status=2 symbol=none" "version too old"

"$BUILD/bin/omai-sim-ctl" die-holding-lock 2>/dev/null && fail "die-holding-lock survived"
out=$(timeout 10 "$BUILD/bin/omai-workload" alloc alloc 1MiB) || fail "a lock held by a killed process blocked the next one"
expect "$out" "op=alloc route=alloc bytes=1048576 status=CUDA_SUCCESS" "allocation after lock recovery"

echo 'gpu uuid=GPU-00000000-0000-4000-8000-000000000001 memory=lots' > "$OMAI_SIM_CONFIG"
out=$("$BUILD/bin/omai-workload" meminfo 2>&1 || true)
expect "$out" "sim.conf:1: bad memory value 'lots'" "bad config names file, line and value"
expect "$out" "op=init device=0 pid=[0-9]* status=CUDA_ERROR_NO_DEVICE" "bad config fails cuInit"
echo "sim-smoke: simulated driver OK"
