// elementwise.cuh — the transformer ops on CUDA that touch each element once:
// gelu, silu_mul, add (trailing broadcast), rope, cache_write and embedding.
// Flat grid-stride loops; every thread reads the elements it writes (rope: the
// pair (i, i+Dh/2)) before writing them, so out may be the input. rope and
// embedding validate their indices first (a check kernel and an atomicMin
// error slot, as gather.cuh), so a failed call writes nothing.
#pragma once
#include "reduce.cuh"

namespace grip {
namespace GRIP_CUDA_NS {

constexpr int kElemThreads = 256;

// Shapes: x, out [n]; flat grid-stride.
__global__ void gelu_kernel(const float* x, int kind, int64_t n, float* out) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x) {
    const float v = x[i];
    float r;
    if (kind == GRIP_GELU_ERF) r = 0.5f * v * (1.f + erff(v * 0.70710678118654752f));
    else if (kind == GRIP_GELU_TANH)
      r = 0.5f * v * (1.f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v)));
    else r = v / (1.f + expf(-1.702f * v));
    out[i] = r;
  }
}

// out = gate * sigmoid(gate) * up. Shapes: gate, up, out [n]; flat grid-stride.
__global__ void silu_mul_kernel(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x) {
    const float g = gate[i];
    out[i] = g / (1.f + expf(-g)) * up[i];
  }
}

// out[i] = a[i] + b[i % nb]. Shapes: a, out [n], b [nb]; flat grid-stride.
__global__ void add_kernel(const float* a, const float* b, int64_t n, int64_t nb, float* out) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x)
    out[i] = a[i] + b[i % nb];
}

// err = first flat index with values[i] < lo or >= hi. Flat grid-stride over n.
__global__ void range_check_kernel(const int32_t* values, int64_t n, int64_t lo, int64_t hi,
                                   unsigned long long* err) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x) {
    const int32_t v = values[i];
    if (v < lo || v >= hi) report_error(err, i);
  }
}

// Rotates each pair (i, i+Dh/2) of each head by angle pos * theta^(-2i/Dh)
// (double; cos/sin rounded to float). Shapes: x, out [B*T, H, Dh],
// positions [B*T]; flat grid-stride over B*T*H*Dh/2 pairs.
__global__ void rope_kernel(const float* x, const int32_t* positions, double theta, int64_t H,
                            int64_t Dh, int64_t pairs, float* out) {
  const int64_t half = Dh / 2;
  for (int64_t p = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; p < pairs;
       p += (int64_t)gridDim.x * blockDim.x) {
    const int64_t i = p % half, head = p / half, t = head / H;
    const double angle = (double)positions[t] * pow(theta, -(double)(2 * i) / (double)Dh);
    const float c = (float)cos(angle), s = (float)sin(angle);
    const int64_t base = head * Dh;
    const float x1 = x[base + i], x2 = x[base + half + i];
    out[base + i] = x1 * c - x2 * s;
    out[base + half + i] = x2 * c + x1 * s;
  }
}

// cache[b,h,start[b]+i,d] = src[b,i,h,d] for i < count[b], rounded to dtype
// (0 f32, 1 f16, 2 bf16). Shapes: src [B,T,Hkv,Dh], cache [B,Hkv,Tmax,Dh],
// start/count [B] (device copies); flat grid-stride over src.
__global__ void cache_write_kernel(const float* src, const int32_t* start, const int32_t* count,
                                   int64_t T, int64_t Hkv, int64_t Tmax, int64_t Dh, int64_t n,
                                   int dtype, void* cache) {
  for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n;
       e += (int64_t)gridDim.x * blockDim.x) {
    const int64_t d = e % Dh, r = e / Dh, h = r % Hkv, i = (r / Hkv) % T, b = r / (Hkv * T);
    if (i >= count[b]) continue;
    const int64_t dst = ((b * Hkv + h) * Tmax + start[b] + i) * Dh + d;
    const float v = src[e];
    if (dtype == GRIP_F32) static_cast<float*>(cache)[dst] = v;
    else if (dtype == GRIP_F16) static_cast<uint16_t*>(cache)[dst] = f32_to_f16(v);
    else static_cast<uint16_t*>(cache)[dst] = f32_to_bf16(v);
  }
}

// out[i,d] = table[ids[i],d] widened. Shapes: table [V,D] of dtype, ids [n],
// out [n,D]; flat grid-stride over n*D.
__global__ void embedding_kernel(const void* table, int dtype, const int32_t* ids, int64_t D,
                                 int64_t total, float* out) {
  for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < total;
       e += (int64_t)gridDim.x * blockDim.x)
    out[e] = load_float(table, dtype, (int64_t)ids[e / D] * D + e % D);
}

