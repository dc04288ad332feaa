"""One suite through lm-evaluation-harness's HF backend and through `sft-eval eval`: same
checkpoint, same prompts, same batch size, dtype and threads; items/s, generated tokens/s and peak
memory per side, and whether the two sides agree item by item.

    python benches/harness_side_by_side.py --shape smollm2_135m --workload gen --threads 1 \
        --batch-size 8 [--device cuda --dtype bf16] [--sft-eval target/release/sft-eval] \
        [--work /tmp/harness-bench] [--corpus ../shared/data]

Workloads (the items are the shipped suites', so both sides see exactly the same text):
  gen  the first 32 items of suites/math as "Question: …\\nAnswer:", greedy, until "\\n\\n" or
       "Question:", at most 64 new tokens (lm-eval `generate_until`, sft-eval `generate_number`)
  mc   the 227 four-way items of suites/qa (lm-eval `multiple_choice`, sft-eval `mc_loglik`)

The checkpoint is a Llama of the named shape with random weights (seed 0), so every item
generates its whole budget unless it happens to emit a stop, and a byte-level BPE tokenizer
trained on the text under --corpus (the benchmark files of ../shared/data) up to the shape's
vocabulary; both are written under --work once and reused.

Each side runs as its own process, pinned to the same cores by the caller (taskset); the wall time
includes start-up (Python imports, model load), and lm-eval's own
`total_evaluation_time_seconds` and sft-eval's per-suite `seconds` are printed beside it. Peak
memory is the process's maximum resident set size (os.wait4), or on CUDA the device's high-water
mark where the side reports one. Generated tokens are counted by re-encoding each output with
the checkpoint's tokenizer, the same count for both sides when their outputs agree.
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

SHAPES = {
    "small": dict(hidden=256, layers=4, heads=4, kv=4, ffn=1024, vocab=2048, tied=False),
    "smollm2_135m": dict(hidden=576, layers=30, heads=9, kv=3, ffn=1536, vocab=49152, tied=True),
}
REPO = pathlib.Path(__file__).resolve().parent.parent
EOS = "<|endoftext|>"


def corpus_lines(corpus):
    for p in sorted(pathlib.Path(corpus).rglob("*")):
        if p.suffix in (".jsonl", ".json", ".csv", ".txt", ".md") and p.is_file():
            with open(p, encoding="utf-8", errors="ignore") as f:
                yield from f


def make_model(work, shape, corpus):
    d = work / f"model-{shape}"
    if (d / "model.safetensors").exists():
        return d
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    s = SHAPES[shape]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=s["vocab"], special_tokens=[EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    lines = list(corpus_lines(corpus)) + list(corpus_lines(REPO / "suites"))
    tok.train_from_iterator(lines, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS)
    cfg = LlamaConfig(hidden_size=s["hidden"], num_hidden_layers=s["layers"],
                      num_attention_heads=s["heads"], num_key_value_heads=s["kv"],
                      intermediate_size=s["ffn"], vocab_size=s["vocab"], rms_norm_eps=1e-5,
                      rope_theta=10000.0, max_position_embeddings=2048,
                      tie_word_embeddings=s["tied"], bos_token_id=None,
                      eos_token_id=tok.token_to_id(EOS))
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).float()
    d.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(d, safe_serialization=True)
    fast.save_pretrained(d)
    print(f"made {d}: tokenizer vocabulary {tok.get_vocab_size()}, model vocabulary {s['vocab']}",
          flush=True)
    return d


def make_suites(work):
    """Both sides' versions of the two workloads, from the shipped suites' items."""
    read = lambda p: [json.loads(l) for l in open(p, encoding="utf-8") if l.strip()]
    math = read(REPO / "suites/math/items.jsonl")[:32]
    qa = read(REPO / "suites/qa/items.jsonl")
    stops = ["\n\n", "Question:"]
    out = {}
    for name, items, ours, theirs in [
        ("gen", math,
         'scorer = "generate_number"\nmetric = "exact_match"\n'
         '[prompt]\ntemplate = "Question: {{ input }}\\nAnswer:"\nchat = "never"\n'
         f'[generation]\nmax_new_tokens = 64\nstop = {json.dumps(stops)}\n',
         'output_type: generate_until\ndoc_to_text: "Question: {{input}}\\nAnswer:"\n'
         'doc_to_target: "{{target}}"\n'
         f'generation_kwargs:\n  until: {json.dumps(stops)}\n  max_gen_toks: 64\n'
         '  do_sample: false\nmetric_list:\n  - metric: exact_match\n'),
        ("mc", qa,
         'scorer = "mc_loglik"\nmetric = "acc"\n'
         '[prompt]\ntemplate = "Question: {{ input }}\\nAnswer:"\n'
         'choice_template = " {{ choice }}"\nchat = "never"\n',
         'output_type: multiple_choice\ndoc_to_text: "Question: {{input}}\\nAnswer:"\n'
         'doc_to_choice: "{{choices}}"\ndoc_to_target: "{{gold}}"\n'
         'metric_list:\n  - metric: acc\n'),
    ]:
        d = work / "suites" / name
        d.mkdir(parents=True, exist_ok=True)
        with open(d / "items.jsonl", "w", encoding="utf-8") as f:
            for it in items:
                f.write(json.dumps(it) + "\n")
        (d / "suite.toml").write_text(
            f'name = "bench_{name}"\ncapability = "bench"\nversion = "1"\nitems = "items.jsonl"\n'
            + ours)
        t = work / "tasks"
        t.mkdir(parents=True, exist_ok=True)
        (t / f"bench_{name}.yaml").write_text(
            f"task: bench_{name}\ndataset_path: json\n"
            f"dataset_kwargs:\n  data_files:\n    test: {d / 'items.jsonl'}\n"
            "test_split: test\n" + theirs)
        out[name] = d
    return out


def run(cmd, env):
    """Run a command; its wall seconds and peak resident set (MiB)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = p.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        sys.exit(f"{' '.join(map(str, cmd))} failed:\n{output[-4000:]}")
    return wall, usage.ru_maxrss / 1024, output


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", choices=list(SHAPES), default="small")
    ap.add_argument("--workload", choices=["gen", "mc"], default="gen")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", choices=["f32", "bf16"], default="f32")
    ap.add_argument("--sft-eval", default=str(REPO / "target/release/sft-eval"))
    ap.add_argument("--work", default="/tmp/harness-bench")
    ap.add_argument("--corpus", default=str(REPO.parent / "shared/data"))
    ap.add_argument("--only", choices=["lm-eval", "sft-eval"], help="run one side")
    a = ap.parse_args()
    work = pathlib.Path(a.work)
    model = make_model(work, a.shape, a.corpus)
    suites = make_suites(work)
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), MKL_NUM_THREADS=str(a.threads),
               RAYON_NUM_THREADS=str(a.threads), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false", SFT_EVAL_NO_PROGRESS="1")
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(str(model / "tokenizer.json"))
    count = lambda texts: sum(len(tok.encode(t).ids) for t in texts)
    rows = {}
    tag = f"{a.workload} {a.shape} b{a.batch_size} {a.threads}t {a.device} {a.dtype}"

    if a.only in (None, "lm-eval"):
        out = work / "out" / f"lmeval-{a.workload}-{a.shape}-{a.batch_size}-{a.threads}"
        dtype = {"f32": "float32", "bf16": "bfloat16"}[a.dtype]
        wall, rss, log = run([sys.executable, "-m", "lm_eval", "--model", "hf", "--model_args",
                              f"pretrained={model},dtype={dtype}", "--tasks",
                              f"bench_{a.workload}", "--include_path", str(work / "tasks"),
                              "--batch_size", str(a.batch_size), "--device", a.device,
                              "--log_samples", "--output_path", str(out)], env)
        res = json.load(open(sorted(out.rglob("results_*.json"))[-1]))
        samples = [json.loads(l) for l in open(sorted(out.rglob("samples_*.jsonl"))[-1])]
        samples.sort(key=lambda s: s["doc_id"])
        if a.workload == "gen":
            outputs = [s["resps"][0][0] for s in samples]
        else:
            outputs = [[float(r[0][0]) for r in s["resps"]] for s in samples]
        rows["lm-eval"] = dict(wall=wall, rss=rss, inner=float(res["total_evaluation_time_seconds"]),
                               outputs=outputs)

    if a.only in (None, "sft-eval"):
        out = work / "out" / f"sfteval-{a.workload}-{a.shape}-{a.batch_size}-{a.threads}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        cmd = [a.sft_eval, "eval", str(model), "--suites", str(suites[a.workload]),
               "--batch-size", str(a.batch_size), "--no-cache", "-o", str(out)]
        if a.device != "cpu":
            cmd += ["--device", a.device]
        wall, rss, log = run(cmd, env)
        res = json.load(open(out))
        suite = res["suites"][0] if "suites" in res else res["results"][0]
        items = suite["items"]
        if a.workload == "gen":
            outputs = [i.get("output", "") for i in items]
        else:
            outputs = [i["logliks"] for i in items]
        rows["sft-eval"] = dict(wall=wall, rss=rss, inner=suite["seconds"], outputs=outputs)

    n = len(next(iter(rows.values()))["outputs"])
    for side, r in rows.items():
        tokens = count(r["outputs"]) if a.workload == "gen" else 0
        extra = f"  {tokens / r['wall']:.1f} gen tok/s" if tokens else ""
        print(f"{tag}  {side:8}  wall {r['wall']:7.1f} s (evaluation {r['inner']:7.1f} s)  "
              f"{n / r['wall']:6.2f} items/s{extra}  peak RSS {r['rss']:7.0f} MiB", flush=True)
    if len(rows) == 2:
        lm, us = rows["lm-eval"], rows["sft-eval"]
        if a.workload == "gen":
            same = sum(x == y for x, y in zip(lm["outputs"], us["outputs"]))
            agree = f"identical outputs {same}/{n}"
        else:
            d = max(abs(x - y) for xs, ys in zip(lm["outputs"], us["outputs"])
                    for x, y in zip(xs, ys))
            agree = f"max |Δ log-likelihood| {d:.2e}"
        print(f"{tag}  ratio (lm-eval wall / sft-eval wall) {lm['wall'] / us['wall']:.2f}×, "
              f"evaluation only {lm['inner'] / us['inner']:.2f}×; {agree}", flush=True)


if __name__ == "__main__":
    main()
