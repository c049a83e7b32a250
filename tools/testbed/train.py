#!/usr/bin/env python3
"""Train the embedded default model (models/shapes-llava-tiny): a small LLaVA (CLIP-style
ViT + Linear-GELU-Linear projector + Llama) trained from scratch on the synthetic shapes VQA
set written by tools/testbed/export.ts, then export it in the Hugging Face LLaVA layout,
evaluate it, and write the conformance reference for grip-vlm's runtime.

  python3 tools/testbed/train.py --data tools/testbed/data --out models/shapes-llava-tiny --seed 0
  python3 tools/testbed/train.py ... --resume            # continue from tools/testbed/runs/seed-<s>/last.pt
  python3 tools/testbed/train.py ... --export-only       # export/eval/reference from the last checkpoint

Needs PyTorch (Debian python3-torch 1.13 works; if `python3` has no torch, the script re-runs
itself under /usr/bin/python3). Ctrl-C saves a checkpoint and exits. See tools/testbed/README.md.
"""

from __future__ import annotations

import os
import sys

sys.dont_write_bytecode = True
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # torch's own 2 threads drive the GEMMs
os.environ.setdefault("OMP_NUM_THREADS", "2")

try:
    import torch  # noqa: F401
except ImportError:  # e.g. a pyenv python without torch; Debian's python3-torch lives in /usr/bin/python3
    if os.path.exists("/usr/bin/python3") and os.path.realpath(sys.executable) != "/usr/bin/python3" \
            and not os.environ.get("GRIP_TRAIN_REEXEC"):
        os.environ["GRIP_TRAIN_REEXEC"] = "1"
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    raise

import argparse
import json
import math
import signal
import subprocess
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from alignment import AuxHeads, caption_accuracy, caption_loss, evidence_attention_loss, pruned_keys, DROP_POLICIES
from llava_torch import Llava, default_config, load_model, save_safetensors  # noqa: E402

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
KINDS = ["color_at", "shape_of_color", "count", "exists", "relation"]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def atomic_write_text(path, text):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# ----------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------


def pixel_table():
    """[3, 256] float32: the processor's value for each uint8 level and channel, computed as
    grip-vlm's processor does (rescale in float64 then to float32, normalise in float32)."""
    v = torch.arange(256, dtype=torch.float64)
    scaled = (v * (1.0 / 255.0)).to(torch.float32)
    mean = torch.tensor(CLIP_MEAN, dtype=torch.float32)[:, None]
    std = torch.tensor(CLIP_STD, dtype=torch.float32)[:, None]
    return (scaled[None] - mean) / std


class Split:
    def __init__(self, root, name, meta):
        d = os.path.join(root, name)
        s = meta["image_size"]
        raw = np.fromfile(os.path.join(d, "images.u8"), dtype=np.uint8)
        assert raw.size % (s * s * 3) == 0, "images.u8 size is not a multiple of one image"
        self.images = torch.from_numpy(raw.reshape(-1, s, s, 3))
        self.scenes = []
        if os.path.exists(os.path.join(d, "scenes.jsonl")):
            with open(os.path.join(d, "scenes.jsonl")) as f:
                self.scenes = [json.loads(line) for line in f if line.strip()]
        self.examples = []
        with open(os.path.join(d, "examples.jsonl")) as f:
            for line in f:
                if line.strip():
                    self.examples.append(json.loads(line))
        self.name = name
        self.image_token = meta["image_token_id"]

    def __len__(self):
        return len(self.examples)


class Pixels:
    def __init__(self):
        self.table = pixel_table()  # [3,256]

    def __call__(self, u8):
        """u8 [B,H,W,3] uint8 -> [B,3,H,W] float32 pixel values."""
        idx = u8.permute(0, 3, 1, 2).long()  # [B,3,H,W]
        out = torch.empty(idx.shape, dtype=torch.float32)
        for c in range(3):
            out[:, c] = self.table[c][idx[:, c]]
        return out


def epoch_order(split: Split, seed: int, epoch: int):
    """Example indices for one epoch: scenes in a seeded random order, each scene's questions
    together (in a seeded order), so a batch shares vision-tower work across questions."""
    g = torch.Generator().manual_seed(seed * 100003 + epoch)
    by_scene = {}
    for i, ex in enumerate(split.examples):
        by_scene.setdefault(ex["scene"], []).append(i)
    scenes = sorted(by_scene)
    order = []
    for si in torch.randperm(len(scenes), generator=g).tolist():
        qs = by_scene[scenes[si]]
        order.extend(qs[j] for j in torch.randperm(len(qs), generator=g).tolist())
    return order


