// simt.cc — the SIMT emulator's scheduler, fibers and rule checks (see simt.h
// for the role and limits). One State per OS thread; a launch runs its blocks
// one after another; each block's threads are fibers switched cooperatively.
#include "simt.h"

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define SIMT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SIMT_ASAN 1
#endif
#endif
#ifndef SIMT_ASAN
#define SIMT_ASAN 0
#endif
// Hand-written switch on x86-64; ucontext elsewhere (or with
// -DSIMT_FORCE_UCONTEXT). Under ASan both are annotated with
// __sanitizer_{start,finish}_switch_fiber. (ASan's swapcontext interceptor
// would also work but warns and wipes the target stack's shadow per switch.)
#if defined(__x86_64__) && !defined(SIMT_FORCE_UCONTEXT)
#define SIMT_UCONTEXT 0
#else
#define SIMT_UCONTEXT 1
#include <ucontext.h>
#endif
#if SIMT_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

#if !SIMT_UCONTEXT
// simt_switch(save, to): saves callee-saved registers, MXCSR and the x87
// control word on the current stack, stores rsp in *save, switches to `to`.
extern "C" void simt_switch(void** save_sp, void* to_sp);
extern "C" void simt_trampoline();
__asm__(R"(
  .pushsection .text
  .globl simt_switch
  .hidden simt_switch
  .type simt_switch, @function
simt_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size simt_switch, .-simt_switch
  .globl simt_trampoline
  .hidden simt_trampoline
  .type simt_trampoline, @function
simt_trampoline:
  movq %r12, %rdi
  callq *%r13
  ud2
  .size simt_trampoline, .-simt_trampoline
  .popsection
)");
#endif

namespace simt {
namespace detail {
namespace {

constexpr int kMaxThreads = 1024;
constexpr size_t kMaxDynamicSmem = 48 * 1024;  // CUDA's limit without an opt-in attribute
constexpr size_t kGuard = 4096;
#if SIMT_ASAN
constexpr size_t kStackSize = 512 * 1024;
#else
constexpr size_t kStackSize = 128 * 1024;
#endif

std::atomic<int> g_schedule{0};
std::atomic<uint64_t> g_seed{0};
std::atomic<uint64_t> g_generation{1};

enum class FState { Runnable, Barrier, Warp, Done };

struct Context {
#if SIMT_UCONTEXT
  ucontext_t uc;
#else
  void* sp = nullptr;
#endif
};

struct Fiber {
  Context ctx;
  char* stack = nullptr;  // usable region [stack, stack + kStackSize)
  bool dirty = false;     // abandoned mid-run: its stack shadow may be poisoned
  uint3 tid{0, 0, 0};
  unsigned linear = 0, lane = 0, warp = 0;
  FState state = FState::Done;
  int barrier_result = 0;
  WarpOp op = WarpOp::SyncWarp;
  unsigned op_mask = 0;
  uint64_t vals[32];
};

struct Collective {
  WarpOp op;
  unsigned mask, arrived;
  uint64_t vals[32];
};

struct Warp {
  unsigned existing = 0, exited = 0;
  std::vector<Collective> open;
};

struct State {
  Context sched;
#if SIMT_ASAN
  const void* sched_bottom = nullptr;
  size_t sched_size = 0;
#endif
  std::vector<Fiber> fibers;
  std::vector<char*> maps;  // mmap'd stacks, one per fiber slot
  Fiber* cur = nullptr;
  bool in_launch = false, failed = false;
  std::string pending, taken;
  const std::function<void()>* body = nullptr;
  dim3 grid, block;
  uint3 bid{0, 0, 0};
  int nthreads = 0, done = 0, exited = 0;
  void* smem = nullptr;
  size_t smem_cap = 0;
  unsigned mxcsr = 0x1f80, fpucw = 0x037f;
  // __syncthreads state
  BarrierKind bkind = BarrierKind::Sync;
  int barrier_arrived = 0, barrier_true = 0;
  Warp warps[32];
  // schedule
  Schedule schedule = Schedule::Forward;
  uint64_t rng = 0, generation = 0;

