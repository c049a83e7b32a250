/* grip.h — the stable C ABI of grip-vlm's pruning ops (CPU and CUDA twins).
 *
 * Rules: every function returns a grip_status and never throws, aborts or
 * exits; on failure grip_last_error() returns a message of the form
 * "expected X for Y but received Z" (thread-local, valid until the next call
 * on the same thread). All memory is owned by the caller: outputs are written
 * into tensors the caller allocated with the documented shape. Tensors are
 * dense, row-major (C-contiguous). The device of the inputs picks the backend;
 * every tensor of one call must live on the same device.
 *
 * Shape letters: B batch rows, N visual tokens, D hidden size, H scorer hidden,
 * R query rank, K kept, G samples, T cache length, Hkv kv heads, Dh head dim;
 * for the transformer ops also M rows (all leading dims flattened: "[..., D]"
 * is any rank >= 1 whose last extent is D), Hq query heads, Tq/Tk query and
 * key lengths, Tmax cache capacity, V vocabulary size.
 */
#ifndef GRIP_GRIP_H
#define GRIP_GRIP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define GRIP_API __declspec(dllexport)
#else
#define GRIP_API __attribute__((visibility("default")))
#endif

#define GRIP_VERSION_MAJOR 0
#define GRIP_VERSION_MINOR 1
#define GRIP_VERSION_PATCH 0
#define GRIP_MAX_DIMS 8

typedef enum grip_status {
  GRIP_OK = 0,
  GRIP_ERR_SHAPE = 1,       /* a shape or a length does not match */
  GRIP_ERR_DTYPE = 2,       /* an element type is not accepted */
  GRIP_ERR_RANGE = 3,       /* a value is out of range (index, k, ratio, NaN) */
  GRIP_ERR_DEVICE = 4,      /* tensors on different devices, or no such device */
  GRIP_ERR_CUDA = 5,        /* the CUDA runtime reported an error */
  GRIP_ERR_UNSUPPORTED = 6, /* not built in (e.g. CUDA in a CPU-only build) */
  GRIP_ERR_FORMAT = 7,      /* malformed file or header */
  GRIP_ERR_IO = 8,          /* a read or write failed */
  GRIP_ERR_INTERNAL = 9     /* out of memory or a bug: please report */
} grip_status;

/* GRIP_Q8_0: 8-bit weights in ggml's Q8_0 layout, for grip_linear's weight
 * only (CPU). A q8_0 tensor [N,K] (K % 32 == 0) holds N rows of K/32 blocks
 * of 34 bytes, {f16 d; int8 qs[32]}, standing for d * qs[j]; see
 * grip_quantize_q8_0. Its grip_dtype_size is 0 (no whole bytes per value):
 * grip_storage_bytes gives a tensor's size. */
typedef enum grip_dtype { GRIP_F32 = 0, GRIP_F16 = 1, GRIP_BF16 = 2, GRIP_I32 = 3, GRIP_Q8_0 = 4 } grip_dtype;

typedef enum grip_device {
  GRIP_DEVICE_CPU = 0,  /* host memory, CPU kernels */
  GRIP_DEVICE_CUDA = 1, /* device memory of the current CUDA device */
  /* Host memory, but the CUDA kernels run on grip's SIMT emulator (each CUDA
   * thread a fiber). For testing the .cu code without a GPU; slow. */
  GRIP_DEVICE_EMU = 2
} grip_device;

typedef struct grip_tensor {
  void* data;
  grip_dtype dtype;
  grip_device device;
  int32_t ndim;
  int64_t shape[GRIP_MAX_DIMS];
} grip_tensor;

