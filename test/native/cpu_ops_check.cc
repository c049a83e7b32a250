// cpu_ops_check.cc — the CPU twins (grip::cpu) against naive double-precision
// implementations written here, plus finite-difference gradient checks and
// every data-dependent error path (exact message text).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "core/backend.h"
#include "core/portable.h"

namespace {

using grip::Status;
constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr double kDInf = std::numeric_limits<double>::infinity();

std::vector<float> randv(std::mt19937& rng, size_t n, float lo = -1.f, float hi = 1.f) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// ---- scorer ------------------------------------------------------------------
struct Scorer {
  int64_t B, N, D, H, R;
  std::vector<float> x, query, rho;
  std::vector<uint16_t> x16;  // x as f16 or bf16 bits (when dtype != f32)
  grip_dtype dtype = GRIP_F32;
  std::vector<float> lnw, lnb, w1, b1, fw, fb, w2, b2, wq, wk;
  std::vector<float>* param(int i) {
    std::vector<float>* p[10] = {&lnw, &lnb, &w1, &b1, &fw, &fb, &w2, &b2, &wq, &wk};
    return p[i];
  }
};

Scorer make_scorer(std::mt19937& rng, int64_t B, int64_t N, int64_t D, int64_t H, int64_t R,
                   grip_dtype dtype = GRIP_F32) {
  Scorer s;
  s.B = B; s.N = N; s.D = D; s.H = H; s.R = R;
  s.dtype = dtype;
  s.x = randv(rng, B * N * D, -2.f, 2.f);
  for (int64_t i = 0; i < B * N * D; i += 7) s.x[i] += 1.5f;  // nonzero mean
  if (dtype != GRIP_F32) {
    s.x16.resize(s.x.size());
    for (size_t i = 0; i < s.x.size(); ++i) {
      s.x16[i] = dtype == GRIP_F16 ? grip::f32_to_f16(s.x[i]) : grip::f32_to_bf16(s.x[i]);
      s.x[i] = grip::load_float(s.x16.data(), (int)dtype, (int64_t)i);
    }
  }
  s.query = randv(rng, B * D);
  s.rho = randv(rng, B, 0.05f, 1.f);
  s.lnw = randv(rng, D, 0.5f, 1.5f);
  s.lnb = randv(rng, D, -0.2f, 0.2f);
  const float sc = 1.f / std::sqrt((float)D);
  s.w1 = randv(rng, D * H, -2 * sc, 2 * sc);
  s.b1 = randv(rng, H, -0.5f, 0.5f);
  s.fw = randv(rng, 16 * 2 * H, -0.3f, 0.3f);
  s.fb = randv(rng, 2 * H, -0.3f, 0.3f);
  s.w2 = randv(rng, H);
  s.b2 = randv(rng, 1);
  s.wq = randv(rng, D * R, -sc, sc);
  s.wk = randv(rng, D * R, -sc, sc);
  return s;
}

grip::ScoreArgs score_args(const Scorer& s) {
  grip::ScoreArgs a;
  a.x = s.dtype == GRIP_F32 ? (const void*)s.x.data() : (const void*)s.x16.data();
  a.x_dtype = s.dtype;
  a.query = s.query.data();
  a.keep_ratio = s.rho.data();
  a.params = {s.lnw.data(), s.lnb.data(), s.w1.data(), s.b1.data(), s.fw.data(),
              s.fb.data(),  s.w2.data(),  s.b2.data(), s.wq.data(), s.wk.data()};
  a.B = s.B; a.N = s.N; a.D = s.D; a.H = s.H; a.R = s.R;
  return a;
}

// Double-precision forward, straight from the README formula.
std::vector<double> ref_scores(const Scorer& s) {
  const int64_t B = s.B, N = s.N, D = s.D, H = s.H, R = s.R;
  std::vector<double> out(B * N);
  for (int64_t b = 0; b < B; ++b) {
    double four[16];
    for (int j = 0; j < 8; ++j) {
      four[2 * j] = std::sin(std::ldexp(1.0, j) * M_PI * s.rho[b]);
      four[2 * j + 1] = std::cos(std::ldexp(1.0, j) * M_PI * s.rho[b]);
    }
    std::vector<double> film(2 * H);
    for (int64_t c = 0; c < 2 * H; ++c) {
      film[c] = s.fb[c];
      for (int f = 0; f < 16; ++f) film[c] += four[f] * s.fw[f * 2 * H + c];
    }
    std::vector<double> qw(R, 0.0);
    for (int64_t r = 0; r < R; ++r)
      for (int64_t d = 0; d < D; ++d) qw[r] += (double)s.query[b * D + d] * s.wq[d * R + r];
    for (int64_t n = 0; n < N; ++n) {
      const float* xr = &s.x[(b * N + n) * D];
      double mean = 0, var = 0;
      for (int64_t d = 0; d < D; ++d) mean += xr[d];
      mean /= D;
      for (int64_t d = 0; d < D; ++d) var += (xr[d] - mean) * (xr[d] - mean);
      var /= D;
      std::vector<double> h(D);
      for (int64_t d = 0; d < D; ++d)
        h[d] = (xr[d] - mean) / std::sqrt(var + 1e-5) * s.lnw[d] + s.lnb[d];
      double sc = s.b2[0];
      for (int64_t j = 0; j < H; ++j) {
        double z = s.b1[j];
        for (int64_t d = 0; d < D; ++d) z += h[d] * s.w1[d * H + j];
        const double u = 0.5 * z * (1 + std::erf(z / std::sqrt(2.0)));
        sc += (u * (1 + film[j]) + film[H + j]) * s.w2[j];
      }
      double qt = 0;
      for (int64_t r = 0; r < R; ++r) {
        double hk = 0;
        for (int64_t d = 0; d < D; ++d) hk += h[d] * s.wk[d * R + r];
        qt += qw[r] * hk;
      }
      out[b * N + n] = sc + (R > 0 ? qt / std::sqrt((double)R) : 0.0);
    }
  }
  return out;
}

void check_forward(grip_check::Context& grip_check_ctx, const Scorer& s, const char* what) {
  grip::ScoreForwardArgs a;
  static_cast<grip::ScoreArgs&>(a) = score_args(s);
  std::vector<float> got(s.B * s.N, -12345.f);
  a.scores = got.data();
  Status st = grip::cpu::score_tokens(a);
  CHECK_TRUE(st.ok(), std::string(what) + ": " + st.message);
  const std::vector<double> want = ref_scores(s);
  double worst = 0;
  for (size_t i = 0; i < want.size(); ++i)
    worst = std::max(worst, std::fabs(got[i] - want[i]) / (1e-2 + std::fabs(want[i])));
  CHECK_TRUE(worst < 2e-4, std::string(what) + ": score rel err " + std::to_string(worst));
}

GRIP_CHECK(cpu_score_tokens_forward) {
  std::mt19937 rng(1);
  check_forward(grip_check_ctx, make_scorer(rng, 2, 5, 37, 19, 3), "small f32");
  check_forward(grip_check_ctx, make_scorer(rng, 1, 1, 8, 16, 1), "B=N=1");
  check_forward(grip_check_ctx, make_scorer(rng, 3, 7, 64, 32, 4, GRIP_F16), "f16");
  check_forward(grip_check_ctx, make_scorer(rng, 2, 9, 50, 33, 5, GRIP_BF16), "bf16");
  check_forward(grip_check_ctx, make_scorer(rng, 1, 3, 2500, 40, 8), "large D");
  check_forward(grip_check_ctx, make_scorer(rng, 2, 70, 96, 24, 2, GRIP_F16), "more rows");
  Scorer big = make_scorer(rng, 1, 4, 64, 8, 2);
  for (auto& v : big.x) v = v * 3000.f + 1e4f;  // large mean vs spread
  check_forward(grip_check_ctx, big, "offset x");
}

GRIP_CHECK(cpu_score_tokens_backward_fd) {
  std::mt19937 rng(2);
  const char* names[10] = {"ln_weight", "ln_bias", "w1", "b1", "film_w",
                           "film_b",    "w2",      "b2", "wq", "wk"};
  const grip_dtype dts[3] = {GRIP_F32, GRIP_BF16, GRIP_F32};
  const int64_t shapes[3][5] = {{2, 3, 6, 5, 2}, {1, 4, 9, 3, 1}, {3, 2, 5, 7, 3}};
  for (int t = 0; t < 3; ++t) {
    Scorer s = make_scorer(rng, shapes[t][0], shapes[t][1], shapes[t][2], shapes[t][3],
                           shapes[t][4], dts[t]);
    for (auto& v : s.w2) v *= 2.f;
    std::vector<float> ds = randv(rng, s.B * s.N);
    grip::ScoreBackwardArgs a;
    static_cast<grip::ScoreArgs&>(a) = score_args(s);
    a.d_scores = ds.data();
    std::vector<std::vector<float>> g(10);
    for (int i = 0; i < 10; ++i) g[i].assign(s.param(i)->size(), 777.f);  // must be overwritten
    a.grads = {g[0].data(), g[1].data(), g[2].data(), g[3].data(), g[4].data(),
               g[5].data(), g[6].data(), g[7].data(), g[8].data(), g[9].data()};
    Status st = grip::cpu::score_tokens_backward(a);
    CHECK_TRUE(st.ok(), st.message);
    // Finite differences of sum(ds * scores) in double.
    for (int i = 0; i < 10; ++i) {
      std::vector<float>& p = *s.param(i);
      std::vector<double> fd(p.size());
      double scale = 0;
      for (size_t e = 0; e < p.size(); ++e) {
        const float orig = p[e];
        const float step = std::max(1e-3f, std::fabs(orig) * 1e-3f);
        double f[2];
        for (int sgn = 0; sgn < 2; ++sgn) {
          p[e] = orig + (sgn ? -step : step);
          const std::vector<double> sc = ref_scores(s);
          f[sgn] = 0;
          for (size_t k = 0; k < sc.size(); ++k) f[sgn] += ds[k] * sc[k];
        }
        const double hstep = ((double)(orig + step) - (double)(orig - step));
        p[e] = orig;
        fd[e] = (f[0] - f[1]) / hstep;
        scale = std::max(scale, std::fabs(fd[e]));
      }
      double worst = 0;
      for (size_t e = 0; e < p.size(); ++e)
        worst = std::max(worst, std::fabs(g[i][e] - fd[e]) / (1e-3 + scale));
      CHECK_TRUE(worst < 1e-3, "shape " + std::to_string(t) + " grad " + names[i] +
                                   " rel err " + std::to_string(worst));
    }
  }
}

// ---- topk ----------------------------------------------------------------------
void ref_topk(const std::vector<float>& s, int64_t B, int64_t N, const std::vector<int32_t>& k,
              int64_t K, std::vector<int32_t>& idx, std::vector<float>& val) {
  idx.assign(B * K, -1);
  val.assign(B * K, -kInf);
  for (int64_t b = 0; b < B; ++b) {
    std::vector<int32_t> o(N);
    std::iota(o.begin(), o.end(), 0);
    std::stable_sort(o.begin(), o.end(), [&](int32_t x, int32_t y) { return s[b * N + x] > s[b * N + y]; });
    o.resize(k[b]);
    std::sort(o.begin(), o.end());
    for (int64_t j = 0; j < k[b]; ++j) {
      idx[b * K + j] = o[j];
      val[b * K + j] = s[b * N + o[j]];
    }
  }
}

void check_topk(grip_check::Context& grip_check_ctx, const std::vector<float>& s, int64_t B,
                int64_t N, const std::vector<int32_t>& k, const std::string& what) {
  const int64_t K = k.empty() ? 0 : *std::max_element(k.begin(), k.end());
  std::vector<int32_t> idx(B * K, 99), want_idx;
  std::vector<float> val(B * K, 99.f), want_val;
  grip::TopkArgs a{s.data(), k.data(), B, N, K, idx.data(), val.data()};
  Status st = grip::cpu::topk(a);
  CHECK_TRUE(st.ok(), what + ": " + st.message);
  ref_topk(s, B, N, k, K, want_idx, want_val);
  CHECK_TRUE(idx == want_idx, what + ": indices differ");
  bool same = true;
  for (size_t i = 0; i < val.size(); ++i)
    same &= grip::float_bits(val[i]) == grip::float_bits(want_val[i]);
  CHECK_TRUE(same, what + ": values differ");
}

GRIP_CHECK(cpu_topk) {
  std::mt19937 rng(3);
  // Ragged k, random values.
  {
    const int64_t B = 6, N = 40;
    std::vector<float> s = randv(rng, B * N, -5, 5);
    check_topk(grip_check_ctx, s, B, N, {0, 1, 7, 39, 40, 20}, "ragged");
  }
  // Heavy ties (few distinct values), -inf and +inf, -0 and +0.
  {
    const int64_t B = 8, N = 33;
    std::vector<float> s(B * N);
    std::uniform_int_distribution<int> d(0, 4);
    const float vals[5] = {-kInf, -0.f, 0.f, 1.5f, kInf};
    for (auto& v : s) v = vals[d(rng)];
    std::vector<int32_t> k(B);
    for (int64_t b = 0; b < B; ++b) k[b] = (int32_t)(b * 4 + 1);
    check_topk(grip_check_ctx, s, B, N, k, "ties/inf");
  }
  // All equal.
  check_topk(grip_check_ctx, std::vector<float>(50, 2.f), 1, 50, {17}, "all equal");
  check_topk(grip_check_ctx, std::vector<float>(50, -kInf), 1, 50, {49}, "all -inf");
  // N = 1, B = 1.
  check_topk(grip_check_ctx, {3.f}, 1, 1, {1}, "N=1 k=1");
  check_topk(grip_check_ctx, {3.f, 4.f}, 2, 1, {0, 1}, "N=1 ragged");
  check_topk(grip_check_ctx, {3.f, 4.f}, 2, 1, {0, 0}, "k=0");
  // Keys differing only in the low bits (exercise every radix pass).
  {
    const int64_t N = 300;
    std::vector<float> s(N);
    for (int64_t n = 0; n < N; ++n) s[n] = grip::bits_float(0x3f800000u + (uint32_t)((n * 37) % 101));
    check_topk(grip_check_ctx, s, 1, N, {50}, "low bits");
    check_topk(grip_check_ctx, s, 1, N, {299}, "low bits k=N-1");
  }
  // Realistic sizes, many rows (threaded).
  for (int64_t N : {576, 5000}) {
    const int64_t B = 37;
    std::vector<float> s = randv(rng, B * N, -3, 3);
    for (int64_t i = 0; i < B * N; i += 11) s[i] = std::round(s[i] * 4) / 4;  // some ties
    std::vector<int32_t> k(B);
    std::uniform_int_distribution<int> d(0, (int)N);
    for (auto& v : k) v = d(rng);
    k[0] = (int32_t)N;
    k[1] = 0;
    check_topk(grip_check_ctx, s, B, N, k, "N=" + std::to_string(N));
  }
  // NaN: first in row-major order, also in a row with k = 0.
  {
    std::vector<float> s = {1, 2, 3, 4, 5, 6};
    s[4] = std::nanf("");
    s[5] = std::nanf("");
    std::vector<int32_t> k = {2, 0};
    std::vector<int32_t> idx(4);
    std::vector<float> val(4);
    Status st = grip::cpu::topk({s.data(), k.data(), 2, 3, 2, idx.data(), val.data()});
    CHECK_TRUE(st.code == GRIP_ERR_RANGE, "NaN code");
    CHECK_TRUE(st.message == "expected scores without NaN for scores but received NaN at [1, 1]",
               "NaN message: " + st.message);
  }
}

// ---- Gumbel / Plackett-Luce --------------------------------------------------------
double ref_pl(const float* l, int64_t N, const int32_t* idx, int64_t k) {
  std::vector<bool> used(N, false);
  double lp = 0;
  for (int64_t j = 0; j < k; ++j) {
    if (l[idx[j]] == -kInf) return -kDInf;
    double mx = -kDInf;
    for (int64_t n = 0; n < N; ++n)
      if (!used[n]) mx = std::max(mx, (double)l[n]);
    long double sum = 0;
    for (int64_t n = 0; n < N; ++n)
      if (!used[n]) sum += std::exp((long double)l[n] - mx);
    lp += l[idx[j]] - (mx + (double)std::log(sum));
    used[idx[j]] = true;
  }
  return lp;
}

// Naive O(N k) gradient of one sample's log-prob.
void ref_pl_grad(const float* l, int64_t N, const int32_t* idx, int64_t k, double scale,
                 std::vector<double>& out) {
  if (ref_pl(l, N, idx, k) == -kDInf) return;
  std::vector<bool> used(N, false);
  for (int64_t j = 0; j < k; ++j) {
    double mx = -kDInf;
    for (int64_t n = 0; n < N; ++n)
      if (!used[n]) mx = std::max(mx, (double)l[n]);
    double sum = 0;
    for (int64_t n = 0; n < N; ++n)
      if (!used[n]) sum += std::exp(l[n] - mx);
    for (int64_t n = 0; n < N; ++n)
      if (!used[n]) out[n] -= scale * std::exp(l[n] - mx) / sum;
    out[idx[j]] += scale;
    used[idx[j]] = true;
  }
}

GRIP_CHECK(cpu_gumbel_topk) {
  std::mt19937 rng(4);
  const int64_t B = 3, N = 30, G = 5;
  std::vector<float> l = randv(rng, B * N, -3, 3);
  l[2] = -kInf;
  l[N + 5] = -kInf;
  for (int64_t n = 0; n < N; ++n) l[2 * N + n] = n < 25 ? -kInf : 1.f;  // row 2: only 5 finite, equal
  for (int64_t k : {0, 1, 4, 5, 6, 30}) {
    std::vector<int32_t> idx(B * G * k, -7);
    std::vector<float> lp(B * G, 99.f);
    Status st = grip::cpu::gumbel_topk({l.data(), B, N, k, G, 1234567ull, idx.data(), lp.data()});
    CHECK_TRUE(st.ok(), st.message);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t g = 0; g < G; ++g) {
        std::vector<std::pair<double, int32_t>> keys(N);
        for (int64_t n = 0; n < N; ++n) {
          const double u = grip::uniform_open(1234567ull, b, g, n);
          keys[n] = {l[b * N + n] == -kInf ? -kDInf : (double)l[b * N + n] - std::log(-std::log(u)),
                     (int32_t)n};
        }
        std::stable_sort(keys.begin(), keys.end(),
                         [](const auto& x, const auto& y) { return x.first > y.first; });
        bool same = true;
        for (int64_t j = 0; j < k; ++j) same &= idx[(b * G + g) * k + j] == keys[j].second;
        CHECK_TRUE(same, "gumbel indices k=" + std::to_string(k));
        const double want = ref_pl(&l[b * N], N, idx.data() + (b * G + g) * k, k);
        const double got = lp[b * G + g];
        CHECK_TRUE(want == got || std::fabs(got - want) <= 1e-6 * (1 + std::fabs(want)),
                   "gumbel log_prob k=" + std::to_string(k) + " got " + std::to_string(got) +
                       " want " + std::to_string(want));
      }
  }
  // Errors: first bad logit in row-major order.
  std::vector<float> bad = {0, 1, kInf, std::nanf(""), -kInf, 0};
  std::vector<int32_t> idx(2);
  std::vector<float> lp(2);
  Status st = grip::cpu::gumbel_topk({bad.data(), 2, 3, 1, 1, 0, idx.data(), lp.data()});
  CHECK_TRUE(st.code == GRIP_ERR_RANGE &&
                 st.message == "expected finite or -Infinity logits for logits but received Infinity at [0, 2]",
             "inf logit: " + st.message);
  bad[2] = 0;
  st = grip::cpu::gumbel_topk({bad.data(), 2, 3, 0, 1, 0, idx.data(), lp.data()});
  CHECK_TRUE(st.message == "expected finite or -Infinity logits for logits but received NaN at [1, 0]",
             "nan logit: " + st.message);
}

