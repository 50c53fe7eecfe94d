// Task: what the training loop needs from a (model family, task) pair — the model, its key
// map, the training examples' lengths, the loss of a batch, evaluation and export. The loop
// itself (train/finetune.cpp) is written once for all of them.
#pragma once
#include <torch/nn/module.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sculpt/core/error.h"
#include "sculpt/io/safetensors.h"
#include "sculpt/models/key_map.h"
#include "sculpt/models/outputs.h"
#include "sculpt/train/optim.h"
#include "sculpt/recipe/recipe.h"

namespace sculpt::train {

class Task {
 public:
  virtual ~Task() = default;
  virtual std::string describe() const = 0;
  virtual torch::nn::Module& model() = 0;
  virtual const models::KeyMap& keys() const = 0;
  virtual const std::vector<int64_t>& train_lengths() const = 0;
  // The CPU batch of training examples `idx`. Runs on the prefetcher's thread while the
  // previous update computes, so it may only read the task's data.
  virtual models::Batch collate(const std::vector<size_t>& idx) const = 0;
  // Forward of a batch already on the device; the batch's mean loss (a device scalar).
  virtual torch::Tensor loss(const models::Batch& batch) = 0;
  // Tokens of training example i, for the throughput log (default: its length).
  virtual int64_t tokens_of(size_t i) const { return train_lengths()[i]; }
  // Metrics on the dev split(s); the model is left in eval mode.
  virtual std::map<std::string, double> evaluate() = 0;
  virtual std::string main_metric() const = 0;
  // Whether a larger main metric is better (perplexity: no).
  virtual bool higher_is_better() const { return true; }
  // An HF directory: config.json, model.safetensors, tokenizer files.
  virtual void export_to(const std::string& dir) = 0;

  // Hooks with which a task shapes the loop (pruning uses them; fine-tuning keeps defaults).
  virtual OptimizerSetup make_optimizer(const AdamWSettings& s) {
    return train::make_optimizer(hf_named_parameters(model(), keys()), s);  // HF names: HF's no-decay rule
  }
  // Parameters whose gradient norm is clipped (and checked); default every trainable one.
  virtual std::vector<torch::Tensor> clipped_parameters() {
    std::vector<torch::Tensor> out;
    for (const auto& p : model().parameters())
      if (p.requires_grad()) out.push_back(p);
    return out;
  }
  // Before the micro-batches of update `step` (0-based); state that depends only on the step
  // (mask groups switched on, target ramp) is set here, so a resumed run recomputes it.
  virtual void begin_update(int64_t /*step*/, int64_t /*updates_per_epoch*/, int64_t /*total*/) {}
  virtual void before_step() {}  // after clipping, before optimizer.step()
  virtual void after_step() {}
  // Extra fields for the metrics log (read at log steps only: may sync with the device).
  virtual nlohmann::json log_fields() { return nlohmann::json::object(); }
  virtual std::string log_line(const nlohmann::json& /*fields*/) const { return {}; }
  // Whether an evaluation may become the best checkpoint (pruning: only within the target).
  virtual bool eligible_for_best(const std::map<std::string, double>& /*metrics*/) const { return true; }
  // State of the task's own that a checkpoint keeps beside the model (pruning masks); loaded
  // back before the first update of a resumed run. A task refuses a map it cannot use.
  virtual io::TensorMap extra_state() { return {}; }
  virtual void load_extra_state(const io::TensorMap& /*state*/, const std::string& /*source*/) {}
  // The model's outputs on a batch already on the device (logits; hidden states when asked),
  // for distillation from a teacher; tasks that cannot be distilled refuse.
  virtual models::ModelOutput outputs(const models::Batch& /*batch*/, bool /*hidden_states*/) {
    fail("{}: no distillation from a teacher for this task", describe());
  }
};

// The task a recipe asks for (model.family x data.task), with its data loaded and tokenized.
// `restoring`: a checkpoint will overwrite every trained value, so one-off initialisations
// that only compute starting values (SP3's PCA) are skipped.
std::unique_ptr<Task> make_task(const recipe::Recipe& recipe, const torch::Device& device, bool restoring = false);
// Pruning with distillation (recipe.prune): the student, its masks and the Lagrangian are the
// trained module; the fine-tuned teacher at model.path stays frozen.
std::unique_ptr<Task> make_prune_task(const recipe::Recipe& recipe, const torch::Device& device, bool restoring);
// Pruning OPT on data.task clm (train/decoder_prune_task.cpp); make_prune_task hands OPT recipes to it.
std::unique_ptr<Task> make_decoder_prune_task(const recipe::Recipe& recipe, const torch::Device& device, bool restoring);
// Causal language modelling of OPT on local text (data.task clm): fine-tuning any OPT directory
// (HF's, rotated, packed), perplexity on the dev blocks as the metric.
std::unique_ptr<Task> make_clm_task(const recipe::Recipe& recipe, const torch::Device& device);
// Fine-tuning the packed model at model.path while distilling from recipe.distill.teacher
// (CoFi's stage after pruning).
std::unique_ptr<Task> make_distilled_packed_task(const recipe::Recipe& recipe, const torch::Device& device);
// Why model.path cannot be a pruning teacher for the recipe's task ("" when it can): it must be
// a dense BERT fine-tuned on the task (a classifier with its number of labels, or a SQuAD span model).
std::string teacher_problem(const recipe::Recipe& recipe);
// Masked language modelling on a text corpus (data.task mlm): the model gets BERT's MLM head,
// perplexity on held-out blocks is the metric.
std::unique_ptr<Task> make_mlm_task(const recipe::Recipe& recipe, const torch::Device& device);
// Wrappers any task can wear (recipe.distill with a dense teacher; recipe.sparsity): the loss
// becomes the teacher-distilled one; weights are pruned by magnitude on a schedule, or the
// pattern of zeros the model came with is kept, through every update.
std::unique_ptr<Task> with_dense_teacher(std::unique_ptr<Task> task, const recipe::Recipe& recipe, const torch::Device& device);
std::unique_ptr<Task> with_sparsity(std::unique_ptr<Task> task, const recipe::Recipe& recipe);
// recipe.quantize: 8-bit quantization-aware training; exports are int8 directories.
std::unique_ptr<Task> with_quantization(std::unique_ptr<Task> task, const recipe::Recipe& recipe);
// recipe.codebook (finetune): weights shared through the model's k-means codebook while training
// (compress/codebook_share.h); exports are codebook directories.
std::unique_ptr<Task> with_codebook(std::unique_ptr<Task> task, const recipe::Recipe& recipe);

}  // namespace sculpt::train
