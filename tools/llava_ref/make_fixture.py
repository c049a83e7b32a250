#!/usr/bin/env python3
"""Regenerate the tiny LLaVA fixture and its float64 reference outputs.

  python3 tools/llava_ref/make_fixture.py            # regenerate checkpoints + reference.json
  python3 tools/llava_ref/make_fixture.py --no-regen # reuse the checkpoints on disk

Writes (deterministically; two runs give byte-identical files):
  test/fixtures/tiny-llava/{config.json, model.safetensors, tokenizer.json,
                            tokenizer_config.json, preprocessor_config.json, reference.json}
  test/fixtures/tiny-llava-new-names/{config.json, model.safetensors, tokenizer.json,
                            tokenizer_config.json, preprocessor_config.json}
and runs the self-checks (see README.md); any failed check aborts without writing
reference.json.
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
import llava_np as ln  # noqa: E402
import make_tiny_llava as mt  # noqa: E402
import textbook_np as tb  # noqa: E402

REPO = mt.REPO
FIX = mt.DEFAULT_OUT
FIX_NEW = mt.DEFAULT_OUT_NEW

PROMPT0 = "What is the color of the shape?"
PROMPT1 = "How many shapes are in the picture, roughly?"  # "roughly" is out of vocabulary
ANSWER0 = "The shape is red."
MAX_NEW = 6
MARGIN_MIN = 0.1  # every greedy step's top1 - top2 logit gap must exceed this

# fixed keep-sets (indices into the 64 visual tokens, sorted); written into reference.json
KEEP16 = [0, 3, 7, 12, 18, 21, 27, 30, 36, 41, 44, 50, 53, 57, 60, 63]
KEEP24 = [1, 2, 5, 8, 9, 14, 16, 19, 23, 26, 28, 31, 33, 35, 38, 42, 45, 47, 49, 52, 55, 58, 61, 62]
ALL64 = list(range(64))


# ------------------------------------------------------------------ JSON writer


def _f32(v) -> str:
    x = np.float32(v)
    if not np.isfinite(x):
        raise ValueError("non-finite value in reference output")
    s = str(x)  # shortest repr that round-trips to this float32
    return s


def _f64(v) -> str:
    v = float(v)
    if not np.isfinite(v):
        raise ValueError("non-finite value in reference output")
    return repr(v)


class F32Array:
    """Marks an array to be written as float32 numbers ({shape, data} if ndim >= 2)."""

    def __init__(self, a):
        self.a = np.asarray(a, dtype=np.float64)


class F64List:
    def __init__(self, a):
        self.a = np.asarray(a, dtype=np.float64).ravel()


def _dump(o, ind=0) -> str:
    pad, pad1 = " " * ind, " " * (ind + 1)
    if isinstance(o, F32Array):
        if o.a.ndim <= 1:
            return "[" + ",".join(_f32(v) for v in o.a.ravel()) + "]"
        return ("{\"shape\":[" + ",".join(str(s) for s in o.a.shape) + "],\"data\":["
                + ",".join(_f32(v) for v in o.a.ravel()) + "]}")
    if isinstance(o, F64List):
        return "[" + ",".join(_f64(v) for v in o.a) + "]"
    if isinstance(o, dict):
        if not o:
            return "{}"
        items = [pad1 + json.dumps(k) + ": " + _dump(v, ind + 1) for k, v in o.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(o, (list, tuple)):
        if all(isinstance(v, (int, str, bool, type(None))) and not isinstance(v, float) for v in o):
            return json.dumps(list(o), ensure_ascii=False)
        return "[\n" + ",\n".join(pad1 + _dump(v, ind + 1) for v in o) + "\n" + pad + "]"
    if isinstance(o, float):
        return _f64(o)
    if isinstance(o, (np.integer,)):
        return str(int(o))
    return json.dumps(o, ensure_ascii=False)


# ------------------------------------------------------------------ cases


def case_specs():
    p_in = lambda keep, cache: {"point": "in_llm", "layer": 2, "keep": keep, "cache": cache,  # noqa
                                "renumber": False}
    p_pre = lambda keep, ren: {"point": "pre_llm", "keep": keep, "renumber": ren}  # noqa
    return [
        dict(name="a_unpruned", prompt=PROMPT0, image="img0", prune=None, full=True),
        dict(name="b_pre_llm_k16", prompt=PROMPT0, image="img0", prune=p_pre(KEEP16, False)),
        dict(name="c_pre_llm_k16_renumber", prompt=PROMPT0, image="img0", prune=p_pre(KEEP16, True)),
        dict(name="d_in_llm_l2_k24_keep", prompt=PROMPT0, image="img0", prune=p_in(KEEP24, "keep")),
        dict(name="e_in_llm_l2_k24_compact", prompt=PROMPT0, image="img0", prune=p_in(KEEP24, "compact")),
        dict(name="f_pre_llm_all64", prompt=PROMPT0, image="img0", prune=p_pre(ALL64, False),
             equals="a_unpruned"),
        dict(name="f_in_llm_l2_all64_keep", prompt=PROMPT0, image="img0", prune=p_in(ALL64, "keep"),
             equals="a_unpruned"),
        dict(name="f_in_llm_l2_all64_compact", prompt=PROMPT0, image="img0",
             prune=p_in(ALL64, "compact"), equals="a_unpruned"),
        dict(name="g_unpruned_prompt2", prompt=PROMPT1, image="img1", prune=None, full=True),
    ]


LOGLIK_SPECS = [
    ("h_loglik_unpruned", "a_unpruned"),
    ("h_loglik_pre_llm_k16", "b_pre_llm_k16"),
    ("h_loglik_in_llm_l2_k24_keep", "d_in_llm_l2_k24_keep"),
]


def compute(model_dir):
    """Run every case on the checkpoint in model_dir. Returns (raw results, images, tok)."""
    model = ln.LlavaRef(model_dir)
    tok = ln.load_tokenizer(model_dir)
    images = {"img0": ln.pixels_from_seed(0, model.cfg), "img1": ln.pixels_from_seed(1, model.cfg)}
    specs = case_specs()
    res = {}
    for s in specs:
        case = dict(prompt=s["prompt"], pixel_values=images[s["image"]], prune=s["prune"],
                    max_new_tokens=MAX_NEW)
        res[s["name"]] = ln.run_case(model, case, tok)
    answer_ids = ln.tokenize(ANSWER0, tok, add_bos=False)
    ll = {}
    for name, src in LOGLIK_SPECS:
        s = next(x for x in specs if x["name"] == src)
        case = dict(prompt=s["prompt"], pixel_values=images[s["image"]], prune=s["prune"],
                    answer_ids=answer_ids)
        ll[name] = ln.run_case(model, case, tok)
    return model, tok, images, specs, res, ll, answer_ids


# ------------------------------------------------------------------ self-checks


def check(cond, msg, checks, key, value=True):
    if not cond:
        raise SystemExit(f"SELF-CHECK FAILED: {msg}")
    checks[key] = value
    print(f"  ok  {msg}")


def self_checks(model, tok, images, specs, res, ll, answer_ids, res_new, ll_new):
    checks = {}
    cfg = model.cfg
    # 1. tokenizer emulation on hand-written expectations
    v = tok["model"]["vocab"]
    exp0 = [1, v["user"], v[":"], 4, v["what"], v["is"], v["the"], v["color"], v["of"], v["the"],
            v["shape"], v["?"], v["assistant"], v[":"]]
    check(res["a_unpruned"]["input_ids"] == exp0, "prompt 0 tokenises as expected", checks, "tokenizer_prompt0")
    exp1 = [1, v["user"], v[":"], 4, v["how"], v["many"], v["shapes"], v["are"], v["in"], v["the"],
            v["picture"], v[","], 3, v["?"], v["assistant"], v[":"]]
    check(res["g_unpruned_prompt2"]["input_ids"] == exp1, "prompt 1 tokenises as expected (with <unk>)",
          checks, "tokenizer_prompt1")

    # 2. all-64 keep-sets equal the unpruned run bitwise (float64)
    a = res["a_unpruned"]
    for s in specs:
        if s.get("equals"):
            r = res[s["name"]]
            same = (np.array_equal(r["last_logits"], a["last_logits"])
                    and np.array_equal(r["_full_logits"], a["_full_logits"])
                    and np.array_equal(r["step_logits"], a["step_logits"])
                    and r["generated_ids"] == a["generated_ids"])
            check(same, f"{s['name']} == a_unpruned bitwise (float64)", checks, f"bitwise_{s['name']}")

    # 3. textbook implementation (loops, complex RoPE, real KV cache) agrees
    W = model.W
    tol = 1e-9
    f_tb, p_tb = tb.vision_features(W, cfg, images["img0"].astype(np.float64))
    d = max(np.max(np.abs(f_tb - a["_feats"])), np.max(np.abs(p_tb - a["_proj"])))
    check(d < tol, f"textbook vision+projector agree (max abs diff {d:.2e})", checks, "textbook_vision_max_abs_diff", float(d))
    worst = 0.0
    for s in specs:
        r = res[s["name"]]
        img = images[s["image"]].astype(np.float64)
        _, proj = tb.vision_features(W, cfg, img) if s["image"] != "img0" else (None, p_tb)
        out = tb.generate(W, cfg, model.lm_head, r["input_ids"], proj, s["prune"], MAX_NEW)
        dd = max(np.max(np.abs(out["last_logits"] - r["last_logits"])),
                 np.max(np.abs(out["step_logits"] - r["step_logits"])))
        if out["generated_ids"] != r["generated_ids"] or not dd < tol:
            raise SystemExit(f"SELF-CHECK FAILED: textbook KV-cache run differs for {s['name']}: {dd}")
        worst = max(worst, dd)
    check(True, f"textbook KV-cache prefill+decode agrees on every case (max abs diff {worst:.2e})",
          checks, "textbook_llm_max_abs_diff", float(worst))
    worst = 0.0
    for name, src in LOGLIK_SPECS:
        s = next(x for x in specs if x["name"] == src)
        out = tb.generate(W, cfg, model.lm_head, res[src]["input_ids"], p_tb, s["prune"], 0,
                          answer_ids=answer_ids)
        worst = max(worst, float(np.max(np.abs(out["answer_logprobs"] - ll[name]["answer_token_logprobs"]))))
    check(worst < tol, f"textbook teacher-forced log-likelihoods agree ({worst:.2e})", checks,
          "textbook_loglik_max_abs_diff", worst)

    # 4. GQA vs the same model with K/V heads repeated by hand (num_key_value_heads = H)
    t = cfg.text
    rep = t["num_attention_heads"] // t["num_key_value_heads"]
    W2 = dict(W)
    for l in range(t["num_hidden_layers"]):
        for nm in ("k_proj", "v_proj"):
            key = f"text.layers.{l}.self_attn.{nm}.weight"
            w = W[key].reshape(t["num_key_value_heads"], t["head_dim"], -1)
            W2[key] = np.repeat(w, rep, axis=0).reshape(t["num_attention_heads"] * t["head_dim"], -1)
    with open(os.path.join(FIX, "config.json")) as f:
        c2 = json.load(f)
    c2["text_config"]["num_key_value_heads"] = t["num_attention_heads"]
    m2 = ln.LlavaRef(config=c2, weights=W2)
    for nm in ("a_unpruned", "d_in_llm_l2_k24_keep"):
        s = next(x for x in specs if x["name"] == nm)
        plan = ln.Plan(m2, res[nm]["input_ids"], a["_proj"], s["prune"])
        lg, _ = plan.run()
        dd = float(np.max(np.abs(lg - res[nm]["_full_logits"])))
        check(dd < 1e-11, f"GQA == repeated KV heads on {nm} ({dd:.2e})", checks, f"gqa_vs_mha_{nm}", dd)

    # 5. teacher forcing under 'keep' == prefill of prompt+answer (answer as trailing text)
    s = next(x for x in specs if x["name"] == "d_in_llm_l2_k24_keep")
    ids = res["d_in_llm_l2_k24_keep"]["input_ids"] + answer_ids
    plan = ln.Plan(model, ids, a["_proj"], s["prune"])
    lg, _ = plan.run()
    m = len(answer_ids)
    lp = ln.log_softmax(lg[-(m + 1):-1])[np.arange(m), answer_ids]
    dd = float(np.max(np.abs(lp - ll["h_loglik_in_llm_l2_k24_keep"]["answer_token_logprobs"])))
    check(dd < 1e-12, f"in-LLM 'keep' teacher forcing == prefill(prompt+answer) ({dd:.2e})", checks,
          "teacher_forcing_equals_prefill", dd)

    # 6. newer naming scheme gives identical results
    same = all(np.array_equal(res[k]["_full_logits"], res_new[k]["_full_logits"])
               and np.array_equal(res[k]["step_logits"], res_new[k]["step_logits"]) for k in res)
    same = same and all(np.array_equal(ll[k]["answer_token_logprobs"], ll_new[k]["answer_token_logprobs"]) for k in ll)
    check(same, "tiny-llava-new-names gives identical (bitwise) results", checks, "new_names_identical")

    # 7. fixture quality: non-degenerate greedy decoding, pruning changes outputs
    specials = {0, 1, 3, 4}
    for s in specs:
        r = res[s["name"]]
        if min(r["margins"]) < MARGIN_MIN:
            raise SystemExit(f"SELF-CHECK FAILED: {s['name']} greedy margin {min(r['margins'])} < {MARGIN_MIN}")
        if specials & set(r["generated_ids"]):
            raise SystemExit(f"SELF-CHECK FAILED: {s['name']} generated a special token {r['generated_ids']}")
    check(len(set(a["generated_ids"])) >= 3, f"a_unpruned generates >= 3 distinct tokens {a['generated_ids']}",
          checks, "distinct_tokens_a")
    check(True, f"every greedy step has top1-top2 margin >= {MARGIN_MIN}", checks, "min_margin",
          float(min(min(res[s["name"]]["margins"]) for s in specs)))
    for nm in ("b_pre_llm_k16", "c_pre_llm_k16_renumber", "d_in_llm_l2_k24_keep"):
        dd = float(np.max(np.abs(res[nm]["last_logits"] - a["last_logits"])))
        check(dd > 0.05, f"{nm} last logits differ from unpruned ({dd:.3f})", checks, f"differs_{nm}", dd)
    dd = float(np.max(np.abs(res["b_pre_llm_k16"]["last_logits"] - res["c_pre_llm_k16_renumber"]["last_logits"])))
    check(dd > 1e-3, f"renumbering changes the logits ({dd:.3f})", checks, "renumber_differs", dd)
    dd = float(np.max(np.abs(res["d_in_llm_l2_k24_keep"]["step_logits"][1:]
                             - res["e_in_llm_l2_k24_compact"]["step_logits"][1:])))
    check(dd > 1e-3, f"cache policies keep/compact differ at decode ({dd:.3f})", checks, "policy_differs", dd)
    check(np.array_equal(res["d_in_llm_l2_k24_keep"]["last_logits"], res["e_in_llm_l2_k24_compact"]["last_logits"]),
          "cache policy does not change the prefill's last logits", checks, "policy_same_prefill")
    return checks


# ------------------------------------------------------------------ output


def build_reference(model, tok, images, specs, res, ll, answer_ids, checks):
    cfg = model.cfg
    vocab = tok["model"]["vocab"]
    cases = []
    for s in specs:
        r = res[s["name"]]
        pr = s["prune"]
        c = {"name": s["name"], "prompt": s["prompt"],
             "text": ln.LLAVA15_TEMPLATE.format(prompt=s["prompt"]), "image": s["image"],
             "input_ids": r["input_ids"], "image_token_pos": r["input_ids"].index(cfg.top["image_token_index"])}
        if pr is None:
            c["prune"] = None
        else:
            c["prune"] = {k: pr[k] for k in ("point", "layer", "cache", "renumber") if k in pr}
            c["prune"]["keep_set"] = {id(KEEP16): "k16", id(KEEP24): "k24", id(ALL64): "all64"}[id(pr["keep"])]
            c["prune"]["keep"] = pr["keep"]
        present = r["present_last_layer"]
        c["seq_len"] = r["seq_len"]
        c["seq_len_after_prune"] = len(present)
        c["position_ids"] = r["position_ids"]
        c["position_ids_after_prune"] = [r["position_ids_last_layer"][i] for i in present]
        c["decode_position_start"] = r["decode_position_start"]
        if s.get("equals"):
            c["equals"] = s["equals"]
        c["last_logits"] = F32Array(r["last_logits"])
        if s.get("full"):
            c["full_logits"] = F32Array(r["_full_logits"])
        c["max_new_tokens"] = MAX_NEW
        c["generated_ids"] = r["generated_ids"]
        c["generated_text"] = [next(w for w, i in vocab.items() if i == t) for t in r["generated_ids"]]
        c["eos_step"] = r["eos_step"]
        c["generated_ids_until_eos"] = (r["generated_ids"] if r["eos_step"] is None
                                        else r["generated_ids"][: r["eos_step"]])
        c["step_margins"] = F64List(r["margins"])
        c["step_logits"] = F32Array(r["step_logits"])
        cases.append(c)
    lls = []
    for name, src in LOGLIK_SPECS:
        r = ll[name]
        lls.append({"name": name, "case": src, "answer": ANSWER0, "answer_ids": answer_ids,
                    "token_logprobs": F64List(r["answer_token_logprobs"]),
                    "sum": float(r["answer_logprob_sum"])})
    a = res["a_unpruned"]
    t = cfg.text
    return {
        "format": "grip-vlm llava-ref v1",
        "generated_by": "tools/llava_ref/make_fixture.py (float64 numpy reference, tools/llava_ref/llava_np.py)",
        "model": "test/fixtures/tiny-llava",
        "precision": ("forward computed in float64 from the stored F32/F16/BF16 weights and the float32 "
                      "pixel_values below; float arrays are the float32 rounding of the float64 result; "
                      "log-likelihoods are float64"),
        "chat_template": ln.LLAVA15_TEMPLATE,
        "num_image_tokens": int(a["_proj"].shape[0]),
        "vocab_size": int(t["vocab_size"]),
        "num_layers": int(t["num_hidden_layers"]),
        "image_token_index": int(cfg.top["image_token_index"]),
        "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0, "unk_token_id": 3,
        "images": {k: F32Array(v) for k, v in images.items()},
        "keep_sets": {"k16": KEEP16, "k24": KEEP24, "all64": ALL64},
        "cases": cases,
        "loglik": lls,
        "features": {"case": "a_unpruned",
                     "vision_features": F32Array(a["_feats"]),
                     "projected_features": F32Array(a["_proj"])},
        "checks": checks,
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description="regenerate test/fixtures/tiny-llava + reference.json")
    ap.add_argument("--no-regen", action="store_true", help="reuse the checkpoints on disk")
    a = ap.parse_args(argv)
    if not a.no_regen or not os.path.exists(os.path.join(FIX, "model.safetensors")):
        mt.write_checkpoint(FIX, new_names=False)
        print(f"wrote {os.path.relpath(FIX, REPO)}")
    if not a.no_regen or not os.path.exists(os.path.join(FIX_NEW, "model.safetensors")):
        mt.write_checkpoint(FIX_NEW, new_names=True)
        print(f"wrote {os.path.relpath(FIX_NEW, REPO)}")
    model, tok, images, specs, res, ll, answer_ids = compute(FIX)
    _, _, _, _, res_new, ll_new, _ = compute(FIX_NEW)
    assert model.scheme == "classic"
    print("self-checks:")
    checks = self_checks(model, tok, images, specs, res, ll, answer_ids, res_new, ll_new)
    ref = build_reference(model, tok, images, specs, res, ll, answer_ids, checks)
    path = os.path.join(FIX, "reference.json")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(_dump(ref) + "\n")
    os.replace(tmp, path)
    total = sum(os.path.getsize(os.path.join(d, f)) for d in (FIX, FIX_NEW) for f in os.listdir(d))
    print(f"wrote {os.path.relpath(path, REPO)}; fixture total {total} bytes")
    for c in ref["cases"]:
        print(f"  {c['name']:28s} S={c['seq_len']:3d} S'={c['seq_len_after_prune']:3d} "
              f"gen={c['generated_ids']} eos_step={c['eos_step']}")
    for l in ref["loglik"]:
        print(f"  {l['name']:28s} sum logp = {l['sum']:.6f}")


if __name__ == "__main__":
    main()
