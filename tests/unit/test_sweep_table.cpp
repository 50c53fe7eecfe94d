// The sweep file's expansion into cells and the benchmark table's arithmetic, on hand-made
// result files whose numbers are worked out in the comments.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "sculpt/core/env.h"
#include "sculpt/core/error.h"
#include "sculpt/io/files.h"
#include "sculpt/metrics/results_table.h"
#include "sculpt/metrics/table_plot.h"
#include "sculpt/recipe/sweep.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace sculpt;

namespace {

std::string recipe_path(const std::string& name) { return std::string(SCULPT_SOURCE_DIR) + "/recipes/tests/" + name; }

std::string two_stage_sweep(const std::string& root, const std::string& extra_stage_key = "") {
  return "sweep:\n"
         "  name: s\n"
         "  output_root: " + root + "\n"
         "  tasks: [sst2, rte]\n"
         "  task_overrides: {rte: [data.max_seq_len=32]}\n"
         "  stages:\n"
         "    - name: teacher\n"
         "      recipe: " + recipe_path("tiny_bert_finetune.yaml") + "\n"
         "      grid: {run.seed: [5]}\n"
         "    - name: prune\n"
         "      from: teacher\n" + extra_stage_key +
         "      grid: {run.seed: [1, 2]}\n"
         "      variants:\n"
         "        sp3: {recipe: " + recipe_path("tiny_bert_sp3.yaml") + ", grid: {prune.target: [0.3, 0.5]}}\n";
}

void write(const fs::path& p, const nlohmann::json& j) {
  fs::create_directories(p.parent_path());
  io::write_file_atomic(p.string(), j.dump());
}

// A finished cell: sweep_cell.json plus results.json (dense) or compression.json (pruned).
void dense_cell(const fs::path& root, const std::string& task, const std::string& metric, double best) {
  const fs::path d = root / "teacher" / task / "seed-42";
  write(d / "sweep_cell.json", {{"stage", "teacher"}, {"task", task}, {"variant", ""}, {"params", {{"run.seed", "42"}}}, {"prunes", false}});
  write(d / "results.json", {{"metric", metric}, {"best", {{"step", 10}, {"value", best}}}});
}

void pruned_cell(const fs::path& root, const std::string& task, const std::string& variant, const std::string& target, int seed,
                 const std::string& metric, double teacher, double packed, double remaining, double pruned,
                 double finetuned = -1) {
  const fs::path d = root / "prune" / task / (variant + "_target-" + target + "_seed-" + std::to_string(seed));
  write(d / "sweep_cell.json", {{"stage", "prune"}, {"task", task}, {"variant", variant},
                                {"params", {{"prune.target", target}, {"run.seed", std::to_string(seed)}}}, {"prunes", true},
                                {"from", (root / "teacher" / task / "seed-42").string()}});
  nlohmann::json c = {{"method", variant},
                      {"metric", metric},
                      {"teacher", {{metric, teacher}}},
                      {"packed", {{metric, packed}}},
                      {"sparsity", {{"packed_remaining", remaining}, {"packed_sparsity", pruned}}}};
  if (finetuned >= 0) c["finetuned_best"] = {{"step", 4}, {"value", finetuned}};
  write(d / "compression.json", c);
}

}  // namespace

TEST(Sweep, ExpandsStagesTasksVariantsAndGridIntoNamedCells) {
  sculpt::testing::TempDir tmp;
  auto s = recipe::parse_sweep(two_stage_sweep(tmp.str()), "t.yaml");
  EXPECT_EQ(s.dir, tmp.str("s"));
  ASSERT_EQ(s.cells.size(), 2u + 2u * 2u * 2u);  // 2 teachers; 2 tasks x 2 targets x 2 seeds
  EXPECT_EQ(s.cells[0].dir, tmp.str("s/teacher/sst2/seed-5"));
  EXPECT_FALSE(s.cells[0].prunes);
  EXPECT_EQ(s.cells[0].done_file(), tmp.str("s/teacher/sst2/seed-5/results.json"));
  // The stage's grid (seed) slowest, then task, then the variant's grid; names list the
  // variant's keys first.
  const auto& c = s.cells[2];
  EXPECT_EQ(c.stage, "prune");
  EXPECT_EQ(c.name, "sp3_target-0.3_seed-1");
  EXPECT_EQ(s.cells[3].name, "sp3_target-0.5_seed-1");
  EXPECT_EQ(s.cells[4].name, "sp3_target-0.3_seed-1");
  EXPECT_EQ(s.cells[4].task, "rte");
  EXPECT_EQ(s.cells[6].name, "sp3_target-0.3_seed-2");
  EXPECT_TRUE(c.prunes);
  EXPECT_EQ(c.from, 0);
  EXPECT_EQ(c.done_file(), tmp.str("s/prune/sst2/sp3_target-0.3_seed-1/compression.json"));
  const std::vector<std::string> want = {"prune.target=0.3", "run.seed=1", "data.task=sst2",
                                         "run.dir=" + tmp.str("s/prune/sst2/sp3_target-0.3_seed-1"),
                                         "model.path=" + tmp.str("s/teacher/sst2/seed-5/best")};
  EXPECT_EQ(c.overrides, want);
  // rte's cells carry the task override before the grid values, and start from rte's teacher.
  const auto& r = s.cells[4];
  EXPECT_EQ(r.task, "rte");
  EXPECT_EQ(r.overrides.front(), "data.max_seq_len=32");
  EXPECT_EQ(r.from, 1);
  EXPECT_EQ(recipe::cell_state(r), recipe::CellState::fresh);
  fs::create_directories(r.dir);
  io::write_file_atomic(r.dir + "/recipe.resolved.yaml", "x");
  EXPECT_EQ(recipe::cell_state(r), recipe::CellState::interrupted);
  io::write_file_atomic(r.dir + "/results.json", "{}");  // the pruning stage alone is not the end
  EXPECT_EQ(recipe::cell_state(r), recipe::CellState::interrupted);
  io::write_file_atomic(r.dir + "/compression.json", "{}");
  EXPECT_EQ(recipe::cell_state(r), recipe::CellState::done);
}

