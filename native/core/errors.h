#pragma once
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace tx {

// Bad input from the caller: the message names the argument and what was
// expected. The binding turns every exception into a rejected Promise; this
// type only marks messages that are already phrased for the user.
class ArgumentError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// Builds a message from streamable parts: fail("nSteps: expected >= 1, got ", n).
template <typename... Parts>
[[noreturn]] void fail(const Parts&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  throw ArgumentError(os.str());
}

template <typename T>
std::string join(const std::vector<T>& items, const char* sep = ", ") {
  std::ostringstream os;
  for (size_t i = 0; i < items.size(); ++i) os << (i ? sep : "") << items[i];
  return os.str();
}

}  // namespace tx
