// CheckpointManager: run_dir/checkpoints/step_00000500/{model.safetensors, optimizer.pt,
// rng.safetensors, state.json, and task_state.safetensors when the task keeps state of its own
// (pruning masks)}. Each checkpoint is written into a temporary folder, fsync'ed
// and renamed into place; `latest` names the newest; only the last N are kept.
#pragma once
#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "sculpt/models/key_map.h"
#include "sculpt/train/train_state.h"

namespace sculpt::train {

class CheckpointManager {
 public:
  CheckpointManager(std::string run_dir, int64_t keep_last);

  // EXTRAS (may be empty): the task's own tensors, written as task_state.safetensors.
  void save(torch::nn::Module& model, const models::KeyMap& keys, torch::optim::Optimizer& optimizer,
            const TrainState& state, const io::TensorMap& extras = {});
  // Restore the newest readable checkpoint; a corrupt one is reported and skipped for the
  // one before it. Returns nothing when there is none. LOAD_EXTRAS receives task_state's tensors
  // (empty when the checkpoint has none) and the file's path; it throws to refuse them.
  using ExtrasLoader = std::function<void(const io::TensorMap&, const std::string&)>;
  std::optional<TrainState> restore(torch::nn::Module& model, const models::KeyMap& keys,
                                    torch::optim::Optimizer& optimizer, const ExtrasLoader& load_extras = {});
  std::vector<std::string> list() const;  // oldest first
  std::string dir() const { return dir_; }

 private:
  TrainState restore_from(const std::string& path, torch::nn::Module& model, const models::KeyMap& keys,
                          torch::optim::Optimizer& optimizer, const ExtrasLoader& load_extras);
  std::string dir_;
  int64_t keep_last_;
};

// Capture / restore every random generator the run uses (CPU, and CUDA when present).
io::TensorMap rng_state();
void set_rng_state(const io::TensorMap& state);

}  // namespace sculpt::train