TEST(Sweep, SelectsAStagesOrTasksCellsWithTheCellsTheyStartFrom) {
  sculpt::testing::TempDir tmp;
  // Cells: 0 teacher/sst2, 1 teacher/rte, then prune seed 1: 2-3 sst2, 4-5 rte; seed 2: 6-7 sst2, 8-9 rte.
  auto s = recipe::parse_sweep(two_stage_sweep(tmp.str()), "t.yaml");
  EXPECT_EQ(recipe::select_cells(s, "", {}), (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_EQ(recipe::select_cells(s, "", {"rte"}), (std::vector<int>{1, 4, 5, 8, 9}));
  EXPECT_EQ(recipe::select_cells(s, "prune", {"sst2"}), (std::vector<int>{0, 2, 3, 6, 7}));
  EXPECT_EQ(recipe::select_cells(s, "teacher", {}), (std::vector<int>{0, 1}));
  // A second variant in the prune stage: cells 0-1 teachers; seed 1: sst2 sp3 2-3, cofi 4,
  // rte sp3 5-6, cofi 7; seed 2: sst2 8-10, rte 11-13.
  std::string two = two_stage_sweep(tmp.str());
  two += "        cofi: {recipe: " + recipe_path("tiny_bert_cofi.yaml") + ", grid: {prune.target: [0.9]}}\n";
  auto v = recipe::parse_sweep(two, "t.yaml");
  ASSERT_EQ(v.cells.size(), 14u);
  ASSERT_EQ(v.cells[7].name, "cofi_target-0.9_seed-1");
  EXPECT_EQ(recipe::select_cells(v, "", {"rte"}, {"sp3"}), (std::vector<int>{1, 5, 6, 11, 12}));
  EXPECT_EQ(recipe::select_cells(v, "prune", {}, {"cofi"}), (std::vector<int>{0, 1, 4, 7, 10, 13}));
  try {
    recipe::select_cells(v, "", {}, {"sp4"});
    FAIL() << "an unknown variant passed";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("t.yaml: no variant 'sp4' (it has sp3, cofi)"), std::string::npos) << e.what();
  }
  try {
    recipe::select_cells(s, "", {"rte", "mrpc"});
    FAIL() << "an unknown task passed";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("t.yaml: no task 'mrpc' (it has sst2, rte)"), std::string::npos) << e.what();
  }
  try {
    recipe::select_cells(s, "prnue", {});
    FAIL() << "an unknown stage passed";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("t.yaml: no stage 'prnue' (it has teacher, prune)"), std::string::npos) << e.what();
  }
}

TEST(Sweep, SlotsShareGpusAndCoresAndFollowTheSchedulersDeviceList) {
  auto plan = [](int jobs, int gpus, int per_gpu, int cores) {
    const auto s = recipe::plan_sweep_slots(jobs, gpus, per_gpu, cores);
    return std::vector<int>{s.jobs, s.threads, s.gpus};
  };
  EXPECT_EQ(plan(1, 0, 1, 16), (std::vector<int>{1, 0, 0}));  // one cell: the run's own threads
  EXPECT_EQ(plan(4, 0, 1, 16), (std::vector<int>{4, 4, 0}));
  EXPECT_EQ(plan(8, 0, 1, 2), (std::vector<int>{8, 1, 0}));   // never 0 threads
  EXPECT_EQ(plan(8, 1, 1, 16), (std::vector<int>{1, 0, 1}));  // one cell a GPU by default
  EXPECT_EQ(plan(8, 1, 8, 16), (std::vector<int>{8, 2, 1}));
  EXPECT_EQ(plan(8, 2, 3, 16), (std::vector<int>{6, 2, 2}));
  EXPECT_THROW(plan(0, 1, 1, 16), Error);
  EXPECT_THROW(plan(2, 1, 0, 16), Error);
  // Slot s on GPU s % G; a scheduler's list maps the sweep's GPU g to its g-th entry.
  EXPECT_EQ(recipe::cuda_visible_device(0, 2, nullptr), "0");
  EXPECT_EQ(recipe::cuda_visible_device(3, 2, nullptr), "1");
  EXPECT_EQ(recipe::cuda_visible_device(1, 2, ""), "1");
  EXPECT_EQ(recipe::cuda_visible_device(2, 2, "4,6"), "4");
  EXPECT_EQ(recipe::cuda_visible_device(5, 2, "4,6"), "6");
  EXPECT_EQ(recipe::cuda_visible_device(4, 1, "GPU-8d2f"), "GPU-8d2f");
  EXPECT_THROW(recipe::cuda_visible_device(1, 2, "5"), Error);
}

