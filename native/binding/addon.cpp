// The Node binding: tensors and models as wrapped objects, and one generic
// async worker that runs any core algorithm by name off the event loop.
// Every exception from the core becomes a rejected Promise.
#include <napi.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include <cstring>
#include <future>

#include "algorithms.h"
#include "bench.h"
#include "executor.h"
#include "errors.h"

namespace {

std::string error_message(const std::exception& e) {
  if (auto* c = dynamic_cast<const c10::Error*>(&e)) return c->what_without_backtrace();
  return e.what();
}

// ---- Tensor ---------------------------------------------------------------

class TensorWrap : public Napi::ObjectWrap<TensorWrap> {
 public:
  static Napi::FunctionReference constructor;

  static void Init(Napi::Env env, Napi::Object exports) {
    Napi::Function cls = DefineClass(env, "NativeTensor",
                                     {InstanceAccessor<&TensorWrap::Shape>("shape"),
                                      InstanceAccessor<&TensorWrap::DType>("dtype"),
                                      InstanceAccessor<&TensorWrap::Device>("device"),
                                      InstanceMethod<&TensorWrap::Data>("data"),
                                      InstanceMethod<&TensorWrap::To>("to")});
    constructor = Napi::Persistent(cls);
    exports.Set("NativeTensor", cls);
  }

  static Napi::Object Wrap(Napi::Env env, torch::Tensor t) {
    Napi::Object obj = constructor.New({});
    Unwrap(obj)->Set(env, std::move(t));
    return obj;
  }

  static bool Is(const Napi::Value& v) {
    return v.IsObject() && v.As<Napi::Object>().InstanceOf(constructor.Value());
  }

  explicit TensorWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TensorWrap>(info) {}
  ~TensorWrap() override {
    if (bytes_ && env_) Napi::MemoryManagement::AdjustExternalMemory(env_, -bytes_);
  }

  const torch::Tensor& tensor() const { return tensor_; }

 private:
  void Set(Napi::Env env, torch::Tensor t) {
    tensor_ = std::move(t);
    env_ = env;
    // Tell V8 how much native memory this small object holds, so that it
    // collects dropped tensors in time.
    bytes_ = static_cast<int64_t>(tensor_.numel() * tensor_.element_size());
    if (bytes_) Napi::MemoryManagement::AdjustExternalMemory(env, bytes_);
  }

  Napi::Value Shape(const Napi::CallbackInfo& info) {
    Napi::Array a = Napi::Array::New(info.Env(), tensor_.dim());
    for (int64_t i = 0; i < tensor_.dim(); ++i) a.Set(static_cast<uint32_t>(i), Napi::Number::New(info.Env(), static_cast<double>(tensor_.size(i))));
    return a;
  }
  Napi::Value DType(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), tx::dtype_str(tensor_.scalar_type())); }
  Napi::Value Device(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), tensor_.device().str()); }

  // A row-major copy into a fresh typed array of the matching element type.
  Napi::Value Data(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    torch::Tensor t = tensor_.detach().to(torch::kCPU).contiguous();
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
    try {
      if (!info[0].IsString()) tx::fail("device: expected a device name such as 'cpu' or 'cuda:0'");
      return Wrap(info.Env(), tensor_.to(tx::parse_device(info[0].As<Napi::String>())));
    } catch (const std::exception& e) {
      Napi::Error::New(info.Env(), error_message(e)).ThrowAsJavaScriptException();
      return info.Env().Undefined();
    }
  }

  torch::Tensor tensor_;
  napi_env env_ = nullptr;
  int64_t bytes_ = 0;
};
Napi::FunctionReference TensorWrap::constructor;

