"""A second, deliberately plain implementation of the same LLaVA forward, used only to
cross-check llava_np.py (self-checks in make_fixture.py):

- loops over patches and heads instead of reshapes/einsums,
- RoPE written with complex numbers (pairs (x_i, x_{i+Dh/2}) rotated by e^{i*pos*f_i}),
- GQA by explicit kv-head index h // (H / Hkv),
- generation with a real per-layer KV cache (prefill, in-LLM hidden-state gather,
  optional cache compaction, one-token decode steps) instead of presence masks +
  full recompute.

It reads the same canonical weight dict as llava_np (W[...] float64).
"""

from __future__ import annotations

import math

import numpy as np


def _ln(x, w, b, eps):
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        r = x[i]
        mu = sum(r) / r.size
        var = sum((r - mu) ** 2) / r.size
        out[i] = (r - mu) / math.sqrt(var + eps) * w + b
    return out


def _rms(x, w, eps):
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        r = x[i]
        out[i] = r / math.sqrt(float(np.dot(r, r)) / r.size + eps) * w
    return out


def _act(name, x):
    if name == "quick_gelu":
        return x * (1.0 / (1.0 + np.exp(-1.702 * x)))
    if name == "gelu":
        return np.vectorize(lambda v: 0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0))))(x)
    if name == "silu":
        return x * (1.0 / (1.0 + np.exp(-x)))
    raise ValueError(name)


def _softmax_row(s):
    m = max(s)
    e = np.exp(s - m)
    return e / e.sum()


def vision_features(W, cfg, px):
    v, top = cfg.vision, cfg.top
    P, Dv, nh = v["patch_size"], v["hidden_size"], v["num_attention_heads"]
    dh = Dv // nh
    g = v["image_size"] // P
    wc = W["vision.embeddings.patch_embedding.weight"]
    rows = [W["vision.embeddings.class_embedding"]]
    for gy in range(g):
        for gx in range(g):
            patch = px[:, gy * P:(gy + 1) * P, gx * P:(gx + 1) * P]
            rows.append(np.tensordot(wc, patch, axes=([1, 2, 3], [0, 1, 2])))
    x = np.stack(rows) + W["vision.embeddings.position_embedding.weight"]
    eps = v["layer_norm_eps"]
    x = _ln(x, W["vision.pre_layrnorm.weight"], W["vision.pre_layrnorm.bias"], eps)
    states = [x]
    for l in range(v["num_hidden_layers"]):
        p = f"vision.encoder.layers.{l}."
        h = _ln(x, W[p + "layer_norm1.weight"], W[p + "layer_norm1.bias"], eps)
        q = h @ W[p + "self_attn.q_proj.weight"].T + W[p + "self_attn.q_proj.bias"]
        k = h @ W[p + "self_attn.k_proj.weight"].T + W[p + "self_attn.k_proj.bias"]
        vv = h @ W[p + "self_attn.v_proj.weight"].T + W[p + "self_attn.v_proj.bias"]
        o = np.zeros_like(q)
        for hd in range(nh):
            sl = slice(hd * dh, (hd + 1) * dh)
            for i in range(x.shape[0]):
                a = _softmax_row(k[:, sl] @ q[i, sl] * (1.0 / math.sqrt(dh)))
                o[i, sl] = a @ vv[:, sl]
        x = x + o @ W[p + "self_attn.out_proj.weight"].T + W[p + "self_attn.out_proj.bias"]
        h = _ln(x, W[p + "layer_norm2.weight"], W[p + "layer_norm2.bias"], eps)
        m = _act(v["hidden_act"], h @ W[p + "mlp.fc1.weight"].T + W[p + "mlp.fc1.bias"])
        x = x + m @ W[p + "mlp.fc2.weight"].T + W[p + "mlp.fc2.bias"]
        states.append(x)
    f = states[top["vision_feature_layer"]]
    if top["vision_feature_select_strategy"] == "default":
        f = f[1:]
    y = _act(top["projector_hidden_act"], f @ W["projector.linear_1.weight"].T + W["projector.linear_1.bias"])
    y = y @ W["projector.linear_2.weight"].T + W["projector.linear_2.bias"]
    return f, y


def _rope_complex(x, pos, theta):
    """x [H, Dh] for one token at position pos."""
    dh = x.shape[-1]
    half = dh // 2
    inv = 1.0 / (theta ** (np.arange(0, dh, 2, dtype=np.float64) / dh))
    z = (x[:, :half] + 1j * x[:, half:]) * np.exp(1j * pos * inv)
    return np.concatenate([z.real, z.imag], axis=-1)


