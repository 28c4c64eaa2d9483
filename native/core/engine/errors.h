#pragma once
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace tx {

// What kind of failure an error is: the binding turns it into a stable
// `code` on the rejected JavaScript error.
enum class ErrorCode { BadOption, BadShape, BadTarget, Aborted, MemoryBudget, ModelLoad, ModelNewerPyTorch, ModelForward, Disposed, Internal };
const char* error_code_name(ErrorCode code);

// Bad input from the caller: the message names the argument and what was
// expected ("nSteps: expected ..."). The binding turns every exception into a
// rejected Promise; this type marks messages already phrased for the user.
// Its code is BadTarget when the argument named is the target, BadOption
// otherwise, unless the raising site says BadShape (fail_shape).
class ArgumentError : public std::invalid_argument {
 public:
  explicit ArgumentError(const std::string& message) : ArgumentError(message, kind_of(message)) {}
  ArgumentError(const std::string& message, ErrorCode code) : std::invalid_argument(message), code_(code) {}
  ErrorCode code() const { return code_; }

 private:
  static ErrorCode kind_of(const std::string& m) {
    bool target = m.compare(0, 6, "target") == 0 && (m.size() == 6 || m[6] == ':' || m[6] == '[');
    return target ? ErrorCode::BadTarget : ErrorCode::BadOption;
  }
  ErrorCode code_;
};

// The other failures a caller can act on, each with its code.
class CodedError : public std::runtime_error {
 public:
  CodedError(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_;
};

template <typename... Parts>
std::string concat(const Parts&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  return os.str();
}

// Builds a message from streamable parts: fail("nSteps: expected >= 1, got ", n).
template <typename... Parts>
[[noreturn]] void fail(const Parts&... parts) {
  throw ArgumentError(concat(parts...));
}

// A tensor argument whose shape does not fit (the inputs, each other, the model).
template <typename... Parts>
[[noreturn]] void fail_shape(const Parts&... parts) {
  throw ArgumentError(concat(parts...), ErrorCode::BadShape);
}

template <typename... Parts>
[[noreturn]] void fail_with(ErrorCode code, const Parts&... parts) {
  throw CodedError(code, concat(parts...));
}

// The code of any exception the core throws.
ErrorCode code_of(const std::exception& e);

// What to say of an unknown name among `known` (layer names, say): the
// closest ones by edit distance, then the list, cut short when long.
// ("did you mean 'layer4'? (68 layers: conv1, bn1, ...)"); `noun` names the list.
std::string known_names(const std::string& name, const std::vector<std::string>& known, const char* noun = "layers");

template <typename T>
std::string join(const std::vector<T>& items, const char* sep = ", ") {
  std::ostringstream os;
  for (size_t i = 0; i < items.size(); ++i) os << (i ? sep : "") << items[i];
  return os.str();
}

}  // namespace tx
