// `sculpt sweep` and `sculpt table` end to end on the tiny recipes: a teacher stage and an SP3
// stage on SST-2 rows; the second run of a finished sweep runs nothing, an interrupted cell is
// resumed (not restarted), the table's numbers are the cells' own, and --slurm writes array
// jobs chained by stage.
#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "sculpt/io/files.h"

namespace fs = std::filesystem;

namespace sculpt {
namespace {

const std::string kRecipes = std::string(SCULPT_SOURCE_DIR) + "/recipes/tests/";

class Sweep : public testing::CliTest {
 protected:
  std::string write_sweep(const std::string& seeds = "7") {
    const std::string path = tmp.str("tiny.yaml");
    io::write_file_atomic(path, "sweep:\n"
                                "  name: tiny\n"
                                "  output_root: " + tmp.str("sweeps") + "\n"
                                "  records: " + tmp.str("records") + "\n"
                                "  tasks: [sst2]\n"
                                "  stages:\n"
                                "    - name: teacher\n"
                                "      recipe: " + kRecipes + "tiny_bert_finetune.yaml\n"
                                "    - name: prune\n"
                                "      from: teacher\n"
                                "      grid: {run.seed: [" + seeds + "]}\n"
                                "      variants:\n"
                                "        sp3: {recipe: " + kRecipes + "tiny_bert_sp3.yaml, grid: {prune.target: [0.5]}}\n");
    return path;
  }
  nlohmann::json json(const std::string& rel) { return nlohmann::json::parse(std::ifstream(tmp.str(rel))); }
};

TEST_F(Sweep, RunsResumesSkipsAndTabulates) {
  const std::string file = write_sweep();
  ASSERT_EQ(run({"sweep", file}, "sweep1.log"), 0) << last_output;
  EXPECT_NE(last_output.find("[sweep] tiny: 2 cells, 0 done, 2 to run"), std::string::npos) << last_output;
  const std::string teacher = "sweeps/tiny/teacher/sst2/default", cell = "sweeps/tiny/prune/sst2/sp3_target-0.5_seed-7";
  ASSERT_TRUE(fs::exists(tmp.str(teacher + "/results.json")));
  ASSERT_TRUE(fs::exists(tmp.str(cell + "/compression.json")));
  // The prune cell started from the teacher cell's best/ and says so.
  EXPECT_EQ(json(cell + "/sweep_cell.json")["from"], tmp.str(teacher));
  const auto teacher_time = fs::last_write_time(tmp.str(teacher + "/results.json"));
  // Each finished cell left its record where the sweep file says, with the cell's own score.
  EXPECT_DOUBLE_EQ(json("records/prune/sst2/sp3_target-0.5_seed-7.json")["score"].get<double>(),
                   json(cell + "/compression.json")["packed"]["accuracy"].get<double>());
  EXPECT_DOUBLE_EQ(json("records/teacher/sst2/default.json")["score"].get<double>(),
                   json(teacher + "/results.json")["best"]["value"].get<double>());

  // Finished: a second run runs nothing.
  ASSERT_EQ(run({"sweep", file}, "sweep2.log"), 0) << last_output;
  EXPECT_NE(last_output.find("2 cells, 2 done, 0 to run"), std::string::npos) << last_output;
  // A cell that lost its end (killed during the packed evaluation) resumes from its
  // checkpoints: the same packed score, and the teacher untouched.
  const auto before = json(cell + "/compression.json");
  fs::remove(tmp.str(cell + "/compression.json"));
  ASSERT_EQ(run({"sweep", file, "--status"}, "status.log"), 0) << last_output;
  EXPECT_NE(last_output.find("interrupted  " + tmp.str(cell)), std::string::npos) << last_output;
  EXPECT_NE(last_output.find("[sweep] 2 cells: 1 done, 1 interrupted, 0 fresh"), std::string::npos) << last_output;
  ASSERT_EQ(run({"sweep", file}, "sweep3.log"), 0) << last_output;
  EXPECT_NE(last_output.find("resume prune/sst2/sp3_target-0.5_seed-7"), std::string::npos) << last_output;
  EXPECT_NE(testing::read_lines(tmp.str(cell + "/sweep.log")).size(), 0u);
  EXPECT_EQ(json(cell + "/compression.json")["packed"], before["packed"]);
  EXPECT_EQ(fs::last_write_time(tmp.str(teacher + "/results.json")), teacher_time);

  // The table: the dense row is the teacher's best, the SP3 row the packed model's score,
  // both x100, with the sizes and the speedup measured in this run.
  ASSERT_EQ(run({"table", tmp.str("sweeps/tiny"), "--steps", "2"}, "table.log"), 0) << last_output;
  const double dense = 100 * json(teacher + "/results.json")["best"]["value"].get<double>();
  const double sp3 = 100 * before["packed"]["accuracy"].get<double>();
  const std::string md = last_output;
  // Both cells ran here, on the CPU with the recipes' one thread: one device line names them.
  EXPECT_NE(md.find("# 2 cells ran on cpu: "), std::string::npos) << md;
  EXPECT_NE(md.find(", 1 thread\n"), std::string::npos) << md;
  EXPECT_NE(md.find(fmt::format("| dense | - | {:.1f} (n=1) | {:.1f} | 100.0 | 1.000 | 0.000 | — | 1.00x |", dense, dense)),
            std::string::npos)
      << md;
  EXPECT_NE(md.find(fmt::format("| sp3 | target=0.5 | {:.1f} (n=1) | {:.1f} | {:.1f} | {:.3f} |", sp3, sp3,
                                100 * before["packed"]["accuracy"].get<double>() / before["teacher"]["accuracy"].get<double>(),
                                before["sparsity"]["packed_remaining"].get<double>())),
            std::string::npos)
      << md;
  // The SP3 row's speedup is the ratio this run measured and logged for its one cell.
  std::smatch m;
  ASSERT_TRUE(std::regex_search(md, m, std::regex("\\[table\\] sp3 target=0.5 sst2: teacher [0-9.]+ s, packed [0-9.]+ s per "
                                                  "[0-9]+x[0-9]+ batch: ([0-9.]+x)")))
      << md;
  const std::string ratio = m[1];
  ASSERT_TRUE(std::regex_search(md, m, std::regex("\\| sp3 \\| target=0.5 \\|[^\\n]*\\| ([0-9.]+x) \\|"))) << md;
  EXPECT_EQ(m[1], ratio) << md;
  for (const char* f : {"table.md", "table.csv", "table.tex", "plot_sst2.svg"})
    EXPECT_TRUE(fs::exists(tmp.str(std::string("sweeps/tiny/table/") + f))) << f;

  // --slurm: one array job per stage, chained.
  ASSERT_EQ(run({"sweep", file, "--slurm"}, "slurm.log"), 0) << last_output;
  auto sbatch = testing::read_lines(tmp.str("sweeps/tiny/slurm/prune.sbatch"));
  std::string text;
  for (const auto& l : sbatch) text += l + "\n";
  EXPECT_NE(text.find("#SBATCH --array=0-0"), std::string::npos) << text;
  EXPECT_NE(text.find("--stage prune --index \"$SLURM_ARRAY_TASK_ID\""), std::string::npos) << text;
  std::string submit;
  for (const auto& l : testing::read_lines(tmp.str("sweeps/tiny/slurm/submit.sh"))) submit += l + "\n";
  EXPECT_NE(submit.find("--dependency=afterok:$prev"), std::string::npos) << submit;
  // A single cell as an array task runs it (here: already done, so nothing to do).
  ASSERT_EQ(run({"sweep", file, "--stage", "prune", "--index", "0"}, "one.log"), 0) << last_output;
  EXPECT_NE(last_output.find("1 cells, 1 done, 0 to run"), std::string::npos) << last_output;

  // A table committed with its cell records is rebuilt, speedups included, after the run
  // directories are gone (a fresh clone, a lost disk).
  ASSERT_EQ(run({"table", tmp.str("sweeps/tiny"), "--steps", "2", "--out", tmp.str("committed")}, "table2.log"), 0) << last_output;
  EXPECT_TRUE(fs::exists(tmp.str("committed/cells/prune/sst2/sp3_target-0.5_seed-7.json")));
  auto text_of = [](const std::string& path) {
    std::string text;
    for (const auto& l : testing::read_lines(path)) text += l + "\n";
    return text;
  };
  const std::string committed = text_of(tmp.str("committed/table.md"));
  fs::remove_all(tmp.str("sweeps"));
  ASSERT_EQ(run({"table", tmp.str("sweeps/tiny"), "--out", tmp.str("committed")}, "table3.log"), 0) << last_output;
  EXPECT_NE(last_output.find("0 cells from " + tmp.str("sweeps/tiny") + ", 2 more from the records"), std::string::npos) << last_output;
  EXPECT_EQ(text_of(tmp.str("committed/table.md")), committed);
  // The sweep's own records (no speedups yet) rebuild the same rows.
  ASSERT_EQ(run({"table", tmp.str("sweeps/tiny"), "--no-speed", "--out", tmp.str("from_sweep"), "--records", tmp.str("records")}, "table4.log"),
            0)
      << last_output;
  EXPECT_NE(last_output.find("0 cells from " + tmp.str("sweeps/tiny") + ", 2 more from the records"), std::string::npos) << last_output;
  EXPECT_NE(text_of(tmp.str("from_sweep/table.md")).find("| sp3 | target=0.5 |"), std::string::npos);

  // The sweep on a fresh clone (records, no run directories) runs nothing ...
  ASSERT_EQ(run({"sweep", file}, "sweep4.log"), 0) << last_output;
  EXPECT_NE(last_output.find("[sweep] tiny: 2 cells, 2 done, 0 to run"), std::string::npos) << last_output;
  EXPECT_NE(last_output.find("2 cells have only their record in " + tmp.str("records") + " (no run directory): 2 count as done, 0 run again"),
            std::string::npos)
      << last_output;
  EXPECT_FALSE(fs::exists(tmp.str(teacher)));
  // ... and a new seed runs with the teacher it starts from, not the recorded seed.
  const std::string seeds = write_sweep("7, 8");
  ASSERT_EQ(run({"sweep", seeds}, "sweep5.log"), 0) << last_output;
  EXPECT_NE(last_output.find("[sweep] tiny: 3 cells, 1 done, 2 to run"), std::string::npos) << last_output;
  EXPECT_NE(last_output.find("1 count as done, 1 run again for the model a later cell starts from"), std::string::npos) << last_output;
  EXPECT_TRUE(fs::exists(tmp.str(teacher + "/results.json")));
  EXPECT_TRUE(fs::exists(tmp.str("sweeps/tiny/prune/sst2/sp3_target-0.5_seed-8/compression.json")));
  EXPECT_FALSE(fs::exists(tmp.str(cell)));
  // The re-run teacher (same seed, same data) wrote the record it had.
  EXPECT_NEAR(json("records/teacher/sst2/default.json")["score"].get<double>(), dense / 100, 1e-12);
}

TEST_F(Sweep, ACellWhoseModelIsMissingIsRefusedBeforeItStartsAndNamed) {
  // The prune stage starts from a model no cell makes: the sweep refuses both of its cells at
  // the start, runs no child for them, and exits 1; --status says the same.
  std::string text = io::read_file(write_sweep("7, 8"));
  const std::string from = "      from: teacher\n";
  text.replace(text.find(from), from.size(), "      overrides: [model.path=" + tmp.str("no/model") + "]\n");
  const std::string file = tmp.str("missing.yaml");
  io::write_file_atomic(file, text);
  const std::string why = "cannot start: model.path " + tmp.str("no/model") + " is not there and no cell of this sweep makes it";
  ASSERT_EQ(run({"sweep", file, "--stage", "prune"}, "missing.log"), 1) << last_output;
  for (const std::string seed : {"7", "8"}) {
    EXPECT_NE(last_output.find("[sweep] prune/sst2/sp3_target-0.5_seed-" + seed + " " + why), std::string::npos) << last_output;
    EXPECT_FALSE(fs::exists(tmp.str("sweeps/tiny/prune/sst2/sp3_target-0.5_seed-" + seed)));
  }
  EXPECT_NE(last_output.find("[sweep] tiny: 2 cells, 0 done, 0 to run"), std::string::npos) << last_output;
  ASSERT_EQ(run({"sweep", file, "--status"}, "missing_status.log"), 0) << last_output;
  EXPECT_NE(last_output.find("sp3_target-0.5_seed-8  (cannot start: missing model.path " + tmp.str("no/model") + ")"),
            std::string::npos) << last_output;
}

// A rebuild replaces the binary while a sweep runs (the linker writes a new file, and the old
// path then names a deleted one): the sweep's later cells still start, running the sweep's own
// program.
TEST_F(Sweep, LaterCellsStartAfterTheBinaryIsReplaced) {
  const std::string copy = tmp.str("sculpt_copy");
  fs::copy_file(testing::cli_path(), copy);
  const std::string file = tmp.str("seeds.yaml");
  io::write_file_atomic(file, "sweep:\n"
                              "  name: seeds\n"
                              "  output_root: " + tmp.str("sweeps") + "\n"
                              "  tasks: [sst2]\n"
                              "  stages:\n"
                              "    - name: teacher\n"
                              "      recipe: " + kRecipes + "tiny_bert_finetune.yaml\n"
                              "      overrides: [debug.step_delay_ms=50]\n"
                              "      grid: {run.seed: [1, 2]}\n");
  auto p = testing::start_program(copy, {"sweep", file}, tmp.str("sweep.log"), {"SCULPT_CACHE=" + tmp.str("cache")});
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // running its first cell (24 updates of >= 50 ms)
  fs::remove(copy);
  ASSERT_EQ(p.wait(), 0) << p.output();
  EXPECT_NE(p.output().find("2/2 cells done"), std::string::npos) << p.output();
  for (const char* seed : {"1", "2"}) EXPECT_TRUE(fs::exists(tmp.str(std::string("sweeps/seeds/teacher/sst2/seed-") + seed + "/results.json")));
}

}  // namespace
}  // namespace sculpt
