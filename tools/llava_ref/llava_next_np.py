#!/usr/bin/env python3
"""Independent numpy reference for Hugging Face LlavaNextForConditionalGeneration (LLaVA-1.6).

Written from the transformers definitions (models/llava_next/image_processing_llava_next.py,
processing_llava_next.py, modeling_llava_next.py, models/mistral/modeling_mistral.py); it
shares no code with lib/. The CLIP tower, projector and Llama/Mistral decoder are llava_np's
(the same blocks as LLaVA-1.5); what is new here:

- anyres geometry: select_best_resolution, the resize-for-patching size, the pad offsets,
  the tile split (row-major), get_anyres_image_grid_shape, unpad_image, the token count of
  the processor (_get_number_of_features) and the layout the model's pack_image_features
  produces (which tile / patch each visual token comes from, where the newlines are);
- feature assembly: base image + tiles through CLIP, projector, unpad, image_newline per row;
- Mistral's sliding window: key j is visible to query i iff pos_i - pos_j < sliding_window
  (HF: kv_idx > q_idx - sliding_window). Unpruned, position ids equal sequence indices, so
  this is HF exactly; pruned, kept tokens keep their original ids and the window is measured
  in those ids (a pruned token does not widen what a kept token sees).

Pixel resampling (PIL bicubic) is not reproduced: model cases take the tiles' pixel_values.
"""

from __future__ import annotations

import math
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
from llava_np import LlavaRef  # noqa: E402
from safetensors_np import load_file  # noqa: E402


# ------------------------------------------------------------------ geometry (image processor)


def select_best_resolution(original_size, possible_resolutions):
    """original_size (height, width); possible_resolutions [(height, width)] -> (height, width).
    Largest effective (downscaled, capped at original) area; ties -> least wasted area; first wins."""
    original_height, original_width = original_size
    best_fit = None
    max_effective_resolution = 0
    min_wasted_resolution = float("inf")
    for height, width in possible_resolutions:
        scale = min(width / original_width, height / original_height)
        downscaled_width, downscaled_height = int(original_width * scale), int(original_height * scale)
        effective_resolution = min(downscaled_width * downscaled_height, original_width * original_height)
        wasted_resolution = (width * height) - effective_resolution
        if effective_resolution > max_effective_resolution or (
                effective_resolution == max_effective_resolution and wasted_resolution < min_wasted_resolution):
            max_effective_resolution = effective_resolution
            min_wasted_resolution = wasted_resolution
            best_fit = (height, width)
    return best_fit


def get_patch_output_size(original_size, target_resolution):
    """Size the image is resized to before padding (aspect kept, longer side fills the target)."""
    original_height, original_width = original_size
    target_height, target_width = target_resolution
    scale_w = target_width / original_width
    scale_h = target_height / original_height
    if scale_w < scale_h:
        new_width = target_width
        new_height = min(math.ceil(original_height * scale_w), target_height)
    else:
        new_height = target_height
        new_width = min(math.ceil(original_width * scale_h), target_width)
    return new_height, new_width


def pad_offsets(resized, target_resolution):
    """_pad_for_patching: (top, bottom, left, right) zero padding (on the uint8 image)."""
    new_height, new_width = resized
    target_height, target_width = target_resolution
    paste_x, r_x = divmod(target_width - new_width, 2)
    paste_y, r_y = divmod(target_height - new_height, 2)
    return paste_y, paste_y + r_y, paste_x, paste_x + r_x


def divide_to_patches(image_hw, patch_size):
    """Tiles of an [H, W] canvas, row-major: [(top, left)]."""
    height, width = image_hw
    return [(i, j) for i in range(0, height, patch_size) for j in range(0, width, patch_size)]


def get_anyres_image_grid_shape(image_size, grid_pinpoints, patch_size):
    height, width = select_best_resolution(image_size, grid_pinpoints)
    return height // patch_size, width // patch_size


def unpad_image_geometry(current_hw, original_size):
    """unpad_image on a [C, current_h, current_w] grid: (row0, row1, col0, col1) kept window."""
    original_height, original_width = original_size
    current_height, current_width = current_hw
    original_aspect_ratio = original_width / original_height
    current_aspect_ratio = current_width / current_height
    if original_aspect_ratio > current_aspect_ratio:
        scale_factor = current_width / original_width
        new_height = int(round(original_height * scale_factor, 7))
        padding = (current_height - new_height) // 2
        return padding, current_height - padding, 0, current_width
    scale_factor = current_height / original_height
    new_width = int(round(original_width * scale_factor, 7))
    padding = (current_width - new_width) // 2
    return 0, current_height, padding, current_width - padding


