#!/usr/bin/env python3
"""Write the tiny random Qwen2-VL and Qwen2.5-VL checkpoints (exact Hugging Face layout) and
their float64 reference outputs.

  python3 tools/qwen_vl_ref/make_fixtures.py

Writes, deterministically (two runs give byte-identical files):
  test/fixtures/tiny-qwen2-vl/    config.json model.safetensors preprocessor_config.json
                                  tokenizer.json tokenizer_config.json reference.json pixels.json
  test/fixtures/tiny-qwen2_5-vl/  the same files but pixels.json (the processor is the same class)
Self-checks (a failure aborts before reference.json is written): greedy margins >= MARGIN_MIN,
keep-set = all tokens equals unpruned bitwise, pruning and the cache policy change the outputs,
Qwen2.5-VL's window attention changes the visual tokens (against full attention everywhere).
"""

from __future__ import annotations

import base64
import copy
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "llava_ref"))
import qwen_vl_np as q  # noqa: E402
from make_fixture import F32Array, _dump  # noqa: E402
from safetensors_np import round_to_dtype, save_file  # noqa: E402

REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
OUT = {"qwen2_vl": os.path.join(REPO, "test", "fixtures", "tiny-qwen2-vl"),
       "qwen2_5_vl": os.path.join(REPO, "test", "fixtures", "tiny-qwen2_5-vl")}
SEED = {"qwen2_vl": 1812, "qwen2_5_vl": 2513}  # the first seeds from 1811 / 2511 whose greedy margins pass
MARGIN_MIN = 0.1
MAX_NEW = 4
PROMPT = "What is the color of the shape?"
MODEL_IMAGE = (112, 140)  # -> grid [1, 8, 10], 20 visual tokens, no resize
KEEP10 = [0, 2, 3, 5, 8, 11, 12, 14, 17, 19]
KEEP6 = [1, 4, 9, 10, 15, 18]
LAYER_K = 2

# ------------------------------------------------------------------ tokenizer

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
            "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>"]
QWEN_SPLIT = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
CORPUS = [
    "system\nYou are a helpful assistant.", "user\n", "assistant\n", PROMPT,
    "What is the color of the shape? The shape is red.", "Describe this image.",
    "How many shapes are there in the picture? There are two shapes.",
    "Which shape is on the left? A blue circle is on the left, a green square on the right.",
]
NUM_MERGES = 96
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def chat_text(prompt: str) -> str:
    """CHAT_TEMPLATE applied to one user turn [image, text] with add_generation_prompt."""
    return ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
            "<|vision_start|><|image_pad|><|vision_end|>" + prompt + "<|im_end|>\n<|im_start|>assistant\n")


def train_bpe():
    """Deterministic byte-level BPE on CORPUS: the most frequent pair first, ties by the pair."""
    b2u = q.bytes_to_unicode()
    words: dict[tuple, int] = {}
    for line in CORPUS:
        for piece in q._SPLIT.findall(line):
            w = tuple(b2u[b] for b in piece.encode("utf-8"))
            words[w] = words.get(w, 0) + 1
    merges = []
    for _ in range(NUM_MERGES):
        counts: dict[tuple, int] = {}
        for w, n in words.items():
            for pair in zip(w, w[1:]):
                counts[pair] = counts.get(pair, 0) + n
        if not counts:
            break
        best = min(counts, key=lambda p: (-counts[p], p))
        merges.append(best)
        new_words = {}
        for w, n in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new_words[tuple(out)] = new_words.get(tuple(out), 0) + n
        words = new_words
    vocab = {}
    for b in range(256):
        vocab[b2u[b]] = len(vocab)
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    return vocab, merges


