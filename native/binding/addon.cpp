// The Node binding: tensors and models as wrapped objects, and one generic
// request path that runs any core algorithm (or a model load) by name on the
// core's request workers. Every exception from the core becomes a rejected
// Promise whose error carries a stable `code`.
//
// Life cycle: all state is per JavaScript environment (the main thread and
// each worker thread), and every message from a compute thread to
// JavaScript goes through the environment's one thread-safe function. That
// function is created before the environment's cleanup hook is added, so the
// hook runs first at teardown: it cancels the environment's requests and
// waits for them to stop touching it, and only then releases it.
#include <napi.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <set>

#include "algorithms.h"
#include "engine/bench.h"
#include "engine/errors.h"
#include "engine/memory.h"
#include "engine/scheduler.h"

namespace {

std::string error_message(const std::exception& e) {
  if (auto* c = dynamic_cast<const c10::Error*>(&e)) return c->what_without_backtrace();
  return e.what();
}

Napi::Error MakeError(Napi::Env env, const std::string& message, const char* code) {
  Napi::Error err = Napi::Error::New(env, message);
  err.Set("code", Napi::String::New(env, code));
  return err;
}

Napi::Error MakeError(Napi::Env env, const std::exception& e) {
  return MakeError(env, error_message(e), tx::error_code_name(tx::code_of(e)));
}

void ThrowError(Napi::Env env, const std::exception& e) { MakeError(env, e).ThrowAsJavaScriptException(); }

// Runs a synchronous entry point: core errors become thrown JavaScript errors with their code.
template <typename F>
Napi::Value Guarded(Napi::Env env, F&& body) {
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    ThrowError(env, e);
    return env.Undefined();
  }
}

// ---- Per-environment state ----------------------------------------------

// A message from a compute thread, delivered on the JavaScript thread; with
// a null env when the environment is gone (then it only frees itself).
struct Message {
  virtual ~Message() = default;
  virtual void deliver(Napi::Env env) = 0;
};

struct EnvState {
  Napi::FunctionReference tensor_ctor, model_ctor;
  napi_threadsafe_function tsfn = nullptr;
  size_t in_flight = 0;  // JavaScript thread only: keeps the loop alive while > 0

  std::mutex mutex;
  std::condition_variable idle;
  size_t running = 0;  // requests that may still post messages
  std::set<std::shared_ptr<tx::CancelToken>> active;
  bool closing = false;

  // Hands `m` to the JavaScript thread; false (and `m` freed) when closing.
  bool post(Message* m) {
    if (napi_call_threadsafe_function(tsfn, m, napi_tsfn_nonblocking) == napi_ok) return true;
    delete m;
    return false;
  }

  // Registers a request; false when the environment is shutting down.
  bool begin(const std::shared_ptr<tx::CancelToken>& token) {
    std::lock_guard<std::mutex> lock(mutex);
    if (closing) return false;
    ++running;
    active.insert(token);
    return true;
  }
  // Called by the compute thread after its last post.
  void end(const std::shared_ptr<tx::CancelToken>& token) {
    std::lock_guard<std::mutex> lock(mutex);
    --running;
    active.erase(token);
    idle.notify_all();
  }

  // Cancels every request and waits until none can post; `limit_ms` < 0
  // waits as long as it takes (requests stop within one chunk). Returns
  // whether all stopped.
  bool close(double limit_ms) {
    std::unique_lock<std::mutex> lock(mutex);
    if (!closing) {
      closing = true;
      for (const auto& t : active) t->cancel("the JavaScript environment is shutting down");
    }
    auto stopped = [this] { return running == 0; };
    if (limit_ms < 0) idle.wait(lock, stopped);
    else if (!idle.wait_for(lock, std::chrono::milliseconds(static_cast<int64_t>(limit_ms)), stopped)) return false;
    if (tsfn) {
      napi_release_threadsafe_function(tsfn, napi_tsfn_abort);
      tsfn = nullptr;
    }
    return true;
  }
};

EnvState& State(Napi::Env env) { return *env.GetInstanceData<EnvState>(); }

void CallJs(napi_env env, napi_value, void*, void* data) {
  std::unique_ptr<Message> m(static_cast<Message*>(data));
  if (env == nullptr) return;  // teardown: free only
  // A terminating environment (worker.terminate(), process.exit()) cannot run
  // JavaScript any more: drop the message.
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) != napi_ok || pending) return;
  Napi::HandleScope scope(env);
  try {
    m->deliver(Napi::Env(env));
  } catch (...) {
    // A message must never throw into Node's queue.
  }
}

// ---- Tensor ---------------------------------------------------------------

