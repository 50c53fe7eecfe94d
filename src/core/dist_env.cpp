#include "sculpt/core/dist_env.h"

#include <algorithm>
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
    e.local_world_size = env_int("LOCAL_WORLD_SIZE", e.world_size);
  } else if (env("SLURM_NTASKS") && env("SLURM_PROCID")) {
    e.launcher = "slurm";
    e.rank = env_int("SLURM_PROCID", 0);
    e.world_size = env_int("SLURM_NTASKS", 1);
    e.local_rank = env_int("SLURM_LOCALID", 0);
    // "8" or "8(x2)": tasks on each node.
    if (const char* per_node = env("SLURM_NTASKS_PER_NODE") ? env("SLURM_NTASKS_PER_NODE") : env("SLURM_TASKS_PER_NODE"))
      e.local_world_size = std::max(1, std::atoi(per_node));
  }
  if (const char* a = env("MASTER_ADDR")) e.master_addr = a;
  e.master_port = env_int("MASTER_PORT", e.master_port);
  SCULPT_CHECK(e.world_size >= 1 && e.rank >= 0 && e.rank < e.world_size, "rank {} is outside world size {}", e.rank, e.world_size);
  SCULPT_CHECK(e.local_rank >= 0, "local rank {} is negative", e.local_rank);
  return e;
}

int cuda_index_for_rank(const DistEnv& e, int device_count) {
  SCULPT_CHECK(device_count > 0, "no CUDA device is visible to rank {} (CUDA_VISIBLE_DEVICES?)", e.rank);
  SCULPT_CHECK(e.local_rank < device_count,
               "rank {} has local rank {} but this node has {} GPU(s): start at most {} process(es) per node "
               "(torchrun --nproc-per-node, or SLURM --ntasks-per-node / --gpus-per-node)",
               e.rank, e.local_rank, device_count, device_count);
  return e.local_rank;
}

int threads_for_rank(const DistEnv& e, int cores) {
  for (const char* var : {"SCULPT_NUM_THREADS", "OMP_NUM_THREADS", "SLURM_CPUS_PER_TASK"})
    if (const char* v = env(var); v && std::atoi(v) > 0) return std::atoi(v);
  return std::max(1, cores / std::max(1, e.local_world_size));
}

}  // namespace sculpt
