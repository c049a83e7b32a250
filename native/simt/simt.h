// simt.h — a small SIMT emulator that lets the cuda/*.cuh kernels compile
// with g++ (-DGRIP_SIMT_EMU=1) and run on the CPU in tests.
//
// Every CUDA thread of a block is a fiber with its own stack; the blocks of a
// grid run one after another on the calling OS thread. A fiber runs until it
// blocks at __syncthreads*, a warp collective (__shfl*, __ballot_sync, ...)
// or returns; the scheduler then picks the next runnable fiber in Forward,
// Reverse or seeded Random order (set_schedule), so a missing barrier shows up
// as a schedule-dependent result. CUDA's rules are checked and reported as
// launch errors (take_error): barriers not reached by the whole block,
// deadlock, warp ops whose mask names an exited lane, mismatched collectives.
//
// Limits: no memory model beyond sequential consistency; no concurrency
// between blocks or threads (atomics are trivially atomic); warps do not run
// in lockstep, so code relying on implicit warp-synchronous execution
// without __syncwarp is (correctly) not guaranteed to work. __shared__ is a
// function-local `static thread_local`, so it persists between blocks (not
// poisoned); dynamic shared memory is poisoned with 0xA5 at each block start.
// Launches from different OS threads are independent; a kernel must not
// launch another kernel.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <type_traits>

// ---- CUDA keywords -----------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static thread_local
#define __constant__ static
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))

// ---- index types ---------------------------------------------------------------
struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
  constexpr operator uint3() const { return uint3{x, y, z}; }
};

static constexpr int warpSize = 32;

namespace simt {

// Runs `body` once per CUDA thread of every block of the grid. Never throws:
// a violation of CUDA's rules (or an exception escaping the body) records an
// error, stops the launch and returns; read it with take_error().
void launch(dim3 grid, dim3 block, size_t dynamic_smem_bytes, std::function<void()> body);
// The current block's dynamic shared memory (poisoned with 0xA5 per block).
void* dynamic_smem();
// nullptr if every launch since the last call was clean; else the first error
// message (valid until the next take_error on this OS thread). Clears it.
const char* take_error();
// Scratch "device" memory.
void* alloc(size_t bytes);
void free(void* ptr);

enum class Schedule { Forward = 0, Reverse = 1, Random = 2 };
// Process-wide order in which threads (and blocks) are picked.
void set_schedule(Schedule s, uint64_t seed);

namespace detail {
const uint3& thread_idx();
const uint3& block_idx();
const dim3& block_dim();
const dim3& grid_dim();
unsigned lane_id();

enum class BarrierKind { Sync = 0, Count = 1, And = 2, Or = 3 };
int block_barrier(BarrierKind kind, int pred);

enum class WarpOp { SyncWarp = 0, Shfl, ShflUp, ShflDown, ShflXor, Ballot, Any, All };
// Joins the warp collective `op` over `mask`; when every lane of the mask has
// arrived, out[j] holds lane j's `value` for each lane j in mask (others: poison).
void warp_exchange(WarpOp op, unsigned mask, uint64_t value, uint64_t* out);
unsigned active_mask();
// A possible yield point (Random schedule only); called by every atomic.
void atomic_point();

constexpr uint64_t kPoison = 0xA5A5A5A5A5A5A5A5ull;

template <class T> inline uint64_t to_bits(T v) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "warp op on a type over 8 bytes");
  uint64_t b = 0;
  std::memcpy(&b, &v, sizeof(T));
  return b;
}
template <class T> inline T from_bits(uint64_t b) {
  T v;
  std::memcpy(&v, &b, sizeof(T));
  return v;
}
// Shared body of the four shuffles: `src` is the absolute source lane, or -1
// for "keep my own value" (out of the segment).
template <class T> inline T shuffle(WarpOp op, unsigned mask, T v, int src) {
  uint64_t all[32];
  warp_exchange(op, mask, to_bits(v), all);
  if (src < 0) return v;
  return from_bits<T>(all[src & 31]);  // lanes outside the mask read poison
}
inline int seg_base(int width) { return (int)lane_id() & ~(width - 1); }
}  // namespace detail
}  // namespace simt

#define threadIdx (::simt::detail::thread_idx())
#define blockIdx (::simt::detail::block_idx())
#define blockDim (::simt::detail::block_dim())
#define gridDim (::simt::detail::grid_dim())