GRIP_CHECK(cpu_plackett_luce) {
  std::mt19937 rng(5);
  const int64_t B = 3, N = 12, G = 4, k = 5;
  std::vector<float> l = randv(rng, B * N, -4, 4);
  l[3] = -kInf;  // row 0: a -inf logit
  l[N + 1] = 60.f;  // row 1: a dominant logit (cancellation case)
  l[N + 2] = 59.f;
  std::vector<int32_t> idx(B * G * k);
  for (int64_t t = 0; t < B * G; ++t) {
    std::vector<int32_t> perm(N);
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    std::copy(perm.begin(), perm.begin() + k, idx.begin() + t * k);
  }
  // Sample (0,0) draws the -inf logit (log_prob -inf, zero gradient); (0,1) avoids it.
  const int32_t s00[5] = {3, 0, 1, 2, 4}, s01[5] = {0, 1, 2, 5, 4};
  std::copy(s00, s00 + 5, idx.begin());
  std::copy(s01, s01 + 5, idx.begin() + 5);
  idx[G * k] = 1;  // row 1 sample 0 draws 60 first, then 59
  if (idx[G * k + 1] == 1 || idx[G * k + 2] == 2) idx[G * k + 1] = 2;
  for (int64_t j = 2; j < k; ++j)
    if (idx[G * k + j] == 1 || idx[G * k + j] == 2) idx[G * k + j] = (int32_t)(N - j);
  {  // make sample (1,0) distinct again
    std::vector<int32_t> smp(idx.begin() + G * k, idx.begin() + G * k + k);
    std::vector<int32_t> srt = smp;
    std::sort(srt.begin(), srt.end());
    if (std::adjacent_find(srt.begin(), srt.end()) != srt.end()) {
      smp = {1, 2, 7, 8, 9};
      std::copy(smp.begin(), smp.end(), idx.begin() + G * k);
    }
  }
  std::vector<float> lp(B * G);
  grip::PlackettLuceArgs a{};
  a.logits = l.data(); a.indices = idx.data(); a.B = B; a.N = N; a.G = G; a.k = k;
  a.log_prob = lp.data();
  Status st = grip::cpu::plackett_luce_log_prob(a);
  CHECK_TRUE(st.ok(), st.message);
  for (int64_t t = 0; t < B * G; ++t) {
    const double want = ref_pl(&l[(t / G) * N], N, idx.data() + t * k, k);
    CHECK_TRUE(want == lp[t] || std::fabs(lp[t] - want) <= 1e-6 * (1 + std::fabs(want)),
               "log_prob " + std::to_string(t) + " got " + std::to_string(lp[t]) + " want " +
                   std::to_string(want));
  }
  CHECK_TRUE(lp[0] == -kInf, "drawn -inf gives -inf");
  // k = 0 -> 0.
  {
    grip::PlackettLuceArgs z = a;
    z.k = 0;
    std::vector<float> o(B * G, 5.f);
    z.log_prob = o.data();
    CHECK_TRUE(grip::cpu::plackett_luce_log_prob(z).ok(), "k=0");
    CHECK_TRUE(std::all_of(o.begin(), o.end(), [](float v) { return v == 0.f; }), "k=0 gives 0");
  }
  // Backward vs the naive O(Nk) gradient and vs finite differences.
  std::vector<float> dlp = randv(rng, B * G);
  std::vector<float> dl(B * N, 123.f);
  a.d_log_prob = dlp.data();
  a.d_logits = dl.data();
  st = grip::cpu::plackett_luce_backward(a);
  CHECK_TRUE(st.ok(), st.message);
  std::vector<double> want(B * N, 0.0);
  for (int64_t t = 0; t < B * G; ++t) {
    std::vector<double> gr(N, 0.0);
    ref_pl_grad(&l[(t / G) * N], N, idx.data() + t * k, k, dlp[t], gr);
    for (int64_t n = 0; n < N; ++n) want[(t / G) * N + n] += gr[n];
  }
  for (int64_t i = 0; i < B * N; ++i)
    CHECK_NEAR(dl[i], want[i], 1e-5 * (1 + std::fabs(want[i])), "pl grad " + std::to_string(i));
  // Finite differences (finite logits only) of sum_g dlp*log_prob.
  for (int64_t i = 0; i < B * N; ++i) {
    if (l[i] == -kInf) continue;
    const int64_t b = i / N;
    const float orig = l[i];
    double f[2];
    for (int sgn = 0; sgn < 2; ++sgn) {
      l[i] = orig + (sgn ? -1e-2f : 1e-2f);
      f[sgn] = 0;
      for (int64_t g = 0; g < G; ++g) {
        const double v = ref_pl(&l[b * N], N, idx.data() + (b * G + g) * k, k);
        if (v != -kDInf) f[sgn] += dlp[b * G + g] * v;
      }
    }
    const double h = (double)(orig + 1e-2f) - (double)(orig - 1e-2f);
    l[i] = orig;
    CHECK_NEAR(dl[i], (f[0] - f[1]) / h, 2e-4 * (1 + std::fabs(want[i])), "pl fd " + std::to_string(i));
  }
  // Errors: logits first, then indices in row-major order.
  std::vector<int32_t> bi = idx;
  bi[G * k + 3] = (int32_t)N;      // out of range at [1,0,3]
  bi[2 * G * k + 1] = bi[2 * G * k];  // repeat at [2,0,1]
  a.indices = bi.data();
  st = grip::cpu::plackett_luce_log_prob(a);
  CHECK_TRUE(st.code == GRIP_ERR_RANGE &&
                 st.message == "expected indices in [0, 12) for indices but received 12 at [1, 0, 3]",
             "range: " + st.message);
  bi[G * k + 3] = -1;
  st = grip::cpu::plackett_luce_backward(a);
  CHECK_TRUE(st.message == "expected indices in [0, 12) for indices but received -1 at [1, 0, 3]",
             "range -1: " + st.message);
  bi[G * k + 3] = idx[G * k + 3];
  st = grip::cpu::plackett_luce_backward(a);
  CHECK_TRUE(st.message == "expected distinct indices within a sample for indices but received repeated index " +
                               std::to_string(bi[2 * G * k]) + " at [2, 0, 1]",
             "repeat: " + st.message);
  l[N + 4] = std::nanf("");
  st = grip::cpu::plackett_luce_log_prob(a);
  CHECK_TRUE(st.message == "expected finite or -Infinity logits for logits but received NaN at [1, 4]",
             "logits first: " + st.message);
}

