// Run the real sculpt binary from a test: fork + exec, output to a file, exit status back.
#pragma once
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "test_util.h"

namespace sculpt::testing {

struct Process {
  pid_t pid = -1;
  std::string log;
  // Exit code, or 128 + signal when killed by one.
  int wait() {
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  std::string output() const {
    std::ifstream in(log);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
};

// `env` entries ("NAME=value") are added to the child's environment.
inline Process start_program(std::string exe, const std::vector<std::string>& args, const std::string& log,
                             const std::vector<std::string>& env = {}) {
  Process p;
  p.log = log;
  p.pid = fork();
  if (p.pid == 0) {
    FILE* f = freopen(log.c_str(), "w", stderr);
    (void)f;
    dup2(fileno(stderr), STDOUT_FILENO);
    std::vector<char*> argv;
    argv.push_back(exe.data());
    std::vector<std::string> copy = args;
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (const auto& e : env) putenv(const_cast<char*>(strdup(e.c_str())));
    execv(exe.c_str(), argv.data());
    _exit(127);
  }
  return p;
}

inline Process start_cli(const std::vector<std::string>& args, const std::string& log, const std::vector<std::string>& env = {}) {
  return start_program(cli_path(), args, log, env);
}

inline int run_cli(const std::vector<std::string>& args, const std::string& log, std::string* output = nullptr,
                   const std::vector<std::string>& env = {}) {
  auto p = start_cli(args, log, env);
  int code = p.wait();
  if (output) *output = p.output();
  return code;
}

inline std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  return lines;
}

// A test that runs the CLI on real SST-2 rows and the tiny tokenizer fixture, in a fresh
// temporary folder; skipped (with the reason) where ../shared is not there.
class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (shared_path("data/glue/SST-2").empty() || shared_path("fixtures/hf/tok_bert_wordpiece").empty())
      GTEST_SKIP() << "needs ../shared/data/glue/SST-2 and fixtures (set SCULPT_SHARED); not found, skipped";
  }
  // The CLI's exit code; its output is kept in last_output. The token cache is the test's own
  // (SCULPT_CACHE=<tmp>/cache) unless `env` names another.
  int run(const std::vector<std::string>& args, const std::string& log, const std::vector<std::string>& env = {}) {
    std::vector<std::string> all = {"SCULPT_CACHE=" + tmp.str("cache")};
    all.insert(all.end(), env.begin(), env.end());
    auto p = start_cli(args, tmp.str(log), all);
    const int code = p.wait();
    last_output = p.output();
    return code;
  }
  TempDir tmp;
  std::string last_output;
};

// A CliTest that starts from the tiny BERT fine-tuned on real SST-2 rows (a few seconds):
// <tmp>/teacher/final and <tmp>/teacher/best.
class TinyTeacherTest : public CliTest {
 protected:
  void SetUp() override {
    CliTest::SetUp();
    if (IsSkipped()) return;
    ASSERT_EQ(run({"run", std::string(SCULPT_SOURCE_DIR) + "/recipes/tests/tiny_bert_finetune.yaml", "run.output_root=" + tmp.str(),
                   "run.name=teacher"},
                  "teacher.log"),
              0)
        << last_output;
  }
};

}  // namespace sculpt::testing
