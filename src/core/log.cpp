#include "sculpt/core/log.h"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace sculpt::log {
namespace {
Level g_level = Level::info;
int g_rank = 0;
std::mutex g_mutex;
}  // namespace

void set_level(Level level) { g_level = level; }
void set_rank(int rank) { g_rank = rank; }
bool enabled(Level level) { return level >= g_level && (g_rank == 0 || level >= Level::warn); }

void write(Level level, const std::string& message) {
  static const char* names[] = {"debug", "info", "warn", "error"};
  std::time_t now = std::time(nullptr);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", std::localtime(&now));
  std::lock_guard<std::mutex> lock(g_mutex);
  std::fprintf(stderr, "[%s] %s: %s\n", stamp, names[static_cast<int>(level)], message.c_str());
  std::fflush(stderr);
}

}  // namespace sculpt::log
