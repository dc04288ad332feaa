"""PyTorch eager reference for the criterion benchmarks in benches/benchmarks/ (same shapes, f32,
random Llama weights): forward tokens/s, greedy decode new tokens/s (batch 1, 32-token prompt, 32
new tokens with the KV cache) and train-step (forward + backward + AdamW) tokens/s.

    python benches/pytorch_side_by_side.py [--threads 2] [--reps 10] [--large]

Prints one line per workload with the median over --reps timed iterations (after 2 warm-ups).
Run it in the same session as `cargo bench --bench main`, so both sides see the same machine.
"""

import argparse
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


def timed(fn, reps):
    for _ in range(2):
        fn()
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--large", action="store_true", help="add the 135M shape")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    names = list(SHAPES) if a.large else list(SHAPES)[:1]
    for name in names:
        s = SHAPES[name]
        m = model(s)
        ids = torch.randint(0, s["vocab"], (s["b"], s["t"]))
        ntok = s["b"] * s["t"]
        m.eval()
        with torch.no_grad():
            fwd = timed(lambda: m(ids).logits, a.reps)
        print(f"forward/{name}: {ntok / fwd:,.0f} tok/s (median {fwd * 1e3:.1f} ms)", flush=True)
        prompt = torch.randint(0, s["vocab"], (1, 32))

        def decode():
            out = m(prompt, use_cache=True)
            past = out.past_key_values
            for _ in range(32):
                nxt = out.logits[:, -1:].argmax(-1)
                out = m(nxt, past_key_values=past, use_cache=True)
                past = out.past_key_values

        with torch.no_grad():
            dt = timed(decode, a.reps)
        print(f"decode/{name.split('_b')[0]}_b1_greedy32: {32 / dt:,.0f} new tok/s (median {dt * 1e3:.1f} ms)", flush=True)
        m.train()
        opt = torch.optim.AdamW(m.parameters(), lr=1e-4)

        def step():
            loss = m(ids, labels=ids).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        tr = timed(step, a.reps)
        print(f"train_step/{name}: {ntok / tr:,.0f} tok/s (median {tr * 1e3:.1f} ms)", flush=True)


if __name__ == "__main__":
    main()
