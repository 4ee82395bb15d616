#pragma once
// One exception type for everything a user can get wrong (bad files, bad flags,
// bad requests). Its message is meant to be shown to that user as-is.
#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace nativelm {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace nativelm
