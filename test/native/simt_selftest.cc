// simt_selftest.cc — checks of the SIMT emulator (native/simt): barriers,
// warp collectives, atomics, shared memory, grid indexing, schedules, and
// that CUDA rule violations come back as launch errors instead of hangs.
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "check.h"
#include "simt/simt.h"

namespace {

const simt::Schedule kSchedules[] = {simt::Schedule::Forward, simt::Schedule::Reverse, simt::Schedule::Random};
const char* kScheduleNames[] = {"forward", "reverse", "random"};

std::string take() {
  const char* e = simt::take_error();
  return e ? std::string(e) : std::string();
}
bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

// ---- kernels ----------------------------------------------------------------------------
__global__ void block_sum(const int* in, int* out, int n) {
  __shared__ int s[256];
  const unsigned t = threadIdx.x;
  const int i = blockIdx.x * blockDim.x + t;
  s[t] = i < n ? in[i] : 0;
  __syncthreads();
  for (unsigned stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (t < stride) s[t] += s[t + stride];
    __syncthreads();
  }
  if (t == 0) out[blockIdx.x] = s[0];
}

__global__ void warp_sums(const float* in, float* down, float* xr, float* bcast, float* scan16) {
  const unsigned t = threadIdx.x;
  const float v = in[t];
  float a = v, b = v;
  for (int o = warpSize / 2; o > 0; o /= 2) a += __shfl_down_sync(0xffffffffu, a, o);
  for (int o = 1; o < warpSize; o *= 2) b += __shfl_xor_sync(0xffffffffu, b, o);
  if (t % 32 == 0) down[t / 32] = a;
  xr[t] = b;
  bcast[t] = __shfl_sync(0xffffffffu, v, 5);
  float s = v;  // inclusive scan within segments of 16
  for (int o = 1; o < 16; o *= 2) {
    float u = __shfl_up_sync(0xffffffffu, s, o, 16);
    if ((int)(t % 16) >= o) s += u;
  }
  scan16[t] = s;
}

__global__ void votes(const int* pred, unsigned* ballot, int* any, int* all) {
  const unsigned t = threadIdx.x;
  const int p = pred[t];
  const unsigned b = __ballot_sync(0xffffffffu, p);
  const int an = __any_sync(0xffffffffu, p), al = __all_sync(0xffffffffu, p);
  if (t % 32 == 0) {
    ballot[t / 32] = b;
    any[t / 32] = an;
    all[t / 32] = al;
  }
}

__global__ void partial_mask(int* out, unsigned* active) {
  const int lane = threadIdx.x % 32;
  int v = lane;
  if (lane < 16) {
    v += 100 * __shfl_xor_sync(0x0000ffffu, v, 1);
  } else {
    for (int k = 0; k < 3; ++k) out[64 + lane] = k;  // lanes outside the mask keep running
    v = __shfl_down_sync(0xffff0000u, v, 1, 16) + 1000;
  }
  out[lane] = v;
  if (lane == 0) *active = __activemask();
}

__global__ void neighbour(int* out, bool with_barrier) {
  __shared__ int s[64];
  const unsigned t = threadIdx.x;
  s[t] = (int)t + 1;
  if (with_barrier) __syncthreads();
  out[t] = s[(t + 1) % blockDim.x];
  __syncthreads();
  s[t] = -1;  // stale state for the next launch
}

__global__ void early_exit() {
  if (threadIdx.x == 31) return;
  __syncthreads();
}

__global__ void barrier_vs_shfl(int* out) {
  int v = threadIdx.x;
  if (threadIdx.x == 1) {
    __syncthreads();
  } else if (threadIdx.x == 0) {
    v = __shfl_sync(0x3u, v, 1);
  } else {
    __syncthreads();
  }
  out[threadIdx.x] = v;
}

__global__ void mismatched_ops() {
  if (threadIdx.x == 0) (void)__shfl_sync(0x3u, 1, 1);
  if (threadIdx.x == 1) (void)__ballot_sync(0x3u, 1);
}

__global__ void shfl_exited_lane() {
  if (threadIdx.x >= 16) return;
  (void)__shfl_xor_sync(0xffffffffu, 1.0f, 1);
}

__global__ void atomics(int* ci, float* cf, unsigned long long* cu, int* mn, int* mx, unsigned* ticket, int* order) {
  atomicAdd(ci, 1);
  atomicAdd(cf, 0.5f);
  atomicAdd(cu, 2ull);
  atomicMin(mn, (int)(blockIdx.x * blockDim.x + threadIdx.x));
  atomicMax(mx, (int)(blockIdx.x * blockDim.x + threadIdx.x));
  if (threadIdx.x == 0) order[blockIdx.x] = (int)atomicAdd(ticket, 1u);
  int old, cur = *ci;
  do {  // CAS loop
    old = cur;
    cur = atomicCAS(ci, old, old + 1);
  } while (cur != old);
}

__global__ void dyn_smem(float* out, unsigned* poison) {
  float* s = static_cast<float*>(simt::dynamic_smem());
  const unsigned t = threadIdx.x;
  if (t == 0) std::memcpy(poison, &s[blockDim.x * 2 - 1], 4);  // never written: poison
  __syncthreads();
  s[t] = (float)(t + blockIdx.x);
  __syncthreads();
  out[blockIdx.x * blockDim.x + t] = s[blockDim.x - 1 - t];
}

__global__ void indices(int* out) {
  const int tx = threadIdx.x, ty = threadIdx.y, tz = threadIdx.z;
  const int bx = blockIdx.x, by = blockIdx.y, bz = blockIdx.z;
  const int tl = tx + ty * blockDim.x + tz * blockDim.x * blockDim.y;
  const int bl = bx + by * gridDim.x + bz * gridDim.x * gridDim.y;
  const int nt = blockDim.x * blockDim.y * blockDim.z;
  const int slot = bl * nt + tl;
  out[slot * 7 + 0] += 1;  // each slot written exactly once
  out[slot * 7 + 1] = tx;
  out[slot * 7 + 2] = ty;
  out[slot * 7 + 3] = tz;
  out[slot * 7 + 4] = bx;
  out[slot * 7 + 5] = by;
  out[slot * 7 + 6] = bz;
}

__global__ void big_block(int* out) {
  __shared__ int s[1024];
  const unsigned t = threadIdx.x;
  s[t] = (int)t;
  const int count = __syncthreads_count(t % 3 == 0);
  const int all = __syncthreads_and(t < 1024);
  const int any = __syncthreads_or(t == 1023);
  const int none = __syncthreads_or(0);
  for (unsigned stride = 512; stride > 0; stride /= 2) {
    if (t < stride) s[t] += s[t + stride];
    __syncthreads();
  }
  if (t == 0) {
    out[0] = s[0];
    out[1] = count;
    out[2] = all;
    out[3] = any;
    out[4] = none;
  }
}

__global__ void throws() {
  if (threadIdx.x == 3) throw std::runtime_error("boom");
  __syncthreads();
}

__global__ void mixed_barriers() {
  if (threadIdx.x == 0) (void)__syncthreads_count(1);
  else __syncthreads();
}

}  // namespace

