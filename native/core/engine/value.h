// Values that cross from the binding into the core: the options objects of
// `attribute()` and the extra forward arguments, already converted from
// JavaScript so that the core never touches Node.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "engine/torch_headers.h"

namespace tx {

struct Value;
class Model;
using List = std::vector<Value>;
using Object = std::map<std::string, Value>;
// A caller-supplied function (a JavaScript callback behind the binding). It
// may be called from any core thread; it blocks until the caller answers.
using Callable = std::function<Value(const List& args)>;

struct Value {
  enum class Kind { None, Bool, Number, String, Tensor, List, Object, Function, Model };
  Kind kind = Kind::None;
  bool boolean = false;
  double number = 0;
  std::string string;
  torch::Tensor tensor;
  std::shared_ptr<List> list;
  std::shared_ptr<Object> object;
  std::shared_ptr<Callable> function;
  std::shared_ptr<const Model> model;  // a loaded model passed as an option (influence's checkpoints)

  static Value none() { return {}; }
  static Value of(bool b) { Value v; v.kind = Kind::Bool; v.boolean = b; return v; }
  static Value of(double d) { Value v; v.kind = Kind::Number; v.number = d; return v; }
  static Value of(std::string s) { Value v; v.kind = Kind::String; v.string = std::move(s); return v; }
  static Value of(torch::Tensor t) { Value v; v.kind = Kind::Tensor; v.tensor = std::move(t); return v; }
  static Value of(List l) { Value v; v.kind = Kind::List; v.list = std::make_shared<List>(std::move(l)); return v; }
  static Value of(Object o) { Value v; v.kind = Kind::Object; v.object = std::make_shared<Object>(std::move(o)); return v; }
  static Value of(std::shared_ptr<Callable> f) { Value v; v.kind = Kind::Function; v.function = std::move(f); return v; }
  static Value of(std::shared_ptr<const Model> m) { Value v; v.kind = Kind::Model; v.model = std::move(m); return v; }

  bool is_none() const { return kind == Kind::None; }
  bool is_number() const { return kind == Kind::Number; }
  bool is_tensor() const { return kind == Kind::Tensor; }
  bool is_list() const { return kind == Kind::List; }
  bool is_integer() const;
  const char* kind_name() const;
};

// Typed, validated access to an options object; the one place where option
// values are checked. Every read marks the key as used so that
// `reject_unknown()` can name options that no algorithm consumed (typos).
class Options {
 public:
  Options() = default;
  explicit Options(Object values) : values_(std::move(values)) {}

  bool has(const std::string& key) const;
  const Value& get(const std::string& key) const;  // None when absent
  void set(const std::string& key, Value v) { values_[key] = std::move(v); }
  void erase(const std::string& key) { values_.erase(key); }

  bool boolean(const std::string& key, bool fallback) const;
  double number(const std::string& key, double fallback) const;
  int64_t integer(const std::string& key, int64_t fallback, int64_t min) const;
  std::string choice(const std::string& key, const std::string& fallback,
                     const std::vector<std::string>& allowed) const;

  // Options nested under `key` (e.g. a NoiseTunnel's base algorithm options).
  Options sub(const std::string& key) const;
  Object without(const std::vector<std::string>& keys) const;
  const Object& values() const { return values_; }

  void reject_unknown(const std::string& algorithm) const;

 private:
  Object values_;
  mutable std::set<std::string> used_;
};

std::string shape_str(at::IntArrayRef shape);
std::string dtype_str(at::ScalarType t);

}  // namespace tx
