// The token cache's file format: safetensors holding named columns, with the format and the
// cache key in its metadata. Ragged rows (a token list per example) are one flat column plus
// n + 1 row offsets. Reading checks every column's type and shape, the offsets and the value
// ranges, so a damaged file is refused with the file and column named, never trusted.
#pragma once
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "sculpt/io/safetensors.h"

namespace sculpt::data {

// COLUMNS written to PATH (atomically), the format, KEY and DESCRIPTION in its metadata.
void write_token_columns(const std::string& path, const std::string& key, const std::string& description,
                         const io::TensorMap& columns);

// field(row) of every row, concatenated into one 1-d column of T.
template <class T, class Rows, class Field>
torch::Tensor flat_column(const Rows& rows, Field field) {
  int64_t total = 0;
  for (const auto& r : rows) total += static_cast<int64_t>(field(r).size());
  auto out = torch::empty({total}, torch::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value));
  T* p = out.template data_ptr<T>();
  for (const auto& r : rows) {
    const auto& f = field(r);
    p = std::transform(f.begin(), f.end(), p, [](auto v) { return static_cast<T>(v); });
  }
  return out;
}

// The n + 1 offsets (int64) of the rows' field(row) in a flat column.
template <class Rows, class Field>
torch::Tensor row_offsets(const Rows& rows, Field field) {
  auto out = torch::empty({static_cast<int64_t>(rows.size()) + 1}, torch::kInt64);
  int64_t* p = out.data_ptr<int64_t>();
  *p = 0;
  for (const auto& r : rows) p[1] = p[0] + static_cast<int64_t>(field(r).size()), ++p;
  return out;
}

class TokenFile {
 public:
  // PATH opened (memory-mapped); refused when its format or key is not KEY's.
  TokenFile(const std::string& path, const std::string& key);
  // The column NAME, refused unless it has TYPE and SHAPE.
  torch::Tensor column(const std::string& name, torch::ScalarType type, const std::vector<int64_t>& shape) const;
  // The shape of the column NAME.
  std::vector<int64_t> shape(const std::string& name) const;
  // The length of the 1-d column NAME of TYPE.
  int64_t length(const std::string& name, torch::ScalarType type) const;
  // The n + 1 row offsets in NAME, checked to run from 0 to TOTAL without decreasing.
  const int64_t* offsets(const std::string& name, int64_t n, int64_t total) const;
  // Refused unless every value of the integer column NAME lies in [lo, hi); WHAT names the bound.
  void check_range(const std::string& name, const torch::Tensor& values, int64_t lo, int64_t hi, const std::string& what) const;

  const std::string path;

 private:
  io::SafetensorsContent content_;
};

}  // namespace sculpt::data
