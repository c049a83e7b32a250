// score.cuh — the budget-aware token scorer (README items 1 and 2):
// score_tokens and score_tokens_backward. M = B*N tokens.
// Forward: query_proj (qr = q·wq, v = wk·qr), film, layernorm -> h, SGEMM
// z = h·w1, fused epilogue (bias, GELU, FiLM, w2 dot, query term).
// Backward: recompute, dz/u, deterministic column sums (no float atomics),
// SGEMMs dW1 = h^T dz and dh = dz w1^T, then a finalize kernel for the small
// parameters (w2, b2, film_w, film_b, wq, wk: rank-1 per row b).
#pragma once
#include "gemm.cuh"
#include "reduce.cuh"

namespace grip {
namespace GRIP_CUDA_NS {

constexpr double kPi = 3.141592653589793;
constexpr int kScoreThreads = 256;

__device__ inline float gelu_cdf(float z) { return 0.5f * (1.f + erff(z * 0.70710678118654752f)); }

// out[b,r] = sum_d vec[b,d] * mat[d,r]. Shapes: vec [B,D], mat [D,R], out [B,R];
// grid B, block kScoreThreads.
__global__ void vecmat_kernel(const float* vec, const float* mat, int64_t D, int64_t R,
                              float* out) {
  __shared__ float red[33];
  const int64_t b = blockIdx.x;
  for (int64_t r = 0; r < R; ++r) {
    float s = 0.f;
    for (int64_t d = threadIdx.x; d < D; d += blockDim.x) s += vec[b * D + d] * mat[d * R + r];
    s = block_sum(s, red);
    if (threadIdx.x == 0) out[b * R + r] = s;
  }
}

// v[b,d] = sum_r wk[d,r] * qr[b,r]. Shapes: wk [D,R], qr [B,R], v [B,D]; flat grid-stride.
__global__ void query_vector_kernel(const float* wk, const float* qr, int64_t B, int64_t D,
                                    int64_t R, float* v) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < B * D;
       i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t b = i / D, d = i % D;
    float s = 0.f;
    for (int64_t r = 0; r < R; ++r) s += wk[d * R + r] * qr[b * R + r];
    v[i] = s;
  }
}

// four [B,16] Fourier features of keep_ratio, film [B,2H] = four·film_w + film_b.
// Shapes: rho [B], film_w [16,2H], film_b [2H]; flat grid-stride over B*2H.
__global__ void film_kernel(const float* rho, const float* film_w, const float* film_b,
                            int64_t B, int64_t H, float* four, float* film) {
  const int64_t H2 = 2 * H;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < B * H2;
       i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t b = i / H2, c = i % H2;
    const double r = rho[b];
    float f[kFourierFeatures];
    for (int j = 0; j < kFourierFeatures / 2; ++j) {
      const double a = (double)(1 << j) * kPi * r;
      f[2 * j] = (float)sin(a);
      f[2 * j + 1] = (float)cos(a);
    }
    float acc = film_b[c];
    for (int j = 0; j < kFourierFeatures; ++j) acc += f[j] * film_w[j * H2 + c];
    film[i] = acc;
    if (c == 0)
      for (int j = 0; j < kFourierFeatures; ++j) four[b * kFourierFeatures + j] = f[j];
  }
}

// h [M,D] = LayerNorm(x) * w + bias (xhat [M,D], optional, the normalised x).
// Shapes: x [M,D] of dtype (0 f32, 1 f16, 2 bf16), w/bias [D]; grid M, block kScoreThreads.
__global__ void layernorm_kernel(const void* x, int dtype, int64_t D, const float* w,
                                 const float* bias, float* h, float* xhat) {
  __shared__ float red[33];
  const int64_t base = (int64_t)blockIdx.x * D;
  float s = 0.f;
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x) s += load_float(x, dtype, base + d);
  const float mean = block_sum(s, red) / (float)D;
  float q = 0.f;
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
    const float diff = load_float(x, dtype, base + d) - mean;
    q += diff * diff;
  }
  const float var = block_sum(q, red) / (float)D;
  const float rstd = 1.f / sqrtf(var + kLayerNormEps);
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
    const float xh = (load_float(x, dtype, base + d) - mean) * rstd;
    h[base + d] = xh * w[d] + bias[d];
    if (xhat) xhat[base + d] = xh;
  }
}

