// args.h — the validated arguments each backend receives. capi.cc checks
// shapes, dtypes and devices and fills these; a backend (grip::cpu,
// grip::cuda, grip::emu) trusts them, except for data-dependent checks
// (NaN scores, index ranges), which each backend makes on its own memory.
#pragma once
#include <cstdint>

#include "grip/grip.h"

namespace grip {

struct ScorerParamPtrs {
  const float *ln_weight, *ln_bias, *w1, *b1, *film_w, *film_b, *w2, *b2, *wq, *wk;
};
struct ScorerGradPtrs {
  float *ln_weight, *ln_bias, *w1, *b1, *film_w, *film_b, *w2, *b2, *wq, *wk;
};

// Number of Fourier features of the keep ratio: sin/cos(2^j * pi * rho), j < 8.
constexpr int kFourierFeatures = 16;
constexpr float kLayerNormEps = 1e-5f;

struct ScoreArgs {
  const void* x;  // [B,N,D] of x_dtype (f32|f16|bf16)
  grip_dtype x_dtype;
  const float* query;       // [B,D]
  const float* keep_ratio;  // [B], each in (0,1]
  ScorerParamPtrs params;
  int64_t B, N, D, H, R;
};

struct ScoreForwardArgs : ScoreArgs {
  float* scores;  // [B,N]
};

struct ScoreBackwardArgs : ScoreArgs {
  const float* d_scores;  // [B,N]
  ScorerGradPtrs grads;   // written, not accumulated
};

struct TopkArgs {
  const float* scores;      // [B,N]
  const int32_t* k;         // [B], host memory, each in 0..N
  int64_t B, N, max_k;      // max_k = max(k)
  int32_t* indices;         // [B,max_k]
  float* values;            // [B,max_k]
};

struct GumbelTopkArgs {
  const float* logits;  // [B,N]
  int64_t B, N, k, G;   // 0 <= k <= N, G >= 1
  uint64_t seed;
  int32_t* indices;  // [B,G,k]
  float* log_prob;   // [B,G]
};

struct PlackettLuceArgs {
  const float* logits;     // [B,N]
  const int32_t* indices;  // [B,G,k], distinct per sample, in 0..N-1 (checked by the backend)
  int64_t B, N, G, k;
  float* log_prob;  // [B,G]            (log-prob op)
  const float* d_log_prob;  // [B,G]    (backward op)
  float* d_logits;          // [B,N]    (backward op)
};

struct GatherArgs {
  const void* x;  // [B,N,D]
  grip_dtype dtype;
  const int32_t* indices;  // [B,K], each in -1..N-1 (checked by the backend)
  int64_t B, N, D, K;
  void* out;  // [B,K,D]
};

struct CompactKVArgs {
  void* cache;  // [B,Hkv,T,Dh] (const for the out-of-place form)
  grip_dtype dtype;
  const int32_t* keep;  // [B,K], strictly ascending in 0..T-1 then -1 (checked by the backend)
  int64_t B, Hkv, T, Dh, K;
  void* out;             // [B,Hkv,K,Dh] (out-of-place form)
  int32_t* new_lengths;  // [B] host memory (in-place form)
};

struct MatmulArgs {
  const float* a;  // [M,K]
  const void* b;   // [K,N], or [N,K] when trans_b (a Linear weight [out,in])
  grip_dtype b_dtype;  // f32|f16|bf16
  bool trans_b;
  int64_t M, N, K;
  float* out;  // [M,N]
};

struct AdamWArgs {
  float* param;
  const float* grad;
  float* m;
  float* v;
  int64_t n;
  grip_adamw_options options;
};

// ---- transformer ops: M rows = all leading dims flattened ------------------

struct LinearArgs {
  const float* x;       // [M,K]
  const void* weight;   // [N,K] of w_dtype
  grip_dtype w_dtype;   // f32|f16|bf16|q8_0 (q8_0: CPU only, see cpu/q8_0.h)
  const float* bias;    // [N] or nullptr
  int64_t M, N, K;
  float* out;           // [M,N]
};

// layer_norm (bias set) and rms_norm (bias nullptr, no mean subtraction).
struct NormArgs {
  const float* x;       // [M,D]
  const float* weight;  // [D]
  const float* bias;    // [D] (layer_norm) or nullptr (rms_norm)
  float eps;
  int64_t M, D;
  float* out;           // [M,D], may be x
};

struct RopeArgs {
  const float* x;            // [B,T,H,Dh], Dh even
  const int32_t* positions;  // [B,T], each >= 0 (checked by the backend)
  double theta;
  int64_t B, T, H, Dh;
  float* out;                // [B,T,H,Dh], may be x
};

struct CacheWriteArgs {
  void* cache;              // [B,Hkv,Tmax,Dh] of dtype
  grip_dtype dtype;         // f32|f16|bf16
  const float* src;         // [B,T,Hkv,Dh]
  const int32_t* start;     // [B] host
  const int32_t* count;     // [B] host, count <= T, start + count <= Tmax
  int64_t B, Hkv, Tmax, T, Dh;
};

struct AttentionArgs {
  const float* q;           // [B,Tq,Hq,Dh]
  const float* k;           // [B,Hkv,Tk,Dh]
  const float* v;           // [B,Hkv,Tk,Dh]
  const int32_t* q_len;     // [B] host, q_len <= Tq, q_len <= kv_len
  const int32_t* kv_len;    // [B] host, kv_len <= Tk
  const int32_t* prob_rows; // [R] host, each in [0, Tq)
  int64_t B, Tq, Tk, Hq, Hkv, Dh, R;
  bool causal;
  float scale;
  float* out;               // [B,Tq,Hq,Dh]
  float* probs;             // [B,Hq,R,Tk] (R > 0)
};

// The first key that query i of row b does not attend (causal: one past its
// position kv_len - q_len + i).
inline int64_t attention_key_end(const AttentionArgs& a, int64_t b, int64_t i) {
  return a.causal ? (int64_t)a.kv_len[b] - a.q_len[b] + i + 1 : (int64_t)a.kv_len[b];
}

struct GeluArgs {
  const float* x;
  grip_gelu_kind kind;
  int64_t n;
  float* out;  // may be x
};

struct SiluMulArgs {
  const float* gate;
  const float* up;
  int64_t n;
  float* out;  // may be gate or up
};

struct AddArgs {
  const float* a;   // [n] (any shape, flattened)
  const float* b;   // [nb], a trailing part of a's shape: b[i % nb] pairs with a[i]
  int64_t n, nb;
  float* out;       // may be a
};

struct SoftmaxArgs {
  const float* x;  // [M,N]
  int64_t M, N;
  bool log;
  float* out;      // may be x
};

struct EmbeddingArgs {
  const void* table;      // [V,D] of dtype
  grip_dtype dtype;
  const int32_t* ids;     // ids_shape, each in [0, V) (checked by the backend)
  int32_t ids_ndim;
  int64_t ids_shape[GRIP_MAX_DIMS];
  int64_t V, D, n;        // n = number of ids
  float* out;             // [n,D]
};

}  // namespace grip