def make_batch(split: Split, idxs, pixels: Pixels, n_img, with_answer: bool, eos: int, device="cpu"):
    exs = [split.examples[i] for i in idxs]
    scenes = sorted({ex["scene"] for ex in exs})
    slot = {s: k for k, s in enumerate(scenes)}
    px = pixels(split.images[torch.tensor(scenes, dtype=torch.long)])
    img_idx = [slot[ex["scene"]] for ex in exs]
    ids_list, rows, tgt = [], [], []
    for ex in exs:
        ids = list(ex["input_ids"])
        P = len(ids)
        last = P - 1 - 1 + n_img  # last prompt position after <image> -> N tokens
        if with_answer:
            ids_list.append(ids + [ex["answer_id"], eos])
            rows.append([last, last + 1])
            tgt.append([ex["answer_id"], eos])
        else:
            ids_list.append(ids)
            rows.append([last])
            tgt.append([ex["answer_id"]])
    return px.to(device), ids_list, torch.tensor(rows, device=device), torch.tensor(tgt, device=device), img_idx, exs


def make_conversations(split: Split, idxs, pixels: Pixels, n_img, eos: int, device="cpu"):
    """Training batch in LLaVA's multi-turn form: one sequence per scene holding all of its questions
    of `idxs` as turns, "USER: <image>\\n Q1 ASSISTANT: A1 </s> USER: Q2 ASSISTANT: A2 </s> ...", so
    one pass over the 144 visual tokens supervises every question of the scene. The first turn is
    exactly the single-question prompt used at inference (and the turn order is shuffled each epoch,
    so every question is sometimes first). Targets: each answer and the </s> after it; rows with no
    target are padded with -100."""
    exs = [split.examples[i] for i in idxs]
    scenes = sorted({ex["scene"] for ex in exs})  # the order make_batch uses: captions and probes rely on it
    px = pixels(split.images[torch.tensor(scenes, dtype=torch.long)])
    ids_list, rows, tgt = [], [], []
    for scene in scenes:
        turns = [ex for ex in exs if ex["scene"] == scene]
        ids, r, t = [], [], []
        for k, ex in enumerate(turns):
            q = list(ex["input_ids"])
            if k > 0:  # later turns: "USER: question ASSISTANT:" (no <s>, no image)
                img = q.index(split.image_token)
                q = q[1:img] + q[img + 1:]
            ids += q
            last = len(ids) - 1 + (n_img - 1)  # the image token expands to n_img rows (it lies in turn 1)
            r += [last, last + 1]
            t += [ex["answer_id"], eos]
            ids += [ex["answer_id"], eos]
        ids_list.append(ids)
        rows.append(r)
        tgt.append(t)
    width = max(len(r) for r in rows)
    rows = [r + [r[-1]] * (width - len(r)) for r in rows]
    tgt = [t + [-100] * (width - len(t)) for t in tgt]
    return px.to(device), ids_list, torch.tensor(rows, device=device), torch.tensor(tgt, device=device), list(range(len(scenes))), exs


@torch.no_grad()
def predict(model, split: Split, pixels, n_img, eos, idxs=None, batch=64, want_logits=False):
    model.eval()
    device = next(model.parameters()).device
    idxs = list(range(len(split))) if idxs is None else list(idxs)
    preds, logits = [], []
    for s in range(0, len(idxs), batch):
        chunk = idxs[s:s + batch]
        px, ids_list, rows, tgt, img_idx, _ = make_batch(split, chunk, pixels, n_img, False, eos, device)
        lg = model(px, ids_list, rows, img_idx)[:, 0]  # [B,V]
        preds.extend(lg.argmax(-1).tolist())
        if want_logits:
            logits.append(lg.cpu())
    model.train()
    return preds, (torch.cat(logits) if want_logits else None)


def pruned_reference(model, split: Split, pixels, n_img, eos, idxs, image_token):
    """Logits at the answer position with the visual tokens pruned at a decoder layer (key masking, as
    the token-drop augmentation trains), for the runtime's check of its pruned forward: example j
    keeps the answer's evidence patches and every (3 + j % 4)-th patch, pruned at layer 1 + j % 2."""
    model.eval()
    out = []
    with torch.no_grad():
        for j, i in enumerate(idxs):
            px, ids_list, rows, _tgt, img_idx, exs = make_batch(split, [i], pixels, n_img, False, eos)
            keep = sorted(set(exs[0]["evidence_patches"]) | set(range(0, n_img, 3 + j % 4)))
            x, _ = model.assemble(ids_list, model.image_tokens(px), img_idx)
            mask = torch.zeros(1, x.shape[1], dtype=torch.bool)
            p0 = ids_list[0].index(image_token)
            mask[0, p0:p0 + n_img] = True
            mask[0, [p0 + q for q in keep]] = False
            layer = 1 + j % 2
            lg = model.llm(x, rows, (layer, mask))[0, 0]
            out.append({"id": exs[0]["id"], "input_ids": exs[0]["input_ids"], "layer": layer, "keep": keep,
                        "logits": [f32s(v) for v in lg.tolist()]})
    model.train()
    return out


