#include "sculpt/metrics/results_table.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "sculpt/core/error.h"
#include "sculpt/io/files.h"
#include "sculpt/io/hf_dir.h"

namespace fs = std::filesystem;

namespace sculpt::metrics {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double value_of(const nlohmann::json& j, const std::string& metric, const std::string& file) {
  SCULPT_CHECK(j.is_object() && j.contains(metric) && j[metric].is_number(), "{}: no '{}' value", file, metric);
  return j[metric].get<double>();
}

// The best dev score of the dense cell in TEACHER_DIR, which the cell of FILE is measured against.
double dense_best(const std::string& teacher_dir, const std::string& file) {
  const std::string tfile = (fs::path(teacher_dir) / "results.json").string();
  SCULPT_CHECK(fs::exists(tfile), "{}: its teacher {} has no results.json", file, teacher_dir);
  return io::read_json(tfile).at("best").value("value", 0.0);
}

Stat stat_of(const std::vector<double>& v) { return {mean(v), sample_std(v), static_cast<int>(v.size())}; }

std::string row_method(const CellResult& c) {
  if (!c.variant.empty()) return c.variant;
  return c.method.empty() ? "dense" : c.method;
}

// The grid point without the seed: "target-0.09", or "-" for none.
std::string size_point(const CellResult& c) {
  std::string s;
  for (const auto& [k, v] : c.params) {
    if (k == "run.seed") continue;
    s += (s.empty() ? "" : " ") + k.substr(k.rfind('.') + 1) + "=" + v;
  }
  return s.empty() ? "-" : s;
}

std::string fmt_stat(const Stat& s, int digits = 1) {
  if (s.n == 0) return "—";
  if (s.n == 1) return fmt::format("{:.{}f} (n=1)", s.mean, digits);
  return fmt::format("{:.{}f} ± {:.{}f} (n={})", s.mean, digits, s.std, digits, s.n);
}

std::string fmt_num(double v, const char* spec = "{:.1f}") { return std::isnan(v) ? "—" : fmt::format(fmt::runtime(spec), v); }

// Over the results.json files under the cell's DIR (a pruning run and its fine-tune stage): the
// sum of train_seconds (-1 when none has it) and the devices they name, each once.
void add_run_facts(const fs::path& dir, CellResult& c) {
  double total = 0;
  bool any = false;
  std::vector<std::string> devices;
  std::vector<fs::path> files;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.path().filename() == "results.json") files.push_back(e.path());
  std::sort(files.begin(), files.end());  // the run's own results.json before its stages'
  for (const auto& f : files) {
    const auto j = io::read_json(f.string());
    if (j.contains("train_seconds")) total += j["train_seconds"].get<double>(), any = true;
    const std::string d = j.value("device", "");
    if (!d.empty() && std::find(devices.begin(), devices.end(), d) == devices.end()) devices.push_back(d);
  }
  c.train_seconds = any ? total : -1;
  c.device = fmt::format("{}", fmt::join(devices, "; "));
}

}  // namespace