TEST(Sweep, RecordedCellsAreKeptAndRunAgainOnlyForTheModelALaterCellStartsFrom) {
  sculpt::testing::TempDir tmp;
  std::string text = two_stage_sweep(tmp.str());
  text.insert(text.find("  tasks:"), "  records: " + tmp.str("records") + "\n");
  auto s = recipe::parse_sweep(text, "t.yaml");
  // Cells: 0 teacher/sst2, 1 teacher/rte, then prune seed 1: 2-3 sst2, 4-5 rte; seed 2: 6-7 sst2, 8-9 rte.
  EXPECT_EQ(s.cells[4].record, tmp.str("records/prune/rte/sp3_target-0.3_seed-1.json"));
  const std::vector<int> all = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  EXPECT_EQ(recipe::cells_to_run(s, all, all), all);
  // runs/ lost: both teachers and every rte prune cell and sst2's seed 1 are records only.
  for (int i : {0, 1, 2, 3, 4, 5, 8, 9}) write(s.cells[i].record, nlohmann::json::object());
  EXPECT_EQ(recipe::cell_state(s.cells[1]), recipe::CellState::recorded);
  EXPECT_EQ(recipe::cell_state(s.cells[6]), recipe::CellState::fresh);
  // sst2's seed 2 runs and needs sst2's teacher model again; rte needs nothing.
  EXPECT_EQ(recipe::cells_to_run(s, all, all), (std::vector<int>{0, 6, 7}));
  const auto rte = recipe::select_cells(s, "", {"rte"});
  EXPECT_TRUE(recipe::cells_to_run(s, rte, rte).empty());
  // An interrupted rte cell (its directory is back) needs rte's teacher; a done teacher runs no more.
  fs::create_directories(s.cells[9].dir);
  io::write_file_atomic(s.cells[9].dir + "/recipe.resolved.yaml", "x");
  EXPECT_EQ(recipe::cell_state(s.cells[9]), recipe::CellState::interrupted);
  EXPECT_EQ(recipe::cells_to_run(s, rte, rte), (std::vector<int>{1, 9}));
  fs::create_directories(s.cells[1].dir);
  io::write_file_atomic(s.cells[1].dir + "/results.json", "{}");
  EXPECT_EQ(recipe::cell_state(s.cells[1]), recipe::CellState::done);
  EXPECT_EQ(recipe::cells_to_run(s, rte, rte), (std::vector<int>{9}));
  // A slurm array task (one selected cell, the whole sweep as consumers): sst2's teacher is
  // needed by a later stage's array task, rte's seed-1 cell by nobody.
  EXPECT_EQ(recipe::cells_to_run(s, {0}, all), (std::vector<int>{0}));
  EXPECT_TRUE(recipe::cells_to_run(s, {4}, all).empty());
  // Without `records:` nothing is recorded.
  auto plain = recipe::parse_sweep(two_stage_sweep(tmp.str()), "t.yaml");
  EXPECT_EQ(plain.cells[4].record, "");
  EXPECT_EQ(recipe::cell_state(plain.cells[4]), recipe::CellState::fresh);
}

TEST(Sweep, RefusesTyposUnknownStagesAndAmbiguousUpstreamWithFileAndLine) {
  sculpt::testing::TempDir tmp;
  try {
    recipe::parse_sweep(two_stage_sweep(tmp.str(), "      gird: {}\n"), "t.yaml");
    FAIL() << "a typo passed";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("t.yaml:12: unknown key 'sweep.stages[1].gird' (did you mean 'grid'?)"), std::string::npos)
        << e.what();
  }
  std::string bad_from = two_stage_sweep(tmp.str());
  bad_from.replace(bad_from.find("from: teacher"), 13, "from: teachr");
  EXPECT_THROW(recipe::parse_sweep(bad_from, "t.yaml"), Error);
  std::string two_teachers = two_stage_sweep(tmp.str());
  two_teachers.replace(two_teachers.find("run.seed: [5]"), 13, "run.seed: [5, 6]");
  try {
    recipe::parse_sweep(two_teachers, "t.yaml");
    FAIL() << "an ambiguous upstream passed";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("stage prune starts from stage teacher, which has 2 cells for sst2 (name one with from_cell)"),
              std::string::npos)
        << e.what();
  }
  two_teachers.replace(two_teachers.find("      grid: {run.seed: [1, 2]}"), 0, "      from_cell: seed-6\n");
  auto s = recipe::parse_sweep(two_teachers, "t.yaml");
  EXPECT_EQ(s.cells[s.cells.size() - 1].from, 3);  // rte's seed-6 teacher
  // A recipe error names the cell.
  std::string bad_override = two_stage_sweep(tmp.str());
  bad_override.replace(bad_override.find("prune.target: [0.3, 0.5]"), 24, "prune.targt: [0.3]");
  try {
    recipe::parse_sweep(bad_override, "t.yaml");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cell prune/sst2/sp3_targt-0.3_seed-1"), std::string::npos) << e.what();
  }
}

TEST(ResultsTable, MeanAndSampleStd) {
  EXPECT_DOUBLE_EQ(metrics::mean({66, 68, 67}), 67);
  EXPECT_DOUBLE_EQ(metrics::sample_std({66, 68, 67}), 1.0);  // squares 1 + 1 + 0 over n - 1 = 2
  EXPECT_DOUBLE_EQ(metrics::sample_std({85, 86}), std::sqrt(0.5));
  EXPECT_DOUBLE_EQ(metrics::sample_std({3}), 0);
}

