// sculpt table SWEEP_DIR: the sweep's benchmark table (metrics/results_table.h) as Markdown,
// CSV and LaTeX, the packed models' speedup against their teachers measured in this run, and
// one accuracy-versus-size plot per task (SVG; PNG too when rsvg-convert is installed).
#include <fmt/format.h>
#include <torch/torch.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>

#include "args.h"
#include "commands.h"
#include "sculpt/core/log.h"
#include "sculpt/io/files.h"
#include "sculpt/metrics/results_table.h"
#include "sculpt/metrics/table_plot.h"
#include "sculpt/models/any_bert.h"
#include "sculpt/train/evaluate.h"
#include "sculpt/train/timing.h"

namespace fs = std::filesystem;

namespace sculpt::cli {
namespace {

// The cells with the speedup their row used for their task.
std::vector<metrics::CellResult> with_row_speedups(std::vector<metrics::CellResult> cells, const metrics::Table& table) {
  std::map<std::string, double> speedup;  // cell key -> its row's speedup on its task
  for (const auto& row : table.rows)
    for (const auto& key : row.cell_keys)
      for (const auto& c : cells)
        if (c.key == key && row.speedup_of.count(c.task)) speedup[key] = row.speedup_of.at(c.task);
  for (auto& c : cells)
    if (auto it = speedup.find(c.key); it != speedup.end()) c.speedup = it->second;
  return cells;
}

// Each row's packed model against its teacher, per task, on one random batch; the row's
// speedup is the mean over tasks of teacher time / packed time. A (model, teacher) pair is timed
// once: a "(before FT)" row shares its fine-tuned row's shapes and takes that row's figure.
void measure_speedups(metrics::Table& table, int64_t batch_size, int64_t length, int steps, const torch::Device& device) {
  std::map<std::pair<std::string, std::string>, double> measured;
  for (auto& row : table.rows) {
    std::vector<double> ratios;
    for (const auto& [task, model] : row.model_of) {
      const std::string& teacher = row.teacher_of.at(task);
      if (model == teacher) {
        ratios.push_back(row.speedup_of[task] = 1.0);
        continue;
      }
      if (model.empty() || teacher.empty() || !fs::exists(fs::path(model) / "config.json") ||
          !fs::exists(fs::path(teacher) / "config.json")) {
        if (auto it = row.recorded_speedup.find(task); it != row.recorded_speedup.end()) {
          ratios.push_back(row.speedup_of[task] = it->second);
          LOG_INFO("[table] {} {} on {}: models gone; the recorded {:.2f}x", row.method, row.size, task, it->second);
        } else {
          LOG_WARN("[table] {} {} on {}: model or teacher directory gone and no recorded speedup", row.method, row.size, task);
        }
        continue;
      }
      if (auto it = measured.find({model, teacher}); it != measured.end()) {
        ratios.push_back(row.speedup_of[task] = it->second);
        continue;
      }
      std::vector<models::AnyBert> nets{models::load_any_bert(teacher), models::load_any_bert(model)};
      int64_t T = length, V = nets[0].config.vocab_size;
      for (auto& n : nets) {
        n.to(device);
        n.module->eval();
        T = std::min(T, n.config.max_positions);
        V = std::min(V, n.config.vocab_size);
      }
      models::Batch batch;
      batch.input_ids = torch::randint(5, V, {batch_size, T}, torch::kLong).to(device);
      const auto secs = train::median_forward_seconds(nets, batch, steps, 1, device);
      ratios.push_back(row.speedup_of[task] = measured[{model, teacher}] = secs[0] / secs[1]);
      LOG_INFO("[table] {} {} {}: teacher {:.4f} s, packed {:.4f} s per {}x{} batch: {:.2f}x", row.method, row.size, task, secs[0],
               secs[1], batch_size, T, ratios.back());
    }
    if (!ratios.empty()) row.speedup = {metrics::mean(ratios), metrics::sample_std(ratios), static_cast<int>(ratios.size())};
  }
}

}  // namespace

int cmd_table(int argc, char** argv) {
  auto args = Args::parse(argc, argv, 2, {"out", "shape", "steps", "device", "records"}, {"no-speed"});
  SCULPT_CHECK(args.positional.size() == 1,
               "usage: sculpt table SWEEP_DIR [--out DIR] [--records DIR] [--no-speed] [--shape 32x128] [--steps 5]");
  const std::string sweep_dir = args.positional[0];
  const fs::path out = args.get("out", (fs::path(sweep_dir) / "table").string());
  // Cell records (default OUT/cells) keep the cells whose run directories are gone.
  const fs::path records = args.get("records", (out / "cells").string());
  int unfinished = 0;
  const auto recorded = metrics::read_records(records.string());
  const auto live = fs::is_directory(sweep_dir) ? metrics::collect_results(sweep_dir, &unfinished) : std::vector<metrics::CellResult>{};
  const auto cells = metrics::merge_cells(live, recorded);
  SCULPT_CHECK(!cells.empty(), "{}: no finished cell (sweep_cell.json with results.json / compression.json) and no record in {}",
               sweep_dir, records.string());
  LOG_INFO("[table] {} cells from {}, {} more from the records in {}", live.size(), sweep_dir, cells.size() - live.size(),
           records.string());
  auto table = metrics::build_table(cells);
  if (!args.has("no-speed")) {
    const std::string shape = args.get("shape", "32x128");
    const auto x = shape.find('x');
    SCULPT_CHECK(x != std::string::npos, "--shape is BATCHxLENGTH, e.g. 32x128");
    measure_speedups(table, std::stoll(shape.substr(0, x)), std::stoll(shape.substr(x + 1)), std::stoi(args.get("steps", "5")),
                     train::resolve_device(args.get("device", "auto")));
  }
  fs::create_directories(out);
  const auto measured = with_row_speedups(cells, table);
  for (const auto& c : measured) metrics::write_record(c, records.string());
  const std::string md = metrics::to_markdown(table);
  io::write_file_atomic((out / "table.md").string(), md);
  io::write_file_atomic((out / "table.csv").string(), metrics::to_csv(table));
  io::write_file_atomic((out / "table.tex").string(), metrics::to_latex(table));
  io::write_file_atomic((out / "cells.csv").string(), metrics::cells_csv(measured));
  const bool png = std::system("command -v rsvg-convert >/dev/null 2>&1") == 0;
  for (const auto& task : table.tasks) {
    const std::string svg = (out / ("plot_" + task + ".svg")).string();
    io::write_file_atomic(svg, metrics::plot_task_svg(table, task));
    if (png) {
      const std::string cmd = fmt::format("rsvg-convert -f png -o '{}' '{}'", (out / ("plot_" + task + ".png")).string(), svg);
      if (std::system(cmd.c_str()) != 0) LOG_WARN("[table] {} failed", cmd);
    }
  }
  std::printf("%s\n", md.c_str());
  double seconds = 0;
  int timed = 0;
  for (const auto& c : cells)
    if (c.train_seconds >= 0) seconds += c.train_seconds, ++timed;
  std::printf("# training time: %.1f h in the %d of %zu cells that recorded it (per cell: cells.csv)\n", seconds / 3600, timed,
              cells.size());
  // Cells of one table may have run on different machines (scripts/gpu_sweep.sh): say which.
  std::map<std::string, int> on_device;
  for (const auto& c : cells) ++on_device[c.device.empty() ? "(not recorded)" : c.device];
  for (const auto& [device, n] : on_device) std::printf("# %d cells ran on %s\n", n, device.c_str());
  std::printf("# %zu finished cells (%zu from records), %d unfinished; metric ×100, mean ± sample std over seeds; retention: %% of the teacher on "
              "the same dev set; remaining (SP3) and pruned (CoFi): fractions of the encoder's weights, `gate` the one that "
              "chose the best checkpoint\n# written: %s/table.{md,csv,tex}, cells.csv, plot_<task>.svg%s\n",
              cells.size(), cells.size() - live.size(), unfinished, out.string().c_str(), png ? " and .png" : " (no rsvg-convert: no PNG)");
  return 0;
}

}  // namespace sculpt::cli