double mean(const std::vector<double>& v) {
  if (v.empty()) return kNaN;
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

double sample_std(const std::vector<double>& v) {
  if (v.size() < 2) return 0;
  const double m = mean(v);
  double ss = 0;
  for (double x : v) ss += (x - m) * (x - m);
  return std::sqrt(ss / static_cast<double>(v.size() - 1));
}

std::optional<CellResult> read_cell(const std::string& sweep_dir, const std::string& cell_dir) {
  const fs::path dir = cell_dir, f = dir / "sweep_cell.json";
  try {
    const auto cell = io::read_json(f.string());
    CellResult c;
    c.dir = dir.string();
    c.key = fs::relative(dir, sweep_dir).generic_string();
    c.stage = cell.value("stage", "");
    c.task = cell.value("task", "");
    c.variant = cell.value("variant", "");
    const auto params = cell.value("params", nlohmann::json::object());  // items() must not outlive it
    for (const auto& [k, v] : params.items()) c.params[k] = v.get<std::string>();
    const bool prunes = cell.value("prunes", false);
    if (prunes && fs::exists(dir / "compression.json")) {
      const std::string file = (dir / "compression.json").string();
      const auto j = io::read_json(file);
      c.method = j.value("method", "");
      c.metric = j.value("metric", "");
      // A model compressed before the task fine-tune (no teacher in its report, an untrained new
      // head) is measured against its stage's compare_to cell, with no "before FT" row.
      const bool new_head = j.at("teacher").is_null();
      if (new_head) {
        SCULPT_CHECK(cell.contains("teacher"), "{}: compressed before fine-tuning, and its sweep stage names no compare_to cell", file);
        c.teacher = dense_best(cell["teacher"].get<std::string>(), file);
        c.teacher_model = (fs::path(cell["teacher"].get<std::string>()) / "best").string();
      } else {
        c.teacher = value_of(j.at("teacher"), c.metric, file + " teacher");
      }
      if (j.contains("finetuned_best") && j["finetuned_best"].value("step", -1) >= 0) {
        c.score = j["finetuned_best"].value("value", 0.0);
        c.model = j.value("finetuned_model", "");
        if (!new_head) c.before_finetune = value_of(j.at("packed"), c.metric, file + " packed");
      } else {
        c.score = value_of(j.at("packed"), c.metric, file + " packed");
        c.model = j.value("packed_model", "");
      }
      const auto& s = j.at("sparsity");
      c.remaining = s.value("packed_remaining", -1.0);
      c.pruned = s.value("packed_sparsity", -1.0);
      // CoFi and the one-shot pruners name the pruned share; k-means keeps every weight (no gate).
      c.gate = c.method == "sp3" ? "remaining" : c.method == "kmeans" ? "" : "pruned";
      if (cell.contains("from")) c.teacher_model = (fs::path(cell["from"].get<std::string>()) / "best").string();
    } else if (!prunes && fs::exists(dir / "results.json")) {
      const std::string file = (dir / "results.json").string();
      const auto j = io::read_json(file);
      c.metric = j.value("metric", "");
      c.score = j.at("best").value("value", 0.0);
      c.teacher = c.score;
      c.remaining = 1;
      c.pruned = 0;
      c.model = c.teacher_model = (dir / "best").string();
      if (cell.contains("teacher")) {  // a student distilled from a dense cell (Prune OFA's transfer, its QAT)
        const fs::path teacher = cell["teacher"].get<std::string>();
        c.teacher = dense_best(teacher.string(), file);
        c.teacher_model = (teacher / "best").string();
        c.method = c.variant.empty() ? c.stage : c.variant;
        // Unstructured sparsity (the share of the encoder's matrices at zero) stands in the pruned column.
        const auto& final_metrics = j.at("final");
        c.pruned = final_metrics.contains("sparsity") ? final_metrics["sparsity"].get<double>() : 0.0;
        c.remaining = kNaN;
        c.gate = "pruned";
      }
    } else {
      return std::nullopt;  // not finished (a pruning run writes results.json before its packed evaluation)
    }
    add_run_facts(dir, c);
    return c;
  } catch (const nlohmann::json::exception& e) {
    fail("{}: unexpected contents beside it ({})", f.string(), e.what());
  }
}

std::vector<CellResult> collect_results(const std::string& sweep_dir, int* unfinished) {
  SCULPT_CHECK(fs::is_directory(sweep_dir), "{}: no such sweep directory", sweep_dir);
  std::vector<fs::path> cell_files;
  for (const auto& e : fs::recursive_directory_iterator(sweep_dir))
    if (e.path().filename() == "sweep_cell.json") cell_files.push_back(e.path());
  std::sort(cell_files.begin(), cell_files.end());
  std::vector<CellResult> out;
  int missing = 0;
  for (const auto& f : cell_files) {
    if (auto c = read_cell(sweep_dir, f.parent_path().string())) out.push_back(std::move(*c));
    else ++missing;
  }
  if (unfinished) *unfinished = missing;
  return out;
}

nlohmann::json to_record(const CellResult& c) {
  nlohmann::json j = {{"key", c.key},         {"stage", c.stage},   {"task", c.task},         {"variant", c.variant},
                      {"method", c.method},   {"params", c.params}, {"metric", c.metric},     {"score", c.score},
                      {"teacher", c.teacher}, {"gate", c.gate},     {"model", c.model},       {"teacher_model", c.teacher_model}};
  // NaN is not JSON: an absent size is written as null.
  j["remaining"] = std::isnan(c.remaining) ? nlohmann::json() : nlohmann::json(c.remaining);
  j["pruned"] = std::isnan(c.pruned) ? nlohmann::json() : nlohmann::json(c.pruned);
  if (c.speedup > 0) j["speedup"] = c.speedup;
  if (!std::isnan(c.before_finetune)) j["score_before_finetune"] = c.before_finetune;
  if (c.train_seconds >= 0) j["train_seconds"] = c.train_seconds;
  if (!c.device.empty()) j["device"] = c.device;
  return j;
}

CellResult from_record(const nlohmann::json& j, const std::string& file) {
  try {
    CellResult c;
    c.key = j.at("key").get<std::string>();
    c.stage = j.at("stage").get<std::string>();
    c.task = j.at("task").get<std::string>();
    c.variant = j.value("variant", "");
    c.method = j.value("method", "");
    c.params = j.value("params", std::map<std::string, std::string>{});
    c.metric = j.at("metric").get<std::string>();
    c.score = j.at("score").get<double>();
    c.teacher = j.at("teacher").get<double>();
    c.gate = j.value("gate", "");
    c.model = j.value("model", "");
    c.teacher_model = j.value("teacher_model", "");
    c.remaining = j.at("remaining").is_null() ? kNaN : j["remaining"].get<double>();
    c.pruned = j.at("pruned").is_null() ? kNaN : j["pruned"].get<double>();
    c.speedup = j.value("speedup", -1.0);
    c.before_finetune = j.value("score_before_finetune", kNaN);
    c.train_seconds = j.value("train_seconds", -1.0);
    c.device = j.value("device", "");
    SCULPT_CHECK(!c.key.empty() && !c.task.empty() && !c.metric.empty(), "{}: a cell record needs key, task and metric", file);
    return c;
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not a cell record ({})", file, e.what());
  }
}

std::vector<CellResult> read_records(const std::string& dir) {
  std::vector<CellResult> out;
  if (!fs::is_directory(dir)) return out;
  std::vector<fs::path> files;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.path().extension() == ".json") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (const auto& f : files) out.push_back(from_record(io::read_json(f.string()), f.string()));
  return out;
}

