// A run stopped at any point (kill -9, SIGTERM) and resumed ends bitwise-identical to an
// uninterrupted run, with the same metrics log; non-finite losses stop a run unsaved.
#include <fstream>
#include <regex>

#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "sculpt/core/machine.h"
#include "sculpt/io/safetensors.h"

namespace sculpt {
namespace {

const std::string kRecipe = std::string(SCULPT_SOURCE_DIR) + "/recipes/tests/tiny_bert_finetune.yaml";

class Resume : public testing::CliTest {
 protected:
  std::vector<std::string> run_args(const std::string& name, std::vector<std::string> extra = {}) {
    std::vector<std::string> a = {"run", kRecipe, "run.output_root=" + tmp.str(), "run.name=" + name};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }
  std::string dir(const std::string& name) { return tmp.str(name); }
  // A run slowed down so that a signal lands mid-run, started and waited on until it logs.
  testing::Process start_slow_run(const std::string& name) {
    auto p = testing::start_cli(run_args(name, {"debug.step_delay_ms=150"}), tmp.str(name + ".log"));
    const std::string log = dir(name) + "/metrics.jsonl";
    for (int i = 0; i < 600 && testing::read_lines(log).empty(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    return p;
  }
  // step -> (loss, lr, grad_norm) from metrics.jsonl
  std::map<int64_t, std::vector<double>> metrics(const std::string& name) {
    std::map<int64_t, std::vector<double>> m;
    for (const auto& line : testing::read_lines(dir(name) + "/metrics.jsonl")) {
      auto j = nlohmann::json::parse(line);
      EXPECT_FALSE(m.count(j["step"])) << "step logged twice: " << line;
      m[j["step"]] = {j["loss"], j["lr"], j["grad_norm"], j["epoch"]};
    }
    return m;
  }
  std::map<int64_t, double> evals(const std::string& name) {
    std::map<int64_t, double> m;
    for (const auto& line : testing::read_lines(dir(name) + "/eval.jsonl")) {
      auto j = nlohmann::json::parse(line);
      m[j["step"]] = j["accuracy"];
    }
    return m;
  }
  void expect_same_final_weights(const std::string& a, const std::string& b) {
    auto wa = io::read_safetensors(dir(a) + "/final/model.safetensors").tensors;
    auto wb = io::read_safetensors(dir(b) + "/final/model.safetensors").tensors;
    ASSERT_EQ(wa.size(), wb.size());
    for (const auto& [k, v] : wa) EXPECT_TRUE(torch::equal(v, wb.at(k))) << k << " differs after resume";
  }
};

TEST_F(Resume, KillNineThenResumeIsBitwiseIdentical) {
  ASSERT_EQ(run(run_args("full"), "full.log"), 0) << last_output;
  // SIGKILL right after update 13: checkpoints at 5 and 10 exist, updates 11-13 are lost.
  EXPECT_EQ(run(run_args("crashed", {"debug.crash_after_step=13"}), "crash.log"), 128 + SIGKILL) << last_output;
  EXPECT_TRUE(std::filesystem::exists(dir("crashed") + "/checkpoints/step_00000010"));
  EXPECT_FALSE(std::filesystem::exists(dir("crashed") + "/results.json"));
  ASSERT_EQ(run({"resume", dir("crashed")}, "resume.log"), 0) << last_output;
  EXPECT_NE(last_output.find("resumed from"), std::string::npos) << last_output;

  expect_same_final_weights("full", "crashed");
  auto full = metrics("full"), resumed = metrics("crashed");
  EXPECT_EQ(full.size(), 8u);  // log every 3 updates over 24
  EXPECT_EQ(full, resumed);
  EXPECT_EQ(evals("full"), evals("crashed"));
  // The run crossed epoch boundaries (10 updates per epoch).
  EXPECT_GT(full.rbegin()->second[3], 2.0);
  // Results agree too.
  auto ra = nlohmann::json::parse(std::ifstream(dir("full") + "/results.json")),
       rb = nlohmann::json::parse(std::ifstream(dir("crashed") + "/results.json"));
  EXPECT_EQ(ra["final"], rb["final"]);
  EXPECT_EQ(ra["best"], rb["best"]);
  // It names what it ran on (the sweep tables carry it per cell).
  const std::string device = ra.value("device", "");
  EXPECT_EQ(device.rfind("cpu: " + sculpt::cpu_info().model + ", ", 0), 0u) << device;
  EXPECT_EQ(device, rb.value("device", ""));
}

TEST_F(Resume, CorruptLatestCheckpointFallsBackToThePreviousOne) {
  ASSERT_EQ(run(run_args("full"), "full.log"), 0) << last_output;
  EXPECT_EQ(run(run_args("c", {"debug.crash_after_step=17"}), "crash.log"), 128 + SIGKILL);
  const std::string latest = dir("c") + "/checkpoints/step_00000015/model.safetensors";
  ASSERT_TRUE(std::filesystem::exists(latest));
  std::filesystem::resize_file(latest, std::filesystem::file_size(latest) / 2);
  ASSERT_EQ(run({"resume", dir("c")}, "resume.log"), 0) << last_output;
  EXPECT_NE(last_output.find("skipping unreadable checkpoint"), std::string::npos) << last_output;
  EXPECT_NE(last_output.find("truncated"), std::string::npos) << last_output;
  EXPECT_NE(last_output.find("step 10"), std::string::npos) << last_output;
  expect_same_final_weights("full", "c");
  EXPECT_EQ(metrics("full"), metrics("c"));
}

TEST_F(Resume, SigtermFinishesTheStepCheckpointsAndExits143) {
  ASSERT_EQ(run(run_args("full"), "full.log"), 0) << last_output;
  auto p = start_slow_run("term");
  ASSERT_FALSE(testing::read_lines(dir("term") + "/metrics.jsonl").empty()) << "the run never logged";
  kill(p.pid, SIGTERM);
  EXPECT_EQ(p.wait(), 143) << p.output();
  EXPECT_NE(p.output().find("stopped by signal 15"), std::string::npos) << p.output();
  EXPECT_FALSE(std::filesystem::exists(dir("term") + "/results.json"));
  std::ifstream latest(dir("term") + "/checkpoints/latest");
  std::string name;
  latest >> name;
  const int64_t stopped_at = std::stoll(name.substr(5));
  EXPECT_GE(stopped_at, 3);
  EXPECT_LT(stopped_at, 24);
  ASSERT_EQ(run({"resume", dir("term")}, "resume.log"), 0) << last_output;
  expect_same_final_weights("full", "term");
  EXPECT_EQ(metrics("full"), metrics("term"));
}

TEST_F(Resume, Sigusr1AlsoCheckpointsAndExits143) {
  auto p = start_slow_run("usr1");
  ASSERT_FALSE(testing::read_lines(dir("usr1") + "/metrics.jsonl").empty()) << "the run never logged";
  kill(p.pid, SIGUSR1);
  EXPECT_EQ(p.wait(), 143) << p.output();
  EXPECT_TRUE(std::filesystem::exists(dir("usr1") + "/checkpoints/latest"));
}

// The sbatch script under stand-ins for srun (one task, exec'ed) and scontrol (records the
// requeue): SIGUSR1 to the batch shell, as `--signal=B:USR1@120` sends it, reaches the rank,
// which checkpoints and exits 143; the script requeues the job, and the requeued script resumes.
TEST_F(Resume, SbatchForwardsTheSignalCheckpointsAndRequeues) {
  const auto bin = tmp.path / "bin";
  std::filesystem::create_directories(bin);
  auto script = [&](const std::string& name, const std::string& body) {
    std::ofstream(bin / name) << "#!/usr/bin/env bash\n" << body;
    std::filesystem::permissions(bin / name, std::filesystem::perms::owner_all);
  };
  script("srun", "while [[ $1 == --* ]]; do shift; done\nexport SLURM_PROCID=0 SLURM_NTASKS=1 SLURM_LOCALID=0\nexec \"$@\"\n");
  script("scontrol", "case $1 in show) echo localhost ;; requeue) echo \"$2\" >> \"$SCONTROL_LOG\" ;; esac\n");
  const std::string requeued = tmp.str("requeued.txt");
  const std::vector<std::string> env = {"PATH=" + bin.string() + ":" + std::getenv("PATH"), "SCULPT=" + testing::cli_path(),
                                        "SLURM_JOB_ID=77", "SLURM_JOB_NODELIST=node1", "SCONTROL_LOG=" + requeued,
                                        "MASTER_PORT=29517"};
  std::vector<std::string> args = {std::string(SCULPT_SOURCE_DIR) + "/scripts/slurm/sculpt.sbatch", kRecipe,
                                   "run.output_root=" + tmp.str(), "run.name=slurm", "debug.step_delay_ms=150"};
  auto job = testing::start_program("/bin/bash", args, tmp.str("job1.log"), env);
  for (int i = 0; i < 600 && testing::read_lines(dir("slurm") + "/metrics.jsonl").empty(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_FALSE(testing::read_lines(dir("slurm") + "/metrics.jsonl").empty()) << job.output();
  kill(job.pid, SIGUSR1);
  EXPECT_EQ(job.wait(), 0) << job.output();
  EXPECT_NE(job.output().find("stopped by signal 10"), std::string::npos) << job.output();
  EXPECT_EQ(testing::read_lines(requeued), std::vector<std::string>{"77"});
  EXPECT_TRUE(std::filesystem::exists(dir("slurm") + "/checkpoints/latest"));
  EXPECT_FALSE(std::filesystem::exists(dir("slurm") + "/results.json"));
  // The requeued job: same script, same arguments; it resumes and finishes.
  auto again = testing::start_program("/bin/bash", args, tmp.str("job2.log"), env);
  EXPECT_EQ(again.wait(), 0) << again.output();
  EXPECT_NE(again.output().find("resum"), std::string::npos) << again.output();
  EXPECT_TRUE(std::filesystem::exists(dir("slurm") + "/results.json"));
  EXPECT_EQ(testing::read_lines(requeued).size(), 1u);
}

TEST_F(Resume, NonFiniteLossStopsTheRunAndIsNeverCheckpointed) {
  EXPECT_EQ(run(run_args("nan", {"train.lr=1e30", "train.warmup=0u", "checkpoint.every=1u"}), "nan.log"), 1);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(last_output, m, std::regex("non-finite (loss|gradient norm) at update (\\d+)"))) << last_output;
  const int64_t bad = std::stoll(m[2]);
  for (const auto& entry : std::filesystem::directory_iterator(dir("nan") + "/checkpoints"))
    if (entry.is_directory()) EXPECT_LT(std::stoll(entry.path().filename().string().substr(5)), bad) << entry.path();
}

TEST_F(Resume, ExportedModelEvaluatesOnTheFullDevSet) {
  ASSERT_EQ(run(run_args("ev", {"train.duration=6u"}), "a.log"), 0) << last_output;
  ASSERT_EQ(run({"eval", "--model", dir("ev") + "/final", "--task", "sst2", "--data", testing::shared_path("data/glue"),
                 "--device", "cpu"},
                "eval.log"),
            0)
      << last_output;
  auto j = nlohmann::json::parse(last_output.substr(last_output.find('{')));
  EXPECT_EQ(j["examples"], 872);
  // On the run's own evaluation rows (the first 64, at length 48) the export scores what the run's
  // last evaluation reported.
  ASSERT_EQ(run({"eval", "--model", dir("ev") + "/final", "--task", "sst2", "--data", testing::shared_path("data/glue"),
                 "--device", "cpu", "--max-examples", "64", "--max-length", "48"},
                "eval64.log"),
            0)
      << last_output;
  j = nlohmann::json::parse(last_output.substr(last_output.find('{')));
  EXPECT_EQ(j["examples"], 64);
  const auto evals = testing::read_lines(dir("ev") + "/eval.jsonl");
  ASSERT_FALSE(evals.empty());
  const auto last = nlohmann::json::parse(evals.back());
  EXPECT_EQ(last["step"], 6) << last;
  EXPECT_DOUBLE_EQ(j["accuracy"].get<double>(), last["accuracy"].get<double>()) << last;
}

TEST_F(Resume, Bf16AutocastRunTracksTheFp32Run) {
  ASSERT_EQ(run(run_args("fp32"), "fp32.log"), 0) << last_output;
  ASSERT_EQ(run(run_args("bf16", {"train.precision=bf16"}), "bf16.log"), 0) << last_output;
  auto a = metrics("fp32"), b = metrics("bf16");
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [step, v] : a) EXPECT_NEAR(v[0], b[step][0], 1e-2) << "loss at update " << step;
  EXPECT_NE(run(run_args("fp8", {"train.precision=fp8"}), "fp8.log"), 0);
  EXPECT_NE(last_output.find("train.precision"), std::string::npos) << last_output;
}

TEST_F(Resume, RunRefusesToOverwriteAnEarlierRun) {
  ASSERT_EQ(run(run_args("once", {"train.duration=5u"}), "a.log"), 0) << last_output;
  EXPECT_EQ(run(run_args("once", {"train.duration=5u"}), "b.log"), 1);
  EXPECT_NE(last_output.find("sculpt resume"), std::string::npos) << last_output;
  auto resolved = testing::read_lines(dir("once") + "/recipe.resolved.yaml");
  EXPECT_FALSE(resolved.empty());
}

}  // namespace
}  // namespace sculpt