class TensorWrap : public Napi::ObjectWrap<TensorWrap> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "NativeTensor",
                       {InstanceAccessor<&TensorWrap::Shape>("shape"), InstanceAccessor<&TensorWrap::DType>("dtype"),
                        InstanceAccessor<&TensorWrap::Device>("device"), InstanceAccessor<&TensorWrap::Disposed>("disposed"),
                        InstanceMethod<&TensorWrap::Data>("data"), InstanceMethod<&TensorWrap::To>("to"),
                        InstanceMethod<&TensorWrap::Dispose>("dispose")});
  }

  static Napi::Object Wrap(Napi::Env env, torch::Tensor t) {
    Napi::Object obj = State(env).tensor_ctor.New({});
    Unwrap(obj)->Set(env, std::move(t));
    return obj;
  }

  static bool Is(Napi::Env env, const Napi::Value& v) {
    return v.IsObject() && v.As<Napi::Object>().InstanceOf(State(env).tensor_ctor.Value());
  }

  // The tensor behind `v`, named `where` in errors.
  static const torch::Tensor& From(Napi::Env env, const Napi::Value& v, const std::string& where) {
    if (!Is(env, v)) tx::fail(where, ": expected a Tensor (make one with tensor())");
    TensorWrap* w = Unwrap(v.As<Napi::Object>());
    if (!w->tensor_.defined()) tx::fail_with(tx::ErrorCode::Disposed, where, ": this Tensor was disposed");
    return w->tensor_;
  }

  explicit TensorWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TensorWrap>(info) {}
  ~TensorWrap() override { Release(); }

 private:
  void Set(Napi::Env env, torch::Tensor t) {
    tensor_ = std::move(t);
    env_ = env;
    // Tell V8 how much native memory this small object holds, so that it
    // collects dropped tensors in time.
    bytes_ = static_cast<int64_t>(tensor_.numel() * tensor_.element_size());
    if (bytes_) Napi::MemoryManagement::AdjustExternalMemory(env, bytes_);
  }
  void Release() {
    if (bytes_ && env_) Napi::MemoryManagement::AdjustExternalMemory(env_, -bytes_);
    bytes_ = 0;
    tensor_ = torch::Tensor();
  }
  const torch::Tensor& Live(Napi::Env env) {
    if (!tensor_.defined()) throw MakeError(env, "tensor: this Tensor was disposed", "ERR_DISPOSED");
    return tensor_;
  }

  Napi::Value Shape(const Napi::CallbackInfo& info) {
    const auto& t = Live(info.Env());
    Napi::Array a = Napi::Array::New(info.Env(), t.dim());
    for (int64_t i = 0; i < t.dim(); ++i) a.Set(static_cast<uint32_t>(i), Napi::Number::New(info.Env(), static_cast<double>(t.size(i))));
    return a;
  }
  Napi::Value DType(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), tx::dtype_str(Live(info.Env()).scalar_type())); }
  Napi::Value Device(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), Live(info.Env()).device().str()); }
  Napi::Value Disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !tensor_.defined()); }
  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    Release();
    return info.Env().Undefined();
  }

  // A row-major copy into a fresh typed array of the matching element type.
  Napi::Value Data(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    torch::Tensor t = Live(env).detach().to(torch::kCPU).contiguous();
    size_t n = static_cast<size_t>(t.numel());
    auto copy = [&](auto tag, napi_typedarray_type type) -> Napi::Value {
      using T = decltype(tag);
      Napi::ArrayBuffer buf = Napi::ArrayBuffer::New(env, n * sizeof(T));
      if (n) std::memcpy(buf.Data(), t.data_ptr(), n * sizeof(T));
      return Napi::TypedArrayOf<T>::New(env, n, buf, 0, type);
    };
    switch (t.scalar_type()) {
      case torch::kFloat: return copy(float{}, napi_float32_array);
      case torch::kDouble: return copy(double{}, napi_float64_array);
      case torch::kLong: return copy(int64_t{}, napi_bigint64_array);
      case torch::kInt: return copy(int32_t{}, napi_int32_array);
      case torch::kBool: case torch::kByte: return copy(uint8_t{}, napi_uint8_array);
      default: {
        t = t.to(torch::kFloat);
        return copy(float{}, napi_float32_array);
      }
    }
  }

  Napi::Value To(const Napi::CallbackInfo& info) {
    return Guarded(info.Env(), [&]() -> Napi::Value {
      if (!info[0].IsString()) tx::fail("device: expected a device name such as 'cpu' or 'cuda:0'");
      return Wrap(info.Env(), Live(info.Env()).to(tx::parse_device(info[0].As<Napi::String>())));
    });
  }

  torch::Tensor tensor_;
  napi_env env_ = nullptr;
  int64_t bytes_ = 0;
};

// tensorFromBuffer(typedArray, shape, dtype): copies the data into a new tensor.
// catRows(tensors): torch.cat along dim 0; sliceRows(t, start, end): a copy
// of rows [start, end). Row batching for the JavaScript-side methods, done
// natively instead of through data() copies.
Napi::Value CatRows(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    if (!info[0].IsArray()) tx::fail("tensors: expected an array of Tensors");
    Napi::Array a = info[0].As<Napi::Array>();
    if (a.Length() == 0) tx::fail("tensors: expected at least one Tensor");
    std::vector<torch::Tensor> list;
    for (uint32_t i = 0; i < a.Length(); ++i) {
      const torch::Tensor& t = TensorWrap::From(env, a.Get(i), "tensors[" + std::to_string(i) + "]");
      if (t.dim() == 0) tx::fail("tensors[", i, "]: expected a batch dimension, got a scalar");
      if (i > 0 && (t.sizes().slice(1) != list[0].sizes().slice(1) || t.scalar_type() != list[0].scalar_type()))
        tx::fail("tensors[", i, "]: a ", tx::dtype_str(t.scalar_type()), " tensor of shape ", tx::shape_str(t.sizes()),
                 " cannot be batched with a ", tx::dtype_str(list[0].scalar_type()), " one of shape ", tx::shape_str(list[0].sizes()),
                 " (dtype and every dimension after the first must agree)");
      list.push_back(t.to(list.empty() ? t.device() : list[0].device()));
    }
    return TensorWrap::Wrap(env, torch::cat(list, 0));
  });
}