/* The budget-aware scorer's parameters (all f32, same device as the inputs). */
typedef struct grip_scorer_params {
  grip_tensor ln_weight; /* [D] */
  grip_tensor ln_bias;   /* [D] */
  grip_tensor w1;        /* [D,H] */
  grip_tensor b1;        /* [H] */
  grip_tensor film_w;    /* [16,2H] */
  grip_tensor film_b;    /* [2H] */
  grip_tensor w2;        /* [H] */
  grip_tensor b2;        /* [1] */
  grip_tensor wq;        /* [D,R] */
  grip_tensor wk;        /* [D,R] */
} grip_scorer_params;

/* grip_attention's options. Host arrays may be NULL (their defaults). */
typedef struct grip_attention_options {
  int causal;              /* 1: query i of row b sits at key kv_len[b]-q_len[b]+i and sees keys up to it */
  float scale;             /* multiplies q·k; usually 1/sqrt(Dh) */
  const int32_t* q_len;    /* [B] host, valid query rows per row (NULL: Tq each) */
  const int32_t* kv_len;   /* [B] host, valid keys per row (NULL: Tk each) */
  const int32_t* prob_rows; /* [num_prob_rows] host, query rows whose probabilities go to probs */
  int32_t num_prob_rows;   /* R, 0 when no probabilities are wanted */
} grip_attention_options;

typedef enum grip_gelu_kind {
  GRIP_GELU_ERF = 0,   /* 0.5 x (1 + erf(x / sqrt 2)) */
  GRIP_GELU_TANH = 1,  /* 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
  GRIP_GELU_QUICK = 2  /* x sigmoid(1.702 x) (CLIP's quick_gelu) */
} grip_gelu_kind;

typedef struct grip_adamw_options {
  int64_t step; /* 1-based step count, for bias correction */
  float lr, beta1, beta2, eps, weight_decay;
} grip_adamw_options;

/* ---- library ---------------------------------------------------------- */
GRIP_API const char* grip_last_error(void);
GRIP_API const char* grip_version(void);       /* "0.1.0" */
GRIP_API const char* grip_simd(void);          /* "avx512_bf16" | "avx512" | "avx2" | "scalar" */
GRIP_API const char* grip_q8_0_kernel(void);   /* q8_0 linear: "avx512_vnni" | "avx_vnni" | "avx2" | "scalar" */
GRIP_API int grip_num_threads(void);
GRIP_API grip_status grip_set_num_threads(int n); /* 1..256; 0 = number of cores */
GRIP_API int grip_cuda_compiled(void);            /* 1 when built with CUDA */
GRIP_API int grip_cuda_device_count(void);        /* 0 when no GPU or no CUDA build */
GRIP_API size_t grip_dtype_size(grip_dtype dtype);
/* Bytes of `count` values of dtype (count * grip_dtype_size, or count / 32 * 34
 * for GRIP_Q8_0); 0 for a q8_0 count that is not a multiple of 32. */
GRIP_API size_t grip_storage_bytes(grip_dtype dtype, int64_t count);

/* Device memory (CUDA builds only; GRIP_ERR_UNSUPPORTED otherwise). */
GRIP_API grip_status grip_cuda_malloc(size_t bytes, void** out);
GRIP_API grip_status grip_cuda_free(void* ptr);
GRIP_API grip_status grip_cuda_memcpy_to_device(void* dst, const void* src, size_t bytes);
GRIP_API grip_status grip_cuda_memcpy_to_host(void* dst, const void* src, size_t bytes);
/* The current device's free and total memory as the driver reports them
 * (cudaMemGetInfo: every process's allocations and the CUDA contexts count);
 * GRIP_ERR_DEVICE when no GPU is visible. */
GRIP_API grip_status grip_cuda_mem_info(size_t* free_bytes, size_t* total_bytes);

/* SIMT emulator schedule for GRIP_DEVICE_EMU: 0 forward, 1 reverse, 2 random
 * (seeded). Process-wide; meant for tests. */
GRIP_API grip_status grip_emu_set_schedule(int schedule, uint64_t seed);

/* ---- ops -------------------------------------------------------------- */

