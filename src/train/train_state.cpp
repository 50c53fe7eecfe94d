#include "sculpt/train/train_state.h"

#include "sculpt/core/error.h"

namespace sculpt::train {

nlohmann::json TrainState::to_json() const {
  return {{"step", step},         {"epoch", epoch},           {"batch_in_epoch", batch_in_epoch},
          {"samples", samples},   {"tokens", tokens},         {"best_metric", best_metric},
          {"best_step", best_step}, {"window_loss", window_loss}, {"window_updates", window_updates},
          {"train_seconds", train_seconds}};
}

TrainState TrainState::from_json(const nlohmann::json& j, const std::string& source) {
  TrainState s;
  try {
    s.step = j.at("step");
    s.epoch = j.at("epoch");
    s.batch_in_epoch = j.at("batch_in_epoch");
    s.samples = j.at("samples");
    s.tokens = j.at("tokens");
    s.best_metric = j.at("best_metric");
    s.best_step = j.at("best_step");
    s.window_loss = j.at("window_loss");
    s.window_updates = j.at("window_updates");
    s.train_seconds = j.value("train_seconds", 0.0);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: incomplete train state ({})", source, e.what());
  }
  return s;
}

}  // namespace sculpt::train
