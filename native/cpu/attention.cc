// attention.cc — CPU twin of attention: grouped-query, causal or not, ragged
// per-row lengths, optional probabilities of selected query rows.
//
// Tasks (parallel): (b, kv head, a run of query tiles). The G = Hq/Hkv query
// heads that share a kv head go into one tile, so each K/V block serves all
// of them. A task packs K^T and V of the keys its last row sees ONCE, in the
// GEMM's panel layout, then per tile (flash-attention style, online softmax):
//   Qs [M,Dh] = scale * q rows of the tile (M = rows x G), packed once
//   for key blocks of kKeyBlock:  S = Qs · K_blk^T      (the GEMM macro-kernel)
//                                 P = exp(S - m_new) per row, masked; O *= corr
//                                 O += P · V_blk         (the GEMM macro-kernel)
//   out = O / l
// so no [Tq,Tk] matrix exists beyond one [M, kKeyBlock] tile, and causal
// tiles stop at the block of their last row. (Before, each tile called gemm(),
// which repacked every K and V block for every tile of 56 rows: the packing,
// not the FLOPs, set the speed; GRIP_ATTENTION_IMPL=reference still runs that
// path, for the same-process comparison of bench/layer-profile.ts.)
// Tiles of a few rows (decode) take a row path instead: scores by dot
// products, V by axpy (no packing of K and V for a single row).
// Probabilities (prob_rows) are a separate exact pass over the chosen rows.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "../core/backend.h"
#include "../core/threadpool.h"
#include "gemm.h"
#include "gemm_kernels.h"
#include "transformer_kernels.h"

