// addon.cc — the Node binding: turns JS tensors (TypedArrays, or device
// buffers for CUDA) into grip_tensor views without copying, calls the C ABI
// synchronously or on a libuv worker (Promise), and turns a grip_status into
// a GripError. No business logic: lib/ validates, native computes.
#include <napi.h>

#include <array>
#include <atomic>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "grip/grip.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace {

// Per-environment state (the main thread and each worker_threads Worker
// load the addon into their own env): lib/errors.ts GripError, set by init().
// N-API deletes it when its env is torn down, so a worker that exits leaves
// no reference behind and no env ever builds an error from another's class.
struct EnvData {
  Napi::FunctionReference grip_error;
};

// Process-wide counters of what the addon holds natively (memoryStats()): a
// soak checks they return to their baseline. Device buffers are process-wide
// memory, so the counters are too (atomics: envs live on different threads).
std::atomic<int64_t> g_device_bytes{0};
std::atomic<int64_t> g_device_buffers{0};
std::atomic<int64_t> g_pending_ops{0};

const char* CodeName(grip_status status) {
  switch (status) {
    case GRIP_ERR_SHAPE: return "ERR_GRIP_SHAPE";
    case GRIP_ERR_DTYPE: return "ERR_GRIP_DTYPE";
    case GRIP_ERR_RANGE: return "ERR_GRIP_RANGE";
    case GRIP_ERR_DEVICE: return "ERR_GRIP_DEVICE";
    case GRIP_ERR_CUDA: return "ERR_GRIP_CUDA";
    case GRIP_ERR_UNSUPPORTED: return "ERR_GRIP_UNSUPPORTED";
    case GRIP_ERR_FORMAT: return "ERR_GRIP_FORMAT";
    case GRIP_ERR_IO: return "ERR_GRIP_IO";
    default: return "ERR_GRIP_INTERNAL";
  }
}

// A GripError(code, message) in plain N-API calls whose failures are
// returned, not thrown: it also runs when an env is being torn down (a
// worker terminated with ops in flight), where node-addon-api's throwing
// wrappers would end the process. nullptr when the env can no longer run JS.
napi_value NewGripError(napi_env env, const char* code, const std::string& message) {
  napi_value code_value, message_value, error = nullptr;
  if (napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &code_value) != napi_ok ||
      napi_create_string_utf8(env, message.data(), message.size(), &message_value) != napi_ok)
    return nullptr;
  void* raw = nullptr;
  EnvData* data = napi_get_instance_data(env, &raw) == napi_ok ? static_cast<EnvData*>(raw) : nullptr;
  if (data != nullptr && !data->grip_error.IsEmpty()) {
    napi_value ctor = nullptr, argv[2] = {code_value, message_value};
    if (napi_get_reference_value(env, data->grip_error, &ctor) == napi_ok && ctor != nullptr &&
        napi_new_instance(env, ctor, 2, argv, &error) == napi_ok)
      return error;
  }
  return napi_create_error(env, code_value, message_value, &error) == napi_ok ? error : nullptr;
}

void ThrowGripError(Napi::Env env, const char* code, const std::string& message) {
  if (env.IsExceptionPending()) return;
  napi_value error = NewGripError(env, code, message);
  if (error != nullptr) napi_throw(env, error);
}

// A CUDA allocation owned by JS: freed by dispose() or by the GC finalizer.
struct DeviceBuffer {
  void* ptr = nullptr;
  size_t bytes = 0;
  ~DeviceBuffer() { Free(); }
  void Free() {
    if (ptr == nullptr) return;
    grip_cuda_free(ptr);
    g_device_bytes -= (int64_t)bytes;
    g_device_buffers -= 1;
    ptr = nullptr;
    bytes = 0;
  }
};

// The data pointer and byte length of a TypedArray, straight from N-API
// (no ArrayBuffer handle: this runs for every tensor of every call).
void* TypedArrayData(Napi::Value value, size_t* byte_length) {
  napi_typedarray_type type;
  size_t length = 0, offset = 0;
  void* data = nullptr;
  napi_value buffer;
  if (napi_get_typedarray_info(value.Env(), value, &type, &length, &data, &buffer, &offset) != napi_ok) {
    *byte_length = 0;
    return nullptr;
  }
  static const size_t kElementBytes[] = {1, 1, 1, 2, 2, 4, 4, 4, 8, 8, 8};
  *byte_length = length * ((size_t)type < 11 ? kElementBytes[type] : 1);
  return data;
}