// ---- gather / compact_kv -------------------------------------------------------------
GRIP_CHECK(cpu_gather_rows) {
  std::mt19937 rng(6);
  for (grip_dtype dt : {GRIP_F32, GRIP_F16, GRIP_BF16}) {
    const size_t es = dt == GRIP_F32 ? 4 : 2;
    const int64_t B = 3, N = 7, D = 13, K = 5;
    std::vector<uint8_t> x(B * N * D * es);
    for (auto& v : x) v = (uint8_t)rng();
    std::vector<int32_t> idx = {6, 0, -1, 3, 3, -1, -1, -1, -1, -1, 1, 2, 4, 5, 6};
    std::vector<uint8_t> out(B * K * D * es, 0xAB);
    Status st = grip::cpu::gather_rows({x.data(), dt, idx.data(), B, N, D, K, out.data()});
    CHECK_TRUE(st.ok(), st.message);
    bool same = true;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t k = 0; k < K; ++k)
        for (size_t e = 0; e < D * es; ++e) {
          const int32_t v = idx[b * K + k];
          const uint8_t want = v < 0 ? 0 : x[((b * N + v) * D) * es + e];
          same &= out[((b * K + k) * D) * es + e] == want;
        }
    CHECK_TRUE(same, "gather bits");
    std::vector<uint8_t> before = out;
    idx[8] = 7;
    idx[12] = -2;
    st = grip::cpu::gather_rows({x.data(), dt, idx.data(), B, N, D, K, out.data()});
    CHECK_TRUE(st.code == GRIP_ERR_RANGE &&
                   st.message == "expected indices in [-1, 7) for indices but received 7 at [1, 3]",
               "gather error: " + st.message);
    CHECK_TRUE(out == before, "gather error writes nothing");
  }
}

