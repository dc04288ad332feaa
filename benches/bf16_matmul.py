"""PyTorch's side of examples/bf16_matmul.rs: x · Wᵀ on the SmolLM2-135M shape's projections,
2048 rows, f32 and bf16 (oneDNN picks AVX512_BF16/AMX where the CPU has them), best of 5.

    python3 benches/bf16_matmul.py --threads 1
"""
import argparse
import time

import torch

p = argparse.ArgumentParser()
p.add_argument("--threads", type=int, default=1)
a = p.parse_args()
torch.set_num_threads(a.threads)
rows = 2048
print(f"torch {torch.__version__}, {a.threads} thread(s)")
print("shape\tf32 ms\tbf16 ms\tbf16 / f32")
for inp, out in [(576, 576), (576, 1536), (1536, 576), (576, 49152)]:
    x = torch.randn(rows, inp)
    w = torch.randn(out, inp) * 0.02
    res = []
    for dt in (torch.float32, torch.bfloat16):
        xx, ww = x.to(dt), w.to(dt)
        torch.nn.functional.linear(xx, ww)
        best = float("inf")
        for _ in range(5):
            t = time.perf_counter()
            torch.nn.functional.linear(xx, ww)
            best = min(best, time.perf_counter() - t)
        res.append(best)
    print(f"{rows} x {inp} -> {out}\t{1e3*res[0]:.2f}\t{1e3*res[1]:.2f}\t{res[1]/res[0]:.2f}")
