// cuda_unavailable.cc — grip::cuda in a build without CUDA: every op links
// and fails with GRIP_ERR_UNSUPPORTED.
#ifndef GRIP_WITH_CUDA
#include "backend.h"

namespace grip {
namespace cuda {
namespace {
Status unavailable(const char* op) {
  return Error(GRIP_ERR_UNSUPPORTED, "a build with CUDA", op, "a CPU-only build");
}
}  // namespace

Status score_tokens(const ScoreForwardArgs&) { return unavailable("score_tokens"); }
Status score_tokens_backward(const ScoreBackwardArgs&) { return unavailable("score_tokens_backward"); }
Status topk(const TopkArgs&) { return unavailable("topk"); }
Status gumbel_topk(const GumbelTopkArgs&) { return unavailable("gumbel_topk"); }
Status plackett_luce_log_prob(const PlackettLuceArgs&) { return unavailable("plackett_luce_log_prob"); }
Status plackett_luce_backward(const PlackettLuceArgs&) { return unavailable("plackett_luce_backward"); }
Status gather_rows(const GatherArgs&) { return unavailable("gather_rows"); }
Status compact_kv(const CompactKVArgs&) { return unavailable("compact_kv"); }
Status compact_kv_inplace(const CompactKVArgs&) { return unavailable("compact_kv_inplace"); }
Status adamw(const AdamWArgs&) { return unavailable("adamw"); }
Status matmul(const MatmulArgs&) { return unavailable("matmul"); }
Status linear(const LinearArgs&) { return unavailable("linear"); }
Status layer_norm(const NormArgs&) { return unavailable("layer_norm"); }
Status rms_norm(const NormArgs&) { return unavailable("rms_norm"); }
Status rope(const RopeArgs&) { return unavailable("rope"); }
Status cache_write(const CacheWriteArgs&) { return unavailable("cache_write"); }
Status attention(const AttentionArgs&) { return unavailable("attention"); }
Status gelu(const GeluArgs&) { return unavailable("gelu"); }
Status silu_mul(const SiluMulArgs&) { return unavailable("silu_mul"); }
Status add(const AddArgs&) { return unavailable("add"); }
Status softmax(const SoftmaxArgs&) { return unavailable("softmax"); }
Status embedding(const EmbeddingArgs&) { return unavailable("embedding"); }

}  // namespace cuda
}  // namespace grip
#endif  // GRIP_WITH_CUDA