// tensorFromBuffer(typedArray, shape, dtype): copies the data into a new tensor.
Napi::Value TensorFromBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  try {
    if (!info[0].IsTypedArray()) tx::fail("data: expected a typed array");
    if (!info[1].IsArray()) tx::fail("shape: expected an array of sizes");
    if (!info[2].IsString()) tx::fail("dtype: expected a dtype name");
    Napi::TypedArray arr = info[0].As<Napi::TypedArray>();
    Napi::Array shape_a = info[1].As<Napi::Array>();
    std::string dtype = info[2].As<Napi::String>();
    std::vector<int64_t> shape;
    int64_t numel = 1;
    for (uint32_t i = 0; i < shape_a.Length(); ++i) {
      Napi::Value s = shape_a.Get(i);
      double d = s.IsNumber() ? s.As<Napi::Number>().DoubleValue() : -1;
      if (d < 0 || d != static_cast<double>(static_cast<int64_t>(d))) tx::fail("shape[", i, "]: expected a non-negative integer");
      shape.push_back(static_cast<int64_t>(d));
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
      tx::fail("data: ", arr.ElementLength(), " values do not fill shape ", tx::shape_str(shape), " (", numel, " values)");
    auto* base = static_cast<uint8_t*>(arr.ArrayBuffer().Data()) + arr.ByteOffset();
    torch::Tensor t = torch::from_blob(base, shape, torch::TensorOptions().dtype(st)).clone();
    return TensorWrap::Wrap(env, std::move(t));
  } catch (const std::exception& e) {
    Napi::Error::New(env, error_message(e)).ThrowAsJavaScriptException();
    return env.Undefined();
  }
}

// ---- Values ---------------------------------------------------------------

std::shared_ptr<tx::Callable> Callback(Napi::Function fn, const std::string& where);

tx::Value ToValue(const Napi::Value& v, const std::string& where) {
  if (v.IsUndefined() || v.IsNull()) return tx::Value::none();
  if (v.IsBoolean()) return tx::Value::of(v.As<Napi::Boolean>().Value());
  if (v.IsNumber()) return tx::Value::of(v.As<Napi::Number>().DoubleValue());
  if (v.IsString()) return tx::Value::of(std::string(v.As<Napi::String>()));
  if (TensorWrap::Is(v)) return tx::Value::of(TensorWrap::Unwrap(v.As<Napi::Object>())->tensor());
  if (v.IsArray()) {
    Napi::Array a = v.As<Napi::Array>();
    tx::List list;
    for (uint32_t i = 0; i < a.Length(); ++i) list.push_back(ToValue(a.Get(i), where + "[" + std::to_string(i) + "]"));
    return tx::Value::of(std::move(list));
  }
  if (v.IsFunction()) return tx::Value::of(Callback(v.As<Napi::Function>(), where));
  if (v.IsObject()) {
    Napi::Object o = v.As<Napi::Object>();
    Napi::Array keys = o.GetPropertyNames();
    tx::Object obj;
    for (uint32_t i = 0; i < keys.Length(); ++i) {
      std::string k = keys.Get(i).As<Napi::String>();
      obj[k] = ToValue(o.Get(k), where.empty() ? k : where + "." + k);
    }
    return tx::Value::of(std::move(obj));
  }
  tx::fail(where, ": unsupported value");
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

// A JavaScript function the core can call from its threads: each call is
// queued to the JavaScript thread, which runs it and hands the (synchronous)
// result back. Errors it throws become the core's errors, named by `where`.
std::shared_ptr<tx::Callable> Callback(Napi::Function fn, const std::string& where) {
  auto tsfn = std::shared_ptr<Napi::ThreadSafeFunction>(
      new Napi::ThreadSafeFunction(Napi::ThreadSafeFunction::New(fn.Env(), fn, "torchexplain callback", 0, 1)),
      [](Napi::ThreadSafeFunction* f) {
        f->Release();
        delete f;
      });
  tsfn->Unref(fn.Env());
  return std::make_shared<tx::Callable>([tsfn, where](const tx::List& args) -> tx::Value {
    std::promise<tx::Value> answer;
    auto status = tsfn->BlockingCall([&](Napi::Env env, Napi::Function js) {
      try {
        std::vector<napi_value> argv;
        for (const auto& a : args) argv.push_back(FromValue(env, a));
        Napi::Value r = js.Call(argv);
        if (r.IsPromise()) tx::fail(where, ": must return its result synchronously, not a Promise");
        answer.set_value(ToValue(r, where + " result"));
      } catch (const tx::ArgumentError&) {
        answer.set_exception(std::current_exception());
      } catch (const std::exception& e) {
        // A JavaScript error must be read here, on its own thread: hand on its text only.
        answer.set_exception(std::make_exception_ptr(std::runtime_error(e.what())));
      } catch (...) {
        answer.set_exception(std::make_exception_ptr(std::runtime_error("unknown error")));
      }
    });
    if (status != napi_ok) tx::fail(where, ": the JavaScript environment is shutting down");
    try {
      return answer.get_future().get();
    } catch (const tx::ArgumentError&) {
      throw;
    } catch (const std::exception& e) {
      tx::fail(where, " threw: ", e.what());
    }
  });
}

// ---- Model ----------------------------------------------------------------

class ModelWrap : public Napi::ObjectWrap<ModelWrap> {
 public:
  static Napi::FunctionReference constructor;
  static void Init(Napi::Env env, Napi::Object exports) {
    Napi::Function cls = DefineClass(env, "NativeModel",
                                     {InstanceMethod<&ModelWrap::Layers>("layers"),
                                      InstanceAccessor<&ModelWrap::Device>("device"),
                                      InstanceAccessor<&ModelWrap::Signature>("signature")});
    constructor = Napi::Persistent(cls);
    exports.Set("NativeModel", cls);
  }
  static Napi::Object Wrap(std::shared_ptr<tx::Model> m) {
    Napi::Object obj = constructor.New({});
    Unwrap(obj)->model_ = std::move(m);
    return obj;
  }
  static bool Is(const Napi::Value& v) {
    return v.IsObject() && v.As<Napi::Object>().InstanceOf(constructor.Value());
  }
  explicit ModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelWrap>(info) {}
  const std::shared_ptr<tx::Model>& model() const { return model_; }

 private:
  Napi::Value Layers(const Napi::CallbackInfo& info) {
    auto names = model_->layers();
    Napi::Array a = Napi::Array::New(info.Env(), names.size());
    for (size_t i = 0; i < names.size(); ++i) a.Set(static_cast<uint32_t>(i), names[i]);
    return a;
  }
  Napi::Value Device(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), model_->device().str()); }
  Napi::Value Signature(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), model_->signature()); }
  std::shared_ptr<tx::Model> model_;
};
Napi::FunctionReference ModelWrap::constructor;

