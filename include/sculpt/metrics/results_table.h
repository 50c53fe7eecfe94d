// The benchmark table of a sweep: every cell directory's results (sweep_cell.json beside the
// run's results.json / compression.json) aggregated into one row per (method, size point),
// one column per task plus the average, each entry mean ± sample std over seeds (n shown),
// with the achieved size by both definitions, the retention in % of the teacher and the
// packed model's speedup. Metrics are shown ×100 (accuracy, F1, MCC, correlations alike), and
// the average over tasks is the mean of the per-task means, as GLUE tables do.
#pragma once
#include <limits>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

namespace sculpt::metrics {

struct CellResult {
  std::string dir, stage, task, variant, method;  // method: sp3 | cofi | "" (a dense fine-tune)
  std::map<std::string, std::string> params;      // grid point (run.seed included)
  std::string metric;
  double score = 0;                 // the cell's result: best dev (after the fine-tune stage if any)
  double teacher = -1;              // the teacher's score on the same dev set (-1: none)
  double remaining = -1, pruned = -1;  // packed encoder: SP3's remaining fraction, CoFi's pruned one
  std::string gate;                 // which of the two the best checkpoint was chosen by
  std::string model, teacher_model; // directories of the result and its teacher (for timing)
  std::string key;                  // the cell's directory relative to the sweep's, e.g. prune/rte/sp3_target-0.06_seed-1
  double speedup = -1;              // packed vs teacher as last measured by `sculpt table` (-1: never)
  // The packed model's score before the fine-tune stage, when one ran (NaN: none); the table
  // shows it as its own row, "<method> (before FT)".
  double before_finetune = std::numeric_limits<double>::quiet_NaN();
  // Training time: train_seconds summed over the results.json files in its directory (a pruning
  // run and its fine-tune stage write one each; evaluation is not in it); -1: not recorded.
  double train_seconds = -1;
  // What it ran on (results.json's "device", e.g. "cuda: NVIDIA H200"; several joined by "; ");
  // empty for runs from before results.json recorded it.
  std::string device;
};

// Every cell under SWEEP_DIR that has finished (unfinished cells are counted in `unfinished`).
std::vector<CellResult> collect_results(const std::string& sweep_dir, int* unfinished = nullptr);
// One cell directory of SWEEP_DIR (its sweep_cell.json beside its results); none while unfinished.
std::optional<CellResult> read_cell(const std::string& sweep_dir, const std::string& cell_dir);

// A finished cell as a small JSON record (its result and the speedup last measured for it), so
// that a committed table outlives its run directories: `sculpt table` writes one per cell under
// OUT/cells/ and reads them back for the cells whose directories are gone.
nlohmann::json to_record(const CellResult& c);
CellResult from_record(const nlohmann::json& j, const std::string& file);
std::vector<CellResult> read_records(const std::string& dir);  // every *.json under DIR; none if DIR is absent
void write_record(const CellResult& c, const std::string& dir);  // DIR/<key>.json
// One line per cell (key, stage, task, method, score, teacher, sizes, speedup, training
// seconds): what each number of the table comes from.
std::string cells_csv(const std::vector<CellResult>& cells);
// The live cells, plus each recorded cell whose key no live cell has.
std::vector<CellResult> merge_cells(std::vector<CellResult> live, const std::vector<CellResult>& recorded);

double mean(const std::vector<double>& v);
double sample_std(const std::vector<double>& v);  // n - 1 in the denominator; 0 for n < 2

struct Stat {
  double mean = 0, std = 0;
  int n = 0;
};

struct TableRow {
  std::string method, size;           // size: the grid point without the seed, e.g. "target-0.09"
  std::map<std::string, Stat> scores; // task -> metric ×100 over seeds
  std::map<std::string, Stat> retention;  // task -> % of the teacher over seeds
  Stat remaining, pruned, speedup;    // over every cell of the row (speedup: filled by the caller)
  std::map<std::string, Stat> remaining_of, pruned_of;  // task -> over that task's cells
  std::string gate;
  std::map<std::string, std::string> model_of, teacher_of;  // task -> one packed model and its teacher
  std::map<std::string, double> recorded_speedup;           // task -> a cell's recorded speedup (models gone)
  std::map<std::string, double> speedup_of;                 // task -> the speedup used (filled by the caller)
  std::vector<std::string> cell_keys;                       // the cells the row aggregates
  double average() const;             // mean of the task means; NaN when a task is missing
  double average_retention() const;
};

struct Table {
  std::vector<std::string> tasks;
  std::map<std::string, std::string> metric_of;  // task -> metric name
  std::vector<TableRow> rows;                     // dense rows first, then by method and size
};

// Group cells by (stage, method, grid point without run.seed); a cell with a score before its
// fine-tune stage adds it to the row "<method> (before FT)" of the same size.
Table build_table(const std::vector<CellResult>& cells);
std::string to_markdown(const Table& t);
std::string to_csv(const Table& t);
std::string to_latex(const Table& t);

}  // namespace sculpt::metrics
