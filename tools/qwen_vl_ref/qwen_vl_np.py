#!/usr/bin/env python3
"""Independent float64 numpy reference for Qwen2-VL and Qwen2.5-VL (Hugging Face
Qwen2VLForConditionalGeneration / Qwen2_5_VLForConditionalGeneration), written from the
transformers definitions (image_processing_qwen2_vl.py, modeling_qwen2_vl.py,
modeling_qwen2_5_vl.py, processing_qwen2_5_vl.py). It shares no code with lib/; from
tools/llava_ref it takes only the safetensors reader and PIL's resampler (Pillow's
Resample.c in numpy), which are not model code.

  processor   smart_resize, PIL resize, rescale + normalise, temporal repeat, patch flatten
  vision      patch linear (the Conv3d), 2D rotary, Qwen2-VL blocks (LayerNorm, QuickGELU,
              full attention) or Qwen2.5-VL blocks (RMSNorm, SwiGLU, window attention with
              fullatt_block_indexes), the 2x2 patch merger
  decoder     Qwen2 (q/k/v bias, GQA, RMSNorm, SwiGLU) with M-RoPE on 3D position ids
  positions   get_rope_index: text positions continue after the image's maximum
  pruning     pre-LLM keep-set, in-LLM at layer K (cache keep | compact); kept tokens keep
              their original 3D position ids
  tokenizer   byte-level BPE emulation (Qwen2's split regex on ASCII text)
"""

from __future__ import annotations

import json
import math
import os
import re
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # keep tools/ free of __pycache__
sys.path.insert(0, os.path.join(HERE, "..", "llava_ref"))
from llava_next_np import normalize_pixels, pil_resize  # noqa: E402
from safetensors_np import load_file  # noqa: E402


# ------------------------------------------------------------------ processor
# Qwen2VLImageProcessor (the slow one; Qwen2.5-VL uses the same class).


def py_round(x: float) -> int:
    """Python's round(): half to even."""
    return int(round(x))


def smart_resize(height, width, factor=28, min_pixels=56 * 56, max_pixels=14 * 14 * 4 * 1280):
    """transformers' smart_resize: both sides multiples of factor, area within [min, max]."""
    if height < 10 or width < 10:
        raise ValueError(f"height:{height} or width:{width} must be larger than factor:{factor}")
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"absolute aspect ratio must be smaller than 200, got {height} / {width}")
    h_bar = py_round(height / factor) * factor
    w_bar = py_round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = math.floor(height / beta / factor) * factor
        w_bar = math.floor(width / beta / factor) * factor
        if h_bar == 0 or w_bar == 0:
            # transformers returns the 0 and fails later; both here and lib/ refuse it
            raise ValueError(f"height:{height} x width:{width} resizes to a side of 0 within max_pixels:{max_pixels}")
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def processor_settings(pp: dict) -> dict:
    """preprocessor_config.json with Qwen2VLImageProcessor's defaults filled in."""
    size = pp.get("size") or {}
    return {
        "min_pixels": pp.get("min_pixels", size.get("shortest_edge", 56 * 56)),
        "max_pixels": pp.get("max_pixels", size.get("longest_edge", 28 * 28 * 1280)),
        "patch_size": pp.get("patch_size", 14),
        "temporal_patch_size": pp.get("temporal_patch_size", 2),
        "merge_size": pp.get("merge_size", 2),
        "image_mean": pp.get("image_mean", [0.48145466, 0.4578275, 0.40821073]),
        "image_std": pp.get("image_std", [0.26862954, 0.26130258, 0.27577711]),
        "rescale_factor": pp.get("rescale_factor", 1 / 255),
        "resample": pp.get("resample", 3),
    }


