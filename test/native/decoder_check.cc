// decoder_check.cc — grip_decoder_layers against the same C ABI ops called
// one by one (bit for bit, two layers, a ragged batch with a row sitting
// out), and its own error paths with their exact messages.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "grip/grip.h"

namespace {

constexpr int64_t B = 2, T = 3, D = 8, Hq = 2, Hkv = 1, Dh = 4, F = 16, Tmax = 8, L = 2;

grip_tensor F32(float* data, std::initializer_list<int64_t> shape) {
  grip_tensor t{};
  t.data = data;
  t.dtype = GRIP_F32;
  t.device = GRIP_DEVICE_CPU;
  t.ndim = (int32_t)shape.size();
  int i = 0;
  for (int64_t e : shape) t.shape[i++] = e;
  return t;
}

struct Layer {
  std::vector<float> in_norm, post_norm, q, k, v, o, gate, up, down, q_bias, k_bias, v_bias, kc, vc;
  explicit Layer(std::mt19937& rng) {
    std::uniform_real_distribution<float> u(-0.5f, 0.5f);
    auto fill = [&](std::vector<float>& w, size_t n) { w.resize(n); for (float& x : w) x = u(rng); };
    fill(in_norm, D); fill(post_norm, D); fill(q, Hq * Dh * D); fill(k, Hkv * Dh * D); fill(v, Hkv * Dh * D);
    fill(o, D * Hq * Dh); fill(gate, F * D); fill(up, F * D); fill(down, D * F);
    fill(q_bias, Hq * Dh); fill(k_bias, Hkv * Dh); fill(v_bias, Hkv * Dh);
    kc.assign(B * Hkv * Tmax * Dh, 0.f);
    vc.assign(B * Hkv * Tmax * Dh, 0.f);
  }
  grip_decoder_layer View() {
    return grip_decoder_layer{F32(in_norm.data(), {D}), F32(post_norm.data(), {D}),
                              F32(q.data(), {Hq * Dh, D}), F32(k.data(), {Hkv * Dh, D}), F32(v.data(), {Hkv * Dh, D}),
                              F32(o.data(), {D, Hq * Dh}), F32(gate.data(), {F, D}), F32(up.data(), {F, D}), F32(down.data(), {D, F}),
                              F32(q_bias.data(), {Hq * Dh}), F32(k_bias.data(), {Hkv * Dh}), F32(v_bias.data(), {Hkv * Dh}),
                              F32(kc.data(), {B, Hkv, Tmax, Dh}), F32(vc.data(), {B, Hkv, Tmax, Dh})};
  }
};

// The per-op sequence lib/model/llama.ts runs (its ops, its order).
void PerOp(std::vector<Layer>& layers, float* x, int32_t* positions, const int32_t* tokens, int32_t* lengths, float eps, double theta) {
  std::vector<float> norm(B * T * D), q(B * T * Hq * Dh), k(B * T * Hkv * Dh), v(B * T * Hkv * Dh), a(B * T * Hq * Dh),
      res(B * T * D), gate(B * T * F), up(B * T * F);
  grip_tensor x2 = F32(x, {B * T, D}), n2 = F32(norm.data(), {B * T, D}), q2 = F32(q.data(), {B * T, Hq * Dh}),
              k2 = F32(k.data(), {B * T, Hkv * Dh}), v2 = F32(v.data(), {B * T, Hkv * Dh}), q4 = F32(q.data(), {B, T, Hq, Dh}),
              k4 = F32(k.data(), {B, T, Hkv, Dh}), v4 = F32(v.data(), {B, T, Hkv, Dh}), a4 = F32(a.data(), {B, T, Hq, Dh}),
              a2 = F32(a.data(), {B * T, Hq * Dh}), r2 = F32(res.data(), {B * T, D}), g2 = F32(gate.data(), {B * T, F}),
              u2 = F32(up.data(), {B * T, F});
  grip_tensor pos{};
  pos.data = positions; pos.dtype = GRIP_I32; pos.device = GRIP_DEVICE_CPU; pos.ndim = 2; pos.shape[0] = B; pos.shape[1] = T;
  for (int64_t l = 0; l < L; ++l) {
    grip_decoder_layer w = layers[l].View();
    int32_t* start = lengths + l * B;
    grip_rms_norm(&x2, &w.input_norm, eps, &n2);
    grip_linear(&n2, &w.q, &w.q_bias, &q2);
    grip_linear(&n2, &w.k, &w.k_bias, &k2);
    grip_linear(&n2, &w.v, &w.v_bias, &v2);
    grip_rope(&q4, &pos, theta, &q4);
    grip_rope(&k4, &pos, theta, &k4);
    grip_cache_write(&w.k_cache, &k4, start, tokens);
    grip_cache_write(&w.v_cache, &v4, start, tokens);
    int32_t kv[B];
    for (int64_t b = 0; b < B; ++b) kv[b] = start[b] + tokens[b];
    grip_attention_options ao{1, (float)(1.0 / std::sqrt((double)Dh)), tokens, kv, nullptr, 0};
    grip_attention(&q4, &w.k_cache, &w.v_cache, &ao, &a4, nullptr);
    std::memcpy(start, kv, sizeof kv);
    grip_linear(&a2, &w.o, nullptr, &r2);
    grip_add(&x2, &r2, &x2);
    grip_rms_norm(&x2, &w.post_norm, eps, &n2);
    grip_linear(&n2, &w.gate, nullptr, &g2);
    grip_linear(&n2, &w.up, nullptr, &u2);
    grip_silu_mul(&g2, &u2, &g2);
    grip_linear(&g2, &w.down, nullptr, &r2);
    grip_add(&x2, &r2, &x2);
  }
}

}  // namespace

