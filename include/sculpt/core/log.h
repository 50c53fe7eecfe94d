// fmt-style logging with a [tag] convention: LOG_INFO("[data] {} rows", n).
// Lines go to stderr; only rank 0 logs unless a call says otherwise.
#pragma once
#include <fmt/format.h>
#include <string>

namespace sculpt::log {

enum class Level { debug, info, warn, error };
void set_level(Level level);
void set_rank(int rank);
bool enabled(Level level);
void write(Level level, const std::string& message);

}  // namespace sculpt::log

#define SCULPT_LOG(level, ...)                                                  \
  do {                                                                          \
    if (::sculpt::log::enabled(level))                                          \
      ::sculpt::log::write(level, fmt::format(__VA_ARGS__));                    \
  } while (0)
#define LOG_INFO(...) SCULPT_LOG(::sculpt::log::Level::info, __VA_ARGS__)
#define LOG_WARN(...) SCULPT_LOG(::sculpt::log::Level::warn, __VA_ARGS__)
#define LOG_DEBUG(...) SCULPT_LOG(::sculpt::log::Level::debug, __VA_ARGS__)
