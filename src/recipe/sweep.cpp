#include "sculpt/recipe/sweep.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <set>
#include <sstream>

#include "sculpt/core/error.h"
#include "sculpt/data/glue.h"
#include "sculpt/io/files.h"
#include "sculpt/recipe/node.h"
#include "sculpt/recipe/recipe.h"

namespace fs = std::filesystem;

namespace sculpt::recipe {
namespace {

// A grid: key -> values, in the order written (the cell name follows it).
using Grid = std::vector<std::pair<std::string, std::vector<std::string>>>;

Grid read_grid(Node& parent, const std::string& key) {
  Grid grid;
  YAML::Node g = parent.raw(key);
  if (!g || g.IsNull()) return grid;
  if (!g.IsMap()) {
    parent.error(key, "expected a map of key: [values]");
    return grid;
  }
  for (auto it = g.begin(); it != g.end(); ++it) {
    std::vector<std::string> values;
    if (it->second.IsScalar()) values.push_back(it->second.Scalar());
    else if (it->second.IsSequence())
      for (const auto& v : it->second) {
        if (v.IsScalar()) values.push_back(v.Scalar());
        else parent.error(key, fmt::format("{}: values must be scalars", it->first.Scalar()));
      }
    if (values.empty()) parent.error(key, fmt::format("{}: needs at least one value", it->first.Scalar()));
    grid.emplace_back(it->first.Scalar(), values);
  }
  return grid;
}

// Every combination of the grid's values, first key slowest.
std::vector<std::vector<std::pair<std::string, std::string>>> combinations(const Grid& grid) {
  std::vector<std::vector<std::pair<std::string, std::string>>> out{{}};
  for (const auto& [key, values] : grid) {
    std::vector<std::vector<std::pair<std::string, std::string>>> next;
    for (const auto& partial : out)
      for (const auto& v : values) {
        auto c = partial;
        c.emplace_back(key, v);
        next.push_back(std::move(c));
      }
    out = std::move(next);
  }
  return out;
}

// "prune.target" = "0.09" -> "target-0.09": the key's last part, so names stay short; a
// character that does not belong in a directory name becomes '_'.
std::string name_part(const std::string& key, const std::string& value) {
  std::string s = key.substr(key.rfind('.') + 1) + "-" + value;
  for (char& c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_')) c = '_';
  return s;
}

struct Variant {
  std::string name, recipe;
  std::vector<std::string> overrides;
  Grid grid;
};

}  // namespace

std::string SweepCell::done_file() const {
  return (fs::path(dir) / (prunes ? "compression.json" : "results.json")).string();
}

Sweep parse_sweep(const std::string& yaml_text, const std::string& source) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::ParserException& e) {
    fail("{}:{}: YAML syntax error: {}", source, e.mark.line + 1, e.msg);
  }
  SCULPT_CHECK(root.IsMap() && root["sweep"], "{}: a sweep file has one top-level key, `sweep`", source);
  auto errors = std::make_shared<ErrorList>();
  errors->file = source;
  Node top(root, "", errors);
  Node s = top.child("sweep");
  top.close();

  Sweep sweep;
  sweep.source = source;
  sweep.name = s.get<std::string>("name", "");
  if (sweep.name.empty()) s.error("name", "a sweep needs a name (its directory under output_root)");
  const std::string output_root = s.get<std::string>("output_root", "runs/sweeps");
  sweep.dir = (fs::path(output_root) / sweep.name).string();
  sweep.records = s.get<std::string>("records", "");
  sweep.tasks = s.get<std::vector<std::string>>("tasks", {});
  if (sweep.tasks.empty()) s.error("tasks", "name at least one task");
  std::map<std::string, std::vector<std::string>> task_overrides;
  {
    YAML::Node t = s.raw("task_overrides");
    if (t && t.IsMap())
      for (auto it = t.begin(); it != t.end(); ++it) task_overrides[it->first.Scalar()] = it->second.as<std::vector<std::string>>();
    else if (t && !t.IsNull()) s.error("task_overrides", "expected a map of task: [key=value, ...]");
  }
  YAML::Node stages = s.raw("stages");
  if (!stages || !stages.IsSequence() || stages.size() == 0) s.error("stages", "expected a list of stages");
  s.close();
  errors->throw_if_any();

