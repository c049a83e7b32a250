// transformer.cc — CPU twins of the transformer ops the LLaVA runtime calls
// per layer: linear (the packed GEMM with the bias in its store), layer_norm,
// rms_norm, rope, cache_write, gelu, silu_mul, add, softmax, embedding.
// attention lives in attention.cc. Row kernels come from transformer_impl.h
// in the widest ISA variant the CPU runs (chosen once).
#define GRIP_TRANSFORMER_ISA scalar
#include "transformer_impl.h"
// (transformer_impl.h above gives grip::cpu::scalar's kernels.)

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "../core/backend.h"
#include "../core/cpu_features.h"
#include "../core/errors.h"
#include "../core/portable.h"
#include "../core/threadpool.h"
#include "gemm.h"
#include "q8_0.h"

namespace grip {
namespace cpu {

const TransformerKernels& transformer_kernels() {
  static const TransformerKernels k = [] {
#define GRIP_KERNEL_SET(ns)                                                                \
  TransformerKernels{&ns::layer_norm_rows, &ns::rms_norm_rows, &ns::gelu_range,            \
                     &ns::silu_mul_range,  &ns::softmax_rows,  &ns::dot,                   \
                     &ns::axpy,            &ns::softmax_block, &ns::softmax_cols}
    const CpuFeatures& f = cpu_features();
    if (f.avx512) return GRIP_KERNEL_SET(avx512);
    if (f.avx2_fma) return GRIP_KERNEL_SET(avx2);
    return GRIP_KERNEL_SET(scalar);
#undef GRIP_KERNEL_SET
  }();
  return k;
}

namespace {
// Rows per task: ~32 K elements each, at least one row.
int64_t rows_grain(int64_t row_elems) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(1, row_elems)); }
constexpr int64_t kFlatGrain = 1 << 15;
}  // namespace

Status linear(const LinearArgs& a) {
  // Shapes: x [M,K], weight [N,K] (trans_b), bias [N] added in the GEMM's store.
  if (a.w_dtype == GRIP_Q8_0) {
    linear_q8_0(a.M, a.N, a.K, a.x, a.K, static_cast<const uint8_t*>(a.weight), a.out, a.N, a.bias);
    return Status::Ok();
  }
  gemm(false, true, a.M, a.N, a.K, 1.f, a.x, a.K, a.weight, a.w_dtype, a.K, 0.f, a.out, a.N,
       a.bias);
  return Status::Ok();
}

Status layer_norm(const NormArgs& a) {
  const auto& kn = transformer_kernels();
  parallel_for(a.M, rows_grain(a.D), [&](int64_t r0, int64_t r1) { kn.layer_norm_rows(a, r0, r1); });
  return Status::Ok();
}

Status rms_norm(const NormArgs& a) {
  const auto& kn = transformer_kernels();
  parallel_for(a.M, rows_grain(a.D), [&](int64_t r0, int64_t r1) { kn.rms_norm_rows(a, r0, r1); });
  return Status::Ok();
}

Status rope(const RopeArgs& a) {
  // Shapes: x, out [B,T,H,Dh]; positions [B,T]. One cos/sin table per token
  // (shared by its H heads), angles in double.
  const int64_t BT = a.B * a.T, half = a.Dh / 2;
  for (int64_t i = 0; i < BT; ++i)
    if (a.positions[i] < 0) return RopePositionError(a.positions[i], i / a.T, i % a.T);
  std::vector<double> inv_freq((size_t)half);
  for (int64_t i = 0; i < half; ++i) inv_freq[i] = std::pow(a.theta, -(double)(2 * i) / (double)a.Dh);
  parallel_for(BT, rows_grain(a.H * a.Dh), [&](int64_t t0, int64_t t1) {
    std::vector<float> cs((size_t)(2 * half));
    for (int64_t t = t0; t < t1; ++t) {
      const double pos = (double)a.positions[t];
      for (int64_t i = 0; i < half; ++i) {
        const double angle = pos * inv_freq[i];
        cs[i] = (float)std::cos(angle);
        cs[half + i] = (float)std::sin(angle);
      }
      for (int64_t h = 0; h < a.H; ++h) {
        const float* x = a.x + (t * a.H + h) * a.Dh;
        float* out = a.out + (t * a.H + h) * a.Dh;
        for (int64_t i = 0; i < half; ++i) {
          const float x1 = x[i], x2 = x[half + i], c = cs[i], s = cs[half + i];
          out[i] = x1 * c - x2 * s;
          out[half + i] = x2 * c + x1 * s;
        }
      }
    }
  });
  return Status::Ok();
}

