// Where a run reports: metrics.jsonl / eval.jsonl in the run directory (one JSON object per
// line), and a progress bar on stderr only when it is a terminal.
#pragma once
#include <nlohmann/json.hpp>

#include <chrono>
#include <string>

namespace sculpt::train {

class JsonlWriter {
 public:
  explicit JsonlWriter(std::string path) : path_(std::move(path)) {}
  void write(const nlohmann::json& record) const;  // appended and flushed
  // Drop records with "step" > step (a resumed run re-logs what came after its checkpoint).
  void truncate_after(int64_t step) const;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

class ProgressBar {
 public:
  // mode: auto (only when stderr is a terminal) | on | off
  ProgressBar(const std::string& mode, int64_t total);
  void update(int64_t done, const std::string& status);
  void clear();  // before a log line, so they do not interleave
  void finish();

 private:
  bool enabled_;
  int64_t total_;
  std::chrono::steady_clock::time_point start_, last_;
  int64_t start_done_ = -1;
  bool drawn_ = false;
};

}  // namespace sculpt::train