// ---- barriers ----------------------------------------------------------------------
inline void __syncthreads() { ::simt::detail::block_barrier(::simt::detail::BarrierKind::Sync, 0); }
inline int __syncthreads_count(int p) { return ::simt::detail::block_barrier(::simt::detail::BarrierKind::Count, p); }
inline int __syncthreads_and(int p) { return ::simt::detail::block_barrier(::simt::detail::BarrierKind::And, p); }
inline int __syncthreads_or(int p) { return ::simt::detail::block_barrier(::simt::detail::BarrierKind::Or, p); }
inline void __syncwarp(unsigned mask = 0xffffffffu) {
  uint64_t all[32];
  ::simt::detail::warp_exchange(::simt::detail::WarpOp::SyncWarp, mask, 0, all);
}
inline void __threadfence() {}
inline void __threadfence_block() {}
inline void __threadfence_system() {}

// ---- warp collectives ------------------------------------------------------------------
template <class T> inline T __shfl_sync(unsigned mask, T v, int srcLane, int width = 32) {
  const int src = ::simt::detail::seg_base(width) + (srcLane & (width - 1));
  return ::simt::detail::shuffle(::simt::detail::WarpOp::Shfl, mask, v, src);
}
template <class T> inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  const int lane = (int)::simt::detail::lane_id();
  const int src = ((lane & (width - 1)) < (int)delta) ? -1 : lane - (int)delta;
  return ::simt::detail::shuffle(::simt::detail::WarpOp::ShflUp, mask, v, src);
}
template <class T> inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  const int lane = (int)::simt::detail::lane_id();
  const int src = ((lane & (width - 1)) + (int)delta >= width) ? -1 : lane + (int)delta;
  return ::simt::detail::shuffle(::simt::detail::WarpOp::ShflDown, mask, v, src);
}
template <class T> inline T __shfl_xor_sync(unsigned mask, T v, int laneMask, int width = 32) {
  const int lane = (int)::simt::detail::lane_id();
  const int src = lane ^ laneMask;
  const int end = ::simt::detail::seg_base(width) + width;  // later groups: own value
  return ::simt::detail::shuffle(::simt::detail::WarpOp::ShflXor, mask, v,
                                 (src >= end || src > 31) ? -1 : src);
}
namespace simt {
namespace detail {
inline unsigned vote(WarpOp op, unsigned mask, int pred) {
  uint64_t all[32];
  warp_exchange(op, mask, pred != 0, all);
  unsigned bits = 0;
  for (int j = 0; j < 32; ++j)
    if (((mask >> j) & 1u) && all[j] == 1) bits |= 1u << j;
  return bits;
}
}  // namespace detail
}  // namespace simt
inline unsigned __ballot_sync(unsigned mask, int pred) {
  return ::simt::detail::vote(::simt::detail::WarpOp::Ballot, mask, pred);
}
inline int __any_sync(unsigned mask, int pred) {
  return ::simt::detail::vote(::simt::detail::WarpOp::Any, mask, pred) != 0;
}
inline int __all_sync(unsigned mask, int pred) {
  return ::simt::detail::vote(::simt::detail::WarpOp::All, mask, pred) == mask;
}
inline unsigned __activemask() { return ::simt::detail::active_mask(); }

// ---- atomics (fibers share one OS thread, so read-modify-write is atomic) -----------
#define SIMT_ATOMIC_(name, T, expr)                 \
  inline T name(T* address, T val) {                \
    ::simt::detail::atomic_point();                 \
    T old = *address;                               \
    *address = (expr);                              \
    return old;                                     \
  }
// Integer add/sub wrap like the hardware (unsigned arithmetic avoids UB).
#define SIMT_WRAP_(T, op) (T)((unsigned long long)old op(unsigned long long) val)
SIMT_ATOMIC_(atomicAdd, int, SIMT_WRAP_(int, +))
SIMT_ATOMIC_(atomicAdd, unsigned, old + val)
SIMT_ATOMIC_(atomicAdd, unsigned long long, old + val)
SIMT_ATOMIC_(atomicAdd, float, old + val)
SIMT_ATOMIC_(atomicAdd, double, old + val)
SIMT_ATOMIC_(atomicSub, int, SIMT_WRAP_(int, -))
SIMT_ATOMIC_(atomicSub, unsigned, old - val)
SIMT_ATOMIC_(atomicMin, int, val < old ? val : old)
SIMT_ATOMIC_(atomicMin, unsigned, val < old ? val : old)
SIMT_ATOMIC_(atomicMin, long long, val < old ? val : old)
SIMT_ATOMIC_(atomicMin, unsigned long long, val < old ? val : old)
SIMT_ATOMIC_(atomicMax, int, val > old ? val : old)
SIMT_ATOMIC_(atomicMax, unsigned, val > old ? val : old)
SIMT_ATOMIC_(atomicMax, long long, val > old ? val : old)
SIMT_ATOMIC_(atomicMax, unsigned long long, val > old ? val : old)
SIMT_ATOMIC_(atomicExch, int, val)
SIMT_ATOMIC_(atomicExch, unsigned, val)
SIMT_ATOMIC_(atomicExch, unsigned long long, val)
SIMT_ATOMIC_(atomicExch, float, val)
SIMT_ATOMIC_(atomicOr, int, old | val)
SIMT_ATOMIC_(atomicOr, unsigned, old | val)
SIMT_ATOMIC_(atomicOr, unsigned long long, old | val)
SIMT_ATOMIC_(atomicAnd, int, old & val)
SIMT_ATOMIC_(atomicAnd, unsigned, old & val)
SIMT_ATOMIC_(atomicAnd, unsigned long long, old & val)
SIMT_ATOMIC_(atomicXor, int, old ^ val)
SIMT_ATOMIC_(atomicXor, unsigned, old ^ val)
SIMT_ATOMIC_(atomicXor, unsigned long long, old ^ val)
SIMT_ATOMIC_(atomicInc, unsigned, old >= val ? 0u : old + 1u)
SIMT_ATOMIC_(atomicDec, unsigned, (old == 0u || old > val) ? val : old - 1u)
#undef SIMT_WRAP_
#undef SIMT_ATOMIC_
#define SIMT_CAS_(T)                                  \
  inline T atomicCAS(T* address, T compare, T val) {  \
    ::simt::detail::atomic_point();                   \
    T old = *address;                                 \
    if (old == compare) *address = val;               \
    return old;                                       \
  }
