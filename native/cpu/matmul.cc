// matmul.cc — the matmul op on the CPU: one call of the packed GEMM.
#include "../core/backend.h"
#include "gemm.h"

namespace grip {
namespace cpu {

Status matmul(const MatmulArgs& args) {
  // Shapes: a [M,K], b [K,N] or [N,K] (trans_b), out [M,N].
  const int64_t ldb = args.trans_b ? args.K : args.N;
  gemm(false, args.trans_b, args.M, args.N, args.K, 1.f, args.a, args.K, args.b, args.b_dtype, ldb,
       0.f, args.out, args.N);
  return Status::Ok();
}

}  // namespace cpu
}  // namespace grip
