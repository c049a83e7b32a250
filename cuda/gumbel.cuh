// gumbel.cuh — Gumbel-top-k sampling and the Plackett-Luce log-probability
// and its gradient (README items 4 and 5), with the CPU twin's numerics:
// everything in double, lse of the undrawn rest + an online suffix lse over
// the draws, prefix logaddexp of -lse for the gradient.
// Validation first (bad_logit_kernel, pl_index_check_kernel: first offender
// in row-major order through an atomicMin error slot), then compute kernels.
#pragma once
#include "reduce.cuh"

namespace grip {
namespace GRIP_CUDA_NS {

constexpr int kGumbelThreads = 256;
constexpr int64_t kGumbelSmemMax = 2048;  // padded N sorted in shared memory
constexpr int32_t kNotDrawn = 0x7f7f7f7f;  // pos[] fill (memset 0x7f)

__device__ inline double neg_inf_d() { return -(double)INFINITY; }

__device__ inline double logaddexp_d(double a, double b) {
  if (a < b) {
    const double t = a;
    a = b;
    b = t;
  }
  if (b == neg_inf_d()) return a;
  return a + log1p(exp(b - a));
}

// Sortable key of a double (larger -> larger key); -0 and +0 are equal.
__device__ inline uint64_t double_order_key(double d) {
  if (d == 0.0) d = 0.0;
  const uint64_t bits = (uint64_t)__double_as_longlong(d);
  return (bits & 0x8000000000000000ull) ? ~bits : (bits | 0x8000000000000000ull);
}

// One thread: the Plackett-Luce log-prob of draws idx[0..k) given the lse of
// the undrawn rest; lse[j] (optional) receives the lse of the set left at step j.
__device__ inline double pl_serial(const float* l, const int32_t* idx, int64_t k,
                                   double lse_rest, double* lse) {
  double m = neg_inf_d(), s = 0.0, lp = 0.0;
  for (int64_t j = k - 1; j >= 0; --j) {
    const double x = l[idx[j]];
    if (x > m) {
      s = (m == neg_inf_d() ? 0.0 : s * exp(m - x)) + 1.0;
      m = x;
    } else {
      s += exp(x - m);
    }
    const double lj = logaddexp_d(lse_rest, m + log(s));
    if (lse) lse[j] = lj;
    lp += x - lj;
  }
  return lp;
}

// err = first flat n with logits[n] NaN or +inf. Flat grid-stride over total.
__global__ void bad_logit_kernel(const float* logits, int64_t total, unsigned long long* err) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (int64_t)gridDim.x * blockDim.x) {
    if (!(logits[i] < INFINITY)) report_error(err, i);
  }
}

// Shapes: indices [B*G,k], pos [B*G,N] (filled with kNotDrawn); grid B*G.
// pos[s,n] = the draw position of token n in sample s. err = first flat
// (s*k + j) whose index is out of [0,N) or repeats an earlier draw.
__global__ void pl_index_check_kernel(const int32_t* indices, int64_t N, int64_t k, int32_t* pos,
                                      unsigned long long* err) {
  const int64_t s = blockIdx.x;
  const int32_t* idx = indices + s * k;
  int32_t* p = pos + s * N;
  for (int64_t j = threadIdx.x; j < k; j += blockDim.x) {
    const int32_t v = idx[j];
    if (v < 0 || v >= N) report_error(err, s * k + j);
    else atomicMin(&p[v], (int32_t)j);
  }
  __syncthreads();
  for (int64_t j = threadIdx.x; j < k; j += blockDim.x) {
    const int32_t v = idx[j];
    if (v >= 0 && v < N && p[v] != (int32_t)j) report_error(err, s * k + j);
  }
}