def accuracy_report(split: Split, preds, idxs=None):
    idxs = list(range(len(split))) if idxs is None else list(idxs)
    tot, ok = {}, {}
    for i, p in zip(idxs, preds):
        ex = split.examples[i]
        k = ex["kind"]
        tot[k] = tot.get(k, 0) + 1
        ok[k] = ok.get(k, 0) + int(p == ex["answer_id"])
    n = sum(tot.values())
    per = {k: {"accuracy": ok[k] / tot[k], "n": tot[k]} for k in sorted(tot, key=lambda k: (KINDS + [k]).index(k))}
    return {"accuracy": sum(ok.values()) / max(n, 1), "n": n, "per_kind": per}


def fmt_acc(rep):
    return "%.4f (%s)" % (rep["accuracy"], " ".join("%s %.3f" % (k, v["accuracy"]) for k, v in rep["per_kind"].items()))


# ----------------------------------------------------------------------------------------
# training
# ----------------------------------------------------------------------------------------


def lr_at(step, a):
    if step < a.warmup:
        return a.lr * (step + 1) / a.warmup
    p = min(1.0, (step - a.warmup) / max(1, a.steps - a.warmup))
    return a.min_lr + 0.5 * (a.lr - a.min_lr) * (1.0 + math.cos(math.pi * p))


def build_optimizer(model, a):
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        (decay if p.dim() >= 2 and "embed" not in n and "class_embedding" not in n else no_decay).append(p)
    return torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}],
                             lr=a.lr, betas=(0.9, a.beta2), eps=1e-8)


def save_ckpt(path, model, opt, step, extra):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                "config": model.cfg, **extra}, tmp)
    os.replace(tmp, path)


def model_config(meta, a):
    return default_config(len(meta["vocab"]), image_size=meta["image_size"], patch=meta["patch"],
                          v_hidden=a.v_hidden, v_layers=a.v_layers, v_heads=a.v_heads, v_mlp=a.v_mlp,
                          t_hidden=a.t_hidden, t_layers=a.t_layers, t_heads=a.t_heads, t_kv=a.t_kv,
                          t_mlp=a.t_mlp, image_token_index=meta["image_token_id"], bos=meta["bos"],
                          eos=meta["eos"], pad=meta["pad"])


def portable_args(a):
    """The arguments with paths relative to the repository root, so logs name no machine's directories."""
    out = {}
    for k, v in vars(a).items():
        out[k] = os.path.relpath(v, ROOT) if isinstance(v, str) and os.path.isabs(v) else v
    return out


def checkpoint_commands(st: dict, fallback: str) -> list:
    """The commands that trained checkpoint `st`, in order. A run stopped early (Ctrl-C, or a
    checkpoint from before --stop-at existed) gets "--stop-at <step>" so that the list reproduces it."""
    commands = list(st.get("commands") or [st.get("args", {}).get("command", fallback)])
    schedule = st.get("args", {}).get("steps")
    if schedule and st["step"] < schedule and "--stop-at" not in commands[-1]:
        commands[-1] += " --stop-at %d" % st["step"]
    return commands


def token_drop_settings(a):
    """(budgets, policies) of the token-drop augmentation from the arguments, checked (main() calls
    it before anything is written, so a bad flag leaves the logs and checkpoints alone)."""
    if not 0 <= a.token_drop <= 1:
        raise SystemExit("--token-drop: expected a share in [0, 1] but received %r" % a.token_drop)
    try:
        budgets = tuple(float(v) for v in a.token_drop_budgets.split(":"))
    except ValueError:
        budgets = ()
    if len(budgets) != 2 or not 0 < budgets[0] <= budgets[1] <= 1:
        raise SystemExit("--token-drop-budgets: expected LO:HI with 0 < LO <= HI <= 1 but received %r" % a.token_drop_budgets)
    policies = tuple(a.token_drop_policies.split(","))
    if any(p not in DROP_POLICIES for p in policies):
        raise SystemExit("--token-drop-policies: expected a comma-separated subset of %s but received %r"
                         % (",".join(DROP_POLICIES), a.token_drop_policies))
    if not 1 <= a.token_drop_layer < a.t_layers:
        raise SystemExit("--token-drop-layer: expected a decoder layer in [1, %d] but received %d"
                         % (a.t_layers - 1, a.token_drop_layer))
    if a.token_drop > 0 and a.conversations:
        raise SystemExit("--token-drop prunes single-question batches; it does not combine with --conversations")
    return budgets, policies