namespace grip {
namespace cpu {
namespace {

constexpr int64_t kTileRows = 56;   // rows of a GEMM tile (4 AVX-512 register tiles)
constexpr int64_t kKeyBlock = 128;  // keys per block: S and P tiles of 56 x 128 floats
// Keys per block on the packed path: a multiple of every kernel's register
// tile rows (AVX-512 14, AVX2 and scalar 6), so blocks start on K panels.
constexpr int64_t kPackedKeyBlock = 126;
// Rows (queries x heads) of a tile on the packed path: 3 AVX-512 column
// panels of S^T exactly, and 6.9 register tiles of P · V.
#ifndef GRIP_ATTENTION_TILE
#define GRIP_ATTENTION_TILE 96
#endif
constexpr int64_t kPackedTileRows = GRIP_ATTENTION_TILE;
constexpr int64_t kRowPathRows = 4; // tiles this small take the row path

// Flush-to-zero and denormals-are-zero for the scope (x86 MXCSR): a peaked
// softmax makes probabilities near 1e-38 whose products with V are
// subnormal, and subnormal FMAs take microcode assists (10x slower GEMMs).
// Results change by less than 1e-38.
struct FlushDenormals {
#if defined(__x86_64__) || defined(__i386__)
  unsigned saved = _mm_getcsr();
  FlushDenormals() { _mm_setcsr(saved | 0x8040u); }
  ~FlushDenormals() { _mm_setcsr(saved); }
#endif
};

struct Task {
  int64_t b, hkv, i0, i1;  // query rows [i0, i1) of batch row b, kv head hkv
};

thread_local std::vector<float> t_q, t_o, t_s, t_m, t_l;

// 64-byte aligned scratch that only grows: the packed panels' stores are aligned.
struct Aligned {
  float* p = nullptr;
  size_t cap = 0;  // floats
  ~Aligned() { std::free(p); }
  float* get(size_t n) {
    if (n > cap) {
      std::free(p);
      p = static_cast<float*>(std::aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64));
      cap = p ? n : 0;
      if (!p) throw std::bad_alloc();
    }
    return p;
  }
};
thread_local Aligned t_kp, t_vp, t_aq, t_ap;

inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

float* sized(std::vector<float>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

// Row-major index of q/out row (b, i, head h).
inline int64_t qrow(const AttentionArgs& a, int64_t b, int64_t i, int64_t h) {
  return ((b * a.Tq + i) * a.Hq + h) * a.Dh;
}

// main's tile (GRIP_ATTENTION_IMPL=reference): gemm() per key block, which
// packs the block of K and of V again for every tile.
void tile_gemm_reference(const AttentionArgs& a, const TransformerKernels& kn, const Task& t) {
  const int64_t G = a.Hq / a.Hkv, Dh = a.Dh, rows = t.i1 - t.i0, M = rows * G;
  float* Qs = sized(t_q, (size_t)(M * Dh));
  float* O = sized(t_o, (size_t)(M * Dh));
  float* S = sized(t_s, (size_t)(M * kKeyBlock));
  float* m = sized(t_m, (size_t)M);
  float* l = sized(t_l, (size_t)M);
  for (int64_t r = 0; r < M; ++r) {
    const float* src = a.q + qrow(a, t.b, t.i0 + r / G, t.hkv * G + r % G);
    for (int64_t d = 0; d < Dh; ++d) Qs[r * Dh + d] = a.scale * src[d];
    m[r] = -INFINITY;
    l[r] = 0.f;
  }
  std::memset(O, 0, sizeof(float) * (size_t)(M * Dh));
  const float* K = a.k + (t.b * a.Hkv + t.hkv) * a.Tk * Dh;
  const float* V = a.v + (t.b * a.Hkv + t.hkv) * a.Tk * Dh;
  const int64_t key_end = attention_key_end(a, t.b, t.i1 - 1);  // the last row sees the most keys
  for (int64_t j0 = 0; j0 < key_end; j0 += kKeyBlock) {
    const int64_t kb = std::min(kKeyBlock, key_end - j0);
    gemm(false, true, M, kb, Dh, 1.f, Qs, Dh, K + j0 * Dh, GRIP_F32, Dh, 0.f, S, kb);
    for (int64_t r = 0; r < M; ++r) {
      const int64_t valid = std::clamp<int64_t>(attention_key_end(a, t.b, t.i0 + r / G) - j0, 0, kb);
      const float corr = kn.softmax_block(S + r * kb, kb, valid, &m[r], &l[r]);
      if (corr != 1.f)
        for (int64_t d = 0; d < Dh; ++d) O[r * Dh + d] *= corr;
    }
    gemm(false, false, M, Dh, kb, 1.f, S, kb, V + j0 * Dh, GRIP_F32, Dh, 1.f, O, Dh);
  }
  for (int64_t r = 0; r < M; ++r) {
    float* dst = a.out + qrow(a, t.b, t.i0 + r / G, t.hkv * G + r % G);
    const float inv = 1.f / l[r];
    for (int64_t d = 0; d < Dh; ++d) dst[d] = O[r * Dh + d] * inv;
  }
}

// K and V of keys [0, n) of one (b, kv head), packed for the macro-kernel,
// per key block of kPackedKeyBlock keys (kb = the block's keys): ka = K as A
// panels of g.mr keys x Dh (block j0 at ka + j0 * Dh, kPackedKeyBlock being a
// multiple of g.mr); vp = V as B panels of kb x g.nr columns of Dh (block j0
// at vp + j0 * Dhp).
struct PackedKV {
  const float* ka;
  const float* vp;
  int64_t n;
};

PackedKV pack_kv(const gemm_detail::Kernel& g, const float* K, const float* V, int64_t n, int64_t Dh) {
  const int64_t Dhp = round_up(Dh, g.nr);
  float* ka = t_kp.get((size_t)(round_up(n, kPackedKeyBlock) * Dh));
  float* vp = t_vp.get((size_t)(round_up(n, kPackedKeyBlock) * Dhp));
  for (int64_t j0 = 0; j0 < n; j0 += kPackedKeyBlock) {
    const int64_t kb = std::min(kPackedKeyBlock, n - j0);
    g.pack_a(false, K, Dh, j0, kb, 0, Dh, ka + j0 * Dh);
    g.pack_b(false, V, GRIP_F32, Dh, j0, kb, 0, Dh, vp + j0 * Dhp);
  }
  return PackedKV{ka, vp, n};
}

// One tile on the packed keys. The scores are computed transposed,
// S^T [keys, M] = K_blk · Qs^T, so that the online softmax runs across the
// M queries in vector lanes (softmax_cols) and P^T packs for P · V with
// contiguous loads; causal tiles compute score rows only up to their last key.
void tile_packed(const AttentionArgs& a, const TransformerKernels& kn, const gemm_detail::Kernel& g,
                 const Task& t, const PackedKV& kv) {
  const int64_t G = a.Hq / a.Hkv, Dh = a.Dh, rows = t.i1 - t.i0, M = rows * G;
  const int64_t Dhp = round_up(Dh, g.nr);
  float* Qs = sized(t_q, (size_t)(M * Dh));
  float* O = sized(t_o, (size_t)(M * Dh));
  float* St = sized(t_s, (size_t)(kPackedKeyBlock * M));
  float* m = sized(t_m, (size_t)(4 * M));
  float *l = m + M, *corr = m + 2 * M, *sum = m + 3 * M;
  thread_local std::vector<int32_t> t_valid;
  if (t_valid.size() < (size_t)M) t_valid.resize((size_t)M);
  int32_t* valid = t_valid.data();
  float* Bq = t_aq.get((size_t)(round_up(M, g.nr) * Dh));
  float* Ap = t_ap.get((size_t)(round_up(M, g.mr) * kPackedKeyBlock));
  for (int64_t r = 0; r < M; ++r) {
    const float* src = a.q + qrow(a, t.b, t.i0 + r / G, t.hkv * G + r % G);
    for (int64_t d = 0; d < Dh; ++d) Qs[r * Dh + d] = a.scale * src[d];
    m[r] = -INFINITY;
    l[r] = 0.f;
  }
  g.pack_b(true, Qs, GRIP_F32, Dh, 0, Dh, 0, M, Bq);
  std::memset(O, 0, sizeof(float) * (size_t)(M * Dh));
  const int64_t key_end = attention_key_end(a, t.b, t.i1 - 1);  // the last row sees the most keys
  for (int64_t j0 = 0; j0 < key_end; j0 += kPackedKeyBlock) {
    // kb: the packed block's keys (its V panels are kb deep); score rows are
    // needed only up to this tile's last key (the rest of P^T is zero).
    const int64_t kb = std::min(kPackedKeyBlock, kv.n - j0);
    const int64_t ns = std::min(kb, key_end - j0);
    g.macro(ns, M, Dh, kv.ka + j0 * Dh, Bq, St, M, 1.f, 0.f, nullptr);
    for (int64_t r = 0; r < M; ++r)
      valid[r] = (int32_t)std::clamp<int64_t>(attention_key_end(a, t.b, t.i0 + r / G) - j0, 0, kb);
    kn.softmax_cols(St, M, ns, kb, M, valid, m, l, corr, sum);
    for (int64_t r = 0; r < M; ++r)
      if (corr[r] != 1.f)
        for (int64_t d = 0; d < Dh; ++d) O[r * Dh + d] *= corr[r];
    g.pack_a(true, St, M, 0, M, 0, kb, Ap);
    g.macro(M, Dh, kb, Ap, kv.vp + j0 * Dhp, O, Dh, 1.f, 1.f, nullptr);
  }
  for (int64_t r = 0; r < M; ++r) {
    float* dst = a.out + qrow(a, t.b, t.i0 + r / G, t.hkv * G + r % G);
    const float inv = 1.f / l[r];
    for (int64_t d = 0; d < Dh; ++d) dst[d] = O[r * Dh + d] * inv;
  }
}

// Scores of one query row against keys [0, n) into s (scaled), then their
// softmax in place.
void row_probs(const AttentionArgs& a, const TransformerKernels& kn, const float* qv,
               const float* K, int64_t n, float* s) {
  for (int64_t j = 0; j < n; ++j) s[j] = a.scale * kn.dot(qv, K + j * a.Dh, a.Dh);
  float m = -INFINITY, l = 0.f;
  kn.softmax_block(s, n, n, &m, &l);
  const float inv = 1.f / l;
  for (int64_t j = 0; j < n; ++j) s[j] *= inv;
}

void tile_rows(const AttentionArgs& a, const TransformerKernels& kn, const Task& t) {
  const int64_t G = a.Hq / a.Hkv, Dh = a.Dh;
  const float* K = a.k + (t.b * a.Hkv + t.hkv) * a.Tk * Dh;
  const float* V = a.v + (t.b * a.Hkv + t.hkv) * a.Tk * Dh;
  float* s = sized(t_s, (size_t)a.Tk);
  float* o = sized(t_o, (size_t)Dh);
  for (int64_t i = t.i0; i < t.i1; ++i) {
    const int64_t n = attention_key_end(a, t.b, i);
    for (int64_t g = 0; g < G; ++g) {
      const int64_t h = t.hkv * G + g;
      row_probs(a, kn, a.q + qrow(a, t.b, i, h), K, n, s);
      std::memset(o, 0, sizeof(float) * (size_t)Dh);
      for (int64_t j = 0; j < n; ++j) kn.axpy(s[j], V + j * Dh, Dh, o);
      std::memcpy(a.out + qrow(a, t.b, i, h), o, sizeof(float) * (size_t)Dh);
    }
  }
}

}  // namespace

Status attention(const AttentionArgs& a) {
  // Shapes: q, out [B,Tq,Hq,Dh]; k, v [B,Hkv,Tk,Dh]; probs [B,Hq,R,Tk].
  const TransformerKernels& kn = transformer_kernels();
  const int64_t G = a.Hkv ? a.Hq / a.Hkv : 1;
  for (int64_t b = 0; b < a.B; ++b) {  // padding query rows: zeros
    const int64_t pad = a.Tq - a.q_len[b];
    if (pad > 0) std::memset(a.out + qrow(a, b, a.q_len[b], 0), 0, sizeof(float) * (size_t)(pad * a.Hq * a.Dh));
  }
  const char* impl = std::getenv("GRIP_ATTENTION_IMPL");
  const gemm_detail::Kernel& g = gemm_detail::active_kernel();
  const bool reference = (impl && !std::strcmp(impl, "reference")) || kPackedKeyBlock % g.mr;
  const int64_t tile = std::max<int64_t>(1, (reference ? kTileRows : kPackedTileRows) / G);
  // A task is a run of tiles of one (b, kv head), packing its keys once:
  // whole heads when there are enough of them to keep every thread busy.
  int64_t tiles = 0;
  for (int64_t b = 0; b < a.B; ++b) tiles += a.Hkv * ((a.q_len[b] + tile - 1) / tile);
  const int64_t run = reference ? 1 : std::max<int64_t>(1, tiles / (8 * num_threads()));
  std::vector<Task> tasks;
  for (int64_t b = 0; b < a.B; ++b)
    for (int64_t h = 0; h < a.Hkv; ++h)
      for (int64_t i0 = 0; i0 < a.q_len[b]; i0 += tile * run)
        tasks.push_back(Task{b, h, i0, std::min<int64_t>(a.q_len[b], i0 + tile * run)});
  parallel_for((int64_t)tasks.size(), 1, [&](int64_t t0, int64_t t1) {
    FlushDenormals ftz;
    for (int64_t t = t0; t < t1; ++t) {
      const Task& task = tasks[t];
      PackedKV kv{nullptr, nullptr, 0};
      for (int64_t i0 = task.i0; i0 < task.i1; i0 += tile) {
        const Task one{task.b, task.hkv, i0, std::min(task.i1, i0 + tile)};
        if ((one.i1 - one.i0) * G <= kRowPathRows) tile_rows(a, kn, one);
        else if (reference) tile_gemm_reference(a, kn, one);
        else {
          if (!kv.ka) {
            const int64_t off = (task.b * a.Hkv + task.hkv) * a.Tk * a.Dh;
            kv = pack_kv(g, a.k + off, a.v + off, attention_key_end(a, task.b, task.i1 - 1), a.Dh);
          }
          tile_packed(a, kn, g, one, kv);
        }
      }
    }
  });
  if (a.R == 0) return Status::Ok();
  // probs[b,h,r,:] of query row i = prob_rows[r]; zeros past its keys.
  parallel_for(a.B * a.Hq * a.R, 1, [&](int64_t t0, int64_t t1) {
    FlushDenormals ftz;
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t r = t % a.R, h = (t / a.R) % a.Hq, b = t / (a.R * a.Hq);
      const int64_t i = a.prob_rows[r];
      float* p = a.probs + t * a.Tk;
      int64_t n = 0;
      if (i < a.q_len[b]) {
        n = attention_key_end(a, b, i);
        const float* K = a.k + (b * a.Hkv + h / G) * a.Tk * a.Dh;
        row_probs(a, kn, a.q + qrow(a, b, i, h), K, n, p);
      }
      std::memset(p + n, 0, sizeof(float) * (size_t)(a.Tk - n));
    }
  });
  return Status::Ok();
}

}  // namespace cpu
}  // namespace grip
