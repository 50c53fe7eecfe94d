#include "sculpt/train/sink.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "sculpt/core/error.h"
#include "sculpt/io/files.h"

namespace sculpt::train {

void JsonlWriter::write(const nlohmann::json& record) const {
  std::ofstream out(path_, std::ios::app);
  SCULPT_CHECK(out.good(), "{}: cannot append", path_);
  out << record.dump() << "\n";
  out.flush();
}

void JsonlWriter::truncate_after(int64_t step) const {
  if (!std::filesystem::exists(path_)) return;
  std::ifstream in(path_);
  std::string line, kept;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    try {
      auto j = nlohmann::json::parse(line);
      if (j.value("step", int64_t{0}) > step) continue;
    } catch (const nlohmann::json::exception&) {
      continue;  // a line cut short by a kill
    }
    kept += line + "\n";
  }
  io::write_file_atomic(path_, kept);
}

ProgressBar::ProgressBar(const std::string& mode, int64_t total)
    : enabled_(mode == "on" || (mode == "auto" && ::isatty(STDERR_FILENO))), total_(total),
      start_(std::chrono::steady_clock::now()), last_(start_) {}

void ProgressBar::update(int64_t done, const std::string& status) {
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  if (start_done_ < 0) start_done_ = done, start_ = now;
  if (done < total_ && now - last_ < std::chrono::milliseconds(200)) return;
  last_ = now;
  const double frac = total_ > 0 ? static_cast<double>(done) / static_cast<double>(total_) : 1.0;
  const int width = 30, filled = static_cast<int>(frac * width);
  const double secs = std::chrono::duration<double>(now - start_).count();
  const double rate = secs > 0 ? static_cast<double>(done - start_done_) / secs : 0.0;
  const double eta = rate > 0 ? static_cast<double>(total_ - done) / rate : 0.0;
  std::fprintf(stderr, "\r%3d%% |%s%s| %lld/%lld [%.0fs<%.0fs, %.2f it/s] %s\033[K", static_cast<int>(frac * 100),
               std::string(static_cast<size_t>(filled), '#').c_str(), std::string(static_cast<size_t>(width - filled), ' ').c_str(),
               static_cast<long long>(done), static_cast<long long>(total_), secs, eta, rate, status.c_str());
  std::fflush(stderr);
  drawn_ = true;
}

void ProgressBar::clear() {
  if (enabled_ && drawn_) std::fprintf(stderr, "\r\033[K"), drawn_ = false;
}

void ProgressBar::finish() {
  if (enabled_ && drawn_) std::fprintf(stderr, "\n"), drawn_ = false;
}

}  // namespace sculpt::train