Napi::Value SliceRows(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    const torch::Tensor& t = TensorWrap::From(env, info[0], "tensor");
    if (t.dim() == 0) tx::fail("tensor: expected a batch dimension, got a scalar");
    double b = info[1].IsNumber() ? info[1].As<Napi::Number>().DoubleValue() : -1;
    double e = info[2].IsNumber() ? info[2].As<Napi::Number>().DoubleValue() : -1;
    if (!(b >= 0 && e >= b && e <= static_cast<double>(t.size(0))) || b != static_cast<int64_t>(b) || e != static_cast<int64_t>(e))
      tx::fail("rows: expected integers 0 <= start <= end <= ", t.size(0), ", got ", b, " and ", e);
    return TensorWrap::Wrap(env, t.slice(0, static_cast<int64_t>(b), static_cast<int64_t>(e)).clone());
  });
}

Napi::Value TensorFromBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    if (!info[0].IsTypedArray()) tx::fail("data: expected a typed array");
    if (!info[1].IsArray()) tx::fail("shape: expected an array of sizes");
    if (!info[2].IsString()) tx::fail("dtype: expected a dtype name");
    Napi::TypedArray arr = info[0].As<Napi::TypedArray>();
    Napi::Array shape_a = info[1].As<Napi::Array>();
    std::string dtype = info[2].As<Napi::String>();
    if (shape_a.Length() > 64) tx::fail("shape: at most 64 dimensions, got ", shape_a.Length());
    std::vector<int64_t> shape;
    int64_t numel = 1;
    for (uint32_t i = 0; i < shape_a.Length(); ++i) {
      Napi::Value s = shape_a.Get(i);
      double d = s.IsNumber() ? s.As<Napi::Number>().DoubleValue() : -1;
      if (!(d >= 0) || d > 9007199254740991.0 || d != static_cast<double>(static_cast<int64_t>(d)))
        tx::fail("shape[", i, "]: expected a non-negative integer");
      shape.push_back(static_cast<int64_t>(d));
      if (shape.back() && numel > (int64_t{1} << 50) / shape.back()) tx::fail("shape: ", shape.size(), " sizes whose product is too large");
      numel *= shape.back();
    }
    torch::ScalarType st;
    napi_typedarray_type want;
    if (dtype == "float32") st = torch::kFloat, want = napi_float32_array;
    else if (dtype == "float64") st = torch::kDouble, want = napi_float64_array;
    else if (dtype == "int64") st = torch::kLong, want = napi_bigint64_array;
    else if (dtype == "int32") st = torch::kInt, want = napi_int32_array;
    else if (dtype == "bool") st = torch::kBool, want = napi_uint8_array;
    else tx::fail("dtype: expected one of float32, float64, int64, int32, bool; got '", dtype, "'");
    if (arr.TypedArrayType() != want) tx::fail("data: a ", dtype, " tensor needs a matching typed array");
    if (static_cast<int64_t>(arr.ElementLength()) != numel)
      tx::fail_shape("data: ", arr.ElementLength(), " values do not fill shape ", tx::shape_str(shape), " (", numel, " values)");
    auto* base = static_cast<uint8_t*>(arr.ArrayBuffer().Data()) + arr.ByteOffset();
    torch::Tensor t = torch::from_blob(base, shape, torch::TensorOptions().dtype(st)).clone();
    if (st == torch::kBool) t = t.ne(0);  // any non-zero byte is true
    return TensorWrap::Wrap(env, std::move(t));
  });
}

// ---- Model ----------------------------------------------------------------

