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
#include "../core/cpu_features.h"
#include "topk_kernels.h"

namespace grip {
namespace cpu {
namespace {

// Radix select of the k-th largest of keys[0..N) (1 <= k < N), given their
// min and max. Each pass skips the bits all remaining candidates share (from
// min ^ max) and histograms the next 8, so every pass discriminates; the
// candidates in the threshold's bin are compacted for the next pass; small
// candidate sets are finished by insertion sort. Returns the threshold key T;
// *take_eq = how many keys equal to T are kept.
uint32_t select_threshold(const uint32_t* keys, int64_t N, int64_t k, uint32_t mn, uint32_t mx,
                          uint32_t* cand_a, uint32_t* cand_b, int64_t* take_eq) {
  uint32_t hist[4][256];
  const uint32_t* src = keys;
  int64_t m = N, need = k;  // need: rank (from the top) of T among the candidates
  uint32_t* dst = cand_a;
  for (;;) {
    if (mn == mx) {  // all candidates equal
      *take_eq = need;
      return mn;
    }
    if (m <= 24) {
      uint32_t c[24];
      for (int64_t i = 0; i < m; ++i) {  // insertion sort, descending
        const uint32_t key = src[i];
        int64_t j = i;
        for (; j > 0 && c[j - 1] < key; --j) c[j] = c[j - 1];
        c[j] = key;
      }
      const uint32_t t = c[need - 1];
      int64_t gt = 0;
      while (c[gt] > t) ++gt;
      *take_eq = need - gt;
      return t;
    }
    const int top = 31 - __builtin_clz(mn ^ mx);  // highest differing bit
    const int sh = top >= 7 ? top - 7 : 0;
    std::memset(hist, 0, sizeof(hist));
    int64_t i = 0;
    for (; i + 4 <= m; i += 4) {  // four histograms: no store-forwarding chains
      ++hist[0][(src[i] >> sh) & 255];
      ++hist[1][(src[i + 1] >> sh) & 255];
      ++hist[2][(src[i + 2] >> sh) & 255];
      ++hist[3][(src[i + 3] >> sh) & 255];
    }
    for (; i < m; ++i) ++hist[0][(src[i] >> sh) & 255];
    const auto count = [&](uint32_t bn) {
      return (int64_t)hist[0][bn] + hist[1][bn] + hist[2][bn] + hist[3][bn];
    };
    int64_t above = 0;
    uint32_t bin = 255;
    if (2 * need <= m) {  // threshold in the upper half: scan down from the top
      for (;; --bin) {
        const int64_t c = count(bin);
        if (above + c >= need) break;
        above += c;
      }
    } else {  // lower half: scan up, rank from the bottom m - need + 1
      const int64_t rank = m - need + 1;
      int64_t below = 0;
      for (bin = 0;; ++bin) {
        const int64_t c = count(bin);
        if (below + c >= rank) {
          above = m - below - c;
          break;
        }
        below += c;
      }
    }
    need -= above;
    int64_t mm = 0;
    for (int64_t j = 0; j < m; ++j) {
      const uint32_t key = src[j];
      dst[mm] = key;
      mm += ((key >> sh) & 255) == bin;
    }
    if (sh == 0) {  // full keys: every candidate equals (prefix | bin)
      *take_eq = need;
      return dst[0];
    }
    src = dst;
    m = mm;
    dst = (dst == cand_a) ? cand_b : cand_a;
    mn = 0xffffffffu;
    mx = 0;
    for (int64_t j = 0; j < m; ++j) {
      mn = std::min(mn, src[j]);
      mx = std::max(mx, src[j]);
    }
  }
}

void topk_row(const TopkArgs& a, int64_t b, uint32_t* keys, uint32_t* ca, uint32_t* cb,
              bool use_avx512) {
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
    // + 0.f turns -0 into +0: equal values (README: ordering by value) get
    // equal keys, so the lower index wins among -0 and +0 too.
    uint32_t mn = 0xffffffffu, mx = 0;
    if (use_avx512) {
      avx512::topk_keys(s, N, keys, &mn, &mx);
    } else {
      for (int64_t n = 0; n < N; ++n) {
        const uint32_t key = float_order_key(s[n] + 0.f);
        keys[n] = key;
        mn = std::min(mn, key);
        mx = std::max(mx, key);
      }
    }
    int64_t take_eq = 0;
    const uint32_t t = select_threshold(keys, N, k, mn, mx, ca, cb, &take_eq);
    if (use_avx512) {
      pos = avx512::topk_write(s, keys, N, t, take_eq, k, idx, val);
    } else {
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
  }
  for (int64_t j = pos; j < K; ++j) {
    idx[j] = -1;
    val[j] = -std::numeric_limits<float>::infinity();
  }
}

}  // namespace

Status topk(const TopkArgs& a) {
  const int64_t B = a.B, N = a.N;
  const bool avx = cpu_features().avx512;
  // NaN scan (all rows, also k = 0), first in row-major order.
  for (int64_t b = 0; b < B; ++b) {
    const float* s = a.scores + b * N;
    int64_t nans = 0;
    if (avx) {
      nans = avx512::count_nan(s, N);
    } else {
      int32_t c[8] = {0};
      int64_t n = 0;
      for (; n + 8 <= N; n += 8)
        for (int l = 0; l < 8; ++l) c[l] += s[n + l] != s[n + l];
      for (; n < N; ++n) nans += s[n] != s[n];
      for (int l = 0; l < 8; ++l) nans += c[l];
    }
    if (nans)
      for (int64_t n = 0; n < N; ++n)
        if (s[n] != s[n]) return NaNScoreError(b, n);
  }
  if (B == 0 || a.max_k == 0) return Status::Ok();
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, N));
  parallel_for(B, grain, [&](int64_t b0, int64_t b1) {
    std::vector<uint32_t> buf((size_t)(3 * N));
    for (int64_t b = b0; b < b1; ++b) topk_row(a, b, buf.data(), buf.data() + N, buf.data() + 2 * N, avx);
  });
  return Status::Ok();
}

}  // namespace cpu
}  // namespace grip