// ---- host -------------------------------------------------------------------

// The first flat index of values [n] outside [lo, hi), or -1; *value gets it.
inline Status first_out_of_range(const int32_t* values, int64_t n, int64_t lo, int64_t hi,
                                 int64_t* flat, int32_t* value) {
  *flat = -1;
  if (n == 0) return Status::Ok();
  DeviceScratch err;
  GRIP_RETURN_IF_ERROR(make_error_slot(err));
  unsigned long long* err_p = err.as<unsigned long long>();
  GRIP_LAUNCH(range_check_kernel, flat_blocks(n, kElemThreads), kElemThreads, 0, values, n, lo, hi,
              err_p);
  GRIP_RETURN_IF_ERROR(grip_dev_check_launch("range_check_kernel"));
  unsigned long long f;
  GRIP_RETURN_IF_ERROR(read_error_slot(err, &f));
  if (f == kNoError) return Status::Ok();
  *flat = (int64_t)f;
  return grip_dev_to_host(value, values + f, sizeof(int32_t));
}

Status gelu(const GeluArgs& a) {
  if (a.n == 0) return Status::Ok();
  const int kind = (int)a.kind;
  GRIP_LAUNCH(gelu_kernel, flat_blocks(a.n, kElemThreads), kElemThreads, 0, a.x, kind, a.n, a.out);
  return grip_dev_check_launch("gelu_kernel");
}

Status silu_mul(const SiluMulArgs& a) {
  if (a.n == 0) return Status::Ok();
  GRIP_LAUNCH(silu_mul_kernel, flat_blocks(a.n, kElemThreads), kElemThreads, 0, a.gate, a.up, a.n,
              a.out);
  return grip_dev_check_launch("silu_mul_kernel");
}

Status add(const AddArgs& a) {
  if (a.n == 0) return Status::Ok();
  const int64_t nb = a.nb > 0 ? a.nb : 1;
  GRIP_LAUNCH(add_kernel, flat_blocks(a.n, kElemThreads), kElemThreads, 0, a.a, a.b, a.n, nb, a.out);
  return grip_dev_check_launch("add_kernel");
}

Status rope(const RopeArgs& a) {
  int64_t flat;
  int32_t value = 0;
  GRIP_RETURN_IF_ERROR(first_out_of_range(a.positions, a.B * a.T, 0, 2147483648ll, &flat, &value));
  if (flat >= 0) return RopePositionError(value, flat / a.T, flat % a.T);
  const int64_t pairs = a.B * a.T * a.H * (a.Dh / 2);
  if (pairs == 0) return Status::Ok();
  GRIP_LAUNCH(rope_kernel, flat_blocks(pairs, kElemThreads), kElemThreads, 0, a.x, a.positions,
              a.theta, a.H, a.Dh, pairs, a.out);
  return grip_dev_check_launch("rope_kernel");
}

Status cache_write(const CacheWriteArgs& a) {
  const int64_t n = a.B * a.T * a.Hkv * a.Dh;
  if (n == 0) return Status::Ok();
  DeviceScratch rows;  // start[B] then count[B] on the device
  GRIP_RETURN_IF_ERROR(rows.alloc(2 * (size_t)a.B * sizeof(int32_t)));
  int32_t* start = rows.as<int32_t>();
  int32_t* count = start + a.B;
  GRIP_RETURN_IF_ERROR(grip_dev_to_device(start, a.start, (size_t)a.B * sizeof(int32_t)));
  GRIP_RETURN_IF_ERROR(grip_dev_to_device(count, a.count, (size_t)a.B * sizeof(int32_t)));
  const int dtype = (int)a.dtype;
  GRIP_LAUNCH(cache_write_kernel, flat_blocks(n, kElemThreads), kElemThreads, 0, a.src, start,
              count, a.T, a.Hkv, a.Tmax, a.Dh, n, dtype, a.cache);
  return grip_dev_check_launch("cache_write_kernel");
}

Status embedding(const EmbeddingArgs& a) {
  int64_t flat;
  int32_t value = 0;
  GRIP_RETURN_IF_ERROR(first_out_of_range(a.ids, a.n, 0, a.V, &flat, &value));
  if (flat >= 0) return EmbeddingIdError(value, a.V, flat, a.ids_shape, a.ids_ndim);
  const int64_t total = a.n * a.D;
  if (total == 0) return Status::Ok();
  const int dtype = (int)a.dtype;
  GRIP_LAUNCH(embedding_kernel, flat_blocks(total, kElemThreads), kElemThreads, 0, a.table, dtype,
              a.ids, a.D, total, a.out);
  return grip_dev_check_launch("embedding_kernel");
}

}  // namespace GRIP_CUDA_NS
}  // namespace grip
