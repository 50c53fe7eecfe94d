#include "sculpt/train/glue_data.h"

#include <torch/torch.h>

#include <chrono>
#include <filesystem>

#include "sculpt/core/log.h"
#include "sculpt/data/token_cache.h"
#include "sculpt/train/sink.h"

namespace fs = std::filesystem;

namespace sculpt::train {
namespace {

std::vector<data::GlueExample> limit(std::vector<data::GlueExample> rows, int64_t n) {
  if (n > 0 && static_cast<size_t>(n) < rows.size()) rows.resize(static_cast<size_t>(n));
  return rows;
}

}  // namespace

namespace {

// One split, from the token cache or tokenized on every thread with a progress bar and filed.
std::vector<data::Example> load_split(const recipe::Recipe& r, const data::GlueTask& task, const tokenizers::Tokenizer& tokenizer,
                                      const std::string& split, int64_t max_examples) {
  const auto t0 = std::chrono::steady_clock::now();
  const std::string file = data::glue_split_path(task, r.data.root, split);
  data::Digest key;
  key.add(data::kTokenizationVersion).add("glue").add(task.name).add(split).add(std::to_string(r.data.max_seq_len)).add(std::to_string(max_examples));
  for (const auto& name : tokenizer_file_names())
    if (fs::exists(fs::path(r.model.tokenizer) / name)) key.add(name).add_file((fs::path(r.model.tokenizer) / name).string());
  if (fs::exists(file)) key.add_file(file);  // else read_glue_split names the missing file
  const std::string description =
      fmt::format("{} {} (max_seq_len {}, first {} rows) of {} with the tokenizer of {}", task.name, split, r.data.max_seq_len,
                  max_examples, file, r.model.tokenizer);
  int threads = 0;
  auto cached = data::cached_examples(data::token_cache_dir(), key.hex(), description, tokenizer.vocab_size(), [&] {
    auto rows = limit(data::read_glue_split(task, r.data.root, split), max_examples);
    ProgressBar bar(r.logging.progress_bar, static_cast<int64_t>(rows.size()));
    threads = at::get_num_threads();
    auto out = data::encode_glue(tokenizer, rows, r.data.max_seq_len, threads,
                                 [&](size_t done) { bar.update(static_cast<int64_t>(done), "tokenizing " + split); });
    bar.finish();
    return out;
  });
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (cached.hit)
    LOG_INFO("[data] {} {}: {} examples from the token cache in {:.2f}s", task.name, split, cached.examples.size(), secs);
  else
    LOG_INFO("[data] {} {}: {} examples tokenized in {:.2f}s on {} threads ({:.0f} examples/s)", task.name, split,
             cached.examples.size(), secs, threads, static_cast<double>(cached.examples.size()) / std::max(secs, 1e-9));
  return std::move(cached.examples);
}

}  // namespace

GlueData::GlueData(const recipe::Recipe& r, Splits splits) : task(data::glue_task(r.data.task)) {
  tokenizer = tokenizers::load_tokenizer(r.model.tokenizer);
  pad_id = tokenizer->pad_id();
  if (splits == Splits::train_and_dev) train = load_split(r, task, *tokenizer, "train", r.data.max_train_examples);
  for (const auto& split : task.dev_splits) dev.emplace_back(split, load_split(r, task, *tokenizer, split, r.data.max_eval_examples));
  lengths = data::lengths_of(train);
}

std::map<std::string, double> GlueData::evaluate(const LogitsFn& logits_of, int64_t batch_size, const torch::Device& device,
                                                 Distributed* shard) const {
  std::map<std::string, double> all;
  for (size_t s = 0; s < dev.size(); ++s)
    for (const auto& [k, v] : evaluate_glue(logits_of, task.name, dev[s].second, batch_size, pad_id, device, shard))
      all[s == 0 ? k : "mm_" + k] = v;
  return all;
}

const std::vector<std::string>& tokenizer_file_names() {
  static const std::vector<std::string> names = {"vocab.txt",   "tokenizer_config.json", "special_tokens_map.json",
                                                 "tokenizer.json", "spiece.model",       "added_tokens.json",
                                                 "vocab.json",  "merges.txt",            "encoder.json",
                                                 "vocab.bpe"};
  return names;
}

void copy_tokenizer_files(const std::string& from, const std::string& to) {
  for (const auto& name : tokenizer_file_names())
    if (fs::exists(fs::path(from) / name))
      fs::copy_file(fs::path(from) / name, fs::path(to) / name, fs::copy_options::overwrite_existing);
}

}  // namespace sculpt::train
