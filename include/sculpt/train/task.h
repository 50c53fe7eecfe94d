// Task: what the training loop needs from a (model family, task) pair — the model, its key
// map, the training examples' lengths, the loss of a batch, evaluation and export. The loop
// itself (train/finetune.cpp) is written once for all of them.
#pragma once
#include <torch/nn/module.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "sculpt/models/key_map.h"
#include "sculpt/recipe/recipe.h"

namespace sculpt::train {

struct BatchStats {
  int64_t samples = 0, tokens = 0;
};

class Task {
 public:
  virtual ~Task() = default;
  virtual std::string describe() const = 0;
  virtual torch::nn::Module& model() = 0;
  virtual const models::KeyMap& keys() const = 0;
  virtual const std::vector<int64_t>& train_lengths() const = 0;
  // Forward on the device, returns the mean loss of the batch (examples by index).
  virtual torch::Tensor loss(const std::vector<size_t>& batch, BatchStats& stats) = 0;
  // Metrics on the dev split(s); the model is left in eval mode.
  virtual std::map<std::string, double> evaluate() = 0;
  virtual std::string main_metric() const = 0;
  // An HF directory: config.json, model.safetensors, tokenizer files.
  virtual void export_to(const std::string& dir) = 0;
};

// The task a recipe asks for (model.family x data.task), with its data loaded and tokenized.
std::unique_ptr<Task> make_task(const recipe::Recipe& recipe, const torch::Device& device);

}  // namespace sculpt::train