// scores[t] = sum_j (gelu(z+b1)*(1+gamma) + beta)*w2 + b2 + (h_t·v_b)*inv_sqrt_r.
// Shapes: z [M,H] (without b1), film [B,2H], h [M,D], v [B,D], scores [M];
// one warp per token, grid ceil(M / (block/32)).
__global__ void score_epilogue_kernel(const float* z, const float* b1, const float* film,
                                      const float* w2, const float* b2, const float* h,
                                      const float* v, int64_t M, int64_t N, int64_t D, int64_t H,
                                      float inv_sqrt_r, float* scores) {
  const int lane = threadIdx.x & 31;
  const int64_t t = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
  if (t >= M) return;  // the whole warp leaves together
  const int64_t b = t / N;
  const float* fb = film + b * 2 * H;
  float acc = 0.f;
  for (int64_t j = lane; j < H; j += 32) {
    const float zz = z[t * H + j] + b1[j];
    const float u = zz * gelu_cdf(zz);
    acc += (u * (1.f + fb[j]) + fb[H + j]) * w2[j];
  }
  float q = 0.f;
  for (int64_t d = lane; d < D; d += 32) q += h[t * D + d] * v[b * D + d];
  acc = warp_sum(acc);
  q = warp_sum(q);
  if (lane == 0) scores[t] = acc + b2[0] + q * inv_sqrt_r;
}

// dz [M,H] = g*(1+gamma)*w2*gelu'(z+b1), u [M,H] = gelu(z+b1).
// Shapes: z [M,H], film [B,2H], g [M]; flat grid-stride over M*H.
__global__ void score_dz_kernel(const float* z, const float* b1, const float* film,
                                const float* w2, const float* g, int64_t M, int64_t N, int64_t H,
                                float* dz, float* u) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < M * H;
       i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t t = i / H, j = i % H, b = t / N;
    const float zz = z[i] + b1[j];
    const float cdf = gelu_cdf(zz);
    const float pdf = 0.3989422804014327f * expf(-0.5f * zz * zz);
    u[i] = zz * cdf;
    dz[i] = g[t] * (1.f + film[b * 2 * H + j]) * w2[j] * (cdf + zz * pdf);
  }
}

// dh [M,D] += g[t] * v[b,:] * inv_sqrt_r. Flat grid-stride over M*D.
__global__ void score_dh_query_kernel(const float* g, const float* v, int64_t M, int64_t N,
                                      int64_t D, float inv_sqrt_r, float* dh) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < M * D;
       i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t t = i / D, d = i % D;
    dh[i] += g[t] * v[(t / N) * D + d] * inv_sqrt_r;
  }
}

// out[s,c] = sum_r A[s,r,c] * (Bm ? Bm[s,r,c] : 1) * (rowscale ? rowscale[s*R+r] : 1),
// in a fixed order. Shapes: A, Bm [S,R,C], rowscale [S,R], out [S,C];
// grid (ceil(C/32), S), block 256 (32 columns x 8 row lanes).
__global__ void colsum_kernel(const float* A, const float* Bm, const float* rowscale, int64_t R,
                              int64_t C, float* out) {
  __shared__ float part[8][33];
  const int lane = threadIdx.x & 31, lr = threadIdx.x >> 5;
  const int64_t c = (int64_t)blockIdx.x * 32 + lane, s = blockIdx.y;
  float acc = 0.f;
  if (c < C) {
    for (int64_t r = lr; r < R; r += 8) {
      const int64_t idx = (s * R + r) * C + c;
      float x = A[idx];
      if (Bm) x *= Bm[idx];
      if (rowscale) x *= rowscale[s * R + r];
      acc += x;
    }
  }
  part[lr][lane] = acc;
  __syncthreads();
  if (lr == 0 && c < C) {
    float t = 0.f;
    for (int i = 0; i < 8; ++i) t += part[i][lane];
    out[s * C + c] = t;
  }
}