// A short string property (dtype, device) without a heap round trip for the usual values.
std::string ShortString(Napi::Value value) {
  char buffer[16];
  size_t length = 0;
  if (!value.IsString() ||
      napi_get_value_string_utf8(value.Env(), value, buffer, sizeof buffer, &length) != napi_ok)
    return std::string();
  return std::string(buffer, length);
}

// Argument conversion failures are programming errors of lib/ (it validates
// first), reported as ERR_GRIP_INTERNAL-free TypeErrors would hide them: we
// report ERR_GRIP_SHAPE / ERR_GRIP_DTYPE with the usual message shape.
struct Parser {
  Napi::Env env;
  bool failed = false;

  void Fail(const char* code, const std::string& message) {
    if (!failed) ThrowGripError(env, code, message);
    failed = true;
  }

  // mode: bits 0-1 the backend (0 cpu, 1 cuda, 2 emu), bit 2 async.
  grip_tensor Tensor(Napi::Value value, const char* name, int backend) {
    grip_tensor t{};
    if (failed) return t;
    if (!value.IsObject()) {
      Fail("ERR_GRIP_SHAPE", std::string("expected a Tensor for ") + name + " but received " +
                                 (value.IsUndefined() ? "undefined" : "another value"));
      return t;
    }
    Napi::Object obj = value.As<Napi::Object>();
    const std::string dtype = ShortString(obj.Get("dtype"));
    if (dtype == "f32") t.dtype = GRIP_F32;
    else if (dtype == "f16") t.dtype = GRIP_F16;
    else if (dtype == "bf16") t.dtype = GRIP_BF16;
    else if (dtype == "i32") t.dtype = GRIP_I32;
    else {
      Fail("ERR_GRIP_DTYPE", "expected f32, f16, bf16 or i32 for dtype of " + std::string(name) +
                                 " but received " + dtype);
      return t;
    }
    Napi::Value shape_value = obj.Get("shape");
    if (!shape_value.IsArray()) {
      Fail("ERR_GRIP_SHAPE", std::string("expected an array for shape of ") + name +
                                 " but received another value");
      return t;
    }
    Napi::Array shape = shape_value.As<Napi::Array>();
    if (shape.Length() > GRIP_MAX_DIMS) {
      Fail("ERR_GRIP_SHAPE", "expected at most 8 dimensions for " + std::string(name) +
                                 " but received " + std::to_string(shape.Length()));
      return t;
    }
    t.ndim = (int32_t)shape.Length();
    size_t count = 1;
    for (uint32_t i = 0; i < shape.Length(); ++i) {
      t.shape[i] = shape.Get(i).ToNumber().Int64Value();
      count *= (size_t)(t.shape[i] < 0 ? 0 : t.shape[i]);
    }
    const size_t bytes = count * grip_dtype_size(t.dtype);
    Napi::Value data = obj.Get("data");
    const std::string device = ShortString(obj.Get("device"));
    if (device == "cuda") {
      t.device = GRIP_DEVICE_CUDA;
      Napi::Value handle = data.IsObject() ? data.As<Napi::Object>().Get("handle") : data;
      if (!handle.IsExternal()) {
        Fail("ERR_GRIP_DEVICE", std::string("expected a device buffer for data of ") + name +
                                    " but received another value");
        return t;
      }
      DeviceBuffer* buffer = handle.As<Napi::External<DeviceBuffer>>().Data();
      if (buffer->ptr == nullptr) {
        Fail("ERR_GRIP_DEVICE", std::string("expected a live device buffer for ") + name +
                                    " but received a disposed one");
        return t;
      }
      if (buffer->bytes < bytes) {
        Fail("ERR_GRIP_SHAPE", "expected at least " + std::to_string(bytes) + " bytes for data of " +
                                   name + " but received " + std::to_string(buffer->bytes));
        return t;
      }
      t.data = buffer->ptr;
      return t;
    }
    t.device = backend == 2 ? GRIP_DEVICE_EMU : GRIP_DEVICE_CPU;
    if (!data.IsTypedArray()) {
      Fail("ERR_GRIP_SHAPE", std::string("expected a TypedArray for data of ") + name +
                                 " but received another value");
      return t;
    }
    size_t byte_length = 0;
    t.data = TypedArrayData(data, &byte_length);
    if (byte_length < bytes) {
      Fail("ERR_GRIP_SHAPE", "expected at least " + std::to_string(bytes) + " bytes for data of " +
                                 name + " but received " + std::to_string(byte_length));
      return t;
    }
    return t;
  }

