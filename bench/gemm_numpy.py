"""numpy (OpenBLAS) GFLOP/s at grip's GEMM shapes, for comparison with
grip::cpu::gemm. Run with the thread count pinned, e.g.
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 python3 bench/gemm_numpy.py
Shapes (M, N, K, trans_a, trans_b): C[M,N] = op(A)[M,K] @ op(B)[K,N]."""
import sys
import time

import numpy as np

SHAPES = [(576, 4096, 4096, 0, 0), (576, 256, 4096, 0, 0), (4096, 256, 576, 1, 0), (576, 4096, 256, 0, 1)]


def bench(M, N, K, ta, tb, reps=10):
    rng = np.random.default_rng(0)
    a = rng.random((K, M) if ta else (M, K), dtype=np.float32)
    b = rng.random((N, K) if tb else (K, N), dtype=np.float32)
    A = a.T if ta else a
    B = b.T if tb else b
    C = np.empty((M, N), dtype=np.float32)
    np.matmul(A, B, out=C)
    best = 1e9
    for _ in range(reps):
        t = time.perf_counter()
        np.matmul(A, B, out=C)
        best = min(best, time.perf_counter() - t)
    return 2.0 * M * N * K / best / 1e9


def seconds_per_call(M, N, K, tb, reps=15):
    """Median time of one np.matmul into a preallocated C: bench/ops.bench.ts
    compares it with its own medians."""
    rng = np.random.default_rng(0)
    A = rng.random((M, K), dtype=np.float32)
    b = rng.random((N, K) if tb else (K, N), dtype=np.float32)
    B = b.T if tb else b
    C = np.empty((M, N), dtype=np.float32)
    np.matmul(A, B, out=C)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        np.matmul(A, B, out=C)
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "--seconds":
    # --seconds M,N,K,tb ...: one line of seconds per call for each shape.
    shapes = [tuple(int(v) for v in a.split(",")) for a in sys.argv[2:]]
    print(" ".join("%.9f" % seconds_per_call(*s) for s in shapes))
elif __name__ == "__main__":
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    res = [max(bench(*s) for _ in range(rounds)) for s in SHAPES]
    print("numpy: " + "  ".join("%dx%dx%d%s %.1f" % (s[0], s[1], s[2], " tA" if s[3] else " tB" if s[4] else "", r)
                                for s, r in zip(SHAPES, res)))
