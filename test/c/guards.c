/* guards.c — calls the C ABI with arguments the TS layer never sends (NULL
 * pointers, negative or huge extents, Hq = 0 attention, unknown enums) and
 * prints "case: status message" for each; every call must refuse, none may
 * crash. Built and run by test/c_abi.test.ts, which checks every line. */
#include <stdio.h>
#include <string.h>

#include "grip/grip.h"

static void report(const char* what, grip_status st) {
  printf("%s: %d %s\n", what, (int)st, st == GRIP_OK ? "ok" : grip_last_error());
}

int main(void) {
  static float buf[4096];
  static int32_t ibuf[256];
  grip_tensor q = {buf, GRIP_F32, GRIP_DEVICE_CPU, 4, {1, 1, 0, 4}};
  grip_tensor k = {buf, GRIP_F32, GRIP_DEVICE_CPU, 4, {1, 2, 3, 4}};
  grip_tensor v = {buf, GRIP_F32, GRIP_DEVICE_CPU, 4, {1, 2, 3, 4}};
  grip_tensor out = {buf, GRIP_F32, GRIP_DEVICE_CPU, 4, {1, 1, 0, 4}};
  grip_attention_options o;
  memset(&o, 0, sizeof o);
  o.scale = 0.5f;
  report("attention Hq=0 Hkv=2", grip_attention(&q, &k, &v, &o, &out, NULL));
  q.shape[2] = out.shape[2] = 3;
  report("attention Hq=3 Hkv=2", grip_attention(&q, &k, &v, &o, &out, NULL));
  q.shape[2] = out.shape[2] = 2;
  k.shape[1] = v.shape[1] = 0;
  report("attention Hq=2 Hkv=0", grip_attention(&q, &k, &v, &o, &out, NULL));
  k.shape[1] = v.shape[1] = 2;
  report("attention options NULL", grip_attention(&q, &k, &v, NULL, &out, NULL));
  report("attention q NULL", grip_attention(NULL, &k, &v, &o, &out, NULL));
  o.num_prob_rows = 1;
  report("attention probRows NULL", grip_attention(&q, &k, &v, &o, &out, NULL));
  o.num_prob_rows = -1;
  report("attention numProbRows -1", grip_attention(&q, &k, &v, &o, &out, NULL));

  int32_t kk[2] = {1, 1};
  grip_tensor s = {buf, GRIP_F32, GRIP_DEVICE_CPU, 2, {2, 5}};
  grip_tensor idx = {ibuf, GRIP_I32, GRIP_DEVICE_CPU, 2, {2, 1}};
  grip_tensor val = {buf + 100, GRIP_F32, GRIP_DEVICE_CPU, 2, {2, 1}};
  report("topk scores NULL", grip_topk(NULL, kk, &idx, &val));
  report("topk k NULL", grip_topk(&s, NULL, &idx, &val));
  report("topk indices NULL", grip_topk(&s, kk, NULL, &val));
  s.shape[0] = -2;
  report("topk negative extent", grip_topk(&s, kk, &idx, &val));
  s.shape[0] = 2;
  s.ndim = -1;
  report("topk ndim -1", grip_topk(&s, kk, &idx, &val));
  s.ndim = 9;
  report("topk ndim 9", grip_topk(&s, kk, &idx, &val));
  s.ndim = 2;
  s.data = NULL;
  report("topk data NULL", grip_topk(&s, kk, &idx, &val));
  s.data = buf;
  s.dtype = (grip_dtype)9;
  report("topk unknown dtype", grip_topk(&s, kk, &idx, &val));
  s.dtype = GRIP_F32;
  s.device = (grip_device)7;
  report("topk unknown device", grip_topk(&s, kk, &idx, &val));
  s.device = GRIP_DEVICE_CPU;

  grip_tensor gi = {ibuf, GRIP_I32, GRIP_DEVICE_CPU, 3, {2, 1, 1}};
  grip_tensor gl = {buf + 200, GRIP_F32, GRIP_DEVICE_CPU, 2, {2, 1}};
  report("gumbel samples 0", grip_gumbel_topk(&s, 1, 0, 1, &gi, &gl));
  report("gumbel k -1", grip_gumbel_topk(&s, -1, 1, 1, &gi, &gl));
  report("gumbel logProb NULL", grip_gumbel_topk(&s, 1, 1, 1, &gi, NULL));

  /* 8 extents of 2^31 - 1: the element count overflows int64. */
  grip_tensor huge = {buf, GRIP_F32, GRIP_DEVICE_CPU, 8, {0}};
  for (int i = 0; i < 8; ++i) huge.shape[i] = 2147483647;
  report("gelu overflowing shape", grip_gelu(&huge, GRIP_GELU_ERF, &huge));
  /* 4 extents of 65536: 2^64 elements, a product that wraps to 0. */
  grip_tensor wraps = {buf, GRIP_F32, GRIP_DEVICE_CPU, 4, {65536, 65536, 65536, 65536}};
  report("gelu wrapping shape", grip_gelu(&wraps, GRIP_GELU_ERF, &wraps));
  grip_tensor x = {buf, GRIP_F32, GRIP_DEVICE_CPU, 2, {2, 4}};
  report("gelu kind 7", grip_gelu(&x, (grip_gelu_kind)7, &x));
  report("softmax out NULL", grip_softmax(&x, 0, NULL));
  report("adamw options NULL", grip_adamw(&x, &x, &x, &x, NULL));
  report("adamw param NULL", grip_adamw(NULL, &x, &x, &x, NULL));
  grip_tensor x3 = {buf, GRIP_F32, GRIP_DEVICE_CPU, 3, {1, 2, 4}};
  grip_tensor query = {buf, GRIP_F32, GRIP_DEVICE_CPU, 2, {1, 4}};
  grip_tensor ratio = {buf, GRIP_F32, GRIP_DEVICE_CPU, 1, {1}};
  grip_tensor scores = {buf + 2000, GRIP_F32, GRIP_DEVICE_CPU, 2, {1, 2}};
  report("score params NULL", grip_score_tokens(&x3, &query, &ratio, NULL, &scores));

  grip_tensor cache = {buf, GRIP_F32, GRIP_DEVICE_CPU, 4, {1, 1, 4, 2}};
  grip_tensor keep = {ibuf, GRIP_I32, GRIP_DEVICE_CPU, 2, {1, 2}};
  ibuf[0] = 0;
  ibuf[1] = 1;
  report("compactKVInPlace newLengths NULL", grip_compact_kv_inplace(&cache, &keep, NULL));
  grip_tensor src = {buf + 1000, GRIP_F32, GRIP_DEVICE_CPU, 4, {1, 2, 1, 2}};
  report("cacheWrite start NULL", grip_cache_write(&cache, &src, NULL, kk));
  grip_tensor w = {buf, GRIP_F32, GRIP_DEVICE_CPU, 1, {4}};
  report("layerNorm bias NULL", grip_layer_norm(&x, &w, NULL, 1e-5f, &x));
  report("threads -1", grip_set_num_threads(-1));
  report("cuda malloc out NULL", grip_cuda_malloc(16, NULL));
  size_t free_bytes = 1, total_bytes = 1;
  report("cuda mem info", grip_cuda_mem_info(&free_bytes, &total_bytes));
  report("cuda mem info zeroed", free_bytes == 0 && total_bytes == 0 ? GRIP_OK : GRIP_ERR_RANGE);
  return 0;
}