  grip_scorer_params Params(Napi::Value value, const char* name, int backend) {
    grip_scorer_params p{};
    if (failed) return p;
    if (!value.IsObject()) {
      Fail("ERR_GRIP_SHAPE", std::string("expected scorer params for ") + name +
                                 " but received another value");
      return p;
    }
    Napi::Object o = value.As<Napi::Object>();
    const std::string pre = std::string(name) + ".";
    auto field = [&](const char* key) { return Tensor(o.Get(key), (pre + key).c_str(), backend); };
    p.ln_weight = field("lnWeight");
    p.ln_bias = field("lnBias");
    p.w1 = field("w1");
    p.b1 = field("b1");
    p.film_w = field("filmW");
    p.film_b = field("filmB");
    p.w2 = field("w2");
    p.b2 = field("b2");
    p.wq = field("wq");
    p.wk = field("wk");
    return p;
  }

  void* HostArray(Napi::Value value, const char* name, size_t min_bytes) {
    if (failed) return nullptr;
    if (!value.IsTypedArray()) {
      Fail("ERR_GRIP_SHAPE", std::string("expected an Int32Array for ") + name +
                                 " but received another value");
      return nullptr;
    }
    size_t byte_length = 0;
    void* data = TypedArrayData(value, &byte_length);
    if (byte_length < min_bytes) {
      Fail("ERR_GRIP_SHAPE", "expected at least " + std::to_string(min_bytes) + " bytes for " +
                                 name + " but received " + std::to_string(byte_length));
      return nullptr;
    }
    return data;
  }
};

// Runs an op off the event loop. The JS arguments stay referenced (so their
// buffers stay alive) until the op settles.
class OpWorker : public Napi::AsyncWorker {
 public:
  OpWorker(Napi::Env env, const Napi::CallbackInfo& info, std::function<grip_status(std::string*)> op)
      : Napi::AsyncWorker(env, "grip:op"), op_(std::move(op)) {
    napi_create_promise(env, &deferred_, &promise_);
    Napi::Array keep = Napi::Array::New(env, info.Length());
    for (size_t i = 0; i < info.Length(); ++i) keep.Set((uint32_t)i, info[i]);
    args_ = Napi::Persistent(keep);
    g_pending_ops += 1;
  }
  ~OpWorker() override { g_pending_ops -= 1; }
  Napi::Promise Promise() { return Napi::Promise(Env(), promise_); }
  void Execute() override { status_ = op_(&message_); }
  // Settled with plain N-API calls whose failures are ignored: when the env
  // is being torn down (a terminated worker), nobody waits for the promise.
  void OnOK() override {
    napi_env env = Env();
    if (status_ == GRIP_OK) {
      napi_value undefined;
      if (napi_get_undefined(env, &undefined) == napi_ok) napi_resolve_deferred(env, deferred_, undefined);
      return;
    }
    napi_value error = NewGripError(env, CodeName(status_), message_);
    if (error != nullptr) napi_reject_deferred(env, deferred_, error);
  }
  void OnError(const Napi::Error& e) override { napi_reject_deferred(Env(), deferred_, e.Value()); }

 private:
  napi_deferred deferred_ = nullptr;
  napi_value promise_ = nullptr;
  std::function<grip_status(std::string*)> op_;
  Napi::Reference<Napi::Array> args_;
  grip_status status_ = GRIP_OK;
  std::string message_;
};

// Calls `op` now (mode bit 2 clear) or on a worker (set, returns a Promise).
Napi::Value Run(const Napi::CallbackInfo& info, int mode, std::function<grip_status()> op) {
  Napi::Env env = info.Env();
  auto with_message = [op](std::string* message) {
    grip_status status = op();
    if (status != GRIP_OK) *message = grip_last_error();
    return status;
  };
  if (mode & 4) {
    OpWorker* worker = new OpWorker(env, info, with_message);
    Napi::Promise promise = worker->Promise();
    worker->Queue();
    return promise;
  }
  std::string message;
  grip_status status = with_message(&message);
  if (status != GRIP_OK) ThrowGripError(env, CodeName(status), message);
  return env.Undefined();
}

int Mode(const Napi::CallbackInfo& info) { return info[0].ToNumber().Int32Value(); }

// The scorer's inputs, info[1..4]: x, query, keepRatio, params.
struct ScorerInputs {
  grip_tensor x, query, ratio;
  grip_scorer_params params;
};