// Per sample s = (b,g): log_prob (f32, optional), lp [B*G] double, lse [B*G,k]
// (with prefix: replaced by log sum_{t<=j} exp(-lse_t), for the gradient).
// Shapes: logits [B,N], indices [B*G,k], pos [B*G,N]; grid B*G, block kGumbelThreads.
__global__ void pl_logprob_kernel(const float* logits, const int32_t* indices,
                                  const int32_t* pos, int64_t N, int64_t G, int64_t k,
                                  int prefix, double* lse, double* lp_out, float* log_prob) {
  __shared__ double red[33];
  const int64_t s = blockIdx.x;
  const float* l = logits + (s / G) * N;
  const int32_t* idx = indices + s * k;
  const int32_t* p = pos + s * N;
  if (k == 0) {
    if (threadIdx.x == 0) {
      lp_out[s] = 0.0;
      if (log_prob) log_prob[s] = 0.f;
    }
    return;
  }
  int any = 0;
  for (int64_t j = threadIdx.x; j < k; j += blockDim.x) any |= l[idx[j]] == -INFINITY;
  const bool neg_inf = __syncthreads_or(any) != 0;
  double lse_rest = neg_inf_d();
  if (!neg_inf) {
    double mx = neg_inf_d();
    for (int64_t n = threadIdx.x; n < N; n += blockDim.x)
      if (p[n] == kNotDrawn && (double)l[n] > mx) mx = l[n];
    mx = block_max(mx, neg_inf_d(), red);
    if (mx != neg_inf_d()) {
      double sum = 0.0;
      for (int64_t n = threadIdx.x; n < N; n += blockDim.x)
        if (p[n] == kNotDrawn) sum += exp((double)l[n] - mx);
      lse_rest = mx + log(block_sum(sum, red));
    }
  }
  if (threadIdx.x != 0) return;
  double* ls = lse + s * k;
  const double lp = neg_inf ? neg_inf_d() : pl_serial(l, idx, k, lse_rest, ls);
  lp_out[s] = lp;
  if (log_prob) log_prob[s] = (float)lp;
  if (prefix && !neg_inf) {
    double m = neg_inf_d(), acc = 0.0;
    for (int64_t j = 0; j < k; ++j) {
      const double x = -ls[j];
      if (x > m) {
        acc = (m == neg_inf_d() ? 0.0 : acc * exp(m - x)) + 1.0;
        m = x;
      } else {
        acc += exp(x - m);
      }
      ls[j] = m + log(acc);
    }
  }
}

// d_logits[b,n] = sum_g dlp[b,g] * d log_prob[b,g] / d l[n], summed over g in
// order. Shapes: logits [B,N], pos [B*G,N], pre [B*G,k] (prefix lse), lp [B*G],
// dlp [B,G], d_logits [B,N]; grid (ceil(N/256), B), block 256.
__global__ void pl_backward_kernel(const float* logits, const int32_t* pos, const double* pre,
                                   const double* lp, const float* dlp, int64_t N, int64_t G,
                                   int64_t k, float* d_logits) {
  const int64_t b = blockIdx.y, n = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (n >= N) return;
  const double x = logits[b * N + n];
  double acc = 0.0;
  for (int64_t g = 0; g < G; ++g) {
    const int64_t s = b * G + g;
    const double d = dlp[s];
    if (k == 0 || d == 0.0 || lp[s] == neg_inf_d()) continue;
    const int32_t t = pos[s * N + n];
    if (t == kNotDrawn) {
      if (x != neg_inf_d()) acc -= d * exp(x + pre[s * k + k - 1]);
    } else {
      acc += d * (1.0 - exp(x + pre[s * k + t]));
    }
  }
  d_logits[b * N + n] = (float)acc;
}

