// tensortape::Error — every failure the library detects is thrown as this type, with the op
// name and the shapes involved, never a crash or silent garbage.
//
//   try { tt::matmul(a, b); }
//   catch (const tt::Error& e) { std::cerr << e.what(); }
//   // "matmul: inner dimensions differ: a [2, 3] @ b [4, 5]"
#pragma once

#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace tensortape {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// "[2, 3, 4]" — used in every error message that mentions a shape.
inline std::string shape_str(const std::vector<std::int64_t>& dims) {
  std::ostringstream out;
  out << '[';
  for (std::size_t i = 0; i < dims.size(); ++i) out << (i ? ", " : "") << dims[i];
  out << ']';
  return out.str();
}

namespace detail {
inline void append_all(std::ostringstream&) {}
template <class First, class... Rest>
void append_all(std::ostringstream& out, const First& first, const Rest&... rest) {
  if constexpr (std::is_same_v<First, std::vector<std::int64_t>>) {
    out << shape_str(first);
  } else {
    out << first;
  }
  append_all(out, rest...);
}
}  // namespace detail

// Builds a message from pieces (shapes print as [a, b]) and throws Error: "op: pieces...".
template <class... Parts>
[[noreturn]] void fail(const std::string& op, const Parts&... parts) {
  std::ostringstream out;
  out << op << ": ";
  detail::append_all(out, parts...);
  throw Error(out.str());
}

template <class... Parts>
void check(bool condition, const std::string& op, const Parts&... parts) {
  if (!condition) fail(op, parts...);
}

}  // namespace tensortape