def autocast(a):
    """bfloat16 autocast for the training forward passes with --bf16 (a no-op context otherwise). On a CPU
    with AVX-512 BF16 (Zen 4, Sapphire Rapids) the GEMMs run ~3x faster than float32 through OpenBLAS; the
    weights, the optimiser state, the losses and every evaluation stay float32."""
    return torch.autocast(a.device.split(":")[0], dtype=torch.bfloat16, enabled=a.bf16)


def train(a, meta, train_split, val_split, pixels, n_img):
    torch.manual_seed(a.seed)
    cfg = model_config(meta, a)
    model = Llava(cfg).to(a.device)
    aux = AuxHeads(cfg["vision_config"]["hidden_size"]).to(a.device)
    opt = build_optimizer(model, a)
    opt.add_param_group({"params": list(aux.parameters()), "weight_decay": 0.0})
    run_dir = os.path.join(a.runs, "seed-%d" % a.seed)
    ckpt = os.path.join(run_dir, "last.pt")
    log_path = os.path.join(a.logs, "train-%d.jsonl" % a.seed)
    os.makedirs(a.logs, exist_ok=True)
    step, wall_before, seen = 0, 0.0, 0
    commands = [a.command]  # every invocation that trained this checkpoint, in order (stages, resumes)
    if a.resume and os.path.exists(ckpt):
        st = torch.load(ckpt, map_location=a.device)
        model.load_state_dict(st["model"])
        if "aux" in st:
            aux.load_state_dict(st["aux"])
        opt.load_state_dict(st["opt"])
        step, wall_before, seen = st["step"], st.get("wall_seconds", 0.0), st.get("examples_seen", 0)
        commands = checkpoint_commands(st, a.command) + [a.command]
        log("resumed from %s at step %d" % (ckpt, step))
    elif os.path.exists(log_path):
        os.replace(log_path, log_path + ".prev")
    logf = open(log_path, "a")

    def jlog(rec):
        logf.write(json.dumps(rec) + "\n")
        logf.flush()

    if step == 0:
        nparam = sum(p.numel() for p in model.parameters())
        jlog({"event": "start", "seed": a.seed, "params": nparam, "config": cfg, "args": portable_args(a),
              "torch": torch.__version__, "train_examples": len(train_split)})
        log("model: %d parameters (%.2f MB f32)" % (nparam, nparam * 4 / 1e6))
    else:  # a resumed run may change the losses (a second stage): record the arguments it runs with
        jlog({"event": "resume", "step": step, "args": portable_args(a), "torch": torch.__version__})

    stop = {"flag": False}

    def on_sigint(signum, frame):
        if stop["flag"]:
            raise KeyboardInterrupt
        stop["flag"] = True
        log("interrupt: saving a checkpoint after this step (Ctrl-C again to abort)")

    old = signal.signal(signal.SIGINT, on_sigint)
    spe = len(train_split) // a.batch  # steps per epoch (drop the ragged tail)
    eos = meta["eos"]
    t0 = time.time()
    win = {"loss": 0.0, "ok": 0, "n": 0, "t": time.time(), "ex": 0}
    order_cache = {}
    model.train()
    last_loss = float("nan")
    best_val = None
    if step == 0 and a.vision_pretrain > 0:
        # Stage 0: the vision tower learns to see (patch probes only), before the LLM can learn to ignore it.
        # Warm-up then cosine decay to a tenth, over --vision-pretrain steps of --vision-batch scenes.
        vparams = list(model.vision_tower.parameters()) + list(aux.parameters())
        vopt = torch.optim.AdamW(vparams, lr=a.vision_lr, weight_decay=0.01)
        g0 = torch.Generator().manual_seed(a.seed + 7)
        vwin = {"loss": 0.0, "c": 0.0, "s": 0.0, "n": 0}
        for s0 in range(a.vision_pretrain):
            w = min(1.0, (s0 + 1) / 50)
            cos_p = 0.1 + 0.45 * (1.0 + math.cos(math.pi * s0 / a.vision_pretrain))
            for g in vopt.param_groups:
                g["lr"] = a.vision_lr * w * cos_p
            scenes = torch.randint(len(train_split.scenes), (a.vision_batch,), generator=g0)
            with autocast(a):
                feats = model.vision_tower.vision_model.hidden_state(pixels(train_split.images[scenes]).to(a.device),
                                                                     model.cfg["vision_feature_layer"])[:, 1:]
                loss0, acc_c, acc_s = aux.loss(feats, [train_split.scenes[i] for i in scenes.tolist()])
            vopt.zero_grad(set_to_none=True)
            loss0.backward()
            torch.nn.utils.clip_grad_norm_(vparams, a.clip)
            vopt.step()
            vwin = {"loss": vwin["loss"] + loss0.item(), "c": vwin["c"] + acc_c, "s": vwin["s"] + acc_s, "n": vwin["n"] + 1}
            if (s0 + 1) % 50 == 0 or s0 + 1 == a.vision_pretrain:
                k = vwin["n"]
                log("vision pre-training %d/%d  probe loss %.3f  patch colour acc %.3f  object shape acc %.3f  %.0fs"
                    % (s0 + 1, a.vision_pretrain, vwin["loss"] / k, vwin["c"] / k, vwin["s"] / k, time.time() - t0))
                jlog({"vision_pretrain_step": s0 + 1, "probe_loss": vwin["loss"] / k, "colour_acc": vwin["c"] / k,
                      "object_shape_acc": vwin["s"] / k, "elapsed_s": time.time() - t0})
                vwin = {"loss": 0.0, "c": 0.0, "s": 0.0, "n": 0}
    attn_layers = []
    if a.attn_weight > 0:
        if a.conversations:
            raise SystemExit("--attn-weight supervises single-question batches; it does not combine with --conversations")
        n_layers = len(model.language_model.model.layers)
        try:
            chosen = [int(i) for i in a.attn_layers.split(",")]
        except ValueError:
            chosen = []
        if not chosen or any(not 0 <= i < n_layers for i in chosen):
            raise SystemExit("--attn-layers: expected comma-separated decoder layers in [0, %d] but received %r"
                             % (n_layers - 1, a.attn_layers))
        attn_layers = [model.language_model.model.layers[i] for i in chosen]
    drop_budgets, drop_policies = token_drop_settings(a)
    end = a.steps if a.stop_at is None else min(a.steps, a.stop_at)
    while step < end and not stop["flag"]:
        ep, off = divmod(step, spe)
        if ep not in order_cache:
            order_cache.clear()
            order_cache[ep] = epoch_order(train_split, a.seed, ep)
        idxs = order_cache[ep][off * a.batch:(off + 1) * a.batch]
        if a.conversations:
            px, ids_list, rows, tgt, img_idx, _exs = make_conversations(train_split, idxs, pixels, n_img, eos, a.device)
        else:
            px, ids_list, rows, tgt, img_idx, _exs = make_batch(train_split, idxs, pixels, n_img, True, eos, a.device)
        lr = lr_at(step, a)
        for g in opt.param_groups:
            g["lr"] = lr
        with autocast(a):
            feats = model.vision_tower.vision_model.hidden_state(px, model.cfg["vision_feature_layer"])[:, 1:]
            vis = model.multi_modal_projector(feats)
            x, _ = model.assemble(ids_list, vis, img_idx)
            for layer in attn_layers:
                layer.self_attn.capture_rows = rows[:, 0]
            pruned = None
            if a.token_drop > 0:
                gen = torch.Generator().manual_seed(a.seed * 1000003 + step)
                mask = pruned_keys(_exs, [train_split.scenes[ex["scene"]] for ex in _exs], aux, meta["image_token_id"],
                                   x.shape[1], n_img, a.token_drop, drop_budgets, gen, drop_policies)
                pruned = (a.token_drop_layer, mask.to(a.device))
            logits = model.llm(x, rows, pruned)  # [B,2,V]
            logits = logits.float()
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1), ignore_index=-100)
            if attn_layers:
                attn_loss, mass = evidence_attention_loss([l.self_attn.captured for l in attn_layers], _exs,
                                                          meta["image_token_id"])
                loss = loss + a.attn_weight * attn_loss
                win["mass"] = win.get("mass", 0.0) + mass
                win["mass_n"] = win.get("mass_n", 0) + 1
                for layer in attn_layers:
                    layer.self_attn.capture_rows, layer.self_attn.captured = None, None
            batch_scenes = [train_split.scenes[s] for s in sorted({ex["scene"] for ex in _exs})]
            if a.caption_weight > 0:
                # captions of the first --caption-scenes scenes (all when 0); vis rows follow sorted scene order
                # in both batch layouts
                nc = len(batch_scenes) if a.caption_scenes <= 0 else min(a.caption_scenes, len(batch_scenes))
                loss = loss + a.caption_weight * caption_loss(model, vis[:nc], batch_scenes[:nc], meta, n_img)
            if a.aux_weight > 0:
                aux_loss, _, acc_s = aux.loss(feats, batch_scenes)
                loss = loss + a.aux_weight * aux_loss
                win["shape"] = win.get("shape", 0.0) + acc_s
                win["k"] = win.get("k", 0) + 1
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), a.clip)
        opt.step()
        step += 1
        seen += len(idxs)
        last_loss = loss.item()
        win["loss"] += last_loss * len(idxs)
        answers = tgt[:, 0::2]  # answer targets sit at even columns in both layouts
        valid = answers != -100
        win["ok"] += int(((logits[:, 0::2].argmax(-1) == answers) & valid).sum())
        win["n"] += int(valid.sum())
        if step % a.log_every == 0 or step == end:
            now = time.time()
            exs = win["n"] / max(now - win["t"], 1e-9)
            el = wall_before + now - t0
            eta = (a.steps - step) * a.batch / max(exs, 1e-9)
            rec = {"step": step, "epoch": round(step / spe, 3), "loss": win["loss"] / win["n"],
                   "train_acc": win["ok"] / win["n"], "lr": lr, "grad_norm": float(gn),
                   "ex_per_s": exs, "elapsed_s": el}
            if win.get("k"):
                rec["object_shape_acc"] = win["shape"] / win["k"]
            if attn_layers:
                rec["evidence_attention_mass"] = win["mass"] / win["mass_n"]  # windows after a resume can be short
            jlog(rec)
            log("step %5d/%d  ep %.2f  loss %.4f  acc %.3f  lr %.2e  |g| %.2f  %.0f ex/s  %.0fs  ETA %.0fs"
                % (step, a.steps, rec["epoch"], rec["loss"], rec["train_acc"], lr, float(gn), exs, el, eta))
            win = {"loss": 0.0, "ok": 0, "n": 0, "t": time.time(), "ex": 0}
        if step % a.eval_every == 0 or step == end:
            te = time.time()
            preds, _ = predict(model, val_split, pixels, n_img, eos)
            rep = accuracy_report(val_split, preds)
            best_val = rep["accuracy"]
            jlog({"step": step, "validation": rep, "elapsed_s": wall_before + time.time() - t0})
            log("  validation @%d: %s  [%.1fs]" % (step, fmt_acc(rep), time.time() - te))
            win["t"] += time.time() - te
        if step % a.ckpt_every == 0 or step == end or stop["flag"]:
            save_ckpt(ckpt, model, opt, step, {"aux": aux.state_dict(), "wall_seconds": wall_before + time.time() - t0,
                                              "examples_seen": seen, "final_loss": last_loss,
                                              "args": portable_args(a), "commands": commands})
    wall = wall_before + time.time() - t0
    signal.signal(signal.SIGINT, old)
    jlog({"event": "stop" if stop["flag"] else "done", "step": step, "wall_seconds": wall,
          "examples_seen": seen, "final_loss": last_loss, "last_validation": best_val})
    logf.close()
    if stop["flag"]:
        log("stopped at step %d; checkpoint %s (continue with --resume)" % (step, ckpt))
        sys.exit(130)
    return model, {"steps": step, "wall_seconds": wall, "examples_seen": seen, "final_loss": last_loss,
                   "commands": commands}