// One block per sample s = (b,g): Gumbel keys in double, bitonic sort of
// (key desc, index asc) over the padded length P (a power of two) in dynamic
// shared memory when use_smem, else in global scratch gkeys/gidx [B*G,P];
// then the first k are the sample, and the log-prob as in pl_logprob_kernel.
// Shapes: logits [B,N], indices [B*G,k], log_prob [B*G]; grid B*G, block kGumbelThreads.
__global__ void gumbel_topk_kernel(const float* logits, int64_t N, int64_t G, int64_t k,
                                   int64_t P, uint64_t seed, int use_smem, uint64_t* gkeys,
                                   int32_t* gidx, int32_t* indices, float* log_prob) {
  GRIP_DYNAMIC_SMEM(uint64_t, smem);
  __shared__ double red[33];
  const int64_t s = blockIdx.x, b = s / G, g = s % G;
  const int tid = threadIdx.x, nthreads = blockDim.x;
  if (k == 0) {
    if (tid == 0) log_prob[s] = 0.f;
    return;
  }
  uint64_t* keys = use_smem ? smem : gkeys + s * P;
  int32_t* idx = use_smem ? reinterpret_cast<int32_t*>(smem + P) : gidx + s * P;
  const float* l = logits + b * N;
  for (int64_t n = tid; n < P; n += nthreads) {
    if (n < N) {
      const double x = l[n];
      const double u = uniform_open(seed, b, g, n);
      const double key = x == neg_inf_d() ? neg_inf_d() : x - log(-log(u));
      keys[n] = double_order_key(key);
      idx[n] = (int32_t)n;
    } else {
      keys[n] = 0;  // below every real key (-inf included)
      idx[n] = 0x7fffffff;
    }
  }
  __syncthreads();
  for (int64_t size = 2; size <= P; size <<= 1) {
    for (int64_t stride = size >> 1; stride > 0; stride >>= 1) {
      for (int64_t i = tid; i < P / 2; i += nthreads) {
        const int64_t lo = (i / stride) * 2 * stride + (i % stride), hi = lo + stride;
        const uint64_t ka = keys[lo], kb = keys[hi];
        const int32_t ia = idx[lo], ib = idx[hi];
        const bool hi_first = kb > ka || (kb == ka && ib < ia);  // hi sorts before lo
        const bool forward = (lo & size) == 0;  // this run wants sample order
        if (hi_first == forward) {
          keys[lo] = kb;
          keys[hi] = ka;
          idx[lo] = ib;
          idx[hi] = ia;
        }
      }
      __syncthreads();
    }
  }
  int32_t* out = indices + s * k;
  int any = 0;
  for (int64_t j = tid; j < k; j += nthreads) {
    out[j] = idx[j];
    any |= l[idx[j]] == -INFINITY;
  }
  const bool neg_inf = __syncthreads_or(any) != 0;
  double lse_rest = neg_inf_d();
  if (!neg_inf) {
    double mx = neg_inf_d();
    for (int64_t j = k + tid; j < N; j += nthreads)
      if ((double)l[idx[j]] > mx) mx = l[idx[j]];
    mx = block_max(mx, neg_inf_d(), red);
    if (mx != neg_inf_d()) {
      double sum = 0.0;
      for (int64_t j = k + tid; j < N; j += nthreads) sum += exp((double)l[idx[j]] - mx);
      lse_rest = mx + log(block_sum(sum, red));
    }
  }
  if (tid == 0)
    log_prob[s] = neg_inf ? -INFINITY : (float)pl_serial(l, idx, k, lse_rest, nullptr);
}

// ---- host -------------------------------------------------------------------

inline Status check_logits_dev(const float* logits, int64_t B, int64_t N) {
  const int64_t total = B * N;
  if (total == 0) return Status::Ok();
  DeviceScratch err;
  GRIP_RETURN_IF_ERROR(make_error_slot(err));
  unsigned long long* err_p = err.as<unsigned long long>();  // never capture a DeviceScratch
  GRIP_LAUNCH(bad_logit_kernel, flat_blocks(total, kGumbelThreads), kGumbelThreads, 0, logits,
              total, err_p);
  GRIP_RETURN_IF_ERROR(grip_dev_check_launch("bad_logit_kernel"));
  unsigned long long flat;
  GRIP_RETURN_IF_ERROR(read_error_slot(err, &flat));
  if (flat == kNoError) return Status::Ok();
  float value;
  GRIP_RETURN_IF_ERROR(grip_dev_to_host(&value, logits + flat, sizeof(float)));
  return BadLogitError(value, (int64_t)flat / N, (int64_t)flat % N);
}

