#include "sculpt/data/glue.h"

#include <fmt/ranges.h>
#include <algorithm>
#include <filesystem>
#include <fstream>

#include "sculpt/core/error.h"

namespace fs = std::filesystem;

namespace sculpt::data {

const std::vector<GlueTask>& glue_tasks() {
  // Columns as in the GLUE TSVs and HF's glue processors; labels in HF's id order.
  static const std::vector<GlueTask> tasks = {
      {"cola", "CoLA", false, 3, -1, 1, 1, -1, {"0", "1"}, {"dev"}},
      {"sst2", "SST-2", true, 0, -1, 1, 1, -1, {"0", "1"}, {"dev"}},
      {"mrpc", "MRPC", true, 3, 4, 0, 3, 4, {"0", "1"}, {"dev"}},
      {"stsb", "STS-B", true, 7, 8, 9, 7, 8, {}, {"dev"}},
      {"qqp", "QQP", true, 3, 4, 5, 1, 2, {"0", "1"}, {"dev"}},
      {"mnli", "MNLI", true, 8, 9, -1, 8, 9, {"contradiction", "entailment", "neutral"}, {"dev_matched", "dev_mismatched"}},
      {"qnli", "QNLI", true, 1, 2, 3, 1, 2, {"entailment", "not_entailment"}, {"dev"}},
      {"rte", "RTE", true, 1, 2, 3, 1, 2, {"entailment", "not_entailment"}, {"dev"}},
      {"wnli", "WNLI", true, 1, 2, 3, 1, 2, {"0", "1"}, {"dev"}},
  };
  return tasks;
}

const GlueTask& glue_task(const std::string& name) {
  std::string key;
  for (char c : name)
    if (std::isalnum(static_cast<unsigned char>(c))) key += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (key == "mnlimm" || key == "mnlim") key = "mnli";
  for (const auto& t : glue_tasks())
    if (t.name == key) return t;
  fail("unknown GLUE task '{}' (cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte, wnli)", name);
}

namespace {

std::vector<std::string> split_tabs(const std::string& line) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t i; (i = line.find('\t', start)) != std::string::npos; start = i + 1) out.push_back(line.substr(start, i - start));
  out.push_back(line.substr(start));
  return out;
}

}  // namespace

std::string glue_split_path(const GlueTask& task, const std::string& root, const std::string& split) {
  return (fs::path(root) / task.dir / (split + ".tsv")).string();
}

std::vector<GlueExample> read_glue_split(const GlueTask& task, const std::string& root, const std::string& split) {
  const std::string path = glue_split_path(task, root, split);
  std::ifstream in(path, std::ios::binary);
  SCULPT_CHECK(in.good(), "{}: cannot open the {} split of {} (GLUE root '{}'; scripts/download_glue.sh fetches it)",
               path, split, task.name, root);
  const bool test = split.rfind("test", 0) == 0;
  // CoLA's train/dev have no header; every test.tsv has one.
  const bool header = test || task.header;
  const int col_a = test ? task.test_a : task.text_a, col_b = test ? task.test_b : task.text_b;
  std::vector<GlueExample> out;
  std::string line;
  size_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (number == 1 && header) continue;
    if (line.empty()) continue;
    auto cols = split_tabs(line);
    const int label_col = task.label < 0 ? static_cast<int>(cols.size()) - 1 : task.label;
    const int needed = std::max({col_a, col_b, test ? 0 : label_col}) + 1;
    SCULPT_CHECK(static_cast<int>(cols.size()) >= needed, "{}:{}: expected at least {} tab-separated columns, found {}",
                 path, number, needed, cols.size());
    GlueExample ex;
    ex.line = number;
    ex.text_a = cols[col_a];
    if (col_b >= 0) ex.text_b = cols[col_b];
    if (!test) {
      const std::string& raw = cols[label_col];
      if (task.is_regression()) {
        try {
          size_t used = 0;
          ex.label = std::stof(raw, &used);
          SCULPT_CHECK(used == raw.size(), "trailing characters");
        } catch (const std::exception&) {
          fail("{}:{}: label '{}' is not a number", path, number, raw);
        }
      } else {
        auto it = std::find(task.labels.begin(), task.labels.end(), raw);
        SCULPT_CHECK(it != task.labels.end(), "{}:{}: label '{}' is not one of {}'s labels ({})", path, number, raw,
                     task.name, fmt::join(task.labels, ", "));
        ex.label = static_cast<float>(it - task.labels.begin());
      }
    }
    out.push_back(std::move(ex));
  }
  SCULPT_CHECK(!out.empty(), "{}: no rows", path);
  return out;
}

}  // namespace sculpt::data