  std::map<std::string, std::map<std::string, std::vector<int>>> cells_of;  // stage -> task -> cells
  for (size_t si = 0; si < stages.size(); ++si) {
    Node st(stages[si], fmt::format("sweep.stages[{}]", si), errors);
    const std::string stage = st.get<std::string>("name", "");
    if (stage.empty() || cells_of.count(stage)) st.error("name", "each stage needs a name of its own");
    const std::string from = st.get<std::string>("from", "");
    const std::string from_cell = st.get<std::string>("from_cell", "");
    if (!from.empty() && !cells_of.count(from)) st.error("from", fmt::format("'{}' is not an earlier stage", from));
    const std::string distill_from = st.get<std::string>("distill_from", "");
    if (!distill_from.empty() && !cells_of.count(distill_from))
      st.error("distill_from", fmt::format("'{}' is not an earlier stage", distill_from));
    const std::string compare_to = st.get<std::string>("compare_to", "");
    if (!compare_to.empty() && !cells_of.count(compare_to)) st.error("compare_to", fmt::format("'{}' is not an earlier stage", compare_to));
    if (!compare_to.empty() && !distill_from.empty()) st.error("compare_to", "distill_from already names the stage a cell is measured against");
    const std::string stage_recipe = st.get<std::string>("recipe", "");
    const auto stage_overrides = st.get<std::vector<std::string>>("overrides", {});
    const Grid stage_grid = read_grid(st, "grid");
    std::vector<Variant> variants;
    YAML::Node v = st.raw("variants");
    if (v && v.IsMap()) {
      for (auto it = v.begin(); it != v.end(); ++it) {
        Node vn(it->second, st.path("variants." + it->first.Scalar()), errors);
        Variant var{it->first.Scalar(), vn.get<std::string>("recipe", stage_recipe),
                    vn.get<std::vector<std::string>>("overrides", {}), read_grid(vn, "grid")};
        vn.close();
        if (var.recipe.empty()) vn.error("recipe", "no recipe here or on the stage");
        variants.push_back(std::move(var));
      }
    } else if (v && !v.IsNull()) {
      st.error("variants", "expected a map of name: {recipe, overrides, grid}");
    }
    if (variants.empty()) {
      if (stage_recipe.empty()) st.error("recipe", "a stage without variants needs a recipe");
      variants.push_back(Variant{"", stage_recipe, {}, {}});
    }
    st.close();
    errors->throw_if_any();
    sweep.stages.push_back(stage);

    // The stage's grid (seeds, typically) varies slowest, so that one seed of every task,
    // variant and size finishes before the second seed of any: a partial sweep is a table.
    std::map<std::string, int> upstream_of, teacher_of;
    const std::string reference = distill_from.empty() ? compare_to : distill_from;
    for (const auto& task : sweep.tasks) {
      if (reference.empty()) continue;
      const auto& candidates = cells_of[reference][task];
      SCULPT_CHECK(candidates.size() == 1, "{}: stage {} {} stage {}, which has {} cells for {} (one is needed)", source, stage,
                   distill_from.empty() ? "is compared to" : "distils from", reference, candidates.size(), task);
      teacher_of[task] = candidates.front();
    }
    for (const auto& task : sweep.tasks) {
      if (from.empty()) continue;
      const auto& candidates = cells_of[from][task];
      int upstream = -1;
      for (int c : candidates)
        if (from_cell.empty() ? candidates.size() == 1 : sweep.cells[c].name == from_cell) upstream = c;
      SCULPT_CHECK(upstream >= 0, "{}: stage {} starts from stage {}, which has {} cells for {}{}", source, stage, from,
                   candidates.size(), task,
                   from_cell.empty() ? " (name one with from_cell)" : fmt::format(", none named '{}'", from_cell));
      upstream_of[task] = upstream;
    }
    for (const auto& outer : combinations(stage_grid))
      for (const auto& task : sweep.tasks)
        for (const auto& var : variants)
          for (auto combo : combinations(var.grid)) {
            combo.insert(combo.end(), outer.begin(), outer.end());
            SweepCell cell;
            cell.stage = stage;
            cell.task = task;
            cell.variant = var.name;
            cell.recipe = var.recipe;
            std::string name = var.name;
            for (const auto& [k, value] : combo) {
              name += (name.empty() ? "" : "_") + name_part(k, value);
              cell.params[k] = value;
            }
            cell.name = name.empty() ? "default" : name;
            cell.dir = (fs::path(sweep.dir) / stage / task / cell.name).string();
            cell.overrides = stage_overrides;
            cell.overrides.insert(cell.overrides.end(), var.overrides.begin(), var.overrides.end());
            if (task_overrides.count(task))
              cell.overrides.insert(cell.overrides.end(), task_overrides[task].begin(), task_overrides[task].end());
            for (const auto& [k, value] : combo) cell.overrides.push_back(k + "=" + value);
            cell.overrides.push_back("data.task=" + task);
            cell.overrides.push_back("run.dir=" + cell.dir);
            cell.from = upstream_of.count(task) ? upstream_of[task] : -1;
            if (cell.from >= 0) cell.overrides.push_back("model.path=" + (fs::path(sweep.cells[cell.from].dir) / "best").string());
            cell.teacher = teacher_of.count(task) ? teacher_of[task] : -1;
            if (cell.teacher >= 0 && !distill_from.empty())
              cell.overrides.push_back("distill.teacher=" + (fs::path(sweep.cells[cell.teacher].dir) / "best").string());
            try {
              cell.prunes = load_recipe(cell.recipe, cell.overrides).prune.enabled();
            } catch (const Error& e) {
              fail("{}: cell {}/{}/{}: {}", source, stage, task, cell.name, e.what());
            }
            if (!sweep.records.empty())
              cell.record = (fs::path(sweep.records) / (fs::relative(cell.dir, sweep.dir).generic_string() + ".json")).string();
            cells_of[stage][task].push_back(static_cast<int>(sweep.cells.size()));
            sweep.cells.push_back(std::move(cell));
          }
  }
  return sweep;
}