SIMT_CAS_(int)
SIMT_CAS_(unsigned)
SIMT_CAS_(unsigned long long)
#undef SIMT_CAS_

// ---- intrinsics -------------------------------------------------------------------------
inline unsigned __float_as_uint(float f) { return ::simt::detail::from_bits<unsigned>(::simt::detail::to_bits(f)); }
inline float __uint_as_float(unsigned u) { return ::simt::detail::from_bits<float>(u); }
inline int __float_as_int(float f) { return ::simt::detail::from_bits<int>(::simt::detail::to_bits(f)); }
inline float __int_as_float(int i) { return ::simt::detail::from_bits<float>((uint32_t)i); }
inline long long __double_as_longlong(double d) { return ::simt::detail::from_bits<long long>(::simt::detail::to_bits(d)); }
inline double __longlong_as_double(long long i) { return ::simt::detail::from_bits<double>((uint64_t)i); }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned)x); }
inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll((unsigned long long)x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned __brev(unsigned x) {
  unsigned r = 0;
  for (int i = 0; i < 32; ++i) r |= ((x >> i) & 1u) << (31 - i);
  return r;
}
inline unsigned long long __brevll(unsigned long long x) {
  return ((unsigned long long)__brev((unsigned)x) << 32) | __brev((unsigned)(x >> 32));
}
inline unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((unsigned long long)a * b) >> 32); }
inline float __expf(float x) { return std::exp(x); }
inline float __exp10f(float x) { return std::pow(10.0f, x); }
inline float __logf(float x) { return std::log(x); }
inline float __log2f(float x) { return std::log2(x); }
inline float __sinf(float x) { return std::sin(x); }
inline float __cosf(float x) { return std::cos(x); }
inline float __powf(float x, float y) { return std::pow(x, y); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return std::sqrt(x); }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
inline float __saturatef(float x) { return x > 0.0f ? (x < 1.0f ? x : 1.0f) : 0.0f; }  // NaN -> 0
template <class T> inline T __ldg(const T* p) { return *p; }

// CUDA device code's min/max overloads (global namespace only; std:: untouched).
#define SIMT_MINMAX_(T)                                 \
  inline T min(T a, T b) { return b < a ? b : a; }      \
  inline T max(T a, T b) { return a < b ? b : a; }
SIMT_MINMAX_(int)
SIMT_MINMAX_(unsigned)
SIMT_MINMAX_(long)
SIMT_MINMAX_(unsigned long)
SIMT_MINMAX_(long long)
SIMT_MINMAX_(unsigned long long)
#undef SIMT_MINMAX_
inline float min(float a, float b) { return std::fmin(a, b); }
inline float max(float a, float b) { return std::fmax(a, b); }
inline double min(double a, double b) { return std::fmin(a, b); }
inline double max(double a, double b) { return std::fmax(a, b); }
inline unsigned min(int a, unsigned b) { return min((unsigned)a, b); }
inline unsigned min(unsigned a, int b) { return min(a, (unsigned)b); }
inline unsigned max(int a, unsigned b) { return max((unsigned)a, b); }
inline unsigned max(unsigned a, int b) { return max(a, (unsigned)b); }
inline double min(float a, double b) { return std::fmin((double)a, b); }
inline double min(double a, float b) { return std::fmin(a, (double)b); }
inline double max(float a, double b) { return std::fmax((double)a, b); }
inline double max(double a, float b) { return std::fmax(a, (double)b); }
