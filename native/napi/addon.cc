// addon.cc — the Node binding: turns JS tensors (TypedArrays, or device
// buffers for CUDA) into grip_tensor views without copying, calls the C ABI
// synchronously or on a libuv worker (Promise), and turns a grip_status into
// a GripError. No business logic: lib/ validates, native computes.
// Built with node-addon-api's C++ exceptions (CMakeLists.txt says why): a
// failed N-API step throws Napi::Error, which its callback wrapper turns
// into the pending JS exception, so nothing here runs on an empty value.
#include <napi.h>

#include <array>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
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
std::atomic<int64_t> g_decoder_plans{0};
std::atomic<int64_t> g_heap_trims{0};
std::atomic<int64_t> g_decoder_workspace_bytes{0};

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

// Externals carry a type tag (napi_type_tag_object): a device buffer's handle
// and a decoder plan are both externals, and one must never be read as the other.
const napi_type_tag kDeviceBufferTag = {0x6772697064657631ULL, 0x6275666665720001ULL};
const napi_type_tag kDecoderPlanTag = {0x6772697064656331ULL, 0x706c616e00000001ULL};

bool HasTag(Napi::Value value, const napi_type_tag& tag) {
  bool tagged = false;
  if (!value.IsExternal() || napi_check_object_type_tag(value.Env(), value, &tag, &tagged) != napi_ok) return false;
  return tagged;
}

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