// ---- Async work -----------------------------------------------------------

// Runs `work` on a libuv worker thread and settles a Promise with `done`.
template <typename Out>
class Job : public Napi::AsyncWorker {
 public:
  using Work = std::function<Out()>;
  using Done = std::function<Napi::Value(Napi::Env, Out&)>;
  Job(Napi::Env env, Work work, Done done)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), work_(std::move(work)), done_(std::move(done)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  void Execute() override {
    try {
      out_ = work_();
    } catch (const std::exception& e) {
      SetError(error_message(e));
    } catch (...) {
      SetError("unknown native error");
    }
  }
  void OnOK() override {
    try {
      deferred_.Resolve(done_(Env(), out_));
    } catch (const std::exception& e) {
      deferred_.Reject(Napi::Error::New(Env(), error_message(e)).Value());
    }
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  Work work_;
  Done done_;
  Out out_;
};

template <typename Out>
Napi::Value Start(Napi::Env env, typename Job<Out>::Work work, typename Job<Out>::Done done) {
  auto* job = new Job<Out>(env, std::move(work), std::move(done));
  Napi::Promise p = job->Promise();
  job->Queue();
  return p;
}

Napi::Value Rejected(Napi::Env env, const std::string& message) {
  auto d = Napi::Promise::Deferred::New(env);
  d.Reject(Napi::Error::New(env, message).Value());
  return d.Promise();
}

// loadModel(path, device) -> Promise<NativeModel>
Napi::Value LoadModel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) return Rejected(env, "path: expected the path of a TorchScript file (a string)");
  std::string path = info[0].As<Napi::String>();
  std::string device = info[1].IsString() ? std::string(info[1].As<Napi::String>()) : "cpu";
  return Start<std::shared_ptr<tx::Model>>(
      env, [path, device] { return tx::Model::load(path, device); },
      [](Napi::Env, std::shared_ptr<tx::Model>& m) -> Napi::Value { return ModelWrap::Wrap(m); });
}