TEST(ResultsTable, RowsPerMethodAndSizeWithSeedsRetentionAndTaskAverage) {
  sculpt::testing::TempDir tmp;
  const fs::path root = tmp.path;
  dense_cell(root, "rte", "accuracy", 0.70);
  dense_cell(root, "stsb", "combined_score", 0.88);
  for (auto [seed, acc, rem] : {std::tuple{1, 0.66, 0.10}, {2, 0.68, 0.11}, {3, 0.67, 0.12}})
    pruned_cell(root, "rte", "sp3", "0.1", seed, "accuracy", 0.70, acc, rem, 1 - rem + 0.02);
  pruned_cell(root, "stsb", "sp3", "0.1", 1, "combined_score", 0.88, 0.85, 0.10, 0.92);
  pruned_cell(root, "stsb", "sp3", "0.1", 2, "combined_score", 0.88, 0.86, 0.10, 0.92);
  // CoFi with a fine-tune stage: its result is the fine-tuned best (0.64), not the packed 0.50.
  pruned_cell(root, "rte", "cofi", "0.95", 1, "accuracy", 0.70, 0.50, 0.06, 0.95, 0.64);
  // k-means keeps every weight: nothing gates its best checkpoint.
  pruned_cell(root, "rte", "kmeans", "0", 1, "accuracy", 0.70, 0.60, 1.0, 0.0, 0.65);
  // An unfinished cell: no compression.json yet.
  write(root / "prune" / "rte" / "cofi_target-0.95_seed-2" / "sweep_cell.json",
        {{"stage", "prune"}, {"task", "rte"}, {"variant", "cofi"}, {"params", {{"prune.target", "0.95"}}}, {"prunes", true}});
  write(root / "prune" / "rte" / "cofi_target-0.95_seed-2" / "results.json", {{"metric", "accuracy"}, {"best", {{"value", 0.9}}}});

  int unfinished = 0;
  auto cells = metrics::collect_results(root.string(), &unfinished);
  EXPECT_EQ(cells.size(), 2u + 5u + 1u + 1u);
  EXPECT_EQ(unfinished, 1);
  auto t = metrics::build_table(cells);
  ASSERT_EQ(t.rows.size(), 6u);
  EXPECT_EQ(t.rows[3].method, "kmeans");
  EXPECT_EQ(t.rows[3].gate, "");
  EXPECT_NE(metrics::to_markdown(t).find("| kmeans | target=0 | — | 65.0 (n=1) | — | — | 1.000 | 0.000 | — | — |"), std::string::npos)
      << metrics::to_markdown(t);
  const auto& dense = t.rows[0];
  EXPECT_EQ(dense.method, "dense");
  EXPECT_DOUBLE_EQ(dense.scores.at("rte").mean, 70);
  EXPECT_DOUBLE_EQ(dense.average(), 79);  // (70 + 88) / 2
  EXPECT_DOUBLE_EQ(dense.average_retention(), 100);
  const auto& cofi = t.rows[1];
  EXPECT_EQ(cofi.method, "cofi");
  EXPECT_EQ(cofi.size, "target=0.95");
  EXPECT_DOUBLE_EQ(cofi.scores.at("rte").mean, 64);
  EXPECT_EQ(cofi.scores.count("stsb"), 0u);
  EXPECT_TRUE(std::isnan(metrics::mean({})));
  EXPECT_EQ(cofi.gate, "pruned");
  // The packed model before CoFi's fine-tune stage, as a row of its own beside it.
  const auto& cofi_before = t.rows[2];
  EXPECT_EQ(cofi_before.method, "cofi (before FT)");
  EXPECT_EQ(cofi_before.size, "target=0.95");
  EXPECT_DOUBLE_EQ(cofi_before.scores.at("rte").mean, 50);
  EXPECT_NEAR(cofi_before.retention.at("rte").mean, 50 / 0.70, 1e-9);
  EXPECT_DOUBLE_EQ(cofi_before.pruned.mean, 0.95);
  const auto& sp3 = t.rows[5];
  EXPECT_EQ(sp3.method, "sp3");
  EXPECT_EQ(sp3.gate, "remaining");
  EXPECT_DOUBLE_EQ(sp3.scores.at("rte").mean, 67);
  EXPECT_NEAR(sp3.scores.at("rte").std, 1.0, 1e-12);
  EXPECT_EQ(sp3.scores.at("rte").n, 3);
  EXPECT_DOUBLE_EQ(sp3.scores.at("stsb").mean, 85.5);
  EXPECT_NEAR(sp3.scores.at("stsb").std, std::sqrt(0.5), 1e-12);
  EXPECT_DOUBLE_EQ(sp3.average(), 76.25);  // (67 + 85.5) / 2: tasks weigh alike whatever their seeds
  const double ret_rte = (66 + 68 + 67) / 3.0 / 0.70, ret_stsb = (85 + 86) / 2.0 / 0.88;
  EXPECT_NEAR(sp3.retention.at("rte").mean, ret_rte, 1e-9);
  EXPECT_NEAR(sp3.average_retention(), (ret_rte + ret_stsb) / 2, 1e-9);
  EXPECT_NEAR(sp3.remaining.mean, (0.10 + 0.11 + 0.12 + 0.10 + 0.10) / 5, 1e-12);

  const std::string md = metrics::to_markdown(t);
  // Columns in GLUE's order: STS-B before RTE.
  EXPECT_EQ(t.tasks, (std::vector<std::string>{"stsb", "rte"}));
  EXPECT_NE(md.find("| sp3 | target=0.1 | 85.5 ± 0.7 (n=2) | 67.0 ± 1.0 (n=3) | 76."), std::string::npos) << md;
  EXPECT_NE(md.find("| cofi | target=0.95 | — | 64.0 (n=1) | — |"), std::string::npos) << md;
  EXPECT_NE(md.find("| cofi (before FT) | target=0.95 | — | 50.0 (n=1) | — |"), std::string::npos) << md;
  const std::string csv = metrics::to_csv(t);
  EXPECT_NE(csv.find("sp3,target=0.1,rte,accuracy,67.0000,1.0000,3,95.71,0.1060,"), std::string::npos) << csv;
  EXPECT_NE(metrics::to_latex(t).find("67.0 $\\pm$ 1.0 (n=3)"), std::string::npos);
  const std::string svg = metrics::plot_task_svg(t, "rte");
  EXPECT_NE(svg.find("teacher 70.0"), std::string::npos);
  EXPECT_NE(svg.find(">sp3</text>"), std::string::npos);
  EXPECT_NE(svg.find(">cofi</text>"), std::string::npos);
}

