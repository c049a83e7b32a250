#!/usr/bin/env python3
"""Tiny random LLaVA-NeXT (Mistral, sliding window 384) checkpoint + the reference outputs.

  python3 tools/llava_ref/make_llava_next_fixture.py   # -> test/fixtures/tiny-llava-next/

Writes config.json (LlavaNextForConditionalGeneration, the layout of
llava-hf/llava-v1.6-mistral-7b-hf scaled down: tile 32 px, patch 4, pinpoints that are
multiples of 32 with several aspect ratios), preprocessor_config.json
(LlavaNextImageProcessor), the tokenizer files of tiny-llava, model.safetensors (the tiny-llava
weights of make_tiny_llava.py, seed 211, classic names, plus image_newline F32), and
reference.json: the anyres geometry on 7 image sizes for this config and for LLaVA-1.6-7B's
(336 px, patch 14), the visual features of one image, and logits + greedy tokens unpruned,
pre-LLM and at layer 2 (both cache policies). Deterministic.
"""

from __future__ import annotations

import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
import make_tiny_llava as tiny  # noqa: E402
from llava_np import Plan, greedy_generate, tokenize  # noqa: E402
from llava_next_np import LlavaNextRef, anyres_pixel_values, image_geometry  # noqa: E402
from make_fixture import F32Array, _dump  # noqa: E402
from safetensors_np import save_file  # noqa: E402

REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
OUT = os.path.join(REPO, "test", "fixtures", "tiny-llava-next")
SEED = 211
TILE, PATCH = tiny.VISION["image_size"], tiny.VISION["patch_size"]
# (height, width) like HF; 1x2, 2x1, 2x2, 1x3, 3x1 tiles (llava-v1.6's five, scaled to 32 px)
PINPOINTS = [[32, 64], [64, 32], [64, 64], [32, 96], [96, 32]]
# The runtime has no sliding-window mask: it runs a Mistral decoder only while every position
# distance stays inside the window (prompt + new tokens <= sliding_window) and refuses longer
# requests. The fixture's window (384) holds its 227-token prompt + 32 new tokens; the reference
# still applies the mask, and checks that it changes nothing here and that a window of 48 would.
SLIDING_WINDOW = 384
SHORT_WINDOW = 48
# LLaVA-1.6-7B's processor geometry (llava-hf/llava-v1.6-*-hf): 336 px tiles, patch 14
REAL = dict(crop=336, patch=14, pinpoints=[[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]])
REAL_SIZES = [("square", 500, 500), ("wide", 300, 900), ("tall", 1000, 400), ("tiny", 10, 7),
              ("huge", 4000, 3000), ("odd", 333, 517), ("pinpoint", 336, 672)]
TINY_SIZES = [("square", 32, 32), ("wide", 20, 70), ("tall", 90, 30), ("tiny", 3, 5),
              ("huge", 500, 400), ("odd", 33, 51), ("pinpoint", 32, 64)]
TEMPLATE = "USER: <image>\n{prompt} ASSISTANT:"


def config_json():
    c = tiny.config_json()
    c["architectures"] = ["LlavaNextForConditionalGeneration"]
    c["model_type"] = "llava_next"
    c["image_grid_pinpoints"] = PINPOINTS
    c["use_image_newline_parameter"] = True
    t = c["text_config"]
    t["model_type"] = "mistral"
    t["architectures"] = ["MistralForCausalLM"]
    t["sliding_window"] = SLIDING_WINDOW
    t["head_dim"] = tiny.TEXT["hidden_size"] // tiny.TEXT["num_attention_heads"]
    return c


PREPROCESSOR = {
    "image_processor_type": "LlavaNextImageProcessor",
    "do_resize": True,
    "size": {"shortest_edge": TILE},
    "resample": 3,
    "do_center_crop": True,
    "crop_size": {"height": TILE, "width": TILE},
    "do_rescale": True,
    "rescale_factor": 0.00392156862745098,
    "do_normalize": True,
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "do_convert_rgb": True,
    "do_pad": True,
    "image_grid_pinpoints": PINPOINTS,
}