// ---- checks ------------------------------------------------------------------------------------
GRIP_CHECK(simt_block_reduction_all_schedules) {
  const int n = 1000, blocks = 4;
  std::vector<int> in(n);
  for (int i = 0; i < n; ++i) in[i] = i * 7 % 13 - 5;
  for (int s = 0; s < 3; ++s) {
    simt::set_schedule(kSchedules[s], 1234 + s);
    std::vector<int> out(blocks, -99);
    const int* pin = in.data();
    int* pout = out.data();
    simt::launch(dim3(blocks), dim3(256), 0, [=] { block_sum(pin, pout, n); });
    CHECK_TRUE(take().empty(), std::string("clean launch, ") + kScheduleNames[s]);
    for (int b = 0; b < blocks; ++b) {
      int want = 0;
      for (int i = b * 256; i < (b + 1) * 256 && i < n; ++i) want += in[i];
      CHECK_TRUE(out[b] == want, std::string("block sum, ") + kScheduleNames[s]);
    }
  }
  simt::set_schedule(simt::Schedule::Forward, 0);
}

GRIP_CHECK(simt_warp_shuffles) {
  for (int s = 0; s < 3; ++s) {
    simt::set_schedule(kSchedules[s], 7);
    std::vector<float> in(64), down(2), xr(64), bc(64), sc(64);
    for (int i = 0; i < 64; ++i) in[i] = (float)(i * 3 % 11);
    float *pi = in.data(), *pd = down.data(), *px = xr.data(), *pb = bc.data(), *ps = sc.data();
    simt::launch(dim3(1), dim3(64), 0, [=] { warp_sums(pi, pd, px, pb, ps); });
    CHECK_TRUE(take().empty(), "clean launch");
    for (int w = 0; w < 2; ++w) {
      float want = 0;
      for (int j = 0; j < 32; ++j) want += in[w * 32 + j];
      CHECK_TRUE(down[w] == want, "shfl_down reduction");
      for (int j = 0; j < 32; ++j) {
        const int t = w * 32 + j;
        CHECK_TRUE(xr[t] == want, "shfl_xor butterfly");
        CHECK_TRUE(bc[t] == in[w * 32 + 5], "shfl broadcast");
        float scan = 0;
        for (int k = t - t % 16; k <= t; ++k) scan += in[k];
        CHECK_TRUE(sc[t] == scan, "shfl_up scan with width 16");
      }
    }
  }
  simt::set_schedule(simt::Schedule::Forward, 0);
}