TEST(ResultsTable, PlotPlacesEachRowAtItsTasksSizeAndStylesTheMethods) {
  // Hand-made rows on one task: x = that task's remaining (the row's mean over all tasks is
  // another number), Prune OFA-like rows at 1 - sparsity, k-means' two bit widths at one size.
  auto row = [](const std::string& method, const std::string& size, double score, double std, int n, double remaining,
                double pruned) {
    metrics::TableRow r;
    r.method = method;
    r.size = size;
    r.scores["rte"] = {score, std, n};
    r.remaining_of["rte"] = {remaining, 0, n};
    r.pruned_of["rte"] = {pruned, 0, n};
    r.remaining = {0.5, 0, n};  // over every task: not what the rte plot shows
    return r;
  };
  metrics::Table t;
  t.tasks = {"rte"};
  t.metric_of["rte"] = "accuracy";
  const double nan = std::nan("");
  t.rows = {row("dense", "-", 70, nan, 1, 1, 0), row("sp3", "target=0.06", 66, 1, 3, 0.0625, 0.97),
            row("cofi", "target=0.95", 60, nan, 1, 0.05, 0.95), row("cofi (before FT)", "target=0.95", 55, nan, 1, 0.05, 0.95),
            row("ofa85", "-", 64, nan, 1, nan, 0.85), row("kmeans", "bits=2", 50, nan, 1, 1, 0), row("kmeans", "bits=4", 68, nan, 1, 1, 0),
            row("magnitude (before FT)", "target=0.6", 20, nan, 1, 0.4, 0.6)};
  const std::string svg = metrics::plot_task_svg(t, "rte");
  EXPECT_NE(svg.find("teacher 70.0"), std::string::npos);
  // Axis: x1 = 1.0 (k-means at 1, capped); plot width 780 - 60 - 260 = 460, so x -> 60 + 460 x.
  // y: scores 50..70 plus sp3's error bar 65..67 -> [50, 70], padded by 1.6: [48.4, 71.6] (the
  // magnitude row before its fine-tune, at 20, does not widen it).
  // Height 400: y -> 30 + 320 (1 - (y - 48.4) / 23.2); sp3 at 66: 30 + 320 * 5.6 / 23.2 = 107.2.
  auto has = [&](const std::string& s) { return svg.find(s) != std::string::npos; };
  EXPECT_TRUE(has("<circle cx=\"88.8\" cy=\"107.2\" r=\"4.5\" fill=\"#d62728\"><title>sp3 target=0.06: 66.0 ± 1.0 (n=3) at "
                  "0.062 remaining</title>"))
      << svg;
  // ofa85 at x = 1 - 0.85: cx 60 + 460 * 0.15 = 129.0, cy 30 + 320 * 7.6 / 23.2 = 134.8, the first baseline colour.
  EXPECT_TRUE(has("<circle cx=\"129.0\" cy=\"134.8\" r=\"3\" fill=\"#2ca02c\"><title>ofa85 -: 64.0 (n=1) at 0.150 (1 − sparsity)</title>"))
      << svg;
  // That row's point lies below the axis: a hollow triangle with its apex on the x axis (y 350)
  // at cx 60 + 460 * 0.4 = 244.0, 2 r = 6 high, in the third baseline colour; its line ends there.
  EXPECT_TRUE(has("<polygon points=\"241.0,344.0 247.0,344.0 244.0,350.0\" fill=\"white\" stroke=\"#ff7f0e\"><title>magnitude "
                  "(before FT) target=0.6: 20.0 (n=1) at 0.400 remaining (below the axis)</title>"))
      << svg;
  EXPECT_TRUE(has("<path d=\"M244.0,350.0 \"")) << svg;
  // CoFi bold in its colour; its before-FT row dashed and hollow in the same colour.
  EXPECT_TRUE(has("fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2.5\"/>")) << svg;
  EXPECT_TRUE(has("fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2.5\" stroke-dasharray=\"5 3\"/>")) << svg;
  EXPECT_TRUE(has("r=\"4.5\" fill=\"white\"><title>cofi (before FT) target=0.95: 55.0 (n=1) at 0.050 remaining</title>")) << svg;
  // k-means: both points at x = 1, two moves and no line between them.
  EXPECT_TRUE(has("<path d=\"M520.0,")) << svg;
  const auto kpath = svg.find("<path d=\"M520.0,");
  EXPECT_EQ(svg.substr(kpath, svg.find('"', kpath + 9) - kpath).find('L'), std::string::npos) << svg;
  // Legend: SP3 and CoFi first, in bold.
  EXPECT_LT(svg.find(">sp3</text>"), svg.find(">ofa85</text>"));
  EXPECT_TRUE(has("font-weight=\"bold\">cofi</text>")) << svg;
}