// What a wrong argument was, for messages (no coercion, so nothing can throw).
std::string Describe(Napi::Value value) {
  if (value.IsEmpty() || value.IsUndefined()) return "undefined";
  if (value.IsNull()) return "null";
  if (value.IsNumber()) {
    const double d = value.As<Napi::Number>().DoubleValue();
    if (d > -1e15 && d < 1e15 && d == (double)(int64_t)d) return "number " + std::to_string((int64_t)d);
    if (std::isnan(d)) return "number NaN";
    if (std::isinf(d)) return d > 0 ? "number Infinity" : "number -Infinity";
    char text[32];
    snprintf(text, sizeof text, "%.17g", d);
    return std::string("number ") + text;
  }
  if (value.IsBoolean()) return value.As<Napi::Boolean>().Value() ? "boolean true" : "boolean false";
  if (value.IsString()) return "a string";
  if (value.IsBigInt()) return "a bigint";
  if (value.IsSymbol()) return "a symbol";
  if (value.IsFunction()) return "a function";
  if (value.IsTypedArray()) return "a TypedArray";
  if (value.IsArray()) return "an array";
  if (value.IsExternal()) return "an external";
  return "an object";
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
    const std::string dtype = ShortString(Get(obj, "dtype"));
    if (failed) return t;
    if (dtype == "f32") t.dtype = GRIP_F32;
    else if (dtype == "f16") t.dtype = GRIP_F16;
    else if (dtype == "bf16") t.dtype = GRIP_BF16;
    else if (dtype == "i32") t.dtype = GRIP_I32;
    else if (dtype == "q8_0") t.dtype = GRIP_Q8_0;
    else {
      Fail("ERR_GRIP_DTYPE", "expected f32, f16, bf16, i32 or q8_0 for dtype of " + std::string(name) +
                                 " but received " + dtype);
      return t;
    }
    Napi::Value shape_value = Get(obj, "shape");
    if (failed) return t;
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
    // Extents are checked here, not only in the C ABI: the byte count below
    // must not wrap around (a wrapped count would accept a short buffer).
    // Counted in elements (q8_0 has no whole bytes per value): the bytes follow from grip_storage_bytes.
    size_t count = 1;
    bool overflow = false;
    for (uint32_t i = 0; i < shape.Length(); ++i) {
      Napi::Value extent = shape.Get(i);
      if (env.IsExceptionPending()) return Pending(t);
      const double d = extent.IsNumber() ? extent.As<Napi::Number>().DoubleValue() : -1;
      if (!(d >= 0 && d <= 2147483647.0 && d == (double)(int64_t)d)) {
        Fail("ERR_GRIP_SHAPE", "expected extents in [0, 2147483647] for shape of " + std::string(name) +
                                   " but received " + Describe(extent) + " at [" + std::to_string(i) + "]");
        return t;
      }
      t.shape[i] = (int64_t)d;
      size_t next = 0;
      if (__builtin_mul_overflow(count, (size_t)t.shape[i], &next)) overflow = true;
      count = next;
    }
    size_t whole = 0;  // q8_0: 34 bytes per 32 values
    if (!overflow) overflow = t.dtype == GRIP_Q8_0 ? count / 32 > SIZE_MAX / 34
                                                   : __builtin_mul_overflow(count, grip_dtype_size(t.dtype), &whole);
    if (overflow) {
      Fail("ERR_GRIP_SHAPE", "expected a size that fits in memory for shape of " + std::string(name) +
                                 " but received more than 2^64 bytes");
      return t;
    }
    const size_t bytes = grip_storage_bytes(t.dtype, (int64_t)count);
    Napi::Value data = Get(obj, "data");
    if (failed) return t;
    const std::string device = ShortString(Get(obj, "device"));
    if (failed) return t;
    if (device == "cuda") {
      t.device = GRIP_DEVICE_CUDA;
      Napi::Value handle = data.IsObject() ? Get(data.As<Napi::Object>(), "handle") : data;
      if (failed) return t;
      if (!HasTag(handle, kDeviceBufferTag)) {
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
    auto field = [&](const char* key) {
      Napi::Value v = Get(o, key);
      return failed ? grip_tensor{} : Tensor(v, (pre + key).c_str(), backend);
    };
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

  // An Int32Array of at least min_bytes (another element type would make the
  // op read past its end: its length counts elements, not int32 values).
  void* HostArray(Napi::Value value, const char* name, size_t min_bytes) {
    if (failed) return nullptr;
    if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
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

  // A property read; a getter that throws leaves its exception pending, and
  // nothing else may touch N-API then (node-addon-api aborts on a failed
  // call with an exception pending).
  Napi::Value Get(Napi::Object obj, const char* key) {
    if (failed) return env.Undefined();
    Napi::Value v = obj.Get(key);
    if (env.IsExceptionPending() || v.IsEmpty()) {
      failed = true;
      return env.Undefined();
    }
    return v;
  }

  grip_tensor Pending(grip_tensor t) {
    failed = true;
    return t;
  }

  // A JS number (no coercion: ToNumber on a Symbol or an object with a
  // throwing valueOf would leave an exception pending).
  double Number(Napi::Value value, const char* name) {
    if (failed) return 0;
    if (!value.IsNumber()) {
      Fail("ERR_GRIP_RANGE", std::string("expected a number for ") + name + " but received " + Describe(value));
      return 0;
    }
    return value.As<Napi::Number>().DoubleValue();
  }

  // An integer number in [lo, hi].
  int64_t Integer(Napi::Value value, const char* name, double lo, double hi) {
    const double d = Number(value, name);
    if (failed) return 0;
    if (!(d >= lo && d <= hi && d == (double)(int64_t)d)) {
      Fail("ERR_GRIP_RANGE", "expected an integer in [" + std::to_string((int64_t)lo) + ", " +
                                 std::to_string((int64_t)hi) + "] for " + name + " but received " + Describe(value));
      return 0;
    }
    return (int64_t)d;
  }

  // A BigInt in [0, 2^64).
  uint64_t Uint64(Napi::Value value, const char* name) {
    if (failed) return 0;
    bool lossless = false;
    uint64_t result = 0;
    if (value.IsBigInt()) {
      int sign = 0;
      size_t words = 1;
      napi_get_value_bigint_words(env, value, &sign, &words, &result);
      lossless = sign == 0 && words <= 1;
    }
    if (!lossless) {
      Fail("ERR_GRIP_RANGE", std::string("expected a BigInt in [0, 2^64) for ") + name + " but received " + Describe(value));
      return 0;
    }
    return result;
  }

  // The backend mode, info[0]: 0 cpu, 1 cuda, 2 emu, | 4 async.
  int Mode(Napi::Value value) {
    const int64_t mode = Integer(value, "mode", 0, 6);
    if (!failed && (mode & 3) == 3) {
      Fail("ERR_GRIP_RANGE", "expected 0 (cpu), 1 (cuda) or 2 (emu), | 4 when async, for mode but received " +
                                 std::to_string(mode));
    }
    return (int)mode;
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
  Parser p{info.Env()};
  const int mode = p.Mode(info[0]), backend = mode & 3;
  ScorerInputs in = ParseScorerInputs(p, info, backend);
  grip_tensor scores = p.Tensor(info[5], "scores", backend);
  if (p.failed) return info.Env().Undefined();
  return Run(info, mode, [=]() mutable {
    return grip_score_tokens(&in.x, &in.query, &in.ratio, &in.params, &scores);
  });
}

Napi::Value ScoreTokensBackward(const Napi::CallbackInfo& info) {
  Parser p{info.Env()};
  const int mode = p.Mode(info[0]), backend = mode & 3;
  ScorerInputs in = ParseScorerInputs(p, info, backend);
  grip_tensor d_scores = p.Tensor(info[5], "dScores", backend);
  grip_scorer_params grads = p.Params(info[6], "grads", backend);
  if (p.failed) return info.Env().Undefined();
  return Run(info, mode, [=]() mutable {
    return grip_score_tokens_backward(&in.x, &in.query, &in.ratio, &in.params, &d_scores, &grads);
  });
}

Napi::Value Topk(const Napi::CallbackInfo& info) {
  Parser p{info.Env()};
  const int mode = p.Mode(info[0]), backend = mode & 3;
  grip_tensor scores = p.Tensor(info[1], "scores", backend);
  const int32_t* k = static_cast<const int32_t*>(p.HostArray(info[2], "k", 4 * (size_t)(scores.ndim ? scores.shape[0] : 0)));
  grip_tensor indices = p.Tensor(info[3], "indices", backend);
  grip_tensor values = p.Tensor(info[4], "values", backend);
  if (p.failed) return info.Env().Undefined();
  return Run(info, mode, [=]() mutable { return grip_topk(&scores, k, &indices, &values); });
}

Napi::Value GumbelTopk(const Napi::CallbackInfo& info) {
  Parser p{info.Env()};
  const int mode = p.Mode(info[0]), backend = mode & 3;
  grip_tensor logits = p.Tensor(info[1], "logits", backend);
  const int32_t k = (int32_t)p.Integer(info[2], "k", INT32_MIN, INT32_MAX);
  const int32_t samples = (int32_t)p.Integer(info[3], "samples", INT32_MIN, INT32_MAX);
  const uint64_t seed = p.Uint64(info[4], "seed");
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
  Parser p{info.Env()};
  const int mode = p.Mode(info[0]), backend = mode & 3;
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
  Parser p{info.Env()};
  const int mode = p.Mode(info[0]), backend = mode & 3;
  grip_tensor cache = p.Tensor(info[1], "cache", backend);
  grip_tensor keep = p.Tensor(info[2], "keep", backend);
  int32_t* lengths = static_cast<int32_t*>(
      p.HostArray(info[3], "newLengths", 4 * (size_t)(cache.ndim ? cache.shape[0] : 0)));
  if (p.failed) return info.Env().Undefined();
  return Run(info, mode, [=]() mutable { return grip_compact_kv_inplace(&cache, &keep, lengths); });
}

Napi::Value AdamW(const Napi::CallbackInfo& info) {
  Parser p{info.Env()};
  const int mode = p.Mode(info[0]), backend = mode & 3;
  grip_tensor param = p.Tensor(info[1], "param", backend);
  grip_tensor grad = p.Tensor(info[2], "grad", backend);
  grip_tensor m = p.Tensor(info[3], "m", backend);
  grip_tensor v = p.Tensor(info[4], "v", backend);
  grip_adamw_options o{};
  o.step = p.Integer(info[5], "step", -9007199254740991.0, 9007199254740991.0);
  o.lr = (float)p.Number(info[6], "lr");
  o.beta1 = (float)p.Number(info[7], "beta1");
  o.beta2 = (float)p.Number(info[8], "beta2");
  o.eps = (float)p.Number(info[9], "eps");
  o.weight_decay = (float)p.Number(info[10], "weightDecay");
  if (p.failed) return info.Env().Undefined();
  return Run(info, mode, [=]() mutable { return grip_adamw(&param, &grad, &m, &v, &o); });
}

Napi::Value Matmul(const Napi::CallbackInfo& info) {
  Parser p{info.Env()};
  const int mode = p.Mode(info[0]), backend = mode & 3;
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
  return *present && !p.failed ? p.Tensor(value, name, backend) : grip_tensor{};
}

// An optional Int32Array of at least n values: null/undefined -> nullptr.
const int32_t* OptionalHostArray(Parser& p, Napi::Value value, const char* name, size_t n) {
  if (p.failed || value.IsNull() || value.IsUndefined()) return nullptr;
  return static_cast<const int32_t*>(p.HostArray(value, name, 4 * n));
}

// linear(mode, x, weight, bias | null, out)
Napi::Value Linear(const Napi::CallbackInfo& info) {
  Parser p{info.Env()};
  const int mode = p.Mode(info[0]), backend = mode & 3;
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

// quantizeQ8_0(mode, x, out)
Napi::Value QuantizeQ8_0(const Napi::CallbackInfo& info) {
  Parser p{info.Env()};
  const int mode = p.Mode(info[0]), backend = mode & 3;
  grip_tensor x = p.Tensor(info[1], "x", backend);
  grip_tensor out = p.Tensor(info[2], "out", backend);
  if (p.failed) return info.Env().Undefined();
  return Run(info, mode, [=]() mutable { return grip_quantize_q8_0(&x, &out); });
}

// layerNorm(mode, x, weight, bias, eps, out)
Napi::Value LayerNorm(const Napi::CallbackInfo& info) {
  Parser p{info.Env()};
  const int mode = p.Mode(info[0]), backend = mode & 3;
  grip_tensor x = p.Tensor(info[1], "x", backend);
  grip_tensor weight = p.Tensor(info[2], "weight", backend);
  grip_tensor bias = p.Tensor(info[3], "bias", backend);
  const float eps = (float)p.Number(info[4], "eps");
  grip_tensor out = p.Tensor(info[5], "out", backend);
  if (p.failed) return info.Env().Undefined();
  return Run(info, mode, [=]() mutable { return grip_layer_norm(&x, &weight, &bias, eps, &out); });
}

// rmsNorm(mode, x, weight, eps, out)
Napi::Value RmsNorm(const Napi::CallbackInfo& info) {
  Parser p{info.Env()};
  const int mode = p.Mode(info[0]), backend = mode & 3;
  grip_tensor x = p.Tensor(info[1], "x", backend);
  grip_tensor weight = p.Tensor(info[2], "weight", backend);
  const float eps = (float)p.Number(info[3], "eps");
  grip_tensor out = p.Tensor(info[4], "out", backend);
  if (p.failed) return info.Env().Undefined();
  return Run(info, mode, [=]() mutable { return grip_rms_norm(&x, &weight, eps, &out); });
}

// rope(mode, x, positions, theta, out)
Napi::Value Rope(const Napi::CallbackInfo& info) {
  Parser p{info.Env()};
  const int mode = p.Mode(info[0]), backend = mode & 3;
  grip_tensor x = p.Tensor(info[1], "x", backend);
  grip_tensor positions = p.Tensor(info[2], "positions", backend);
  const double theta = p.Number(info[3], "theta");
  grip_tensor out = p.Tensor(info[4], "out", backend);
  if (p.failed) return info.Env().Undefined();
  return Run(info, mode, [=]() mutable { return grip_rope(&x, &positions, theta, &out); });
}

// cacheWrite(mode, cache, src, start: Int32Array, count: Int32Array)
Napi::Value CacheWrite(const Napi::CallbackInfo& info) {
  Parser p{info.Env()};
  const int mode = p.Mode(info[0]), backend = mode & 3;
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
  Parser p{info.Env()};
  const int mode = p.Mode(info[0]), backend = mode & 3;
  grip_tensor q = p.Tensor(info[1], "q", backend);
  grip_tensor k = p.Tensor(info[2], "k", backend);
  grip_tensor v = p.Tensor(info[3], "v", backend);
  grip_attention_options o{};
  o.causal = info[4].ToBoolean().Value() ? 1 : 0;
  o.scale = (float)p.Number(info[5], "scale");
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
  Parser p{info.Env()};
  const int mode = p.Mode(info[0]), backend = mode & 3;
  grip_tensor x = p.Tensor(info[1], "x", backend);
  const grip_gelu_kind kind = (grip_gelu_kind)p.Integer(info[2], "kind", INT32_MIN, INT32_MAX);
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
  Parser p{info.Env()};
  const int mode = p.Mode(info[0]), backend = mode & 3;
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

// releaseMemory(async): hands the C heap's free pages back to the system
// (glibc malloc_trim: every arena, free chunks inside the heap too). Without
// it glibc keeps what a generation's buffers freed, and RSS drifts up by the
// size of past bursts (docs/hardening.md). Sync: true when pages were
// released. Async (a Promise): on a libuv worker, as the trim walks the
// whole heap (~1 ms, up to 5 ms seen) and must not hold the event loop.
bool TrimHeap() {
  g_heap_trims += 1;
#if defined(__GLIBC__)
  return malloc_trim(0) != 0;
#else
  return false;
#endif
}

// Not an op: not counted in pendingOps, and it holds no JS values.
class TrimWorker : public Napi::AsyncWorker {
 public:
  explicit TrimWorker(Napi::Env env) : Napi::AsyncWorker(env, "grip:trim") {
    napi_create_promise(env, &deferred_, &promise_);
  }
  Napi::Promise Promise() { return Napi::Promise(Env(), promise_); }
  void Execute() override { TrimHeap(); }
  void OnOK() override {
    napi_value undefined;
    if (napi_get_undefined(Env(), &undefined) == napi_ok) napi_resolve_deferred(Env(), deferred_, undefined);
  }
  void OnError(const Napi::Error& e) override { napi_reject_deferred(Env(), deferred_, e.Value()); }

 private:
  napi_deferred deferred_ = nullptr;
  napi_value promise_ = nullptr;
};

Napi::Value ReleaseMemory(const Napi::CallbackInfo& info) {
  if (info[0].ToBoolean().Value()) {
    TrimWorker* worker = new TrimWorker(info.Env());
    Napi::Promise promise = worker->Promise();
    worker->Queue();
    return promise;
  }
  return Napi::Boolean::New(info.Env(), TrimHeap());
}

// memoryStats(): what the addon holds natively now, process-wide.
Napi::Value MemoryStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("deviceBytes", Napi::Number::New(env, (double)g_device_bytes.load()));
  o.Set("deviceBuffers", Napi::Number::New(env, (double)g_device_buffers.load()));
  o.Set("pendingOps", Napi::Number::New(env, (double)g_pending_ops.load()));
  o.Set("heapTrims", Napi::Number::New(env, (double)g_heap_trims.load()));
  o.Set("decoderPlans", Napi::Number::New(env, (double)g_decoder_plans.load()));
  o.Set("decoderWorkspaceBytes", Napi::Number::New(env, (double)g_decoder_workspace_bytes.load()));
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
  o.Set("q8Kernel", grip_q8_0_kernel());
  o.Set("threads", grip_num_threads());
  o.Set("cudaCompiled", Napi::Boolean::New(env, grip_cuda_compiled() != 0));
  o.Set("cudaDevices", grip_cuda_device_count());
  return o;
}

// cudaMemInfo(): { freeBytes, totalBytes } of the current device as the
// driver reports them; throws the C ABI's GripError without a GPU.
Napi::Value CudaMemInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t free_bytes = 0, total_bytes = 0;
  const grip_status status = grip_cuda_mem_info(&free_bytes, &total_bytes);
  if (status != GRIP_OK) {
    ThrowGripError(env, CodeName(status), grip_last_error());
    return env.Undefined();
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("freeBytes", Napi::Number::New(env, (double)free_bytes));
  o.Set("totalBytes", Napi::Number::New(env, (double)total_bytes));
  return o;
}

Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  Parser p{info.Env()};
  const int64_t n = p.Integer(info[0], "threads", INT32_MIN, INT32_MAX);
  if (p.failed) return info.Env().Undefined();
  const grip_status status = grip_set_num_threads((int)n);
  if (status != GRIP_OK) ThrowGripError(info.Env(), CodeName(status), grip_last_error());
  return info.Env().Undefined();
}

Napi::Value EmuSetSchedule(const Napi::CallbackInfo& info) {
  Parser p{info.Env()};
  const int64_t schedule = p.Integer(info[0], "schedule", INT32_MIN, INT32_MAX);
  const uint64_t seed = p.Uint64(info[1], "seed");
  if (p.failed) return info.Env().Undefined();
  const grip_status status = grip_emu_set_schedule((int)schedule, seed);
  if (status != GRIP_OK) ThrowGripError(info.Env(), CodeName(status), grip_last_error());
  return info.Env().Undefined();
}

Napi::Value CudaAlloc(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Parser p{env};
  const double bytes = (double)p.Integer(info[0], "bytes", 0, 9007199254740991.0);
  if (p.failed) return env.Undefined();
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
  Napi::External<DeviceBuffer> handle =
      Napi::External<DeviceBuffer>::New(env, buffer.release(), [](Napi::Env, DeviceBuffer* b) { delete b; });
  napi_type_tag_object(env, handle, &kDeviceBufferTag);
  return handle;
}

Napi::Value CudaFree(const Napi::CallbackInfo& info) {
  if (HasTag(info[0], kDeviceBufferTag)) {
    info[0].As<Napi::External<DeviceBuffer>>().Data()->Free();
  }
  return info.Env().Undefined();
}

// cudaCopy(handle, typedArray, toDevice: boolean)
Napi::Value CudaCopy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!HasTag(info[0], kDeviceBufferTag) || !info[1].IsTypedArray()) {
    ThrowGripError(env, "ERR_GRIP_DEVICE", std::string("expected a device buffer and a TypedArray for copy but received ") +
                                               Describe(info[0]) + " and " + Describe(info[1]));
    return env.Undefined();
  }
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

// ---- decoder plans (grip_decoder_layers) ------------------------------------------

// A decode plan: the grip_tensor views of a model's decoder layers and of one
// KV cache, parsed once per generation, and the workspace its calls reuse.
// It keeps the JS tensors alive (a reference to the array they came in), so
// a call parses only x, positions and two host arrays.
struct DecoderPlan {
  napi_env env = nullptr;
  napi_ref tensors = nullptr;
  int backend = 0;
  std::vector<grip_decoder_layer> layers;
  grip_decoder_options options{};
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
  std::atomic<bool> busy{false};

  DecoderPlan() { g_decoder_plans += 1; }
  ~DecoderPlan() {
    Release();
    g_decoder_plans -= 1;
  }
  void FreeWorkspace() {
    std::free(workspace);
    g_decoder_workspace_bytes -= (int64_t)workspace_bytes;
    workspace = nullptr;
    workspace_bytes = 0;
  }
  // Frees the workspace and lets the tensors go (JS thread only).
  void Release() {
    FreeWorkspace();
    layers.clear();
    if (tensors != nullptr) napi_delete_reference(env, tensors);
    tensors = nullptr;
  }
  // A workspace of at least `need` bytes; one much larger is given back
  // rather than held for the whole generation.
  bool Reserve(size_t need) {
    if (need <= workspace_bytes && need * 4 >= workspace_bytes) return true;
    FreeWorkspace();
    const size_t bytes = (need + 63) / 64 * 64;
    workspace = bytes == 0 ? nullptr : std::aligned_alloc(64, bytes);
    if (workspace == nullptr && bytes != 0) return false;
    workspace_bytes = bytes;
    g_decoder_workspace_bytes += (int64_t)bytes;
    return true;
  }
};

// The largest workspace a plan keeps between calls (a decode step at 7B
// shapes needs well under 1 MiB per row).
constexpr size_t kKeptWorkspaceBytes = 16u << 20;

const char* const kDecoderTensorNames[] = {"inputNorm", "postNorm", "q", "k", "v", "o", "gate", "up", "down",
                                           "qBias", "kBias", "vBias", "keys", "values"};

// decoderPlan(mode, layers: { inputNorm, ..., qBias | null, ..., keys, values }[],
//             numHeads, numKvHeads, headDim, intermediateSize, rmsNormEps, ropeTheta) -> plan
Napi::Value DecoderPlanNew(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Parser p{env};
  const int mode = p.Mode(info[0]), backend = mode & 3;
  if (!p.failed && !info[1].IsArray()) p.Fail("ERR_GRIP_SHAPE", "expected an array of layers for layers but received " + Describe(info[1]));
  if (!p.failed && backend == 1) p.Fail("ERR_GRIP_UNSUPPORTED", "expected a cpu or emu backend for a decoder plan but received cuda");
  if (p.failed) return env.Undefined();
  auto plan = std::make_unique<DecoderPlan>();
  plan->env = env;
  plan->backend = backend;
  Napi::Array list = info[1].As<Napi::Array>();
  for (uint32_t l = 0; l < list.Length() && !p.failed; ++l) {
    Napi::Value item = list.Get(l);
    if (env.IsExceptionPending()) return env.Undefined();
    if (!item.IsObject()) {
      p.Fail("ERR_GRIP_SHAPE", "expected a layer object for layers[" + std::to_string(l) + "] but received " + Describe(item));
      break;
    }
    Napi::Object obj = item.As<Napi::Object>();
    grip_tensor t[14]{};
    for (int i = 0; i < 14 && !p.failed; ++i) {
      Napi::Value v = p.Get(obj, kDecoderTensorNames[i]);
      const std::string name = "layers[" + std::to_string(l) + "]." + kDecoderTensorNames[i];
      if (i >= 9 && i < 12 && (v.IsNull() || v.IsUndefined())) continue;  // no bias
      t[i] = p.Tensor(v, name.c_str(), backend);
    }
    plan->layers.push_back(grip_decoder_layer{t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8],
                                              t[9], t[10], t[11], t[12], t[13]});
  }
  grip_decoder_options& o = plan->options;
  o.num_heads = (int32_t)p.Integer(info[2], "numHeads", 1, 65536);
  o.num_kv_heads = (int32_t)p.Integer(info[3], "numKvHeads", 1, 65536);
  o.head_dim = (int32_t)p.Integer(info[4], "headDim", 1, 65536);
  o.intermediate_size = (int32_t)p.Integer(info[5], "intermediateSize", 1, 2147483647.0);
  o.rms_norm_eps = (float)p.Number(info[6], "rmsNormEps");
  o.rope_theta = p.Number(info[7], "ropeTheta");
  if (p.failed) return env.Undefined();
  if (napi_create_reference(env, info[1], 1, &plan->tensors) != napi_ok) {
    ThrowGripError(env, "ERR_GRIP_INTERNAL", "expected a reference to the layers for decoderPlan but received a failure");
    return env.Undefined();
  }
  Napi::External<DecoderPlan> handle =
      Napi::External<DecoderPlan>::New(env, plan.release(), [](Napi::Env, DecoderPlan* plan) { delete plan; });
  napi_type_tag_object(env, handle, &kDecoderPlanTag);
  return handle;
}

DecoderPlan* PlanArg(Parser& p, Napi::Value value) {
  if (p.failed) return nullptr;
  DecoderPlan* plan = HasTag(value, kDecoderPlanTag) ? value.As<Napi::External<DecoderPlan>>().Data() : nullptr;
  if (plan == nullptr) p.Fail("ERR_GRIP_RANGE", "expected a decoder plan for plan but received " + Describe(value));
  else if (plan->tensors == nullptr) p.Fail("ERR_GRIP_RANGE", "expected a live decoder plan for plan but received a freed one");
  else if (plan->busy.load()) p.Fail("ERR_GRIP_RANGE", "expected a decoder plan not in use for plan but received one with a call in flight");
  return p.failed ? nullptr : plan;
}

// decoderRun(mode, plan, x, positions, tokens: Int32Array [B], lengths: Int32Array [(to-from)*B], from, to)
Napi::Value DecoderRun(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Parser p{env};
  const int mode = p.Mode(info[0]), backend = mode & 3;
  DecoderPlan* plan = PlanArg(p, info[1]);
  if (plan != nullptr && plan->backend != backend)
    p.Fail("ERR_GRIP_DEVICE", "expected the backend the plan was made for (" + std::to_string(plan->backend) +
                                  ") for mode but received " + std::to_string(backend));
  grip_tensor x = p.Tensor(info[2], "x", backend);
  grip_tensor positions = p.Tensor(info[3], "positions", backend);
  const int64_t B = x.ndim == 3 ? x.shape[0] : 0;
  const int64_t n = plan ? (int64_t)plan->layers.size() : 0;
  const int64_t from = p.Integer(info[6], "from", 0, (double)n);
  const int64_t to = p.Integer(info[7], "to", (double)from, (double)n);
  const int32_t* tokens = static_cast<const int32_t*>(p.HostArray(info[4], "tokens", 4 * (size_t)B));
  int32_t* lengths = static_cast<int32_t*>(p.HostArray(info[5], "lengths", 4 * (size_t)(B * (to - from))));
  if (!p.failed && x.ndim != 3) p.Fail("ERR_GRIP_SHAPE", "expected a tensor [B,T,D] for x but received " + std::to_string(x.ndim) + " dimensions");
  if (p.failed) return env.Undefined();
  grip_decoder_options o = plan->options;
  o.tokens = tokens;
  o.lengths = lengths;
  const size_t need = grip_decoder_workspace_bytes(x.shape[0] * x.shape[1], x.shape[2], &o);
  if (!plan->Reserve(need)) {
    ThrowGripError(env, "ERR_GRIP_INTERNAL", "expected enough memory for a decoder workspace of " + std::to_string(need) +
                                                 " bytes but received an allocation failure");
    return env.Undefined();
  }
  plan->busy = true;
  const grip_decoder_layer* layers = plan->layers.data() + from;
  const int32_t count = (int32_t)(to - from);
  void* workspace = plan->workspace;
  const size_t bytes = plan->workspace_bytes;
  // Cleared by the call itself (on the worker when async): the plan is
  // referenced by the call's arguments until it settles, so it outlives it.
  return Run(info, mode, [=]() mutable {
    const grip_status status = grip_decoder_layers(&x, &positions, layers, count, &o, workspace, bytes);
    // A prefill-sized workspace is not held between calls (a prepared prompt
    // keeps its cache, and so its plan, for as long as it lives); a decode
    // step's is small and reused.
    if (plan->workspace_bytes > kKeptWorkspaceBytes) plan->FreeWorkspace();
    plan->busy = false;
    return status;
  });
}

// decoderPlanFree(plan): frees the workspace and the tensor references now (the GC would, later).
Napi::Value DecoderPlanFree(const Napi::CallbackInfo& info) {
  Parser p{info.Env()};
  DecoderPlan* plan = PlanArg(p, info[0]);
  if (plan != nullptr) plan->Release();
  return info.Env().Undefined();
}

Napi::Object Register(Napi::Env env, Napi::Object exports) {
  exports.Set("init", Napi::Function::New(env, Init));
  exports.Set("info", Napi::Function::New(env, Info));
  exports.Set("memoryStats", Napi::Function::New(env, MemoryStats));
  exports.Set("releaseMemory", Napi::Function::New(env, ReleaseMemory));
  exports.Set("cudaMemInfo", Napi::Function::New(env, CudaMemInfo));
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
  exports.Set("quantizeQ8_0", Napi::Function::New(env, QuantizeQ8_0));
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
  exports.Set("decoderPlan", Napi::Function::New(env, DecoderPlanNew));
  exports.Set("decoderRun", Napi::Function::New(env, DecoderRun));
  exports.Set("decoderPlanFree", Napi::Function::New(env, DecoderPlanFree));
  return exports;
}

}  // namespace

NODE_API_MODULE(grip, Register)