def number_of_features(orig_height, orig_width, crop, patch, grid_pinpoints, strategy):
    """LlavaNextProcessor._get_number_of_features, then -1 for strategy 'default' (the processor
    subtracts it when it expands <image>)."""
    hb, wb = select_best_resolution([orig_height, orig_width], grid_pinpoints)
    scale_height, scale_width = hb // crop, wb // crop
    patches_height = patches_width = crop // patch
    current_height = patches_height * scale_height
    current_width = patches_width * scale_width
    original_aspect_ratio = orig_width / orig_height
    current_aspect_ratio = current_width / current_height
    if original_aspect_ratio > current_aspect_ratio:
        new_height = int(round(orig_height * (current_width / orig_width), 7))
        padding = (current_height - new_height) // 2
        current_height -= padding * 2
    else:
        new_width = int(round(orig_width * (current_height / orig_height), 7))
        padding = (current_width - new_width) // 2
        current_width -= padding * 2
    unpadded, newline = current_height * current_width, current_height
    base = patches_height * patches_width + 1  # num_additional_image_tokens = 1 (CLS)
    n = unpadded + newline + base
    return n - 1 if strategy == "default" else n


def pack_features(tile_feats, image_size, grid_pinpoints, tile_px, newline):
    """modeling_llava_next.pack_image_features for one image.
    tile_feats [1 + n_tiles, n_per_tile, D] (row 0 = base image); newline [D] or None."""
    base, tiles = tile_feats[0], tile_feats[1:]
    n_per, D = tile_feats.shape[1], tile_feats.shape[2]
    side = int(round(math.sqrt(n_per)))
    gh, gw = get_anyres_image_grid_shape(image_size, grid_pinpoints, tile_px)
    if tiles.shape[0] * n_per != gh * gw * side * side or side * side != n_per:
        # transformers: "Image feature shape does not line up with the provided patch size."
        raise ValueError("The number of patches is not consistent with the image size.")
    f = tiles.reshape(gh, gw, side, side, D).transpose(4, 0, 2, 1, 3).reshape(D, gh * side, gw * side)
    r0, r1, c0, c1 = unpad_image_geometry((gh * side, gw * side), image_size)
    f = f[:, r0:r1, c0:c1]
    if newline is not None:
        nl = np.broadcast_to(np.asarray(newline)[:, None, None], (D, f.shape[1], 1))
        f = np.concatenate([f, nl], axis=2)
    f = f.reshape(D, -1).T
    return np.concatenate([base, f], axis=0)


def image_geometry(image_size, grid_pinpoints, crop, patch, strategy="default"):
    """Everything the processor and the model derive from an image's (height, width)."""
    best = select_best_resolution(image_size, grid_pinpoints)
    resized = get_patch_output_size(image_size, best)
    pads = pad_offsets(resized, best)
    tiles = divide_to_patches(best, crop)
    gh, gw = get_anyres_image_grid_shape(image_size, grid_pinpoints, crop)
    side = crop // patch
    r0, r1, c0, c1 = unpad_image_geometry((gh * side, gw * side), image_size)
    # the layout, from pack_features itself: feature = (tile index, patch index), newline = (-1, -1)
    n_per = side * side
    src = np.zeros((1 + len(tiles), n_per, 2))
    for t in range(1 + len(tiles)):
        src[t, :, 0] = t
        src[t, :, 1] = np.arange(n_per)
    packed = pack_features(src, image_size, grid_pinpoints, crop, np.array([-1.0, -1.0]))
    n_model = packed.shape[0]
    return dict(
        image_size=list(image_size), best_resolution=list(best), resized=list(resized),
        pad=list(pads), tiles=[list(t) for t in tiles], grid_shape=[gh, gw],
        unpad_window=[r0, r1, c0, c1],
        num_image_tokens=number_of_features(image_size[0], image_size[1], crop, patch,
                                            grid_pinpoints, strategy),
        num_image_tokens_model=n_model,
        token_tile=packed[:, 0].astype(int).tolist(), token_patch=packed[:, 1].astype(int).tolist(),
    )


# ------------------------------------------------------------------ model


