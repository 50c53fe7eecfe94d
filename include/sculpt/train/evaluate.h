// Evaluation of a sequence-classification model on encoded GLUE examples.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "sculpt/data/batching.h"
#include "sculpt/data/squad.h"
#include "sculpt/models/bert.h"

namespace sculpt::train {

// Metrics of `task` on `examples` (batched by length for speed; model left in eval mode).
std::map<std::string, double> evaluate_glue(models::Bert& model, const std::string& task,
                                            const std::vector<data::Example>& examples, int64_t batch_size,
                                            int64_t pad_id, const torch::Device& device);

// SQuAD evaluation: features, batched start/end logits, n-best post-processing, official
// EM/F1 (and v2.0 extras). `predictions` receives the answers when non-null.
std::map<std::string, double> evaluate_squad(models::Bert& model, const std::vector<data::SquadExample>& examples,
                                             const std::vector<data::SquadFeature>& features, int64_t batch_size,
                                             int64_t pad_id, const torch::Device& device,
                                             const data::SquadPostprocessOptions& options,
                                             std::vector<metrics::SquadPrediction>* predictions = nullptr);

torch::Device resolve_device(const std::string& name);

}  // namespace sculpt::train
