"""A small LLaVA (CLIP-style ViT -> Linear-GELU-Linear projector -> Llama) in plain PyTorch,
written here from the published semantics of Hugging Face's LlavaForConditionalGeneration
(no `transformers`). Parameter names are the HF "classic" checkpoint names, so
`state_dict()` saves straight into a checkpoint that grip-vlm's runtime (and
tools/llava_ref/llava_np.py) loads.

Semantics (identical to tools/llava_ref/README.md "Model semantics"):
- vision: conv patch embedding (no bias), class embedding, learned position embedding,
  pre_layrnorm, pre-norm layers (LayerNorm eps, biased q/k/v/out, fc1 -> quick_gelu -> fc2);
  features = hidden_states[-2] (output of the second-to-last layer), CLS dropped;
  post_layernorm exists but is unused (as in HF).
- projector: linear_2(gelu_erf(linear_1(f))).
- Llama: RMSNorm, RoPE (rotate_half, theta), GQA, SiLU-gated MLP, no biases, final norm,
  untied lm_head. The single <image> id is replaced by the N visual tokens; positions 0..S-1.
"""

from __future__ import annotations

import json
import math
import os
import struct

import torch
import torch.nn as nn
import torch.nn.functional as F


def default_config(vocab_size: int, *, image_size=96, patch=8, v_hidden=96, v_layers=4, v_heads=4,
                   v_mlp=384, t_hidden=128, t_layers=4, t_heads=4, t_kv=2, t_mlp=384,
                   image_token_index=4, bos=1, eos=2, pad=0) -> dict:
    return {
        "architectures": ["LlavaForConditionalGeneration"],
        "model_type": "llava",
        "image_token_index": image_token_index,
        "projector_hidden_act": "gelu",
        "vision_feature_layer": -2,
        "vision_feature_select_strategy": "default",
        "tie_word_embeddings": False,
        "vision_config": {
            "model_type": "clip_vision_model",
            "hidden_size": v_hidden,
            "num_hidden_layers": v_layers,
            "num_attention_heads": v_heads,
            "intermediate_size": v_mlp,
            "patch_size": patch,
            "image_size": image_size,
            "num_channels": 3,
            "hidden_act": "quick_gelu",
            "layer_norm_eps": 1e-05,
        },
        "text_config": {
            "model_type": "llama",
            "hidden_size": t_hidden,
            "num_hidden_layers": t_layers,
            "num_attention_heads": t_heads,
            "num_key_value_heads": t_kv,
            "intermediate_size": t_mlp,
            "rms_norm_eps": 1e-05,
            "rope_theta": 10000.0,
            "vocab_size": vocab_size,
            "max_position_embeddings": 512,
            "bos_token_id": bos,
            "eos_token_id": eos,
            "pad_token_id": pad,
            "tie_word_embeddings": False,
        },
    }


# ----------------------------------------------------------------------------------------
# vision tower (CLIP)
# ----------------------------------------------------------------------------------------


def full_precision(x):
    """Attention scores, RoPE, softmax and the weighted sum in float32 even under bfloat16 autocast
    (train.py --bf16): only the projections run in bfloat16. Without autocast this changes nothing."""
    return torch.autocast(x.device.type, enabled=False)


class ClipAttention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.h, self.dh = heads, d // heads
        self.q_proj = nn.Linear(d, d)
        self.k_proj = nn.Linear(d, d)
        self.v_proj = nn.Linear(d, d)
        self.out_proj = nn.Linear(d, d)

    def forward(self, x):
        B, n, d = x.shape
        q = self.q_proj(x).view(B, n, self.h, self.dh).transpose(1, 2)
        k = self.k_proj(x).view(B, n, self.h, self.dh).transpose(1, 2)
        v = self.v_proj(x).view(B, n, self.h, self.dh).transpose(1, 2)
        with full_precision(x):
            q, k, v = q.float(), k.float(), v.float()
            a = torch.softmax((q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(self.dh)), dim=-1)
            o = (a @ v).transpose(1, 2).reshape(B, n, d)
        return self.out_proj(o)


class ClipMLP(nn.Module):
    def __init__(self, d, m):
        super().__init__()
        self.fc1 = nn.Linear(d, m)
        self.fc2 = nn.Linear(m, d)

    def forward(self, x):
        h = self.fc1(x)
        return self.fc2(h * torch.sigmoid(1.702 * h))  # quick_gelu


