// threadpool.cc — grip's own small thread pool (no OpenMP).
//
// Design:
//  * num_threads()-1 worker threads plus the calling thread take part in each
//    parallel_for. Workers spin for a few microseconds after a job (so
//    back-to-back jobs, e.g. GEMM's pack/compute phases, do not pay a futex
//    wake-up each) and then sleep on a condition variable.
//  * [0,n) is cut into chunks of >= grain items, about 4 chunks per thread,
//    claimed dynamically through an atomic counter.
//  * One job at a time: a second thread calling parallel_for while the pool is
//    busy (libuv worker threads) runs its loop serially instead of waiting.
//    Nested calls (from inside a body) also run serially.
//  * The pool is intentionally leaked: no destructor runs at static
//    destruction, so exit() never waits on / races with the workers.
//  * An exception thrown by a body on a worker is caught there and rethrown
//    on the calling thread after the job (the first one wins).
#include "threadpool.h"

#include <sched.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define GRIP_CPU_RELAX() _mm_pause()
#else
#define GRIP_CPU_RELAX() ((void)0)
#endif

namespace grip {
namespace {

constexpr int kMaxThreads = 256;
constexpr auto kSpin = std::chrono::microseconds(4);

int hardware_threads() {
#if defined(__linux__)
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int c = CPU_COUNT(&set);
    if (c > 0) return c < kMaxThreads ? c : kMaxThreads;
  }
#endif
  const unsigned hc = std::thread::hardware_concurrency();
  return hc ? (hc < (unsigned)kMaxThreads ? (int)hc : kMaxThreads) : 1;
}

int default_threads() {
  if (const char* e = std::getenv("GRIP_NUM_THREADS")) {
    const int v = std::atoi(e);
    if (v > 0) return v < kMaxThreads ? v : kMaxThreads;
  }
  return hardware_threads();
}

thread_local bool t_in_parallel = false;

struct Job {
  const std::function<void(int64_t, int64_t)>* body = nullptr;
  int64_t n = 0;
  int64_t chunk = 1;
};

class Pool {
 public:
  explicit Pool(int nworkers) { start(nworkers); }

  int workers() const { return (int)threads_.size(); }

  // Caller holds job_mu_.
  void resize(int nworkers) {
    if (nworkers == (int)threads_.size()) return;
    stop_all();
    start(nworkers);
  }

  std::mutex job_mu_;  // one job at a time (and resize excludes jobs)

  // Caller holds job_mu_. Runs the job with the calling thread taking part.
  void run(const std::function<void(int64_t, int64_t)>& body, int64_t n, int64_t chunk,
           int participants) {
    job_.body = &body;
    job_.n = n;
    job_.chunk = chunk;
    next_.store(0, std::memory_order_relaxed);
    pending_.store(participants, std::memory_order_relaxed);
    error_ = nullptr;
    {
      // The generation word carries the participant count, so a worker that
      // wakes late can never mix one job's count with another's generation.
      std::lock_guard<std::mutex> lk(mu_);
      const uint64_t g = gen_.load(std::memory_order_relaxed);
      gen_.store((((g >> 16) + 1) << 16) | (uint64_t)participants, std::memory_order_release);
      if (sleepers_ > 0) cv_work_.notify_all();
    }
    work();
    // Wait for the workers: spin briefly, then sleep.
    if (pending_.load(std::memory_order_acquire) != 0) {
      const auto t0 = std::chrono::steady_clock::now();
      while (pending_.load(std::memory_order_acquire) != 0) {
        GRIP_CPU_RELAX();
        if (std::chrono::steady_clock::now() - t0 > kSpin) {
          std::unique_lock<std::mutex> lk(mu_);
          cv_done_.wait(lk, [&] { return pending_.load(std::memory_order_acquire) == 0; });
          break;
        }
      }
    }
    job_.body = nullptr;
    if (error_) {
      std::exception_ptr e = error_;
      error_ = nullptr;
      std::rethrow_exception(e);
    }
  }

 private:
  void start(int nworkers) {
    stop_.store(false, std::memory_order_relaxed);
    threads_.reserve(nworkers);
    // The workers start from the current generation: a job published before
    // a new thread first runs must still be seen as new by it.
    const uint64_t g0 = gen_.load(std::memory_order_acquire);
    for (int i = 0; i < nworkers; ++i) threads_.emplace_back([this, i, g0] { loop(i, g0); });
  }

