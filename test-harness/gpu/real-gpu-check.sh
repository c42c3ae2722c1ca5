#!/usr/bin/env bash
# The OMAI shim on a real NVIDIA GPU: one self-contained check, well under five
# minutes, for a machine with a GPU, its driver, gcc and make (nvcc and
# PyTorch are used when present and reported as SKIPPED when not). No Java.
#
#   test-harness/gpu/real-gpu-check.sh [LIMIT]       LIMIT default 4GiB
#
# 1. builds libomai-shim.so and omai-shm-tool with make (native/Makefile);
# 2. creates a container's allocation files for GPU 0 with a LIMIT memory quota
#    (omai-shm-tool, same layout as the agent's);
# 3. under LD_PRELOAD=libomai-shim.so:
#    - nvidia-smi's memory view (NVML through the shim),
#    - a CUDA C program through cudart (nvcc): cudaMemGetInfo shows the quota,
#      cudaMalloc / cudaMallocAsync / cudaMallocManaged stop at it,
#    - PyTorch three times (default caching allocator, expandable_segments =
#      cuMemCreate/VMM, backend:cudaMallocAsync = pools): mem_get_info shows
#      the quota and allocating past it raises torch.cuda.OutOfMemoryError;
#    - compute: two CUDA processes (compute_share.cu, nvcc) with hard caps of
#      300 and 700 milli-GPU share GPU 0; omai-shm-tool's minimal grant loop
#      plays the agent (the real controller is the Java ComputeControlLoop,
#      which measures through NVML; here the launch cost is the kernel length
#      measured alone), and each process's kernel rate over its rate alone is
#      the share it achieved (goal: within 5 points of its quota);
# 4. prints a short report and the usage file (omai-shm-tool show).
# Exit 0 only if nothing FAILED.
set -uo pipefail

LIMIT_TEXT=${1:-4GiB}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
B=$ROOT/native/build
WORK=$(mktemp -d /tmp/omai-gpu-check.XXXXXX)
REPORT=$WORK/report.txt
START=$(date +%s)
say() { echo "$*" | tee -a "$REPORT"; }
die() { say "real-gpu-check: $*"; exit 1; }

say "== OMAI shim real-GPU check ($(date -u +%FT%TZ), $(uname -r))"
command -v nvidia-smi >/dev/null || die "nvidia-smi not found: is this a GPU machine with the NVIDIA driver?"
nvidia-smi --query-gpu=index,name,uuid,memory.total,driver_version --format=csv,noheader | tee -a "$REPORT"

# 1. build (only what we need; the simulator is not needed here)
make -C "$ROOT/native" -j"$(nproc)" "$B/lib/libomai-shim.so" "$B/bin/omai-shm-tool" > "$WORK/build.log" 2>&1 \
    || { tail -30 "$WORK/build.log"; die "build failed (log above)"; }
SHIM=$B/lib/libomai-shim.so

# 2. allocation files for GPU 0
UUID=$(nvidia-smi --query-gpu=uuid --format=csv,noheader -i 0 | tr -d ' ')
"$B/bin/omai-shm-tool" create "$WORK/alloc" "$UUID=$LIMIT_TEXT" >> "$REPORT" || die "omai-shm-tool create failed"
LIMIT=$("$B/bin/omai-shm-tool" show "$WORK/alloc" | sed -n 's/.* limit=\([0-9]*\) .*/\1/p' | head -1)
[[ -n $LIMIT ]] || die "could not read the limit back from $WORK/alloc"
say "quota: $LIMIT bytes on $UUID"
if [[ -e /run/omai/control ]]; then
    say "WARNING: /run/omai/control exists on this machine; the shim prefers it over OMAI_CONTROL_FILE"
fi
export OMAI_CONTROL_FILE=$WORK/alloc/control OMAI_USAGE_FILE=$WORK/alloc/usage

PASS=0; FAIL=0; SKIP=0
tally() { # reads result lines on stdin, echoes them, counts (never call it at the end of a pipe)
    while IFS= read -r line; do
        say "  $line"
        case $line in
            *status=PASS*) PASS=$((PASS + 1)) ;;
            *status=FAIL*) FAIL=$((FAIL + 1)) ;;
            *status=SKIPPED*) SKIP=$((SKIP + 1)) ;;
        esac
    done
}

# 3a. NVML through the shim (nvidia-smi dlopens libnvidia-ml.so.1)
say "-- nvidia-smi under the shim"
SMI=$(LD_PRELOAD=$SHIM nvidia-smi --query-gpu=memory.total,memory.used --format=csv,noheader,nounits -i 0 2>&1)
say "  $SMI"
SMI_TOTAL_MIB=$(echo "$SMI" | cut -d, -f1 | tr -d ' ')
if [[ $SMI_TOTAL_MIB == $((LIMIT >> 20)) ]]; then tally <<< "nvidia-smi-total-is-quota status=PASS"
else tally <<< "nvidia-smi-total-is-quota status=FAIL total_mib=$SMI_TOTAL_MIB expected=$((LIMIT >> 20))"; fi

# 3b. CUDA C through cudart
say "-- CUDA C program through cudart"
NVCC=$(command -v nvcc || ls /usr/local/cuda/bin/nvcc 2>/dev/null || true)
if [[ -n $NVCC ]]; then
    if "$NVCC" -O2 -std=c++17 -o "$WORK/quota_check" "$ROOT/test-harness/gpu/quota_check.cu" > "$WORK/nvcc.log" 2>&1; then
        tally < <(LD_PRELOAD=$SHIM timeout 120 "$WORK/quota_check" "$LIMIT" 2> "$WORK/quota_check.err" \
            | grep '^result' | sed 's/^result //')
        grep -h 'omai-shim' "$WORK/quota_check.err" | sed 's/^/  stderr: /' | tee -a "$REPORT"
    else
        tail -20 "$WORK/nvcc.log"
        tally <<< "cuda-c status=FAIL reason=nvcc-compile-failed"
    fi
