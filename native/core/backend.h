// backend.h — the op table every backend implements with the same semantics:
// grip::cpu (native/cpu), grip::cuda (cuda/, device memory) and grip::emu
// (the same cuda/ kernels on the SIMT emulator, host memory).
#pragma once
#include "args.h"
#include "status.h"

#define GRIP_BACKEND_OPS                                          \
  Status score_tokens(const ScoreForwardArgs& args);              \
  Status score_tokens_backward(const ScoreBackwardArgs& args);    \
  Status topk(const TopkArgs& args);                              \
  Status gumbel_topk(const GumbelTopkArgs& args);                 \
  Status plackett_luce_log_prob(const PlackettLuceArgs& args);    \
  Status plackett_luce_backward(const PlackettLuceArgs& args);    \
  Status gather_rows(const GatherArgs& args);                     \
  Status compact_kv(const CompactKVArgs& args);                   \
  Status compact_kv_inplace(const CompactKVArgs& args);           \
  Status adamw(const AdamWArgs& args);                            \
  Status matmul(const MatmulArgs& args);                          \
  Status linear(const LinearArgs& args);                          \
  Status layer_norm(const NormArgs& args);                        \
  Status rms_norm(const NormArgs& args);                          \
  Status rope(const RopeArgs& args);                              \
  Status cache_write(const CacheWriteArgs& args);                 \
  Status attention(const AttentionArgs& args);                    \
  Status gelu(const GeluArgs& args);                              \
  Status silu_mul(const SiluMulArgs& args);                       \
  Status add(const AddArgs& args);                                \
  Status softmax(const SoftmaxArgs& args);                        \
  Status embedding(const EmbeddingArgs& args);

namespace grip {
namespace cpu { GRIP_BACKEND_OPS }
namespace cuda { GRIP_BACKEND_OPS }
namespace emu { GRIP_BACKEND_OPS }
}  // namespace grip