class ModelWrap : public Napi::ObjectWrap<ModelWrap> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "NativeModel",
                       {InstanceMethod<&ModelWrap::Layers>("layers"), InstanceAccessor<&ModelWrap::Device>("device"),
                        InstanceAccessor<&ModelWrap::Signature>("signature"), InstanceAccessor<&ModelWrap::Disposed>("disposed"),
                        InstanceAccessor<&ModelWrap::MemoryFormat>("memoryFormat"),
                        InstanceMethod<&ModelWrap::Dispose>("dispose"), InstanceMethod<&ModelWrap::Randomized>("randomized")});
  }
  static Napi::Object Wrap(Napi::Env env, std::shared_ptr<tx::Model> m) {
    Napi::Object obj = State(env).model_ctor.New({});
    Unwrap(obj)->model_ = std::move(m);
    return obj;
  }
  static std::shared_ptr<tx::Model> From(Napi::Env env, const Napi::Value& v) {
    if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(State(env).model_ctor.Value()))
      tx::fail("model: expected a Model from loadModel()");
    auto m = Unwrap(v.As<Napi::Object>())->model_;
    if (!m) tx::fail_with(tx::ErrorCode::Disposed, "model: this Model was disposed");
    return m;
  }
  explicit ModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelWrap>(info) {}

 private:
  const tx::Model& Live(Napi::Env env) {
    if (!model_) throw MakeError(env, "model: this Model was disposed", "ERR_DISPOSED");
    return *model_;
  }
  Napi::Value Layers(const Napi::CallbackInfo& info) {
    auto names = Live(info.Env()).layers(info[0].IsBoolean() && info[0].As<Napi::Boolean>().Value());
    Napi::Array a = Napi::Array::New(info.Env(), names.size());
    for (size_t i = 0; i < names.size(); ++i) a.Set(static_cast<uint32_t>(i), names[i]);
    return a;
  }
  // randomized(layers: string[], seed: number): a new NativeModel.
  Napi::Value Randomized(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const tx::Model& m = Live(env);
    if (info.Length() < 2 || !info[0].IsArray() || !info[1].IsNumber())
      throw MakeError(env, "layers: expected an array of layer names and a seed", "ERR_BAD_OPTION");
    Napi::Array a = info[0].As<Napi::Array>();
    std::vector<std::string> names;
    for (uint32_t i = 0; i < a.Length(); ++i) {
      if (!a.Get(i).IsString()) throw MakeError(env, "layers[" + std::to_string(i) + "]: expected a layer name", "ERR_BAD_OPTION");
      names.push_back(a.Get(i).As<Napi::String>());
    }
    double seed = info[1].As<Napi::Number>().DoubleValue();
    try {
      return Wrap(env, m.randomized(names, seed >= 0 && std::isfinite(seed) ? static_cast<uint64_t>(seed) : 0));
    } catch (const std::exception& e) {
      throw MakeError(env, e);
    }
  }
  Napi::Value Device(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), Live(info.Env()).device().str()); }
  Napi::Value Signature(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), Live(info.Env()).signature()); }
  Napi::Value MemoryFormat(const Napi::CallbackInfo& info) {
    switch (Live(info.Env()).memory_format()) {
      case tx::MemoryFormat::ChannelsLast: return Napi::String::New(info.Env(), "channelsLast");
      case tx::MemoryFormat::Contiguous: return Napi::String::New(info.Env(), "contiguous");
      default: return Napi::String::New(info.Env(), "auto");
    }
  }
  Napi::Value Disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !model_); }
  // Requests in flight keep their own reference: they finish normally.
  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    model_.reset();
    return info.Env().Undefined();
  }
  std::shared_ptr<tx::Model> model_;
};

// ---- Requests -------------------------------------------------------------

// One request from JavaScript: its Promise, its cancellation, the
// JavaScript functions it may call, and its outcome.
struct Job {
  EnvState* state = nullptr;
  napi_deferred deferred = nullptr;
  std::shared_ptr<tx::CancelToken> token = std::make_shared<tx::CancelToken>();
  std::vector<napi_ref> functions;  // freed on the JavaScript thread
  std::string error;
  tx::ErrorCode code = tx::ErrorCode::Internal;
  std::function<Napi::Value(Napi::Env)> value;  // set by the work on success
};

// Settles a job's Promise and frees what it held in JavaScript.
struct Settle : Message {
  std::shared_ptr<Job> job;
  explicit Settle(std::shared_ptr<Job> j) : job(std::move(j)) {}
  void deliver(Napi::Env env) override {
    EnvState& s = *job->state;
    for (napi_ref r : job->functions) napi_delete_reference(env, r);
    if (--s.in_flight == 0 && s.tsfn) napi_unref_threadsafe_function(env, s.tsfn);
    napi_value outcome;
    bool ok = job->error.empty();
    if (ok) {
      try {
        outcome = job->value(env);
      } catch (const std::exception& e) {
        ok = false;
        outcome = MakeError(env, e).Value();
      }
    } else {
      outcome = MakeError(env, job->error, tx::error_code_name(job->code)).Value();
    }
    if (ok) napi_resolve_deferred(env, job->deferred, outcome);
    else napi_reject_deferred(env, job->deferred, outcome);
  }
};

// Starts `work` as a request; it runs on a core request worker under the
// job's cancellation token and sets job->value.
Napi::Value Start(Napi::Env env, std::shared_ptr<Job> job, std::function<void(Job&)> work) {
  EnvState& s = State(env);
  job->state = &s;
  napi_value promise;
  napi_create_promise(env, &job->deferred, &promise);
  if (!s.begin(job->token)) {
    for (napi_ref r : job->functions) napi_delete_reference(env, r);
    napi_reject_deferred(env, job->deferred, MakeError(env, "the JavaScript environment is shutting down", "ERR_ABORTED").Value());
    return Napi::Value(env, promise);
  }
  if (s.in_flight++ == 0) napi_ref_threadsafe_function(env, s.tsfn);  // keep the process alive until it settles
  tx::schedule([job, work = std::move(work)] {
    {
      tx::RequestScope scope(job->token);
      try {
        job->token->check();
        work(*job);
      } catch (const std::exception& e) {
        job->error = error_message(e);
        job->code = tx::code_of(e);
      } catch (...) {
        job->error = "unknown native error";
      }
    }
    EnvState* s = job->state;
    s->post(new Settle(job));
    s->end(job->token);
  });
  return Napi::Value(env, promise);
}

// Calls a JavaScript function from a compute thread and waits for its
// answer, checking for cancellation while it waits (the JavaScript thread
// may be busy, or gone).
struct CallState {
  std::mutex mutex;
  std::condition_variable done;
  bool finished = false;
  tx::Value value;
  std::string error;
  bool argument_error = false;
};

tx::Value ToValue(Napi::Env env, const Napi::Value& v, const std::string& where, Job* job, int depth = 0);
Napi::Value FromValue(Napi::Env env, const tx::Value& v);