GRIP_CHECK(simt_ballot_any_all) {
  std::vector<int> pred(96, 0);
  for (int i = 0; i < 32; ++i) pred[i] = i % 3 == 0;  // warp 0 mixed
  for (int i = 32; i < 64; ++i) pred[i] = 1;          // warp 1 all
  std::vector<unsigned> ballot(3);                    // warp 2 none
  std::vector<int> any(3), all(3);
  int* pp = pred.data();
  unsigned* pb = ballot.data();
  int *pa = any.data(), *pl = all.data();
  simt::launch(dim3(1), dim3(96), 0, [=] { votes(pp, pb, pa, pl); });
  CHECK_TRUE(take().empty(), "clean launch");
  unsigned want0 = 0;
  for (int i = 0; i < 32; i += 3) want0 |= 1u << i;
  CHECK_TRUE(ballot[0] == want0 && ballot[1] == 0xffffffffu && ballot[2] == 0, "ballot");
  CHECK_TRUE(any[0] == 1 && any[1] == 1 && any[2] == 0, "any");
  CHECK_TRUE(all[0] == 0 && all[1] == 1 && all[2] == 0, "all");
}

GRIP_CHECK(simt_partial_mask) {
  for (int s = 0; s < 3; ++s) {
    simt::set_schedule(kSchedules[s], 99);
    std::vector<int> out(96, -1);
    unsigned active = 0;
    int* po = out.data();
    unsigned* pa = &active;
    simt::launch(dim3(1), dim3(32), 0, [=] { partial_mask(po, pa); });
    CHECK_TRUE(take().empty(), "clean launch");
    for (int l = 0; l < 16; ++l) CHECK_TRUE(out[l] == l + 100 * (l ^ 1), "xor within the low half");
    for (int l = 16; l < 32; ++l) {
      const int want = (l % 16 == 15 ? l : l + 1) + 1000;
      CHECK_TRUE(out[l] == want, "shfl_down within the high half");
      CHECK_TRUE(out[64 + l] == 2, "lanes outside the mask ran");
    }
    CHECK_TRUE(active != 0 && (active & 1u), "activemask includes lane 0");
  }
  simt::set_schedule(simt::Schedule::Forward, 0);
}

GRIP_CHECK(simt_missing_barrier_detected_by_schedule) {
  bool some_wrong = false;
  for (int s = 0; s < 3; ++s) {
    for (int with = 0; with < 2; ++with) {
      simt::set_schedule(kSchedules[s], 5);
      std::vector<int> out(64, 0);
      int* po = out.data();
      const bool wb = with != 0;
      simt::launch(dim3(1), dim3(64), 0, [=] { neighbour(po, wb); });
      CHECK_TRUE(take().empty(), "clean launch");
      bool right = true;
      for (int t = 0; t < 64; ++t) right = right && out[t] == (t + 1) % 64 + 1;
      if (wb) CHECK_TRUE(right, std::string("with the barrier the result is right, ") + kScheduleNames[s]);
      else some_wrong = some_wrong || !right;
    }
  }
  CHECK_TRUE(some_wrong, "a missing __syncthreads gives a wrong result under some schedule");
  simt::set_schedule(simt::Schedule::Forward, 0);
}

GRIP_CHECK(simt_barrier_after_early_return_is_an_error) {
  simt::launch(dim3(1), dim3(32), 0, [] { early_exit(); });
  const std::string e = take();
  CHECK_TRUE(contains(e, "__syncthreads reached by 31 of 32 threads of block (0,0,0)"), "message: " + e);
  CHECK_TRUE(contains(e, "thread (31,0,0)"), "names the exited thread: " + e);
  CHECK_TRUE(take().empty(), "take_error clears the error");
  // The emulator recovers: the next launch is clean.
  std::vector<int> out(64, 0);
  int* po = out.data();
  simt::launch(dim3(1), dim3(64), 0, [=] { neighbour(po, true); });
  CHECK_TRUE(take().empty() && out[0] == 2, "clean launch after an error");
}

