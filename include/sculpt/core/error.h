// sculpt::Error: the one exception type library code throws. main() prints it as one
// "error:" line (plus hint) and exits non-zero; tests EXPECT_THROW it. Never abort().
#pragma once
#include <fmt/format.h>
#include <stdexcept>
#include <string>

namespace sculpt {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message, std::string hint = "")
      : std::runtime_error(message), hint_(std::move(hint)) {}
  const std::string& hint() const { return hint_; }

 private:
  std::string hint_;
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace sculpt

#define SCULPT_CHECK(cond, ...)                 \
  do {                                          \
    if (!(cond)) ::sculpt::fail(__VA_ARGS__);   \
  } while (0)
