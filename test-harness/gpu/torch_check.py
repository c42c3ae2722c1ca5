"""PyTorch under the OMAI shim (run by real-gpu-check.sh): the quota shows in
torch.cuda.mem_get_info and an allocation beyond it raises OutOfMemoryError.
Prints one `result` line per check; exit 0 only if every check passed."""
import os
import sys

limit = int(sys.argv[1])
mode = os.environ.get("PYTORCH_CUDA_ALLOC_CONF", "default")
failures = 0


def check(ok, what, detail):
    global failures
    print(f"result check=torch-{what} alloc_conf={mode} status={'PASS' if ok else 'FAIL'} {detail}", flush=True)
    if not ok:
        failures += 1


try:
    import torch
except Exception as e:  # torch missing on this machine: say so, do not pretend
    print(f"result check=torch-import status=SKIPPED reason={type(e).__name__}:{e}", flush=True)
    sys.exit(3)

free, total = torch.cuda.mem_get_info(0)
check(total == limit and free <= limit, "mem_get_info-shows-quota", f"free={free} total={total} limit={limit}")
props = torch.cuda.get_device_properties(0)
check(props.total_memory == limit, "device-properties-show-quota", f"total_memory={props.total_memory}")

chunk = 64 << 20
held = []
error = None
try:
    while len(held) < 100000:
        held.append(torch.empty(chunk, dtype=torch.uint8, device="cuda"))
except torch.cuda.OutOfMemoryError as e:
    error = e
got = len(held) * chunk
reserved = torch.cuda.memory_reserved(0)
check(error is not None and reserved <= limit, "oom-at-quota",
      f"tensors={len(held)} bytes={got} reserved={reserved} error={str(error).splitlines()[0][:120] if error else None!r}")
del held
torch.cuda.empty_cache()
free_after, _ = torch.cuda.mem_get_info(0)
check(free_after >= limit - (256 << 20), "frees-give-it-back", f"free_after={free_after}")
x = torch.empty(limit // 2, dtype=torch.uint8, device="cuda")
check(x.numel() == limit // 2, "allocates-again", f"bytes={x.numel()}")
print(f"result check=torch-summary alloc_conf={mode} failures={failures}", flush=True)
sys.exit(1 if failures else 0)