TEST(Sweep, InputsAreTheDoneUpstreamCellsTheModelsAndTheDataTheCellsToRunRead) {
  sculpt::testing::TempDir tmp;
  auto s = recipe::parse_sweep(two_stage_sweep(tmp.str()), "t.yaml");
  const std::string tokenizer = expand_path("${SCULPT_SHARED}/fixtures/hf/tok_bert_wordpiece");
  const std::string glue = expand_path("${SCULPT_DATA}/glue");
  // Nothing done: the teachers run too, so their best/ is made there; only the tokenizer and data travel.
  const std::vector<int> all = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  auto in = recipe::sweep_inputs(s, recipe::cells_to_run(s, all, all));
  EXPECT_TRUE(in.cells.empty());
  EXPECT_EQ(in.models, std::vector<std::string>{tokenizer});
  EXPECT_EQ(in.data, (std::vector<std::string>{glue + "/RTE", glue + "/SST-2"}));
  // rte's teacher done, its prune cells to run: the teacher's directory and its best/ travel.
  fs::create_directories(s.cells[1].dir);
  io::write_file_atomic(s.cells[1].dir + "/results.json", "{}");
  const auto rte = recipe::select_cells(s, "prune", {"rte"});
  in = recipe::sweep_inputs(s, recipe::cells_to_run(s, rte, rte));
  EXPECT_EQ(in.cells, std::vector<std::string>{tmp.str("s/teacher/rte/seed-5")});
  // sweep_inputs lists each kind sorted; where the temp dir sorts against the shared tree depends on the machine.
  std::vector<std::string> models = {tmp.str("s/teacher/rte/seed-5/best"), tokenizer};
  std::sort(models.begin(), models.end());
  EXPECT_EQ(in.models, models);
  EXPECT_EQ(in.data, std::vector<std::string>{glue + "/RTE"});
  // A finished prune cell needs nothing: it does not run.
  for (int i : {4, 5, 8, 9}) {
    fs::create_directories(s.cells[i].dir);
    io::write_file_atomic(s.cells[i].dir + "/compression.json", "{}");
  }
  in = recipe::sweep_inputs(s, recipe::cells_to_run(s, rte, rte));
  EXPECT_TRUE(in.cells.empty() && in.models.empty() && in.data.empty());
}

TEST(Sweep, ACellMissesWhatIsNeitherThereNorMadeByACellThatRuns) {
  SCULPT_REQUIRE_SHARED(tokenizer, "fixtures/hf/tok_bert_wordpiece");
  const std::string glue = expand_path("${SCULPT_DATA}/glue");
  if (!fs::exists(glue + "/SST-2")) GTEST_SKIP() << "needs GLUE's SST-2 under SCULPT_DATA";
  sculpt::testing::TempDir tmp;
  auto s = recipe::parse_sweep(two_stage_sweep(tmp.str()), "t.yaml");
  const std::string teacher = tmp.str("s/teacher/sst2/seed-5");
  // Cell 2 (sst2, seed 1) starts from its teacher's best/: missing only while no running cell makes it.
  EXPECT_TRUE(recipe::missing_inputs(s, 2, {0, 2}).empty());
  EXPECT_EQ(recipe::missing_inputs(s, 2, {2}), std::vector<std::string>{"model.path " + teacher + "/best"});
  fs::create_directories(teacher + "/best");
  EXPECT_TRUE(recipe::missing_inputs(s, 2, {2}).empty());
  // A tokenizer and a data root that are not there, each named by its key.
  s.cells[0].overrides.push_back("model.tokenizer=" + tmp.str("no/tokenizer"));
  s.cells[0].overrides.push_back("data.root=" + tmp.str("no/glue"));
  EXPECT_EQ(recipe::missing_inputs(s, 0, {0}),
            (std::vector<std::string>{"model.tokenizer " + tmp.str("no/tokenizer"), "data.root " + tmp.str("no/glue") + "/SST-2"}));
}

TEST(Sweep, DistillFromNamesTheTeacherCellAndWaitsForIt) {
  sculpt::testing::TempDir tmp;
  auto s = recipe::parse_sweep(two_stage_sweep(tmp.str()) +
                                   "    - name: transfer\n"
                                   "      from: prune\n"
                                   "      from_cell: sp3_target-0.3_seed-1\n"
                                   "      distill_from: teacher\n"
                                   "      recipe: " + recipe_path("tiny_bert_finetune.yaml") + "\n"
                                   "      overrides: [sparsity.method=lock]\n",
                               "t.yaml");
  const auto& c = s.cells.back();
  ASSERT_EQ(c.stage, "transfer");
  EXPECT_EQ(c.task, "rte");
  EXPECT_EQ(s.cells[static_cast<size_t>(c.teacher)].dir, tmp.str("s/teacher/rte/seed-5"));
  EXPECT_EQ(c.upstream(), (std::vector<int>{c.from, c.teacher}));
  EXPECT_EQ(c.overrides.back(), "distill.teacher=" + tmp.str("s/teacher/rte/seed-5/best"));
  EXPECT_THROW(recipe::parse_sweep(two_stage_sweep(tmp.str(), "      distill_from: nowhere\n"), "t.yaml"), Error);
}

