// GLUE tasks in the official TSV layout (<root>/<TASK>/{train,dev,test}.tsv) with the label
// mappings of GLUE/Transformers pinned: a wrong mapping is the classic reproduction bug.
#pragma once
#include <optional>
#include <string>
#include <vector>

namespace sculpt::data {

struct GlueTask {
  std::string name;       // cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte, wnli
  std::string dir;        // folder under the GLUE root: CoLA, SST-2, ...
  bool header;            // train/dev files start with a header row
  int text_a, text_b;     // column indices in train/dev (-1: no second text)
  int label;              // label column in train/dev (-1 = last column)
  int test_a, test_b;     // columns in test.tsv
  std::vector<std::string> labels;  // label strings in id order; empty: regression
  std::vector<std::string> dev_splits;  // e.g. {"dev"} or {"dev_matched", "dev_mismatched"}
  bool is_regression() const { return labels.empty(); }
  int num_labels() const { return labels.empty() ? 1 : static_cast<int>(labels.size()); }
};

// Lookup by name ("sst2", "sst-2", "SST-2", "mnli", ...); throws with the list of tasks.
const GlueTask& glue_task(const std::string& name);
const std::vector<GlueTask>& glue_tasks();

struct GlueExample {
  std::string text_a;
  std::optional<std::string> text_b;
  float label = -1;  // class id, or the score for STS-B; -1 for unlabeled test rows
  size_t line = 0;   // 1-based line in the file, for messages
};

// <root>/<TASK dir>/<split>.tsv
std::string glue_split_path(const GlueTask& task, const std::string& root, const std::string& split);

// Read one split: "train", "dev", "dev_matched", "test", ... A malformed row is an error
// naming file and line.
std::vector<GlueExample> read_glue_split(const GlueTask& task, const std::string& root, const std::string& split);

}  // namespace sculpt::data
