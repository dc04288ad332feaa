#!/usr/bin/env python3
"""Seed corpora for the fuzz targets (fuzz/corpus/<target>/), small files made from the repo's
fixtures and a few written by hand. Run from the repository root: python3 fuzz/make_corpus.py"""

import glob
import json
import os
import shutil
import struct

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fuzz", "corpus")


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def safetensors(tensors):
    """A safetensors file: 8-byte header length, JSON header, raw little-endian data."""
    header, data = {"__metadata__": {"format": "pt"}}, b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def gguf_string(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gguf(kvs, tensors):
    """A GGUF v3 file with the given metadata (str/u32/f32 values) and f32 tensors."""
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs))
    for k, v in kvs.items():
        out += gguf_string(k)
        if isinstance(v, str):
            out += struct.pack("<I", 8) + gguf_string(v)
        elif isinstance(v, float):
            out += struct.pack("<If", 6, v)
        else:
            out += struct.pack("<II", 4, v)
    offset, data = 0, b""
    for name, (shape, values) in tensors.items():
        out += gguf_string(name) + struct.pack("<I", len(shape))
        out += b"".join(struct.pack("<Q", d) for d in shape) + struct.pack("<IQ", 0, offset)
        raw = struct.pack(f"<{len(values)}f", *values)
        raw += b"\0" * (-len(raw) % 32)
        data += raw
        offset += len(raw)
    out += b"\0" * (-len(out) % 32)
    return out + data


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    models = os.path.join(ROOT, "tests", "fixtures", "models")
    for m in sorted(os.listdir(models)):
        put("config_json", f"{m}.json", open(os.path.join(models, m, "config.json"), "rb").read())
        tc = os.path.join(models, m, "tokenizer_config.json")
        if os.path.exists(tc) and os.path.getsize(tc) < 16384:
            put("tokenizer_config", f"{m}.json", open(tc, "rb").read())
    for idx in glob.glob(os.path.join(models, "*", "model.safetensors.index.json")):
        put("shard_index", os.path.basename(os.path.dirname(idx)) + ".json", open(idx, "rb").read())
    # inputs that once made a target panic stay in the corpus as regressions
    put("tokenizer_config", "regression-overlapping-tag.json", '{"chat_template": "{%}{%}{{ 1 }}"}')
    put("safetensors", "two.safetensors", safetensors({
        "model.embed_tokens.weight": ("F32", [2, 2], struct.pack("<4f", 1, 2, 3, 4)),
        "model.norm.weight": ("BF16", [2], b"\x80\x3f\x00\x40"),
    }))
    put("safetensors", "empty.safetensors", safetensors({}))
    for s in sorted(glob.glob(os.path.join(ROOT, "suites", "*", "suite.toml"))):
        put("suite_toml", os.path.basename(os.path.dirname(s)) + ".toml", open(s, "rb").read())
    for s in sorted(glob.glob(os.path.join(ROOT, "suites", "*", "items.jsonl"))):
        lines = open(s, "rb").read().splitlines(True)[:3]
        put("suite_items", os.path.basename(os.path.dirname(s)) + ".jsonl", b"".join(lines))
    put("gate_policy", "readme.toml", 'confidence = 0.95\nrequired = ["math", "qa"]\n[default]\nmargin = 0.02\nmax_mde = 0.15\n[suites.safety]\nmargin = 0.01\nmax_drop = 0.02\ninconclusive = "fail"\n[suites.wikitext]\nmargin = 0.05\n')
    put("gate_policy", "relative.toml", '[default]\nrelative_margin = 0.05\ninconclusive = "pass"\n')
    for name in ["prompt_completion.jsonl", "chat.jsonl", "text.jsonl"]:
        p = os.path.join(ROOT, "tests", "fixtures", "trl", name)
        if os.path.exists(p):
            put("train_jsonl", name, b"".join(open(p, "rb").read().splitlines(True)[:3]))
    put("gguf", "gpt2-arch.gguf", open(os.path.join(ROOT, "tests", "fixtures", "gguf", "gpt2-arch.gguf"), "rb").read())
    put("gguf", "tiny-llama.gguf", gguf(
        {"general.architecture": "llama", "llama.embedding_length": 4, "llama.block_count": 0,
         "llama.feed_forward_length": 8, "llama.attention.head_count": 1,
         "llama.attention.layer_norm_rms_epsilon": 1e-5, "llama.context_length": 16},
        {"token_embd.weight": ([4, 2], [0.1 * i for i in range(8)])},
    ))
    results = os.path.join(ROOT, "fuzz", "seed_results.json")  # made by `sft-eval eval` on the llama fixture
    if os.path.exists(results):
        put("results_json", "results.json", open(results, "rb").read())


if __name__ == "__main__":
    main()
