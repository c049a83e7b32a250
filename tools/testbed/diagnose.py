#!/usr/bin/env python3
"""Diagnostics behind the testbed README's account of what the model has and has not learnt.

  python3 tools/testbed/diagnose.py --data tools/testbed/data --model models/shapes-llava-tiny
  python3 tools/testbed/diagnose.py ... --checkpoint tools/testbed/runs/seed-3/last.pt

Prints, for the given weights:
- `shape_of_color` on validation by the number of objects in the scene, and whether each wrong answer
  names another object's shape (the lookup found the wrong object) or a shape absent from the scene.
- `exists`: on the validation questions, and on 400 training ones, how often the model says "yes" and
  the range of its yes-minus-no logit gap, grouped by whether the asked colour / shape is in the scene
  (a model that ignores the image has one narrow gap range everywhere).
- linear probes (logistic regression fitted on 900 `shape_of_color` training questions, scored on 300
  others): the shape of the asked object read off the answer position's residual stream at the input
  of every decoder layer and after the last; and the shape of the object under each object patch read
  off the image tokens (70/30 split of the patches of 100 scenes). High patch accuracy with a low
  answer-position accuracy means the shape is in the image tokens but the lookup does not carry it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train as T  # noqa: E402  (re-executes under /usr/bin/python3 when torch is missing)
from alignment import SHAPES, patch_labels  # noqa: E402
from llava_torch import Llava, load_model  # noqa: E402


def exists_report(model, split, pixels, vocab, n_img, limit=None):
    yes, no = vocab.index("yes"), vocab.index("no")
    idx = [i for i, e in enumerate(split.examples) if e["kind"] == "exists"][:limit]
    _, logits = T.predict(model, split, pixels, n_img, 2, idx, want_logits=True)
    groups = {}
    for i, lg in zip(idx, logits):
        ex = split.examples[i]
        objects = split.scenes[ex["scene"]]["objects"]
        colour, shape = ex["question"].rstrip("?").split()[-2:]
        key = (any(o["color"] == colour for o in objects), any(o["shape"] == shape for o in objects), ex["answer"])
        groups.setdefault(key, []).append(float(lg[yes] - lg[no]))
    for (c, s, ans), gaps in sorted(groups.items()):
        said_yes = sum(g > 0 for g in gaps) / len(gaps)
        print("  colour in scene %-5s shape in scene %-5s answer %-3s  n %4d  says yes %.2f  yes-no gap %.2f .. %.2f"
              % (c, s, ans, len(gaps), said_yes, min(gaps), max(gaps)))


def shape_of_color_report(model, split, pixels, vocab, n_img):
    """`shape_of_color` on validation by the number of objects in the scene, and for the wrong answers
    whether the shape named belongs to another object of the scene (the lookup read the wrong object)
    or to none (the shape itself was misread)."""
    idx = [i for i, e in enumerate(split.examples) if e["kind"] == "shape_of_color"]
    preds, _ = T.predict(model, split, pixels, n_img, 2, idx)
    rows = {}
    for i, p in zip(idx, preds):
        ex = split.examples[i]
        shapes = [o["shape"] for o in split.scenes[ex["scene"]]["objects"]]
        r = rows.setdefault(len(shapes), [0, 0, 0])
        r[0 if p == ex["answer_id"] else 1 if vocab[p] in shapes else 2] += 1
    for n, (ok, other, absent) in sorted(rows.items()):
        print("  %d objects: n %3d  right %.2f  wrong, another object's shape %3d  wrong, a shape not in the scene %3d"
              % (n, ok + other + absent, ok / (ok + other + absent), other, absent))


def probe_accuracy(x, y, n_fit, steps=300):
    """Held-out accuracy of a logistic-regression probe fitted on the first n_fit rows."""
    x = (x - x[:n_fit].mean(0)) / (x[:n_fit].std(0) + 1e-5)
    classes = y.unique()
    t = torch.searchsorted(classes, y)
    w = torch.zeros(x.shape[1], len(classes), requires_grad=True)
    b = torch.zeros(len(classes), requires_grad=True)
    opt = torch.optim.Adam([w, b], lr=0.05)
    for _ in range(steps):
        opt.zero_grad()
        loss = F.cross_entropy(x[:n_fit] @ w + b, t[:n_fit]) + 1e-3 * (w ** 2).sum()
        loss.backward()
        opt.step()
    return ((x[n_fit:] @ w + b).argmax(-1) == t[n_fit:]).float().mean().item()


@torch.no_grad()
def residuals(model, split, pixels, idx, n_img):
    """Per decoder layer: the answer position's residual [Q, D] at its input (and after the last layer),
    and for the first 100 questions the image tokens [100*N, D] at its input."""
    answer, image = {}, {}
    for s in range(0, len(idx), 100):
        px, ids, rows, _, img_idx, _ = T.make_batch(split, idx[s:s + 100], pixels, n_img, False, 2)
        x, _ = model.assemble(ids, model.image_tokens(px), img_idx)
        cos, sin = model.rope_tables(x.shape[1], x.device)
        at = rows[:, 0]
        p0 = ids[0].index(split.image_token)
        layers = model.language_model.model.layers
        for i, layer in enumerate(layers):
            answer.setdefault(i, []).append(x[torch.arange(len(at)), at])
            if s == 0:
                image[i] = x[:, p0:p0 + n_img].reshape(-1, x.shape[-1])
            x = layer(x, cos, sin)
        answer.setdefault(len(layers), []).append(x[torch.arange(len(at)), at])
    return {k: torch.cat(v) for k, v in answer.items()}, image


def main():
    ap = argparse.ArgumentParser(description="diagnose the testbed model's content lookups")
    ap.add_argument("--data", default=os.path.join(T.HERE, "data"))
    ap.add_argument("--model", default=os.path.join(T.ROOT, "models", "shapes-llava-tiny"))
    ap.add_argument("--checkpoint", default=None, help="a training checkpoint (last.pt) instead of --model")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    with open(os.path.join(a.data, "meta.json")) as f:
        meta = json.load(f)
    n_img = (meta["image_size"] // meta["patch"]) ** 2
    if a.checkpoint:
        st = torch.load(a.checkpoint, map_location="cpu")
        model = Llava(st["config"])
        model.load_state_dict(st["model"])
    else:
        model = load_model(a.model)
    model.eval()
    pixels = T.Pixels()
    val = T.Split(a.data, "validation", meta)
    train = T.Split(a.data, "train", meta)
    print("exists, validation:")
    exists_report(model, val, pixels, meta["vocab"], n_img)
    print("exists, 400 training questions:")
    exists_report(model, train, pixels, meta["vocab"], n_img, 400)

    print("shape_of_color, validation:")
    shape_of_color_report(model, val, pixels, meta["vocab"], n_img)

    idx = [i for i, e in enumerate(train.examples) if e["kind"] == "shape_of_color"][:1200]
    answer, image = residuals(model, train, pixels, idx, n_img)
    y = torch.tensor([train.examples[i]["answer_id"] for i in idx])
    for layer, x in sorted(answer.items()):
        where = "input of layer %d" % layer if layer < len(answer) - 1 else "after the last layer"
        print("shape_of_color, answer position, %s: linear probe accuracy %.3f" % (where, probe_accuracy(x, y, 900)))
    labels = torch.stack([patch_labels(train.scenes[train.examples[i]["scene"]])[1] for i in idx[:100]]).flatten()
    on_object = labels != len(SHAPES)
    for layer, x in sorted(image.items()):
        xs, ys = x[on_object], labels[on_object]
        print("object patches, image tokens at the input of layer %d: linear shape probe accuracy %.3f (%d patches)"
              % (layer, probe_accuracy(xs, ys, int(len(ys) * 0.7)), len(ys)))


if __name__ == "__main__":
    main()