GRIP_CHECK(simt_deadlock_and_mismatch_are_errors) {
  std::vector<int> out(32);
  int* po = out.data();
  simt::launch(dim3(1), dim3(32), 0, [=] { barrier_vs_shfl(po); });
  std::string e = take();
  CHECK_TRUE(contains(e, "__syncthreads reached by 31 of 32") && contains(e, "__shfl_sync"), "deadlock: " + e);

  simt::launch(dim3(1), dim3(32), 0, [] { mismatched_ops(); });
  e = take();
  CHECK_TRUE(contains(e, "mismatched warp collectives") && contains(e, "__ballot_sync"), "mismatch: " + e);

  simt::launch(dim3(1), dim3(32), 0, [] { shfl_exited_lane(); });
  e = take();
  CHECK_TRUE(contains(e, "__shfl_xor_sync") && contains(e, "lane 16") && contains(e, "exited"), "exited lane: " + e);

  simt::launch(dim3(1), dim3(20), 0, [] { (void)__shfl_sync(0xffffffffu, 1, 0); });
  e = take();
  CHECK_TRUE(contains(e, "does not exist"), "lane past the block: " + e);

  simt::launch(dim3(1), dim3(32), 0, [] { (void)__ballot_sync(1u << (threadIdx.x % 32 == 0 ? 1 : 0), 1); });
  e = take();
  CHECK_TRUE(contains(e, "excludes the calling lane"), "mask without the caller: " + e);

  simt::launch(dim3(1), dim3(8), 0, [] { mixed_barriers(); });
  e = take();
  CHECK_TRUE(contains(e, "__syncthreads_count") && contains(e, "__syncthreads"), "barrier kinds: " + e);

  simt::launch(dim3(2), dim3(8), 0, [] { throws(); });
  e = take();
  CHECK_TRUE(contains(e, "boom") && contains(e, "thread (3,0,0)"), "exception: " + e);

  simt::launch(dim3(1), dim3(1025), 0, [] {});
  CHECK_TRUE(contains(take(), "invalid launch configuration"), "1025 threads");
  simt::launch(dim3(0), dim3(32), 0, [] {});
  CHECK_TRUE(contains(take(), "invalid launch configuration"), "empty grid");
  simt::launch(dim3(1), dim3(32), 64 * 1024, [] {});
  CHECK_TRUE(contains(take(), "shared memory"), "too much dynamic shared memory");
}

GRIP_CHECK(simt_atomics) {
  for (int s = 0; s < 3; ++s) {
    simt::set_schedule(kSchedules[s], 31);
    int ci = 0, mn = 1 << 30, mx = -1;
    float cf = 0;
    unsigned long long cu = 0;
    unsigned ticket = 0;
    std::vector<int> order(4, -1);
    int *pci = &ci, *pmn = &mn, *pmx = &mx, *po = order.data();
    float* pcf = &cf;
    unsigned long long* pcu = &cu;
    unsigned* pt = &ticket;
    simt::launch(dim3(4), dim3(256), 0, [=] { atomics(pci, pcf, pcu, pmn, pmx, pt, po); });
    CHECK_TRUE(take().empty(), "clean launch");
    CHECK_TRUE(ci == 2048, "int atomicAdd + atomicCAS");
    CHECK_TRUE(cf == 512.0f, "float atomicAdd");
    CHECK_TRUE(cu == 2048ull, "u64 atomicAdd");
    CHECK_TRUE(mn == 0 && mx == 1023, "atomicMin/Max");
    if (kSchedules[s] == simt::Schedule::Forward) CHECK_TRUE(order[0] == 0 && order[3] == 3, "forward block order");
    if (kSchedules[s] == simt::Schedule::Reverse) CHECK_TRUE(order[0] == 3 && order[3] == 0, "reverse block order");
  }
  simt::set_schedule(simt::Schedule::Forward, 0);
}

GRIP_CHECK(simt_dynamic_shared_memory) {
  const unsigned nt = 128, nb = 3;
  std::vector<float> out(nt * nb, -1.0f);
  unsigned poison = 0;
  float* po = out.data();
  unsigned* pp = &poison;
  simt::launch(dim3(nb), dim3(nt), 2 * nt * sizeof(float), [=] { dyn_smem(po, pp); });
  CHECK_TRUE(take().empty(), "clean launch");
  CHECK_TRUE(poison == 0xA5A5A5A5u, "unwritten dynamic shared memory reads the poison pattern");
  for (unsigned b = 0; b < nb; ++b)
    for (unsigned t = 0; t < nt; ++t) CHECK_TRUE(out[b * nt + t] == (float)(nt - 1 - t + b), "reversed via smem");
}