void write_record(const CellResult& c, const std::string& dir) {
  const fs::path file = fs::path(dir) / (c.key + ".json");
  fs::create_directories(file.parent_path());
  io::write_file_atomic(file.string(), to_record(c).dump(2) + "\n");
}

std::string cells_csv(const std::vector<CellResult>& cells) {
  // -1 and NaN mean "none" in a CellResult.
  auto num = [](double x, const char* f) { return std::isnan(x) || x == -1 ? std::string() : fmt::format(fmt::runtime(f), x); };
  // A device names a CPU model with commas in it: quoted as CSV quotes (inner quotes doubled).
  auto quoted = [](const std::string& s) {
    if (s.empty()) return s;
    std::string q = "\"";
    for (char ch : s) q += ch == '"' ? std::string("\"\"") : std::string(1, ch);
    return q + "\"";
  };
  std::string out = "key,stage,task,method,metric,score,teacher,remaining,pruned,speedup,train_seconds,device\n";
  for (const auto& c : cells)
    out += fmt::format("{},{},{},{},{},{:.4f},{},{},{},{},{},{}\n", c.key, c.stage, c.task, c.method, c.metric, c.score,
                       num(c.teacher, "{:.4f}"), num(c.remaining, "{:.4f}"), num(c.pruned, "{:.4f}"), num(c.speedup, "{:.3f}"),
                       num(c.train_seconds, "{:.0f}"), quoted(c.device));
  return out;
}