/* scores[B,N] = budget-aware scorer of x[B,N,D] (f32|f16|bf16) given
 * query[B,D] f32 and keep_ratio[B] f32 in (0,1]. See README for the formula. */
GRIP_API grip_status grip_score_tokens(const grip_tensor* x, const grip_tensor* query,
                                       const grip_tensor* keep_ratio,
                                       const grip_scorer_params* params, grip_tensor* scores);

/* Gradients of sum(d_scores * scores) w.r.t. every parameter, written (not
 * accumulated) into grads, whose tensors have the parameters' shapes. */
GRIP_API grip_status grip_score_tokens_backward(const grip_tensor* x, const grip_tensor* query,
                                                const grip_tensor* keep_ratio,
                                                const grip_scorer_params* params,
                                                const grip_tensor* d_scores,
                                                grip_scorer_params* grads);

/* Top-k per row of scores[B,N] f32 with k_per_row[B] (host memory, 0..N).
 * indices[B,maxK] i32 ascending by position (ties: lower index wins), rows with
 * a smaller k padded with -1; values[B,maxK] f32 the scores at those indices
 * (padding: -inf). NaN in scores is GRIP_ERR_RANGE. */
GRIP_API grip_status grip_topk(const grip_tensor* scores, const int32_t* k_per_row,
                               grip_tensor* indices, grip_tensor* values);

/* G samples per row of k draws without replacement from softmax(logits[B,N]):
 * indices[B,G,k] i32 in sampling order, log_prob[B,G] f32 their Plackett-Luce
 * log-probability. Counter-based RNG: same seed, same result on every backend. */
GRIP_API grip_status grip_gumbel_topk(const grip_tensor* logits, int32_t k, int32_t samples,
                                      uint64_t seed, grip_tensor* indices,
                                      grip_tensor* log_prob);

/* log_prob[B,G] of ordered samples indices[B,G,k] (distinct, in 0..N-1). */
GRIP_API grip_status grip_plackett_luce_log_prob(const grip_tensor* logits,
                                                 const grip_tensor* indices,
                                                 grip_tensor* log_prob);

/* d_logits[B,N] = d(sum_g d_log_prob[b,g] * log_prob[b,g]) / d logits. */
GRIP_API grip_status grip_plackett_luce_backward(const grip_tensor* logits,
                                                 const grip_tensor* indices,
                                                 const grip_tensor* d_log_prob,
                                                 grip_tensor* d_logits);

/* out[B,K,D] = x[b, indices[b,k], :] (x f32|f16|bf16, out the same dtype);
 * index -1 gives a row of zeros. */
GRIP_API grip_status grip_gather_rows(const grip_tensor* x, const grip_tensor* indices,
                                      grip_tensor* out);

/* out[B,Hkv,K,Dh] = cache[b, :, keep[b,k], :]; keep[B,K] i32 strictly ascending
 * per row, then -1 padding (padded slots are zeroed). */
GRIP_API grip_status grip_compact_kv(const grip_tensor* cache, const grip_tensor* keep,
                                     grip_tensor* out);

/* In place: moves the kept positions of each row to the front of the T axis,
 * in order; positions past the new length are left as they were.
 * new_lengths[B] (host memory) receives the number of kept positions per row. */
GRIP_API grip_status grip_compact_kv_inplace(grip_tensor* cache, const grip_tensor* keep,
                                             int32_t* new_lengths);

/* One AdamW step in place on f32 tensors of one shape (decoupled weight
 * decay, bias-corrected moments). */
GRIP_API grip_status grip_adamw(grip_tensor* param, const grip_tensor* grad, grip_tensor* m,
                                grip_tensor* v, const grip_adamw_options* options);

/* out[M,N] = a[M,K] (f32) · b, where b is [K,N] or, with trans_b, [N,K] (the
 * layout of a Linear layer's weight); b may be f32, f16 or bf16 (widened on
 * the fly). */