def write_checkpoint():
    os.makedirs(OUT, exist_ok=True)
    tensors = {classic: (arr, dt) for classic, _new, arr, dt in tiny.make_weights(SEED)}
    rng = np.random.default_rng(SEED + 1)
    D = tiny.TEXT["hidden_size"]
    # HF initialises image_newline as randn / sqrt(hidden); F32 like the vision tower here
    tensors["image_newline"] = ((rng.standard_normal(D) / np.sqrt(D)).astype(np.float32), "F32")
    save_file(tensors, os.path.join(OUT, "model.safetensors"),
              metadata={"format": "pt", "generator": "tools/llava_ref/make_llava_next_fixture.py",
                        "seed": str(SEED)})
    tiny._write_json(os.path.join(OUT, "config.json"), config_json())
    tiny._write_json(os.path.join(OUT, "tokenizer.json"), tiny.tokenizer_json())
    tiny._write_json(os.path.join(OUT, "tokenizer_config.json"), tiny.TOKENIZER_CONFIG)
    tiny._write_json(os.path.join(OUT, "preprocessor_config.json"), PREPROCESSOR)


# Processor cases (height, width): the pixel values of a smooth test image with a little noise.
# square, wide, tall and tiny only upsample or mix directions (the runtime resamples those with
# PIL's own arithmetic: bit for bit); odd and huge downsample both axes (the runtime uses sharp).
PIXEL_SIZES = [("square", 32, 32), ("wide", 20, 70), ("tall", 90, 30), ("tiny", 3, 5),
               ("odd", 33, 51), ("huge", 130, 100)]


def test_image(h, w, seed):
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    rng = np.random.default_rng(seed)
    chans = [127 + 100 * np.sin(x / 7.0 + c) * np.cos(y / 5.0 + 0.5 * c) for c in range(3)]
    img = np.stack(chans, axis=2) + rng.uniform(-8, 8, size=(h, w, 3))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def pixel_table():
    cases = []
    for i, (name, h, w) in enumerate(PIXEL_SIZES):
        img = test_image(h, w, 100 + i)
        px = anyres_pixel_values(img, PINPOINTS, TILE, PREPROCESSOR["image_mean"], PREPROCESSOR["image_std"],
                                 PREPROCESSOR["resample"])
        geo = image_geometry((h, w), PINPOINTS, TILE, PATCH)
        assert px.shape[0] == 1 + len(geo["tiles"])
        cases.append(dict(name=name, image_size=[h, w], grid_shape=geo["grid_shape"],
                          image=dict(shape=[h, w, 3], data=img.reshape(-1).tolist()),
                          pixel_values=F32Array(px)))
    return dict(format="grip-vlm llava-next pixels 1", generated_by="tools/llava_ref/make_llava_next_fixture.py",
                notes=("LlavaNextImageProcessor with PIL's resampler (llava_next_np.pil_resize): image is "
                       "HxWx3 uint8 RGB; pixel_values [1 + tiles, 3, 32, 32], the base image first"),
                cases=cases)


def geometry_table(sizes, crop, patch, pinpoints):
    return [dict(name=n, **image_geometry((h, w), pinpoints, crop, patch)) for n, h, w in sizes]


