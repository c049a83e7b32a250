// threadpool.cc — placeholder serial implementation (replaced by the pool).
#include "threadpool.h"

#include <thread>

namespace grip {
namespace {
int g_threads = 0;
}
int num_threads() {
  if (g_threads <= 0) {
    unsigned hc = std::thread::hardware_concurrency();
    g_threads = hc ? (int)hc : 1;
  }
  return g_threads;
}
void set_num_threads(int n) {
  if (n <= 0) {
    unsigned hc = std::thread::hardware_concurrency();
    n = hc ? (int)hc : 1;
  }
  g_threads = n;
}
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& body) {
  (void)grain;
  if (n > 0) body(0, n);
}
}  // namespace grip