else
    tally <<< "cuda-c status=SKIPPED reason=no-nvcc"
fi

# 3c. PyTorch, three allocator back-ends
say "-- PyTorch"
PY=$(command -v python3 || true)
for conf in "" "expandable_segments:True" "backend:cudaMallocAsync"; do
    if [[ -z $PY ]]; then tally <<< "torch status=SKIPPED reason=no-python3"; break; fi
    out=$(PYTORCH_CUDA_ALLOC_CONF=$conf LD_PRELOAD=$SHIM timeout 120 "$PY" "$ROOT/test-harness/gpu/torch_check.py" \
        "$LIMIT" 2> "$WORK/torch.err")
    tally < <(echo "$out" | grep '^result' | sed 's/^result //')
    grep -h 'omai-shim' "$WORK/torch.err" | sed 's/^/  stderr: /' | tee -a "$REPORT"
    if echo "$out" | grep -q 'status=SKIPPED'; then break; fi
    if ! echo "$out" | grep -q 'torch-summary'; then
        tail -5 "$WORK/torch.err" | sed 's/^/  stderr: /' | tee -a "$REPORT"
        tally <<< "torch-run alloc_conf=${conf:-default} status=FAIL reason=crashed-or-timed-out"
    fi
done

# 3d. compute quota: 300/700 between two processes on GPU 0
say "-- compute quota: two CUDA processes, hard caps 300 and 700 on GPU 0"
if [[ -z $NVCC ]]; then
    tally <<< "compute-share status=SKIPPED reason=no-nvcc"
elif ! "$NVCC" -O2 -std=c++17 -o "$WORK/compute_share" "$ROOT/test-harness/gpu/compute_share.cu" \
        > "$WORK/nvcc-compute.log" 2>&1; then
    tail -20 "$WORK/nvcc-compute.log"
    tally <<< "compute-share status=FAIL reason=nvcc-compile-failed"
else
    # Alone and without the shim: kernels of about 2 ms, and the rate that is 100 % of the GPU.
    CAL=$(timeout 60 "$WORK/compute_share" calibrate 2000 | grep '^result op=calibrate')
    say "  alone: ${CAL#result }"
    ITERS=$(sed -n 's/.* iters=\([0-9]*\).*/\1/p' <<< "$CAL")
    KERNEL_NS=$(sed -n 's/.* kernel_ns=\([0-9]*\).*/\1/p' <<< "$CAL")
    RATE_ALONE=$(sed -n 's/.* rate=\([0-9.]*\).*/\1/p' <<< "$CAL")
    if [[ -z $ITERS || -z $KERNEL_NS || -z $RATE_ALONE ]]; then
        tally <<< "compute-share status=FAIL reason=calibration-failed"
    else
        for q in 300 700; do
            "$B/bin/omai-shm-tool" create "$WORK/compute$q" "$UUID=$LIMIT_TEXT" > /dev/null \
                && "$B/bin/omai-shm-tool" set-compute "$WORK/compute$q" 0 $q hard-cap > /dev/null \
                || die "omai-shm-tool could not set up the compute allocation $q"
        done
        "$B/bin/omai-shm-tool" agent 100 14 "$KERNEL_NS" "$WORK/compute300" "$WORK/compute700" > "$WORK/agent.log" 2>&1 &
        AGENT=$!
        sleep 0.3
        RUNS=()
        for q in 300 700; do
            OMAI_CONTROL_FILE=$WORK/compute$q/control OMAI_USAGE_FILE=$WORK/compute$q/usage LD_PRELOAD=$SHIM \
                timeout 60 "$WORK/compute_share" run 10 "$ITERS" > "$WORK/run$q.out" 2> "$WORK/run$q.err" &
            RUNS+=($!)
        done
        wait "${RUNS[@]}"
        wait "$AGENT"
        for q in 300 700; do
            RUN=$(grep '^result op=run' "$WORK/run$q.out")
            grep -h 'omai-shim' "$WORK/run$q.err" | sed 's/^/  stderr: /' | tee -a "$REPORT"
            RATE=$(sed -n 's/.* rate=\([0-9.]*\).*/\1/p' <<< "$RUN")
            if [[ -z $RATE ]]; then
                tally <<< "compute-share quota=$q status=FAIL reason=run-failed"
                continue
            fi
            tally < <(awk -v r="$RATE" -v a="$RATE_ALONE" -v q=$q 'BEGIN {
                share = 100 * r / a; err = share - q / 10; if (err < 0) err = -err
                printf "compute-share quota=%d achieved=%.1f%% rate=%s rate_alone=%s status=%s\n", q, share, r, a,
                       err <= 5 ? "PASS" : "FAIL" }')
        done
        sed 's/^/  /' "$WORK/agent.log" | tee -a "$REPORT"
    fi
fi

# 4. report
say "-- usage file after the runs"
for dir in "$WORK/alloc" "$WORK"/compute300 "$WORK"/compute700; do
    [[ -e $dir/control ]] && "$B/bin/omai-shm-tool" show "$dir" | sed 's/^/  /' | tee -a "$REPORT"
done
say "== PASS=$PASS FAIL=$FAIL SKIPPED=$SKIP in $(( $(date +%s) - START )) s; report: $REPORT"
[[ $FAIL -eq 0 ]]
