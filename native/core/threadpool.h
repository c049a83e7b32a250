// threadpool.h — grip's own small thread pool (no OpenMP: a spinning team
// collapses when another process shares the cores). Workers sleep between
// jobs; the calling thread takes part in every job.
#pragma once
#include <cstdint>
#include <functional>

namespace grip {

// Number of threads ops use (the caller included). Default: hardware cores.
int num_threads();
// 1..256; 0 means the number of hardware cores.
void set_num_threads(int n);

// Runs body(begin, end) over [0, n) split into chunks of at least `grain`
// items, on up to num_threads() threads; returns when all chunks are done.
// Nested calls run serially on the calling thread.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& body);

}  // namespace grip
