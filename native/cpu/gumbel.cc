// gumbel.cc — CPU twins of gumbel_topk, plackett_luce_log_prob and
// plackett_luce_backward (all arithmetic in double).
//
// Log-sum-exp over the remaining set at step j without cancellation: the
// remaining set is (never drawn items) ∪ {i_j..i_{k-1}}, so
//   lse_j = logaddexp(lse_rest, lse over the suffix i_j..i_{k-1}),
// where lse_rest is one stable pass over the never-drawn items and the
// suffix lse is a running (online, max-rescaled) log-sum-exp from the back.
// Every term is a sum of positives: relative error ~ a few ulp times log N.
#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "../core/backend.h"
#include "../core/errors.h"
#include "../core/portable.h"
#include "../core/threadpool.h"

namespace grip {
namespace cpu {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

Status check_logits(const float* logits, int64_t B, int64_t N) {
  for (int64_t b = 0; b < B; ++b) {
    const float* l = logits + b * N;
    bool bad = false;
    for (int64_t n = 0; n < N; ++n) bad |= IsBadLogit(l[n]);
    if (bad)
      for (int64_t n = 0; n < N; ++n)
        if (IsBadLogit(l[n])) return BadLogitError(l[n], b, n);
  }
  return Status::Ok();
}

inline double logaddexp(double a, double b) {
  if (a < b) std::swap(a, b);
  if (b == kNegInf) return a;
  return a + std::log1p(std::exp(b - a));
}

// lse[j] for j < k of the sample idx (distinct, valid) over row l; `drawn`
// is scratch of N bytes, all zero on entry and on exit. Returns the log-prob
// (-inf when a drawn logit is -inf; then lse is not filled).
double pl_lse(const float* l, int64_t N, const int32_t* idx, int64_t k, unsigned char* drawn,
              double* lse) {
  if (k == 0) return 0.0;
  bool neg_inf = false;
  for (int64_t j = 0; j < k; ++j) {
    drawn[idx[j]] = 1;
    neg_inf |= l[idx[j]] == -std::numeric_limits<float>::infinity();
  }
  double lse_rest = kNegInf;
  if (!neg_inf) {
    double mx = kNegInf;
    for (int64_t n = 0; n < N; ++n)
      if (!drawn[n]) mx = std::max(mx, (double)l[n]);
    if (mx != kNegInf) {
      double s = 0;
      for (int64_t n = 0; n < N; ++n)
        if (!drawn[n]) s += std::exp((double)l[n] - mx);
      lse_rest = mx + std::log(s);
    }
  }
  for (int64_t j = 0; j < k; ++j) drawn[idx[j]] = 0;
  if (neg_inf) return kNegInf;
  // Suffix log-sum-exp from the back: (m, s) with lse = m + log(s).
  double m = kNegInf, s = 0, lp = 0;
  for (int64_t j = k - 1; j >= 0; --j) {
    const double x = l[idx[j]];
    if (x > m) {
      s = (m == kNegInf ? 0.0 : s * std::exp(m - x)) + 1.0;
      m = x;
    } else {
      s += std::exp(x - m);
    }
    lse[j] = logaddexp(lse_rest, m + std::log(s));
    lp += x - lse[j];
  }
  return lp;
}

// Validates indices[B,G,k] (range, repeats), first offender in row-major order.
Status check_indices(const PlackettLuceArgs& a) {
  std::vector<unsigned char> seen((size_t)a.N, 0);
  for (int64_t b = 0; b < a.B; ++b)
    for (int64_t g = 0; g < a.G; ++g) {
      const int32_t* idx = a.indices + (b * a.G + g) * a.k;
      Status err;
      int64_t j = 0;
      for (; j < a.k; ++j) {
        const int32_t v = idx[j];
        if (v < 0 || v >= a.N) {
          err = SampleIndexError(v, a.N, false, b, g, j);
          break;
        }
        if (seen[v]) {
          err = SampleIndexError(v, a.N, true, b, g, j);
          break;
        }
        seen[v] = 1;
      }
      for (int64_t t = 0; t < j; ++t) seen[idx[t]] = 0;
      if (!err.ok()) return err;
    }
  return Status::Ok();
}

}  // namespace

Status gumbel_topk(const GumbelTopkArgs& a) {
  const int64_t B = a.B, N = a.N, K = a.k, G = a.G;
  GRIP_RETURN_IF_ERROR(check_logits(a.logits, B, N));
  const int64_t work = std::max<int64_t>(1, N);
  parallel_for(B * G, std::max<int64_t>(1, 4096 / work), [&](int64_t t0, int64_t t1) {
    std::vector<std::pair<double, int32_t>> keys((size_t)N);
    std::vector<unsigned char> drawn((size_t)N, 0);
    std::vector<double> lse((size_t)K);
    const auto before = [](const std::pair<double, int32_t>& x, const std::pair<double, int32_t>& y) {
      return x.first > y.first || (x.first == y.first && x.second < y.second);
    };
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t b = t / G, g = t % G;
      const float* l = a.logits + b * N;
      int32_t* out = a.indices + t * K;
      if (K == 0) {
        a.log_prob[t] = 0.f;
        continue;
      }
      for (int64_t n = 0; n < N; ++n) {
        const double u = uniform_open(a.seed, b, g, n);
        const double x = l[n];
        keys[n] = {x == kNegInf ? kNegInf : x - std::log(-std::log(u)), (int32_t)n};
      }
      if (K < N) std::nth_element(keys.begin(), keys.begin() + (K - 1), keys.end(), before);
      std::sort(keys.begin(), keys.begin() + K, before);
      for (int64_t j = 0; j < K; ++j) out[j] = keys[j].second;
      a.log_prob[t] = (float)pl_lse(l, N, out, K, drawn.data(), lse.data());
    }
  });
  return Status::Ok();
}

