#include "sculpt/train/glue_data.h"

#include <torch/torch.h>

#include <chrono>
#include <filesystem>

#include "sculpt/core/log.h"

namespace fs = std::filesystem;

namespace sculpt::train {
namespace {

std::vector<data::GlueExample> limit(std::vector<data::GlueExample> rows, int64_t n) {
  if (n > 0 && static_cast<size_t>(n) < rows.size()) rows.resize(static_cast<size_t>(n));
  return rows;
}

}  // namespace

GlueData::GlueData(const recipe::Recipe& r) : task(data::glue_task(r.data.task)) {
  auto t0 = std::chrono::steady_clock::now();
  tokenizer = tokenizers::load_tokenizer(r.model.tokenizer);
  pad_id = tokenizer->pad_id();
  train = data::encode_glue(*tokenizer, limit(data::read_glue_split(task, r.data.root, "train"), r.data.max_train_examples),
                            r.data.max_seq_len);
  for (const auto& split : task.dev_splits)
    dev.emplace_back(split, data::encode_glue(*tokenizer, limit(data::read_glue_split(task, r.data.root, split), r.data.max_eval_examples),
                                              r.data.max_seq_len));
  lengths = data::lengths_of(train);
  LOG_INFO("[data] {}: {} train, {} dev examples, tokenized in {:.1f}s", task.name, train.size(), dev.front().second.size(),
           std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
}

std::map<std::string, double> GlueData::evaluate(const LogitsFn& logits_of, int64_t batch_size, const torch::Device& device,
                                                 Distributed* shard) const {
  std::map<std::string, double> all;
  for (size_t s = 0; s < dev.size(); ++s)
    for (const auto& [k, v] : evaluate_glue(logits_of, task.name, dev[s].second, batch_size, pad_id, device, shard))
      all[s == 0 ? k : "mm_" + k] = v;
  return all;
}

void copy_tokenizer_files(const std::string& from, const std::string& to) {
  for (const char* name : {"vocab.txt", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.json", "spiece.model",
                           "added_tokens.json", "vocab.json", "merges.txt", "encoder.json", "vocab.bpe"})
    if (fs::exists(fs::path(from) / name))
      fs::copy_file(fs::path(from) / name, fs::path(to) / name, fs::copy_options::overwrite_existing);
}

}  // namespace sculpt::train