TEST(Sweep, CompareToNamesTheDenseCellWithoutDistillingFromIt) {
  sculpt::testing::TempDir tmp;
  auto s = recipe::parse_sweep(two_stage_sweep(tmp.str()) +
                                   "    - name: pretrained\n"
                                   "      compare_to: teacher\n"
                                   "      recipe: " + recipe_path("tiny_bert_one_shot.yaml") + "\n",
                               "t.yaml");
  const auto& c = s.cells.back();
  ASSERT_EQ(c.stage, "pretrained");
  EXPECT_EQ(c.from, -1);
  EXPECT_EQ(s.cells[static_cast<size_t>(c.teacher)].dir, tmp.str("s/teacher/rte/seed-5"));
  EXPECT_EQ(c.upstream(), (std::vector<int>{c.teacher}));  // it waits for the teacher it is measured against
  for (const auto& o : c.overrides) EXPECT_EQ(o.rfind("distill.", 0), std::string::npos) << o;
  EXPECT_THROW(recipe::parse_sweep(two_stage_sweep(tmp.str(), "      compare_to: nowhere\n"), "t.yaml"), Error);
  EXPECT_THROW(recipe::parse_sweep(two_stage_sweep(tmp.str(), "      compare_to: teacher\n      distill_from: teacher\n"), "t.yaml"),
               Error);
}

TEST(ResultsTable, AModelCompressedBeforeFineTuningIsMeasuredAgainstItsCompareToCell) {
  sculpt::testing::TempDir tmp;
  const fs::path root = tmp.path;
  dense_cell(root, "rte", "accuracy", 0.70);
  const fs::path teacher = root / "teacher" / "rte" / "seed-42", d = root / "pretrained" / "rte" / "pretrained_taylor_target-0.3_seed-1";
  write(d / "sweep_cell.json", {{"stage", "pretrained"}, {"task", "rte"}, {"variant", "pretrained_taylor"},
                                {"params", {{"prune.target", "0.3"}, {"run.seed", "1"}}}, {"prunes", true}, {"teacher", teacher.string()}});
  // Its report has no teacher (the pretrained model has no RTE head) and the packed score of an
  // untrained head (0.47): the row is the fine-tuned 0.63 against the dense cell's 0.70.
  write(d / "compression.json", {{"method", "taylor"}, {"metric", "accuracy"}, {"teacher", nullptr}, {"new_head", true},
                                 {"packed", {{"accuracy", 0.47}}}, {"finetuned_best", {{"step", 30}, {"value", 0.63}}},
                                 {"finetuned_model", (d / "finetune" / "best").string()},
                                 {"sparsity", {{"packed_remaining", 0.8}, {"packed_sparsity", 0.3}}}});
  auto cells = metrics::collect_results(root.string());
  ASSERT_EQ(cells.size(), 2u);
  EXPECT_DOUBLE_EQ(cells[0].teacher, 0.70);
  EXPECT_EQ(cells[0].teacher_model, (teacher / "best").string());
  EXPECT_TRUE(std::isnan(cells[0].before_finetune));  // no "(before FT)" row for an untrained head
  auto t = metrics::build_table(cells);
  ASSERT_EQ(t.rows.size(), 2u);
  EXPECT_EQ(t.rows[1].method, "pretrained_taylor");
  EXPECT_DOUBLE_EQ(t.rows[1].scores.at("rte").mean, 63);
  EXPECT_DOUBLE_EQ(t.rows[1].retention.at("rte").mean, 90);
  // Without a compare_to cell such a report cannot be placed, and says so.
  write(d / "sweep_cell.json", {{"stage", "pretrained"}, {"task", "rte"}, {"variant", "pretrained_taylor"},
                                {"params", {{"run.seed", "1"}}}, {"prunes", true}});
  EXPECT_THROW(metrics::collect_results(root.string()), Error);
}

TEST(ResultsTable, DistilledStudentsCompareWithTheirTeacherAndShowTheirSparsity) {
  sculpt::testing::TempDir tmp;
  const fs::path root = tmp.path;
  dense_cell(root, "rte", "accuracy", 0.70);
  const fs::path d = root / "prune_ofa" / "rte" / "ofa85_seed-1";
  write(d / "sweep_cell.json", {{"stage", "prune_ofa"}, {"task", "rte"}, {"variant", "ofa85"}, {"params", {{"run.seed", "1"}}},
                                {"prunes", false}, {"teacher", (root / "teacher" / "rte" / "seed-42").string()}});
  write(d / "results.json", {{"metric", "accuracy"}, {"best", {{"step", 8}, {"value", 0.63}}}, {"final", {{"accuracy", 0.6}, {"sparsity", 0.85}}}});
  auto t = metrics::build_table(metrics::collect_results(root.string()));
  ASSERT_EQ(t.rows.size(), 2u);
  const auto& ofa = t.rows[1];
  EXPECT_EQ(ofa.method, "ofa85");
  EXPECT_DOUBLE_EQ(ofa.scores.at("rte").mean, 63);
  EXPECT_DOUBLE_EQ(ofa.retention.at("rte").mean, 90);  // 63 / 70
  EXPECT_DOUBLE_EQ(ofa.pruned.mean, 0.85);
  EXPECT_TRUE(std::isnan(ofa.remaining.mean));
  EXPECT_EQ(ofa.model_of.at("rte"), (d / "best").string());
  EXPECT_EQ(ofa.teacher_of.at("rte"), (root / "teacher" / "rte" / "seed-42" / "best").string());
}