ScorerInputs ParseScorerInputs(Parser& p, const Napi::CallbackInfo& info, int backend) {
  ScorerInputs in;
  in.x = p.Tensor(info[1], "x", backend);
  in.query = p.Tensor(info[2], "query", backend);
  in.ratio = p.Tensor(info[3], "keepRatio", backend);
  in.params = p.Params(info[4], "params", backend);
  return in;
}

Napi::Value ScoreTokens(const Napi::CallbackInfo& info) {
  const int mode = Mode(info), backend = mode & 3;
  Parser p{info.Env()};
  ScorerInputs in = ParseScorerInputs(p, info, backend);
  grip_tensor scores = p.Tensor(info[5], "scores", backend);
  if (p.failed) return info.Env().Undefined();
  return Run(info, mode, [=]() mutable {
    return grip_score_tokens(&in.x, &in.query, &in.ratio, &in.params, &scores);
  });
}

Napi::Value ScoreTokensBackward(const Napi::CallbackInfo& info) {
  const int mode = Mode(info), backend = mode & 3;
  Parser p{info.Env()};
  ScorerInputs in = ParseScorerInputs(p, info, backend);
  grip_tensor d_scores = p.Tensor(info[5], "dScores", backend);
  grip_scorer_params grads = p.Params(info[6], "grads", backend);
  if (p.failed) return info.Env().Undefined();
  return Run(info, mode, [=]() mutable {
    return grip_score_tokens_backward(&in.x, &in.query, &in.ratio, &in.params, &d_scores, &grads);
  });
}

Napi::Value Topk(const Napi::CallbackInfo& info) {
  const int mode = Mode(info), backend = mode & 3;
  Parser p{info.Env()};
  grip_tensor scores = p.Tensor(info[1], "scores", backend);
  const int32_t* k = static_cast<const int32_t*>(p.HostArray(info[2], "k", 4 * (size_t)(scores.ndim ? scores.shape[0] : 0)));
  grip_tensor indices = p.Tensor(info[3], "indices", backend);
  grip_tensor values = p.Tensor(info[4], "values", backend);
  if (p.failed) return info.Env().Undefined();
  return Run(info, mode, [=]() mutable { return grip_topk(&scores, k, &indices, &values); });
}

Napi::Value GumbelTopk(const Napi::CallbackInfo& info) {
  const int mode = Mode(info), backend = mode & 3;
  Parser p{info.Env()};
  grip_tensor logits = p.Tensor(info[1], "logits", backend);
  const int32_t k = info[2].ToNumber().Int32Value();
  const int32_t samples = info[3].ToNumber().Int32Value();
  bool lossless = true;
  const uint64_t seed = info[4].As<Napi::BigInt>().Uint64Value(&lossless);
  grip_tensor indices = p.Tensor(info[5], "indices", backend);
  grip_tensor log_prob = p.Tensor(info[6], "logProb", backend);
  if (p.failed) return info.Env().Undefined();
  return Run(info, mode, [=]() mutable {
    return grip_gumbel_topk(&logits, k, samples, seed, &indices, &log_prob);
  });
}

// Ops whose arguments are only tensors: info[1..N] parsed with these names.
template <size_t N, typename F>
Napi::Value TensorOp(const Napi::CallbackInfo& info, const char* const (&names)[N], F op) {
  const int mode = Mode(info), backend = mode & 3;
  Parser p{info.Env()};
  std::array<grip_tensor, N> t{};
  for (size_t i = 0; i < N; ++i) t[i] = p.Tensor(info[(int)i + 1], names[i], backend);
  if (p.failed) return info.Env().Undefined();
  return Run(info, mode, [=]() mutable { return op(t); });
}

Napi::Value PlackettLuceLogProb(const Napi::CallbackInfo& info) {
  static const char* const names[] = {"logits", "indices", "logProb"};
  return TensorOp(info, names, [](std::array<grip_tensor, 3>& t) {
    return grip_plackett_luce_log_prob(&t[0], &t[1], &t[2]);
  });
}

Napi::Value PlackettLuceBackward(const Napi::CallbackInfo& info) {
  static const char* const names[] = {"logits", "indices", "dLogProb", "dLogits"};
  return TensorOp(info, names, [](std::array<grip_tensor, 4>& t) {
    return grip_plackett_luce_backward(&t[0], &t[1], &t[2], &t[3]);
  });
}

