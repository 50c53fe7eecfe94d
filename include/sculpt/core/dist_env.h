// Where this process sits in a job, read the way PyTorch jobs are launched: torchrun (RANK,
// WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) or SLURM (SLURM_PROCID, SLURM_NTASKS,
// SLURM_LOCALID; MASTER_ADDR/PORT from the sbatch script). No variables: one process.
#pragma once
#include <string>

namespace sculpt {

struct DistEnv {
  int rank = 0, world_size = 1, local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  std::string launcher = "none";  // none | torchrun | slurm
  bool distributed() const { return world_size > 1; }
};

DistEnv read_dist_env();

}  // namespace sculpt