struct Call : Message {
  napi_ref fn;
  tx::List args;
  std::string where;
  std::shared_ptr<CallState> state;
  void deliver(Napi::Env env) override {
    tx::Value value;
    std::string error;
    bool argument_error = false;
    try {
      napi_value f;
      napi_get_reference_value(env, fn, &f);
      std::vector<napi_value> argv;
      for (const auto& a : args) argv.push_back(FromValue(env, a));
      Napi::Value r = Napi::Function(env, f).Call(argv);
      if (r.IsPromise()) tx::fail(where, ": must return its result synchronously, not a Promise");
      value = ToValue(env, r, where + " result", nullptr);
    } catch (const tx::ArgumentError& e) {
      error = e.what();
      argument_error = true;
    } catch (const std::exception& e) {
      error = tx::concat(where, " threw: ", e.what());
    }
    std::lock_guard<std::mutex> lock(state->mutex);
    state->value = std::move(value);
    state->error = std::move(error);
    state->argument_error = argument_error;
    state->finished = true;
    state->done.notify_all();
  }
};

std::shared_ptr<tx::Callable> Callback(Napi::Env env, Napi::Function fn, const std::string& where, Job* job) {
  if (!job) tx::fail(where, ": a function cannot be passed here");
  napi_ref ref;
  napi_create_reference(env, fn, 1, &ref);
  job->functions.push_back(ref);
  EnvState* s = job->state ? job->state : &State(env);
  return std::make_shared<tx::Callable>([s, ref, where](const tx::List& args) -> tx::Value {
    auto state = std::make_shared<CallState>();
    auto* m = new Call();
    m->fn = ref;
    m->args = args;
    m->where = where;
    m->state = state;
    if (!s->post(m)) tx::fail_with(tx::ErrorCode::Aborted, where, ": the JavaScript environment is shutting down");
    std::unique_lock<std::mutex> lock(state->mutex);
    while (!state->done.wait_for(lock, std::chrono::milliseconds(20), [&] { return state->finished; })) {
      lock.unlock();
      tx::check_cancelled();
      lock.lock();
    }
    if (state->argument_error) tx::fail(state->error);
    if (!state->error.empty()) tx::fail(state->error);
    return state->value;
  });
}

struct ProgressCall : Message {
  napi_ref fn;
  int64_t done, total;
  void deliver(Napi::Env env) override {
    napi_value f, argv[2], r;
    napi_get_reference_value(env, fn, &f);
    napi_create_double(env, static_cast<double>(done), &argv[0]);
    napi_create_double(env, static_cast<double>(total), &argv[1]);
    napi_value undefined;
    napi_get_undefined(env, &undefined);
    // A failing progress callback must not break the attribution.
    if (napi_call_function(env, undefined, f, 2, argv, &r) != napi_ok) {
      napi_value ignored;
      napi_get_and_clear_last_exception(env, &ignored);
    }
  }
};

// ---- Values ---------------------------------------------------------------

tx::Value ToValue(Napi::Env env, const Napi::Value& v, const std::string& where, Job* job, int depth) {
  if (depth > 32) tx::fail(where.empty() ? "options" : where, ": nested too deeply (is there a cycle?)");
  if (v.IsUndefined() || v.IsNull()) return tx::Value::none();
  if (v.IsBoolean()) return tx::Value::of(v.As<Napi::Boolean>().Value());
  if (v.IsNumber()) return tx::Value::of(v.As<Napi::Number>().DoubleValue());
  if (v.IsString()) return tx::Value::of(std::string(v.As<Napi::String>()));
  if (TensorWrap::Is(env, v)) return tx::Value::of(TensorWrap::From(env, v, where));
  if (v.IsArray()) {
    Napi::Array a = v.As<Napi::Array>();
    if (a.Length() > (1u << 24)) tx::fail(where, ": array of ", a.Length(), " entries is too long");
    tx::List list;
    for (uint32_t i = 0; i < a.Length(); ++i) list.push_back(ToValue(env, a.Get(i), where + "[" + std::to_string(i) + "]", job, depth + 1));
    return tx::Value::of(std::move(list));
  }
  if (v.IsFunction()) return tx::Value::of(Callback(env, v.As<Napi::Function>(), where, job));
  if (v.IsObject() && v.As<Napi::Object>().InstanceOf(State(env).model_ctor.Value()))
    return tx::Value::of(std::shared_ptr<const tx::Model>(ModelWrap::From(env, v)));
  if (v.IsObject() && !v.IsTypedArray() && !v.IsArrayBuffer()) {
    Napi::Object o = v.As<Napi::Object>();
    Napi::Array keys = o.GetPropertyNames();
    tx::Object obj;
    for (uint32_t i = 0; i < keys.Length(); ++i) {
      std::string k = keys.Get(i).ToString();
      obj[k] = ToValue(env, o.Get(k), where.empty() ? k : where + "." + k, job, depth + 1);
    }
    return tx::Value::of(std::move(obj));
  }
  tx::fail(where.empty() ? "value" : where, ": unsupported value (expected numbers, strings, booleans, Tensors, arrays or plain objects)");
}

Napi::Value FromValue(Napi::Env env, const tx::Value& v) {
  switch (v.kind) {
    case tx::Value::Kind::Bool: return Napi::Boolean::New(env, v.boolean);
    case tx::Value::Kind::Number: return Napi::Number::New(env, v.number);
    case tx::Value::Kind::String: return Napi::String::New(env, v.string);
    case tx::Value::Kind::Tensor: return TensorWrap::Wrap(env, v.tensor);
    case tx::Value::Kind::List: {
      Napi::Array a = Napi::Array::New(env, v.list->size());
      for (size_t i = 0; i < v.list->size(); ++i) a.Set(static_cast<uint32_t>(i), FromValue(env, (*v.list)[i]));
      return a;
    }
    default: return env.Null();
  }
}

