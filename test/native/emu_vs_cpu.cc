// emu_vs_cpu.cc — the cuda/ kernels on the SIMT emulator (grip::emu) against
// the CPU twins (grip::cpu), under the forward, reverse and two random
// schedules: selections and copies bit-identical, floats to a normalised
// error, and identical error messages.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "core/backend.h"
#include "core/portable.h"
#include "simt/simt.h"

namespace {

using grip::Status;

struct Sched {
  simt::Schedule s;
  uint64_t seed;
  const char* name;
};
const Sched kScheds[] = {{simt::Schedule::Forward, 0, "forward"},
                         {simt::Schedule::Reverse, 0, "reverse"},
                         {simt::Schedule::Random, 1, "random1"},
                         {simt::Schedule::Random, 2, "random2"}};

template <class F>
void for_schedules(F&& f) {
  for (const Sched& s : kScheds) {
    simt::set_schedule(s.s, s.seed);
    f(std::string(s.name));
  }
  simt::set_schedule(simt::Schedule::Forward, 0);
}

std::vector<float> randn(std::mt19937_64& rng, size_t n, float scale) {
  std::normal_distribution<float> d(0.f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

double norm_err(const float* got, const float* want, size_t n) {
  double diff = 0, mag = 0;
  for (size_t i = 0; i < n; ++i) {
    diff = std::max(diff, std::fabs((double)got[i] - (double)want[i]));
    mag = std::max(mag, std::fabs((double)want[i]));
  }
  if (diff != diff) return INFINITY;
  return diff / std::max(mag, 1e-30);
}

template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

std::string status_str(const Status& s) { return std::to_string((int)s.code) + ": " + s.message; }

// ---- score_tokens -----------------------------------------------------------

struct ScorerData {
  int64_t B = 2, N = 37, D = 24, H = 16, R = 8;
  std::vector<float> xf, query, rho, lnw, lnb, w1, b1, fw, fb, w2, b2, wq, wk, ds;
  std::vector<uint16_t> x16;
  explicit ScorerData(uint64_t seed) {
    std::mt19937_64 rng(seed);
    xf = randn(rng, B * N * D, 1.f);
    for (int64_t i = 0; i < D; ++i) xf[5 * D + i] = 0.25f;  // a constant token
    query = randn(rng, B * D, 1.f);
    rho = {0.3f, 0.875f};
    lnw = randn(rng, D, 0.5f);
    for (auto& v : lnw) v += 1.f;
    lnb = randn(rng, D, 0.2f);
    w1 = randn(rng, D * H, 0.3f);
    b1 = randn(rng, H, 0.2f);
    fw = randn(rng, 16 * 2 * H, 0.2f);
    fb = randn(rng, 2 * H, 0.2f);
    w2 = randn(rng, H, 0.4f);
    b2 = {0.1f};
    wq = randn(rng, D * R, 0.3f);
    wk = randn(rng, D * R, 0.3f);
    ds = randn(rng, B * N, 1.f);
    x16.resize(xf.size());
  }
  grip::ScoreArgs args(grip_dtype dtype) {
    grip::ScoreArgs a{};
    if (dtype == GRIP_F32) {
      a.x = xf.data();
    } else {
      for (size_t i = 0; i < xf.size(); ++i)
        x16[i] = dtype == GRIP_F16 ? grip::f32_to_f16(xf[i]) : grip::f32_to_bf16(xf[i]);
      a.x = x16.data();
    }
    a.x_dtype = dtype;
    a.query = query.data();
    a.keep_ratio = rho.data();
    a.params = {lnw.data(), lnb.data(), w1.data(), b1.data(), fw.data(),
                fb.data(),  w2.data(),  b2.data(), wq.data(), wk.data()};
    a.B = B; a.N = N; a.D = D; a.H = H; a.R = R;
    return a;
  }
};

struct Grads {
  std::vector<float> v[10];
  explicit Grads(const ScorerData& d) {
    const size_t sizes[10] = {(size_t)d.D, (size_t)d.D, (size_t)(d.D * d.H), (size_t)d.H,
                              (size_t)(32 * d.H), (size_t)(2 * d.H), (size_t)d.H, 1,
                              (size_t)(d.D * d.R), (size_t)(d.D * d.R)};
    for (int i = 0; i < 10; ++i) v[i].assign(sizes[i], 12345.f);  // must be overwritten
  }
  grip::ScorerGradPtrs ptrs() {
    return {v[0].data(), v[1].data(), v[2].data(), v[3].data(), v[4].data(),
            v[5].data(), v[6].data(), v[7].data(), v[8].data(), v[9].data()};
  }
};
const char* kGradNames[10] = {"ln_weight", "ln_bias", "w1", "b1", "film_w",
                              "film_b",    "w2",      "b2", "wq", "wk"};

GRIP_CHECK(emu_vs_cpu_score_tokens) {
  ScorerData d(7);
  for (grip_dtype dt : {GRIP_F32, GRIP_F16, GRIP_BF16}) {
    std::vector<float> want(d.B * d.N), got(d.B * d.N);
    grip::ScoreForwardArgs a;
    static_cast<grip::ScoreArgs&>(a) = d.args(dt);
    a.scores = want.data();
    CHECK_TRUE(grip::cpu::score_tokens(a).ok(), "cpu score_tokens");
    for_schedules([&](const std::string& sched) {
      std::fill(got.begin(), got.end(), NAN);
      a.scores = got.data();
      const Status st = grip::emu::score_tokens(a);
      CHECK_TRUE(st.ok(), "emu score_tokens: " + st.message);
      const double e = norm_err(got.data(), want.data(), got.size());
      CHECK_TRUE(e <= 1e-5, "score_tokens dtype " + std::to_string((int)dt) + " " + sched +
                                " error " + std::to_string(e));
    });
  }
}

GRIP_CHECK(emu_vs_cpu_score_tokens_backward) {
  ScorerData d(11);
  for (grip_dtype dt : {GRIP_F32, GRIP_BF16}) {
    grip::ScoreBackwardArgs a;
    static_cast<grip::ScoreArgs&>(a) = d.args(dt);
    a.d_scores = d.ds.data();
    Grads want(d);
    a.grads = want.ptrs();
    CHECK_TRUE(grip::cpu::score_tokens_backward(a).ok(), "cpu backward");
    for_schedules([&](const std::string& sched) {
      Grads got(d);
      a.grads = got.ptrs();
      const Status st = grip::emu::score_tokens_backward(a);
      CHECK_TRUE(st.ok(), "emu backward: " + st.message);
      for (int i = 0; i < 10; ++i) {
        const double e = norm_err(got.v[i].data(), want.v[i].data(), got.v[i].size());
        CHECK_TRUE(e <= 1e-4, std::string("backward ") + kGradNames[i] + " dtype " +
                                  std::to_string((int)dt) + " " + sched + " error " +
                                  std::to_string(e));
      }
    });
  }
}

// ---- topk ----------------------------------------------------------------------

void topk_case(grip_check::Context& grip_check_ctx, int64_t B, int64_t N,
               const std::vector<float>& scores, const std::vector<int32_t>& k,
               const std::string& name) {
  int64_t max_k = 0;
  for (int32_t v : k) max_k = std::max<int64_t>(max_k, v);
  std::vector<int32_t> wi(B * max_k, 7), gi(B * max_k, 7);
  std::vector<float> wv(B * max_k, 7.f), gv(B * max_k, 7.f);
  grip::TopkArgs a{scores.data(), k.data(), B, N, max_k, wi.data(), wv.data()};
  const Status ws = grip::cpu::topk(a);
  for_schedules([&](const std::string& sched) {
    std::fill(gi.begin(), gi.end(), 7);
    std::fill(gv.begin(), gv.end(), 7.f);
    a.indices = gi.data();
    a.values = gv.data();
    const Status gs = grip::emu::topk(a);
    CHECK_TRUE(status_str(gs) == status_str(ws),
               "topk " + name + " " + sched + " status: " + status_str(gs) + " vs " + status_str(ws));
    if (ws.ok()) {
      CHECK_TRUE(same_bits(gi, wi), "topk " + name + " " + sched + " indices differ");
      CHECK_TRUE(same_bits(gv, wv), "topk " + name + " " + sched + " values differ");
    }
  });
}

GRIP_CHECK(emu_vs_cpu_topk) {
  std::mt19937_64 rng(3);
  const float inf = INFINITY;
  const float pool[] = {-1.f, 0.f, -0.f, 1.f, 2.f, 2.5f, -inf, inf, 1e-30f, -3.f};
  {  // ties, infinities, signed zeros, ragged k
    const int64_t B = 5, N = 37;
    std::vector<float> s(B * N);
    for (auto& v : s) v = pool[rng() % 10];
    topk_case(grip_check_ctx, B, N, s, {0, 5, 37, 12, 1}, "ties");
  }
  {  // all equal, k < N
    const int64_t B = 2, N = 37;
    std::vector<float> s(B * N, 1.5f);
    topk_case(grip_check_ctx, B, N, s, {10, 36}, "all-equal");
  }
  {  // several block-chunks per row
    const int64_t B = 2, N = 1500;
    std::vector<float> s = randn(rng, B * N, 1.f);
    for (int i = 0; i < 200; ++i) s[rng() % s.size()] = 0.5f;
    topk_case(grip_check_ctx, B, N, s, {700, 1499}, "long");
  }
  {  // NaN (also in a k=0 row): the first one in row-major order
    const int64_t B = 3, N = 37;
    std::vector<float> s = randn(rng, B * N, 1.f);
    s[1 * N + 30] = NAN;
    s[2 * N + 3] = NAN;
    topk_case(grip_check_ctx, B, N, s, {4, 0, 4}, "nan");
    std::vector<float> s2 = randn(rng, B * N, 1.f);
    s2[0 * N + 36] = -NAN;
    topk_case(grip_check_ctx, B, N, s2, {0, 0, 0}, "nan-k0");
  }
}

// ---- gumbel_topk / Plackett-Luce ----------------------------------------------------

double rel_err(double got, double want) {
  if (got == want) return 0;
  return std::fabs(got - want) / std::max(std::fabs(want), 1e-30);
}

void gumbel_case(grip_check::Context& grip_check_ctx, int64_t B, int64_t N, int64_t k, int64_t G,
                 uint64_t seed, const std::vector<float>& logits, const std::string& name) {
  std::vector<int32_t> wi(B * G * k + 1, 7), gi(B * G * k + 1, 7);
  std::vector<float> wl(B * G, 7.f), gl(B * G, 7.f);
  grip::GumbelTopkArgs a{logits.data(), B, N, k, G, seed, wi.data(), wl.data()};
  const Status ws = grip::cpu::gumbel_topk(a);
  for_schedules([&](const std::string& sched) {
    std::fill(gi.begin(), gi.end(), 7);
    a.indices = gi.data();
    a.log_prob = gl.data();
    const Status gs = grip::emu::gumbel_topk(a);
    CHECK_TRUE(status_str(gs) == status_str(ws), "gumbel " + name + " " + sched + " status: " +
                                                     status_str(gs) + " vs " + status_str(ws));
    if (!ws.ok()) return;
    CHECK_TRUE(same_bits(gi, wi), "gumbel " + name + " " + sched + " indices differ");
    for (int64_t i = 0; i < B * G; ++i)
      CHECK_TRUE(rel_err(gl[i], wl[i]) <= 1e-5,
                 "gumbel " + name + " " + sched + " log_prob " + std::to_string(gl[i]) + " vs " +
                     std::to_string(wl[i]));
  });
  if (!ws.ok()) return;
  // Plackett-Luce on the CPU's samples.
  grip::PlackettLuceArgs p{};
  p.logits = logits.data();
  p.indices = wi.data();
  p.B = B; p.N = N; p.G = G; p.k = k;
  std::vector<float> wlp(B * G), glp(B * G), dlp = std::vector<float>(B * G);
  for (int64_t i = 0; i < B * G; ++i) dlp[i] = 0.5f + (float)(i % 3) - (i == 1 ? 0.5f : 0.f);
  std::vector<float> wd(B * N), gd(B * N);
  p.log_prob = wlp.data();
  const Status w1 = grip::cpu::plackett_luce_log_prob(p);
  p.d_log_prob = dlp.data();
  p.d_logits = wd.data();
  const Status w2 = grip::cpu::plackett_luce_backward(p);
  CHECK_TRUE(w1.ok() && w2.ok(), "cpu plackett-luce " + name);
  for_schedules([&](const std::string& sched) {
    p.log_prob = glp.data();
    p.d_logits = gd.data();
    const Status g1 = grip::emu::plackett_luce_log_prob(p);
    const Status g2 = grip::emu::plackett_luce_backward(p);
    CHECK_TRUE(g1.ok() && g2.ok(), "emu plackett-luce " + name + ": " + g1.message + g2.message);
    for (int64_t i = 0; i < B * G; ++i)
      CHECK_TRUE(rel_err(glp[i], wlp[i]) <= 1e-5, "pl log_prob " + name + " " + sched);
    const double e = norm_err(gd.data(), wd.data(), gd.size());
    CHECK_TRUE(e <= 1e-5, "pl backward " + name + " " + sched + " error " + std::to_string(e));
  });
}

GRIP_CHECK(emu_vs_cpu_gumbel_plackett_luce) {
  std::mt19937_64 rng(5);
  const int64_t B = 2, N = 37;
  std::vector<float> l = randn(rng, B * N, 2.f);
  l[3] = -INFINITY;
  l[N + 10] = -INFINITY;
  l[N + 11] = l[N + 12] = 1.25f;
  for (int64_t k : {0, 1, 5, 36, 37}) gumbel_case(grip_check_ctx, B, N, k, 3, 99 + k, l, "k" + std::to_string(k));
  {  // all -inf but a few: k past the finite ones -> log_prob -inf
    std::vector<float> l2(B * N, -INFINITY);
    l2[4] = 0.f;
    l2[N + 7] = 1.f;
    l2[N + 8] = 1.f;
    gumbel_case(grip_check_ctx, B, N, 4, 2, 1, l2, "mostly-neginf");
  }
  {  // padded length over the shared-memory limit: global-memory sort
    const int64_t N2 = 2100;
    std::vector<float> l3 = randn(rng, N2, 1.f);
    gumbel_case(grip_check_ctx, 1, N2, 40, 2, 17, l3, "long");
  }
  {  // bad logits: the first of NaN / +inf in row-major order
    std::vector<float> l4 = l;
    l4[N + 2] = NAN;
    l4[N + 1] = INFINITY;
    gumbel_case(grip_check_ctx, B, N, 3, 2, 1, l4, "bad-inf");
    l4[5] = NAN;
    gumbel_case(grip_check_ctx, B, N, 3, 2, 1, l4, "bad-nan");
  }
}

GRIP_CHECK(emu_vs_cpu_plackett_luce_errors) {
  std::mt19937_64 rng(8);
  const int64_t B = 2, N = 10, G = 2, k = 3;
  std::vector<float> l = randn(rng, B * N, 1.f);
  std::vector<float> dlp(B * G, 1.f), lp(B * G), dl(B * N);
  const std::vector<std::vector<int32_t>> cases = {
      {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 1, 2},    // fine
      {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 2},   // out of range at [1,1,1]
      {0, 1, 2, 3, 4, 3, 6, 7, -1, 9, 1, 2},   // repeat at [0,1,2] before -1
      {0, 1, 0, 3, 4, 3, 6, 7, -1, 9, 1, 2},   // repeat at [0,0,2]
      {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 12}};  // repeat at [1,1,1]
  for (size_t c = 0; c < cases.size(); ++c) {
    grip::PlackettLuceArgs p{};
    p.logits = l.data();
    p.indices = cases[c].data();
    p.B = B; p.N = N; p.G = G; p.k = k;
    p.log_prob = lp.data();
    p.d_log_prob = dlp.data();
    p.d_logits = dl.data();
    const Status w1 = grip::cpu::plackett_luce_log_prob(p), w2 = grip::cpu::plackett_luce_backward(p);
    for_schedules([&](const std::string& sched) {
      const Status g1 = grip::emu::plackett_luce_log_prob(p), g2 = grip::emu::plackett_luce_backward(p);
      CHECK_TRUE(status_str(g1) == status_str(w1),
                 "pl case " + std::to_string(c) + " " + sched + ": " + status_str(g1) + " vs " + status_str(w1));
      CHECK_TRUE(status_str(g2) == status_str(w2), "pl backward case " + std::to_string(c));
    });
  }
}

// ---- gather / compact ------------------------------------------------------------------

std::vector<uint16_t> random_bits(std::mt19937_64& rng, size_t n_u16) {
  std::vector<uint16_t> v(n_u16);
  for (auto& x : v) x = (uint16_t)rng();
  return v;
}

GRIP_CHECK(emu_vs_cpu_gather_rows) {
  std::mt19937_64 rng(9);
  const int64_t B = 2, N = 37, K = 9;
  for (grip_dtype dt : {GRIP_F32, GRIP_F16, GRIP_BF16}) {
    for (int64_t D : {24, 7, 1}) {
      const size_t es = dt == GRIP_F32 ? 2 : 1;  // u16 words per element
      std::vector<uint16_t> x = random_bits(rng, B * N * D * es);
      std::vector<int32_t> idx(B * K);
      for (auto& v : idx) v = (int32_t)(rng() % (N + 1)) - 1;
      std::vector<uint16_t> want(B * K * D * es, 1), got(B * K * D * es, 1);
      grip::GatherArgs a{x.data(), dt, idx.data(), B, N, D, K, want.data()};
      CHECK_TRUE(grip::cpu::gather_rows(a).ok(), "cpu gather");
      for_schedules([&](const std::string& sched) {
        std::fill(got.begin(), got.end(), 1);
        a.out = got.data();
        CHECK_TRUE(grip::emu::gather_rows(a).ok(), "emu gather");
        CHECK_TRUE(same_bits(got, want), "gather dtype " + std::to_string((int)dt) + " D " +
                                             std::to_string(D) + " " + sched);
      });
      // errors: first in row-major order
      idx[K + 3] = (int32_t)N;
      idx[K + 5] = -2;
      a.out = want.data();
      const Status ws = grip::cpu::gather_rows(a);
      a.out = got.data();
      const Status gs = grip::emu::gather_rows(a);
      CHECK_TRUE(!ws.ok() && status_str(gs) == status_str(ws), "gather error: " + status_str(gs) + " vs " + status_str(ws));
    }
  }
}

GRIP_CHECK(emu_vs_cpu_compact_kv) {
  std::mt19937_64 rng(10);
  const int64_t B = 3, Hkv = 2, T = 20, K = 8;
  const std::vector<int32_t> good = {1, 2, 5, 6, 7, 19, -1, -1,   // moves over still-needed rows
                                     0, 1, 2, 3, 4, 5, 6, 7,      // identity
                                     -1, -1, -1, -1, -1, -1, -1, -1};
  for (grip_dtype dt : {GRIP_F32, GRIP_F16, GRIP_BF16}) {
    for (int64_t Dh : {16, 5}) {
      const size_t es = dt == GRIP_F32 ? 2 : 1;
      const std::vector<uint16_t> cache = random_bits(rng, B * Hkv * T * Dh * es);
      std::vector<uint16_t> want(B * Hkv * K * Dh * es, 3), got(want.size(), 3);
      std::vector<uint16_t> c_want = cache, c_got = cache;
      std::vector<int32_t> nl_want(B, -5), nl_got(B, -5);
      grip::CompactKVArgs a{nullptr, dt, good.data(), B, Hkv, T, Dh, K, nullptr, nullptr};
      a.cache = const_cast<uint16_t*>(cache.data());
      a.out = want.data();
      CHECK_TRUE(grip::cpu::compact_kv(a).ok(), "cpu compact");
      a.cache = c_want.data();
      a.new_lengths = nl_want.data();
      CHECK_TRUE(grip::cpu::compact_kv_inplace(a).ok(), "cpu compact inplace");
      for_schedules([&](const std::string& sched) {
        const std::string tag = " dtype " + std::to_string((int)dt) + " Dh " + std::to_string(Dh) + " " + sched;
        std::fill(got.begin(), got.end(), 3);
        a.cache = const_cast<uint16_t*>(cache.data());
        a.out = got.data();
        CHECK_TRUE(grip::emu::compact_kv(a).ok(), "emu compact");
        CHECK_TRUE(same_bits(got, want), "compact_kv" + tag);
        c_got = cache;
        std::fill(nl_got.begin(), nl_got.end(), -5);
        a.cache = c_got.data();
        a.new_lengths = nl_got.data();
        CHECK_TRUE(grip::emu::compact_kv_inplace(a).ok(), "emu compact inplace");
        CHECK_TRUE(same_bits(c_got, c_want), "compact_kv_inplace" + tag);
        CHECK_TRUE(nl_got == nl_want, "compact_kv_inplace new_lengths" + tag);
      });
    }
  }
  // errors
  const std::vector<std::vector<int32_t>> bad = {
      {0, 1, 2, -1, 3, -1, -1, -1},   // value after -1
      {0, 2, 2, -1, 99, -1, -1, -1},  // not ascending (before the out-of-range one)
      {0, 1, 20, -1, -1, -1, -1, -1}, // >= T
      {-2, 1, 2, 3, 4, 5, 6, 7},      // < -1
      {5, 4, -1, -1, -1, -1, -1, -1}};
  for (size_t c = 0; c < bad.size(); ++c) {
    std::vector<int32_t> keep(B * K, -1);
    std::copy(bad[c].begin(), bad[c].end(), keep.begin() + K);  // row 1
    std::vector<float> cache(B * Hkv * T * 4, 1.f), out(B * Hkv * K * 4);
    std::vector<int32_t> nl(B);
    grip::CompactKVArgs a{cache.data(), GRIP_F32, keep.data(), B, Hkv, T, 4, K, out.data(), nl.data()};
    const Status w1 = grip::cpu::compact_kv(a), w2 = grip::cpu::compact_kv_inplace(a);
    const Status g1 = grip::emu::compact_kv(a), g2 = grip::emu::compact_kv_inplace(a);
    CHECK_TRUE(!w1.ok() && status_str(g1) == status_str(w1), "compact error case " + std::to_string(c) + ": " + status_str(g1) + " vs " + status_str(w1));
    CHECK_TRUE(status_str(g2) == status_str(w2), "compact inplace error case " + std::to_string(c));
  }
}

// ---- adamw ------------------------------------------------------------------------------

GRIP_CHECK(emu_vs_cpu_adamw) {
  std::mt19937_64 rng(12);
  const int64_t n = 1000;
  const std::vector<float> p0 = randn(rng, n, 1.f), g = randn(rng, n, 1.f), m0 = randn(rng, n, 0.1f);
  std::vector<float> v0 = randn(rng, n, 0.1f);
  for (auto& x : v0) x = x * x;
  for (int64_t step : {1, 7}) {
    grip_adamw_options o{step, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f};
    std::vector<float> pw = p0, mw = m0, vw = v0;
    grip::AdamWArgs a{pw.data(), g.data(), mw.data(), vw.data(), n, o};
    CHECK_TRUE(grip::cpu::adamw(a).ok(), "cpu adamw");
    for_schedules([&](const std::string& sched) {
      std::vector<float> pg = p0, mg = m0, vg = v0;
      grip::AdamWArgs b{pg.data(), g.data(), mg.data(), vg.data(), n, o};
      CHECK_TRUE(grip::emu::adamw(b).ok(), "emu adamw");
      CHECK_TRUE(same_bits(pg, pw) && same_bits(mg, mw) && same_bits(vg, vw),
                 "adamw step " + std::to_string(step) + " " + sched + " not bit-identical");
    });
  }
}

}  // namespace

// ---- transformer ops ---------------------------------------------------------------

namespace {

// Attention shapes that take the CPU's GEMM-tile path (rows x G > 4) and its
// row path (decode), GQA, a cached prefix, ragged lengths and padding rows.
struct AttnShape {
  int64_t B, Tq, Tk, Hq, Hkv, Dh;
  bool causal;
  std::vector<int32_t> q_len, kv_len, prob_rows;
};

GRIP_CHECK(emu_vs_cpu_attention) {
  std::mt19937_64 rng(21);
  const AttnShape shapes[] = {
      {1, 6, 6, 4, 2, 8, true, {6}, {6}, {0, 5}},
      {2, 4, 9, 6, 2, 5, true, {4, 2}, {9, 3}, {3, 1}},
      {2, 3, 7, 2, 2, 8, false, {3, 0}, {7, 0}, {2}},
      {2, 1, 13, 4, 4, 16, true, {1, 1}, {13, 6}, {0}},
  };
  for (const AttnShape& s : shapes) {
    const std::vector<float> q = randn(rng, s.B * s.Tq * s.Hq * s.Dh, 1.f);
    const std::vector<float> k = randn(rng, s.B * s.Hkv * s.Tk * s.Dh, 1.f);
    const std::vector<float> v = randn(rng, s.B * s.Hkv * s.Tk * s.Dh, 1.f);
    const int64_t R = (int64_t)s.prob_rows.size();
    std::vector<float> want(q.size(), 7.f), got(q.size()), pw(s.B * s.Hq * R * s.Tk, 7.f), pg(pw.size());
    grip::AttentionArgs a{};
    a.q = q.data(); a.k = k.data(); a.v = v.data();
    a.q_len = s.q_len.data(); a.kv_len = s.kv_len.data(); a.prob_rows = s.prob_rows.data();
    a.B = s.B; a.Tq = s.Tq; a.Tk = s.Tk; a.Hq = s.Hq; a.Hkv = s.Hkv; a.Dh = s.Dh; a.R = R;
    a.causal = s.causal;
    a.scale = 1.f / std::sqrt((float)s.Dh);
    a.out = want.data();
    a.probs = pw.data();
    CHECK_TRUE(grip::cpu::attention(a).ok(), "cpu attention");
    const std::string tag = "Tq " + std::to_string(s.Tq) + " Tk " + std::to_string(s.Tk) + " Hq " + std::to_string(s.Hq);
    for_schedules([&](const std::string& sched) {
      std::fill(got.begin(), got.end(), NAN);
      std::fill(pg.begin(), pg.end(), NAN);
      a.out = got.data();
      a.probs = pg.data();
      const Status st = grip::emu::attention(a);
      CHECK_TRUE(st.ok(), "emu attention: " + st.message);
      CHECK_TRUE(norm_err(got.data(), want.data(), got.size()) <= 1e-5, "attention out " + tag + " " + sched);
      CHECK_TRUE(norm_err(pg.data(), pw.data(), pg.size()) <= 1e-5, "attention probs " + tag + " " + sched);
    });
  }
}

GRIP_CHECK(emu_vs_cpu_norms_softmax_activations) {
  std::mt19937_64 rng(22);
  const int64_t M = 5, D = 67;
  const std::vector<float> x = randn(rng, M * D, 2.f), w = randn(rng, D, 1.f), bias = randn(rng, D, 1.f);
  std::vector<float> want(M * D), got(M * D);
  auto compare = [&](const std::string& what, auto&& cpu, auto&& emu, double tol) {
    CHECK_TRUE(cpu(want.data()).ok(), "cpu " + what);
    for_schedules([&](const std::string& sched) {
      std::fill(got.begin(), got.end(), NAN);
      const Status st = emu(got.data());
      CHECK_TRUE(st.ok(), "emu " + what + ": " + st.message);
      CHECK_TRUE(norm_err(got.data(), want.data(), got.size()) <= tol, what + " " + sched);
    });
  };
  for (int kind = 0; kind < 2; ++kind) {
    auto args = [&](float* out) {
      return grip::NormArgs{x.data(), w.data(), kind == 0 ? bias.data() : nullptr, 1e-5f, M, D, out};
    };
    compare(kind == 0 ? "layer_norm" : "rms_norm",
            [&](float* o) { return kind == 0 ? grip::cpu::layer_norm(args(o)) : grip::cpu::rms_norm(args(o)); },
            [&](float* o) { return kind == 0 ? grip::emu::layer_norm(args(o)) : grip::emu::rms_norm(args(o)); }, 1e-5);
  }
  for (bool log : {false, true})
    compare(log ? "log_softmax" : "softmax",
            [&](float* o) { return grip::cpu::softmax({x.data(), M, D, log, o}); },
            [&](float* o) { return grip::emu::softmax({x.data(), M, D, log, o}); }, 1e-6);
  for (grip_gelu_kind kind : {GRIP_GELU_ERF, GRIP_GELU_TANH, GRIP_GELU_QUICK})
    compare("gelu " + std::to_string((int)kind),
            [&](float* o) { return grip::cpu::gelu({x.data(), kind, M * D, o}); },
            [&](float* o) { return grip::emu::gelu({x.data(), kind, M * D, o}); }, 2e-6);
  compare("silu_mul", [&](float* o) { return grip::cpu::silu_mul({x.data(), x.data() + 1, M * D - 1, o}); },
          [&](float* o) { return grip::emu::silu_mul({x.data(), x.data() + 1, M * D - 1, o}); }, 2e-6);
}

GRIP_CHECK(emu_vs_cpu_rope_cache_embedding) {
  std::mt19937_64 rng(23);
  {  // rope: values, and the first negative position in row-major order
    const int64_t B = 2, T = 3, H = 2, Dh = 12;
    const std::vector<float> x = randn(rng, B * T * H * Dh, 1.f);
    std::vector<int32_t> pos = {0, 5, 99, 4095, 7, 1};
    std::vector<float> want(x.size()), got(x.size());
    grip::RopeArgs a{x.data(), pos.data(), 10000.0, B, T, H, Dh, want.data()};
    CHECK_TRUE(grip::cpu::rope(a).ok(), "cpu rope");
    for_schedules([&](const std::string& sched) {
      a.out = got.data();
      CHECK_TRUE(grip::emu::rope(a).ok(), "emu rope");
      CHECK_TRUE(norm_err(got.data(), want.data(), got.size()) <= 1e-6, "rope " + sched);
    });
    pos[4] = -2;
    pos[5] = -1;
    const Status ws = grip::cpu::rope(a), gs = grip::emu::rope(a);
    CHECK_TRUE(!ws.ok() && status_str(gs) == status_str(ws), "rope error: " + status_str(gs) + " vs " + status_str(ws));
  }
  {  // cache_write in every dtype: bit-identical stores
    const int64_t B = 2, Hkv = 3, Tmax = 9, T = 4, Dh = 5;
    const std::vector<float> src = randn(rng, B * T * Hkv * Dh, 3.f);
    const std::vector<int32_t> start = {2, 9}, count = {4, 0};
    for (grip_dtype dt : {GRIP_F32, GRIP_F16, GRIP_BF16}) {
      const size_t words = (size_t)(B * Hkv * Tmax * Dh) * (dt == GRIP_F32 ? 2 : 1);
      const std::vector<uint16_t> init = random_bits(rng, words);
      std::vector<uint16_t> want = init;
      grip::CacheWriteArgs a{want.data(), dt, src.data(), start.data(), count.data(), B, Hkv, Tmax, T, Dh};
      CHECK_TRUE(grip::cpu::cache_write(a).ok(), "cpu cache_write");
      for_schedules([&](const std::string& sched) {
        std::vector<uint16_t> got = init;
        a.cache = got.data();
        CHECK_TRUE(grip::emu::cache_write(a).ok(), "emu cache_write");
        CHECK_TRUE(same_bits(got, want), "cache_write dtype " + std::to_string((int)dt) + " " + sched);
      });
    }
  }
  {  // embedding: exact widening, and the first bad id with its position
    const int64_t V = 11, D = 6;
    const std::vector<uint16_t> table = random_bits(rng, V * D * 2);
    std::vector<int32_t> ids = {3, 10, 0, 7, 7, 1};
    for (grip_dtype dt : {GRIP_F32, GRIP_F16, GRIP_BF16}) {
      std::vector<float> want(ids.size() * D), got(want.size());
      grip::EmbeddingArgs a{};
      a.table = table.data(); a.dtype = dt; a.ids = ids.data(); a.ids_ndim = 2;
      a.ids_shape[0] = 2; a.ids_shape[1] = 3;
      a.V = V; a.D = D; a.n = (int64_t)ids.size(); a.out = want.data();
      CHECK_TRUE(grip::cpu::embedding(a).ok(), "cpu embedding");
      a.out = got.data();
      CHECK_TRUE(grip::emu::embedding(a).ok(), "emu embedding");
      CHECK_TRUE(std::memcmp(got.data(), want.data(), want.size() * 4) == 0, "embedding dtype " + std::to_string((int)dt));
      ids[4] = 11;
      const Status ws = grip::cpu::embedding(a), gs = grip::emu::embedding(a);
      CHECK_TRUE(!ws.ok() && status_str(gs) == status_str(ws) &&
                     ws.message == "expected ids in [0, 11) for ids but received 11 at [1, 1]",
                 "embedding error: " + status_str(gs) + " vs " + status_str(ws));
      ids[4] = 7;
    }
  }
}

}  // namespace