  void stop_all() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_.store(true, std::memory_order_relaxed);
      gen_.fetch_add(1 << 16, std::memory_order_release);
      cv_work_.notify_all();
    }
    for (auto& t : threads_) t.join();
    threads_.clear();
  }

  // Claims chunks until none is left.
  void work() {
    const auto& body = *job_.body;
    const int64_t n = job_.n, chunk = job_.chunk;
    for (;;) {
      const int64_t b = next_.fetch_add(chunk, std::memory_order_relaxed);
      if (b >= n) break;
      const int64_t e = b + chunk < n ? b + chunk : n;
      try {
        body(b, e);
      } catch (...) {
        std::lock_guard<std::mutex> lk(mu_);
        if (!error_) error_ = std::current_exception();
      }
    }
  }

  void loop(int id, uint64_t seen) {
    t_in_parallel = true;  // bodies calling parallel_for run serially
    for (;;) {
      // Wait for a new generation: spin briefly, then sleep.
      uint64_t g = gen_.load(std::memory_order_acquire);
      if (g == seen) {
        const auto t0 = std::chrono::steady_clock::now();
        while ((g = gen_.load(std::memory_order_acquire)) == seen &&
               std::chrono::steady_clock::now() - t0 < kSpin)
          GRIP_CPU_RELAX();
        if (g == seen) {
          std::unique_lock<std::mutex> lk(mu_);
          ++sleepers_;
          cv_work_.wait(lk, [&] { return (g = gen_.load(std::memory_order_acquire)) != seen; });
          --sleepers_;
        }
      }
      seen = g;
      if (stop_.load(std::memory_order_relaxed)) return;
      if (id >= (int)(g & 0xffff)) continue;  // not needed for this job
      work();
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> lk(mu_);
        cv_done_.notify_one();
      }
    }
  }

  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable cv_work_, cv_done_;
  std::atomic<uint64_t> gen_{0};
  int sleepers_ = 0;  // guarded by mu_
  std::atomic<bool> stop_{false};  // set before a generation bump
  Job job_;            // written by the caller before a generation bump
  std::atomic<int64_t> next_{0};
  std::atomic<int> pending_{0};
  std::exception_ptr error_;
};

std::atomic<int> g_threads{0};
std::mutex g_pool_mu;           // guards g_pool creation
std::atomic<Pool*> g_pool{nullptr};

Pool* pool() {
  Pool* p = g_pool.load(std::memory_order_acquire);
  if (p) return p;
  std::lock_guard<std::mutex> lk(g_pool_mu);
  p = g_pool.load(std::memory_order_relaxed);
  if (!p) {
    p = new Pool(0);  // leaked on purpose (see the top of the file)
    g_pool.store(p, std::memory_order_release);
  }
  return p;
}

}  // namespace

int num_threads() {
  int t = g_threads.load(std::memory_order_relaxed);
  if (t <= 0) {
    int expected = 0;
    t = default_threads();
    if (!g_threads.compare_exchange_strong(expected, t)) t = expected;
  }
  return t;
}

void set_num_threads(int n) {
  if (n <= 0) n = hardware_threads();
  if (n > kMaxThreads) n = kMaxThreads;
  g_threads.store(n, std::memory_order_relaxed);
  // Workers are (re)started lazily by the next parallel_for; shrink now so
  // idle threads go away.
  Pool* p = g_pool.load(std::memory_order_acquire);
  if (p && !t_in_parallel) {
    std::lock_guard<std::mutex> lk(p->job_mu_);
    if (p->workers() > n - 1) p->resize(n - 1);
  }
}

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& body) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  const int nt = num_threads();
  if (nt <= 1 || n <= grain || t_in_parallel) {
    body(0, n);
    return;
  }
  // About 4 chunks per thread for balance, none smaller than grain.
  int64_t chunk = (n + 4 * (int64_t)nt - 1) / (4 * (int64_t)nt);
  if (chunk < grain) chunk = grain;
  const int64_t nchunks = (n + chunk - 1) / chunk;
  if (nchunks <= 1) {
    body(0, n);
    return;
  }
  Pool* p = pool();
  std::unique_lock<std::mutex> lk(p->job_mu_, std::try_to_lock);
  if (!lk.owns_lock()) {  // another thread's job is running: do ours serially
    body(0, n);
    return;
  }
  if (p->workers() != nt - 1) p->resize(nt - 1);
  const int participants = (int)(nchunks - 1 < nt - 1 ? nchunks - 1 : nt - 1);
  t_in_parallel = true;
  try {
    p->run(body, n, chunk, participants);
  } catch (...) {
    t_in_parallel = false;
    throw;
  }
  t_in_parallel = false;
}

}  // namespace grip