Status cache_write(const CacheWriteArgs& a) {
  // Shapes: src [B,T,Hkv,Dh] -> cache [B,Hkv,Tmax,Dh] at rows start[b]..+count[b].
  const int64_t rows = a.B * a.T * a.Hkv, Dh = a.Dh;
  parallel_for(rows, rows_grain(Dh), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t h = r % a.Hkv, i = (r / a.Hkv) % a.T, b = r / (a.Hkv * a.T);
      if (i >= a.count[b]) continue;
      const float* src = a.src + r * Dh;
      const int64_t dst = ((b * a.Hkv + h) * a.Tmax + a.start[b] + i) * Dh;
      if (a.dtype == GRIP_F32) {
        std::memcpy(static_cast<float*>(a.cache) + dst, src, (size_t)Dh * sizeof(float));
      } else {
        uint16_t* out = static_cast<uint16_t*>(a.cache) + dst;
        if (a.dtype == GRIP_F16)
          for (int64_t d = 0; d < Dh; ++d) out[d] = f32_to_f16(src[d]);
        else
          for (int64_t d = 0; d < Dh; ++d) out[d] = f32_to_bf16(src[d]);
      }
    }
  });
  return Status::Ok();
}

Status gelu(const GeluArgs& a) {
  const auto& kn = transformer_kernels();
  parallel_for(a.n, kFlatGrain, [&](int64_t i0, int64_t i1) { kn.gelu_range(a, i0, i1); });
  return Status::Ok();
}

Status silu_mul(const SiluMulArgs& a) {
  const auto& kn = transformer_kernels();
  parallel_for(a.n, kFlatGrain, [&](int64_t i0, int64_t i1) { kn.silu_mul_range(a, i0, i1); });
  return Status::Ok();
}

Status add(const AddArgs& a) {
  // b repeats every nb elements of a (a trailing part of a's shape).
  if (a.n == 0) return Status::Ok();
  const int64_t nb = std::max<int64_t>(1, a.nb);
  const int64_t rows = a.n / nb;
  parallel_for(rows, rows_grain(nb), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* x = a.a + r * nb;
      float* out = a.out + r * nb;
      for (int64_t i = 0; i < nb; ++i) out[i] = x[i] + a.b[i];
    }
  });
  return Status::Ok();
}

Status softmax(const SoftmaxArgs& a) {
  if (a.N == 0) return Status::Ok();
  const auto& kn = transformer_kernels();
  parallel_for(a.M, rows_grain(a.N), [&](int64_t r0, int64_t r1) { kn.softmax_rows(a, r0, r1); });
  return Status::Ok();
}

Status embedding(const EmbeddingArgs& a) {
  for (int64_t i = 0; i < a.n; ++i)
    if (a.ids[i] < 0 || a.ids[i] >= a.V) return EmbeddingIdError(a.ids[i], a.V, i, a.ids_shape, a.ids_ndim);
  const int64_t D = a.D;
  parallel_for(a.n, rows_grain(D), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t row = a.ids[i];
      float* out = a.out + i * D;
      if (a.dtype == GRIP_F32) {
        std::memcpy(out, static_cast<const float*>(a.table) + row * D, (size_t)D * sizeof(float));
      } else {
        const uint16_t* src = static_cast<const uint16_t*>(a.table) + row * D;
        if (a.dtype == GRIP_F16)
          for (int64_t d = 0; d < D; ++d) out[d] = f16_to_f32(src[d]);
        else
          for (int64_t d = 0; d < D; ++d) out[d] = bf16_to_f32(src[d]);
      }
    }
  });
  return Status::Ok();
}

}  // namespace cpu
}  // namespace grip
