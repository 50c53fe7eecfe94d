// GLUE as text-to-text, as T5 was trained on it: "<task> <field>: text ..." inputs (fields in
// sorted order, e.g. "mnli hypothesis: ... premise: ...") and label words as targets
// ("negative"/"positive", "entailment"/"neutral"/"contradiction", STS-B scores rounded to 0.2).
#pragma once
#include <optional>
#include <string>

#include "sculpt/data/glue.h"

namespace sculpt::data {

std::string t5_glue_input(const GlueTask& task, const GlueExample& row);
std::string t5_glue_target(const GlueTask& task, float label);
// Generated text back to a label id (or STS-B score); nullopt for anything else.
std::optional<double> t5_glue_parse(const GlueTask& task, const std::string& text);

}  // namespace sculpt::data