class KVLlama:
    """Llama with an explicit per-layer KV cache of (position-rotated K, V) rows."""

    def __init__(self, W, cfg, lm_head):
        self.W, self.t, self.lm_head = W, cfg.text, lm_head
        t = self.t
        self.L, self.H, self.Hkv = t["num_hidden_layers"], t["num_attention_heads"], t["num_key_value_heads"]
        self.dh = t["head_dim"]
        self.cache_k = [[] for _ in range(self.L)]  # list of [Hkv, dh] rows
        self.cache_v = [[] for _ in range(self.L)]

    def layer(self, l, x, pos):
        """Process tokens x [n, D] (in order, each appended to the cache after its own
        projection, so token i sees the cache plus tokens <= i)."""
        W, t = self.W, self.t
        p = f"text.layers.{l}."
        eps = t["rms_norm_eps"]
        H, Hkv, dh = self.H, self.Hkv, self.dh
        z = _rms(x, W[p + "input_layernorm.weight"], eps)
        q = z @ W[p + "self_attn.q_proj.weight"].T
        k = z @ W[p + "self_attn.k_proj.weight"].T
        v = z @ W[p + "self_attn.v_proj.weight"].T
        o = np.zeros((x.shape[0], H * dh))
        for i in range(x.shape[0]):
            qi = _rope_complex(q[i].reshape(H, dh), pos[i], t["rope_theta"])
            ki = _rope_complex(k[i].reshape(Hkv, dh), pos[i], t["rope_theta"])
            self.cache_k[l].append(ki)
            self.cache_v[l].append(v[i].reshape(Hkv, dh))
            K = np.stack(self.cache_k[l])
            V = np.stack(self.cache_v[l])
            for hd in range(H):
                g = hd // (H // Hkv)
                a = _softmax_row(K[:, g, :] @ qi[hd] / math.sqrt(dh))
                o[i, hd * dh:(hd + 1) * dh] = a @ V[:, g, :]
        x = x + o @ W[p + "self_attn.o_proj.weight"].T
        z = _rms(x, W[p + "post_attention_layernorm.weight"], eps)
        gte = _act(t["hidden_act"], z @ W[p + "mlp.gate_proj.weight"].T)
        up = z @ W[p + "mlp.up_proj.weight"].T
        return x + (gte * up) @ W[p + "mlp.down_proj.weight"].T

    def logits(self, x):
        return _rms(x, self.W["text.norm.weight"], self.t["rms_norm_eps"]) @ self.lm_head.T

    def compact(self, l, rows):
        self.cache_k[l] = [self.cache_k[l][r] for r in rows]
        self.cache_v[l] = [self.cache_v[l][r] for r in rows]


def generate(W, cfg, lm_head, ids, proj, prune, max_new_tokens, answer_ids=None):
    """Prefill + KV-cached greedy decode (or teacher forcing on answer_ids).
    Returns dict(last_logits, generated_ids, step_logits, answer_logprobs)."""
    img = cfg.top["image_token_index"]
    ti = ids.index(img)
    emb = W["text.embed_tokens.weight"]
    before, after = ids[:ti], ids[ti + 1:]
    nb, na, N = len(before), len(after), proj.shape[0]
    S_full = nb + N + na
    m = KVLlama(W, cfg, lm_head)
    L = m.L
    full_x = np.concatenate([emb[before], proj, emb[after]])
    full_pos = list(range(S_full))
    if prune is None:
        x, pos = full_x, full_pos
        for l in range(L):
            x = m.layer(l, x, pos)
        next_pos = S_full
    else:
        keep = list(prune["keep"])
        rows = list(range(nb)) + [nb + k for k in keep] + list(range(nb + N, S_full))
        kept_pos = [full_pos[r] for r in rows]
        if prune.get("renumber", False):
            kept_pos = list(range(len(rows)))
        next_pos = len(rows) if prune.get("renumber", False) else S_full
        if prune["point"] == "pre_llm":
            x = full_x[rows]
            for l in range(L):
                x = m.layer(l, x, kept_pos)
        else:
            Lk = prune["layer"]
            x = full_x
            for l in range(Lk):
                x = m.layer(l, x, full_pos)
            x = x[rows]
            for l in range(Lk, L):
                x = m.layer(l, x, kept_pos)
            if prune.get("cache", "keep") == "compact":
                for l in range(Lk):
                    m.compact(l, rows)
    last = m.logits(x[-1:])[0]
    out = dict(last_logits=last)

    def step(tok, p):
        y = emb[[tok]]
        for l in range(L):
            y = m.layer(l, y, [p])
        return m.logits(y)[0]

    if answer_ids is not None:
        lps, cur = [], last
        for j, a in enumerate(answer_ids):
            ls = cur - cur.max() - math.log(np.exp(cur - cur.max()).sum())
            lps.append(ls[a])
            cur = step(a, next_pos + j)
        out["answer_logprobs"] = np.array(lps)
        return out
    gen, steps, cur = [], [], last
    for j in range(max_new_tokens):
        steps.append(cur)
        tok = int(np.argmax(cur))
        gen.append(tok)
        if j + 1 < max_new_tokens:
            cur = step(tok, next_pos + j)
    out["generated_ids"] = gen
    out["step_logits"] = np.array(steps)
    return out
