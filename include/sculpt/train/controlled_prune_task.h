// A mask-learning pruning task whose schedule, Lagrangian and log lines are its PruneControl's:
// the Task hooks that only hand over to it, written once for the encoder (prune_task.cpp) and
// the decoder (decoder_prune_task.cpp) tasks. The task makes control_ in its constructor.
#pragma once
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "sculpt/train/prune_control.h"
#include "sculpt/train/task.h"

namespace sculpt::train {

class ControlledPruneTask : public Task {
 public:
  void begin_update(int64_t step, int64_t per_epoch, int64_t total) override { control_->begin_update(step, per_epoch, total); }
  void before_step() override { control_->before_step(); }
  void after_step() override { control_->after_step(); }
  nlohmann::json log_fields() override { return control_->log_fields(); }
  std::string log_line(const nlohmann::json& f) const override { return control_->log_line(f); }

 protected:
  std::unique_ptr<PruneControl> control_;
};

}  // namespace sculpt::train