def tokenizer_files():
    vocab, merges = train_bpe()
    added = []
    for s in SPECIALS:
        added.append({"id": len(vocab) + len(added), "content": s, "single_word": False, "lstrip": False,
                      "rstrip": False, "normalized": False, "special": True})
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    tok = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": QWEN_SPLIT}, "behavior": "Isolated", "invert": False},
            byte_level]},
        "post_processor": dict(byte_level), "decoder": dict(byte_level),
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": [a + " " + b for a, b in merges]},
    }
    config = {
        "add_prefix_space": False,
        "added_tokens_decoder": {str(t["id"]): {k: t[k] for k in ("content", "lstrip", "normalized", "rstrip", "single_word", "special")} for t in added},
        "additional_special_tokens": SPECIALS[1:],
        "bos_token": None, "chat_template": CHAT_TEMPLATE, "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>", "errors": "replace", "model_max_length": 32768,
        "pad_token": "<|endoftext|>", "split_special_tokens": False, "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }
    ids = {t["content"]: t["id"] for t in added}
    return tok, config, ids


# ------------------------------------------------------------------ checkpoints


def config_json(kind, ids, vocab_size):
    text = {
        "attention_dropout": 0.0, "bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"],
        "vision_start_token_id": ids["<|vision_start|>"], "vision_end_token_id": ids["<|vision_end|>"],
        "vision_token_id": ids["<|vision_pad|>"], "image_token_id": ids["<|image_pad|>"],
        "video_token_id": ids["<|video_pad|>"], "hidden_act": "silu", "hidden_size": 64,
        "initializer_range": 0.02, "intermediate_size": 128, "max_position_embeddings": 4096,
        "max_window_layers": 4, "num_attention_heads": 4, "num_hidden_layers": 4, "num_key_value_heads": 2,
        "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 4096, "torch_dtype": "bfloat16",
        "use_cache": True, "use_sliding_window": False, "vocab_size": vocab_size,
        "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]},
    }
    if kind == "qwen2_vl":
        vision = {"depth": 3, "embed_dim": 32, "mlp_ratio": 2, "num_heads": 4, "in_chans": 3, "hidden_size": 64,
                  "hidden_act": "quick_gelu", "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2}
        arch, tied = "Qwen2VLForConditionalGeneration", False
    else:
        vision = {"depth": 4, "hidden_act": "silu", "hidden_size": 32, "intermediate_size": 64, "num_heads": 4,
                  "in_chans": 3, "out_hidden_size": 64, "patch_size": 14, "spatial_merge_size": 2,
                  "spatial_patch_size": 14, "window_size": 56, "fullatt_block_indexes": [1, 3],
                  "tokens_per_second": 2, "temporal_patch_size": 2}
        arch, tied = "Qwen2_5_VLForConditionalGeneration", True
    return {"architectures": [arch], "model_type": kind, **text, "tie_word_embeddings": tied,
            "transformers_version": "4.49.0", "vision_config": vision}


def preprocessor_json(kind):
    return {"min_pixels": 3136, "max_pixels": 15680, "patch_size": 14, "temporal_patch_size": 2, "merge_size": 2,
            "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
            "image_processor_type": "Qwen2VLImageProcessor",
            "processor_class": "Qwen2VLProcessor" if kind == "qwen2_vl" else "Qwen2_5_VLProcessor"}


def weights(kind, cfg, seed):
    """{name: (array, "BF16")} in HF's (classic, as on the Hub) names. Matrices normal/sqrt(fan_in),
    norm weights 1 + 0.1 normal, biases 0.05 normal, embeddings 0.5 normal."""
    rng = np.random.default_rng(seed)
    t: dict = {}

    def mat(name, out_dim, in_dim, gain=1.0):
        t[name] = rng.standard_normal((out_dim, in_dim)) * gain / np.sqrt(in_dim)

    def vec(name, n, base=0.0, scale=0.05):
        t[name] = base + scale * rng.standard_normal(n)

    vc = cfg["vision_config"]
    E = vc["embed_dim"] if kind == "qwen2_vl" else vc["hidden_size"]
    patch = 3 * vc["temporal_patch_size"] * vc["patch_size"] ** 2
    t["visual.patch_embed.proj.weight"] = (rng.standard_normal((E, patch)) * 2.0 / np.sqrt(patch)).reshape(
        E, 3, vc["temporal_patch_size"], vc["patch_size"], vc["patch_size"])
    for i in range(vc["depth"]):
        p = f"visual.blocks.{i}."
        vec(p + "norm1.weight", E, 1.0, 0.1)
        if kind == "qwen2_vl":
            vec(p + "norm1.bias", E)
        mat(p + "attn.qkv.weight", 3 * E, E, 2.0)
        vec(p + "attn.qkv.bias", 3 * E)
        mat(p + "attn.proj.weight", E, E)
        vec(p + "attn.proj.bias", E)
        vec(p + "norm2.weight", E, 1.0, 0.1)
        if kind == "qwen2_vl":
            vec(p + "norm2.bias", E)
            F = E * vc["mlp_ratio"]
            mat(p + "mlp.fc1.weight", F, E)
            vec(p + "mlp.fc1.bias", F)
            mat(p + "mlp.fc2.weight", E, F)
            vec(p + "mlp.fc2.bias", E)
        else:
            F = vc["intermediate_size"]
            for name, o, i_ in (("gate_proj", F, E), ("up_proj", F, E), ("down_proj", E, F)):
                mat(p + f"mlp.{name}.weight", o, i_)
                vec(p + f"mlp.{name}.bias", o)
    vec("visual.merger.ln_q.weight", E, 1.0, 0.1)
    if kind == "qwen2_vl":
        vec("visual.merger.ln_q.bias", E)
    D = cfg["hidden_size"]
    mat("visual.merger.mlp.0.weight", 4 * E, 4 * E)
    vec("visual.merger.mlp.0.bias", 4 * E)
    mat("visual.merger.mlp.2.weight", D, 4 * E)
    vec("visual.merger.mlp.2.bias", D)

    V, H, Hkv, FF = cfg["vocab_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["intermediate_size"]
    Dh = D // H
    t["model.embed_tokens.weight"] = 0.5 * rng.standard_normal((V, D))
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        vec(p + "input_layernorm.weight", D, 1.0, 0.1)
        mat(p + "self_attn.q_proj.weight", H * Dh, D, 2.0)
        vec(p + "self_attn.q_proj.bias", H * Dh, 0.0, 0.2)
        mat(p + "self_attn.k_proj.weight", Hkv * Dh, D, 2.0)
        vec(p + "self_attn.k_proj.bias", Hkv * Dh, 0.0, 0.2)
        mat(p + "self_attn.v_proj.weight", Hkv * Dh, D)
        vec(p + "self_attn.v_proj.bias", Hkv * Dh, 0.0, 0.2)
        mat(p + "self_attn.o_proj.weight", D, H * Dh)
        vec(p + "post_attention_layernorm.weight", D, 1.0, 0.1)
        mat(p + "mlp.gate_proj.weight", FF, D)
        mat(p + "mlp.up_proj.weight", FF, D)
        mat(p + "mlp.down_proj.weight", D, FF)
    vec("model.norm.weight", D, 1.0, 0.1)
    if not cfg["tie_word_embeddings"]:
        mat("lm_head.weight", V, D, 3.0)
    return {k: (round_to_dtype(v, "BF16"), "BF16") for k, v in t.items()}


# ------------------------------------------------------------------ images


def test_image(h, w, seed):
    """A smooth colour field plus noise, uint8 HxWx3 (both resampler paths see structure and noise)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([128 + 100 * np.sin(x / max(w, 1) * 6.3 + c) * np.cos(y / max(h, 1) * 4.1 - c) for c in range(3)], -1)
    img = base + 40 * rng.standard_normal((h, w, 3))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def b64(a: np.ndarray, dtype) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype=dtype).tobytes()).decode("ascii")


PIXEL_CASES = [("square", (56, 56)), ("wide", (26, 150)), ("tall", (150, 26)), ("tiny", (12, 16)),
               ("odd", (42, 70)), ("huge", (600, 450)), ("model", MODEL_IMAGE)]
# Qwen2.5-VL-7B-Instruct's processor settings (min 56*56, max 28*28*1280... as shipped: 12845056).
REAL_SETTINGS = {"min_pixels": 3136, "max_pixels": 12845056}
GEOMETRY_SIZES = [(1008, 1344), (224, 224), (10, 10), (4000, 3000), (1080, 1920), (42, 70), (10, 2000), (9, 100), (10, 2001)]


def pixels_json(settings):
    cases = []
    for i, (name, (h, w)) in enumerate(PIXEL_CASES):
        img = test_image(h, w, 700 + i)
        pv, grid, resized = q.preprocess(img, settings)
        cases.append({
            "name": name, "image_size": [h, w], "image_u8_base64": b64(img, np.uint8),
            "resized_size": list(resized.shape[:2]), "grid_thw": list(grid),
            "pixel_values_shape": list(pv.shape), "pixel_values_f32le_base64": b64(pv, "<f4"),
        })
    geometry = []
    for h, w in GEOMETRY_SIZES:
        try:
            rh, rw = q.smart_resize(h, w, 28, REAL_SETTINGS["min_pixels"], REAL_SETTINGS["max_pixels"])
            geometry.append({"image_size": [h, w], "resized_size": [rh, rw], "grid_thw": [1, rh // 14, rw // 14],
                             "num_image_tokens": rh * rw // 28 // 28})
        except ValueError as e:
            geometry.append({"image_size": [h, w], "error": str(e)})
    return {"format": "grip-qwen-vl-pixels-1", "generated_by": "tools/qwen_vl_ref/make_fixtures.py",
            "settings": settings, "cases": cases,
            "geometry_settings": REAL_SETTINGS, "geometry": geometry}


# ------------------------------------------------------------------ reference outputs


def write_json(path, obj):
    with open(path + ".tmp", "w") as f:
        f.write(_dump(obj) + "\n")
    os.replace(path + ".tmp", path)


def case_json(name, prune, r):
    return {"name": name, "prune": prune, "last_logits": F32Array(r["last_logits"]),
            "generated_ids": r["generated_ids"], "step_margins": [float(m) for m in r["step_margins"]],
            "step_logits": F32Array(r["step_logits"])}


def make(kind, tok, tok_config, ids):
    out = OUT[kind]
    os.makedirs(out, exist_ok=True)
    vocab_size = (len(tok["model"]["vocab"]) + len(SPECIALS) + 15) // 16 * 16
    cfg = config_json(kind, ids, vocab_size)
    write_json(os.path.join(out, "config.json"), cfg)
    write_json(os.path.join(out, "preprocessor_config.json"), preprocessor_json(kind))
    with open(os.path.join(out, "tokenizer.json"), "w") as f:
        json.dump(tok, f, ensure_ascii=False, indent=1)
        f.write("\n")
    write_json(os.path.join(out, "tokenizer_config.json"), tok_config)
    save_file(weights(kind, cfg, SEED[kind]), os.path.join(out, "model.safetensors"), {"format": "pt"})

    ref = q.QwenVLRef(out)
    img = test_image(*MODEL_IMAGE, 706)
    pv, grid, _ = q.preprocess(img, ref.proc)
    n_vis = grid[0] * grid[1] * grid[2] // 4
    text = chat_text(PROMPT)
    ids_one = q.tokenize(text, tok)
    pad = ids["<|image_pad|>"]
    at = ids_one.index(pad)
    input_ids = ids_one[:at] + [pad] * n_vis + ids_one[at + 1:]

    checks = {}
    runs = {}
    plans = {
        "a_unpruned": None,
        "b_pre_llm_k10": {"point": "pre_llm", "keep": KEEP10},
        "c_in_llm_l2_k6_keep": {"point": "in_llm", "layer": LAYER_K, "keep": KEEP6, "cache": "keep"},
        "d_in_llm_l2_k6_compact": {"point": "in_llm", "layer": LAYER_K, "keep": KEEP6, "cache": "compact"},
        "e_pre_llm_all": {"point": "pre_llm", "keep": list(range(n_vis))},
        "e_in_llm_l2_all_compact": {"point": "in_llm", "layer": LAYER_K, "keep": list(range(n_vis)), "cache": "compact"},
    }
    for name, prune in plans.items():
        runs[name] = q.run_case(ref, input_ids, pv, grid, prune, MAX_NEW)
    a = runs["a_unpruned"]
    for name in ("e_pre_llm_all", "e_in_llm_l2_all_compact"):
        ok = np.array_equal(runs[name]["step_logits"], a["step_logits"])
        checks[f"{name}_equals_unpruned"] = bool(ok)
        assert ok, name
    for name in ("b_pre_llm_k10", "c_in_llm_l2_k6_keep", "d_in_llm_l2_k6_compact"):
        diff = float(np.abs(runs[name]["step_logits"][0] - a["step_logits"][0]).max())
        checks[f"{name}_changes_last_logits_by"] = diff
        assert diff > 1e-3, name
    d_keep, d_compact = runs["c_in_llm_l2_k6_keep"], runs["d_in_llm_l2_k6_compact"]
    assert np.array_equal(d_keep["last_logits"], d_compact["last_logits"]), "prefill must not depend on the cache policy"
    policy = float(np.abs(d_keep["step_logits"][1:] - d_compact["step_logits"][1:]).max())
    checks["cache_policy_changes_decode_logits_by"] = policy
    assert policy > 1e-3
    margins = min(m for r in runs.values() for m in r["step_margins"])
    checks["min_step_margin"] = margins
    assert margins >= MARGIN_MIN, f"{kind}: a greedy margin {margins} < {MARGIN_MIN}; pick another seed"
    if kind == "qwen2_5_vl":
        full = copy.copy(ref)
        full.vc = dict(ref.vc, fullatt_block_indexes=list(range(ref.vc["depth"])))
        diff = float(np.abs(full.vision(pv, grid) - a["visual"]).max())
        checks["window_attention_changes_visual_tokens_by"] = diff
        assert diff > 1e-3
        perm, cu = q.window_index(grid, ref.vc["window_size"], ref.ms, ref.ps)
        checks["window_index"] = [int(i) for i in perm]
        checks["cu_window_seqlens"] = cu

    pos3 = a["position_ids"]
    reference = {
        "format": "grip-qwen-vl-reference-1", "generated_by": "tools/qwen_vl_ref/make_fixtures.py",
        "model": kind, "precision": "float64 reference, float32-rounded outputs",
        "prompt": PROMPT, "text": text, "input_ids": input_ids, "image_token_id": pad,
        "image_size": list(MODEL_IMAGE), "image_u8_base64": b64(img, np.uint8), "grid_thw": list(grid),
        "pixel_values_shape": list(pv.shape), "pixel_values_f32le_base64": b64(pv, "<f4"),
        "num_image_tokens": n_vis, "image_token_pos": at, "seq_len": len(input_ids),
        "position_ids": [[int(v) for v in row] for row in pos3], "rope_delta": a["rope_delta"],
        "decode_position_start": len(input_ids) + a["rope_delta"],
        "visual_tokens": F32Array(a["visual"]), "max_new_tokens": MAX_NEW,
        "keep_sets": {"k10": KEEP10, "k6": KEEP6}, "layer_k": LAYER_K,
        "cases": [case_json(n, plans[n], runs[n]) for n in plans],
        "checks": checks,
    }
    write_json(os.path.join(out, "reference.json"), reference)
    return checks


def main():
    tok, tok_config, ids = tokenizer_files()
    # the tokenizer emulation against hand-checked pieces: special tokens whole, merges applied
    got = q.tokenize("<|im_start|>user\nWhat is the color?<|im_end|>", tok)
    assert got[0] == ids["<|im_start|>"] and got[-1] == ids["<|im_end|>"], got
    vocab_inv = {v: k for k, v in tok["model"]["vocab"].items()}
    assert "".join(vocab_inv[i] for i in got[1:-1]) == "user\u010aWhat\u0120is\u0120the\u0120color?", got
    for kind in ("qwen2_vl", "qwen2_5_vl"):
        checks = make(kind, tok, tok_config, ids)
        print(kind, {k: v for k, v in checks.items() if not isinstance(v, list)})
    proc = q.processor_settings(preprocessor_json("qwen2_vl"))
    write_json(os.path.join(OUT["qwen2_vl"], "pixels.json"), pixels_json(proc))
    print("ok")


if __name__ == "__main__":
    main()
