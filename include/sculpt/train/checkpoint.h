// CheckpointManager: run_dir/checkpoints/step_00000500/{model.safetensors, optimizer.pt,
// rng.safetensors, state.json}. Each checkpoint is written into a temporary folder, fsync'ed
// and renamed into place; `latest` names the newest; only the last N are kept.
#pragma once
#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include <optional>
#include <string>
#include <vector>

#include "sculpt/models/key_map.h"
#include "sculpt/train/train_state.h"

namespace sculpt::train {

class CheckpointManager {
 public:
  CheckpointManager(std::string run_dir, int64_t keep_last);

  void save(torch::nn::Module& model, const models::KeyMap& keys, torch::optim::Optimizer& optimizer,
            const TrainState& state);
  // Restore the newest readable checkpoint; a corrupt one is reported and skipped for the
  // one before it. Returns nothing when there is none.
  std::optional<TrainState> restore(torch::nn::Module& model, const models::KeyMap& keys,
                                    torch::optim::Optimizer& optimizer);
  std::vector<std::string> list() const;  // oldest first
  std::string dir() const { return dir_; }

 private:
  TrainState restore_from(const std::string& path, torch::nn::Module& model, const models::KeyMap& keys,
                          torch::optim::Optimizer& optimizer);
  std::string dir_;
  int64_t keep_last_;
};

// Capture / restore every random generator the run uses (CPU, and CUDA when present).
io::TensorMap rng_state();
void set_rng_state(const io::TensorMap& state);

}  // namespace sculpt::train
