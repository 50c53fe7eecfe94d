#include "sculpt/data/token_file.h"

#include <torch/torch.h>

#include <fmt/ranges.h>

#include "sculpt/core/error.h"

namespace sculpt::data {
namespace {
constexpr const char* kFormat = "sculpt-tokens-1";
}  // namespace

void write_token_columns(const std::string& path, const std::string& key, const std::string& description,
                         const io::TensorMap& columns) {
  io::write_safetensors(path, columns, {{"format", kFormat}, {"key", key}, {"description", description}});
}

TokenFile::TokenFile(const std::string& path_, const std::string& key) : path(path_), content_(io::read_safetensors(path_)) {
  auto meta = [&](const char* k) {
    auto it = content_.metadata.find(k);
    return it == content_.metadata.end() ? std::string() : it->second;
  };
  SCULPT_CHECK(meta("format") == kFormat, "{}: format '{}', expected '{}'", path, meta("format"), kFormat);
  SCULPT_CHECK(meta("key") == key, "{}: filed under key {}, expected {}", path, meta("key"), key);
}

torch::Tensor TokenFile::column(const std::string& name, torch::ScalarType type, const std::vector<int64_t>& shape) const {
  auto it = content_.tensors.find(name);
  SCULPT_CHECK(it != content_.tensors.end(), "{}: no column '{}'", path, name);
  const auto& t = it->second;
  SCULPT_CHECK(t.scalar_type() == type && t.sizes().vec() == shape, "{}: column '{}' is {} [{}], expected {} [{}]", path, name,
               c10::toString(t.scalar_type()), fmt::join(t.sizes(), ", "), c10::toString(type), fmt::join(shape, ", "));
  return t;
}

std::vector<int64_t> TokenFile::shape(const std::string& name) const {
  auto it = content_.tensors.find(name);
  SCULPT_CHECK(it != content_.tensors.end(), "{}: no column '{}'", path, name);
  return it->second.sizes().vec();
}

int64_t TokenFile::length(const std::string& name, torch::ScalarType type) const {
  auto it = content_.tensors.find(name);
  SCULPT_CHECK(it != content_.tensors.end() && it->second.dim() == 1 && it->second.scalar_type() == type,
               "{}: no 1-d {} column '{}'", path, c10::toString(type), name);
  return it->second.numel();
}

const int64_t* TokenFile::offsets(const std::string& name, int64_t n, int64_t total) const {
  const int64_t* p = column(name, torch::kInt64, {n + 1}).data_ptr<int64_t>();
  SCULPT_CHECK(p[0] == 0 && p[n] == total, "{}: offsets '{}' run from {} to {}, expected 0 to {}", path, name, p[0], p[n], total);
  for (int64_t i = 0; i < n; ++i) SCULPT_CHECK(p[i + 1] >= p[i], "{}: offsets '{}' decrease at row {}", path, name, i);
  return p;
}

void TokenFile::check_range(const std::string& name, const torch::Tensor& values, int64_t lo, int64_t hi,
                            const std::string& what) const {
  if (values.numel() == 0) return;
  // min and max first: no widened copy of a large, good column
  if (values.min().item<int64_t>() >= lo && values.max().item<int64_t>() < hi) return;
  const auto wide = values.to(torch::kInt64).reshape({-1});
  const auto bad = torch::logical_or(wide < lo, wide >= hi).nonzero();
  if (bad.numel() == 0) return;
  const int64_t at = bad[0].item<int64_t>();
  fail("{}: column '{}' holds {} at {}, outside {}", path, name, wide[at].item<int64_t>(), at, what);
}

}  // namespace sculpt::data
