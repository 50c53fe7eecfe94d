// The one-shot methods of a pruning recipe (prune.method magnitude | activation | taylor |
// slice): the teacher compressed with no training (compress/one_shot.h) into <run>/best, with
// pruning.json beside it, so that the pruning run's packed evaluation and fine-tune stage follow
// unchanged (train/finetune.h: run_recipe).
#pragma once
#include "sculpt/recipe/recipe.h"

namespace sculpt::train {

// Writes <run>/best and recipe.resolved.yaml; a run whose best/ exists already (a resumed sweep
// cell) is left as it is. One process.
void run_one_shot(const recipe::Recipe& recipe);

}  // namespace sculpt::train