class ClipLayer(nn.Module):
    def __init__(self, d, heads, m, eps):
        super().__init__()
        self.self_attn = ClipAttention(d, heads)
        self.layer_norm1 = nn.LayerNorm(d, eps=eps)
        self.mlp = ClipMLP(d, m)
        self.layer_norm2 = nn.LayerNorm(d, eps=eps)

    def forward(self, x):
        x = x + self.self_attn(self.layer_norm1(x))
        return x + self.mlp(self.layer_norm2(x))


class ClipEmbeddings(nn.Module):
    def __init__(self, d, patch, image_size, channels):
        super().__init__()
        self.patch_embedding = nn.Conv2d(channels, d, kernel_size=patch, stride=patch, bias=False)
        self.class_embedding = nn.Parameter(torch.randn(d) * 0.02)
        n = (image_size // patch) ** 2 + 1
        self.position_embedding = nn.Embedding(n, d)
        nn.init.normal_(self.position_embedding.weight, std=0.02)

    def forward(self, px):
        x = self.patch_embedding(px).flatten(2).transpose(1, 2)  # [B, N, d] row-major grid
        cls = self.class_embedding.expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1)
        return x + self.position_embedding.weight[None]


class ClipEncoder(nn.Module):
    def __init__(self, v):
        super().__init__()
        self.layers = nn.ModuleList(
            [ClipLayer(v["hidden_size"], v["num_attention_heads"], v["intermediate_size"],
                       v["layer_norm_eps"]) for _ in range(v["num_hidden_layers"])])


class ClipVisionModel(nn.Module):
    def __init__(self, v):
        super().__init__()
        d, eps = v["hidden_size"], v["layer_norm_eps"]
        self.embeddings = ClipEmbeddings(d, v["patch_size"], v["image_size"], v["num_channels"])
        self.pre_layrnorm = nn.LayerNorm(d, eps=eps)
        self.encoder = ClipEncoder(v)
        self.post_layernorm = nn.LayerNorm(d, eps=eps)  # unused, as in HF LLaVA

    def hidden_state(self, px, layer: int):
        """hidden_states[layer] (HF indexing: 0 = after pre_layrnorm, i = output of layer i-1);
        computes only the layers needed."""
        L = len(self.encoder.layers)
        idx = layer if layer >= 0 else L + 1 + layer
        x = self.pre_layrnorm(self.embeddings(px))
        for i in range(idx):
            x = self.encoder.layers[i](x)
        return x


class VisionTower(nn.Module):
    def __init__(self, v):
        super().__init__()
        self.vision_model = ClipVisionModel(v)


class Projector(nn.Module):
    def __init__(self, dv, dt):
        super().__init__()
        self.linear_1 = nn.Linear(dv, dt)
        self.linear_2 = nn.Linear(dt, dt)

    def forward(self, x):
        return self.linear_2(F.gelu(self.linear_1(x)))  # erf GELU


# ----------------------------------------------------------------------------------------
# Llama
# ----------------------------------------------------------------------------------------


class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