Napi::Value GatherRows(const Napi::CallbackInfo& info) {
  static const char* const names[] = {"x", "indices", "out"};
  return TensorOp(info, names, [](std::array<grip_tensor, 3>& t) {
    return grip_gather_rows(&t[0], &t[1], &t[2]);
  });
}

Napi::Value CompactKV(const Napi::CallbackInfo& info) {
  static const char* const names[] = {"cache", "keep", "out"};
  return TensorOp(info, names, [](std::array<grip_tensor, 3>& t) {
    return grip_compact_kv(&t[0], &t[1], &t[2]);
  });
}

Napi::Value CompactKVInPlace(const Napi::CallbackInfo& info) {
  const int mode = Mode(info), backend = mode & 3;
  Parser p{info.Env()};
  grip_tensor cache = p.Tensor(info[1], "cache", backend);
  grip_tensor keep = p.Tensor(info[2], "keep", backend);
  int32_t* lengths = static_cast<int32_t*>(
      p.HostArray(info[3], "newLengths", 4 * (size_t)(cache.ndim ? cache.shape[0] : 0)));
  if (p.failed) return info.Env().Undefined();
  return Run(info, mode, [=]() mutable { return grip_compact_kv_inplace(&cache, &keep, lengths); });
}

Napi::Value AdamW(const Napi::CallbackInfo& info) {
  const int mode = Mode(info), backend = mode & 3;
  Parser p{info.Env()};
  grip_tensor param = p.Tensor(info[1], "param", backend);
  grip_tensor grad = p.Tensor(info[2], "grad", backend);
  grip_tensor m = p.Tensor(info[3], "m", backend);
  grip_tensor v = p.Tensor(info[4], "v", backend);
  grip_adamw_options o{};
  o.step = info[5].ToNumber().Int64Value();
  o.lr = info[6].ToNumber().FloatValue();
  o.beta1 = info[7].ToNumber().FloatValue();
  o.beta2 = info[8].ToNumber().FloatValue();
  o.eps = info[9].ToNumber().FloatValue();
  o.weight_decay = info[10].ToNumber().FloatValue();
  if (p.failed) return info.Env().Undefined();
  return Run(info, mode, [=]() mutable { return grip_adamw(&param, &grad, &m, &v, &o); });
}

Napi::Value Matmul(const Napi::CallbackInfo& info) {
  const int mode = Mode(info), backend = mode & 3;
  Parser p{info.Env()};
  grip_tensor a = p.Tensor(info[1], "a", backend);
  grip_tensor b = p.Tensor(info[2], "b", backend);
  const int trans_b = info[3].ToBoolean().Value() ? 1 : 0;
  grip_tensor out = p.Tensor(info[4], "out", backend);
  if (p.failed) return info.Env().Undefined();
  return Run(info, mode, [=]() mutable { return grip_matmul(&a, &b, trans_b, &out); });
}

// ---- transformer ops -----------------------------------------------------------

// An optional tensor argument: null/undefined -> absent (*present false).
grip_tensor OptionalTensor(Parser& p, Napi::Value value, const char* name, int backend, bool* present) {
  *present = !(value.IsNull() || value.IsUndefined());
  return *present ? p.Tensor(value, name, backend) : grip_tensor{};
}

// An optional Int32Array of at least n values: null/undefined -> nullptr.
const int32_t* OptionalHostArray(Parser& p, Napi::Value value, const char* name, size_t n) {
  if (value.IsNull() || value.IsUndefined()) return nullptr;
  return static_cast<const int32_t*>(p.HostArray(value, name, 4 * n));
}

// linear(mode, x, weight, bias | null, out)
Napi::Value Linear(const Napi::CallbackInfo& info) {
  const int mode = Mode(info), backend = mode & 3;
  Parser p{info.Env()};
  grip_tensor x = p.Tensor(info[1], "x", backend);
  grip_tensor weight = p.Tensor(info[2], "weight", backend);
  bool has_bias = false;
  grip_tensor bias = OptionalTensor(p, info[3], "bias", backend, &has_bias);
  grip_tensor out = p.Tensor(info[4], "out", backend);
  if (p.failed) return info.Env().Undefined();
  return Run(info, mode, [=]() mutable {
    return grip_linear(&x, &weight, has_bias ? &bias : nullptr, &out);
  });
}