std::vector<CellResult> merge_cells(std::vector<CellResult> live, const std::vector<CellResult>& recorded) {
  std::set<std::string> keys;
  for (const auto& c : live) keys.insert(c.key);
  for (const auto& c : recorded)
    if (!keys.count(c.key)) live.push_back(c);
  return live;
}

double TableRow::average() const {
  std::vector<double> v;
  for (const auto& [task, s] : scores) v.push_back(s.mean);
  return v.empty() ? kNaN : mean(v);
}

double TableRow::average_retention() const {
  std::vector<double> v;
  for (const auto& [task, s] : retention) v.push_back(s.mean);
  return v.empty() ? kNaN : mean(v);
}

Table build_table(const std::vector<CellResult>& cells) {
  Table t;
  std::set<std::string> seen_tasks;
  // (dense first, method, size) -> cells
  std::map<std::tuple<bool, std::string, std::string, std::string>, std::vector<const CellResult*>> groups;
  std::vector<CellResult> before;  // the packed models before their fine-tune stage, as cells of their own rows
  for (const auto& c : cells)
    if (!std::isnan(c.before_finetune)) {
      CellResult b = c;
      b.variant = row_method(c) + " (before FT)";
      b.score = c.before_finetune;
      before.push_back(std::move(b));
    }
  for (const std::vector<CellResult>* list : {&cells, static_cast<const std::vector<CellResult>*>(&before)})
    for (const auto& c : *list) {
      if (seen_tasks.insert(c.task).second) t.tasks.push_back(c.task);
      t.metric_of[c.task] = c.metric;
      groups[{!c.method.empty(), c.stage, row_method(c), size_point(c)}].push_back(&c);
    }
  // Columns in GLUE's order (as GLUE tables print them), then any other task by name.
  static const std::vector<std::string> kGlueOrder = {"cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli"};
  auto rank = [](const std::string& task) {
    auto it = std::find(kGlueOrder.begin(), kGlueOrder.end(), task);
    return static_cast<size_t>(it - kGlueOrder.begin());
  };
  std::sort(t.tasks.begin(), t.tasks.end(),
            [&](const std::string& a, const std::string& b) { return std::make_pair(rank(a), a) < std::make_pair(rank(b), b); });
  for (const auto& [key, members] : groups) {
    TableRow row;
    row.method = std::get<2>(key);
    row.size = std::get<3>(key);
    std::map<std::string, std::vector<double>> score, retention;
    std::vector<double> remaining, pruned;
    std::map<std::string, std::vector<double>> remaining_of, pruned_of;
    for (const auto* c : members) {
      score[c->task].push_back(100 * c->score);
      remaining_of[c->task].push_back(c->remaining);
      pruned_of[c->task].push_back(c->pruned);
      if (c->teacher > 0) retention[c->task].push_back(100 * c->score / c->teacher);
      remaining.push_back(c->remaining);
      pruned.push_back(c->pruned);
      row.gate = c->gate;
      row.cell_keys.push_back(c->key);
      if (c->speedup > 0 && !row.recorded_speedup.count(c->task)) row.recorded_speedup[c->task] = c->speedup;
      if (!row.model_of.count(c->task)) {
        row.model_of[c->task] = c->model;
        row.teacher_of[c->task] = c->teacher_model;
      }
    }
    for (const auto& [task, v] : score) row.scores[task] = stat_of(v);
    for (const auto& [task, v] : retention) row.retention[task] = stat_of(v);
    for (const auto& [task, v] : remaining_of) row.remaining_of[task] = stat_of(v);
    for (const auto& [task, v] : pruned_of) row.pruned_of[task] = stat_of(v);
    row.remaining = stat_of(remaining);
    row.pruned = stat_of(pruned);
    // A row missing a task has no average (a mean over different tasks compares nothing).
    t.rows.push_back(std::move(row));
  }
  return t;
}

