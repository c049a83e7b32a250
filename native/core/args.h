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

}  // namespace grip
