#include "sculpt/data/glue_text.h"
#include "test_util.h"

namespace sculpt {
namespace {

TEST(GlueText, T5InputsAndTargetsAsT5WasTrained) {
  data::GlueExample mnli{"The cat sat.", std::string("A cat sat."), 1, 0};
  EXPECT_EQ(data::t5_glue_input(data::glue_task("mnli"), mnli), "mnli hypothesis: A cat sat. premise: The cat sat.");
  EXPECT_EQ(data::t5_glue_target(data::glue_task("mnli"), 1), "entailment");
  EXPECT_EQ(data::t5_glue_target(data::glue_task("mnli"), 0), "contradiction");
  data::GlueExample sst{"a great movie", std::nullopt, 1, 0};
  EXPECT_EQ(data::t5_glue_input(data::glue_task("sst2"), sst), "sst2 sentence: a great movie");
  EXPECT_EQ(data::t5_glue_target(data::glue_task("sst2"), 1), "positive");
  EXPECT_EQ(data::t5_glue_target(data::glue_task("cola"), 0), "unacceptable");
  EXPECT_EQ(data::t5_glue_target(data::glue_task("wnli"), 1), "entailment");
  EXPECT_EQ(data::t5_glue_target(data::glue_task("stsb"), 3.85f), "3.8");
  EXPECT_EQ(data::t5_glue_target(data::glue_task("stsb"), 3.9f), "4.0");
  data::GlueExample qnli{"Where?", std::string("Here."), 0, 0};
  EXPECT_EQ(data::t5_glue_input(data::glue_task("qnli"), qnli), "qnli question: Where? sentence: Here.");
}

TEST(GlueText, GeneratedTextBackToLabelsUnknownIsNone) {
  EXPECT_EQ(data::t5_glue_parse(data::glue_task("sst2"), "positive"), 1.0);
  EXPECT_EQ(data::t5_glue_parse(data::glue_task("sst2"), " negative "), 0.0);
  EXPECT_FALSE(data::t5_glue_parse(data::glue_task("sst2"), "positively").has_value());
  EXPECT_EQ(data::t5_glue_parse(data::glue_task("rte"), "not_entailment"), 1.0);
  EXPECT_EQ(data::t5_glue_parse(data::glue_task("stsb"), "2.6"), 2.6);
  EXPECT_FALSE(data::t5_glue_parse(data::glue_task("stsb"), "high").has_value());
}

}  // namespace
}  // namespace sculpt