class LlavaNextRef(LlavaRef):
    """LlavaRef with the LLaVA-NeXT image path and Mistral's sliding window."""

    def __init__(self, model_dir: str):
        super().__init__(model_dir)
        top = self.cfg.top
        if top.get("model_type") != "llava_next":
            raise ValueError(f"expected model_type llava_next, got {top.get('model_type')!r}")
        raw = load_file(os.path.join(model_dir, "model.safetensors"))
        nl = [k for k in raw if k in ("image_newline", "model.image_newline")]
        if len(nl) != 1:
            raise ValueError("expected exactly one image_newline tensor")
        self.newline = np.asarray(raw[nl[0]], dtype=np.float64)
        self.pinpoints = [tuple(p) for p in top["image_grid_pinpoints"]]
        t = self.cfg.text
        self.sliding_window = t.get("sliding_window") if t.get("model_type") == "mistral" else None

    def next_image_features(self, tiles_px, image_size):
        """tiles_px [1 + n_tiles, 3, S, S] (base image first, then tiles row-major).
        Returns (per-tile selected vision features, per-tile projected, packed visual tokens)."""
        feats, projs = [], []
        for px in tiles_px:
            f, p = self.image_features(px)
            feats.append(f)
            projs.append(p)
        projs = np.stack(projs)
        packed = pack_features(projs, image_size, self.pinpoints, self.cfg.vision["image_size"],
                               self.newline)
        return np.stack(feats), projs, packed

    def llm_forward(self, x0, pos, present, allow=None):
        W = self.sliding_window
        if W is None:
            return super().llm_forward(x0, pos, present, allow)
        L = self.cfg.text["num_hidden_layers"]
        S = x0.shape[0]
        p = np.asarray(pos, dtype=np.int64)
        if p.ndim == 1:
            p = np.broadcast_to(p, (L, S))
        win = (p[:, :, None] - p[:, None, :]) < int(W)
        allow = win if allow is None else (np.asarray(allow, dtype=bool) & win)
        return super().llm_forward(x0, pos, present, allow)


# ------------------------------------------------------------------ pixels (image processor)
# PIL's Image.resize for 8-bit RGB (Pillow src/libImaging/Resample.c): separable, horizontal
# pass first into an 8-bit image, then vertical; fixed-point weights of 22 fractional bits.

_PRECISION_BITS = 32 - 8 - 2


def _bicubic(x):
    a = -0.5
    x = abs(x)
    if x < 1.0:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    if x < 2.0:
        return (((x - 5) * x + 8) * x - 4) * a
    return 0.0


def _bilinear(x):
    x = abs(x)
    return 1.0 - x if x < 1.0 else 0.0


def _coeffs(in_size, out_size, resample):
    """precompute_coeffs + normalize_coeffs_8bpc: per output pixel (xmin, int weights)."""
    filt, support0 = (_bicubic, 2.0) if resample == 3 else (_bilinear, 1.0)
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = support0 * filterscale
    out = []
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size) - xmin
        k = [filt((x + xmin - center + 0.5) / filterscale) for x in range(xmax)]
        ww = sum(k)
        k = [w / ww if ww != 0 else w for w in k]
        k = [int(0.5 + w * (1 << _PRECISION_BITS)) if w >= 0 else int(-0.5 + w * (1 << _PRECISION_BITS))
             for w in k]
        out.append((xmin, np.array(k, dtype=np.int64)))
    return out


def _pass(img, out_size, axis, resample):
    """One pass along axis (1 = horizontal, 0 = vertical) of an HxWx3 uint8 image."""
    src = np.moveaxis(img, axis, 0).astype(np.int64)
    res = np.empty((out_size,) + src.shape[1:], dtype=np.uint8)
    for i, (xmin, k) in enumerate(_coeffs(src.shape[0], out_size, resample)):
        ss = (1 << (_PRECISION_BITS - 1)) + np.tensordot(k, src[xmin:xmin + len(k)], axes=(0, 0))
        res[i] = np.clip(ss >> _PRECISION_BITS, 0, 255)
    return np.moveaxis(res, 0, axis)


def pil_resize(img, height, width, resample=3):
    """PIL Image.resize((width, height), resample) of an HxWx3 uint8 array (no reducing_gap)."""
    out = img
    if width != img.shape[1]:
        out = _pass(out, width, 1, resample)
    if height != img.shape[0]:
        out = _pass(out, height, 0, resample)
    return out


def normalize_pixels(img, mean, std, rescale=1 / 255):
    """transformers rescale (float64 product, to float32) then normalize (float32) -> [3, H, W]."""
    x = (img.astype(np.float64) * rescale).astype(np.float32)
    x = (x - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return x.transpose(2, 0, 1).astype(np.float32)


def anyres_pixel_values(img, grid_pinpoints, crop, mean, std, resample=3):
    """LlavaNextImageProcessor.preprocess of one HxWx3 uint8 image (size.shortest_edge = crop):
    [1 + tiles, 3, crop, crop] float32, the base image (resized to crop x crop) first."""
    h, w = img.shape[:2]
    best = select_best_resolution((h, w), grid_pinpoints)
    rh, rw = get_patch_output_size((h, w), best)
    resized = pil_resize(img, rh, rw, resample)
    top, bottom, left, right = pad_offsets((rh, rw), best)
    canvas = np.pad(resized, ((top, bottom), (left, right), (0, 0)))
    tiles = [canvas[y:y + crop, x:x + crop] for y, x in divide_to_patches(best, crop)]
    base = pil_resize(img, crop, crop, resample)
    return np.stack([normalize_pixels(t, mean, std) for t in [base] + tiles])
