// SQuAD features in the token cache: ids, types and context spans as flat columns with row
// offsets, and per feature its example, start and end position.
#include <torch/torch.h>

#include "sculpt/core/error.h"
#include "sculpt/data/squad.h"
#include "sculpt/data/token_file.h"

namespace sculpt::data {

void write_squad_features(const std::string& path, const std::string& key, const std::string& description,
                          const std::vector<SquadFeature>& features) {
  const int64_t n = static_cast<int64_t>(features.size());
  auto per_feature = torch::empty({n, 3}, torch::kInt64);  // example, start, end
  auto pf = per_feature.accessor<int64_t, 2>();
  for (int64_t i = 0; i < n; ++i) {
    const auto& f = features[static_cast<size_t>(i)];
    SCULPT_CHECK(f.types.size() == f.ids.size() && f.offsets.size() == f.ids.size(),
                 "token cache: feature {} has {} ids, {} types and {} spans", i, f.ids.size(), f.types.size(), f.offsets.size());
    pf[i][0] = static_cast<int64_t>(f.example), pf[i][1] = f.start_position, pf[i][2] = f.end_position;
  }
  auto ids = flat_column<int32_t>(features, [](const SquadFeature& f) -> auto& { return f.ids; });
  auto spans = torch::empty({ids.numel(), 2}, torch::kInt32);
  int32_t* sp = spans.data_ptr<int32_t>();
  for (const auto& f : features)
    for (const auto& [a, b] : f.offsets) *sp++ = a, *sp++ = b;
  write_token_columns(path, key, description,
                      {{"ids", ids},
                       {"types", flat_column<uint8_t>(features, [](const SquadFeature& f) -> auto& { return f.types; })},
                       {"spans", spans},
                       {"offsets", row_offsets(features, [](const SquadFeature& f) -> auto& { return f.ids; })},
                       {"features", per_feature}});
}

std::vector<SquadFeature> read_squad_features(const std::string& path, const std::string& key, size_t vocab_size,
                                              const std::vector<SquadExample>& examples) {
  const TokenFile file(path, key);
  const int64_t total = file.length("ids", torch::kInt32), n = file.length("offsets", torch::kInt64) - 1;
  SCULPT_CHECK(n >= 0, "{}: empty offsets", path);
  const auto ids = file.column("ids", torch::kInt32, {total}), types = file.column("types", torch::kUInt8, {total});
  const auto spans = file.column("spans", torch::kInt32, {total, 2}), per = file.column("features", torch::kInt64, {n, 3});
  file.check_range("ids", ids, 0, static_cast<int64_t>(vocab_size), fmt::format("the vocabulary of {}", vocab_size));
  file.check_range("types", types, 0, 2, "token types 0 and 1");
  file.check_range("features", per.select(1, 0), 0, static_cast<int64_t>(examples.size()),
                   fmt::format("the {} examples", examples.size()));
  const int64_t* op = file.offsets("offsets", n, total);
  const int32_t* ip = ids.data_ptr<int32_t>();
  const uint8_t* tp = types.data_ptr<uint8_t>();
  const int32_t* sp = spans.data_ptr<int32_t>();
  const auto pf = per.accessor<int64_t, 2>();
  std::vector<SquadFeature> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    auto& f = out[static_cast<size_t>(i)];
    f.example = static_cast<size_t>(pf[i][0]);
    const int64_t len = op[i + 1] - op[i], context = static_cast<int64_t>(examples[f.example].context.size());
    f.start_position = pf[i][1], f.end_position = pf[i][2];
    SCULPT_CHECK(0 <= f.start_position && f.start_position <= f.end_position && f.end_position < std::max<int64_t>(len, 1),
                 "{}: feature {} answers at tokens {}..{} of {}", path, i, f.start_position, f.end_position, len);
    f.ids.assign(ip + op[i], ip + op[i + 1]);
    f.types.assign(tp + op[i], tp + op[i + 1]);
    f.offsets.resize(static_cast<size_t>(len));
    for (int64_t t = 0; t < len; ++t) {
      const int32_t a = sp[2 * (op[i] + t)], b = sp[2 * (op[i] + t) + 1];
      // (-1, -1) outside the context, else a byte range of it: post-processing cuts the answer there
      SCULPT_CHECK((a == -1 && b == -1) || (0 <= a && a <= b && b <= context),
                   "{}: feature {} token {} spans bytes {}..{} of a {}-byte context", path, i, t, a, b, context);
      f.offsets[static_cast<size_t>(t)] = {a, b};
    }
  }
  return out;
}

}  // namespace sculpt::data