GRIP_API grip_status grip_matmul(const grip_tensor* a, const grip_tensor* b, int trans_b,
                                 grip_tensor* out);

/* ---- transformer ops (the LLaVA runtime: CLIP ViT, projector, Llama) ------
 * Unless said otherwise every tensor is f32, and `out` may be the very tensor
 * of the first input (in place) or a disjoint one. */

/* out[..., N] = x[..., K] · weight[N,K]^T + bias[N]; weight f32|f16|bf16
 * (widened exactly), bias f32 or NULL. A q8_0 weight (CPU only, K % 32 ==
 * 0) runs llama.cpp's Q8_0 x Q8_0 arithmetic: each row of x quantised per
 * block of 32 like the weights, an int32 dot per block times d_w * d_x. */
GRIP_API grip_status grip_linear(const grip_tensor* x, const grip_tensor* weight,
                                 const grip_tensor* bias, grip_tensor* out);

/* out (q8_0 [N,K]) = x (f32 [N,K], K % 32 == 0) quantised as ggml's
 * quantize_row_q8_0_ref: per block d = max|x| / 127 stored as f16,
 * q = roundf(x / d) (half away from zero). CPU only. */
GRIP_API grip_status grip_quantize_q8_0(const grip_tensor* x, grip_tensor* out);

/* out[..., D] = (x - mean) / sqrt(var + eps) * weight[D] + bias[D] over the
 * last dim, var biased (as torch.nn.LayerNorm). */
GRIP_API grip_status grip_layer_norm(const grip_tensor* x, const grip_tensor* weight,
                                     const grip_tensor* bias, float eps, grip_tensor* out);

/* out[..., D] = x / sqrt(mean(x^2) + eps) * weight[D] (Llama's RMSNorm). */
GRIP_API grip_status grip_rms_norm(const grip_tensor* x, const grip_tensor* weight, float eps,
                                   grip_tensor* out);

/* Rotary embedding, Hugging Face Llama convention (rotate_half: pairs (i, i+Dh/2)):
 * x[B,T,H,Dh] (Dh even), positions[B,T] i32 >= 0, angle = positions[b,t] *
 * theta^(-2i/Dh) in double, cos/sin rounded to f32;
 * out[i] = x[i] cos - x[i+Dh/2] sin, out[i+Dh/2] = x[i+Dh/2] cos + x[i] sin. */
GRIP_API grip_status grip_rope(const grip_tensor* x, const grip_tensor* positions, double theta,
                               grip_tensor* out);

/* In place: cache[b, h, start[b]+i, :] = src[b, i, h, :] for i < count[b];
 * cache [B,Hkv,Tmax,Dh] f32|f16|bf16 (rounded to nearest even on store),
 * src [B,T,Hkv,Dh] f32; start, count [B] host, count[b] <= T,
 * start[b] + count[b] <= Tmax. */
GRIP_API grip_status grip_cache_write(grip_tensor* cache, const grip_tensor* src,
                                      const int32_t* start, const int32_t* count);

/* Scaled dot-product attention with grouped-query heads (query head h reads
 * kv head h / (Hq/Hkv)): q[B,Tq,Hq,Dh], k and v [B,Hkv,Tk,Dh] -> out[B,Tq,Hq,Dh].
 * Row b has queries i < q_len[b] and keys j < kv_len[b] (q_len <= kv_len <= Tk,
 * q_len <= Tq). Causal: query i attends keys 0..kv_len-q_len+i; otherwise all
 * kv_len keys. Query rows i >= q_len[b] get zeros. With num_prob_rows R > 0,
 * probs[B,Hq,R,Tk] receives the softmax probabilities of query rows
 * prob_rows[0..R) (0 for keys not attended and for rows i >= q_len[b]);
 * otherwise probs may be NULL. */