// ---- Entry points ---------------------------------------------------------

// { promise, cancel(reason) }: the caller's handle on a request.
Napi::Value Handle(Napi::Env env, Napi::Value promise, const std::shared_ptr<tx::CancelToken>& token) {
  Napi::Object h = Napi::Object::New(env);
  h.Set("promise", promise);
  h.Set("cancel", Napi::Function::New(env, [token](const Napi::CallbackInfo& info) {
          token->cancel(info[0].IsString() ? std::string(info[0].As<Napi::String>()) : "the caller aborted the request");
        }));
  return h;
}

Napi::Value Rejected(Napi::Env env, const std::exception& e) {
  auto d = Napi::Promise::Deferred::New(env);
  d.Reject(MakeError(env, e).Value());
  Napi::Object h = Napi::Object::New(env);
  h.Set("promise", d.Promise());
  h.Set("cancel", Napi::Function::New(env, [](const Napi::CallbackInfo&) {}));
  return h;
}

// Reads timeoutMs (a request option handled here, where the request starts).
void ApplyTimeout(Napi::Env env, Napi::Object options, Job& job) {
  Napi::Value t = options.Get("timeoutMs");
  if (t.IsUndefined()) return;
  double ms = t.IsNumber() ? t.As<Napi::Number>().DoubleValue() : -1;
  if (!(ms > 0) || !std::isfinite(ms)) tx::fail("timeoutMs: expected a positive number of milliseconds");
  job.token->set_timeout(ms);
  options.Delete("timeoutMs");
  (void)env;
}

// loadModel(path, device, options, memoryFormat, output) -> { promise: Promise<NativeModel>, cancel }
Napi::Value LoadModel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto job = std::make_shared<Job>();
  try {
    if (!info[0].IsString()) tx::fail("path: expected the path of a TorchScript file (a string)");
    std::string path = info[0].As<Napi::String>();
    std::string device = info[1].IsString() ? std::string(info[1].As<Napi::String>()) : "cpu";
    if (info[2].IsObject()) ApplyTimeout(env, info[2].As<Napi::Object>(), *job);
    if (!info[3].IsUndefined() && !info[3].IsString())
      tx::fail("memoryFormat: expected 'auto', 'channelsLast' or 'contiguous'");
    tx::MemoryFormat format = tx::parse_memory_format(info[3].IsString() ? std::string(info[3].As<Napi::String>()) : "auto");
    c10::IValue output;
    if (info[4].IsString()) {
      output = std::string(info[4].As<Napi::String>());
    } else if (info[4].IsNumber()) {
      double v = info[4].As<Napi::Number>().DoubleValue();
      if (!(v >= 0) || v != std::floor(v) || v > 1e9) tx::fail("output: expected an element index (an integer >= 0) or a key, got ", v);
      output = static_cast<int64_t>(v);
    } else if (!info[4].IsUndefined() && !info[4].IsNull()) {
      tx::fail("output: expected an element index (an integer >= 0) or a key (a string)");
    }
    Napi::Value p = Start(env, job, [path, device, format, output](Job& j) {
      auto m = tx::Model::load(path, device, format, output);
      j.value = [m](Napi::Env env) -> Napi::Value { return ModelWrap::Wrap(env, m); };
    });
    return Handle(env, p, job->token);
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    return Rejected(env, e);
  }
}

Napi::Value ResultValue(Napi::Env env, const tx::Result& r) {
  Napi::Object out = Napi::Object::New(env);
  Napi::Array attrs = Napi::Array::New(env, r.attributions.size());
  for (size_t i = 0; i < r.attributions.size(); ++i) attrs.Set(static_cast<uint32_t>(i), TensorWrap::Wrap(env, r.attributions[i]));
  out.Set("attributions", attrs);
  if (r.delta.defined()) out.Set("delta", TensorWrap::Wrap(env, r.delta));
  return out;
}

// run(algorithm, model, inputs, options) -> { promise: Promise<{ attributions, delta? }>, cancel }
Napi::Value Run(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto job = std::make_shared<Job>();
  job->state = &State(env);
  tx::Request req;
  std::string name;
  try {
    if (!info[0].IsString()) tx::fail("algorithm: expected a name");
    name = info[0].As<Napi::String>();
    req.model = ModelWrap::From(env, info[1]);
    if (!info[2].IsArray()) tx::fail("inputs: expected a Tensor or an array of Tensors");
    Napi::Array inputs = info[2].As<Napi::Array>();
    for (uint32_t i = 0; i < inputs.Length(); ++i)
      req.inputs.push_back(TensorWrap::From(env, inputs.Get(i), "inputs[" + std::to_string(i) + "]"));
    if (info[3].IsObject()) {
      Napi::Object o = info[3].As<Napi::Object>();
      ApplyTimeout(env, o, *job);
      // onProgress(done, total) runs on the JavaScript thread, throttled by the core.
      if (o.Get("onProgress").IsFunction()) {
        napi_ref ref;
        napi_create_reference(env, o.Get("onProgress"), 1, &ref);
        job->functions.push_back(ref);
        EnvState* s = job->state;
        req.progress = [s, ref](int64_t done, int64_t total) {
          auto* m = new ProgressCall();
          m->fn = ref;
          m->done = done;
          m->total = total;
          s->post(m);
        };
        o.Delete("onProgress");
      }
    }
    tx::Value opts = ToValue(env, info[3], "", job.get());
    if (!opts.is_none()) {
      if (opts.kind != tx::Value::Kind::Object) tx::fail("options: expected an object");
      req.options = tx::Options(*opts.object);
    }
  } catch (const Napi::Error&) {
    for (napi_ref r : job->functions) napi_delete_reference(env, r);
    throw;
  } catch (const std::exception& e) {
    for (napi_ref r : job->functions) napi_delete_reference(env, r);
    return Rejected(env, e);
  }
  Napi::Value p = Start(env, job, [name, req = std::move(req)](Job& j) {
    auto r = std::make_shared<tx::Result>(tx::run(name, req));
    j.value = [r](Napi::Env env) { return ResultValue(env, *r); };
  });
  return Handle(env, p, job->token);
}