Sweep load_sweep(const std::string& path) { return parse_sweep(io::read_file(path), path); }

std::vector<int> select_cells(const Sweep& sweep, const std::string& stage, const std::vector<std::string>& tasks,
                              const std::vector<std::string>& variants) {
  auto has = [](const std::vector<std::string>& list, const std::string& x) { return std::find(list.begin(), list.end(), x) != list.end(); };
  SCULPT_CHECK(stage.empty() || has(sweep.stages, stage), "{}: no stage '{}' (it has {})", sweep.source, stage,
               fmt::join(sweep.stages, ", "));
  for (const auto& t : tasks)
    SCULPT_CHECK(has(sweep.tasks, t), "{}: no task '{}' (it has {})", sweep.source, t, fmt::join(sweep.tasks, ", "));
  std::vector<std::string> known;  // every variant name, in sweep order
  for (const auto& c : sweep.cells)
    if (!c.variant.empty() && !has(known, c.variant)) known.push_back(c.variant);
  for (const auto& v : variants)
    SCULPT_CHECK(has(known, v), "{}: no variant '{}' (it has {})", sweep.source, v, fmt::join(known, ", "));
  std::vector<bool> wanted(sweep.cells.size(), false);
  // Upstream cells come earlier in the list, so one backward pass closes the set.
  for (size_t i = sweep.cells.size(); i-- > 0;) {
    const auto& c = sweep.cells[i];
    if ((stage.empty() || c.stage == stage) && (tasks.empty() || has(tasks, c.task)) && (variants.empty() || has(variants, c.variant)))
      wanted[i] = true;
    if (wanted[i])
      for (int u : c.upstream()) wanted[u] = true;
  }
  std::vector<int> out;
  for (size_t i = 0; i < wanted.size(); ++i)
    if (wanted[i]) out.push_back(static_cast<int>(i));
  return out;
}

CellState cell_state(const SweepCell& cell) {
  if (fs::exists(cell.done_file())) return CellState::done;
  if (fs::exists(fs::path(cell.dir) / "recipe.resolved.yaml")) return CellState::interrupted;
  if (!cell.record.empty() && fs::exists(cell.record)) return CellState::recorded;
  return CellState::fresh;
}

std::vector<int> cells_to_run(const Sweep& sweep, const std::vector<int>& selected, const std::vector<int>& consumers) {
  std::vector<CellState> state(sweep.cells.size());
  for (size_t i = 0; i < sweep.cells.size(); ++i) state[i] = cell_state(sweep.cells[i]);
  std::vector<bool> run(sweep.cells.size(), false);
  for (int i : consumers) run[i] = state[i] == CellState::fresh || state[i] == CellState::interrupted;
  // Upstream cells come earlier in the list, so one backward pass closes the set.
  for (size_t i = sweep.cells.size(); i-- > 0;)
    if (run[i])
      for (int u : sweep.cells[i].upstream()) run[u] = run[u] || state[u] != CellState::done;
  std::vector<int> out;
  for (int i : selected)
    if (run[i]) out.push_back(i);
  return out;
}

