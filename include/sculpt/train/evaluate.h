// Evaluation of a sequence-classification model on encoded GLUE examples.
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "sculpt/data/batching.h"
#include "sculpt/data/squad.h"
#include "sculpt/models/outputs.h"

namespace sculpt::train {

class Distributed;

// Metrics of a GLUE task for any classifier: `logits_of` maps a collated batch (on the
// device) to [B, labels] logits. Batches are formed by length for speed; no gradients. With
// `shard` (a group of several ranks) each rank runs every world-th batch and the predictions
// are summed across ranks, so every rank returns the same metrics; every rank must call.
using LogitsFn = std::function<torch::Tensor(const models::Batch&)>;
std::map<std::string, double> evaluate_glue(const LogitsFn& logits_of, const std::string& task,
                                            const std::vector<data::Example>& examples, int64_t batch_size,
                                            int64_t pad_id, const torch::Device& device, Distributed* shard = nullptr);

// SQuAD evaluation of any span model (dense, pruning student, packed): `outputs_of` maps a
// collated batch (on the device) to its start/end logits; batched features, n-best
// post-processing, official EM/F1 (and v2.0 extras). `predictions` receives the answers when
// non-null. `shard`: as above. No gradients; the caller puts the model in eval mode.
using OutputsFn = std::function<models::ModelOutput(const models::Batch&)>;
std::map<std::string, double> evaluate_squad(const OutputsFn& outputs_of, const std::vector<data::SquadExample>& examples,
                                             const std::vector<data::SquadFeature>& features, int64_t batch_size,
                                             int64_t pad_id, const torch::Device& device,
                                             const data::SquadPostprocessOptions& options,
                                             std::vector<metrics::SquadPrediction>* predictions = nullptr,
                                             Distributed* shard = nullptr);

// run.device to a device: cpu, cuda (this rank's GPU, cuda:LOCAL_RANK, made current), cuda:N,
// or auto (cuda when a GPU is visible).
torch::Device resolve_device(const std::string& name);

}  // namespace sculpt::train
