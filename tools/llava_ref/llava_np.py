#!/usr/bin/env python3
"""Independent float64 numpy reference for Hugging Face LlavaForConditionalGeneration
(CLIP vision tower + Linear-GELU-Linear projector + Llama decoder), with a generalised
attention that can express visual-token pruning (pre-LLM and in-LLM, with KV-cache
policies) exactly as grip-vlm's runtime defines it.

Written from the published semantics of transformers' CLIPVisionModel, LlavaMultiModal-
Projector and LlamaForCausalLM; it shares no code with lib/. Speed is not a goal: the
generation loop recomputes the whole forward at every step.

Usage:
  python3 tools/llava_ref/llava_np.py --model DIR --input case.json --out result.json
  python3 tools/llava_ref/llava_np.py --model DIR --prompt "What is the color of the shape?" \
      --pixels-seed 0 --max-new-tokens 6 [--prune '{"point":"pre_llm","keep":[0,5,9]}']

case.json: {"input_ids": [...] | "prompt": "...", "pixel_values": [[..]] (3xHxW, nested or flat)
            | "pixels_seed": int, "prune": null | {...}, "max_new_tokens": int,
            "answer_ids": [...] (optional), "want_full_logits": bool}
prune:     {"point": "pre_llm", "keep": [k...], "renumber": false}
         | {"point": "in_llm", "layer": L, "keep": [k...], "cache": "keep"|"compact",
            "renumber": false}
         | {"point": "staged", "stages": [{"layer": L1, "keep": [k...]}, {"layer": L2, "keep": [...]}, ...],
            "cache": "keep"|"compact"}   (PyramidDrop: each keep-set, indices into the N visual
            tokens, a subset of the one before; original position ids)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import unicodedata

import numpy as np

sys.dont_write_bytecode = True  # keep tools/ free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_np import load_file_with_dtypes  # noqa: E402

LLAVA15_TEMPLATE = "USER: <image>\n{prompt} ASSISTANT:"

# ----------------------------------------------------------------------------------------
# activations / norms (float64)
# ----------------------------------------------------------------------------------------

_erf = np.frompyfunc(math.erf, 1, 1)


def gelu_erf(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)).astype(np.float64))


def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def quick_gelu(x):
    return x / (1.0 + np.exp(-1.702 * x))


def silu(x):
    return x / (1.0 + np.exp(-x))


ACTS = {
    "gelu": gelu_erf,
    "quick_gelu": quick_gelu,
    "gelu_new": gelu_tanh,
    "gelu_pytorch_tanh": gelu_tanh,
    "silu": silu,
    "swish": silu,
    "relu": lambda x: np.maximum(x, 0.0),
}


def act_fn(name):
    if name not in ACTS:
        raise ValueError(f"unsupported activation {name!r}")
    return ACTS[name]


def layer_norm(x, w, b, eps):
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def rms_norm(x, w, eps):
    return x / np.sqrt((x * x).mean(axis=-1, keepdims=True) + eps) * w


def softmax_masked(scores, mask):
    """softmax over the last axis; mask True = may attend. Every row has >= 1 True."""
    s = np.where(mask, scores, -np.inf)
    m = s.max(axis=-1, keepdims=True)
    e = np.where(mask, np.exp(s - m), 0.0)
    return e / e.sum(axis=-1, keepdims=True)


def log_softmax(x):
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


# ----------------------------------------------------------------------------------------
# config + weights
# ----------------------------------------------------------------------------------------

CLIP_VISION_DEFAULTS = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                            num_attention_heads=12, num_channels=3, image_size=224,
                            patch_size=32, hidden_act="quick_gelu", layer_norm_eps=1e-5)
LLAMA_DEFAULTS = dict(vocab_size=32000, hidden_size=4096, intermediate_size=11008,
                      num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=None,
                      hidden_act="silu", rms_norm_eps=1e-6, rope_theta=10000.0,
                      rope_scaling=None, head_dim=None, attention_bias=False, mlp_bias=False,
                      tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)
LLAVA_DEFAULTS = dict(image_token_index=32000, projector_hidden_act="gelu",
                      vision_feature_layer=-2, vision_feature_select_strategy="default",
                      multimodal_projector_bias=True)


class Cfg:
    def __init__(self, d: dict):
        top = dict(LLAVA_DEFAULTS)
        top.update({k: v for k, v in d.items() if k not in ("vision_config", "text_config")})
        if "image_token_id" in d and "image_token_index" not in d:
            top["image_token_index"] = d["image_token_id"]
        v = dict(CLIP_VISION_DEFAULTS)
        v.update(d.get("vision_config") or {})
        t = dict(LLAMA_DEFAULTS)
        t.update(d.get("text_config") or {})
        if t["num_key_value_heads"] is None:
            t["num_key_value_heads"] = t["num_attention_heads"]
        if t["head_dim"] is None:
            t["head_dim"] = t["hidden_size"] // t["num_attention_heads"]
        rs = t.get("rope_scaling")
        if rs and rs.get("rope_type", rs.get("type", "default")) != "default":
            raise ValueError(f"rope_scaling {rs} not supported by this reference")
        if "tie_word_embeddings" in d and "tie_word_embeddings" not in (d.get("text_config") or {}):
            t["tie_word_embeddings"] = d["tie_word_embeddings"]
        self.top, self.vision, self.text = top, v, t


def _canonical(name: str, scheme: str) -> str | None:
    """Map an HF LLaVA tensor name (classic or newer scheme) to a canonical name:
    vision.<rest under vision_model.>, projector.<rest>, text.<rest under the Llama model>,
    lm_head.weight. Returns None for unrelated tensors."""
    if scheme == "classic":
        pref = [("vision_tower.vision_model.", "vision."), ("multi_modal_projector.", "projector."),
                ("language_model.model.", "text."), ("language_model.lm_head.", "lm_head.")]
    else:
        pref = [("model.vision_tower.vision_model.", "vision."),
                ("model.multi_modal_projector.", "projector."),
                ("model.language_model.", "text."), ("lm_head.", "lm_head.")]
    for p, c in pref:
        if name.startswith(p):
            return c + name[len(p):]
    return None


def load_weights(model_dir: str):
    """Returns ({canonical name: float64 array}, {canonical name: stored dtype}, scheme)."""
    files = []
    idx = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(idx):
        with open(idx) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    raw = {}
    for fn in files:
        raw.update(load_file_with_dtypes(os.path.join(model_dir, fn)))
    if any(k.startswith("model.vision_tower.") for k in raw):
        scheme = "new"
    elif any(k.startswith("vision_tower.") for k in raw):
        scheme = "classic"
    else:
        raise ValueError(f"{model_dir}: no vision_tower tensors found")
    W, dtypes = {}, {}
    for k, (arr, dt) in raw.items():
        c = _canonical(k, scheme)
        if c is None:
            continue
        if c in W:
            raise ValueError(f"duplicate tensor for {c}")
        W[c] = np.asarray(arr, dtype=np.float64)
        dtypes[c] = dt
    return W, dtypes, scheme


# ----------------------------------------------------------------------------------------
# the model
# ----------------------------------------------------------------------------------------


class LlavaRef:
    def __init__(self, model_dir: str | None = None, config: dict | None = None,
                 weights: dict | None = None):
        if model_dir is not None:
            with open(os.path.join(model_dir, "config.json")) as f:
                config = json.load(f)
            weights, self.dtypes, self.scheme = load_weights(model_dir)
        self.cfg = Cfg(config)
        self.W = weights
        t = self.cfg.text
        if t["tie_word_embeddings"] or "lm_head.weight" not in self.W:
            self.lm_head = self.W["text.embed_tokens.weight"]
        else:
            self.lm_head = self.W["lm_head.weight"]

    # ---------------- vision tower ----------------
    def vision_hidden_states(self, pixel_values):
        v, W = self.cfg.vision, self.W
        px = np.asarray(pixel_values, dtype=np.float64)
        C, H, Wd = px.shape
        P = v["patch_size"]
        if C != v["num_channels"] or H != v["image_size"] or Wd != v["image_size"]:
            raise ValueError(f"expected pixel_values [{v['num_channels']},{v['image_size']},"
                             f"{v['image_size']}] but received {list(px.shape)}")
        gh, gw = H // P, Wd // P
        # patches in row-major grid order, each flattened as (c, ky, kx) like the conv weight
        patches = px.reshape(C, gh, P, gw, P).transpose(1, 3, 0, 2, 4).reshape(gh * gw, C * P * P)
        Dv = v["hidden_size"]
        wconv = W["vision.embeddings.patch_embedding.weight"].reshape(Dv, C * P * P)
        x = patches @ wconv.T
        if "vision.embeddings.patch_embedding.bias" in W:
            x = x + W["vision.embeddings.patch_embedding.bias"]
        x = np.concatenate([W["vision.embeddings.class_embedding"][None, :], x], axis=0)
        x = x + W["vision.embeddings.position_embedding.weight"][: x.shape[0]]
        eps = v["layer_norm_eps"]
        x = layer_norm(x, W["vision.pre_layrnorm.weight"], W["vision.pre_layrnorm.bias"], eps)
        hs = [x]
        nh = v["num_attention_heads"]
        dh = Dv // nh
        act = act_fn(v["hidden_act"])
        n = x.shape[0]
        full = np.ones((n, n), dtype=bool)
        for i in range(v["num_hidden_layers"]):
            p = f"vision.encoder.layers.{i}."
            lin = lambda name, z: z @ W[p + name + ".weight"].T + W[p + name + ".bias"]  # noqa
            h = layer_norm(x, W[p + "layer_norm1.weight"], W[p + "layer_norm1.bias"], eps)
            q = lin("self_attn.q_proj", h).reshape(n, nh, dh)
            k = lin("self_attn.k_proj", h).reshape(n, nh, dh)
            vv = lin("self_attn.v_proj", h).reshape(n, nh, dh)
            s = np.einsum("qhd,khd->hqk", q, k) / math.sqrt(dh)
            a = softmax_masked(s, full[None])
            o = np.einsum("hqk,khd->qhd", a, vv).reshape(n, Dv)
            x = x + lin("self_attn.out_proj", o)
            h = layer_norm(x, W[p + "layer_norm2.weight"], W[p + "layer_norm2.bias"], eps)
            x = x + lin("mlp.fc2", act(lin("mlp.fc1", h)))
            hs.append(x)
        return hs

    def image_features(self, pixel_values):
        """Returns (selected vision features [N, Dv'], projected visual tokens [N, D])."""
        top, W = self.cfg.top, self.W
        hs = self.vision_hidden_states(pixel_values)
        layer = top["vision_feature_layer"]
        if isinstance(layer, (list, tuple)):
            feats = np.concatenate([hs[i] for i in layer], axis=-1)
        else:
            feats = hs[layer]
        strat = top["vision_feature_select_strategy"]
        if strat == "default":
            feats = feats[1:]
        elif strat != "full":
            raise ValueError(f"unsupported vision_feature_select_strategy {strat!r}")
        act = act_fn(top["projector_hidden_act"])

        def lin(name, z):
            y = z @ W[f"projector.{name}.weight"].T
            if f"projector.{name}.bias" in W:
                y = y + W[f"projector.{name}.bias"]
            return y

        proj = lin("linear_2", act(lin("linear_1", feats)))
        return feats, proj

    # ---------------- Llama ----------------
    def embed(self, ids):
        return self.W["text.embed_tokens.weight"][np.asarray(ids, dtype=np.int64)]

    def rope(self, x, pos):
        """x [n, heads, Dh], pos [n] -> HF rotate_half RoPE."""
        t = self.cfg.text
        dh = t["head_dim"]
        inv_freq = float(t["rope_theta"]) ** (-np.arange(0, dh, 2, dtype=np.float64) / dh)
        freqs = np.asarray(pos, dtype=np.float64)[:, None] * inv_freq[None, :]
        emb = np.concatenate([freqs, freqs], axis=-1)
        cos, sin = np.cos(emb)[:, None, :], np.sin(emb)[:, None, :]
        x1, x2 = x[..., : dh // 2], x[..., dh // 2:]
        rot = np.concatenate([-x2, x1], axis=-1)
        return x * cos + rot * sin

    def llm_forward(self, x0, pos, present, allow=None):
        """Generalised Llama forward.

        x0      [S, D] input embeddings of every token that exists at layer 0.
        pos     [S] int position ids (same at all layers) or [n_layers, S] (per layer).
        present [n_layers, S] bool; present[l][i] = token i takes part in layer l.
                Must be non-increasing over layers (a token dropped stays dropped).
        allow   None or [n_layers, S, S] bool extra key visibility (query i may see key j).
        Attention at layer l: query i (present) sees key j iff present[l][j] and j <= i
        (sequence order) and allow[l][i, j].
        Returns (logits [n_out, V] for tokens present at the last layer, their indices)."""
        t, W = self.cfg.text, self.W
        L = t["num_hidden_layers"]
        S, D = x0.shape
        nh, nkv, dh = t["num_attention_heads"], t["num_key_value_heads"], t["head_dim"]
        rep = nh // nkv
        eps = t["rms_norm_eps"]
        act = act_fn(t["hidden_act"])
        pos = np.asarray(pos, dtype=np.int64)
        if pos.ndim == 1:
            pos = np.broadcast_to(pos, (L, S))
        present = np.asarray(present, dtype=bool)
        assert present.shape == (L, S)
        assert not np.any(present[1:] & ~present[:-1]), "presence must be non-increasing"
        h = np.array(x0, dtype=np.float64, copy=True)

        def lin(name, z):
            y = z @ W[name + ".weight"].T
            if name + ".bias" in W:
                y = y + W[name + ".bias"]
            return y

        for l in range(L):
            p = f"text.layers.{l}."
            idx = np.nonzero(present[l])[0]
            n = idx.size
            x = h[idx]
            pl = pos[l][idx]
            mask = idx[:, None] >= idx[None, :]
            if allow is not None:
                mask = mask & np.asarray(allow[l])[np.ix_(idx, idx)]
            z = rms_norm(x, W[p + "input_layernorm.weight"], eps)
            q = self.rope(lin(p + "self_attn.q_proj", z).reshape(n, nh, dh), pl)
            k = self.rope(lin(p + "self_attn.k_proj", z).reshape(n, nkv, dh), pl)
            v = lin(p + "self_attn.v_proj", z).reshape(n, nkv, dh)
            k = np.repeat(k, rep, axis=1)  # q head j uses kv head j // rep (HF repeat_kv)
            v = np.repeat(v, rep, axis=1)
            s = np.einsum("qhd,khd->hqk", q, k) / math.sqrt(dh)
            a = softmax_masked(s, mask[None])
            o = np.einsum("hqk,khd->qhd", a, v).reshape(n, nh * dh)
            x = x + lin(p + "self_attn.o_proj", o)
            z = rms_norm(x, W[p + "post_attention_layernorm.weight"], eps)
            x = x + lin(p + "mlp.down_proj", act(lin(p + "mlp.gate_proj", z)) * lin(p + "mlp.up_proj", z))
            h[idx] = x
        idx = np.nonzero(present[L - 1])[0]
        out = rms_norm(h[idx], W["text.norm.weight"], eps)
        return out @ self.lm_head.T, idx


# ----------------------------------------------------------------------------------------
# sequence plans: where pruning semantics live
# ----------------------------------------------------------------------------------------


class Plan:
    """Everything needed to run the LLM over prompt (+ appended decode/answer tokens)."""

    def __init__(self, model: LlavaRef, input_ids, proj, prune=None):
        t = model.cfg.text
        L = t["num_hidden_layers"]
        img = model.cfg.top["image_token_index"]
        ids = [int(i) for i in input_ids]
        where = [i for i, x in enumerate(ids) if x == img]
        if len(where) != 1:
            raise ValueError(f"expected exactly one image token ({img}) but found {len(where)}")
        ti = where[0]
        before, after = ids[:ti], ids[ti + 1:]
        N = proj.shape[0]
        nb, na = len(before), len(after)
        self.model, self.L, self.N, self.nb, self.na = model, L, N, nb, na
        self.S_full = nb + N + na
        self.prune = prune = dict(prune) if prune else None
        eb, ea = model.embed(before), model.embed(after)
        text_pos_after = nb + N + np.arange(na)
        if prune is None or prune.get("point") in (None, "none"):
            self.x = np.concatenate([eb, proj, ea], axis=0)
            self.pos = np.broadcast_to(np.arange(self.S_full), (L, self.S_full)).copy()
            self.present = np.ones((L, self.S_full), dtype=bool)
            self.decode_start = self.S_full
            self.pruned_from = None
            self.kept_mask = np.ones(self.S_full, dtype=bool)
            self.compact = False
        elif prune["point"] == "staged":
            # token i takes part in layer l iff it survived every stage at or below l
            stages = prune["stages"]
            cache = prune.get("cache", "keep")
            if cache not in ("keep", "compact"):
                raise ValueError(f"cache policy must be 'keep' or 'compact', got {cache!r}")
            self.x = np.concatenate([eb, proj, ea], axis=0)
            self.present = np.ones((L, self.S_full), dtype=bool)
            self.pos = np.broadcast_to(np.arange(self.S_full), (L, self.S_full)).copy()
            prev_layer, prev_keep = 0, set(range(N))
            for st in stages:
                Lk, keep = int(st["layer"]), [int(k) for k in st["keep"]]
                if not (prev_layer < Lk < L) or not set(keep) <= prev_keep or keep != sorted(set(keep)):
                    raise ValueError("stages must have ascending layers in [1, L) and nested sorted keep-sets")
                kept_mask = np.zeros(self.S_full, dtype=bool)
                kept_mask[:nb] = True
                kept_mask[nb + np.asarray(keep, dtype=np.int64)] = True
                kept_mask[nb + N:] = True
                self.present[Lk:] &= kept_mask
                prev_layer, prev_keep = Lk, set(keep)
            self.pruned_from = int(stages[0]["layer"])
            self.kept_mask = kept_mask
            self.compact = cache == "compact"
            self.decode_start = self.S_full
        else:
            keep = np.asarray(prune["keep"], dtype=np.int64)
            if keep.size == 0 or np.any(np.diff(keep) <= 0) or keep[0] < 0 or keep[-1] >= N:
                raise ValueError("keep must be sorted, unique, within [0, N)")
            K = keep.size
            renumber = bool(prune.get("renumber", False))
            S_kept = nb + K + na
            orig_kept_pos = np.concatenate([np.arange(nb), nb + keep, text_pos_after])
            kept_pos = np.arange(S_kept) if renumber else orig_kept_pos
            if prune["point"] == "pre_llm":
                self.x = np.concatenate([eb, proj[keep], ea], axis=0)
                self.pos = np.broadcast_to(kept_pos, (L, S_kept)).copy()
                self.present = np.ones((L, S_kept), dtype=bool)
                self.pruned_from = None
                self.kept_mask = np.ones(S_kept, dtype=bool)
                self.compact = False
            elif prune["point"] == "in_llm":
                Lk = int(prune["layer"])
                if not (1 <= Lk < L):
                    raise ValueError(f"in_llm layer must be in [1, {L}) but received {Lk}")
                cache = prune.get("cache", "keep")
                if cache not in ("keep", "compact"):
                    raise ValueError(f"cache policy must be 'keep' or 'compact', got {cache!r}")
                self.x = np.concatenate([eb, proj, ea], axis=0)
                kept_mask = np.zeros(self.S_full, dtype=bool)
                kept_mask[:nb] = True
                kept_mask[nb + keep] = True
                kept_mask[nb + N:] = True
                self.present = np.ones((L, self.S_full), dtype=bool)
                self.present[Lk:] = kept_mask
                self.pos = np.broadcast_to(np.arange(self.S_full), (L, self.S_full)).copy()
                # at layers >= Lk the kept tokens carry kept_pos (original or renumbered)
                self.pos[Lk:, kept_mask] = kept_pos
                self.pruned_from = Lk
                self.kept_mask = kept_mask
                self.compact = cache == "compact"
            else:
                raise ValueError(f"unknown prune point {prune['point']!r}")
            self.decode_start = S_kept if renumber else self.S_full
        self.S_prefill = self.x.shape[0]

    def run(self, extra_ids=()):
        """Forward over the prompt plus `extra_ids` appended tokens (decode tokens or a
        teacher-forced answer). Extra token j has position decode_start + j at every layer,
        is present at every layer; under cache policy 'compact' it never sees pruned visual
        positions (at any layer). Returns (logits [n_out, V], out sequence indices)."""
        m = len(extra_ids)
        S0, L = self.S_prefill, self.L
        x = self.x
        if m:
            x = np.concatenate([x, self.model.embed(list(extra_ids))], axis=0)
        S = S0 + m
        pos = np.concatenate([self.pos, np.broadcast_to(self.decode_start + np.arange(m), (L, m))], axis=1)
        present = np.concatenate([self.present, np.ones((L, m), dtype=bool)], axis=1)
        allow = None
        if self.compact and m:
            allow = np.ones((L, S, S), dtype=bool)
            hidden_cols = np.nonzero(~self.kept_mask)[0]
            allow[:, S0:, hidden_cols] = False
        return self.model.llm_forward(x, pos, present, allow)


def greedy_generate(plan: Plan, max_new_tokens: int, eos_id=None):
    """Greedy decoding, full recompute per step. Returns dict with the prompt's last-position
    logits, generated ids, per-step logits (the logits that chose each token) and margins."""
    gen, step_logits = [], []
    for _ in range(max_new_tokens):
        logits, _ = plan.run(gen)
        last = logits[-1]
        step_logits.append(last)
        gen.append(int(np.argmax(last)))
    eos_step = None
    if eos_id is not None:
        for i, tkn in enumerate(gen):
            if tkn == eos_id:
                eos_step = i
                break
    margins = []
    for lg in step_logits:
        s = np.sort(lg)
        margins.append(float(s[-1] - s[-2]))
    return dict(generated_ids=gen, step_logits=np.array(step_logits), eos_step=eos_step,
                margins=margins)


def answer_loglik(plan: Plan, answer_ids):
    """Teacher forcing: sum_j log softmax(logits at the position before answer token j)[a_j].
    The position before a_0 is the last prompt token."""
    a = [int(i) for i in answer_ids]
    logits, _ = plan.run(a)
    m = len(a)
    rows = logits[-(m + 1):-1]  # last prompt token, a_0 .. a_{m-2}
    lp = log_softmax(rows)[np.arange(m), a]
    return lp


# ----------------------------------------------------------------------------------------
# tokenizer emulation (Lowercase + BertPreTokenizer + WordPiece, BOS template)
# ----------------------------------------------------------------------------------------


def _is_punct(ch):
    o = ord(ch)
    if 33 <= o <= 47 or 58 <= o <= 64 or 91 <= o <= 96 or 123 <= o <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _bert_pre_tokenize(text):
    words, cur = [], ""
    for ch in text:
        if ch.isspace():
            if cur:
                words.append(cur)
            cur = ""
        elif _is_punct(ch):
            if cur:
                words.append(cur)
            words.append(ch)
            cur = ""
        else:
            cur += ch
    if cur:
        words.append(cur)
    return words


def _wordpiece(word, vocab, unk, prefix="##", max_chars=100):
    if len(word) > max_chars:
        return [unk]
    out, start = [], 0
    while start < len(word):
        end, found = len(word), None
        while start < end:
            sub = word[start:end]
            if start > 0:
                sub = prefix + sub
            if sub in vocab:
                found = sub
                break
            end -= 1
        if found is None:
            return [unk]
        out.append(found)
        start = end
    return out


def tokenize(text, tokenizer_json: dict, add_bos=True):
    model = tokenizer_json["model"]
    assert model["type"] == "WordPiece"
    vocab = model["vocab"]
    added = sorted((t["content"] for t in tokenizer_json.get("added_tokens", [])), key=len, reverse=True)
    ids = []
    i, seg = 0, ""

    def flush(s):
        for w in _bert_pre_tokenize(s.lower()):
            for piece in _wordpiece(w, vocab, model["unk_token"], model["continuing_subword_prefix"],
                                    model["max_input_chars_per_word"]):
                ids.append(vocab[piece])

    while i < len(text):
        hit = next((a for a in added if text.startswith(a, i)), None)
        if hit is not None:
            flush(seg)
            seg = ""
            ids.append(vocab[hit])
            i += len(hit)
        else:
            seg += text[i]
            i += 1
    flush(seg)
    if add_bos:
        ids = [vocab["<s>"]] + ids
    return ids


def load_tokenizer(model_dir):
    with open(os.path.join(model_dir, "tokenizer.json")) as f:
        return json.load(f)


# ----------------------------------------------------------------------------------------
# case runner + CLI
# ----------------------------------------------------------------------------------------


def pixels_from_seed(seed: int, cfg: Cfg):
    """Deterministic pseudo-random image in the CLIP-normalised range, float32 [3,H,W]:
    a flat background + one axis-aligned rectangle + noise, as uint8, normalised with the
    CLIP mean/std, rounded to float32."""
    v = cfg.vision
    C, H = v["num_channels"], v["image_size"]
    rng = np.random.default_rng(1000 + seed)
    img = np.empty((C, H, H), dtype=np.float64)
    img[:] = rng.integers(0, 256, size=(C, 1, 1))
    y0, x0 = rng.integers(0, H // 2, size=2)
    y1, x1 = y0 + rng.integers(H // 4, H // 2 + 1), x0 + rng.integers(H // 4, H // 2 + 1)
    img[:, y0:y1, x0:x1] = rng.integers(0, 256, size=(C, 1, 1))
    img = np.clip(img + rng.integers(-20, 21, size=img.shape), 0, 255)
    mean = np.array([0.48145466, 0.4578275, 0.40821073])[:, None, None]
    std = np.array([0.26862954, 0.26130258, 0.27577711])[:, None, None]
    return ((img / 255.0 - mean) / std).astype(np.float32)


def run_case(model: LlavaRef, case: dict, tokenizer_json=None):
    if "input_ids" in case:
        ids = [int(i) for i in case["input_ids"]]
    else:
        text = LLAVA15_TEMPLATE.format(prompt=case["prompt"])
        ids = tokenize(text, tokenizer_json)
    if "pixel_values" in case:
        v = model.cfg.vision
        px = np.asarray(case["pixel_values"], dtype=np.float32).reshape(
            v["num_channels"], v["image_size"], v["image_size"])
    else:
        px = pixels_from_seed(int(case.get("pixels_seed", 0)), model.cfg)
    feats, proj = model.image_features(px.astype(np.float64))
    plan = Plan(model, ids, proj, case.get("prune"))
    logits, out_idx = plan.run()
    res = dict(input_ids=ids, seq_len=plan.S_prefill, last_logits=logits[-1],
               decode_position_start=int(plan.decode_start),
               position_ids=plan.pos[0].tolist(), position_ids_last_layer=plan.pos[-1].tolist(),
               present_last_layer=np.nonzero(plan.present[-1])[0].tolist(),
               _feats=feats, _proj=proj, _pixels=px, _full_logits=logits, _out_idx=out_idx)
    n = int(case.get("max_new_tokens", 0))
    if n:
        res.update(greedy_generate(plan, n, model.cfg.text.get("eos_token_id")))
    if case.get("answer_ids") is not None:
        lp = answer_loglik(plan, case["answer_ids"])
        res["answer_token_logprobs"] = lp
        res["answer_logprob_sum"] = float(lp.sum())
    return res


def _jsonable(x):
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items() if not k.startswith("_")}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    return x


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--input", help="case JSON file")
    ap.add_argument("--prompt")
    ap.add_argument("--pixels-seed", type=int, default=0)
    ap.add_argument("--max-new-tokens", type=int, default=6)
    ap.add_argument("--prune", help="prune spec as JSON")
    ap.add_argument("--answer", help="answer text for teacher-forced log-likelihood")
    ap.add_argument("--out", help="write the result JSON here (default stdout)")
    a = ap.parse_args(argv)
    model = LlavaRef(a.model)
    tok = load_tokenizer(a.model) if os.path.exists(os.path.join(a.model, "tokenizer.json")) else None
    if a.input:
        with open(a.input) as f:
            case = json.load(f)
    else:
        if a.prompt is None:
            ap.error("need --input or --prompt")
        case = dict(prompt=a.prompt, pixels_seed=a.pixels_seed, max_new_tokens=a.max_new_tokens,
                    prune=json.loads(a.prune) if a.prune else None)
        if a.answer is not None:
            case["answer_ids"] = tokenize(a.answer, tok, add_bos=False)
    if case.get("answer") is not None and case.get("answer_ids") is None:
        case["answer_ids"] = tokenize(case["answer"], tok, add_bos=False)
    res = run_case(model, case, tok)
    if case.get("want_full_logits"):
        res["full_logits"] = res["_full_logits"]
    s = json.dumps(_jsonable(res))
    if a.out:
        with open(a.out, "w") as f:
            f.write(s + "\n")
    else:
        print(s)


if __name__ == "__main__":
    main()