def main():
    write_checkpoint()
    model = LlavaNextRef(OUT)
    tok = __import__("json").load(open(os.path.join(OUT, "tokenizer.json")))
    prompt = "what is the color of the shape ?"
    ids = tokenize(TEMPLATE.format(prompt=prompt), tok)
    image_size = (20, 70)  # wide: 1x3 tiles
    geo = image_geometry(image_size, PINPOINTS, TILE, PATCH)
    rng = np.random.default_rng(7)
    tiles_px = rng.uniform(-1.8, 2.1, size=(1 + len(geo["tiles"]), 3, TILE, TILE)).astype(np.float32)
    feats, projs, visual = model.next_image_features(tiles_px.astype(np.float64), image_size)
    N = visual.shape[0]
    assert N == geo["num_image_tokens"] == geo["num_image_tokens_model"], (N, geo["num_image_tokens"])
    # keep-set seed 1: every greedy top-1/top-2 gap >= 0.1 in all cases (0.45 seen)
    keep = sorted(np.random.default_rng(1).choice(N, size=N // 4, replace=False).tolist())
    specs = [("unpruned", None),
             ("pre_llm", {"point": "pre_llm", "keep": keep}),
             ("in_llm_l2_keep", {"point": "in_llm", "layer": 2, "keep": keep, "cache": "keep"}),
             ("in_llm_l2_compact", {"point": "in_llm", "layer": 2, "keep": keep, "cache": "compact"})]
    cases = []
    for name, prune in specs:
        plan = Plan(model, ids, visual, prune)
        logits, _ = plan.run()
        g = greedy_generate(plan, 4, None)
        cases.append(dict(name=name, prune=prune and {k: v for k, v in prune.items() if k != "keep"},
                          seq_len=int(plan.S_prefill), position_ids=plan.pos[0].tolist(),
                          position_ids_last_layer=plan.pos[-1][plan.present[-1]].tolist(),
                          decode_position_start=int(plan.decode_start),
                          last_logits=F32Array(logits[-1]), generated_ids=g["generated_ids"],
                          step_margins=[round(m, 6) for m in g["margins"]],
                          step_logits=F32Array(g["step_logits"])))
    # inside the window the mask changes nothing (what the runtime relies on), a short one would
    sw = model.sliding_window
    model.sliding_window = None
    nowin, _ = Plan(model, ids, visual, None).run()
    model.sliding_window = SHORT_WINDOW
    short, _ = Plan(model, ids, visual, None).run()
    model.sliding_window = sw
    win_effect = float(np.max(np.abs(nowin[-1] - np.asarray(cases[0]["last_logits"].a))))
    short_effect = float(np.max(np.abs(short[-1] - np.asarray(cases[0]["last_logits"].a))))
    assert win_effect == 0.0, win_effect
    assert short_effect > 1e-3, short_effect
    assert cases[0]["decode_position_start"] + 4 <= sw, "the fixture must fit its window"
    assert min(min(c["step_margins"]) for c in cases) >= 0.1, "greedy margins too small"
    ref = {
        "format": "grip-vlm llava-next reference 1",
        "generated_by": "tools/llava_ref/make_llava_next_fixture.py",
        "notes": ("geometry as transformers LlavaNextImageProcessor/Processor/pack_image_features; "
                  "image sizes are (height, width); pad = (top, bottom, left, right) of the resized "
                  "image in the best-resolution canvas; tiles = (top, left) row-major; unpad_window = "
                  "(row0, row1, col0, col1) of the (grid_h*side) x (grid_w*side) feature grid; "
                  "token_tile/token_patch: source of each visual token in order (tile 0 = base image, "
                  "-1 = image_newline); forward in float64, arrays are float32 roundings"),
        "geometry_llava_v1_6": dict(crop=REAL["crop"], patch=REAL["patch"], pinpoints=REAL["pinpoints"],
                                    cases=geometry_table(REAL_SIZES, REAL["crop"], REAL["patch"],
                                                         REAL["pinpoints"])),
        "geometry_tiny": dict(crop=TILE, patch=PATCH, pinpoints=PINPOINTS,
                              cases=geometry_table(TINY_SIZES, TILE, PATCH, PINPOINTS)),
        "model": dict(image_size=list(image_size), template=TEMPLATE, prompt=prompt, input_ids=ids,
                      sliding_window=sw, sliding_window_effect=round(win_effect, 6),
                      short_window=SHORT_WINDOW, short_window_effect=round(short_effect, 6),
                      num_image_tokens=N, keep=keep,
                      pixel_values=F32Array(tiles_px),
                      vision_features=F32Array(feats), projected_tiles=F32Array(projs),
                      visual_tokens=F32Array(visual), cases=cases),
    }
    with open(os.path.join(OUT, "reference.json"), "w") as f:
        f.write(_dump(ref) + "\n")
    with open(os.path.join(OUT, "pixels.json"), "w") as f:
        f.write(_dump(pixel_table()) + "\n")
    print(f"wrote {OUT} (N={N}, window effect {win_effect:.4g}, window {SHORT_WINDOW}: {short_effect:.4g}, margins "
          f"{[c['step_margins'] for c in cases]})")


if __name__ == "__main__":
    main()
