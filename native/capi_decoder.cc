// capi_decoder.cc — grip_decoder_layers: a range of Llama / Qwen2 decoder
// layers as one C call, built only from the public C ABI ops (so it computes
// bit for bit what the per-op runtime in lib/model/llama.ts computes, and
// every argument is checked by the op that uses it). What it saves is the
// cost between ops: ~14 binding calls per layer, each with its argument
// parsing, a thread hop when async and a thread-pool wake-up.
#include <cmath>
#include <cstdint>
#include <string>

#include "core/status.h"
#include "grip/grip.h"

namespace {

constexpr size_t kAlign = 64;  // each workspace buffer starts on a cache line

size_t Aligned(size_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }

// The workspace's buffers, in floats per new token: norm, q, k, v, attention
// output, residual, gate, up.
void BufferWidths(int64_t hidden, const grip_decoder_options& o, int64_t widths[8]) {
  const int64_t q = (int64_t)o.num_heads * o.head_dim, kv = (int64_t)o.num_kv_heads * o.head_dim;
  const int64_t w[8] = {hidden, q, kv, kv, q, hidden, o.intermediate_size, o.intermediate_size};
  for (int i = 0; i < 8; ++i) widths[i] = w[i];
}

grip_tensor View(void* data, grip_device device, std::initializer_list<int64_t> shape) {
  grip_tensor t{};
  t.data = data;
  t.dtype = GRIP_F32;
  t.device = device;
  t.ndim = (int32_t)shape.size();
  int i = 0;
  for (int64_t e : shape) t.shape[i++] = e;
  return t;
}

grip_tensor Reshaped(const grip_tensor& t, std::initializer_list<int64_t> shape) {
  return View(t.data, t.device, shape);
}

}  // namespace

size_t grip_decoder_workspace_bytes(int64_t rows, int64_t hidden, const grip_decoder_options* options) {
  if (options == nullptr || rows < 0 || hidden < 0) return 0;
  int64_t widths[8];
  BufferWidths(hidden, *options, widths);
  size_t total = 0;
  for (int64_t w : widths) total += Aligned((size_t)(rows * (w < 0 ? 0 : w)) * sizeof(float));
  return total;
}

grip_status grip_decoder_layers(grip_tensor* x, const grip_tensor* positions,
                                const grip_decoder_layer* layers, int32_t num_layers,
                                const grip_decoder_options* options, void* workspace,
                                size_t workspace_bytes) {
  using grip::Error;
  if (x == nullptr || positions == nullptr || options == nullptr || (layers == nullptr && num_layers > 0))
    return grip::ReportStatus(Error(GRIP_ERR_RANGE, "x, positions, layers and options", "decoder layers", "NULL"));
  const grip_decoder_options& o = *options;
  if (x->ndim != 3 || x->dtype != GRIP_F32)
    return grip::ReportStatus(Error(GRIP_ERR_SHAPE, "an f32 tensor [B,T,D]", "x",
                                    std::to_string(x->ndim) + " dimensions"));
  if (num_layers < 0 || o.num_heads <= 0 || o.num_kv_heads <= 0 || o.head_dim <= 0 || o.intermediate_size <= 0)
    return grip::ReportStatus(Error(GRIP_ERR_RANGE, "num_layers >= 0 and positive heads, head dim and intermediate size",
                                    "decoder options", "another value"));
  const int64_t B = x->shape[0], T = x->shape[1], D = x->shape[2], BT = B * T;
  if (B > 0 && num_layers > 0 && (o.tokens == nullptr || o.lengths == nullptr))
    return grip::ReportStatus(Error(GRIP_ERR_RANGE, "tokens and lengths arrays", "decoder options", "NULL"));
  const size_t need = grip_decoder_workspace_bytes(BT, D, options);
  if (workspace == nullptr || workspace_bytes < need)
    return grip::ReportStatus(Error(GRIP_ERR_SHAPE, "a workspace of at least " + std::to_string(need) + " bytes",
                                    "decoder layers", std::to_string(workspace_bytes)));
  const int64_t Hq = o.num_heads, Hkv = o.num_kv_heads, Dh = o.head_dim;
  const grip_device dev = x->device;
  int64_t widths[8];
  BufferWidths(D, o, widths);
  grip_tensor buf[8];
  char* at = static_cast<char*>(workspace);
  for (int i = 0; i < 8; ++i) {
    buf[i] = View(at, dev, {BT, widths[i]});
    at += Aligned((size_t)(BT * widths[i]) * sizeof(float));
  }
  grip_tensor &norm = buf[0], &q = buf[1], &k = buf[2], &v = buf[3], &attn = buf[4], &residual = buf[5],
              &gate = buf[6], &up = buf[7];
  grip_tensor x2d = Reshaped(*x, {BT, D});
  grip_tensor q4 = Reshaped(q, {B, T, Hq, Dh}), k4 = Reshaped(k, {B, T, Hkv, Dh}), v4 = Reshaped(v, {B, T, Hkv, Dh});
  grip_tensor attn4 = Reshaped(attn, {B, T, Hq, Dh}), attn2 = Reshaped(attn, {BT, Hq * Dh});
  grip_attention_options ao{};
  ao.causal = 1;
  ao.scale = (float)(1.0 / std::sqrt((double)Dh));
  ao.q_len = o.tokens;
  // Stops at the first failing op; its grip_last_error() stands.
#define GRIP_STEP(call)                  \
  do {                                   \
    const grip_status s_ = (call);       \
    if (s_ != GRIP_OK) return s_;        \
  } while (0)
  for (int32_t l = 0; l < num_layers; ++l) {
    const grip_decoder_layer& L = layers[l];
    auto bias = [](const grip_tensor& t) { return t.data != nullptr ? &t : nullptr; };
    int32_t* start = o.lengths + (int64_t)l * B;
    GRIP_STEP(grip_rms_norm(&x2d, &L.input_norm, o.rms_norm_eps, &norm));
    GRIP_STEP(grip_linear(&norm, &L.q, bias(L.q_bias), &q));
    GRIP_STEP(grip_linear(&norm, &L.k, bias(L.k_bias), &k));
    GRIP_STEP(grip_linear(&norm, &L.v, bias(L.v_bias), &v));
    GRIP_STEP(grip_rope(&q4, positions, o.rope_theta, &q4));
    GRIP_STEP(grip_rope(&k4, positions, o.rope_theta, &k4));
    grip_tensor kc = L.k_cache, vc = L.v_cache;
    GRIP_STEP(grip_cache_write(&kc, &k4, start, o.tokens));
    GRIP_STEP(grip_cache_write(&vc, &v4, start, o.tokens));
    for (int64_t b = 0; b < B; ++b) start[b] += o.tokens[b];  // now the rows' kv lengths
    ao.kv_len = start;
    GRIP_STEP(grip_attention(&q4, &L.k_cache, &L.v_cache, &ao, &attn4, nullptr));
    GRIP_STEP(grip_linear(&attn2, &L.o, nullptr, &residual));
    GRIP_STEP(grip_add(&x2d, &residual, &x2d));
    GRIP_STEP(grip_rms_norm(&x2d, &L.post_norm, o.rms_norm_eps, &norm));
    GRIP_STEP(grip_linear(&norm, &L.gate, nullptr, &gate));
    GRIP_STEP(grip_linear(&norm, &L.up, nullptr, &up));
    GRIP_STEP(grip_silu_mul(&gate, &up, &gate));
    GRIP_STEP(grip_linear(&gate, &L.down, nullptr, &residual));
    GRIP_STEP(grip_add(&x2d, &residual, &x2d));
  }
#undef GRIP_STEP
  return GRIP_OK;
}
