// score.cc — CPU twin of score_tokens and score_tokens_backward.
//
// Forward, per chunk of token rows (row = b*N + n):
//   h = LayerNorm(x)          (row kernel, also dot(h, v_b) while h is in L1)
//   z = h · w1                (grip::cpu::gemm, the one GEMM)
//   s = sum_j GELU(z+b1)_j a_bj + c_b + dot(h, v_b)   (row kernel)
// with per-row constants a_b = w2*(1+gamma_b), c_b = sum beta_b*w2 + b2 and
// v_b = wk (wq^T query_b) / sqrt(R), computed once per batch row in double.
#define GRIP_SCORE_ISA scalar
#include "score_impl.h"
// (score_impl.h above gives grip::cpu::scalar::{ln_rows, epilogue_rows}.)

#include <algorithm>
#include <cmath>
#include <vector>

#include "../core/backend.h"
#include "../core/cpu_features.h"
#include "../core/threadpool.h"
#include "gemm.h"

namespace grip {
namespace cpu {

float score_erf(float x) { return scalar::erf_fast(x); }

namespace {

constexpr double kPi = 3.14159265358979323846;

struct Kernels {
  decltype(&scalar::ln_rows) ln_rows;
  decltype(&scalar::epilogue_rows) epilogue_rows;
};

const Kernels& kernels() {
  static const Kernels k = [] {
    const CpuFeatures& f = cpu_features();
    if (f.avx512) return Kernels{&avx512::ln_rows, &avx512::epilogue_rows};
    if (f.avx2_fma) return Kernels{&avx2::ln_rows, &avx2::epilogue_rows};
    return Kernels{&scalar::ln_rows, &scalar::epilogue_rows};
  }();
  return k;
}

// Per batch row constants shared by forward and backward.
struct RowConsts {
  int64_t B, D, H, R;
  std::vector<double> four;   // [B,16]
  std::vector<float> gamma;   // [B,H]
  std::vector<float> beta;    // [B,H]
  std::vector<float> a;       // [B,H]  w2*(1+gamma)
  std::vector<float> c;       // [B]    sum beta*w2 + b2
  std::vector<double> qp;     // [B,R]  wq^T query_b
  std::vector<float> v;       // [B,D]  wk qp / sqrt(R)
};

void row_consts(const ScoreArgs& s, RowConsts& rc) {
  const int64_t B = s.B, D = s.D, H = s.H, R = s.R;
  const ScorerParamPtrs& p = s.params;
  rc.B = B; rc.D = D; rc.H = H; rc.R = R;
  rc.four.assign(B * kFourierFeatures, 0.0);
  rc.gamma.assign(B * H, 0.f);
  rc.beta.assign(B * H, 0.f);
  rc.a.assign(B * H, 0.f);
  rc.c.assign(B, 0.f);
  rc.qp.assign(B * R, 0.0);
  rc.v.assign(B * D, 0.f);
  for (int64_t b = 0; b < B; ++b) {
    double* four = &rc.four[b * kFourierFeatures];
    const double rho = (double)s.keep_ratio[b];
    for (int j = 0; j < kFourierFeatures / 2; ++j) {
      const double arg = (double)(1 << j) * kPi * rho;
      four[2 * j] = std::sin(arg);
      four[2 * j + 1] = std::cos(arg);
    }
    double cb = (double)p.b2[0];
    for (int64_t j = 0; j < H; ++j) {
      double g = p.film_b[j], be = p.film_b[H + j];
      for (int f = 0; f < kFourierFeatures; ++f) {
        g += four[f] * (double)p.film_w[f * 2 * H + j];
        be += four[f] * (double)p.film_w[f * 2 * H + H + j];
      }
      rc.gamma[b * H + j] = (float)g;
      rc.beta[b * H + j] = (float)be;
      rc.a[b * H + j] = (float)((double)p.w2[j] * (1.0 + g));
      cb += be * (double)p.w2[j];
    }
    rc.c[b] = (float)cb;
  }
  if (R == 0) return;
  // qp[b,r] = sum_d wq[d,r] query[b,d]: parallel over (b, block of r).
  const int64_t rblk = 16, nrb = (R + rblk - 1) / rblk;
  parallel_for(B * nrb, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t b = t / nrb, r0 = (t % nrb) * rblk, r1 = std::min(R, r0 + rblk);
      double acc[rblk] = {0};
      const float* q = s.query + b * D;
      for (int64_t d = 0; d < D; ++d) {
        const double qd = q[d];
        const float* w = p.wq + d * R;
        for (int64_t r = r0; r < r1; ++r) acc[r - r0] += qd * (double)w[r];
      }
      for (int64_t r = r0; r < r1; ++r) rc.qp[b * R + r] = acc[r - r0];
    }
  });
  const double inv_sqrt_r = 1.0 / std::sqrt((double)R);
  parallel_for(B * D, 512, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t b = t / D, d = t % D;
      const double* qp = &rc.qp[b * R];
      const float* w = p.wk + d * R;
      constexpr int L = 8;
      double acc[L] = {0};
      int64_t r = 0;
      for (; r + L <= R; r += L)
        for (int l = 0; l < L; ++l) acc[l] += (double)w[r + l] * qp[r + l];
      double tot = 0;
      for (; r < R; ++r) tot += (double)w[r] * qp[r];
      for (int l = 0; l < L; ++l) tot += acc[l];
      rc.v[t] = (float)(tot * inv_sqrt_r);
    }
  });
}