namespace {

// One thing a cell reads: the recipe key that names it, its path, and whether it is a model
// directory (else data).
struct CellRead {
  std::string key, path;
  bool model;
};

std::vector<CellRead> cell_reads(const SweepCell& c) {
  const Recipe r = load_recipe(c.recipe, c.overrides);
  std::vector<CellRead> out;
  for (const auto& [key, m] : {std::pair{"model.path", &r.model.path}, {"model.tokenizer", &r.model.tokenizer},
                               {"distill.teacher", &r.distill.teacher}})
    if (!m->empty()) out.push_back({key, *m, true});
  if (!r.data.is_squad() && !r.data.is_text()) {
    out.push_back({"data.root", r.data.root + "/" + data::glue_task(r.data.task).dir, false});
  } else {
    for (const auto& [key, f] : {std::pair{"data.train_file", &r.data.train_file}, {"data.dev_file", &r.data.dev_file}})
      if (!f->empty()) out.push_back({key, *f, false});
    if (r.data.is_squad() && r.data.train_file.empty()) out.push_back({"data.root", r.data.root, false});
  }
  return out;
}

std::string normal(const std::string& path) { return fs::path(path).lexically_normal().generic_string(); }

// Whether `path` lies inside the directory of one of the cells `to_run` (it makes it).
bool made_by(const Sweep& sweep, const std::vector<int>& to_run, const std::string& path) {
  const std::string p = normal(path);
  for (int i : to_run)
    if (p.rfind(normal(sweep.cells[i].dir) + "/", 0) == 0) return true;
  return false;
}

}  // namespace

SweepInputs sweep_inputs(const Sweep& sweep, const std::vector<int>& to_run) {
  std::set<std::string> cells, models, data;
  for (int i : to_run) {
    const auto& c = sweep.cells[i];
    for (int u : c.upstream())
      if (cell_state(sweep.cells[u]) == CellState::done) cells.insert(sweep.cells[u].dir);
    for (const auto& in : cell_reads(c)) {
      if (!in.model) {
        data.insert(in.path);
      } else if (!made_by(sweep, to_run, in.path)) {
        models.insert(normal(in.path));
      }
    }
  }
  return {{cells.begin(), cells.end()}, {models.begin(), models.end()}, {data.begin(), data.end()}};
}

std::vector<std::string> missing_inputs(const Sweep& sweep, int cell, const std::vector<int>& to_run) {
  std::vector<std::string> out;
  for (const auto& in : cell_reads(sweep.cells[cell]))
    if (!fs::exists(in.path) && !made_by(sweep, to_run, in.path)) out.push_back(in.key + " " + in.path);
  return out;
}

const char* to_string(CellState s) {
  switch (s) {
    case CellState::fresh: return "fresh";
    case CellState::interrupted: return "interrupted";
    case CellState::done: return "done";
    case CellState::recorded: return "recorded";
  }
  return "?";
}

SweepSlots plan_sweep_slots(int jobs, int gpus, int per_gpu, int cores) {
  SCULPT_CHECK(jobs >= 1 && per_gpu >= 1, "sweep: --jobs {} and --jobs-per-gpu {} must be at least 1", jobs, per_gpu);
  SweepSlots s;
  s.gpus = std::max(0, gpus);
  s.jobs = s.gpus > 0 ? std::min(jobs, s.gpus * per_gpu) : jobs;
  // One cell alone keeps the run's default; several share the cores (on a GPU they only feed it).
  s.threads = s.jobs == 1 ? 0 : std::max(1, std::max(1, cores) / s.jobs);
  return s;
}

std::string cuda_visible_device(int slot, int gpus, const char* parent) {
  const int g = slot % std::max(1, gpus);
  if (parent == nullptr || *parent == 0) return std::to_string(g);
  std::vector<std::string> ids;
  std::stringstream list(parent);
  for (std::string id; std::getline(list, id, ',');) ids.push_back(id);
  SCULPT_CHECK(g < static_cast<int>(ids.size()), "sweep: GPU {} of {}, but CUDA_VISIBLE_DEVICES is '{}'", g, gpus, parent);
  return ids[static_cast<size_t>(g)];
}

}  // namespace sculpt::recipe