// Completions of work queued on the core's compute thread come back to the
// JavaScript thread through one thread-safe function, so that a call costs
// two thread hand-offs (main -> compute -> main) and nothing else.
struct Completion {
  Napi::Promise::Deferred deferred;
  tx::Result result;
  std::string error;
};
Napi::ThreadSafeFunction completions;
size_t in_flight = 0;  // touched on the JavaScript thread only

Napi::Value ResultValue(Napi::Env env, tx::Result& r) {
  Napi::Object out = Napi::Object::New(env);
  Napi::Array attrs = Napi::Array::New(env, r.attributions.size());
  for (size_t i = 0; i < r.attributions.size(); ++i) attrs.Set(static_cast<uint32_t>(i), TensorWrap::Wrap(env, r.attributions[i]));
  out.Set("attributions", attrs);
  if (r.delta.defined()) out.Set("delta", TensorWrap::Wrap(env, r.delta));
  return out;
}

void Settle(Napi::Env env, Napi::Function, Completion* c) {
  std::unique_ptr<Completion> done(c);
  if (env == nullptr) return;  // the environment is shutting down
  if (--in_flight == 0) completions.Unref(env);
  if (!done->error.empty()) {
    done->deferred.Reject(Napi::Error::New(env, done->error).Value());
    return;
  }
  try {
    done->deferred.Resolve(ResultValue(env, done->result));
  } catch (const std::exception& e) {
    done->deferred.Reject(Napi::Error::New(env, error_message(e)).Value());
  }
}

// run(algorithm, model, inputs, options) -> Promise<{ attributions, delta? }>
Napi::Value Run(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  tx::Request req;
  std::string name;
  try {
    if (!info[0].IsString()) tx::fail("algorithm: expected a name");
    name = info[0].As<Napi::String>();
    if (!ModelWrap::Is(info[1])) tx::fail("model: expected a Model from loadModel()");
    req.model = ModelWrap::Unwrap(info[1].As<Napi::Object>())->model();
    if (!info[2].IsArray()) tx::fail("inputs: expected a Tensor or an array of Tensors");
    Napi::Array inputs = info[2].As<Napi::Array>();
    for (uint32_t i = 0; i < inputs.Length(); ++i) {
      Napi::Value v = inputs.Get(i);
      if (!TensorWrap::Is(v)) tx::fail("inputs[", i, "]: expected a Tensor (make one with tensor())");
      req.inputs.push_back(TensorWrap::Unwrap(v.As<Napi::Object>())->tensor());
    }
    // onProgress(done, total) is called on the JavaScript thread, throttled by the core.
    if (info[3].IsObject() && info[3].As<Napi::Object>().Get("onProgress").IsFunction()) {
      Napi::Object o = info[3].As<Napi::Object>();
      auto tsfn = std::shared_ptr<Napi::ThreadSafeFunction>(
          new Napi::ThreadSafeFunction(Napi::ThreadSafeFunction::New(env, o.Get("onProgress").As<Napi::Function>(), "torchexplain progress", 0, 1)),
          [](Napi::ThreadSafeFunction* f) {
            f->Release();
            delete f;
          });
      tsfn->Unref(env);  // the attribution's own completion keeps the process alive
      req.progress = [tsfn](int64_t done, int64_t total) {
        tsfn->NonBlockingCall([done, total](Napi::Env env, Napi::Function fn) {
          try {
            fn.Call({Napi::Number::New(env, static_cast<double>(done)), Napi::Number::New(env, static_cast<double>(total))});
          } catch (const std::exception&) {
            // A failing progress callback must not break the attribution.
          }
        });
      };
      o.Delete("onProgress");
    }
    tx::Value opts = ToValue(info[3], "");
    if (!opts.is_none()) {
      if (opts.kind != tx::Value::Kind::Object) tx::fail("options: expected an object");
      req.options = tx::Options(*opts.object);
    }
  } catch (const std::exception& e) {
    return Rejected(env, error_message(e));
  }
  auto* c = new Completion{Napi::Promise::Deferred::New(env), {}, {}};
  Napi::Promise promise = c->deferred.Promise();
  if (in_flight++ == 0) completions.Ref(env);  // keep the process alive until it settles
  tx::submit(0, [c, name, req = std::move(req)] {
    try {
      c->result = tx::run(name, req);
    } catch (const std::exception& e) {
      c->error = error_message(e);
    } catch (...) {
      c->error = "unknown native error";
    }
    if (completions.NonBlockingCall(c, Settle) != napi_ok) delete c;
  });
  return promise;
}