// layerNorm(mode, x, weight, bias, eps, out)
Napi::Value LayerNorm(const Napi::CallbackInfo& info) {
  const int mode = Mode(info), backend = mode & 3;
  Parser p{info.Env()};
  grip_tensor x = p.Tensor(info[1], "x", backend);
  grip_tensor weight = p.Tensor(info[2], "weight", backend);
  grip_tensor bias = p.Tensor(info[3], "bias", backend);
  const float eps = info[4].ToNumber().FloatValue();
  grip_tensor out = p.Tensor(info[5], "out", backend);
  if (p.failed) return info.Env().Undefined();
  return Run(info, mode, [=]() mutable { return grip_layer_norm(&x, &weight, &bias, eps, &out); });
}

// rmsNorm(mode, x, weight, eps, out)
Napi::Value RmsNorm(const Napi::CallbackInfo& info) {
  const int mode = Mode(info), backend = mode & 3;
  Parser p{info.Env()};
  grip_tensor x = p.Tensor(info[1], "x", backend);
  grip_tensor weight = p.Tensor(info[2], "weight", backend);
  const float eps = info[3].ToNumber().FloatValue();
  grip_tensor out = p.Tensor(info[4], "out", backend);
  if (p.failed) return info.Env().Undefined();
  return Run(info, mode, [=]() mutable { return grip_rms_norm(&x, &weight, eps, &out); });
}

// rope(mode, x, positions, theta, out)
Napi::Value Rope(const Napi::CallbackInfo& info) {
  const int mode = Mode(info), backend = mode & 3;
  Parser p{info.Env()};
  grip_tensor x = p.Tensor(info[1], "x", backend);
  grip_tensor positions = p.Tensor(info[2], "positions", backend);
  const double theta = info[3].ToNumber().DoubleValue();
  grip_tensor out = p.Tensor(info[4], "out", backend);
  if (p.failed) return info.Env().Undefined();
  return Run(info, mode, [=]() mutable { return grip_rope(&x, &positions, theta, &out); });
}

// cacheWrite(mode, cache, src, start: Int32Array, count: Int32Array)
Napi::Value CacheWrite(const Napi::CallbackInfo& info) {
  const int mode = Mode(info), backend = mode & 3;
  Parser p{info.Env()};
  grip_tensor cache = p.Tensor(info[1], "cache", backend);
  grip_tensor src = p.Tensor(info[2], "src", backend);
  const size_t B = (size_t)(cache.ndim ? cache.shape[0] : 0);
  const int32_t* start = static_cast<const int32_t*>(p.HostArray(info[3], "start", 4 * B));
  const int32_t* count = static_cast<const int32_t*>(p.HostArray(info[4], "count", 4 * B));
  if (p.failed) return info.Env().Undefined();
  return Run(info, mode, [=]() mutable { return grip_cache_write(&cache, &src, start, count); });
}

// attention(mode, q, k, v, causal, scale, qLen | null, kvLen | null, probRows | null, out, probs | null)
Napi::Value Attention(const Napi::CallbackInfo& info) {
  const int mode = Mode(info), backend = mode & 3;
  Parser p{info.Env()};
  grip_tensor q = p.Tensor(info[1], "q", backend);
  grip_tensor k = p.Tensor(info[2], "k", backend);
  grip_tensor v = p.Tensor(info[3], "v", backend);
  grip_attention_options o{};
  o.causal = info[4].ToBoolean().Value() ? 1 : 0;
  o.scale = info[5].ToNumber().FloatValue();
  const size_t B = (size_t)(q.ndim ? q.shape[0] : 0);
  o.q_len = OptionalHostArray(p, info[6], "qLen", B);
  o.kv_len = OptionalHostArray(p, info[7], "kvLen", B);
  if (!info[8].IsNull() && !info[8].IsUndefined()) {
    o.prob_rows = OptionalHostArray(p, info[8], "probRows", 0);
    if (!p.failed) o.num_prob_rows = (int32_t)info[8].As<Napi::TypedArray>().ElementLength();
  }
  grip_tensor out = p.Tensor(info[9], "out", backend);
  bool has_probs = false;
  grip_tensor probs = OptionalTensor(p, info[10], "probs", backend, &has_probs);
  if (p.failed) return info.Env().Undefined();
  return Run(info, mode, [=]() mutable {
    return grip_attention(&q, &k, &v, &o, &out, has_probs ? &probs : nullptr);
  });
}

