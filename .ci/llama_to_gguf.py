#!/usr/bin/env python3
"""Convert a tiny Hugging Face Llama checkpoint folder (safetensors, byte-level BPE tokenizer in
the Llama 3 style) to an f32 GGUF that llama.cpp serves, for the served-vs-local backend test.

Follows llama.cpp's convert_hf_to_gguf.py for LlamaForCausalLM: q/k rows permuted to GGML's
rotary layout, `rope_freqs` for `rope_type = llama3`, tokenizer as `gpt2` + `llama-bpe`.

usage: llama_to_gguf.py CHECKPOINT_DIR OUT.gguf [f32|q8_0]

With `q8_0`, every 2-D weight is stored as Q8_0 (llama.cpp's 8-bit blocks of 32, via
`gguf.quants`); norms and `rope_freqs` stay f32, as llama.cpp's converter keeps them.
"""
import json
import math
import sys
from pathlib import Path

import gguf
import numpy as np
from safetensors.numpy import load_file


def permute(w, n_head, n_head_kv=None):
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def main(src: Path, out: Path, qtype: str = "f32") -> None:
    assert qtype in ("f32", "q8_0"), qtype
    cfg = json.loads((src / "config.json").read_text())
    tok = json.loads((src / "tokenizer.json").read_text())
    tok_cfg = json.loads((src / "tokenizer_config.json").read_text())
    assert cfg["architectures"][0] == "LlamaForCausalLM", cfg["architectures"]
    n_head, n_kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // n_head

    w = gguf.GGUFWriter(str(out), "llama")
    w.add_name(src.name)
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_rope_freq_base(cfg.get("rope_theta", 10000.0))
    w.add_rope_dimension_count(head_dim)
    w.add_vocab_size(cfg["vocab_size"])
    w.add_file_type(gguf.LlamaFileType.ALL_F32 if qtype == "f32" else gguf.LlamaFileType.MOSTLY_Q8_0)

    # tokenizer: every id up to vocab_size, added tokens as control tokens
    vocab = dict(tok["model"]["vocab"])
    added = {t["content"]: t for t in tok["added_tokens"]}
    for t in tok["added_tokens"]:
        vocab[t["content"]] = t["id"]
    by_id = {i: s for s, i in vocab.items()}
    tokens, types = [], []
    for i in range(cfg["vocab_size"]):
        s = by_id.get(i, f"[PAD{i}]")
        tokens.append(s)
        if s in added:
            types.append(gguf.TokenType.CONTROL if added[s]["special"] else gguf.TokenType.USER_DEFINED)
        elif i in by_id:
            types.append(gguf.TokenType.NORMAL)
        else:
            types.append(gguf.TokenType.UNUSED)
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("llama-bpe")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    ids = lambda v: v if isinstance(v, list) else [v]
    w.add_bos_token_id(ids(cfg["bos_token_id"])[0])
    w.add_eos_token_id(ids(cfg["eos_token_id"])[0])
    if cfg.get("pad_token_id") is not None:
        w.add_pad_token_id(cfg["pad_token_id"])
    w.add_add_bos_token(bool(tok_cfg.get("add_bos_token", True)))
    w.add_add_eos_token(False)

    rs = cfg.get("rope_scaling") or {}
    if rs.get("rope_type", rs.get("type", "")) == "llama3":
        base = cfg.get("rope_theta", 10000.0)
        freqs = 1.0 / (base ** (np.arange(0, head_dim, 2, dtype=np.float32) / head_dim))
        factor = rs.get("factor", 8.0)
        lo, hi = rs.get("low_freq_factor", 1.0), rs.get("high_freq_factor", 4.0)
        old = rs.get("original_max_position_embeddings", 8192)
        factors = []
        for f in freqs:
            wavelen = 2 * math.pi / f
            if wavelen < old / hi:
                factors.append(1.0)
            elif wavelen > old / lo:
                factors.append(factor)
            else:
                smooth = (old / wavelen - lo) / (hi - lo)
                factors.append(1 / ((1 - smooth) / factor + smooth))
        w.add_tensor("rope_freqs.weight", np.array(factors, dtype=np.float32))
    elif rs:
        sys.exit(f"unsupported rope_scaling {rs}")

    t = {}
    for f in sorted(src.glob("*.safetensors")):
        t.update(load_file(str(f)))
    f32 = lambda a: np.ascontiguousarray(a.astype(np.float32))
    add = w.add_tensor

    def add_weight(name, a):
        a = f32(a)
        if qtype == "q8_0" and a.ndim == 2:
            q = gguf.quants.quantize(a, gguf.GGMLQuantizationType.Q8_0)
            add(name, q, raw_shape=q.shape, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            add(name, a)

    w.add_tensor = add_weight
    w.add_tensor("token_embd.weight", f32(t["model.embed_tokens.weight"]))
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        w.add_tensor(f"blk.{i}.attn_norm.weight", f32(t[p + "input_layernorm.weight"]))
        w.add_tensor(f"blk.{i}.attn_q.weight", f32(permute(t[p + "self_attn.q_proj.weight"], n_head, n_head)))
        w.add_tensor(f"blk.{i}.attn_k.weight", f32(permute(t[p + "self_attn.k_proj.weight"], n_head, n_kv)))
        w.add_tensor(f"blk.{i}.attn_v.weight", f32(t[p + "self_attn.v_proj.weight"]))
        w.add_tensor(f"blk.{i}.attn_output.weight", f32(t[p + "self_attn.o_proj.weight"]))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", f32(t[p + "post_attention_layernorm.weight"]))
        w.add_tensor(f"blk.{i}.ffn_gate.weight", f32(t[p + "mlp.gate_proj.weight"]))
        w.add_tensor(f"blk.{i}.ffn_up.weight", f32(t[p + "mlp.up_proj.weight"]))
        w.add_tensor(f"blk.{i}.ffn_down.weight", f32(t[p + "mlp.down_proj.weight"]))
    w.add_tensor("output_norm.weight", f32(t["model.norm.weight"]))
    head = t.get("lm_head.weight", t["model.embed_tokens.weight"])
    w.add_tensor("output.weight", f32(head))

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), *sys.argv[3:4])
