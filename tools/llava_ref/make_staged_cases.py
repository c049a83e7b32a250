#!/usr/bin/env python3
"""Reference outputs of staged (PyramidDrop-style) pruning on the tiny LLaVA fixture.

  python3 tools/llava_ref/make_staged_cases.py

Writes test/fixtures/tiny-llava/staged-reference.json: for fixed nested keep-sets at
several stage layers and both cache policies, the prompt's last logits and the greedy
tokens with the logits of each step, computed by the float64 reference (llava_np.py,
prune point "staged"), which shares no code with lib/. Deterministic.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
import llava_np as ln  # noqa: E402

REPO = os.path.dirname(os.path.dirname(HERE))
FIX = os.path.join(REPO, "test", "fixtures", "tiny-llava")
PROMPT = "What is the color of the shape?"
MAX_NEW = 4

S1 = [0, 2, 3, 5, 8, 9, 11, 14, 17, 20, 22, 23, 26, 29, 31, 33, 36, 38, 40, 43, 45, 48, 50, 51, 54, 57, 59, 60, 62, 63]
S2 = [2, 5, 9, 14, 20, 23, 29, 33, 38, 43, 48, 51, 57, 60, 63]
S3 = [5, 14, 23, 38, 51, 60]

CASES = [
    dict(name="staged_1_3_keep", stages=[(1, S1), (3, S2)], cache="keep"),
    dict(name="staged_1_3_compact", stages=[(1, S1), (3, S2)], cache="compact"),
    dict(name="staged_1_2_3_keep", stages=[(1, S1), (2, S2), (3, S3)], cache="keep"),
    dict(name="staged_1_2_3_compact", stages=[(1, S1), (2, S2), (3, S3)], cache="compact"),
]


def main():
    model = ln.LlavaRef(FIX)
    tok = ln.load_tokenizer(FIX)
    px = ln.pixels_from_seed(0, model.cfg)
    out = []
    for c in CASES:
        prune = {"point": "staged", "cache": c["cache"], "stages": [{"layer": l, "keep": k} for l, k in c["stages"]]}
        r = ln.run_case(model, dict(prompt=PROMPT, pixel_values=px, prune=prune, max_new_tokens=MAX_NEW), tok)
        out.append(dict(name=c["name"], input_ids=r["input_ids"], prune=prune,
                        last_logits=[float(np.float32(v)) for v in r["last_logits"]],
                        generated_ids=r["generated_ids"],
                        step_logits=[[float(np.float32(v)) for v in row] for row in r["step_logits"]],
                        margins=r["margins"]))
    with open(os.path.join(FIX, "staged-reference.json"), "w") as f:
        json.dump(dict(image="img0 of reference.json (pixels_from_seed 0)", prompt=PROMPT, cases=out), f)
        f.write("\n")


if __name__ == "__main__":
    main()