ScoreRowCtx make_ctx(const ScoreArgs& s, const RowConsts& rc) {
  ScoreRowCtx k;
  k.x = s.x;
  k.dtype = s.x_dtype;
  k.N = s.N; k.D = s.D; k.H = s.H;
  k.ln_w = s.params.ln_weight;
  k.ln_b = s.params.ln_bias;
  k.b1 = s.params.b1;
  k.v = rc.v.data();
  k.a = rc.a.data();
  k.c = rc.c.data();
  return k;
}

// Token rows per chunk: keep the chunk's f32 copy of x around 16 MiB.
int64_t chunk_rows(int64_t rows, int64_t D) {
  const int64_t c = std::max<int64_t>(64, (int64_t)(16 << 20) / std::max<int64_t>(1, 4 * D));
  return std::min(rows, c);
}
// Per-thread scratch kept between calls (grow only): no page faults and no
// zero-fill on every call.
float* scratch(size_t floats) {
  thread_local std::vector<float> buf;
  if (buf.size() < floats) {
    buf.clear();
    buf.shrink_to_fit();
    buf.resize(floats);
  }
  return buf.data();
}

int64_t ln_grain(int64_t D) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(1, D)); }

}  // namespace

Status score_tokens(const ScoreForwardArgs& s) {
  const int64_t rows = s.B * s.N, D = s.D, H = s.H;
  if (rows == 0) return Status::Ok();
  RowConsts rc;
  row_consts(s, rc);
  const ScoreRowCtx k = make_ctx(s, rc);
  const Kernels& kn = kernels();
  const int64_t chunk = chunk_rows(rows, D);
  float* h = scratch((size_t)(chunk * (D + H + 1)));
  float* z = h + chunk * D;
  float* qdot = z + chunk * H;
  for (int64_t row0 = 0; row0 < rows; row0 += chunk) {
    const int64_t m = std::min(chunk, rows - row0);
    parallel_for(m, ln_grain(D), [&](int64_t r0, int64_t r1) {
      kn.ln_rows(k, row0, r0, r1, h, qdot, nullptr, nullptr);
    });
    gemm(false, false, m, H, D, 1.f, h, D, s.params.w1, GRIP_F32, H, 0.f, z, H);
    parallel_for(m, std::max<int64_t>(1, 8192 / std::max<int64_t>(1, H)), [&](int64_t r0, int64_t r1) {
      kn.epilogue_rows(k, row0, r0, r1, z, qdot, s.scores);
    });
  }
  return Status::Ok();
}

