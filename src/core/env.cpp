#include "sculpt/core/env.h"

#include "sculpt/build_paths.h"
#include "sculpt/core/dist_env.h"

#include <torch/torch.h>

#include <malloc.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <thread>

namespace fs = std::filesystem;

namespace sculpt {

std::string shared_dir() {
  if (const char* env = std::getenv("SCULPT_SHARED"); env && *env) {
    return fs::exists(env) ? fs::path(env).lexically_normal().string() : std::string();
  }
#ifdef SCULPT_SOURCE_DIR
  fs::path beside = fs::path(SCULPT_SOURCE_DIR) / ".." / "shared";
  if (fs::exists(beside)) return fs::weakly_canonical(beside).string();
#endif
  if (fs::exists("../shared")) return fs::weakly_canonical("../shared").string();
  return {};
}

void reexec_with_short_openmp_spin(char** argv) {
  if (std::getenv("GOMP_SPINCOUNT") || std::getenv("OMP_WAIT_POLICY")) return;
  ::setenv("GOMP_SPINCOUNT", "30000", 1);
  ::execv("/proc/self/exe", argv);  // returns only on failure: then run on with libgomp's default
}

const char* malloc_settings_from_env() {
  for (const char* var : {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES"})
    if (std::getenv(var)) return var;
  return nullptr;
}

bool keep_freed_memory() {
  if (malloc_settings_from_env()) return false;
  return ::mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1 && ::mallopt(M_TRIM_THRESHOLD, 1 << 30) == 1;
}

void init_threads() {
  at::set_num_threads(threads_for_rank(read_dist_env(), static_cast<int>(std::thread::hardware_concurrency())));
}

std::string expand_path(const std::string& path) {
  std::string out = path;
  auto replace = [&](const std::string& var, const std::string& value) {
    for (size_t pos; (pos = out.find(var)) != std::string::npos;) out.replace(pos, var.size(), value);
  };
  if (out.find("${SCULPT_DATA}") != std::string::npos) {
    const char* env = std::getenv("SCULPT_DATA");
    replace("${SCULPT_DATA}", env && *env ? std::string(env) : shared_dir() + "/data");
  }
  if (out.find("${SCULPT_SHARED}") != std::string::npos) replace("${SCULPT_SHARED}", shared_dir());
  return out;
}

}  // namespace sculpt