class LlamaAttention(nn.Module):
    def __init__(self, d, heads, kv, dh):
        super().__init__()
        self.h, self.kv, self.dh = heads, kv, dh
        self.q_proj = nn.Linear(d, heads * dh, bias=False)
        self.k_proj = nn.Linear(d, kv * dh, bias=False)
        self.v_proj = nn.Linear(d, kv * dh, bias=False)
        self.o_proj = nn.Linear(heads * dh, d, bias=False)
        # Training scaffolding (tools/testbed/alignment.py): when set to a LongTensor [B] of query
        # positions, forward() keeps those rows of the attention probabilities in `captured` [B,h,S].
        self.capture_rows = None
        self.captured = None

    def forward(self, x, cos, sin, rows=None, key_mask=None):
        """x [B,S,d]; cos/sin [S,dh]; rows: None (all queries) or LongTensor [B,R] of query
        positions (keys/values are always all S positions; causal); key_mask: None or BoolTensor
        [B,S], True for keys no query may attend to (tokens pruned before this layer)."""
        B, S, _ = x.shape
        if rows is None:
            xq, qcos, qsin = x, cos, sin
            qpos = torch.arange(S, device=x.device)[None].expand(B, S)
        else:
            xq = torch.gather(x, 1, rows[..., None].expand(-1, -1, x.shape[-1]))
            qcos, qsin = cos[rows][:, None], sin[rows][:, None]  # [B,1,R,dh]
            qpos = rows
        R = xq.shape[1]
        q = self.q_proj(xq).view(B, R, self.h, self.dh).transpose(1, 2)
        k = self.k_proj(x).view(B, S, self.kv, self.dh).transpose(1, 2)
        v = self.v_proj(x).view(B, S, self.kv, self.dh).transpose(1, 2)
        with full_precision(x):
            q, k, v = q.float(), k.float(), v.float()
            k = k * cos + rotate_half(k) * sin
            q = q * qcos + rotate_half(q) * qsin
            rep = self.h // self.kv
            k = k.repeat_interleave(rep, dim=1)  # query head j uses kv head j // rep
            v = v.repeat_interleave(rep, dim=1)
            s = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(self.dh))  # [B,h,R,S]
            mask = torch.arange(S, device=x.device)[None, None, :] > qpos[:, :, None]  # [B,R,S]
            s = s.masked_fill(mask[:, None], float("-inf"))
            if key_mask is not None:
                s = s.masked_fill(key_mask[:, None, None, :], float("-inf"))
            a = torch.softmax(s, dim=-1)
            if self.capture_rows is not None:
                # query index of each captured position: the position itself, or its column in `rows`
                qi = self.capture_rows if rows is None else (rows == self.capture_rows[:, None]).float().argmax(-1)
                self.captured = a[torch.arange(B, device=x.device), :, qi]  # [B,h,S]
            o = (a @ v).transpose(1, 2).reshape(B, R, self.h * self.dh)
        return self.o_proj(o), xq