# ----------------------------------------------------------------------------------------
# export, evaluation, reference, numpy cross-check
# ----------------------------------------------------------------------------------------


def f32s(x: float) -> float:
    """The shortest decimal that round-trips to this float32 (as a Python float)."""
    return float(str(np.float32(x)))


def numpy_crosscheck(model_dir, test_split, pixels, n_img, eos, idxs, torch_logits):
    """Runs tools/llava_ref/llava_np.py (float64) on the saved checkpoint; returns the max
    |diff| / max|logit| over the given examples and the max abs diff."""
    ref = os.path.join(ROOT, "tools", "llava_ref", "llava_np.py")
    worst_rel, worst_abs = 0.0, 0.0
    for i, lg in zip(idxs, torch_logits):
        ex = test_split.examples[i]
        px = pixels(test_split.images[ex["scene"]:ex["scene"] + 1])[0]
        case = {"input_ids": ex["input_ids"], "pixel_values": [f32s(v) for v in px.reshape(-1).tolist()],
                "max_new_tokens": 0}
        with tempfile.TemporaryDirectory() as d:
            cin, cout = os.path.join(d, "case.json"), os.path.join(d, "out.json")
            with open(cin, "w") as f:
                json.dump(case, f)
            subprocess.run([sys.executable, ref, "--model", model_dir, "--input", cin, "--out", cout],
                           check=True, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
            with open(cout) as f:
                r = json.load(f)
        a64 = np.asarray(r["last_logits"], dtype=np.float64)
        t32 = lg.double().numpy()
        d = np.abs(a64 - t32)
        worst_abs = max(worst_abs, float(d.max()))
        worst_rel = max(worst_rel, float(d.max() / np.abs(a64).max()))
        if int(a64.argmax()) != int(t32.argmax()):
            raise RuntimeError("numpy reference and torch disagree on the greedy answer for %s" % ex["id"])
    return worst_rel, worst_abs


def export_and_evaluate(model, a, meta, val_split, test_split, pixels, n_img, training_info):
    os.makedirs(a.out, exist_ok=True)
    atomic_write_text(os.path.join(a.out, "config.json"), json.dumps(model.cfg, indent=2) + "\n")
    save_safetensors(model.state_dict(), os.path.join(a.out, "model.safetensors"),
                     {"format": "pt", "generated_by": "tools/testbed/train.py", "seed": a.seed})
    log("wrote %s/config.json, model.safetensors (%.2f MB)"
        % (a.out, os.path.getsize(os.path.join(a.out, "model.safetensors")) / 1e6))
    m = load_model(a.out)  # everything below uses the saved weights
    eos = meta["eos"]
    te = time.time()
    vp, _ = predict(m, val_split, pixels, n_img, eos)
    vrep = accuracy_report(val_split, vp)
    tp, tlog = predict(m, test_split, pixels, n_img, eos, want_logits=True)
    trep = accuracy_report(test_split, tp)
    log("validation: %s" % fmt_acc(vrep))
    with torch.no_grad():  # captions of the validation scenes, teacher-forced, from the saved weights
        vis = m.image_tokens(pixels(val_split.images))
        captions = caption_accuracy(m, vis, val_split.scenes, meta, n_img)
    log("validation captions (teacher-forced, per word class): %s" % " ".join("%s %.3f" % kv for kv in captions.items()))
    log("test:       %s  [eval %.1fs]" % (fmt_acc(trep), time.time() - te))
    top2 = tlog.topk(2, dim=-1).values
    margins = (top2[:, 0] - top2[:, 1])
    # reference for the runtime's conformance test
    nref = min(64, len(test_split))
    ref = {
        "format": "grip-vlm shapes-testbed reference v1",
        "generated_by": "tools/testbed/train.py (PyTorch float32 forward of the saved weights)",
        "model": os.path.relpath(a.out, ROOT),
        "split": "test",
        "vocab_size": len(meta["vocab"]),
        "num_image_tokens": n_img,
        "tolerance": {"logits_rel": 1e-4},
        "logits_position": "last prompt position (the answer-prediction position)",
        "cases": [{"id": test_split.examples[i]["id"], "scene": test_split.examples[i]["scene"],
                   "input_ids": test_split.examples[i]["input_ids"],
                   "answer_id": test_split.examples[i]["answer_id"],
                   "logits": [f32s(v) for v in tlog[i].tolist()]} for i in range(nref)],
        "pruned_cases": pruned_reference(m, test_split, pixels, n_img, eos, range(min(16, len(test_split))),
                                         meta["image_token_id"]),
        "greedy": {"ids": [ex["id"] for ex in test_split.examples], "answer_ids": tp},
        "accuracy": trep["accuracy"],
        "min_top1_top2_margin": f32s(float(margins.min())),
    }
    ref_path = a.reference
    atomic_write_text(ref_path, json.dumps(ref, separators=(",", ":")) + "\n")
    log("wrote %s (%.1f KB); min top1-top2 margin on test %.4f"
        % (ref_path, os.path.getsize(ref_path) / 1e3, float(margins.min())))
    cross = None
    if a.crosscheck > 0:
        tc = time.time()
        k = min(a.crosscheck, len(test_split))
        rel, ab = numpy_crosscheck(a.out, test_split, pixels, n_img, eos, list(range(k)), tlog[:k])
        cross = {"examples": k, "max_rel_diff": rel, "max_abs_diff": ab,
                 "reference": "tools/llava_ref/llava_np.py float64",
                 "definition": "max |torch_f32 - numpy_f64| / max |numpy_f64| over last-prompt-position logits"}
        log("numpy cross-check (%d examples): max rel diff %.3g, max abs diff %.3g  [%.1fs]"
            % (k, rel, ab, time.time() - tc))
    ev = {"test": trep, "validation": vrep,
          "training": {**training_info, "seed": a.seed, "torch_version": torch.__version__},
          "test_min_top1_top2_margin": float(margins.min()),
          "numpy_crosscheck": cross,
          "validation_caption_accuracy": captions,
          "model_bytes": os.path.getsize(os.path.join(a.out, "model.safetensors"))}
    atomic_write_text(os.path.join(a.out, "eval.json"), json.dumps(ev, indent=2) + "\n")
    log("wrote %s/eval.json" % a.out)
    return ev


def main(argv=None):
    ap = argparse.ArgumentParser(description="train the shapes LLaVA testbed model")
    ap.add_argument("--data", default=os.path.join(HERE, "data"))
    ap.add_argument("--out", default=os.path.join(ROOT, "models", "shapes-llava-tiny"))
    ap.add_argument("--runs", default=os.path.join(HERE, "runs"))
    ap.add_argument("--logs", default=os.path.join(HERE, "logs"))
    ap.add_argument("--reference", default=os.path.join(ROOT, "test", "fixtures", "shapes-testbed-reference.json"),
                    help="where to write the runtime conformance reference")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1.5e-3)
    ap.add_argument("--min-lr", type=float, default=5e-5)
    ap.add_argument("--warmup", type=int, default=150)
    ap.add_argument("--weight-decay", type=float, default=0.05)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--beta2", type=float, default=0.98)
    ap.add_argument("--log-every", type=int, default=25)
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--ckpt-every", type=int, default=250)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--vision-pretrain", type=int, default=150, help="steps of probe training of the vision tower alone, first")
    ap.add_argument("--vision-batch", type=int, default=8, help="scenes per vision pre-training step")
    ap.add_argument("--vision-lr", type=float, default=3e-3, help="peak learning rate of vision pre-training")
    ap.add_argument("--device", default="cpu", help="torch device (cpu, or cuda to search recipes on a GPU; the shipped model trains on the CPU)")
    ap.add_argument("--caption-weight", type=float, default=1.0, help="weight of the caption loss (0: questions only)")
    ap.add_argument("--aux-weight", type=float, default=1.0, help="weight of the patch-probe loss during the main stage")
    ap.add_argument("--conversations", action="store_true",
                    help="train on one multi-turn sequence per scene (all its questions) instead of one per question")
    ap.add_argument("--caption-scenes", type=int, default=0, help="scenes per step that also get the caption loss (0: all)")
    ap.add_argument("--attn-weight", type=float, default=0.0,
                    help="weight of the evidence-attention loss at the answer position (0: off; see alignment.py)")
    ap.add_argument("--attn-layers", default="1", help="decoder layers (comma-separated) whose attention it supervises")
    ap.add_argument("--token-drop", type=float, default=0.0,
                    help="share of the examples trained with their visual tokens pruned at --token-drop-layer (alignment.pruned_keys)")
    ap.add_argument("--token-drop-layer", type=int, default=2, help="decoder layer the token-drop augmentation prunes at")
    ap.add_argument("--token-drop-policies", default=",".join(DROP_POLICIES),
                    help="keep-set policies of the token-drop augmentation (alignment.pruned_keys)")
    ap.add_argument("--token-drop-budgets", default="0.05:0.5", help="LO:HI range of the keep ratio of a pruned example")
    ap.add_argument("--bf16", action="store_true",
                    help="run the training forward passes under bfloat16 autocast (weights, optimiser and evaluation stay float32)")
    ap.add_argument("--stop-at", type=int, default=None,
                    help="stop after this many steps of a --steps schedule (reproduces a run that was stopped early)")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--export-only", action="store_true", help="skip training; use the last checkpoint")
    ap.add_argument("--crosscheck", type=int, default=4, help="test examples to cross-check with llava_np.py")
    ap.add_argument("--v-hidden", type=int, default=96)
    ap.add_argument("--v-layers", type=int, default=4)
    ap.add_argument("--v-heads", type=int, default=4)
    ap.add_argument("--v-mlp", type=int, default=384)
    ap.add_argument("--t-hidden", type=int, default=128)
    ap.add_argument("--t-layers", type=int, default=4)
    ap.add_argument("--t-heads", type=int, default=4)
    ap.add_argument("--t-kv", type=int, default=2)
    ap.add_argument("--t-mlp", type=int, default=384)
    a = ap.parse_args(argv)
    args = sys.argv[1:] if argv is None else argv
    a.command = "python3 tools/testbed/train.py " + " ".join(os.path.relpath(x, ROOT) if os.path.isabs(x) else x for x in args)
    token_drop_settings(a)
    torch.set_num_threads(a.threads)
    with open(os.path.join(a.data, "meta.json")) as f:
        meta = json.load(f)
    assert meta["image_size"] % meta["patch"] == 0
    n_img = (meta["image_size"] // meta["patch"]) ** 2
    t = time.time()
    train_split = Split(a.data, "train", meta)
    val_split = Split(a.data, "validation", meta)
    test_split = Split(a.data, "test", meta)
    log("data: train %d / validation %d / test %d questions, vocab %d, %d visual tokens  [%.1fs]"
        % (len(train_split), len(val_split), len(test_split), len(meta["vocab"]), n_img, time.time() - t))
    pixels = Pixels()
    if a.export_only:
        st = torch.load(os.path.join(a.runs, "seed-%d" % a.seed, "last.pt"))
        model = Llava(st["config"])
        model.load_state_dict(st["model"])
        info = {"steps": st["step"], "schedule_steps": st.get("args", {}).get("steps"), "wall_seconds": st.get("wall_seconds"),
                "examples_seen": st.get("examples_seen"), "final_loss": st.get("final_loss")}
        info["commands"] = checkpoint_commands(st, a.command)
    else:
        model, info = train(a, meta, train_split, val_split, pixels, n_img)
    export_and_evaluate(model, a, meta, val_split, test_split, pixels, n_img, info)


if __name__ == "__main__":
    main()
