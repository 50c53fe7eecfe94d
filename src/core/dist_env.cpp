#include "sculpt/core/dist_env.h"

#include <cstdlib>
#include <string>

#include "sculpt/core/error.h"

namespace sculpt {
namespace {
const char* env(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : nullptr;
}
int env_int(const char* name, int fallback) {
  const char* v = env(name);
  if (!v) return fallback;
  try {
    return std::stoi(v);
  } catch (const std::exception&) {
    fail("environment variable {}='{}' is not an integer", name, v);
  }
}
}  // namespace

DistEnv read_dist_env() {
  DistEnv e;
  if (env("WORLD_SIZE") && env("RANK")) {
    e.launcher = "torchrun";
    e.rank = env_int("RANK", 0);
    e.world_size = env_int("WORLD_SIZE", 1);
    e.local_rank = env_int("LOCAL_RANK", 0);
  } else if (env("SLURM_NTASKS") && env("SLURM_PROCID")) {
    e.launcher = "slurm";
    e.rank = env_int("SLURM_PROCID", 0);
    e.world_size = env_int("SLURM_NTASKS", 1);
    e.local_rank = env_int("SLURM_LOCALID", 0);
  }
  if (const char* a = env("MASTER_ADDR")) e.master_addr = a;
  e.master_port = env_int("MASTER_PORT", e.master_port);
  SCULPT_CHECK(e.world_size >= 1 && e.rank >= 0 && e.rank < e.world_size, "rank {} is outside world size {}", e.rank, e.world_size);
  return e;
}

}  // namespace sculpt