// gelu(mode, x, kind: 0 erf | 1 tanh | 2 quick, out)
Napi::Value Gelu(const Napi::CallbackInfo& info) {
  const int mode = Mode(info), backend = mode & 3;
  Parser p{info.Env()};
  grip_tensor x = p.Tensor(info[1], "x", backend);
  const grip_gelu_kind kind = (grip_gelu_kind)info[2].ToNumber().Int32Value();
  grip_tensor out = p.Tensor(info[3], "out", backend);
  if (p.failed) return info.Env().Undefined();
  return Run(info, mode, [=]() mutable { return grip_gelu(&x, kind, &out); });
}

Napi::Value SiluMul(const Napi::CallbackInfo& info) {
  static const char* const names[] = {"gate", "up", "out"};
  return TensorOp(info, names, [](std::array<grip_tensor, 3>& t) {
    return grip_silu_mul(&t[0], &t[1], &t[2]);
  });
}

Napi::Value Add(const Napi::CallbackInfo& info) {
  static const char* const names[] = {"a", "b", "out"};
  return TensorOp(info, names, [](std::array<grip_tensor, 3>& t) { return grip_add(&t[0], &t[1], &t[2]); });
}

// softmax(mode, x, log: boolean, out)
Napi::Value Softmax(const Napi::CallbackInfo& info) {
  const int mode = Mode(info), backend = mode & 3;
  Parser p{info.Env()};
  grip_tensor x = p.Tensor(info[1], "x", backend);
  const int log = info[2].ToBoolean().Value() ? 1 : 0;
  grip_tensor out = p.Tensor(info[3], "out", backend);
  if (p.failed) return info.Env().Undefined();
  return Run(info, mode, [=]() mutable { return grip_softmax(&x, log, &out); });
}

Napi::Value Embedding(const Napi::CallbackInfo& info) {
  static const char* const names[] = {"table", "ids", "out"};
  return TensorOp(info, names, [](std::array<grip_tensor, 3>& t) {
    return grip_embedding(&t[0], &t[1], &t[2]);
  });
}

// ---- library-level functions ------------------------------------------------

Napi::Value Init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info[0].IsFunction()) {
    EnvData* data = env.GetInstanceData<EnvData>();
    if (data == nullptr) {
      data = new EnvData();
      env.SetInstanceData(data);  // deleted by N-API when this env is torn down
    }
    data->grip_error = Napi::Persistent(info[0].As<Napi::Function>());
  }
  return env.Undefined();
}

// memoryStats(): what the addon holds natively now, process-wide.
Napi::Value MemoryStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("deviceBytes", Napi::Number::New(env, (double)g_device_bytes.load()));
  o.Set("deviceBuffers", Napi::Number::New(env, (double)g_device_buffers.load()));
  o.Set("pendingOps", Napi::Number::New(env, (double)g_pending_ops.load()));
  // The C heap of the whole process (every library in it, sharp's libvips
  // too), where glibc can say: bytes in use, and bytes free but kept.
  double in_use = -1, free_kept = -1;
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
  const struct mallinfo2 mi = mallinfo2();
  in_use = (double)(mi.uordblks + mi.hblkhd);
  free_kept = (double)mi.fordblks;
#endif
  o.Set("mallocInUseBytes", Napi::Number::New(env, in_use));
  o.Set("mallocFreeBytes", Napi::Number::New(env, free_kept));
  return o;
}

Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("version", grip_version());
  o.Set("simd", grip_simd());
  o.Set("threads", grip_num_threads());
  o.Set("cudaCompiled", Napi::Boolean::New(env, grip_cuda_compiled() != 0));
  o.Set("cudaDevices", grip_cuda_device_count());
  return o;
}

Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  const grip_status status = grip_set_num_threads(info[0].ToNumber().Int32Value());
  if (status != GRIP_OK) ThrowGripError(info.Env(), CodeName(status), grip_last_error());
  return info.Env().Undefined();
}

Napi::Value EmuSetSchedule(const Napi::CallbackInfo& info) {
  bool lossless = true;
  const grip_status status = grip_emu_set_schedule(info[0].ToNumber().Int32Value(),
                                                   info[1].As<Napi::BigInt>().Uint64Value(&lossless));
  if (status != GRIP_OK) ThrowGripError(info.Env(), CodeName(status), grip_last_error());
  return info.Env().Undefined();
}

