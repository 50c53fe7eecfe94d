// TrainState: the counters a run needs to continue exactly where it stopped (Marian's
// TrainingState), saved as JSON beside the weights.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

namespace sculpt::train {

struct TrainState {
  int64_t step = 0;            // updates done
  int64_t epoch = 0;           // epoch the next batch comes from
  int64_t batch_in_epoch = 0;  // next batch index within that epoch
  int64_t samples = 0;         // training examples seen
  int64_t tokens = 0;
  double best_metric = -1e300;
  int64_t best_step = -1;
  // Logging window (so a resumed run logs the same averages).
  double window_loss = 0;
  int64_t window_updates = 0;
  double train_seconds = 0;

  nlohmann::json to_json() const;
  static TrainState from_json(const nlohmann::json& j, const std::string& source);
};

}  // namespace sculpt::train
