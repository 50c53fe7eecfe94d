// Data parallelism over Gloo on loopback: 2 processes give the same weights as 1 process
// with the same global batch (within fp32 tolerance), also when a 2-process run is killed
// and resumed by a single process.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <fstream>
#include <regex>

#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "sculpt/io/safetensors.h"
#include "sculpt/train/distributed.h"

namespace sculpt {
namespace {

int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

class DataParallel : public testing::CliTest {
 protected:
  std::vector<std::string> args(const std::string& name, std::vector<std::string> extra = {}) {
    // Dropout off: each rank draws its own dropout masks, so only a deterministic model can match.
    std::vector<std::string> a = {"run", std::string(SCULPT_SOURCE_DIR) + "/recipes/tests/tiny_bert_finetune.yaml",
                                  "run.output_root=" + tmp.str(), "run.name=" + name,
                                  "model.config.hidden_dropout_prob=0.0", "model.config.attention_probs_dropout_prob=0.0"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }
  // Both ranks; returns their exit codes.
  std::pair<int, int> run_two(const std::vector<std::string>& a, const std::string& tag) {
    const std::string port = std::to_string(free_port());
    auto env = [&](int rank) {
      return std::vector<std::string>{"RANK=" + std::to_string(rank), "WORLD_SIZE=2", "LOCAL_RANK=" + std::to_string(rank),
                                      "MASTER_ADDR=127.0.0.1", "MASTER_PORT=" + port};
    };
    auto p0 = testing::start_cli(a, tmp.str(tag + "0.log"), env(0));
    auto p1 = testing::start_cli(a, tmp.str(tag + "1.log"), env(1));
    int c0 = p0.wait(), c1 = p1.wait();
    log0 = p0.output();
    return {c0, c1};
  }
  void expect_close_weights(const std::string& a, const std::string& b) {
    auto wa = io::read_safetensors(tmp.str(a + "/final/model.safetensors")).tensors;
    auto wb = io::read_safetensors(tmp.str(b + "/final/model.safetensors")).tensors;
    ASSERT_EQ(wa.size(), wb.size());
    for (const auto& [k, v] : wa) EXPECT_TRUE(testing::all_close(wb.at(k), v, 1e-5, 1e-4)) << k;
  }
  std::string log0;
};

TEST_F(DataParallel, TwoGlooProcessesMatchOneProcess) {
  ASSERT_EQ(run(args("one"), "one.log"), 0) << last_output;
  // Small buckets, so that the model's gradients fill several and all but the last (which carries
  // the loss) are launched from the gradient hooks while backward still runs; grad_accum 2 in
  // the recipe: the first micro-batch's backward launches nothing.
  auto [c0, c1] = run_two(args("two", {"train.grad_bucket_mb=0.01"}), "two");
  ASSERT_EQ(c0, 0) << log0;
  ASSERT_EQ(c1, 0);
  EXPECT_NE(log0.find("rank 0 of 2"), std::string::npos) << log0;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(log0, m, std::regex("gradients in ([0-9]+) buckets of <= 0.01 MiB, ([0-9]+) of them launched during backward")))
      << log0;
  EXPECT_GE(std::stoi(m[1]), 3);
  EXPECT_EQ(std::stoi(m[2]), std::stoi(m[1]) - 1);
  expect_close_weights("one", "two");
  auto a = testing::read_lines(tmp.str("one/metrics.jsonl")), b = testing::read_lines(tmp.str("two/metrics.jsonl"));
  ASSERT_EQ(a.size(), b.size());  // rank 0 alone writes the log
  for (size_t i = 0; i < a.size(); ++i) {
    auto ja = nlohmann::json::parse(a[i]), jb = nlohmann::json::parse(b[i]);
    EXPECT_EQ(ja["step"], jb["step"]);
    EXPECT_NEAR(ja["loss"].get<double>(), jb["loss"].get<double>(), 1e-5) << i;
  }
}

TEST_F(DataParallel, KilledTwoProcessRunResumesOnOneProcess) {
  ASSERT_EQ(run(args("one"), "one.log"), 0) << last_output;
  auto [c0, c1] = run_two(args("two", {"debug.crash_after_step=13"}), "crash");
  EXPECT_EQ(c0, 128 + SIGKILL) << log0;
  EXPECT_EQ(c1, 128 + SIGKILL);
  ASSERT_EQ(run({"resume", tmp.str("two")}, "resume.log"), 0) << last_output;
  expect_close_weights("one", "two");
}

TEST_F(DataParallel, PruningAndItsFineTuneStageRunOnTwoProcesses) {
  const std::string recipes = std::string(SCULPT_SOURCE_DIR) + "/recipes/tests/";
  ASSERT_EQ(run({"run", recipes + "tiny_bert_finetune.yaml", "run.output_root=" + tmp.str(), "run.name=teacher"}, "teacher.log"), 0)
      << last_output;
  // Masks and lambdas are parameters of the trained module: their gradients are all-reduced
  // like the rest, so both ranks take the same steps; rank 0 alone writes the summary.
  auto [c0, c1] = run_two({"run", recipes + "tiny_bert_cofi.yaml", "run.output_root=" + tmp.str(), "run.name=cofi",
                           "model.path=" + tmp.str("teacher/final")},
                          "cofi");
  ASSERT_EQ(c0, 0) << log0;
  ASSERT_EQ(c1, 0);
  auto summary = nlohmann::json::parse(std::ifstream(tmp.str("cofi/compression.json")));
  EXPECT_TRUE(summary.contains("finetuned"));
  EXPECT_TRUE(std::filesystem::exists(tmp.str("cofi/finetune/best/config.json")));
}

// T5's generated answers and teacher-forced loss are evaluated a share of the batches per rank and
// gathered: the same accuracy, unknown-output count and loss, evaluation by evaluation, as one
// process. The rate is so small that the weights stay what they were in fp32: two ranks average
// their halves' gradients, which is not one process's mean over all target tokens, so a real
// rate would give two (slightly) different models to compare.
TEST_F(DataParallel, T5EvaluationShardedOverTwoProcessesMatchesOneProcess) {
  const std::vector<std::string> a = {"run", std::string(SCULPT_SOURCE_DIR) + "/recipes/tests/tiny_t5_glue.yaml",
                                      "run.output_root=" + tmp.str(), "model.config.dropout_rate=0.0", "data.eval_batch_size=4",
                                      "eval.every=3u", "train.lr=1e-12"};
  auto with_name = [&](const std::string& name) {
    auto out = a;
    out.push_back("run.name=" + name);
    return out;
  };
  ASSERT_EQ(run(with_name("t5one"), "t5one.log"), 0) << last_output;
  auto [c0, c1] = run_two(with_name("t5two"), "t5two");
  ASSERT_EQ(c0, 0) << log0;
  ASSERT_EQ(c1, 0);
  auto one = testing::read_lines(tmp.str("t5one/eval.jsonl")), two = testing::read_lines(tmp.str("t5two/eval.jsonl"));
  ASSERT_EQ(one.size(), 2u);
  ASSERT_EQ(two.size(), one.size());
  for (size_t i = 0; i < one.size(); ++i) {
    auto x = nlohmann::json::parse(one[i]), y = nlohmann::json::parse(two[i]);
    EXPECT_EQ(x["step"], y["step"]);
    EXPECT_EQ(x["accuracy"], y["accuracy"]) << one[i] << " vs " << two[i];
    EXPECT_EQ(x["unknown_outputs"], y["unknown_outputs"]) << one[i] << " vs " << two[i];
    // The teacher-forced loss: the same batches' sums, added in another order across the ranks.
    EXPECT_NEAR(x["loss"].get<double>(), y["loss"].get<double>(), 1e-9 * x["loss"].get<double>()) << one[i] << " vs " << two[i];
  }
}

TEST(RankSlice, ContiguousNearlyEqualShares) {
  std::vector<size_t> b = {10, 11, 12, 13, 14};
  EXPECT_EQ(train::rank_slice(b, 0, 2), (std::vector<size_t>{10, 11}));
  EXPECT_EQ(train::rank_slice(b, 1, 2), (std::vector<size_t>{12, 13, 14}));
  EXPECT_EQ(train::rank_slice(b, 0, 1), b);
  EXPECT_TRUE(train::rank_slice({7}, 0, 2).empty());
}

}  // namespace
}  // namespace sculpt
