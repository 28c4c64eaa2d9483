#include "engine/value.h"

#include <algorithm>
#include <cmath>

#include "engine/errors.h"

namespace tx {

std::string known_names(const std::string& name, const std::vector<std::string>& known, const char* noun) {
  auto distance = [](const std::string& a, const std::string& b) {
    std::vector<size_t> row(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
      size_t diagonal = row[0];
      row[0] = i;
      for (size_t j = 1; j <= b.size(); ++j) {
        size_t up = row[j];
        row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
        diagonal = up;
      }
    }
    return row[b.size()];
  };
  size_t best = std::string::npos;
  std::vector<std::string> closest;
  for (const auto& k : known) {
    size_t d = distance(name, k);
    if (d < best) best = d, closest = {k};
    else if (d == best) closest.push_back(k);
  }
  std::string out;
  // A near miss (a third of the name or less changed) is worth naming first.
  if (!closest.empty() && best <= std::max<size_t>(2, name.size() / 3)) {
    if (closest.size() > 3) closest.resize(3);
    out = concat("did you mean '", join(closest, "' or '"), "'? ");
  }
  std::vector<std::string> shown(known.begin(), known.begin() + std::min<size_t>(known.size(), 20));
  return out + concat("(", known.size(), " ", noun, ": ", join(shown),
                      known.size() > shown.size() ? concat(", … ", known.size() - shown.size(), " more; model.layers() lists them") : "", ")");
}

bool Value::is_integer() const {
  return kind == Kind::Number && std::isfinite(number) && std::floor(number) == number;
}

const char* Value::kind_name() const {
  switch (kind) {
    case Kind::None: return "null";
    case Kind::Bool: return "boolean";
    case Kind::Number: return "number";
    case Kind::String: return "string";
    case Kind::Tensor: return "Tensor";
    case Kind::List: return "array";
    case Kind::Object: return "object";
    case Kind::Function: return "function";
    case Kind::Model: return "Model";
  }
  return "?";
}

bool Options::has(const std::string& key) const {
  auto it = values_.find(key);
  return it != values_.end() && !it->second.is_none();
}

const Value& Options::get(const std::string& key) const {
  static const Value kNone;
  used_.insert(key);
  auto it = values_.find(key);
  return it == values_.end() ? kNone : it->second;
}

bool Options::boolean(const std::string& key, bool fallback) const {
  const Value& v = get(key);
  if (v.is_none()) return fallback;
  if (v.kind != Value::Kind::Bool) fail(key, ": expected a boolean, got ", v.kind_name());
  return v.boolean;
}

double Options::number(const std::string& key, double fallback) const {
  const Value& v = get(key);
  if (v.is_none()) return fallback;
  if (!v.is_number() || !std::isfinite(v.number))
    fail(key, ": expected a finite number, got ", v.kind_name());
  return v.number;
}

int64_t Options::integer(const std::string& key, int64_t fallback, int64_t min) const {
  const Value& v = get(key);
  if (v.is_none()) return fallback;
  if (!v.is_integer()) fail(key, ": expected an integer, got ", v.is_number() ? std::to_string(v.number) : v.kind_name());
  if (v.number < static_cast<double>(min)) fail(key, ": expected an integer >= ", min, ", got ", static_cast<int64_t>(v.number));
  return static_cast<int64_t>(v.number);
}

std::string Options::choice(const std::string& key, const std::string& fallback,
                            const std::vector<std::string>& allowed) const {
  const Value& v = get(key);
  if (v.is_none()) return fallback;
  if (v.kind != Value::Kind::String) fail(key, ": expected one of ", join(allowed), "; got ", v.kind_name());
  for (const auto& a : allowed)
    if (a == v.string) return a;
  fail(key, ": expected one of ", join(allowed), "; got '", v.string, "'");
}

Options Options::sub(const std::string& key) const {
  const Value& v = get(key);
  if (v.is_none()) return Options();
  if (v.kind != Value::Kind::Object) fail(key, ": expected an object, got ", v.kind_name());
  return Options(*v.object);
}

Object Options::without(const std::vector<std::string>& keys) const {
  Object rest = values_;
  for (const auto& k : keys) rest.erase(k);
  return rest;
}

void Options::reject_unknown(const std::string& algorithm) const {
  std::vector<std::string> unknown;
  for (const auto& kv : values_)
    if (!used_.count(kv.first) && !kv.second.is_none()) unknown.push_back(kv.first);
  if (!unknown.empty())
    fail(algorithm, ": unknown option", unknown.size() > 1 ? "s " : " ", join(unknown),
         " (known: ", join(std::vector<std::string>(used_.begin(), used_.end())), ")");
}

std::string shape_str(at::IntArrayRef shape) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << "]";
  return os.str();
}

std::string dtype_str(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return "float32";
    case at::kDouble: return "float64";
    case at::kHalf: return "float16";
    case at::kBFloat16: return "bfloat16";
    case at::kLong: return "int64";
    case at::kInt: return "int32";
    case at::kBool: return "bool";
    case at::kByte: return "uint8";
    default: return c10::toString(t);
  }
}

}  // namespace tx