// Backward. With ds = d_scores[b,n], per token:
//   dw2_j += ds (u_j (1+gamma_j) + beta_j);  db2 += ds
//   dgamma_bj += ds u_j w2_j;  dbeta_bj += ds w2_j
//   dz_j = ds w2_j (1+gamma_j) GELU'(z_j);  db1 += dz;  dW1 += h^T dz
//   dh = dz w1^T + ds v_b;  dln_w += dh xhat;  dln_b += dh
//   g_b += ds h  ->  dwk[d,r] = sum_b g_b[d] qp_b[r] / sqrt(R),
//                    dwq[d,r] = sum_b query_b[d] (g_b · wk[:,r]) / sqrt(R)
//   dfilm_w[f,c] = sum_b fourier_b[f] dfilm_b[c], dfilm_b = sum_b (dgamma_b | dbeta_b).
Status score_tokens_backward(const ScoreBackwardArgs& s) {
  const int64_t B = s.B, N = s.N, rows = B * N, D = s.D, H = s.H, R = s.R;
  const ScorerParamPtrs& p = s.params;
  const ScorerGradPtrs& g = s.grads;
  std::fill(g.w1, g.w1 + D * H, 0.f);
  std::vector<double> dlnw(D, 0.0), dlnb(D, 0.0), db1(H, 0.0), dw2(H, 0.0);
  std::vector<double> dgam((size_t)(B * H), 0.0), gsum((size_t)(B * D), 0.0), dsum(B, 0.0);
  RowConsts rc;
  row_consts(s, rc);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t n = 0; n < N; ++n) dsum[b] += (double)s.d_scores[b * N + n];

  if (rows > 0) {
    const ScoreRowCtx k = make_ctx(s, rc);
    const Kernels& kn = kernels();
    const int64_t chunk = chunk_rows(rows, D);
    std::vector<float> h((size_t)(chunk * D)), z((size_t)(chunk * H)), dh((size_t)(chunk * D));
    std::vector<float> mean((size_t)chunk), rstd((size_t)chunk);
    const int64_t hblk = 16, nhb = (H + hblk - 1) / hblk;
    const int64_t dblk = 64, ndb = (D + dblk - 1) / dblk;
    for (int64_t row0 = 0; row0 < rows; row0 += chunk) {
      const int64_t m = std::min(chunk, rows - row0);
      parallel_for(m, ln_grain(D), [&](int64_t r0, int64_t r1) {
        kn.ln_rows(k, row0, r0, r1, h.data(), nullptr, mean.data(), rstd.data());
      });
      gemm(false, false, m, H, D, 1.f, h.data(), D, p.w1, GRIP_F32, H, 0.f, z.data(), H);
      // Column blocks of H: each task owns its columns' accumulators.
      parallel_for(nhb, 1, [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) {
          const int64_t j0 = t * hblk, j1 = std::min(H, j0 + hblk);
          for (int64_t r = 0; r < m; ++r) {
            const int64_t row = row0 + r, b = row / N;
            const double ds = s.d_scores[row];
            float* zr = z.data() + r * H;
            for (int64_t j = j0; j < j1; ++j) {
              const double zz = (double)zr[j] + (double)p.b1[j];
              const double cdf = 0.5 * (1.0 + std::erf(zz * 0.70710678118654752));
              const double u = zz * cdf;
              const double du = cdf + zz * std::exp(-0.5 * zz * zz) * 0.39894228040143268;
              const double gam = rc.gamma[b * H + j], w2 = p.w2[j];
              dw2[j] += ds * (u * (1.0 + gam) + (double)rc.beta[b * H + j]);
              dgam[b * H + j] += ds * u * w2;
              const double dz = ds * w2 * (1.0 + gam) * du;
              db1[j] += dz;
              zr[j] = (float)dz;
            }
          }
        }
      });
      gemm(true, false, D, H, m, 1.f, h.data(), D, z.data(), GRIP_F32, H, 1.f, g.w1, H);
      gemm(false, true, m, D, H, 1.f, z.data(), H, p.w1, GRIP_F32, H, 0.f, dh.data(), D);
      // Column blocks of D: LayerNorm grads and g_b.
      parallel_for(ndb, 1, [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) {
          const int64_t d0 = t * dblk, d1 = std::min(D, d0 + dblk);
          for (int64_t r = 0; r < m; ++r) {
            const int64_t row = row0 + r, b = row / N;
            const double ds = s.d_scores[row];
            const float* hr = h.data() + r * D;
            const float* dhr = dh.data() + r * D;
            const float* vb = rc.v.data() + b * D;
            double* gb = gsum.data() + b * D;
            const double mu = mean[r], rs = rstd[r];
            for (int64_t d = d0; d < d1; ++d) {
              const double dhd = (double)dhr[d] + ds * (double)vb[d];
              const double xhat = ((double)load_float(s.x, (int)s.x_dtype, row * D + d) - mu) * rs;
              dlnw[d] += dhd * xhat;
              dlnb[d] += dhd;
              gb[d] += ds * (double)hr[d];
            }
          }
        }
      });
    }
  }
  for (int64_t d = 0; d < D; ++d) {
    g.ln_weight[d] = (float)dlnw[d];
    g.ln_bias[d] = (float)dlnb[d];
  }
  double db2 = 0;
  for (int64_t b = 0; b < B; ++b) db2 += dsum[b];
  g.b2[0] = (float)db2;
  for (int64_t j = 0; j < H; ++j) {
    g.b1[j] = (float)db1[j];
    g.w2[j] = (float)dw2[j];
  }
  // FiLM: dfilm_b[c] = sum_b dfilm[b,c]; dfilm_w[f,c] = sum_b fourier[b,f] dfilm[b,c].
  for (int64_t c = 0; c < 2 * H; ++c) {
    double acc_b = 0, acc_w[kFourierFeatures] = {0};
    for (int64_t b = 0; b < B; ++b) {
      const double df = c < H ? dgam[b * H + c] : (double)p.w2[c - H] * dsum[b];
      acc_b += df;
      for (int f = 0; f < kFourierFeatures; ++f) acc_w[f] += rc.four[b * kFourierFeatures + f] * df;
    }
    g.film_b[c] = (float)acc_b;
    for (int f = 0; f < kFourierFeatures; ++f) g.film_w[f * 2 * H + c] = (float)acc_w[f];
  }
  // Query path.
  if (R > 0) {
    const double inv_sqrt_r = 1.0 / std::sqrt((double)R);
    std::vector<double> gk((size_t)(B * R), 0.0);  // g_b · wk[:,r] / sqrt(R)
    for (int64_t b = 0; b < B; ++b) {
      const double* gb = gsum.data() + b * D;
      double* o = gk.data() + b * R;
      for (int64_t d = 0; d < D; ++d)
        for (int64_t r = 0; r < R; ++r) o[r] += gb[d] * (double)p.wk[d * R + r];
      for (int64_t r = 0; r < R; ++r) o[r] *= inv_sqrt_r;
    }
    parallel_for(D, 64, [&](int64_t d0, int64_t d1) {
      for (int64_t d = d0; d < d1; ++d)
        for (int64_t r = 0; r < R; ++r) {
          double ak = 0, aq = 0;
          for (int64_t b = 0; b < B; ++b) {
            ak += gsum[b * D + d] * rc.qp[b * R + r];
            aq += (double)s.query[b * D + d] * gk[b * R + r];
          }
          g.wk[d * R + r] = (float)(ak * inv_sqrt_r);
          g.wq[d * R + r] = (float)aq;
        }
    });
  }
  return Status::Ok();
}

}  // namespace cpu
}  // namespace grip