class LlamaMLP(nn.Module):
    def __init__(self, d, m):
        super().__init__()
        self.gate_proj = nn.Linear(d, m, bias=False)
        self.up_proj = nn.Linear(d, m, bias=False)
        self.down_proj = nn.Linear(m, d, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class LlamaLayer(nn.Module):
    def __init__(self, t):
        super().__init__()
        d = t["hidden_size"]
        dh = t.get("head_dim") or d // t["num_attention_heads"]
        self.self_attn = LlamaAttention(d, t["num_attention_heads"], t["num_key_value_heads"], dh)
        self.mlp = LlamaMLP(d, t["intermediate_size"])
        self.input_layernorm = RMSNorm(d, t["rms_norm_eps"])
        self.post_attention_layernorm = RMSNorm(d, t["rms_norm_eps"])

    def forward(self, x, cos, sin, rows=None, key_mask=None):
        a, xq = self.self_attn(self.input_layernorm(x), cos, sin, rows, key_mask)
        if rows is not None:
            x = torch.gather(x, 1, rows[..., None].expand(-1, -1, x.shape[-1]))
        x = x + a
        return x + self.mlp(self.post_attention_layernorm(x))


class LlamaModel(nn.Module):
    def __init__(self, t):
        super().__init__()
        self.embed_tokens = nn.Embedding(t["vocab_size"], t["hidden_size"])
        self.layers = nn.ModuleList([LlamaLayer(t) for _ in range(t["num_hidden_layers"])])
        self.norm = RMSNorm(t["hidden_size"], t["rms_norm_eps"])


class LanguageModel(nn.Module):
    def __init__(self, t):
        super().__init__()
        self.model = LlamaModel(t)
        self.lm_head = nn.Linear(t["hidden_size"], t["vocab_size"], bias=False)


class Llava(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        self.cfg = cfg
        v, t = cfg["vision_config"], cfg["text_config"]
        self.vision_tower = VisionTower(v)
        self.multi_modal_projector = Projector(v["hidden_size"], t["hidden_size"])
        self.language_model = LanguageModel(t)
        self.dh = t.get("head_dim") or t["hidden_size"] // t["num_attention_heads"]
        self.theta = float(t["rope_theta"])
        self._init_weights()

    def _init_weights(self):
        g = 0.02
        for name, p in self.named_parameters():
            if name.endswith("class_embedding") or "position_embedding" in name:
                continue
            if p.dim() >= 2:
                nn.init.normal_(p, std=g)
            elif name.endswith(".bias"):
                nn.init.zeros_(p)
            else:  # norm weights
                nn.init.ones_(p)
        # GPT-2-style scaled init for residual outputs
        n = len(self.language_model.model.layers) + len(self.vision_tower.vision_model.encoder.layers)
        for name, p in self.named_parameters():
            if name.endswith(("o_proj.weight", "down_proj.weight", "out_proj.weight", "fc2.weight")):
                nn.init.normal_(p, std=g / math.sqrt(2 * n))

    # ---------------- pieces ----------------
    def image_tokens(self, px):
        """px [B,3,H,W] float32 (CLIP-normalised) -> [B,N,D] projected visual tokens."""
        layer = self.cfg["vision_feature_layer"]
        h = self.vision_tower.vision_model.hidden_state(px, layer)
        if self.cfg["vision_feature_select_strategy"] == "default":
            h = h[:, 1:]
        return self.multi_modal_projector(h)

    def rope_tables(self, S, device):
        inv = self.theta ** (-torch.arange(0, self.dh, 2, dtype=torch.float64, device=device) / self.dh)
        fr = torch.arange(S, dtype=torch.float64, device=device)[:, None] * inv[None]
        emb = torch.cat([fr, fr], dim=-1)
        return emb.cos().float(), emb.sin().float()

    def assemble(self, ids_list, vis, img_tok_idx=None):
        """ids_list: list of B lists of ints (each with exactly one image token);
        img_tok_idx: [B] which row of vis each example uses (default arange).
        Returns (x [B,S,D] right-padded with pad embeddings, lengths [B])."""
        emb = self.language_model.model.embed_tokens
        itok = self.cfg["image_token_index"]
        pad = self.cfg["text_config"].get("pad_token_id", 0) or 0
        N = vis.shape[1]
        lens = [len(ids) - 1 + N for ids in ids_list]
        S = max(lens)
        rows = []
        for b, ids in enumerate(ids_list):
            p = ids.index(itok)
            t = torch.tensor(ids[:p] + ids[p + 1:] + [pad] * (S - lens[b]), dtype=torch.long,
                             device=vis.device)
            e = emb(t)
            vi = b if img_tok_idx is None else int(img_tok_idx[b])
            rows.append(torch.cat([e[:p], vis[vi], e[p:]], dim=0))
        return torch.stack(rows), lens

    def llm(self, x, rows=None, pruned=None):
        """x [B,S,D] -> logits [B,R,V] at `rows` ([B,R] LongTensor) or [B,S,V] for all rows.
        pruned: None or (K, BoolTensor [B,S]): from decoder layer K on, no query attends to the
        masked positions, which is what pruning those tokens at layer K does (the kept tokens keep
        their position ids, as in the runtime)."""
        S = x.shape[1]
        cos, sin = self.rope_tables(S, x.device)
        layers = self.language_model.model.layers
        for i, layer in enumerate(layers):
            last = i == len(layers) - 1
            key_mask = pruned[1] if pruned is not None and i >= pruned[0] else None
            x = layer(x, cos, sin, rows if last else None, key_mask)
        x = self.language_model.model.norm(x)
        return self.language_model.lm_head(x)

    def forward(self, px, ids_list, rows, img_tok_idx=None):
        vis = self.image_tokens(px)
        x, _ = self.assemble(ids_list, vis, img_tok_idx)
        return self.llm(x, rows)


# ----------------------------------------------------------------------------------------
# safetensors (F32) without the safetensors package
# ----------------------------------------------------------------------------------------


def save_safetensors(state: dict, path: str, metadata: dict | None = None):
    header, blobs, off = {}, [], 0
    for name in sorted(state):
        t = state[name].detach().to(torch.float32).contiguous().cpu()
        data = t.numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    hdr = {}
    if metadata:
        hdr["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    hdr.update(header)
    hj = json.dumps(hdr, separators=(",", ":")).encode()
    hj += b" " * ((8 - (8 + len(hj)) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for b in blobs:
            f.write(b)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_safetensors(path: str) -> dict:
    import numpy as np
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        hdr = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in hdr.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", (name, info["dtype"])
        b, e = info["data_offsets"]
        arr = np.frombuffer(data[b:e], dtype="<f4").reshape(info["shape"]).copy()
        out[name] = torch.from_numpy(arr)
    return out


def load_model(model_dir: str) -> Llava:
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    m = Llava(cfg)
    sd = load_safetensors(os.path.join(model_dir, "model.safetensors"))
    missing, unexpected = m.load_state_dict(sd, strict=True), None
    return m.eval()
