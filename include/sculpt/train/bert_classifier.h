// A BERT classifier for a GLUE task from a recipe's model section: the checkpoint's encoder with
// its head reshaped to the task's labels (a pretrained encoder gets a new, initialised head, as
// HF's from_pretrained), or a new model from the recipe's config.
#pragma once
#include <functional>

#include "sculpt/data/glue.h"
#include "sculpt/models/bert.h"
#include "sculpt/recipe/recipe.h"

namespace sculpt::train {

models::Bert build_bert_classifier(const recipe::Recipe& recipe, const data::GlueTask& task);
// The same with any head: HEAD sets the config's head fields (checkpoint weights for another head
// are reported unused; a missing head is initialised and reported).
models::Bert build_bert_with_head(const recipe::Recipe& recipe, const std::function<void(models::TransformerConfig&)>& head);

}  // namespace sculpt::train
