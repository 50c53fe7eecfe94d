// The fine-tuning run behind `sculpt run` / `sculpt resume` for a GLUE task: one explicit
// loop (micro-batches -> accumulate -> clip -> step -> schedule -> log / eval / checkpoint).
#pragma once
#include <map>
#include <string>

#include "sculpt/recipe/recipe.h"

namespace sculpt::train {

struct RunResult {
  int64_t updates = 0;
  std::map<std::string, double> final_metrics;
  double best_metric = 0;
  int64_t best_step = -1;
  double train_seconds = 0;
};

// resume=false: a new run into recipe.run_dir() (an existing checkpoint there is an error);
// resume=true: continue from the newest checkpoint in it.
RunResult run_finetune(const recipe::Recipe& recipe, bool resume);
// What `sculpt run` runs: run_finetune, or for a recipe with a prune section the pruning run,
// the packed model's evaluation beside the teacher (compression.json) and the fine-tune stage.
RunResult run_recipe(const recipe::Recipe& recipe, bool resume);

}  // namespace sculpt::train
