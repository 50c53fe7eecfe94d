// Where this process sits in a job, read the way PyTorch jobs are launched: torchrun (RANK,
// WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT) or SLURM (SLURM_PROCID,
// SLURM_NTASKS, SLURM_LOCALID, SLURM_NTASKS_PER_NODE; MASTER_ADDR/PORT from the sbatch
// script). No variables: one process.
#pragma once
#include <string>

namespace sculpt {

struct DistEnv {
  int rank = 0, world_size = 1, local_rank = 0, local_world_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  std::string launcher = "none";  // none | torchrun | slurm
  bool distributed() const { return world_size > 1; }
};

DistEnv read_dist_env();

// The CUDA device index of this rank: its local rank. A local rank beyond the node's GPUs is
// refused (it would silently share a GPU with another rank).
int cuda_index_for_rank(const DistEnv& env, int device_count);

// Intra-op threads for this rank: SCULPT_NUM_THREADS, else OMP_NUM_THREADS, else
// SLURM_CPUS_PER_TASK, else the cores divided among the ranks on this node (at least 1).
int threads_for_rank(const DistEnv& env, int cores);

}  // namespace sculpt
