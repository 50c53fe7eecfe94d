// The labelled data a BERT is compressed on — a GLUE task's classification examples or SQuAD's
// spans — behind one interface, so that pruning, its PCA initialisation and the packed model's
// report read either without knowing which.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "sculpt/recipe/recipe.h"
#include "sculpt/train/evaluate.h"

namespace sculpt::train {

class LabeledData {
 public:
  virtual ~LabeledData() = default;
  virtual std::string task() const = 0;
  virtual size_t train_size() const = 0;
  virtual const std::vector<int64_t>& train_lengths() const = 0;
  virtual models::Batch collate_train(const std::vector<size_t>& indices) const = 0;
  // The task's dev metrics of a model given by its outputs (logits, or start/end logits).
  virtual std::map<std::string, double> evaluate(const OutputsFn& outputs_of, int64_t batch_size, const torch::Device& device,
                                                 Distributed* shard = nullptr) const = 0;
  // The metric the recipe ranks by (eval.metric, else the task's: SQuAD F1, CoLA MCC, ...).
  virtual std::string main_metric(const recipe::Recipe& r) const = 0;
};

// R's task data; DEV_ONLY skips the train split (the packed model's report). MAX_POSITIONS bounds
// SQuAD's windows (the model's position table).
std::unique_ptr<LabeledData> open_labeled_data(const recipe::Recipe& r, bool dev_only, int64_t max_positions);

}  // namespace sculpt::train