def preprocess(img: np.ndarray, s: dict):
    """One HxWx3 uint8 image -> (pixel_values [N, C*T*P*P] float32, grid_thw, resized uint8).
    A still image is its frame repeated temporal_patch_size times; the rows are patches in
    HF's order: merged-grid row-major, then the 2x2 inside each merged cell, each row
    flattened as (channel, time, py, px)."""
    ps, tps, ms = s["patch_size"], s["temporal_patch_size"], s["merge_size"]
    h, w = img.shape[:2]
    rh, rw = smart_resize(h, w, ps * ms, s["min_pixels"], s["max_pixels"])
    resized = pil_resize(img, rh, rw, s["resample"])
    chw = normalize_pixels(resized, s["image_mean"], s["image_std"], s["rescale_factor"])  # [3, rh, rw]
    frames = np.repeat(chw[None], tps, axis=0)  # [T, C, H, W]
    gt, gh, gw = 1, rh // ps, rw // ps
    x = frames.reshape(gt, tps, 3, gh // ms, ms, ps, gw // ms, ms, ps)
    x = x.transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)
    patches = x.reshape(gt * gh * gw, 3 * tps * ps * ps).astype(np.float32)
    return patches, (gt, gh, gw), resized


# ------------------------------------------------------------------ small ops (float64)


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def rms_norm(x, w, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def silu(x):
    return x / (1.0 + np.exp(-x))


def quick_gelu(x):
    return x / (1.0 + np.exp(-1.702 * x))


def gelu_erf(x):
    erf = np.vectorize(math.erf, otypes=[np.float64])
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


ACT = {"silu": silu, "quick_gelu": quick_gelu, "gelu": gelu_erf}


def rotate_half(x):
    d = x.shape[-1] // 2
    return np.concatenate([-x[..., d:], x[..., :d]], axis=-1)


def softmax(x):
    m = x.max(-1, keepdims=True)
    e = np.exp(x - m)
    return e / e.sum(-1, keepdims=True)


# ------------------------------------------------------------------ vision tower


def vision_rotary(grid, head_dim, ms, theta=10000.0):
    """rot_pos_emb: [N, head_dim/2] = (h freqs, w freqs) of each patch, patches in the
    processor's order (merged cells row-major, 2x2 inside)."""
    t, h, w = grid
    dim = head_dim // 2
    inv_freq = 1.0 / theta ** (np.arange(0, dim, 2, dtype=np.float64) / dim)
    hpos = np.broadcast_to(np.arange(h)[:, None], (h, w)).reshape(h // ms, ms, w // ms, ms).transpose(0, 2, 1, 3).ravel()
    wpos = np.broadcast_to(np.arange(w)[None, :], (h, w)).reshape(h // ms, ms, w // ms, ms).transpose(0, 2, 1, 3).ravel()
    pos = np.tile(np.stack([hpos, wpos], -1), (t, 1))
    table = np.outer(np.arange(max(h, w), dtype=np.float64), inv_freq)
    return table[pos].reshape(pos.shape[0], -1)


def window_index(grid, window_size, ms, ps):
    """get_window_index for one image: (permutation of the merged cells, cu_window_seqlens in patches)."""
    t, h, w = grid
    vm = window_size // ms // ps
    lh, lw = h // ms, w // ms
    index = np.arange(t * lh * lw).reshape(t, lh, lw)
    pad_h, pad_w = vm - lh % vm, vm - lw % vm  # a full extra window when divisible, as in HF
    nh, nw = (lh + pad_h) // vm, (lw + pad_w) // vm
    padded = np.pad(index, ((0, 0), (0, pad_h), (0, pad_w)), constant_values=-100)
    padded = padded.reshape(t, nh, vm, nw, vm).transpose(0, 1, 3, 2, 4).reshape(t, nh * nw, vm, vm)
    seqlens = (padded != -100).sum((2, 3)).reshape(-1)
    flat = padded.reshape(-1)
    perm = flat[flat != -100]
    cu = [0] + list(np.cumsum(seqlens) * ms * ms)
    uniq = [cu[0]] + [c for prev, c in zip(cu, cu[1:]) if c != prev]  # unique_consecutive
    return perm, [int(c) for c in uniq]


class QwenVLRef:
    def __init__(self, model_dir: str):
        with open(os.path.join(model_dir, "config.json")) as f:
            self.cfg = json.load(f)
        self.kind = self.cfg["model_type"]
        assert self.kind in ("qwen2_vl", "qwen2_5_vl"), self.kind
        self.w = {k: v.astype(np.float64) for k, v in load_file(os.path.join(model_dir, "model.safetensors")).items()}
        with open(os.path.join(model_dir, "preprocessor_config.json")) as f:
            self.proc = processor_settings(json.load(f))
        vc = self.cfg["vision_config"]
        self.vc = vc
        self.v_dim = vc["embed_dim"] if self.kind == "qwen2_vl" else vc["hidden_size"]
        self.v_heads = vc["num_heads"]
        self.ms = vc["spatial_merge_size"]
        self.ps = vc["patch_size"]
        c = self.cfg
        self.D = c["hidden_size"]
        self.H = c["num_attention_heads"]
        self.Hkv = c["num_key_value_heads"]
        self.Dh = self.D // self.H
        self.L = c["num_hidden_layers"]
        self.eps = c["rms_norm_eps"]
        self.theta = c.get("rope_theta", 1000000.0)
        self.mrope = list(c["rope_scaling"]["mrope_section"])
        assert sum(self.mrope) == self.Dh // 2
        self.tied = c.get("tie_word_embeddings", False)

    # ---- vision
    def _vision_attention(self, x, p, cos, sin, cu):
        n = x.shape[0]
        hd = self.v_dim // self.v_heads
        qkv = x @ self.w[p + "attn.qkv.weight"].T + self.w[p + "attn.qkv.bias"]
        q, k, v = qkv.reshape(n, 3, self.v_heads, hd).transpose(1, 2, 0, 3)  # each [heads, n, hd]
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        seg = np.zeros(n, dtype=np.int64)
        for i, (a, b) in enumerate(zip(cu, cu[1:])):
            seg[a:b] = i
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(hd)
        scores = np.where(seg[:, None] == seg[None, :], scores, -np.inf)
        out = softmax(scores) @ v  # [heads, n, hd]
        out = out.transpose(1, 0, 2).reshape(n, self.v_dim)
        return out @ self.w[p + "attn.proj.weight"].T + self.w[p + "attn.proj.bias"]

    def vision(self, pixel_values, grid):
        """[N, C*T*P*P] patches -> [N/4, D] visual tokens in merged-grid row-major order."""
        W, vc = self.w, self.vc
        n = pixel_values.shape[0]
        x = np.asarray(pixel_values, dtype=np.float64) @ W["visual.patch_embed.proj.weight"].reshape(self.v_dim, -1).T
        rot = vision_rotary(grid, self.v_dim // self.v_heads, self.ms)
        unit = self.ms * self.ms
        full_cu = [0, n]
        if self.kind == "qwen2_5_vl":
            perm, win_cu = window_index(grid, vc["window_size"], self.ms, self.ps)
            x = x.reshape(n // unit, unit, -1)[perm].reshape(n, -1)
            rot = rot.reshape(n // unit, unit, -1)[perm].reshape(n, -1)
            full_blocks = set(vc["fullatt_block_indexes"])
        emb = np.concatenate([rot, rot], -1)
        cos, sin = np.cos(emb)[None], np.sin(emb)[None]
        for i in range(vc["depth"]):
            p = f"visual.blocks.{i}."
            if self.kind == "qwen2_vl":
                h = layer_norm(x, W[p + "norm1.weight"], W[p + "norm1.bias"], 1e-6)
                x = x + self._vision_attention(h, p, cos, sin, full_cu)
                h = layer_norm(x, W[p + "norm2.weight"], W[p + "norm2.bias"], 1e-6)
                h = ACT[vc.get("hidden_act", "quick_gelu")](h @ W[p + "mlp.fc1.weight"].T + W[p + "mlp.fc1.bias"])
                x = x + h @ W[p + "mlp.fc2.weight"].T + W[p + "mlp.fc2.bias"]
            else:
                cu = full_cu if i in full_blocks else win_cu
                h = rms_norm(x, W[p + "norm1.weight"], 1e-6)
                x = x + self._vision_attention(h, p, cos, sin, cu)
                h = rms_norm(x, W[p + "norm2.weight"], 1e-6)
                act = ACT[vc.get("hidden_act", "silu")]
                gate = act(h @ W[p + "mlp.gate_proj.weight"].T + W[p + "mlp.gate_proj.bias"])
                up = h @ W[p + "mlp.up_proj.weight"].T + W[p + "mlp.up_proj.bias"]
                x = x + (gate * up) @ W[p + "mlp.down_proj.weight"].T + W[p + "mlp.down_proj.bias"]
        if self.kind == "qwen2_vl":
            h = layer_norm(x, W["visual.merger.ln_q.weight"], W["visual.merger.ln_q.bias"], 1e-6)
        else:
            h = rms_norm(x, W["visual.merger.ln_q.weight"], 1e-6)
        h = h.reshape(n // unit, unit * self.v_dim)
        h = gelu_erf(h @ W["visual.merger.mlp.0.weight"].T + W["visual.merger.mlp.0.bias"])
        out = h @ W["visual.merger.mlp.2.weight"].T + W["visual.merger.mlp.2.bias"]
        if self.kind == "qwen2_5_vl":
            out = out[np.argsort(perm)]
        return out

    # ---- decoder
    def mrope_cos_sin(self, pos3):
        """pos3 [3, S] -> cos, sin [S, Dh]: dims of each half taken from t, h, w by mrope_section."""
        inv_freq = 1.0 / self.theta ** (np.arange(0, self.Dh, 2, dtype=np.float64) / self.Dh)
        freqs = pos3[:, :, None].astype(np.float64) * inv_freq[None, None, :]  # [3, S, Dh/2]
        emb = np.concatenate([freqs, freqs], -1)  # [3, S, Dh]
        sections = self.mrope * 2
        bounds = np.cumsum([0] + sections)
        pick = np.concatenate([np.full(sections[i], i % 3) for i in range(len(sections))])
        assert bounds[-1] == self.Dh
        sel = emb[pick, :, np.arange(self.Dh)].T  # [S, Dh]: column d from component pick[d]
        return np.cos(sel), np.sin(sel)

    def llm_forward(self, x, pos3, present, allow=None):
        """x [S, D] input embeddings, pos3 [3, S], present [L, S] bool (non-increasing in l),
        allow [L, S, S] bool or None. Query i sees key j iff both present, j <= i, allow.
        Returns the final-norm hidden states [S, D] (rows absent at the last layer are stale)."""
        W = self.w
        S = x.shape[0]
        cos, sin = self.mrope_cos_sin(pos3)
        causal = np.tril(np.ones((S, S), dtype=bool))
        h = x.copy()
        group = self.H // self.Hkv
        for l in range(self.L):
            p = f"model.layers.{l}."
            pr = present[l]
            vis = causal & pr[:, None] & pr[None, :]
            if allow is not None:
                vis = vis & allow[l]
            a = rms_norm(h, W[p + "input_layernorm.weight"], self.eps)
            q = (a @ W[p + "self_attn.q_proj.weight"].T + W[p + "self_attn.q_proj.bias"]).reshape(S, self.H, self.Dh).transpose(1, 0, 2)
            k = (a @ W[p + "self_attn.k_proj.weight"].T + W[p + "self_attn.k_proj.bias"]).reshape(S, self.Hkv, self.Dh).transpose(1, 0, 2)
            v = (a @ W[p + "self_attn.v_proj.weight"].T + W[p + "self_attn.v_proj.bias"]).reshape(S, self.Hkv, self.Dh).transpose(1, 0, 2)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            k = np.repeat(k, group, axis=0)
            v = np.repeat(v, group, axis=0)
            scores = q @ k.transpose(0, 2, 1) / math.sqrt(self.Dh)
            scores = np.where(vis[None], scores, -np.inf)
            safe = np.where(pr[:, None], scores, 0.0)  # absent query rows: anything finite
            o = (softmax(safe) @ v).transpose(1, 0, 2).reshape(S, self.D)
            o = o @ W[p + "self_attn.o_proj.weight"].T
            h = np.where(pr[:, None], h + o, h)
            m = rms_norm(h, W[p + "post_attention_layernorm.weight"], self.eps)
            m = (silu(m @ W[p + "mlp.gate_proj.weight"].T) * (m @ W[p + "mlp.up_proj.weight"].T)) @ W[p + "mlp.down_proj.weight"].T
            h = np.where(pr[:, None], h + m, h)
        return rms_norm(h, W["model.norm.weight"], self.eps)

    def logits(self, hidden):
        head = self.w["model.embed_tokens.weight"] if self.tied else self.w["lm_head.weight"]
        return hidden @ head.T

    def embed(self, ids):
        return self.w["model.embed_tokens.weight"][np.asarray(ids, dtype=np.int64)]


# ------------------------------------------------------------------ positions


def get_rope_index(input_ids, grids, cfg):
    """3D position ids [3, S] of one row (images only), as get_rope_index: text runs count up
    on all three axes; an image's tokens get (t, row, col) of its merged grid plus the position
    where it starts; the text after it continues from the image's maximum + 1.
    Returns (pos3, rope_delta) with rope_delta = max + 1 - S (decode token t is at S + t + delta)."""
    ms = cfg["vision_config"]["spatial_merge_size"]
    image_id, start_id = cfg["image_token_id"], cfg["vision_start_token_id"]
    ids = list(input_ids)
    parts = []
    st = 0
    next_pos = 0
    starts = [i for i in range(len(ids) - 1) if ids[i] == start_id and ids[i + 1] == image_id]
    assert len(starts) == len(grids)
    for (t, h, w), s in zip(grids, starts):
        ed = s + 1
        text_len = ed - st
        parts.append(np.broadcast_to(np.arange(text_len) + next_pos, (3, text_len)))
        lt, lh, lw = t, h // ms, w // ms
        ti = np.repeat(np.arange(lt), lh * lw)
        hi = np.tile(np.repeat(np.arange(lh), lw), lt)
        wi = np.tile(np.arange(lw), lt * lh)
        img = np.stack([ti, hi, wi]) + text_len + next_pos
        parts.append(img)
        next_pos = int(img.max()) + 1
        st = ed + lt * lh * lw
    if st < len(ids):
        n = len(ids) - st
        parts.append(np.broadcast_to(np.arange(n) + next_pos, (3, n)))
    pos = np.concatenate(parts, axis=1).astype(np.int64)
    assert pos.shape[1] == len(ids)
    return pos, int(pos.max()) + 1 - len(ids)


# ------------------------------------------------------------------ pruning + generation


def plan(S, vis_start, n_vis, L, prune):
    """(present [L, S], decode_hide(l) -> bool mask of prompt keys a decode token may not see).
    prune: None | {"point": "pre_llm", "keep": [...]} |
           {"point": "in_llm", "layer": K, "keep": [...], "cache": "keep" | "compact"}"""
    present = np.ones((L, S), dtype=bool)
    hide = np.zeros((L, S), dtype=bool)
    if prune is None:
        return present, hide
    keep = np.asarray(prune["keep"], dtype=np.int64)
    assert np.all(np.diff(keep) > 0) and keep.min() >= 0 and keep.max() < n_vis
    dropped = np.ones(n_vis, dtype=bool)
    dropped[keep] = False
    drop_rows = vis_start + np.nonzero(dropped)[0]
    if prune["point"] == "pre_llm":
        present[:, drop_rows] = False
    elif prune["point"] == "in_llm":
        K = prune["layer"]
        assert 1 <= K < L
        present[K:, drop_rows] = False
        if prune.get("cache", "keep") == "compact":
            hide[:K, drop_rows] = True
    else:
        raise ValueError(prune["point"])
    return present, hide


def run_case(ref: QwenVLRef, input_ids, pixel_values, grid, prune=None, max_new_tokens=4):
    """Prefill + greedy decoding (full recompute every step, no EOS stop).
    Returns dict: position_ids [3, S], rope_delta, visual [N, D], last_logits, step_logits,
    generated_ids, step_margins."""
    cfg = ref.cfg
    ids = list(input_ids)
    pos3, delta = get_rope_index(ids, [grid], cfg)
    visual = ref.vision(pixel_values, grid)
    image_rows = [i for i, t in enumerate(ids) if t == cfg["image_token_id"]]
    assert len(image_rows) == visual.shape[0] and image_rows == list(range(image_rows[0], image_rows[0] + len(image_rows)))
    x = ref.embed(ids)
    x[image_rows] = visual
    S0 = len(ids)
    present0, hide0 = plan(S0, image_rows[0], len(image_rows), ref.L, prune)
    generated, step_logits, margins = [], [], []
    for t in range(max_new_tokens + 1):
        S = S0 + len(generated)
        xs = np.concatenate([x, ref.embed(generated)], 0) if generated else x
        dec_pos = np.arange(len(generated)) + S0 + delta
        p3 = np.concatenate([pos3, np.broadcast_to(dec_pos, (3, len(generated)))], 1)
        present = np.concatenate([present0, np.ones((ref.L, len(generated)), dtype=bool)], 1)
        allow = np.ones((ref.L, S, S), dtype=bool)
        for l in range(ref.L):
            allow[l, S0:, :S0] &= ~hide0[l][None, :]
        hidden = ref.llm_forward(xs, p3, present, allow)
        row = ref.logits(hidden[S - 1])
        if t == max_new_tokens:
            break
        step_logits.append(row)
        order = np.argsort(-row, kind="stable")
        margins.append(float(row[order[0]] - row[order[1]]))
        generated.append(int(order[0]))
    return {
        "position_ids": pos3, "rope_delta": delta, "visual": visual,
        "last_logits": step_logits[0], "step_logits": np.stack(step_logits),
        "generated_ids": generated, "step_margins": margins,
    }


# ------------------------------------------------------------------ tokenizer (byte-level BPE)


def bytes_to_unicode():
    """GPT-2's byte -> printable character map (ByteLevel pre-tokenizer / decoder)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


# Qwen2's split pattern with \p{L} = ASCII letters and \p{N} = ASCII digits: exact on ASCII text,
# which is all the fixtures use.
_SPLIT = re.compile(r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\na-zA-Z0-9]?[a-zA-Z]+|[0-9]| ?[^\sa-zA-Z0-9]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""")


def bpe_word(word: str, ranks: dict) -> list[str]:
    parts = list(word)
    while len(parts) > 1:
        pairs = [(ranks.get((a, b), None), i) for i, (a, b) in enumerate(zip(parts, parts[1:]))]
        pairs = [p for p in pairs if p[0] is not None]
        if not pairs:
            break
        _, i = min(pairs)
        parts = parts[:i] + [parts[i] + parts[i + 1]] + parts[i + 2:]
    return parts


def tokenize(text: str, tokenizer_json: dict) -> list[int]:
    """Added (special) tokens are matched first, the rest is split, byte-mapped and merged."""
    assert text.isascii()
    model = tokenizer_json["model"]
    vocab = model["vocab"]
    ranks = {tuple(m.split(" ") if isinstance(m, str) else m): i for i, m in enumerate(model["merges"])}
    added = sorted((t["content"] for t in tokenizer_json["added_tokens"]), key=len, reverse=True)
    added_ids = {t["content"]: t["id"] for t in tokenizer_json["added_tokens"]}
    b2u = bytes_to_unicode()
    ids: list[int] = []

    def plain(s):
        for piece in _SPLIT.findall(s):
            mapped = "".join(b2u[b] for b in piece.encode("utf-8"))
            ids.extend(vocab[p] for p in bpe_word(mapped, ranks))

    i, seg = 0, ""
    while i < len(text):
        hit = next((a for a in added if text.startswith(a, i)), None)
        if hit is None:
            seg += text[i]
            i += 1
            continue
        plain(seg)
        seg = ""
        ids.append(added_ids[hit])
        i += len(hit)
    plain(seg)
    return ids