namespace {

struct Columns {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> body;
};

Columns columns(const Table& t, bool plain) {
  Columns c;
  c.header = {"method", "size"};
  for (const auto& task : t.tasks) c.header.push_back(fmt::format("{} ({})", task, t.metric_of.at(task)));
  c.header.insert(c.header.end(), {"avg", "retention %", "remaining", "pruned", "gate", "speedup"});
  for (const auto& r : t.rows) {
    std::vector<std::string> line{r.method, r.size};
    bool complete = true;
    for (const auto& task : t.tasks) {
      auto it = r.scores.find(task);
      complete &= it != r.scores.end();
      line.push_back(it == r.scores.end() ? "—" : plain ? fmt::format("{:.2f}", it->second.mean) : fmt_stat(it->second));
    }
    line.push_back(complete ? fmt_num(r.average(), plain ? "{:.2f}" : "{:.1f}") : "—");
    line.push_back(complete ? fmt_num(r.average_retention()) : "—");
    line.push_back(fmt_num(r.remaining.mean, "{:.3f}"));
    line.push_back(fmt_num(r.pruned.mean, "{:.3f}"));
    line.push_back(r.gate.empty() ? "—" : r.gate);
    line.push_back(r.speedup.n ? fmt::format("{:.2f}x", r.speedup.mean) : "—");
    c.body.push_back(std::move(line));
  }
  return c;
}

}  // namespace

std::string to_markdown(const Table& t) {
  auto c = columns(t, false);
  std::string out = "|";
  for (const auto& h : c.header) out += " " + h + " |";
  out += "\n|";
  for (size_t i = 0; i < c.header.size(); ++i) out += " --- |";
  out += "\n";
  for (const auto& line : c.body) {
    out += "|";
    for (const auto& cell : line) out += " " + cell + " |";
    out += "\n";
  }
  return out;
}

std::string to_csv(const Table& t) {
  // Long form: one line per (row, task) with every number, for plotting and spreadsheets.
  std::string out = "method,size,task,metric,mean,std,n,retention_pct,remaining,pruned,gate,speedup\n";
  for (const auto& r : t.rows)
    for (const auto& task : t.tasks) {
      auto it = r.scores.find(task);
      if (it == r.scores.end()) continue;
      auto ret = r.retention.find(task);
      out += fmt::format("{},{},{},{},{:.4f},{:.4f},{},{},{:.4f},{:.4f},{},{}\n", r.method, r.size, task, t.metric_of.at(task),
                         it->second.mean, it->second.std, it->second.n,
                         ret == r.retention.end() ? std::string() : fmt::format("{:.2f}", ret->second.mean), r.remaining.mean,
                         r.pruned.mean, r.gate, r.speedup.n ? fmt::format("{:.3f}", r.speedup.mean) : "");
    }
  return out;
}

std::string to_latex(const Table& t) {
  auto c = columns(t, false);
  std::string out = "\\begin{tabular}{ll" + std::string(c.header.size() - 2, 'r') + "}\n\\toprule\n";
  auto escape = [](std::string s) {
    std::string o;
    for (char ch : s) {
      if (ch == '_' || ch == '%' || ch == '&' || ch == '#') o += '\\';
      o += ch;
    }
    for (size_t p; (p = o.find("±")) != std::string::npos;) o.replace(p, std::string("±").size(), "$\\pm$");
    for (size_t p; (p = o.find("—")) != std::string::npos;) o.replace(p, std::string("—").size(), "--");
    return o;
  };
  for (size_t i = 0; i < c.header.size(); ++i) out += (i ? " & " : "") + escape(c.header[i]);
  out += " \\\\\n\\midrule\n";
  for (const auto& line : c.body) {
    for (size_t i = 0; i < line.size(); ++i) out += (i ? " & " : "") + escape(line[i]);
    out += " \\\\\n";
  }
  return out + "\\bottomrule\n\\end{tabular}\n";
}

}  // namespace sculpt::metrics