GRIP_CHECK(decoder_layers_match_per_op) {
  std::mt19937 rng(5);
  std::vector<Layer> a, b;
  for (int l = 0; l < L; ++l) a.emplace_back(rng);
  b = a;
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::vector<float> x(B * T * D);
  for (float& e : x) e = u(rng);
  std::vector<float> y = x;
  int32_t positions[B * T] = {2, 3, 4, 5, 6, 7};
  const int32_t tokens[B] = {3, 0};  // row 1 sits out
  int32_t la[L * B] = {2, 5, 2, 5}, lb[L * B] = {2, 5, 2, 5};
  grip_decoder_options o{(int32_t)Hq, (int32_t)Hkv, (int32_t)Dh, (int32_t)F, 1e-6f, 10000.0, tokens, la};
  std::vector<grip_decoder_layer> views;
  for (auto& l : a) views.push_back(l.View());
  const size_t bytes = grip_decoder_workspace_bytes(B * T, D, &o);
  std::vector<float> ws(bytes / sizeof(float) + 16);
  grip_tensor xt = F32(x.data(), {B, T, D});
  grip_tensor pos{};
  pos.data = positions; pos.dtype = GRIP_I32; pos.device = GRIP_DEVICE_CPU; pos.ndim = 2; pos.shape[0] = B; pos.shape[1] = T;
  const grip_status st = grip_decoder_layers(&xt, &pos, views.data(), (int32_t)L, &o, ws.data(), bytes);
  CHECK_TRUE(st == GRIP_OK, std::string("decoder layers: ") + grip_last_error());
  PerOp(b, y.data(), positions, tokens, lb, 1e-6f, 10000.0);
  CHECK_TRUE(std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0, "x: the per-op bits");
  for (int l = 0; l < L; ++l) {
    CHECK_TRUE(a[l].kc == b[l].kc && a[l].vc == b[l].vc, "caches of layer " + std::to_string(l));
  }
  CHECK_TRUE(std::memcmp(la, lb, sizeof la) == 0 && la[0] == 5 && la[1] == 5, "lengths advanced by tokens");
}

GRIP_CHECK(decoder_layers_errors) {
  std::mt19937 rng(6);
  Layer layer(rng);
  grip_decoder_layer view = layer.View();
  std::vector<float> x(B * T * D, 0.1f);
  int32_t positions[B * T] = {0, 1, 2, 0, 1, 2};
  int32_t tokens[B] = {3, 3}, lengths[B] = {0, 0};
  grip_decoder_options o{(int32_t)Hq, (int32_t)Hkv, (int32_t)Dh, (int32_t)F, 1e-6f, 10000.0, tokens, lengths};
  grip_tensor xt = F32(x.data(), {B, T, D});
  grip_tensor pos{};
  pos.data = positions; pos.dtype = GRIP_I32; pos.device = GRIP_DEVICE_CPU; pos.ndim = 2; pos.shape[0] = B; pos.shape[1] = T;
  const size_t bytes = grip_decoder_workspace_bytes(B * T, D, &o);
  std::vector<float> ws(bytes / sizeof(float) + 16);
  auto expect = [&](grip_status got, grip_status want, const std::string& message, const char* what) {
    CHECK_TRUE(got == want, std::string(what) + ": status " + std::to_string((int)got));
    CHECK_TRUE(message == grip_last_error(), std::string(what) + ": message " + grip_last_error());
  };
  expect(grip_decoder_layers(&xt, &pos, &view, 1, nullptr, ws.data(), bytes), GRIP_ERR_RANGE,
         "expected x, positions, layers and options for decoder layers but received NULL", "no options");
  grip_tensor flat = F32(x.data(), {B * T, D});
  expect(grip_decoder_layers(&flat, &pos, &view, 1, &o, ws.data(), bytes), GRIP_ERR_SHAPE,
         "expected an f32 tensor [B,T,D] for x but received 2 dimensions", "x of rank 2");
  expect(grip_decoder_layers(&xt, &pos, &view, 1, &o, ws.data(), bytes - 1), GRIP_ERR_SHAPE,
         "expected a workspace of at least " + std::to_string(bytes) + " bytes for decoder layers but received " + std::to_string(bytes - 1),
         "short workspace");
  grip_decoder_options bad = o;
  bad.num_kv_heads = 0;
  expect(grip_decoder_layers(&xt, &pos, &view, 1, &bad, ws.data(), bytes), GRIP_ERR_RANGE,
         "expected num_layers >= 0 and positive heads, head dim and intermediate size for decoder options but received another value", "no kv heads");
  // An op inside fails: its own status and message stand (the cache is full after 8 positions).
  lengths[0] = 6;
  const grip_status st = grip_decoder_layers(&xt, &pos, &view, 1, &o, ws.data(), bytes);
  CHECK_TRUE(st == GRIP_ERR_RANGE, "a full cache: status " + std::to_string((int)st));
  CHECK_TRUE(std::string(grip_last_error()) == "expected start + count <= Tmax = 8 for row 0 but received 6 + 3", std::string("a full cache: ") + grip_last_error());
}
