// adamw.cc — CPU twin of adamw: PyTorch's AdamW step in f32, with the bias
// corrections (and the scalar step factors) computed in double.
#include <algorithm>
#include <cmath>

#include "../core/backend.h"
#include "../core/threadpool.h"

namespace grip {
namespace cpu {

Status adamw(const AdamWArgs& a) {
  const grip_adamw_options& o = a.options;
  const double lr = o.lr, b1 = o.beta1, b2 = o.beta2, step = (double)o.step;
  const double bc1 = 1.0 - std::pow(b1, step);
  const double bc2 = 1.0 - std::pow(b2, step);
  const float decay = (float)(1.0 - lr * (double)o.weight_decay);
  const float beta1 = o.beta1, beta2 = o.beta2;
  const float one_m_b1 = (float)(1.0 - b1), one_m_b2 = (float)(1.0 - b2);
  const float step_size = (float)(lr / bc1);
  const float bc2_sqrt = (float)std::sqrt(bc2);
  const float eps = o.eps;
  float* __restrict p = a.param;
  const float* __restrict g = a.grad;
  float* __restrict m = a.m;
  float* __restrict v = a.v;
  parallel_for(a.n, 1 << 16, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const float gi = g[i];
      const float mi = beta1 * m[i] + one_m_b1 * gi;
      const float vi = beta2 * v[i] + one_m_b2 * gi * gi;
      m[i] = mi;
      v[i] = vi;
      const float pi = p[i] * decay;
      p[i] = pi - step_size * mi / (std::sqrt(vi) / bc2_sqrt + eps);
    }
  });
  return Status::Ok();
}

}  // namespace cpu
}  // namespace grip