GRIP_CHECK(cpu_compact_kv) {
  std::mt19937 rng(7);
  const int64_t B = 3, Hkv = 2, T = 9, Dh = 6, K = 5;
  for (grip_dtype dt : {GRIP_F32, GRIP_BF16}) {
    const size_t es = dt == GRIP_F32 ? 4 : 2, rb = Dh * es;
    std::vector<uint8_t> cache(B * Hkv * T * rb);
    for (auto& v : cache) v = (uint8_t)rng();
    std::vector<int32_t> keep = {0, 2, 3, 8, -1, -1, -1, -1, -1, -1, 4, 5, 6, 7, 8};
    std::vector<uint8_t> out(B * Hkv * K * rb, 0xCD);
    Status st = grip::cpu::compact_kv({cache.data(), dt, keep.data(), B, Hkv, T, Dh, K, out.data(), nullptr});
    CHECK_TRUE(st.ok(), st.message);
    std::vector<uint8_t> want(out.size(), 0);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < Hkv; ++h)
        for (int64_t k = 0; k < K; ++k) {
          const int32_t v = keep[b * K + k];
          if (v >= 0)
            std::memcpy(&want[((b * Hkv + h) * K + k) * rb], &cache[((b * Hkv + h) * T + v) * rb], rb);
        }
    CHECK_TRUE(out == want, "compact_kv");
    // In place.
    std::vector<uint8_t> ip = cache;
    std::vector<int32_t> lens(B, -5);
    st = grip::cpu::compact_kv_inplace({ip.data(), dt, keep.data(), B, Hkv, T, Dh, K, nullptr, lens.data()});
    CHECK_TRUE(st.ok(), st.message);
    CHECK_TRUE(lens == std::vector<int32_t>({4, 0, 5}), "new lengths");
    bool same = true;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < Hkv; ++h)
        for (int64_t t = 0; t < T; ++t) {
          const uint8_t* got = &ip[((b * Hkv + h) * T + t) * rb];
          const uint8_t* w = t < lens[b] ? &want[((b * Hkv + h) * K + t) * rb]
                                         : &cache[((b * Hkv + h) * T + t) * rb];
          same &= std::memcmp(got, w, rb) == 0;
        }
    CHECK_TRUE(same, "compact_kv_inplace");
  }
  // Violations, first in row-major order, nothing written.
  struct Case {
    std::vector<int32_t> keep;
    std::string msg;
  };
  const std::string pre = "expected strictly ascending positions in [0, 9) then -1 padding for keep but received ";
  const Case cases[] = {
      {{0, 1, 9, -1, -1, 1}, pre + "9 at [0, 2]"},
      {{0, 1, -2, -1, -1, 1}, pre + "-2 at [0, 2]"},
      {{0, 3, 3, -1, 0, 1}, pre + "3 at [0, 2]"},
      {{2, 1, -1, 0, 0, 1}, pre + "1 at [0, 1]"},
      {{0, -1, 4, -1, 0, 1}, pre + "4 at [0, 2]"},
      {{0, 1, 2, 5, -1, 4}, pre + "4 at [1, 2]"},
  };
  for (const Case& c : cases) {
    std::vector<float> cache(2 * 1 * T * 2, 1.f), out(2 * 1 * 3 * 2, 7.f);
    std::vector<int32_t> lens(2, 9);
    Status st = grip::cpu::compact_kv({cache.data(), GRIP_F32, c.keep.data(), 2, 1, T, 2, 3, out.data(), nullptr});
    CHECK_TRUE(st.code == GRIP_ERR_RANGE && st.message == c.msg, "keep: " + st.message);
    st = grip::cpu::compact_kv_inplace({cache.data(), GRIP_F32, c.keep.data(), 2, 1, T, 2, 3, nullptr, lens.data()});
    CHECK_TRUE(st.message == c.msg, "keep inplace: " + st.message);
    CHECK_TRUE(lens[0] == 9 && out[0] == 7.f, "keep error writes nothing");
  }
}