TEST(ResultsTable, CellRecordsKeepTheTableWhenRunDirectoriesAreGone) {
  sculpt::testing::TempDir tmp;
  const fs::path root = tmp.path / "sweep";
  dense_cell(root, "rte", "accuracy", 0.70);
  pruned_cell(root, "rte", "sp3", "0.1", 1, "accuracy", 0.70, 0.66, 0.10, 0.92);
  pruned_cell(root, "rte", "sp3", "0.1", 2, "accuracy", 0.70, 0.68, 0.11, 0.91, 0.69);
  // Seed 1's pruning run and its fine-tune stage each wrote their training time.
  const fs::path seed1 = root / "prune" / "rte" / "sp3_target-0.1_seed-1";
  // Each names its device; the same device twice is named once.
  write(seed1 / "results.json", {{"train_seconds", 1200.25}, {"device", "cuda: NVIDIA H200"}});
  write(seed1 / "finetune" / "results.json", {{"train_seconds", 300.5}, {"device", "cuda: NVIDIA H200"}});
  auto cells = metrics::collect_results(root.string());
  ASSERT_EQ(cells.size(), 3u);
  EXPECT_DOUBLE_EQ(cells[0].train_seconds, 1500.75);
  EXPECT_EQ(cells[1].train_seconds, -1);  // none written
  EXPECT_EQ(cells[0].device, "cuda: NVIDIA H200");
  EXPECT_EQ(cells[1].device, "");
  EXPECT_TRUE(std::isnan(cells[0].before_finetune));  // no fine-tune stage
  EXPECT_DOUBLE_EQ(cells[1].before_finetune, 0.68);
  EXPECT_EQ(cells[0].key, "prune/rte/sp3_target-0.1_seed-1");  // sorted: prune/ before teacher/
  const std::string before = metrics::to_markdown(metrics::build_table(cells));

  // Records written with a measured speedup read back field for field.
  const fs::path records = tmp.path / "records";
  for (auto c : cells) {
    c.speedup = c.method.empty() ? 1.0 : 4.5;
    if (c.method.empty()) c.device = "cpu: Xeon \"X\" @ 2.80GHz, 2 threads";  // CSV-quoted below
    write(records / (c.key + ".json"), metrics::to_record(c));
  }
  const auto back = metrics::read_records(records.string());
  ASSERT_EQ(back.size(), 3u);
  EXPECT_EQ(back[0].key, cells[0].key);
  EXPECT_EQ(back[0].params, cells[0].params);
  EXPECT_EQ(back[0].method, "sp3");
  EXPECT_DOUBLE_EQ(back[0].score, 0.66);
  EXPECT_DOUBLE_EQ(back[0].teacher, 0.70);
  EXPECT_DOUBLE_EQ(back[0].remaining, 0.10);
  EXPECT_DOUBLE_EQ(back[0].speedup, 4.5);
  EXPECT_TRUE(std::isnan(back[0].before_finetune));
  EXPECT_DOUBLE_EQ(back[1].before_finetune, 0.68);
  EXPECT_DOUBLE_EQ(back[1].score, 0.69);
  EXPECT_DOUBLE_EQ(back[0].train_seconds, 1500.75);
  EXPECT_EQ(back[1].train_seconds, -1);
  EXPECT_EQ(back[0].device, "cuda: NVIDIA H200");
  EXPECT_EQ(back[1].device, "");
  EXPECT_EQ(metrics::cells_csv({back[0], back[1], back[2]}),
            "key,stage,task,method,metric,score,teacher,remaining,pruned,speedup,train_seconds,device\n"
            "prune/rte/sp3_target-0.1_seed-1,prune,rte,sp3,accuracy,0.6600,0.7000,0.1000,0.9200,4.500,1501,\"cuda: NVIDIA H200\"\n"
            "prune/rte/sp3_target-0.1_seed-2,prune,rte,sp3,accuracy,0.6900,0.7000,0.1100,0.9100,4.500,,\n"
            "teacher/rte/seed-42,teacher,rte,,accuracy,0.7000,0.7000,1.0000,0.0000,1.000,,\"cpu: Xeon \"\"X\"\" @ 2.80GHz, 2 threads\"\n");

  // One seed's run directory is gone: the merge takes it from its record, the rest live.
  fs::remove_all(root / "prune" / "rte" / "sp3_target-0.1_seed-2");
  const auto live = metrics::collect_results(root.string());
  ASSERT_EQ(live.size(), 2u);
  const auto merged = metrics::merge_cells(live, back);
  ASSERT_EQ(merged.size(), 3u);
  EXPECT_EQ(merged[2].key, "prune/rte/sp3_target-0.1_seed-2");
  EXPECT_EQ(merged[0].speedup, -1);  // the live cell, not its record
  const auto t = metrics::build_table(merged);
  EXPECT_EQ(metrics::to_markdown(t), before);
  EXPECT_DOUBLE_EQ(t.rows[1].recorded_speedup.at("rte"), 4.5);
  EXPECT_EQ(t.rows[1].cell_keys.size(), 2u);

  // A damaged record names its file.
  write(records / "bad.json", {{"key", "x"}});
  try {
    metrics::read_records(records.string());
    FAIL() << "a record without a task passed";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.json: not a cell record"), std::string::npos) << e.what();
  }
}
