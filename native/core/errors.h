// errors.h — the data-dependent error messages, shared by every backend so
// that CPU, CUDA and the emulator fail with the very same text.
#pragma once
#include <cstdint>
#include <string>

#include "status.h"

namespace grip {

inline std::string Position(std::initializer_list<int64_t> coords) {
  std::string s = "[";
  bool first = true;
  for (int64_t c : coords) {
    if (!first) s += ", ";
    s += std::to_string(c);
    first = false;
  }
  return s + "]";
}

// topk: scores[b,n] is NaN.
inline Status NaNScoreError(int64_t b, int64_t n) {
  return Error(GRIP_ERR_RANGE, "scores without NaN", "scores", "NaN at " + Position({b, n}));
}

// Gumbel-top-k and Plackett-Luce: logits[b,n] is NaN or +Infinity (the
// distribution is undefined); -Infinity is allowed (probability zero).
inline bool IsBadLogit(float x) { return !(x < __builtin_inff()); }
inline Status BadLogitError(float value, int64_t b, int64_t n) {
  return Error(GRIP_ERR_RANGE, "finite or -Infinity logits", "logits",
               std::string(value != value ? "NaN" : "Infinity") + " at " + Position({b, n}));
}

// Plackett-Luce: indices[b,g,j] out of range, or a repeat of an earlier draw.
inline Status SampleIndexError(int32_t value, int64_t N, bool in_range, int64_t b, int64_t g,
                               int64_t j) {
  const std::string where = " at " + Position({b, g, j});
  if (!in_range)
    return Error(GRIP_ERR_RANGE, "indices in [0, " + std::to_string(N) + ")", "indices",
                 std::to_string(value) + where);
  return Error(GRIP_ERR_RANGE, "distinct indices within a sample", "indices",
               "repeated index " + std::to_string(value) + where);
}

// gather_rows: indices[b,k] outside -1..N-1.
inline Status GatherIndexError(int32_t value, int64_t N, int64_t b, int64_t k) {
  return Error(GRIP_ERR_RANGE, "indices in [-1, " + std::to_string(N) + ")", "indices",
               std::to_string(value) + " at " + Position({b, k}));
}

// compact_kv: keep[b,k] breaks "strictly ascending in 0..T-1, then -1 padding".
inline Status KeepIndexError(int32_t value, int64_t T, int64_t b, int64_t k) {
  return Error(GRIP_ERR_RANGE,
               "strictly ascending positions in [0, " + std::to_string(T) + ") then -1 padding",
               "keep", std::to_string(value) + " at " + Position({b, k}));
}

// rope: positions[b,t] is negative.
inline Status RopePositionError(int32_t value, int64_t b, int64_t t) {
  return Error(GRIP_ERR_RANGE, "positions >= 0", "positions",
               std::to_string(value) + " at " + Position({b, t}));
}

// embedding: ids at flat index `flat` (of an ids tensor of shape[ndim]) is
// outside [0, V); the position is printed as a multi-index.
inline Status EmbeddingIdError(int32_t value, int64_t V, int64_t flat, const int64_t* shape,
                               int ndim) {
  std::string at = "[";
  int64_t stride = 1;
  for (int i = 0; i < ndim; ++i) stride *= shape[i];
  for (int i = 0; i < ndim; ++i) {
    stride = shape[i] ? stride / shape[i] : 1;
    at += (i ? ", " : "") + std::to_string(stride ? (flat / stride) % shape[i] : 0);
  }
  return Error(GRIP_ERR_RANGE, "ids in [0, " + std::to_string(V) + ")", "ids",
               std::to_string(value) + " at " + at + "]");
}

}  // namespace grip
