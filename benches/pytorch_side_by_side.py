"""PyTorch eager reference for the criterion benchmarks in benches/benchmarks/ (same shapes, f32,
random Llama weights): forward tokens/s, greedy decode new tokens/s (batch 1, 32-token prompt, 32
new tokens with the KV cache) and train-step (forward + backward + AdamW) tokens/s.

    python benches/pytorch_side_by_side.py [--threads 2] [--reps 10] [--large] [--only train_step]
        [--shape smollm2_135m_b4x256] [--device cuda] [--dtype bf16] [--phases]

Prints one line per workload with the median over --reps timed iterations (after 2 warm-ups), and
the process's peak resident set size at the end (run one workload and shape per process with
--only/--shape to read the peak of that workload alone).
Run it in the same session as `cargo bench --bench main`, so both sides see the same machine.

--device cuda (the side of `SFT_EVAL_BENCH_DEVICE=cuda`) moves the model and inputs to GPU 0,
synchronizes inside each timed iteration, and adds lines with the peak GPU memory
(torch.cuda.max_memory_allocated) of each forward and train-step workload, weights included (the
criterion benches print theirs as `peak GPU memory`), and of the whole process; --dtype bf16 (`SFT_EVAL_BENCH_DTYPE=bf16`) casts the model.
--phases adds the train step's phases in ms (the criterion group `train_phase/`): forward + loss,
forward + loss + backward, the AdamW update as PyTorch runs it by default (multi-tensor `foreach`
kernels on CUDA, a loop over the parameters on CPU), and the same update with foreach=False (one
parameter at a time, as candle's AdamW runs it).
"""

import argparse
import resource
import statistics
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

SHAPES = {
    "llama_h256_l4_v2048_b8x128": dict(hidden=256, layers=4, heads=4, kv=4, ffn=1024, vocab=2048, b=8, t=128, tied=False),
    "smollm2_135m_b4x256": dict(hidden=576, layers=30, heads=9, kv=3, ffn=1536, vocab=49152, b=4, t=256, tied=True),
}


def model(s):
    cfg = LlamaConfig(hidden_size=s["hidden"], num_hidden_layers=s["layers"], num_attention_heads=s["heads"],
                      num_key_value_heads=s["kv"], intermediate_size=s["ffn"], vocab_size=s["vocab"],
                      rms_norm_eps=1e-5, rope_theta=10000.0, max_position_embeddings=2048,
                      tie_word_embeddings=s["tied"], attn_implementation="sdpa")
    return LlamaForCausalLM(cfg).float()


def timed(fn, reps, sync=lambda: None):
    for _ in range(2):
        fn()
    sync()
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        sync()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--large", action="store_true", help="add the 135M shape")
    ap.add_argument("--only", choices=["forward", "decode", "train_step"], help="run one workload")
    ap.add_argument("--shape", choices=list(SHAPES), help="run one shape")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--dtype", choices=["f32", "bf16"], default="f32")
    ap.add_argument("--phases", action="store_true",
                    help="also time the train step's phases (train_phase/ in the criterion benches)")
    a = ap.parse_args()
    dev = torch.device(a.device)
    dtype = {"f32": torch.float32, "bf16": torch.bfloat16}[a.dtype]
    cuda = dev.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    if cuda or a.dtype != "f32":
        where = torch.cuda.get_device_name(dev) if cuda else "cpu"
        print(f"device: {where}, dtype: {a.dtype}, torch {torch.__version__}", flush=True)
    run = lambda w: a.only in (None, w)

    def peak(label):
        """On CUDA: the workload's peak allocated memory (weights included), as the criterion
        benches report theirs (`peak GPU memory`), then the count starts again."""
        if cuda:
            print(f"{label}: peak CUDA memory allocated {torch.cuda.max_memory_allocated(dev) / 2**30:.2f} GiB", flush=True)
            torch.cuda.reset_peak_memory_stats(dev)
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    names = list(SHAPES) if a.large else list(SHAPES)[:1]
    if a.shape:
        names = [a.shape]
    for name in names:
        s = SHAPES[name]
        m = model(s).to(device=dev, dtype=dtype)
        ids = torch.randint(0, s["vocab"], (s["b"], s["t"])).to(dev)
        ntok = s["b"] * s["t"]
        m.eval()
        if cuda:
            torch.cuda.reset_peak_memory_stats(dev)
        if run("forward"):
            with torch.no_grad():
                fwd = timed(lambda: m(ids).logits, a.reps, sync)
            print(f"forward/{name}: {ntok / fwd:,.0f} tok/s (median {fwd * 1e3:.1f} ms)", flush=True)
            peak(f"forward/{name}")
        prompt = torch.randint(0, s["vocab"], (1, 32)).to(dev)

        def decode():
            out = m(prompt, use_cache=True)
            past = out.past_key_values
            for _ in range(32):
                nxt = out.logits[:, -1:].argmax(-1)
                out = m(nxt, past_key_values=past, use_cache=True)
                past = out.past_key_values

        if run("decode"):
            with torch.no_grad():
                dt = timed(decode, a.reps, sync)
            print(f"decode/{name.split('_b')[0]}_b1_greedy32: {32 / dt:,.0f} new tok/s (median {dt * 1e3:.1f} ms)", flush=True)
        m.train()
        opt = torch.optim.AdamW(m.parameters(), lr=1e-4)

        def step():
            loss = m(ids, labels=ids).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        if cuda:
            torch.cuda.reset_peak_memory_stats(dev)
        if run("train_step"):
            tr = timed(step, a.reps, sync)
            print(f"train_step/{name}: {ntok / tr:,.0f} tok/s (median {tr * 1e3:.1f} ms)", flush=True)
            peak(f"train_step/{name}")
        if run("train_step") and a.phases:
            def forward_backward():
                opt.zero_grad(set_to_none=True)
                m(ids, labels=ids).loss.backward()

            loop_opt = torch.optim.AdamW(m.parameters(), lr=1e-4, foreach=False)
            phases = [
                ("forward_loss", lambda: m(ids, labels=ids).loss),
                ("forward_backward", forward_backward),
                # the grads of the last forward_backward stay for the two optimizer timings
                ("adamw", opt.step),
                ("adamw_foreach_off", loop_opt.step),
            ]
            for phase, fn in phases:
                t = timed(fn, a.reps, sync)
                print(f"train_phase/{name}/{phase}: {t * 1e3:.2f} ms", flush=True)
            opt.zero_grad(set_to_none=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"peak RSS: {peak:.2f} GiB", flush=True)
    if cuda:
        print(f"peak CUDA memory allocated: {torch.cuda.max_memory_allocated(dev) / 2**30:.2f} GiB", flush=True)


if __name__ == "__main__":
    main()