// On libuv's pool: trimming a heap that held a large request takes 20-25 ms,
// which the event loop should not wait for.
class ReleaseMemoryWorker : public Napi::AsyncWorker {
 public:
  ReleaseMemoryWorker(Napi::Env env, Napi::Promise::Deferred deferred) : Napi::AsyncWorker(env), deferred_(deferred) {}
  void Execute() override { tx::release_free_memory(); }
  void OnOK() override { deferred_.Resolve(Env().Undefined()); }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
};

Napi::Value ReleaseMemory(const Napi::CallbackInfo& info) {
  auto deferred = Napi::Promise::Deferred::New(info.Env());
  (new ReleaseMemoryWorker(info.Env(), deferred))->Queue();
  return deferred.Promise();
}

Napi::Value ManualSeed(const Napi::CallbackInfo& info) {
  if (!info[0].IsNumber()) {
    Napi::TypeError::New(info.Env(), "seed: expected a number").ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  torch::manual_seed(static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value()));
  return info.Env().Undefined();
}

// configure({ workers?, threads? }) -> the settings now in force.
Napi::Value Configure(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    tx::SchedulerConfig c;
    if (info[0].IsObject()) {
      Napi::Object o = info[0].As<Napi::Object>();
      auto read = [&](const char* key) -> int {
        Napi::Value v = o.Get(key);
        if (v.IsUndefined()) return 0;
        double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
        if (!(d >= 1) || d != std::floor(d) || d > 1024) tx::fail(key, ": expected an integer >= 1");
        return static_cast<int>(d);
      };
      c.workers = read("workers");
      c.threads = read("threads");
    }
    tx::configure(c);
    auto now = tx::scheduler_config();
    Napi::Object out = Napi::Object::New(env);
    out.Set("workers", now.workers);
    out.Set("threads", now.threads);
    return out;
  });
}

// shutdown(exitCode, isMainThread): from process 'exit'. Cancels this
// environment's requests and waits for them to stop; on the main thread,
// if one is stuck in a long pass, ends the process now with the exit code
// rather than let it run into static destructors.
Napi::Value Shutdown(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int code = info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 0;
  bool main_thread = info[1].ToBoolean();
  if (!State(env).close(main_thread ? 10000 : -1)) std::_Exit(code);
  return env.Undefined();
}

// benchFloor(model, inputs, target, chunk, rounds, backward) -> seconds per
// round of the bare model's passes; synchronous, for the benchmarks only.
Napi::Value BenchFloor(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    auto model = ModelWrap::From(env, info[0]);
    if (!info[1].IsArray()) tx::fail("benchFloor(model, inputs, target, chunk, rounds, backward)");
    std::vector<torch::Tensor> rows;
    Napi::Array a = info[1].As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); ++i) rows.push_back(TensorWrap::From(env, a.Get(i), "inputs[" + std::to_string(i) + "]").to(model->device()));
    int64_t target = info[2].As<Napi::Number>().Int64Value();
    int64_t chunk = info[3].As<Napi::Number>().Int64Value();
    int rounds = info[4].As<Napi::Number>().Int32Value();
    bool backward = info[5].ToBoolean();
    double s = backward ? tx::time_forward_backward(*model, rows, target, chunk, rounds) : tx::time_forward(*model, rows, chunk, rounds);
    return Napi::Number::New(env, s);
  });
}

// interpolate(tensor, size, mode): layer attributions resized (synchronous: small tensors).
Napi::Value Interpolate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    torch::Tensor t = TensorWrap::From(env, info[0], "layerAttribution");
    if (!info[1].IsArray()) tx::fail("size: expected an array of output sizes");
    std::vector<int64_t> size;
    Napi::Array a = info[1].As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); ++i) {
      Napi::Value v = a.Get(i);
      double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : 0;
      if (!(d >= 1) || d > (1 << 20) || d != std::floor(d)) tx::fail("size[", i, "]: expected an integer from 1 to 1048576");
      size.push_back(static_cast<int64_t>(d));
    }
    std::string mode = info[2].IsString() ? info[2].As<Napi::String>().Utf8Value() : "nearest";
    if (!at::isFloatingType(t.scalar_type())) tx::fail("layerAttribution: expected a floating-point tensor");
    torch::NoGradGuard no_grad;
    return TensorWrap::Wrap(env, tx::interpolate(t, size, mode));
  });
}