Napi::Value CudaAlloc(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const double bytes = info[0].ToNumber().DoubleValue();
  auto buffer = std::make_unique<DeviceBuffer>();
  const grip_status status = grip_cuda_malloc((size_t)bytes, &buffer->ptr);
  if (status != GRIP_OK) {
    buffer->ptr = nullptr;  // nothing counted, nothing to free
    ThrowGripError(env, CodeName(status), grip_last_error());
    return env.Undefined();
  }
  buffer->bytes = (size_t)bytes;
  if (buffer->ptr != nullptr) {  // counted as Free() uncounts it
    g_device_bytes += (int64_t)bytes;
    g_device_buffers += 1;
  }
  return Napi::External<DeviceBuffer>::New(env, buffer.release(),
                                           [](Napi::Env, DeviceBuffer* b) { delete b; });
}

Napi::Value CudaFree(const Napi::CallbackInfo& info) {
  if (info[0].IsExternal()) {
    info[0].As<Napi::External<DeviceBuffer>>().Data()->Free();
  }
  return info.Env().Undefined();
}

// cudaCopy(handle, typedArray, toDevice: boolean)
Napi::Value CudaCopy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  DeviceBuffer* b = info[0].As<Napi::External<DeviceBuffer>>().Data();
  Napi::TypedArray array = info[1].As<Napi::TypedArray>();
  void* host = static_cast<uint8_t*>(array.ArrayBuffer().Data()) + array.ByteOffset();
  const size_t bytes = array.ByteLength();
  if (b->ptr == nullptr || bytes > b->bytes) {
    ThrowGripError(env, "ERR_GRIP_DEVICE", "expected a live device buffer of at least " +
                                                std::to_string(bytes) + " bytes for copy but received " +
                                                (b->ptr ? std::to_string(b->bytes) + " bytes" : "a disposed one"));
    return env.Undefined();
  }
  const grip_status status = info[2].ToBoolean().Value()
                                 ? grip_cuda_memcpy_to_device(b->ptr, host, bytes)
                                 : grip_cuda_memcpy_to_host(host, b->ptr, bytes);
  if (status != GRIP_OK) ThrowGripError(env, CodeName(status), grip_last_error());
  return env.Undefined();
}

Napi::Object Register(Napi::Env env, Napi::Object exports) {
  exports.Set("init", Napi::Function::New(env, Init));
  exports.Set("info", Napi::Function::New(env, Info));
  exports.Set("memoryStats", Napi::Function::New(env, MemoryStats));
  exports.Set("setNumThreads", Napi::Function::New(env, SetNumThreads));
  exports.Set("emuSetSchedule", Napi::Function::New(env, EmuSetSchedule));
  exports.Set("cudaAlloc", Napi::Function::New(env, CudaAlloc));
  exports.Set("cudaFree", Napi::Function::New(env, CudaFree));
  exports.Set("cudaCopy", Napi::Function::New(env, CudaCopy));
  exports.Set("scoreTokens", Napi::Function::New(env, ScoreTokens));
  exports.Set("scoreTokensBackward", Napi::Function::New(env, ScoreTokensBackward));
  exports.Set("topk", Napi::Function::New(env, Topk));
  exports.Set("gumbelTopk", Napi::Function::New(env, GumbelTopk));
  exports.Set("plackettLuceLogProb", Napi::Function::New(env, PlackettLuceLogProb));
  exports.Set("plackettLuceBackward", Napi::Function::New(env, PlackettLuceBackward));
  exports.Set("gatherRows", Napi::Function::New(env, GatherRows));
  exports.Set("compactKV", Napi::Function::New(env, CompactKV));
  exports.Set("compactKVInPlace", Napi::Function::New(env, CompactKVInPlace));
  exports.Set("adamw", Napi::Function::New(env, AdamW));
  exports.Set("matmul", Napi::Function::New(env, Matmul));
  exports.Set("linear", Napi::Function::New(env, Linear));
  exports.Set("layerNorm", Napi::Function::New(env, LayerNorm));
  exports.Set("rmsNorm", Napi::Function::New(env, RmsNorm));
  exports.Set("rope", Napi::Function::New(env, Rope));
  exports.Set("cacheWrite", Napi::Function::New(env, CacheWrite));
  exports.Set("attention", Napi::Function::New(env, Attention));
  exports.Set("gelu", Napi::Function::New(env, Gelu));
  exports.Set("siluMul", Napi::Function::New(env, SiluMul));
  exports.Set("add", Napi::Function::New(env, Add));
  exports.Set("softmax", Napi::Function::New(env, Softmax));
  exports.Set("embedding", Napi::Function::New(env, Embedding));
  return exports;
}

}  // namespace

NODE_API_MODULE(grip, Register)
