// Evaluation of a sequence-classification model on encoded GLUE examples.
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "sculpt/data/batching.h"
#include "sculpt/data/squad.h"
#include "sculpt/models/bert.h"

namespace sculpt::train {

// Metrics of a GLUE task for any classifier: `logits_of` maps a collated batch (on the
// device) to [B, labels] logits. Batches are formed by length for speed; no gradients.
using LogitsFn = std::function<torch::Tensor(const models::Batch&)>;
std::map<std::string, double> evaluate_glue(const LogitsFn& logits_of, const std::string& task,
                                            const std::vector<data::Example>& examples, int64_t batch_size,
                                            int64_t pad_id, const torch::Device& device);

// SQuAD evaluation: features, batched start/end logits, n-best post-processing, official
// EM/F1 (and v2.0 extras). `predictions` receives the answers when non-null.
std::map<std::string, double> evaluate_squad(models::Bert& model, const std::vector<data::SquadExample>& examples,
                                             const std::vector<data::SquadFeature>& features, int64_t batch_size,
                                             int64_t pad_id, const torch::Device& device,
                                             const data::SquadPostprocessOptions& options,
                                             std::vector<metrics::SquadPrediction>* predictions = nullptr);

// run.device to a device: cpu, cuda (this rank's GPU, cuda:LOCAL_RANK, made current), cuda:N,
// or auto (cuda when a GPU is visible).
torch::Device resolve_device(const std::string& name);

}  // namespace sculpt::train
