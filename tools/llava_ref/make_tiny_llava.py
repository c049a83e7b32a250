#!/usr/bin/env python3
"""Write a tiny RANDOM LLaVA checkpoint in the exact Hugging Face layout.

  python3 tools/llava_ref/make_tiny_llava.py                       # -> test/fixtures/tiny-llava/
  python3 tools/llava_ref/make_tiny_llava.py --new-names           # -> test/fixtures/tiny-llava-new-names/
  python3 tools/llava_ref/make_tiny_llava.py --out DIR [--new-names] [--seed S]

Files: config.json, model.safetensors, tokenizer.json, tokenizer_config.json,
preprocessor_config.json. Deterministic: the same seed gives byte-identical files.

Weights (same values in both naming schemes):
  vision tower  F32   vision_tower.vision_model.*            | model.vision_tower.vision_model.*
  projector     F16   multi_modal_projector.linear_{1,2}.*   | model.multi_modal_projector.*
  language model BF16 language_model.model.* + language_model.lm_head.weight
                                                             | model.language_model.* + lm_head.weight
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # keep tools/ free of __pycache__
sys.path.insert(0, HERE)
from safetensors_np import save_file  # noqa: E402

REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
DEFAULT_OUT = os.path.join(REPO, "test", "fixtures", "tiny-llava")
DEFAULT_OUT_NEW = os.path.join(REPO, "test", "fixtures", "tiny-llava-new-names")
DEFAULT_SEED = 211

SPECIALS = ["<pad>", "<s>", "</s>", "<unk>", "<image>"]
WORDS = [
    "user", ":", "assistant", "what", "is", "the", "color", "of", "shape", "shapes",
    "red", "blue", "green", "yellow", "purple", "orange", "black", "white", "gray",
    "circle", "square", "triangle", "star", "how", "many", "are", "there", "in", "image",
    "picture", "a", "an", "on", "left", "right", "top", "bottom", "center", "yes", "no",
    "one", "two", "three", "four", "five", "zero", "?", ".", ",", "which", "where", "it",
    "and", "grid", "cell", "row", "column", "describe", "this", "small", "large", "at",
    "answer", "with", "word", "single", "please",
]
VOCAB = SPECIALS + WORDS
IMAGE_TOKEN_ID = VOCAB.index("<image>")

VISION = dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64,
              patch_size=4, image_size=32, num_channels=3)
TEXT = dict(hidden_size=48, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
            intermediate_size=96)


def config_json():
    return {
        "architectures": ["LlavaForConditionalGeneration"],
        "model_type": "llava",
        "image_token_index": IMAGE_TOKEN_ID,
        "projector_hidden_act": "gelu",
        "vision_feature_layer": -2,
        "vision_feature_select_strategy": "default",
        "tie_word_embeddings": False,
        "vision_config": {
            "model_type": "clip_vision_model",
            **VISION,
            "hidden_act": "quick_gelu",
            "layer_norm_eps": 1e-5,
        },
        "text_config": {
            "model_type": "llama",
            **TEXT,
            "rms_norm_eps": 1e-5,
            "rope_theta": 10000.0,
            "vocab_size": len(VOCAB),
            "max_position_embeddings": 512,
            "bos_token_id": 1,
            "eos_token_id": 2,
            "pad_token_id": 0,
            "tie_word_embeddings": False,
        },
    }


def tokenizer_json():
    added = [{"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i, s in enumerate(SPECIALS)]
    bos = {"SpecialToken": {"id": "<s>", "type_id": 0}}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {"type": "Lowercase"},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [bos, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [bos, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "<s>", "type_id": 1}},
                     {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}},
        },
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
        "model": {
            "type": "WordPiece",
            "unk_token": "<unk>",
            "continuing_subword_prefix": "##",
            "max_input_chars_per_word": 100,
            "vocab": {w: i for i, w in enumerate(VOCAB)},
        },
    }


TOKENIZER_CONFIG = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
                    "pad_token": "<pad>", "add_bos_token": True, "model_max_length": 512}

PREPROCESSOR_CONFIG = {
    "image_processor_type": "CLIPImageProcessor",
    "do_resize": True,
    "size": {"shortest_edge": 32},
    "resample": 3,
    "do_center_crop": True,
    "crop_size": {"height": 32, "width": 32},
    "do_rescale": True,
    "rescale_factor": 0.00392156862745098,
    "do_normalize": True,
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "do_convert_rgb": True,
}


def make_weights(seed: int):
    """Returns an ordered list of (canonical part, classic name, new name, array f32, dtype)."""
    rng = np.random.default_rng(seed)

    def mat(out_f, in_f, gain=1.0):
        return (rng.standard_normal((out_f, in_f)) * gain / np.sqrt(in_f)).astype(np.float32)

    def vec(n, scale):
        return (rng.standard_normal(n) * scale).astype(np.float32)

    def normw(n):
        return (1.0 + 0.1 * rng.standard_normal(n)).astype(np.float32)

    out = []

    def add(part, rest, arr, dtype):
        if part == "vision":
            c, n = "vision_tower.vision_model." + rest, "model.vision_tower.vision_model." + rest
        elif part == "projector":
            c, n = "multi_modal_projector." + rest, "model.multi_modal_projector." + rest
        elif part == "text":
            c, n = "language_model.model." + rest, "model.language_model." + rest
        else:
            c, n = "language_model.lm_head.weight", "lm_head.weight"
        out.append((c, n, np.asarray(arr, dtype=np.float32), dtype))

    V = VISION
    Dv, C, P = V["hidden_size"], V["num_channels"], V["patch_size"]
    npos = (V["image_size"] // P) ** 2 + 1
    F32, F16, BF16 = "F32", "F16", "BF16"
    add("vision", "embeddings.class_embedding", vec(Dv, 0.5), F32)
    add("vision", "embeddings.patch_embedding.weight",
        mat(Dv, C * P * P, 1.0).reshape(Dv, C, P, P), F32)
    add("vision", "embeddings.position_embedding.weight",
        (rng.standard_normal((npos, Dv)) * 0.5).astype(np.float32), F32)
    add("vision", "pre_layrnorm.weight", normw(Dv), F32)
    add("vision", "pre_layrnorm.bias", vec(Dv, 0.05), F32)
    for i in range(V["num_hidden_layers"]):
        p = f"encoder.layers.{i}."
        for nm in ("k_proj", "v_proj", "q_proj", "out_proj"):
            add("vision", p + f"self_attn.{nm}.weight", mat(Dv, Dv, 1.0), F32)
            add("vision", p + f"self_attn.{nm}.bias", vec(Dv, 0.05), F32)
        add("vision", p + "layer_norm1.weight", normw(Dv), F32)
        add("vision", p + "layer_norm1.bias", vec(Dv, 0.05), F32)
        add("vision", p + "mlp.fc1.weight", mat(V["intermediate_size"], Dv, 1.0), F32)
        add("vision", p + "mlp.fc1.bias", vec(V["intermediate_size"], 0.05), F32)
        add("vision", p + "mlp.fc2.weight", mat(Dv, V["intermediate_size"], 0.5), F32)
        add("vision", p + "mlp.fc2.bias", vec(Dv, 0.05), F32)
        add("vision", p + "layer_norm2.weight", normw(Dv), F32)
        add("vision", p + "layer_norm2.bias", vec(Dv, 0.05), F32)
    # present in real checkpoints, NOT used by LLaVA (hidden_states[-2] is taken before it)
    add("vision", "post_layernorm.weight", normw(Dv), F32)
    add("vision", "post_layernorm.bias", vec(Dv, 0.05), F32)

    T = TEXT
    D, I = T["hidden_size"], T["intermediate_size"]
    dh = D // T["num_attention_heads"]
    kvd = T["num_key_value_heads"] * dh
    add("projector", "linear_1.weight", mat(D, Dv, 1.5), F16)
    add("projector", "linear_1.bias", vec(D, 0.05), F16)
    add("projector", "linear_2.weight", mat(D, D, 1.5), F16)
    add("projector", "linear_2.bias", vec(D, 0.05), F16)

    nv = len(VOCAB)
    add("text", "embed_tokens.weight", (rng.standard_normal((nv, D)) * 0.5).astype(np.float32), BF16)
    for i in range(T["num_hidden_layers"]):
        p = f"layers.{i}."
        add("text", p + "self_attn.q_proj.weight", mat(D, D, 1.5), BF16)
        add("text", p + "self_attn.k_proj.weight", mat(kvd, D, 1.5), BF16)
        add("text", p + "self_attn.v_proj.weight", mat(kvd, D, 1.0), BF16)
        add("text", p + "self_attn.o_proj.weight", mat(D, D, 1.0), BF16)
        add("text", p + "mlp.gate_proj.weight", mat(I, D, 1.0), BF16)
        add("text", p + "mlp.up_proj.weight", mat(I, D, 1.0), BF16)
        add("text", p + "mlp.down_proj.weight", mat(D, I, 1.0), BF16)
        add("text", p + "input_layernorm.weight", normw(D), BF16)
        add("text", p + "post_attention_layernorm.weight", normw(D), BF16)
    add("text", "norm.weight", normw(D), BF16)
    add("lm_head", "", mat(nv, D, 3.0), BF16)
    return out


def _write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")
    os.replace(tmp, path)


def write_checkpoint(out_dir: str, new_names: bool = False, seed: int = DEFAULT_SEED):
    os.makedirs(out_dir, exist_ok=True)
    weights = make_weights(seed)
    tensors = {}
    for classic, new, arr, dtype in weights:
        tensors[new if new_names else classic] = (arr, dtype)
    save_file(tensors, os.path.join(out_dir, "model.safetensors"),
              metadata={"format": "pt", "generator": "tools/llava_ref/make_tiny_llava.py",
                        "seed": str(seed)})
    _write_json(os.path.join(out_dir, "config.json"), config_json())
    _write_json(os.path.join(out_dir, "tokenizer.json"), tokenizer_json())
    _write_json(os.path.join(out_dir, "tokenizer_config.json"), TOKENIZER_CONFIG)
    _write_json(os.path.join(out_dir, "preprocessor_config.json"), PREPROCESSOR_CONFIG)
    return out_dir


def main(argv=None):
    ap = argparse.ArgumentParser(description="write a tiny random HF LLaVA checkpoint")
    ap.add_argument("--out", default=None)
    ap.add_argument("--new-names", action="store_true",
                    help="use the newer transformers naming (model.language_model.*, lm_head.weight)")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    a = ap.parse_args(argv)
    out = a.out or (DEFAULT_OUT_NEW if a.new_names else DEFAULT_OUT)
    write_checkpoint(out, a.new_names, a.seed)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