Status plackett_luce_log_prob(const PlackettLuceArgs& a) {
  GRIP_RETURN_IF_ERROR(check_logits(a.logits, a.B, a.N));
  GRIP_RETURN_IF_ERROR(check_indices(a));
  const int64_t B = a.B, N = a.N, G = a.G, K = a.k;
  parallel_for(B * G, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, N)), [&](int64_t t0, int64_t t1) {
    std::vector<unsigned char> drawn((size_t)N, 0);
    std::vector<double> lse((size_t)K);
    for (int64_t t = t0; t < t1; ++t)
      a.log_prob[t] = (float)pl_lse(a.logits + (t / G) * N, N, a.indices + t * K, K, drawn.data(),
                                    lse.data());
  });
  return Status::Ok();
}

// d log_prob / d l[n] = [n drawn] - sum_{j : n remaining at j} exp(l_n - lse_j).
// Drawn item i_t is remaining for j <= t, a never-drawn one for all j < k:
// with LP_t = logsumexp_{j<=t}(-lse_j) the sum is exp(l_n + LP_t) (<= t+1,
// no overflow since l_n <= lse_j), O(N + k) per sample.
Status plackett_luce_backward(const PlackettLuceArgs& a) {
  GRIP_RETURN_IF_ERROR(check_logits(a.logits, a.B, a.N));
  GRIP_RETURN_IF_ERROR(check_indices(a));
  const int64_t B = a.B, N = a.N, G = a.G, K = a.k;
  parallel_for(B, 1, [&](int64_t b0, int64_t b1) {
    std::vector<unsigned char> drawn((size_t)N, 0);
    std::vector<double> lse((size_t)K), lp((size_t)K), acc((size_t)N);
    for (int64_t b = b0; b < b1; ++b) {
      const float* l = a.logits + b * N;
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t g = 0; g < G; ++g) {
        const double dlp = a.d_log_prob[b * G + g];
        const int32_t* idx = a.indices + (b * G + g) * K;
        if (K == 0 || dlp == 0.0) continue;
        const double logp = pl_lse(l, N, idx, K, drawn.data(), lse.data());
        if (logp == kNegInf) continue;
        // LP_t = logsumexp_{j<=t}(-lse_j), running.
        double m = kNegInf, s = 0;
        for (int64_t j = 0; j < K; ++j) {
          const double x = -lse[j];
          if (x > m) {
            s = (m == kNegInf ? 0.0 : s * std::exp(m - x)) + 1.0;
            m = x;
          } else {
            s += std::exp(x - m);
          }
          lp[j] = m + std::log(s);
        }
        const double lp_all = lp[K - 1];
        for (int64_t j = 0; j < K; ++j) drawn[idx[j]] = 1;
        for (int64_t n = 0; n < N; ++n)
          if (!drawn[n] && l[n] != -std::numeric_limits<float>::infinity())
            acc[n] -= dlp * std::exp((double)l[n] + lp_all);
        for (int64_t j = 0; j < K; ++j) {
          const int32_t n = idx[j];
          drawn[n] = 0;
          acc[n] += dlp * (1.0 - std::exp((double)l[n] + lp[j]));
        }
      }
      float* out = a.d_logits + b * N;
      for (int64_t n = 0; n < N; ++n) out[n] = (float)acc[n];
    }
  });
  return Status::Ok();
}

}  // namespace cpu
}  // namespace grip