// The small gradients, one thread per output element, summing over b in order.
// Shapes: film [B,2H], four [B,16], su [B,H] = sum_n g*u, sg [B] = sum_n g,
// hg [B,D] = sum_n g*h, qr [B,R], hk [B,R] = hg·wk, query [B,D].
struct ScoreFinalizeArgs {
  const float *film, *four, *su, *sg, *hg, *qr, *hk, *query, *w2;
  int64_t B, D, H, R;
  float inv_sqrt_r;
  float *dw2, *db2, *dfilm_b, *dfilm_w, *dwk, *dwq;
};
__global__ void score_finalize_kernel(ScoreFinalizeArgs a) {
  const int64_t H = a.H, H2 = 2 * a.H, DR = a.D * a.R;
  const int64_t total = H + 1 + H2 + kFourierFeatures * H2 + 2 * DR;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (int64_t)gridDim.x * blockDim.x) {
    int64_t e = i;
    float acc = 0.f;
    if (e < H) {
      for (int64_t b = 0; b < a.B; ++b)
        acc += (1.f + a.film[b * H2 + e]) * a.su[b * H + e] + a.film[b * H2 + H + e] * a.sg[b];
      a.dw2[e] = acc;
      continue;
    }
    e -= H;
    if (e < 1) {
      for (int64_t b = 0; b < a.B; ++b) acc += a.sg[b];
      a.db2[0] = acc;
      continue;
    }
    e -= 1;
    if (e < H2 + kFourierFeatures * H2) {
      const bool bias = e < H2;
      const int64_t f = bias ? 0 : (e - H2) / H2, c = bias ? e : (e - H2) % H2;
      for (int64_t b = 0; b < a.B; ++b) {
        const float dfilm = c < H ? a.w2[c] * a.su[b * H + c] : a.w2[c - H] * a.sg[b];
        acc += bias ? dfilm : a.four[b * kFourierFeatures + f] * dfilm;
      }
      if (bias) a.dfilm_b[c] = acc;
      else a.dfilm_w[f * H2 + c] = acc;
      continue;
    }
    e -= H2 + kFourierFeatures * H2;
    const bool wk = e < DR;
    if (!wk) e -= DR;
    const int64_t d = e / a.R, r = e % a.R;
    for (int64_t b = 0; b < a.B; ++b)
      acc += wk ? a.hg[b * a.D + d] * a.qr[b * a.R + r] : a.query[b * a.D + d] * a.hk[b * a.R + r];
    (wk ? a.dwk : a.dwq)[e] = acc * a.inv_sqrt_r;
  }
}

// ---- host -------------------------------------------------------------------

struct ScoreForwardBuffers {
  float *h, *z, *qr, *v, *four, *film;
};

// Everything both directions need: qr, v, fourier, film, h (and xhat), z.
inline Status score_common(const ScoreArgs& a, const ScoreForwardBuffers& s, float* xhat) {
  const int64_t M = a.B * a.N;
  const auto& p = a.params;
  GRIP_LAUNCH(vecmat_kernel, (unsigned)a.B, kScoreThreads, 0, a.query, p.wq, a.D, a.R, s.qr);
  GRIP_RETURN_IF_ERROR(grip_dev_check_launch("vecmat_kernel"));
  GRIP_LAUNCH(query_vector_kernel, flat_blocks(a.B * a.D, kScoreThreads), kScoreThreads, 0, p.wk,
              s.qr, a.B, a.D, a.R, s.v);
  GRIP_RETURN_IF_ERROR(grip_dev_check_launch("query_vector_kernel"));
  GRIP_LAUNCH(film_kernel, flat_blocks(a.B * 2 * a.H, kScoreThreads), kScoreThreads, 0,
              a.keep_ratio, p.film_w, p.film_b, a.B, a.H, s.four, s.film);
  GRIP_RETURN_IF_ERROR(grip_dev_check_launch("film_kernel"));
  GRIP_LAUNCH(layernorm_kernel, (unsigned)M, kScoreThreads, 0, a.x, (int)a.x_dtype, a.D,
              p.ln_weight, p.ln_bias, s.h, xhat);
  GRIP_RETURN_IF_ERROR(grip_dev_check_launch("layernorm_kernel"));
  return gemm(false, false, M, a.H, a.D, s.h, a.D, p.w1, a.H, s.z, a.H);
}

