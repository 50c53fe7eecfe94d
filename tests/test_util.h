// Helpers shared by the test suites.
#pragma once
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <string>

#include "sculpt/build_paths.h"
#include "sculpt/core/env.h"

namespace sculpt::testing {

// Path under ../shared, or "" (and the caller skips) when shared/ is not there.
inline std::string shared_path(const std::string& rel) {
  std::string root = sculpt::shared_dir();
  if (root.empty()) return {};
  auto p = std::filesystem::path(root) / rel;
  return std::filesystem::exists(p) ? p.string() : std::string();
}

#define SCULPT_REQUIRE_SHARED(var, rel)                                                         \
  const std::string var = ::sculpt::testing::shared_path(rel);                                  \
  if (var.empty()) GTEST_SKIP() << "needs ../shared/" << rel                                    \
                                << " (set SCULPT_SHARED to the shared folder); not found, skipped"

// A fresh temporary directory, removed when the object goes out of scope.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    char tmpl[] = "/tmp/sculpt_test_XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string str(const std::string& rel = "") const { return rel.empty() ? path.string() : (path / rel).string(); }
};

// |a - e| <= atol + rtol*|e| elementwise; returns the worst violation for messages.
inline ::testing::AssertionResult all_close(const torch::Tensor& actual, const torch::Tensor& expected, double atol,
                                            double rtol) {
  if (actual.sizes() != expected.sizes())
    return ::testing::AssertionFailure() << "shape " << actual.sizes() << " vs expected " << expected.sizes();
  auto a = actual.to(torch::kFloat64), e = expected.to(torch::kFloat64);
  auto excess = (a - e).abs() - (atol + rtol * e.abs());
  double worst = excess.numel() ? excess.max().item<double>() : -1;
  if (worst <= 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "max |diff| " << (a - e).abs().max().item<double>()
                                       << " exceeds tolerance by " << worst;
}

inline std::string cli_path() { return SCULPT_CLI_PATH; }

}  // namespace sculpt::testing