// tensorOp(tensor, op, args): the small reductions a caller reads results
// with (synchronous: they run on what an attribution returned).
Napi::Value TensorOp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    const torch::Tensor& t = TensorWrap::From(env, info[0], "tensor");
    std::string op = info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "";
    auto arg = [&](uint32_t i, const char* name, int64_t fallback) -> int64_t {
      Napi::Value v = info[2 + i];
      if (v.IsUndefined() || v.IsNull()) return fallback;
      double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : NAN;
      if (!std::isfinite(d) || d != std::floor(d)) tx::fail(name, ": expected an integer, got ", v.IsNumber() ? std::to_string(d) : "a non-number");
      return static_cast<int64_t>(d);
    };
    auto dim_of = [&](int64_t d, const char* name) {
      if (t.dim() == 0) tx::fail("tensor: a scalar has no dimension ", d);
      if (d < -t.dim() || d >= t.dim()) tx::fail(name, ": ", d, " is out of range for a tensor of ", t.dim(), " dimension(s)");
      return d < 0 ? d + t.dim() : d;
    };
    auto floating = [&] { return at::isFloatingType(t.scalar_type()) ? t : t.to(torch::kFloat); };
    torch::NoGradGuard no_grad;
    if (op == "argmax") return TensorWrap::Wrap(env, t.argmax(dim_of(arg(0, "dim", -1), "dim")));
    if (op == "softmax") return TensorWrap::Wrap(env, torch::softmax(floating(), dim_of(arg(0, "dim", -1), "dim")));
    if (op == "topk") {
      int64_t d = dim_of(arg(1, "dim", -1), "dim");
      int64_t k = arg(0, "k", 1);
      if (k < 1 || k > t.size(d)) tx::fail("k: expected an integer from 1 to ", t.size(d), ", got ", k);
      auto [values, indices] = torch::topk(t, k, d);
      Napi::Object o = Napi::Object::New(env);
      o.Set("values", TensorWrap::Wrap(env, values));
      o.Set("indices", TensorWrap::Wrap(env, indices));
      return o;
    }
    if (op == "sum" || op == "mean") {
      bool keep = info[3].IsBoolean() && info[3].As<Napi::Boolean>().Value();
      torch::Tensor x = op == "mean" ? floating() : t;
      if (info[2].IsUndefined() || info[2].IsNull()) return TensorWrap::Wrap(env, op == "sum" ? x.sum() : x.mean());
      int64_t d = dim_of(arg(0, "dim", 0), "dim");
      return TensorWrap::Wrap(env, op == "sum" ? x.sum(d, keep) : x.mean(d, keep));
    }
    if (op == "row") {
      int64_t i = arg(0, "index", 0);
      if (t.dim() == 0) tx::fail("tensor: a scalar has no rows");
      if (i < -t.size(0) || i >= t.size(0)) tx::fail("index: ", i, " is out of range for ", t.size(0), " row(s)");
      return TensorWrap::Wrap(env, t.select(0, i).clone());
    }
    tx::fail("op: unknown tensor operation '", op, "'");
  });
}

Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("libtorch", TORCH_VERSION);
  o.Set("cuda", torch::cuda::is_available());
  o.Set("cudaDevices", static_cast<double>(torch::cuda::device_count()));
  Napi::Array names = Napi::Array::New(env);
  auto all = tx::algorithm_names();
  for (size_t i = 0; i < all.size(); ++i) names.Set(static_cast<uint32_t>(i), all[i]);
  o.Set("algorithms", names);
  return o;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* state = new EnvState();
  env.SetInstanceData<EnvState>(state);
  Napi::Function tensor_cls = TensorWrap::Init(env), model_cls = ModelWrap::Init(env);
  state->tensor_ctor = Napi::Persistent(tensor_cls);
  state->model_ctor = Napi::Persistent(model_cls);
  napi_create_threadsafe_function(env, nullptr, nullptr, Napi::String::New(env, "torchexplain"), 0, 1, nullptr, nullptr,
                                  nullptr, CallJs, &state->tsfn);
  napi_unref_threadsafe_function(env, state->tsfn);  // only requests in flight keep the process alive
  // Added after the thread-safe function: cleanup hooks run last-added first.
  napi_add_env_cleanup_hook(env, [](void* s) { static_cast<EnvState*>(s)->close(-1); }, state);
  exports.Set("NativeTensor", tensor_cls);
  exports.Set("NativeModel", model_cls);
  exports.Set("tensorFromBuffer", Napi::Function::New(env, TensorFromBuffer));
  exports.Set("catRows", Napi::Function::New(env, CatRows));
  exports.Set("sliceRows", Napi::Function::New(env, SliceRows));
  exports.Set("loadModel", Napi::Function::New(env, LoadModel));
  exports.Set("run", Napi::Function::New(env, Run));
  exports.Set("configure", Napi::Function::New(env, Configure));
  exports.Set("shutdown", Napi::Function::New(env, Shutdown));
  exports.Set("manualSeed", Napi::Function::New(env, ManualSeed));
  exports.Set("releaseMemory", Napi::Function::New(env, ReleaseMemory));
  exports.Set("info", Napi::Function::New(env, Info));
  exports.Set("benchFloor", Napi::Function::New(env, BenchFloor));
  exports.Set("interpolate", Napi::Function::New(env, Interpolate));
  exports.Set("tensorOp", Napi::Function::New(env, TensorOp));
  return exports;
}

}  // namespace

NODE_API_MODULE(torchexplain, Init)