  ~State() {
    for (char* m : maps) munmap(m, kStackSize + kGuard);
    std::free(smem);
  }
  uint64_t next() {  // splitmix64
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  template <class V> void arrange(V& order) {
    if (schedule == Schedule::Reverse) std::reverse(order.begin(), order.end());
    if (schedule == Schedule::Random)
      for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[next() % i]);
  }
};

thread_local State* t_state = nullptr;
thread_local std::unique_ptr<State> t_owner;

State& state() {
  if (!t_state) {
    t_owner.reset(new State());
    t_state = t_owner.get();
  }
  return *t_state;
}

std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string format(const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return buf;
}
// Fixed-size labels: no heap temporaries, so fail() may abandon the fiber.
struct Label {
  char s[48];
};
Label where(const State& S) {
  Label l;
  snprintf(l.s, sizeof l.s, "block (%u,%u,%u)", S.bid.x, S.bid.y, S.bid.z);
  return l;
}
Label who(const Fiber& f) {
  Label l;
  snprintf(l.s, sizeof l.s, "thread (%u,%u,%u)", f.tid.x, f.tid.y, f.tid.z);
  return l;
}

const char* op_name(WarpOp op) {
  static const char* names[] = {"__syncwarp", "__shfl_sync", "__shfl_up_sync", "__shfl_down_sync",
                                "__shfl_xor_sync", "__ballot_sync", "__any_sync", "__all_sync"};
  return names[(int)op];
}
const char* barrier_name(BarrierKind k) {
  static const char* names[] = {"__syncthreads", "__syncthreads_count", "__syncthreads_and",
                                "__syncthreads_or"};
  return names[(int)k];
}

void record(State& S, const std::string& msg) {
  if (S.pending.empty()) S.pending = msg;
  S.failed = true;
}

// ---- context switching --------------------------------------------------------------
void fiber_main(Fiber* f);
#if SIMT_UCONTEXT
void uc_entry() { fiber_main(t_state->cur); }
#endif

void init_context(State& S, Fiber& f) {
#if SIMT_ASAN
  // fiber_main's own frame never returns, so its shadow stays poisoned at the
  // top of the stack; an abandoned fiber may leave poison anywhere.
  const size_t used_top = 16 * 1024;
  if (f.dirty) ASAN_UNPOISON_MEMORY_REGION(f.stack, kStackSize);
  else ASAN_UNPOISON_MEMORY_REGION(f.stack + kStackSize - used_top, used_top);
#endif
  f.dirty = false;
#if SIMT_UCONTEXT
  getcontext(&f.ctx.uc);
  f.ctx.uc.uc_stack.ss_sp = f.stack;
  f.ctx.uc.uc_stack.ss_size = kStackSize;
  f.ctx.uc.uc_link = nullptr;
  makecontext(&f.ctx.uc, uc_entry, 0);
#else
  uintptr_t top = ((uintptr_t)(f.stack + kStackSize) & ~(uintptr_t)15) - 16;  // rsp after `ret`
  uint64_t* sp = (uint64_t*)(top - 64);
  sp[0] = S.mxcsr | ((uint64_t)S.fpucw << 32);
  sp[1] = sp[2] = 0;                           // r15, r14
  sp[3] = (uint64_t)(uintptr_t)&fiber_main;    // r13: entry
  sp[4] = (uint64_t)(uintptr_t)&f;             // r12: its argument
  sp[5] = sp[6] = 0;                           // rbx, rbp
  sp[7] = (uint64_t)(uintptr_t)&simt_trampoline;
  f.ctx.sp = sp;
#endif
}

void swap_context(Context& from, Context& to) {
#if SIMT_UCONTEXT
  swapcontext(&from.uc, &to.uc);
#else
  simt_switch(&from.sp, to.sp);
#endif
}

// Scheduler -> fiber.
void resume(State& S, Fiber& f) {
  S.cur = &f;
#if SIMT_ASAN
  void* fake = nullptr;
  __sanitizer_start_switch_fiber(&fake, f.stack, kStackSize);
  swap_context(S.sched, f.ctx);
  __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#else
  swap_context(S.sched, f.ctx);
#endif
  S.cur = nullptr;
}

// Fiber -> scheduler. `finished`: the fiber will never be resumed.
void suspend(State& S, Fiber& f, bool finished) {
#if SIMT_ASAN
  void* fake = nullptr;
  __sanitizer_start_switch_fiber(finished ? nullptr : &fake, S.sched_bottom, S.sched_size);
  swap_context(f.ctx, S.sched);
  __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#else
  (void)finished;
  swap_context(f.ctx, S.sched);
#endif
}

// Records a rule violation from inside a fiber and abandons the launch.
// printf-style, formatted here so the abandoned stack holds no heap objects.
[[noreturn]] void fail(State& S, Fiber& f, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
void fail(State& S, Fiber& f, const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  record(S, buf);
  f.state = FState::Done;
  f.dirty = true;
  suspend(S, f, true);
  std::abort();  // never resumed
}

void run_body(State& S, Fiber& f, std::string& error) {
  try {
    (*S.body)();
  } catch (const std::exception& e) {
    error = std::string("exception escaped the kernel in ") + who(f).s + " of " + where(S).s + ": " + e.what();
  } catch (...) {
    error = std::string("exception escaped the kernel in ") + who(f).s + " of " + where(S).s;
  }
}

void fiber_main(Fiber* fp) {
  State& S = *t_state;
  Fiber& f = *fp;
#if SIMT_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &S.sched_bottom, &S.sched_size);
#endif
  {
    std::string error;
    run_body(S, f, error);
    if (!error.empty()) record(S, error);
  }
  f.state = FState::Done;
  S.done++;
  S.exited++;
  S.warps[f.warp].exited |= 1u << f.lane;
  suspend(S, f, true);
  std::abort();  // never resumed
}

Fiber& current(const char* what) {
  State* S = t_state;
  if (!S || !S->cur) {
    std::fprintf(stderr, "simt: %s called outside a kernel launch\n", what);
    std::abort();
  }
  return *S->cur;
}

// Under the Random schedule, lets another fiber run before this one goes on.
void maybe_yield(State& S, Fiber& f, bool always) {
  if (S.schedule != Schedule::Random || S.failed) return;
  if (!always && (S.next() & 3) != 0) return;
  suspend(S, f, false);
}

// ---- deadlock diagnosis (scheduler side) ------------------------------------------------------
std::string diagnose(State& S) {
  const int n = S.nthreads;
  for (unsigned w = 0; w < (unsigned)(n + 31) / 32; ++w) {
    const Warp& W = S.warps[w];
    for (const Collective& c : W.open) {
      unsigned gone = c.mask & ~c.arrived & (W.exited | ~W.existing);
      if (!gone) continue;
      int lane = __builtin_ctz(gone);
      std::string lane_desc = ((W.existing >> lane) & 1u)
                                  ? std::string(who(S.fibers[w * 32 + lane]).s) + " which exited"
                                  : std::string("which does not exist in a block of ") + std::to_string(n) + " threads";
      return format("%s with mask 0x%08x in warp %u of %s waits for lane %d, %s", op_name(c.op), c.mask, w,
                    where(S).s, lane, lane_desc.c_str());
    }
  }
  if (S.barrier_arrived > 0) {
    std::string msg = format("%s reached by %d of %d threads of %s", barrier_name(S.bkind), S.barrier_arrived, n,
                             where(S).s);
    if (S.exited > 0) {
      for (int i = 0; i < n; ++i)
        if (S.fibers[i].state == FState::Done)
          return msg + format("; %d exited without reaching it (first: %s)", S.exited, who(S.fibers[i]).s);
    }
    for (int i = 0; i < n; ++i)
      if (S.fibers[i].state == FState::Warp)
        return msg + format("; %s waits at %s (mask 0x%08x) instead", who(S.fibers[i]).s,
                            op_name(S.fibers[i].op), S.fibers[i].op_mask);
    return msg;
  }
  int warp_waiting = 0;
  for (int i = 0; i < n; ++i) warp_waiting += S.fibers[i].state == FState::Warp;
  return format("deadlock in %s: %d threads wait in warp collectives, %d exited", where(S).s, warp_waiting,
                S.exited);
}

void run_block(State& S, std::vector<int>& order) {
  const int n = S.nthreads;
  const unsigned bx = S.block.x, by = S.block.y;
  S.done = S.exited = 0;
  S.barrier_arrived = S.barrier_true = 0;
  for (int w = 0; w < 32; ++w) {
    S.warps[w].open.clear();
    S.warps[w].exited = 0;
    int first = w * 32;
    S.warps[w].existing = first >= n ? 0u : (n - first >= 32 ? 0xffffffffu : (1u << (n - first)) - 1u);
  }
  for (int i = 0; i < n; ++i) {
    Fiber& f = S.fibers[i];
    f.linear = (unsigned)i;
    f.tid = uint3{i % bx, (i / bx) % by, i / (bx * by)};
    f.lane = i % 32;
    f.warp = i / 32;
    f.state = FState::Runnable;
    init_context(S, f);
  }
  if (S.smem_cap) std::memset(S.smem, 0xA5, S.smem_cap);
  while (!S.failed) {
    order.clear();
    for (int i = 0; i < n; ++i)
      if (S.fibers[i].state == FState::Runnable) order.push_back(i);
    if (order.empty()) {
      if (S.done < n) record(S, diagnose(S));
      break;
    }
    S.arrange(order);
    for (int i : order) {
      if (S.fibers[i].state == FState::Runnable) resume(S, S.fibers[i]);
      if (S.failed) break;
    }
  }
  if (S.failed)  // abandoned fibers leave their stacks (and ASan shadow) as they were
    for (int i = 0; i < n; ++i)
      if (S.fibers[i].state != FState::Done) S.fibers[i].dirty = true;
}

bool prepare(State& S, int n, size_t smem_bytes) {
  while ((int)S.maps.size() < n) {
    void* m = mmap(nullptr, kStackSize + kGuard, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (m == MAP_FAILED) return false;
    mprotect(m, kGuard, PROT_NONE);  // overflow faults instead of corrupting a neighbour
    S.maps.push_back((char*)m);
  }
  if ((int)S.fibers.size() < n) S.fibers.resize(n);
  for (int i = 0; i < n; ++i) S.fibers[i].stack = S.maps[i] + kGuard;
  size_t want = (smem_bytes + 15) & ~(size_t)15;
  if (want > S.smem_cap) {
    void* p = std::realloc(S.smem, want);
    if (!p) return false;
    S.smem = p;
    S.smem_cap = want;
  }
  return true;
}

}  // namespace

// ---- kernel-side entry points ----------------------------------------------------------
const uint3& thread_idx() { return current("threadIdx").tid; }
const uint3& block_idx() {
  current("blockIdx");
  return t_state->bid;
}
const dim3& block_dim() {
  current("blockDim");
  return t_state->block;
}
const dim3& grid_dim() {
  current("gridDim");
  return t_state->grid;
}
unsigned lane_id() { return current("a warp op").lane; }

unsigned active_mask() {
  Fiber& f = current("__activemask");
  const Warp& W = t_state->warps[f.warp];
  return W.existing & ~W.exited;
}

void atomic_point() {
  Fiber& f = current("an atomic");
  maybe_yield(*t_state, f, false);
}

int block_barrier(BarrierKind kind, int pred) {
  Fiber& f = current(barrier_name(kind));
  State& S = *t_state;
  if (S.barrier_arrived > 0 && S.bkind != kind)
    fail(S, f, "%s reached by %s of %s while %d threads wait at %s", barrier_name(kind), who(f).s, where(S).s,
         S.barrier_arrived, barrier_name(S.bkind));
  S.bkind = kind;
  S.barrier_arrived++;
  S.barrier_true += pred != 0;
  if (S.barrier_arrived == S.nthreads) {
    const int t = S.barrier_true, n = S.nthreads;
    const int result = kind == BarrierKind::Count ? t
                       : kind == BarrierKind::And ? (t == n)
                       : kind == BarrierKind::Or  ? (t > 0)
                                                  : 0;
    for (int i = 0; i < n; ++i) {
      Fiber& p = S.fibers[i];
      if (p.state == FState::Barrier) p.state = FState::Runnable;
      p.barrier_result = result;
    }
    S.barrier_arrived = S.barrier_true = 0;
    maybe_yield(S, f, true);
    return result;
  }
  f.state = FState::Barrier;
  suspend(S, f, false);
  return f.barrier_result;
}

void warp_exchange(WarpOp op, unsigned mask, uint64_t value, uint64_t* out) {
  Fiber& f = current(op_name(op));
  State& S = *t_state;
  Warp& W = S.warps[f.warp];
  const unsigned me = 1u << f.lane;
  if (!(mask & me))
    fail(S, f, "%s called by %s (lane %u) of %s with mask 0x%08x that excludes the calling lane", op_name(op),
         who(f).s, f.lane, where(S).s, mask);
  Collective* c = nullptr;
  for (Collective& o : W.open) {
    if (!(o.mask & mask)) continue;
    if (o.op != op || o.mask != mask || !(o.mask & me) || (o.arrived & me))
      fail(S, f,
           "mismatched warp collectives in warp %u of %s: %s (lane %u) called %s with mask 0x%08x "
           "while lanes 0x%08x wait at %s with mask 0x%08x",
           f.warp, where(S).s, who(f).s, f.lane, op_name(op), mask, o.arrived, op_name(o.op), o.mask);
    c = &o;
  }
  if (!c) {
    W.open.push_back(Collective{op, mask, 0, {}});
    c = &W.open.back();
    std::fill(c->vals, c->vals + 32, kPoison);
  }
  c->vals[f.lane] = value;
  c->arrived |= me;
  f.op = op;
  f.op_mask = mask;
  if (c->arrived == mask) {
    for (unsigned bits = mask; bits; bits &= bits - 1) {
      Fiber& p = S.fibers[f.warp * 32 + __builtin_ctz(bits)];
      std::memcpy(p.vals, c->vals, sizeof p.vals);
      p.state = FState::Runnable;
    }
    *c = W.open.back();
    W.open.pop_back();
    maybe_yield(S, f, true);
  } else {
    f.state = FState::Warp;
    suspend(S, f, false);
  }
  std::memcpy(out, f.vals, sizeof f.vals);
}

}  // namespace detail

// ---- host API ----------------------------------------------------------------------------------
using namespace detail;

void launch(dim3 grid, dim3 block, size_t dynamic_smem_bytes, std::function<void()> body) {
  State& S = state();
  if (S.in_launch) {
    record(S, "simt::launch called from inside a kernel (dynamic parallelism is not emulated)");
    return;
  }
  const std::string cfg = format("grid (%u,%u,%u), block (%u,%u,%u), %zu bytes of dynamic shared memory", grid.x,
                                 grid.y, grid.z, block.x, block.y, block.z, dynamic_smem_bytes);
  const uint64_t nthreads = (uint64_t)block.x * block.y * block.z;
  if (!grid.x || !grid.y || !grid.z || !block.x || !block.y || !block.z || nthreads > kMaxThreads ||
      block.z > 64 || grid.y > 65535 || grid.z > 65535 || grid.x > 0x7fffffffu) {
    record(S, "invalid launch configuration: " + cfg);
    return;
  }
  if (dynamic_smem_bytes > kMaxDynamicSmem) {
    record(S, "too much dynamic shared memory (limit 49152 bytes): " + cfg);
    return;
  }
  if (!body) {
    record(S, "launch of an empty kernel function");
    return;
  }
  S.schedule = (Schedule)g_schedule.load();
  uint64_t gen = g_generation.load();
  if (S.generation != gen) {
    S.generation = gen;
    S.rng = g_seed.load();
  }
  S.failed = false;
  S.in_launch = true;
  try {
    if (!prepare(S, (int)nthreads, dynamic_smem_bytes)) {
      record(S, "out of memory for fiber stacks or shared memory: " + cfg);
    } else {
#if !SIMT_UCONTEXT
      __asm__ volatile("stmxcsr %0" : "=m"(S.mxcsr));
      unsigned short cw;
      __asm__ volatile("fnstcw %0" : "=m"(cw));
      S.fpucw = cw;
#endif
      S.body = &body;
      S.grid = grid;
      S.block = block;
      S.nthreads = (int)nthreads;
      const uint64_t nblocks = (uint64_t)grid.x * grid.y * grid.z;
      std::vector<int> order;
      order.reserve(nthreads);
      std::vector<uint64_t> blocks;
      if (S.schedule == Schedule::Random && nblocks <= (1u << 22)) {
        blocks.resize(nblocks);
        for (uint64_t i = 0; i < nblocks; ++i) blocks[i] = i;
        S.arrange(blocks);
      }
      for (uint64_t k = 0; k < nblocks && !S.failed; ++k) {
        uint64_t b = blocks.empty() ? (S.schedule == Schedule::Reverse ? nblocks - 1 - k : k) : blocks[k];
        S.bid = uint3{(unsigned)(b % grid.x), (unsigned)(b / grid.x % grid.y), (unsigned)(b / grid.x / grid.y)};
        run_block(S, order);
      }
    }
  } catch (const std::exception& e) {
    record(S, std::string("emulator failure: ") + e.what());
  }
  S.body = nullptr;
  S.cur = nullptr;
  S.in_launch = false;
}

void* dynamic_smem() {
  State* S = t_state;
  return S && S->in_launch ? S->smem : nullptr;
}

const char* take_error() {
  State& S = state();
  if (S.pending.empty()) return nullptr;
  S.taken.swap(S.pending);
  S.pending.clear();
  return S.taken.c_str();
}

void* alloc(size_t bytes) { return std::malloc(bytes ? bytes : 1); }
void free(void* ptr) { std::free(ptr); }

void set_schedule(Schedule s, uint64_t seed) {
  g_schedule.store((int)s);
  g_seed.store(seed);
  g_generation.fetch_add(1);
}

}  // namespace simt