GRIP_API grip_status grip_attention(const grip_tensor* q, const grip_tensor* k,
                                    const grip_tensor* v,
                                    const grip_attention_options* options, grip_tensor* out,
                                    grip_tensor* probs);

/* out = GELU(x) elementwise (any shape), of the given kind. */
GRIP_API grip_status grip_gelu(const grip_tensor* x, grip_gelu_kind kind, grip_tensor* out);

/* out = silu(gate) * up = gate / (1 + exp(-gate)) * up (same shapes). */
GRIP_API grip_status grip_silu_mul(const grip_tensor* gate, const grip_tensor* up,
                                   grip_tensor* out);

/* out = a + b, where b's shape is a trailing part of a's (broadcast over the
 * leading dims of a; equal shapes included). */
GRIP_API grip_status grip_add(const grip_tensor* a, const grip_tensor* b, grip_tensor* out);

/* out[..., N] = softmax over the last dim (log-softmax when log != 0). */
GRIP_API grip_status grip_softmax(const grip_tensor* x, int log, grip_tensor* out);

/* out[..., D] f32 = table[ids[...], :] for table [V,D] f32|f16|bf16 (widened
 * exactly) and ids i32 in [0, V). */
GRIP_API grip_status grip_embedding(const grip_tensor* table, const grip_tensor* ids,
                                    grip_tensor* out);


/* ---- decoder layers (one call for a range of Llama / Qwen2 layers) ---------
 * grip_decoder_layers runs, for each layer, exactly the ops a caller would
 * call one by one (same kernels, same order, so the same bits):
 *   h = rms_norm(x, input_norm); q, k, v = linear(h, q|k|v, bias);
 *   rope(q), rope(k) at positions; cache_write(k_cache, k), (v_cache, v) at
 *   lengths; a = attention(q, k_cache, v_cache, causal, 1/sqrt(Dh), q_len =
 *   tokens, kv_len = lengths + tokens); x += linear(a, o);
 *   h = rms_norm(x, post_norm); x += linear(silu(linear(h, gate)) *
 *   linear(h, up), down).
 * One call instead of ~14 per layer is what makes decode's per-token
 * overhead small: no binding, no thread hop, and the thread pool's workers
 * still spinning when the next op starts. */
typedef struct grip_decoder_layer {
  grip_tensor input_norm, post_norm;   /* [D] f32 */
  grip_tensor q, k, v, o, gate, up, down; /* Linear weights [N,K] f32|f16|bf16|q8_0 */
  grip_tensor q_bias, k_bias, v_bias;  /* [N] f32; data NULL when absent (Llama) */
  grip_tensor k_cache, v_cache;        /* [B,Hkv,Tmax,Dh] f32 */
} grip_decoder_layer;

typedef struct grip_decoder_options {
  int32_t num_heads, num_kv_heads, head_dim, intermediate_size;
  float rms_norm_eps;
  double rope_theta;
  const int32_t* tokens; /* [B] host: valid new tokens of each row (<= T) */
  int32_t* lengths;      /* [num_layers * B] host: cache lengths before; updated to after */
} grip_decoder_options;

/* Bytes of workspace grip_decoder_layers needs for `rows` = B*T new tokens. */
GRIP_API size_t grip_decoder_workspace_bytes(int64_t rows, int64_t hidden,
                                             const grip_decoder_options* options);

/* x [B,T,D] f32 in place, positions [B,T] i32; layers[0..num_layers);
 * workspace: host (or device) memory on x's device of at least
 * grip_decoder_workspace_bytes. On failure the layers before the failing op
 * have run (x and the caches are then partly updated). */
GRIP_API grip_status grip_decoder_layers(grip_tensor* x, const grip_tensor* positions,
                                         const grip_decoder_layer* layers, int32_t num_layers,
                                         const grip_decoder_options* options, void* workspace,
                                         size_t workspace_bytes);

#ifdef __cplusplus
}
#endif
#endif /* GRIP_GRIP_H */