// ---- adamw -----------------------------------------------------------------------
GRIP_CHECK(cpu_adamw) {
  std::mt19937 rng(8);
  for (int64_t n : {1, 17, 300000}) {
    std::vector<float> p = randv(rng, n), g = randv(rng, n), m = randv(rng, n, -0.1f, 0.1f),
                       v = randv(rng, n, 0.f, 0.01f);
    std::vector<float> p0 = p, m0 = m, v0 = v;
    grip_adamw_options o{7, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f};
    Status st = grip::cpu::adamw({p.data(), g.data(), m.data(), v.data(), n, o});
    CHECK_TRUE(st.ok(), st.message);
    double worst = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double b1 = o.beta1, b2 = o.beta2;
      const double mm = b1 * m0[i] + (1 - b1) * g[i];
      const double vv = b2 * v0[i] + (1 - b2) * (double)g[i] * g[i];
      const double bc1 = 1 - std::pow(b1, 7), bc2 = 1 - std::pow(b2, 7);
      double pp = p0[i] * (1 - (double)o.lr * o.weight_decay);
      pp -= (o.lr / bc1) * mm / (std::sqrt(vv) / std::sqrt(bc2) + o.eps);
      // Relative to the magnitude of the terms (f32 rounding of each).
      const double um = std::fabs(b1 * m0[i]) + std::fabs((1 - b1) * g[i]);
      worst = std::max({worst, std::fabs(pp - p[i]) / (1e-30 + std::fabs(p0[i]) + std::fabs(p0[i] - pp)),
                        std::fabs(mm - m[i]) / (1e-30 + um),
                        std::fabs(vv - v[i]) / (1e-30 + std::fabs(vv))});
    }
    CHECK_TRUE(worst < 1e-6, "adamw rel err " + std::to_string(worst));
  }
}

}  // namespace