Status gumbel_topk(const GumbelTopkArgs& a) {
  GRIP_RETURN_IF_ERROR(check_logits_dev(a.logits, a.B, a.N));
  const int64_t S = a.B * a.G;
  if (S == 0) return Status::Ok();
  int64_t P = 1;
  while (P < a.N) P <<= 1;
  const bool use_smem = P <= kGumbelSmemMax;
  DeviceScratch keys, idx;
  if (!use_smem && a.k > 0) {
    GRIP_RETURN_IF_ERROR(alloc_bytes(keys, sizeof(uint64_t) * S * P));
    GRIP_RETURN_IF_ERROR(alloc_bytes(idx, sizeof(int32_t) * S * P));
  }
  const size_t smem = use_smem ? (size_t)P * (sizeof(uint64_t) + sizeof(int32_t)) : 0;
  uint64_t* keys_p = keys.as<uint64_t>();
  int32_t* idx_p = idx.as<int32_t>();
  GRIP_LAUNCH(gumbel_topk_kernel, (unsigned)S, kGumbelThreads, smem, a.logits, a.N, a.G, a.k, P,
              a.seed, use_smem ? 1 : 0, keys_p, idx_p, a.indices,
              a.log_prob);
  return grip_dev_check_launch("gumbel_topk_kernel");
}

// Validates logits and indices; fills pos [B*G,N], lse [B*G,k], lp [B*G].
inline Status pl_prepare(const PlackettLuceArgs& a, DeviceScratch& pos, DeviceScratch& lse,
                         DeviceScratch& lp, bool prefix, float* log_prob) {
  GRIP_RETURN_IF_ERROR(check_logits_dev(a.logits, a.B, a.N));
  const int64_t S = a.B * a.G;
  GRIP_RETURN_IF_ERROR(alloc_bytes(pos, sizeof(int32_t) * S * a.N));
  GRIP_RETURN_IF_ERROR(grip_dev_memset(pos.ptr, 0x7f, sizeof(int32_t) * S * a.N));
  if (S > 0 && a.k > 0) {
    DeviceScratch err;
    GRIP_RETURN_IF_ERROR(make_error_slot(err));
    int32_t* pos_p = pos.as<int32_t>();
    unsigned long long* err_p = err.as<unsigned long long>();
    GRIP_LAUNCH(pl_index_check_kernel, (unsigned)S, kGumbelThreads, 0, a.indices, a.N, a.k,
                pos_p, err_p);
    GRIP_RETURN_IF_ERROR(grip_dev_check_launch("pl_index_check_kernel"));
    unsigned long long flat;
    GRIP_RETURN_IF_ERROR(read_error_slot(err, &flat));
    if (flat != kNoError) {
      int32_t value;
      GRIP_RETURN_IF_ERROR(grip_dev_to_host(&value, a.indices + flat, sizeof(int32_t)));
      const int64_t s = (int64_t)flat / a.k, j = (int64_t)flat % a.k;
      return SampleIndexError(value, a.N, value >= 0 && value < a.N, s / a.G, s % a.G, j);
    }
  }
  GRIP_RETURN_IF_ERROR(alloc_bytes(lse, sizeof(double) * S * a.k));
  GRIP_RETURN_IF_ERROR(alloc_bytes(lp, sizeof(double) * S));
  if (S == 0) return Status::Ok();
  const int32_t* pos_p = pos.as<int32_t>();
  double* lse_p = lse.as<double>();
  double* lp_p = lp.as<double>();
  GRIP_LAUNCH(pl_logprob_kernel, (unsigned)S, kGumbelThreads, 0, a.logits, a.indices, pos_p, a.N,
              a.G, a.k, prefix ? 1 : 0, lse_p, lp_p, log_prob);
  return grip_dev_check_launch("pl_logprob_kernel");
}

Status plackett_luce_log_prob(const PlackettLuceArgs& a) {
  DeviceScratch pos, lse, lp;
  return pl_prepare(a, pos, lse, lp, false, a.log_prob);
}

Status plackett_luce_backward(const PlackettLuceArgs& a) {
  DeviceScratch pos, lse, lp;
  GRIP_RETURN_IF_ERROR(pl_prepare(a, pos, lse, lp, true, nullptr));
  if (a.B == 0 || a.N == 0) return Status::Ok();
  const int32_t* pos_p = pos.as<int32_t>();
  const double* pre_p = lse.as<double>();
  const double* lp_p = lp.as<double>();
  GRIP_LAUNCH(pl_backward_kernel, dim3(ceil_div(a.N, 256), (unsigned)a.B), 256, 0, a.logits,
              pos_p, pre_p, lp_p, a.d_log_prob, a.N, a.G, a.k,
              a.d_logits);
  return grip_dev_check_launch("pl_backward_kernel");
}

}  // namespace GRIP_CUDA_NS
}  // namespace grip
