// reduce.cuh — warp/block reductions and scans, error slots, scratch layout:
// the building blocks shared by every kernel header. Written with warp
// shuffles/ballots and shared memory only (no cub), so the same code runs on
// the GPU and on the SIMT emulator. Every block-level helper must be called by
// all threads of the block (they contain __syncthreads), blockDim.x a
// multiple of 32 and at most 1024; `smem` is a __shared__ array the caller
// declares in the kernel body (helpers declare no shared memory themselves).
#pragma once
#include "common.cuh"

namespace grip {
namespace GRIP_CUDA_NS {

constexpr unsigned kFullMask = 0xffffffffu;
// Error slot: the row-major flat position of the first offending entry
// (atomicMin), kNoError when none. Initialised with grip_dev_memset(0xff).
constexpr unsigned long long kNoError = ~0ull;

__device__ inline int popcount32(unsigned x) {
#if defined(__CUDA_ARCH__)
  return __popc(x);
#else
  return __builtin_popcount(x);
#endif
}

__device__ inline void report_error(unsigned long long* slot, int64_t flat) {
  atomicMin(slot, (unsigned long long)flat);
}

template <typename T>
__device__ inline T warp_sum(T v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(kFullMask, v, off);
  return v;  // butterfly: every lane holds the same value
}

template <typename T>
__device__ inline T warp_max(T v) {
  for (int off = 16; off > 0; off >>= 1) {
    const T o = __shfl_xor_sync(kFullMask, v, off);
    v = o > v ? o : v;
  }
  return v;
}

// Block sum in a fixed order (deterministic); result returned to all threads.
// smem: >= 33 elements of T.
template <typename T>
__device__ inline T block_sum(T v, T* smem) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int nwarps = (blockDim.x + 31) >> 5;
  v = warp_sum(v);
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  if (warp == 0) {
    T t = lane < nwarps ? smem[lane] : T(0);
    t = warp_sum(t);
    if (lane == 0) smem[32] = t;
  }
  __syncthreads();
  const T r = smem[32];
  __syncthreads();  // smem reusable after return
  return r;
}

// Block max; `lowest` is the identity (e.g. -inf). smem: >= 33 elements.
template <typename T>
__device__ inline T block_max(T v, T lowest, T* smem) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int nwarps = (blockDim.x + 31) >> 5;
  v = warp_max(v);
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  if (warp == 0) {
    T t = lane < nwarps ? smem[lane] : lowest;
    t = warp_max(t);
    if (lane == 0) smem[32] = t;
  }
  __syncthreads();
  const T r = smem[32];
  __syncthreads();
  return r;
}

// Exclusive prefix count of `flag` over the block in thread order; *total gets
// the block's count. smem: >= 33 ints.
__device__ inline int block_exclusive_count(bool flag, int* smem, int* total) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int nwarps = (blockDim.x + 31) >> 5;
  const unsigned ballot = __ballot_sync(kFullMask, flag);
  const int in_warp = popcount32(ballot & ((1u << lane) - 1u));
  if (lane == 0) smem[warp] = popcount32(ballot);
  __syncthreads();
  if (threadIdx.x == 0) {
    int run = 0;
    for (int w = 0; w < nwarps; ++w) {
      const int c = smem[w];
      smem[w] = run;
      run += c;
    }
    smem[32] = run;
  }
  __syncthreads();
  const int r = smem[warp] + in_warp;
  *total = smem[32];
  __syncthreads();
  return r;
}

// Sub-allocations of one scratch buffer, 256-byte aligned.
struct ScratchPlan {
  size_t bytes = 0;
  size_t add(size_t n) {
    const size_t off = bytes;
    bytes += (n + 255) & ~size_t(255);
    return off;
  }
};
template <typename T>
inline T* scratch_at(const DeviceScratch& s, size_t off) {
  return reinterpret_cast<T*>(static_cast<char*>(s.ptr) + off);
}

// Scratch allocation that never asks for zero bytes.
inline Status alloc_bytes(DeviceScratch& s, size_t n) { return s.alloc(n ? n : 8); }

// Allocates and clears one error slot.
inline Status make_error_slot(DeviceScratch& slot) {
  GRIP_RETURN_IF_ERROR(slot.alloc(sizeof(unsigned long long)));
  return grip_dev_memset(slot.ptr, 0xff, sizeof(unsigned long long));
}
inline Status read_error_slot(const DeviceScratch& slot, unsigned long long* flat) {
  return grip_dev_to_host(flat, slot.ptr, sizeof(unsigned long long));
}

// Launch geometry for flat grid-stride loops.
inline unsigned flat_blocks(int64_t n, int threads) {
  int64_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  if (b > 65535) b = 65535;
  return (unsigned)b;
}

}  // namespace GRIP_CUDA_NS
}  // namespace grip