inline void plan_score_buffers(const ScoreArgs& a, ScratchPlan& plan, size_t offs[6]) {
  const int64_t M = a.B * a.N;
  offs[0] = plan.add(sizeof(float) * M * a.D);
  offs[1] = plan.add(sizeof(float) * M * a.H);
  offs[2] = plan.add(sizeof(float) * a.B * a.R);
  offs[3] = plan.add(sizeof(float) * a.B * a.D);
  offs[4] = plan.add(sizeof(float) * a.B * kFourierFeatures);
  offs[5] = plan.add(sizeof(float) * a.B * 2 * a.H);
}

inline ScoreForwardBuffers bind_score_buffers(const DeviceScratch& s, const size_t offs[6]) {
  return {scratch_at<float>(s, offs[0]), scratch_at<float>(s, offs[1]),
          scratch_at<float>(s, offs[2]), scratch_at<float>(s, offs[3]),
          scratch_at<float>(s, offs[4]), scratch_at<float>(s, offs[5])};
}

Status score_tokens(const ScoreForwardArgs& a) {
  const int64_t M = a.B * a.N;
  if (M == 0) return Status::Ok();
  ScratchPlan plan;
  size_t offs[6];
  plan_score_buffers(a, plan, offs);
  DeviceScratch scratch;
  GRIP_RETURN_IF_ERROR(alloc_bytes(scratch, plan.bytes));
  const ScoreForwardBuffers s = bind_score_buffers(scratch, offs);
  GRIP_RETURN_IF_ERROR(score_common(a, s, nullptr));
  const float inv_sqrt_r = 1.f / sqrtf((float)a.R);
  const int tokens_per_block = kScoreThreads / 32;
  GRIP_LAUNCH(score_epilogue_kernel, ceil_div(M, tokens_per_block), kScoreThreads, 0, s.z,
              a.params.b1, s.film, a.params.w2, a.params.b2, s.h, s.v, M, a.N, a.D, a.H,
              inv_sqrt_r, a.scores);
  return grip_dev_check_launch("score_epilogue_kernel");
}

inline Status colsum(const float* A, const float* Bm, const float* rowscale, int64_t S, int64_t R,
                     int64_t C, float* out) {
  if (S == 0 || C == 0) return Status::Ok();
  GRIP_LAUNCH(colsum_kernel, dim3(ceil_div(C, 32), (unsigned)S), 256, 0, A, Bm, rowscale, R, C,
              out);
  return grip_dev_check_launch("colsum_kernel");
}

