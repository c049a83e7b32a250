// topk.cc — CPU twin of topk: per row, a radix select on float_order_key
// finds the threshold key T (the k-th largest) and how many keys equal to T
// are kept; one pass in position order then writes the kept indices, which
// gives ascending positions with lower-index tie-breaking for free.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "../core/backend.h"
#include "../core/errors.h"
#include "../core/portable.h"
#include "../core/threadpool.h"

namespace grip {
namespace cpu {
namespace {

// Keys of a row into `keys`; radix select of the k-th largest (1 <= k < N).
// Returns the threshold key; *take_eq = how many keys equal to it are kept.
uint32_t select_threshold(const uint32_t* keys, int64_t N, int64_t k, uint32_t* cand_a,
                          uint32_t* cand_b, int64_t* take_eq) {
  // Digits of 11, 11, 10 bits (high to low). The first pass reads `keys`
  // directly; later passes only the candidates sharing the prefix.
  static constexpr int kShift[3] = {21, 10, 0};
  static constexpr uint32_t kBins[3] = {2048, 2048, 1024};
  uint32_t hist[4][2048];
  const uint32_t* src = keys;
  int64_t m = N;
  int64_t need = k;  // still to pick among the candidates (from the top)
  uint32_t* dst = cand_a;
  for (int pass = 0; pass < 3; ++pass) {
    const int sh = kShift[pass];
    const uint32_t bins = kBins[pass], mask = bins - 1;
    if (m == 1) return src[0];  // the only candidate is the threshold; need == 1
    std::memset(hist, 0, sizeof(uint32_t) * 4 * bins);
    int64_t i = 0;
    for (; i + 4 <= m; i += 4) {  // four histograms: no store-forwarding chains
      ++hist[0][(src[i] >> sh) & mask];
      ++hist[1][(src[i + 1] >> sh) & mask];
      ++hist[2][(src[i + 2] >> sh) & mask];
      ++hist[3][(src[i + 3] >> sh) & mask];
    }
    for (; i < m; ++i) ++hist[0][(src[i] >> sh) & mask];
    // From the top bin down, find the bin holding the need-th largest.
    int64_t above = 0;
    uint32_t bin = bins - 1;
    for (;; --bin) {
      const int64_t c = (int64_t)hist[0][bin] + hist[1][bin] + hist[2][bin] + hist[3][bin];
      if (above + c >= need) break;
      above += c;
    }
    need -= above;
    if (pass == 2) {
      // Full key known: prefix bits come from any candidate.
      *take_eq = need;
      return (src[0] & ~mask) | bin;
    }
    // Compact the candidates with this digit.
    int64_t mm = 0;
    for (int64_t j = 0; j < m; ++j) {
      const uint32_t key = src[j];
      dst[mm] = key;
      mm += ((key >> sh) & mask) == bin;
    }
    src = dst;
    m = mm;
    dst = (dst == cand_a) ? cand_b : cand_a;
    if (need == m) {  // every candidate is kept: the threshold is their minimum
      uint32_t mn = src[0];
      for (int64_t j = 1; j < m; ++j) mn = std::min(mn, src[j]);
      int64_t eq = 0;
      for (int64_t j = 0; j < m; ++j) eq += src[j] == mn;
      *take_eq = eq;
      return mn;
    }
  }
  return 0;  // unreachable
}

void topk_row(const TopkArgs& a, int64_t b, uint32_t* keys, uint32_t* ca, uint32_t* cb) {
  const int64_t N = a.N, K = a.max_k, k = a.k[b];
  const float* s = a.scores + b * N;
  int32_t* idx = a.indices + b * K;
  float* val = a.values + b * K;
  int64_t pos = 0;
  if (k >= N) {
    for (int64_t n = 0; n < N; ++n) {
      idx[n] = (int32_t)n;
      val[n] = s[n];
    }
    pos = N;
  } else if (k > 0) {
    for (int64_t n = 0; n < N; ++n) keys[n] = float_order_key(s[n]);
    int64_t take_eq = 0;
    const uint32_t t = select_threshold(keys, N, k, ca, cb, &take_eq);
    // Branch-free write: keep key > t, and the first take_eq keys == t.
    for (int64_t n = 0; n < N; ++n) {
      const uint32_t key = keys[n];
      const int64_t eq = key == t;
      const int64_t keep = (key > t) | (eq & (take_eq > 0));
      take_eq -= eq;
      idx[pos] = (int32_t)n;
      val[pos] = s[n];
      pos += keep;
      if (pos == k) break;
    }
  }
  for (int64_t j = pos; j < K; ++j) {
    idx[j] = -1;
    val[j] = -std::numeric_limits<float>::infinity();
  }
}

}  // namespace

Status topk(const TopkArgs& a) {
  const int64_t B = a.B, N = a.N;
  // NaN scan (all rows, also k = 0), first in row-major order.
  for (int64_t b = 0; b < B; ++b) {
    const float* s = a.scores + b * N;
    bool any = false;
    for (int64_t n = 0; n < N; ++n) any |= s[n] != s[n];
    if (any)
      for (int64_t n = 0; n < N; ++n)
        if (s[n] != s[n]) return NaNScoreError(b, n);
  }
  if (B == 0 || a.max_k == 0) return Status::Ok();
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, N));
  parallel_for(B, grain, [&](int64_t b0, int64_t b1) {
    std::vector<uint32_t> buf((size_t)(3 * N));
    for (int64_t b = b0; b < b1; ++b) topk_row(a, b, buf.data(), buf.data() + N, buf.data() + 2 * N);
  });
  return Status::Ok();
}

}  // namespace cpu
}  // namespace grip
