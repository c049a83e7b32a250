"""Alignment objectives that get the tiny LLaVA past its text-only plateau.

Trained from scratch on question answering alone, the model settles on the
answer priors (about 30% on this set) and stops consulting the image: the
vision tower's features carry little yet, so the LLM learns to ignore them,
and then no gradient teaches them. Two objectives break the loop, in the
spirit of LLaVA's own two-stage recipe (align the projector on captions
before instruction tuning):

- patch supervision (`AuxHeads`): linear probes on the vision features at the
  feature layer predict, per patch, the colour and the shape of the object
  covering its centre (or background) and the grid cell it lies in. Run alone
  for the first steps (the tower learns to see), then alongside.
- captions: "USER: <image>\\n ASSISTANT:" followed by every object in
  row-major order as "<colour> <shape> <position words>" and </s>, so the LLM
  must read the image for every target token.

The probes are training scaffolding: they are not part of the saved LLaVA
checkpoint, which keeps exactly the HF architecture.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

COLORS = ["red", "green", "blue", "yellow", "purple"]
SHAPES = ["circle", "square", "triangle", "star"]
POSITIONS = ["top left", "top", "top right", "left", "center", "right", "bottom left", "bottom", "bottom right"]


def patch_labels(scene: dict, grid: int = 12, patch: int = 8, cells: int = 3):
    """(colour [N], shape [N], cell [N], object [N]) class indices per patch: the object covering the
    patch centre (background = len(COLORS) / len(SHAPES); object -1), and the grid cell of the patch."""
    n = grid * grid
    colour = torch.full((n,), len(COLORS), dtype=torch.long)
    shape = torch.full((n,), len(SHAPES), dtype=torch.long)
    obj = torch.full((n,), -1, dtype=torch.long)
    per_cell = grid // cells
    cell = torch.tensor([(p // grid // per_cell) * cells + (p % grid) // per_cell for p in range(n)])
    for k, o in enumerate(scene["objects"]):
        r2 = (o["diameterPx"] / 2) ** 2
        for p in range(n):
            cy, cx = (p // grid) * patch + patch / 2, (p % grid) * patch + patch / 2
            if (cx - o["centerX"]) ** 2 + (cy - o["centerY"]) ** 2 <= r2:
                colour[p] = COLORS.index(o["color"])
                shape[p] = SHAPES.index(o["shape"])
                obj[p] = k
    return colour, shape, cell, obj


class AuxHeads(nn.Module):
    """Patch probes (colour, shape, cell of each patch) and object probes (colour, shape and size of
    each object, from the mean of the features of the patches it covers). The object probes give the
    tower a direct signal for shape, which no single 8-pixel patch shows whole."""

    def __init__(self, dv: int, cells: int = 9):
        super().__init__()
        self.colour = nn.Linear(dv, len(COLORS) + 1)
        self.shape = nn.Linear(dv, len(SHAPES) + 1)
        self.cell = nn.Linear(dv, cells)
        self.object_colour = nn.Linear(dv, len(COLORS))
        self.object_shape = nn.Linear(dv, len(SHAPES))
        self.object_size = nn.Linear(dv, 2)
        self._labels = {}

    def labels(self, scenes: list[dict]):
        out = []
        for s in scenes:
            key = s["seed"]
            if key not in self._labels:
                self._labels[key] = patch_labels(s)
            out.append(self._labels[key])
        return out

    def loss(self, feats: torch.Tensor, scenes: list[dict]):
        """feats [B, N, Dv] (CLS dropped); returns (loss, foreground colour accuracy, object shape accuracy)."""
        dev = feats.device
        labels = self.labels(scenes)
        colour = torch.stack([l[0] for l in labels]).to(dev)
        shape = torch.stack([l[1] for l in labels]).to(dev)
        cell = torch.stack([l[2] for l in labels]).to(dev)
        pc, ps, pl = self.colour(feats), self.shape(feats), self.cell(feats)
        loss = (F.cross_entropy(pc.flatten(0, 1), colour.flatten()) + F.cross_entropy(ps.flatten(0, 1), shape.flatten())
                + F.cross_entropy(pl.flatten(0, 1), cell.flatten()))
        # object probes: each object's feature is the mean over the patches it covers
        rows, oc, os_, oz = [], [], [], []
        n = feats.shape[1]
        for b, (s, l) in enumerate(zip(scenes, labels)):
            for k, o in enumerate(s["objects"]):
                m = (l[3] == k).nonzero().flatten()
                if m.numel() == 0:
                    continue
                rows.append(m + b * n)
                oc.append(COLORS.index(o["color"]))
                os_.append(SHAPES.index(o["shape"]))
                oz.append(0 if o["size"] == "small" else 1)
        acc_s = 0.0
        if rows:
            flat = feats.reshape(-1, feats.shape[-1])
            pooled = torch.stack([flat[r.to(dev)].mean(0) for r in rows])
            oc_t, os_t, oz_t = (torch.tensor(v, device=dev) for v in (oc, os_, oz))
            ls = self.object_shape(pooled)
            loss = loss + F.cross_entropy(self.object_colour(pooled), oc_t) + F.cross_entropy(ls, os_t) \
                + F.cross_entropy(self.object_size(pooled), oz_t)
            acc_s = (ls.argmax(-1) == os_t).float().mean().item()
        fg = colour != len(COLORS)
        acc_c = (pc.argmax(-1)[fg] == colour[fg]).float().mean().item() if fg.any() else 0.0
        return loss, acc_c, acc_s


def caption_ids(scene: dict, vid: dict, eos: int) -> list[int]:
    words = []
    for o in sorted(scene["objects"], key=lambda o: (o["row"], o["col"])):
        words += [o["color"], o["shape"]] + POSITIONS[o["row"] * 3 + o["col"]].split()
    return [vid[w] for w in words] + [eos]


def caption_logits(model, vis: torch.Tensor, scenes: list[dict], meta: dict, n_img: int):
    """Teacher-forced captions of `scenes` (vis [B, N, D] their projected visual tokens): returns
    (logits [B, L, V] at each caption position, targets [B, L] with -100 past each caption's end)."""
    vid = {w: i for i, w in enumerate(meta["vocab"])}
    prompt = [meta["bos"], vid["user"], vid[":"], meta["image_token_id"], vid["assistant"], vid[":"]]
    caps = [caption_ids(s, vid, meta["eos"]) for s in scenes]
    L = max(len(c) for c in caps)
    ids = [prompt + c[:-1] for c in caps]
    start = len(prompt) - 2 + n_img  # the row of the last prompt token after the image expands
    rows = torch.tensor([[start + min(j, len(c) - 1) for j in range(L)] for c in caps], device=vis.device)
    target = torch.tensor([[c[j] if j < len(c) else -100 for j in range(L)] for c in caps], device=vis.device)
    x, _ = model.assemble(ids, vis)
    return model.llm(x, rows), target


def caption_loss(model, vis: torch.Tensor, scenes: list[dict], meta: dict, n_img: int):
    logits, target = caption_logits(model, vis, scenes, meta, n_img)
    return F.cross_entropy(logits.flatten(0, 1), target.flatten(), ignore_index=-100)


@torch.no_grad()
def caption_accuracy(model, vis: torch.Tensor, scenes: list[dict], meta: dict, n_img: int) -> dict:
    """Teacher-forced caption accuracy by word class: how well the LLM reads every object's colour,
    shape and position back in raster order (the image's content, without any lookup by content)."""
    logits, target = caption_logits(model, vis, scenes, meta, n_img)
    pred = logits.argmax(-1)
    vocab = meta["vocab"]
    classes = {"colour": set(COLORS), "shape": set(SHAPES), "position": {w for p in POSITIONS for w in p.split()}}
    out = {}
    for name, words in classes.items():
        ids = torch.tensor([vocab.index(w) for w in sorted(words)], device=target.device)
        mask = torch.isin(target, ids)
        out[name] = (pred[mask] == target[mask]).float().mean().item()
    return out


def evidence_attention_loss(attn: list[torch.Tensor], exs: list[dict], image_token: int):
    """Attention supervision at the answer position: `attn` holds, per supervised decoder layer, the
    attention probabilities [B, heads, S] of each example's last prompt position. For every example
    whose answer rests on objects that match the question (`evidence_patches`), the loss is -log of
    the attention mass the best head of the layer puts on those patches: some head must look where
    the answer is. A "no" to `exists` is left free: its evidence lists the objects sharing only the
    colour or the shape, and pulling attention onto those would teach the head to treat a partial
    match like a match, the very distinction the question asks for. This teaches the lookup by
    content (which object is red, is there a blue star) that answer supervision alone did not reach
    in our runs; like the probes it is scaffolding, and the saved model is plain LLaVA.
    Returns (loss, mean best-head evidence mass)."""
    dev = attn[0].device
    B, _, S = attn[0].shape
    mask = torch.zeros(B, S, device=dev)
    for b, ex in enumerate(exs):
        if ex["kind"] == "exists" and ex["answer"] == "no":
            continue
        p0 = ex["input_ids"].index(image_token)
        for q in ex["evidence_patches"]:
            mask[b, p0 + q] = 1.0
    has = mask.sum(-1) > 0
    if not bool(has.any()):
        return attn[0].sum() * 0.0, 0.0
    loss, mass_sum = 0.0, 0.0
    for a in attn:
        mass = (a * mask[:, None]).sum(-1).max(dim=1).values[has]  # [B'] best head
        loss = loss - torch.log(mass + 1e-6).mean()
        mass_sum += mass.mean().item()
    return loss / len(attn), mass_sum / len(attn)


DROP_POLICIES = ("random", "objects", "evidence")


def pruned_keys(exs: list[dict], scenes: list[dict], heads: "AuxHeads", image_token: int, S: int, n_img: int,
                rate: float, budgets: tuple[float, float], gen: torch.Generator,
                policies: tuple[str, ...] = DROP_POLICIES) -> torch.Tensor:
    """Token-drop augmentation: a BoolTensor [B, S], True at the visual tokens pruned from an example.
    A share `rate` of the examples lose their visual tokens outside a keep-set of ceil(rho * N)
    tokens, rho uniform in `budgets`; the keep-set follows one of `policies`, drawn with equal odds:
    "random", "objects" (the objects' patches first, then background) or "evidence" (the answer's
    evidence first, then the other objects, then background), each group in random order. The
    first two are what cheap pruners keep, the last what a good one keeps. Trained so, the model
    does not rest an answer on tokens a pruner drops (without it, the testbed model counted by the
    share of attention its matching patches get against the background, and overcounted once any
    pruner dropped background)."""
    mask = torch.zeros(len(exs), S, dtype=torch.bool)
    for b, (ex, scene) in enumerate(zip(exs, scenes)):
        if torch.rand((), generator=gen).item() >= rate:
            continue
        rho = budgets[0] + (budgets[1] - budgets[0]) * torch.rand((), generator=gen).item()
        k = max(1, math.ceil(rho * n_img - 1e-9))
        order = torch.randperm(n_img, generator=gen)
        policy = policies[int(torch.randint(len(policies), (), generator=gen))]
        if policy != "random":  # stable sort of the random order by group: evidence, objects, background
            obj = heads.labels([scene])[0][3]
            group = (obj < 0).long()
            if policy == "evidence":
                group = group + 1
                group[torch.tensor(ex["evidence_patches"], dtype=torch.long)] = 0
            order = order[torch.sort(group[order], stable=True).indices]
        p0 = ex["input_ids"].index(image_token)
        mask[b, p0:p0 + n_img] = True
        mask[b, p0 + order[:k]] = False
    return mask