Napi::Value ManualSeed(const Napi::CallbackInfo& info) {
  if (!info[0].IsNumber()) {
    Napi::TypeError::New(info.Env(), "seed: expected a number").ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  torch::manual_seed(static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value()));
  return info.Env().Undefined();
}

// benchFloor(model, inputs, target, chunk, rounds, backward) -> seconds per
// round of the bare model's passes; synchronous, for the benchmarks only.
Napi::Value BenchFloor(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  try {
    if (!ModelWrap::Is(info[0]) || !info[1].IsArray()) tx::fail("benchFloor(model, inputs, target, chunk, rounds, backward)");
    auto model = ModelWrap::Unwrap(info[0].As<Napi::Object>())->model();
    std::vector<torch::Tensor> rows;
    Napi::Array a = info[1].As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); ++i) {
      if (!TensorWrap::Is(a.Get(i))) tx::fail("inputs[", i, "]: expected a Tensor");
      rows.push_back(TensorWrap::Unwrap(a.Get(i).As<Napi::Object>())->tensor().to(model->device()));
    }
    int64_t target = info[2].As<Napi::Number>().Int64Value();
    int64_t chunk = info[3].As<Napi::Number>().Int64Value();
    int rounds = info[4].As<Napi::Number>().Int32Value();
    bool backward = info[5].ToBoolean();
    double s = backward ? tx::time_forward_backward(*model, rows, target, chunk, rounds) : tx::time_forward(*model, rows, chunk, rounds);
    return Napi::Number::New(env, s);
  } catch (const std::exception& e) {
    Napi::Error::New(env, error_message(e)).ThrowAsJavaScriptException();
    return env.Undefined();
  }
}

// interpolate(tensor, size, mode): layer attributions resized (synchronous: small tensors).
Napi::Value Interpolate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  try {
    if (!TensorWrap::Is(info[0])) tx::fail("layerAttribution: expected a Tensor");
    if (!info[1].IsArray()) tx::fail("size: expected an array of output sizes");
    std::vector<int64_t> size;
    Napi::Array a = info[1].As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); ++i) {
      Napi::Value v = a.Get(i);
      if (!v.IsNumber() || v.As<Napi::Number>().DoubleValue() < 1) tx::fail("size[", i, "]: expected a positive integer");
      size.push_back(v.As<Napi::Number>().Int64Value());
    }
    std::string mode = info[2].IsString() ? info[2].As<Napi::String>().Utf8Value() : "nearest";
    torch::Tensor t = TensorWrap::Unwrap(info[0].As<Napi::Object>())->tensor();
    if (!at::isFloatingType(t.scalar_type())) tx::fail("layerAttribution: expected a floating-point tensor");
    torch::NoGradGuard no_grad;
    return TensorWrap::Wrap(env, tx::interpolate(t, size, mode));
  } catch (const std::exception& e) {
    Napi::Error::New(env, error_message(e)).ThrowAsJavaScriptException();
    return env.Undefined();
  }
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
  completions = Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}),
                                              "torchexplain", 0, 1);
  completions.Unref(env);  // only work in flight keeps the process alive (see Run)
  TensorWrap::Init(env, exports);
  ModelWrap::Init(env, exports);
  exports.Set("tensorFromBuffer", Napi::Function::New(env, TensorFromBuffer));
  exports.Set("loadModel", Napi::Function::New(env, LoadModel));
  exports.Set("run", Napi::Function::New(env, Run));
  exports.Set("manualSeed", Napi::Function::New(env, ManualSeed));
  exports.Set("info", Napi::Function::New(env, Info));
  exports.Set("benchFloor", Napi::Function::New(env, BenchFloor));
  exports.Set("interpolate", Napi::Function::New(env, Interpolate));
  return exports;
}

}  // namespace

NODE_API_MODULE(torchexplain, Init)