GRIP_CHECK(simt_multi_block_2d_3d_indices) {
  const dim3 grid(3, 2, 2), block(4, 3, 2);
  const int nslots = 12 * 24;
  std::vector<int> out(nslots * 7, 0);
  int* po = out.data();
  simt::set_schedule(simt::Schedule::Random, 77);
  simt::launch(grid, block, 0, [=] { indices(po); });
  simt::set_schedule(simt::Schedule::Forward, 0);
  CHECK_TRUE(take().empty(), "clean launch");
  for (int slot = 0; slot < nslots; ++slot) {
    const int tl = slot % 24, bl = slot / 24;
    const int* r = &out[slot * 7];
    CHECK_TRUE(r[0] == 1, "written once");
    CHECK_TRUE(r[1] == tl % 4 && r[2] == tl / 4 % 3 && r[3] == tl / 12, "threadIdx");
    CHECK_TRUE(r[4] == bl % 3 && r[5] == bl / 3 % 2 && r[6] == bl / 6, "blockIdx");
  }
}

GRIP_CHECK(simt_1024_thread_block) {
  for (int s = 0; s < 3; ++s) {
    simt::set_schedule(kSchedules[s], 3);
    std::vector<int> out(5, -1);
    int* po = out.data();
    simt::launch(dim3(2), dim3(1024), 0, [=] { big_block(po); });
    CHECK_TRUE(take().empty(), "clean launch");
    CHECK_TRUE(out[0] == 1023 * 1024 / 2, "sum over 1024 threads");
    CHECK_TRUE(out[1] == 342, "__syncthreads_count");
    CHECK_TRUE(out[2] == 1 && out[3] == 1 && out[4] == 0, "__syncthreads_and/or");
  }
  simt::set_schedule(simt::Schedule::Forward, 0);
}

GRIP_CHECK(simt_intrinsics) {
  CHECK_TRUE(__float_as_uint(1.0f) == 0x3f800000u && __uint_as_float(0x40000000u) == 2.0f, "float bits");
  CHECK_TRUE(__popc(0xf0f0u) == 8 && __popcll(~0ull) == 64, "popc");
  CHECK_TRUE(__clz(1) == 31 && __clz(0) == 32 && __clzll(1) == 63, "clz");
  CHECK_TRUE(__ffs(0) == 0 && __ffs(8) == 4 && __ffsll(1ll << 40) == 41, "ffs");
  CHECK_TRUE(__brev(1u) == 0x80000000u, "brev");
  CHECK_TRUE(__saturatef(2.0f) == 1.0f && __saturatef(-1.0f) == 0.0f && __saturatef(NAN) == 0.0f, "saturate");
  CHECK_TRUE(min(3, 4) == 3 && max(3u, 4u) == 4u && min(2.0f, 1.0f) == 1.0f && max(5ll, 6ll) == 6ll, "min/max");
  CHECK_TRUE(__double_as_longlong(__longlong_as_double(42)) == 42, "double bits");
}

GRIP_CHECK(simt_launches_on_two_os_threads) {
  // Each OS thread has its own emulator state and __shared__ storage.
  std::vector<int> in(512);
  for (int i = 0; i < 512; ++i) in[i] = i % 17;
  std::vector<int> out_a(2, 0), out_b(2, 0);
  std::string err_a, err_b;
  auto run = [&](std::vector<int>* out, std::string* err) {
    for (int rep = 0; rep < 20; ++rep) {
      const int* pi = in.data();
      int* po = out->data();
      simt::launch(dim3(2), dim3(256), 0, [=] { block_sum(pi, po, 512); });
      const char* e = simt::take_error();
      if (e) *err = e;
    }
  };
  std::thread ta(run, &out_a, &err_a), tb(run, &out_b, &err_b);
  ta.join();
  tb.join();
  int want0 = 0, want1 = 0;
  for (int i = 0; i < 256; ++i) want0 += in[i], want1 += in[256 + i];
  CHECK_TRUE(err_a.empty() && err_b.empty(), "clean launches: " + err_a + err_b);
  CHECK_TRUE(out_a[0] == want0 && out_a[1] == want1 && out_b[0] == want0 && out_b[1] == want1, "sums");
}