Status score_tokens_backward(const ScoreBackwardArgs& a) {
  const int64_t B = a.B, N = a.N, D = a.D, H = a.H, R = a.R, M = B * N;
  const auto& p = a.params;
  const auto& g = a.grads;
  ScratchPlan plan;
  size_t offs[6];
  plan_score_buffers(a, plan, offs);
  const size_t o_xhat = plan.add(sizeof(float) * M * D), o_dh = plan.add(sizeof(float) * M * D);
  const size_t o_dz = plan.add(sizeof(float) * M * H), o_u = plan.add(sizeof(float) * M * H);
  const size_t o_su = plan.add(sizeof(float) * B * H), o_sg = plan.add(sizeof(float) * B);
  const size_t o_hg = plan.add(sizeof(float) * B * D), o_hk = plan.add(sizeof(float) * B * R);
  DeviceScratch scratch;
  GRIP_RETURN_IF_ERROR(alloc_bytes(scratch, plan.bytes));
  const ScoreForwardBuffers s = bind_score_buffers(scratch, offs);
  float* xhat = scratch_at<float>(scratch, o_xhat);
  float* dh = scratch_at<float>(scratch, o_dh);
  float* dz = scratch_at<float>(scratch, o_dz);
  float* u = scratch_at<float>(scratch, o_u);
  float* su = scratch_at<float>(scratch, o_su);
  float* sg = scratch_at<float>(scratch, o_sg);
  float* hg = scratch_at<float>(scratch, o_hg);
  float* hk = scratch_at<float>(scratch, o_hk);
  const float inv_sqrt_r = 1.f / sqrtf((float)R);

  if (M > 0) {
    GRIP_RETURN_IF_ERROR(score_common(a, s, xhat));
    GRIP_LAUNCH(score_dz_kernel, flat_blocks(M * H, kScoreThreads), kScoreThreads, 0, s.z, p.b1,
                s.film, p.w2, a.d_scores, M, N, H, dz, u);
    GRIP_RETURN_IF_ERROR(grip_dev_check_launch("score_dz_kernel"));
    GRIP_RETURN_IF_ERROR(colsum(u, nullptr, a.d_scores, B, N, H, su));
    GRIP_RETURN_IF_ERROR(colsum(a.d_scores, nullptr, nullptr, B, N, 1, sg));
    GRIP_RETURN_IF_ERROR(colsum(dz, nullptr, nullptr, 1, M, H, g.b1));
    // dW1 [D,H] = h^T dz ; dh [M,D] = dz w1^T (+ the query term)
    GRIP_RETURN_IF_ERROR(gemm(true, false, D, H, M, s.h, D, dz, H, g.w1, H));
    GRIP_RETURN_IF_ERROR(gemm(false, true, M, D, H, dz, H, p.w1, H, dh, D));
    GRIP_LAUNCH(score_dh_query_kernel, flat_blocks(M * D, kScoreThreads), kScoreThreads, 0,
                a.d_scores, s.v, M, N, D, inv_sqrt_r, dh);
    GRIP_RETURN_IF_ERROR(grip_dev_check_launch("score_dh_query_kernel"));
    GRIP_RETURN_IF_ERROR(colsum(dh, nullptr, nullptr, 1, M, D, g.ln_bias));
    GRIP_RETURN_IF_ERROR(colsum(dh, xhat, nullptr, 1, M, D, g.ln_weight));
    GRIP_RETURN_IF_ERROR(colsum(s.h, nullptr, a.d_scores, B, N, D, hg));
  } else {
    // No tokens: every gradient is zero (the finalize kernel sees zero sums).
    GRIP_RETURN_IF_ERROR(grip_dev_memset(g.b1, 0, sizeof(float) * H));
    GRIP_RETURN_IF_ERROR(grip_dev_memset(g.w1, 0, sizeof(float) * D * H));
    GRIP_RETURN_IF_ERROR(grip_dev_memset(g.ln_bias, 0, sizeof(float) * D));
    GRIP_RETURN_IF_ERROR(grip_dev_memset(g.ln_weight, 0, sizeof(float) * D));
    GRIP_RETURN_IF_ERROR(grip_dev_memset(scratch.ptr, 0, plan.bytes));
    if (B > 0) {  // qr and film are still needed (multiplied by zero sums)
      GRIP_LAUNCH(vecmat_kernel, (unsigned)B, kScoreThreads, 0, a.query, p.wq, D, R, s.qr);
      GRIP_RETURN_IF_ERROR(grip_dev_check_launch("vecmat_kernel"));
      GRIP_LAUNCH(film_kernel, flat_blocks(B * 2 * H, kScoreThreads), kScoreThreads, 0,
                  a.keep_ratio, p.film_w, p.film_b, B, H, s.four, s.film);
      GRIP_RETURN_IF_ERROR(grip_dev_check_launch("film_kernel"));
    }
  }
  if (B > 0) {
    GRIP_LAUNCH(vecmat_kernel, (unsigned)B, kScoreThreads, 0, hg, p.wk, D, R, hk);
    GRIP_RETURN_IF_ERROR(grip_dev_check_launch("vecmat_kernel"));
  }
  ScoreFinalizeArgs f{s.film, s.four, su, sg, hg, s.qr, hk, a.query, p.w2, B, D, H, R,
                      inv_sqrt_r, g.w2, g.b2, g.film_b, g.film_w, g.wk, g.wq};
  const int64_t total = H + 1 + 2 * H + kFourierFeatures * 2 * H + 2 * D * R;
  GRIP_LAUNCH(score_finalize_kernel, flat_blocks(total, kScoreThreads), kScoreThreads, 0, f);
  return grip_dev_check_launch("score_finalize_kernel");
}

}  // namespace GRIP_CUDA_NS
}  // namespace grip
