// common.cuh — what every kernel header includes. The same kernel source is
// compiled by nvcc (real CUDA) and by g++ against grip's SIMT emulator
// (native/simt/simt.h, GRIP_SIMT_EMU defined), so kernels use only:
//   threadIdx/blockIdx/blockDim/gridDim, __syncthreads[_count|_and|_or],
//   __syncwarp, __shfl[_xor|_up|_down]_sync, __ballot_sync, __any_sync,
//   __all_sync, atomicAdd/Min/Max/CAS/Exch, __shared__ arrays of fixed size,
//   GRIP_DYNAMIC_SMEM, and the math of <cmath> plus the helpers here.
// Kernels are launched only through GRIP_LAUNCH; host wrappers use only the
// grip_dev_* helpers below, so they too compile for both targets.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cmath>

#include "../native/core/args.h"
#include "../native/core/errors.h"
#include "../native/core/portable.h"
#include "../native/core/status.h"

#if defined(__CUDACC__)
#include <cuda_runtime.h>
#define GRIP_LAUNCH(kernel, grid, block, smem_bytes, ...) \
  kernel<<<(grid), (block), (smem_bytes)>>>(__VA_ARGS__)
#define GRIP_DYNAMIC_SMEM(T, name) extern __shared__ T name[]
#define GRIP_CUDA_NS cuda
#elif defined(GRIP_SIMT_EMU)
#include "../native/simt/simt.h"
#define GRIP_LAUNCH(kernel, grid, block, smem_bytes, ...) \
  ::simt::launch((grid), (block), (smem_bytes), [=] { kernel(__VA_ARGS__); })
#define GRIP_DYNAMIC_SMEM(T, name) T* name = static_cast<T*>(::simt::dynamic_smem())
#define GRIP_CUDA_NS emu
#else
#error "cuda/*.cuh compiles under nvcc or with GRIP_SIMT_EMU (the SIMT emulator)"
#endif

namespace grip {
namespace GRIP_CUDA_NS {

constexpr int kWarpSize = 32;

// ---- host-side runtime, identical for CUDA and the emulator --------------
#if defined(__CUDACC__)
inline Status CudaError(cudaError_t err, const char* what) {
  return Error(GRIP_ERR_CUDA, "cudaSuccess", what, cudaGetErrorString(err));
}
// Checks the last launch and waits for it (ops are synchronous).
inline Status grip_dev_check_launch(const char* kernel_name) {
  cudaError_t err = cudaGetLastError();
  if (err == cudaSuccess) err = cudaDeviceSynchronize();
  return err == cudaSuccess ? Status::Ok() : CudaError(err, kernel_name);
}
inline Status grip_dev_alloc(void** ptr, size_t bytes) {
  cudaError_t err = cudaMalloc(ptr, bytes ? bytes : 1);
  return err == cudaSuccess ? Status::Ok() : CudaError(err, "device scratch allocation");
}
inline void grip_dev_free(void* ptr) { cudaFree(ptr); }
inline Status grip_dev_memset(void* ptr, int value, size_t bytes) {
  cudaError_t err = cudaMemset(ptr, value, bytes);
  return err == cudaSuccess ? Status::Ok() : CudaError(err, "device memset");
}
inline Status grip_dev_to_host(void* dst, const void* src, size_t bytes) {
  cudaError_t err = cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost);
  return err == cudaSuccess ? Status::Ok() : CudaError(err, "device to host copy");
}
inline Status grip_dev_to_device(void* dst, const void* src, size_t bytes) {
  cudaError_t err = cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice);
  return err == cudaSuccess ? Status::Ok() : CudaError(err, "host to device copy");
}
#else
inline Status grip_dev_check_launch(const char* kernel_name) {
  const char* err = ::simt::take_error();
  return err ? Error(GRIP_ERR_CUDA, "a correct SIMT execution", kernel_name, err) : Status::Ok();
}
inline Status grip_dev_alloc(void** ptr, size_t bytes) {
  *ptr = ::simt::alloc(bytes);
  return *ptr ? Status::Ok()
              : Error(GRIP_ERR_INTERNAL, "memory", "emulator scratch", "an allocation failure");
}
inline void grip_dev_free(void* ptr) { ::simt::free(ptr); }
// bytes == 0 may come with a NULL pointer (an empty tensor): memset/memcpy
// with NULL is undefined even for 0 bytes (UBSan, npm run test:asan), cudaMemcpy is not.
inline Status grip_dev_memset(void* ptr, int value, size_t bytes) {
  if (bytes > 0) __builtin_memset(ptr, value, bytes);
  return Status::Ok();
}
inline Status grip_dev_to_host(void* dst, const void* src, size_t bytes) {
  if (bytes > 0) __builtin_memcpy(dst, src, bytes);
  return Status::Ok();
}
inline Status grip_dev_to_device(void* dst, const void* src, size_t bytes) {
  if (bytes > 0) __builtin_memcpy(dst, src, bytes);
  return Status::Ok();
}
#endif

// Scratch buffer freed on scope exit. Not copyable: GRIP_LAUNCH captures its
// arguments by value, so pass `scratch.as<T>()` through a local pointer.
struct DeviceScratch {
  DeviceScratch() = default;
  DeviceScratch(const DeviceScratch&) = delete;
  DeviceScratch& operator=(const DeviceScratch&) = delete;
  void* ptr = nullptr;
  ~DeviceScratch() { if (ptr) grip_dev_free(ptr); }
  Status alloc(size_t bytes) { return grip_dev_alloc(&ptr, bytes); }
  template <typename T> T* as() const { return static_cast<T*>(ptr); }
};

inline unsigned ceil_div(int64_t a, int64_t b) { return (unsigned)((a + b - 1) / b); }

}  // namespace GRIP_CUDA_NS
}  // namespace grip
