#include "sculpt/train/token_data.h"

#include <ATen/Parallel.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>

#include "sculpt/core/log.h"
#include "sculpt/data/token_cache.h"
#include "sculpt/tokenizers/wordpiece.h"
#include "sculpt/train/sink.h"

namespace fs = std::filesystem;

namespace sculpt::train {
namespace {

// The key: the tokenization version, KIND, OPTIONS, the tokenizer files present and the data
// file's bytes (a missing file is left to its reader to name).
std::string token_key(const std::string& kind, const std::vector<std::string>& options, const std::string& tokenizer_dir,
                      const std::string& data_file) {
  data::Digest key;
  key.add(data::kTokenizationVersion).add(kind);
  for (const auto& o : options) key.add(o);
  for (const auto& name : tokenizer_file_names())
    if (fs::exists(fs::path(tokenizer_dir) / name)) key.add(name).add_file((fs::path(tokenizer_dir) / name).string());
  if (fs::exists(data_file)) key.add_file(data_file);
  return key.hex();
}

void log_loaded(const std::string& what, size_t n, const std::string& unit, bool hit, std::chrono::steady_clock::time_point t0) {
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (hit)
    LOG_INFO("[data] {}: {} {} from the token cache in {:.2f}s", what, n, unit, secs);
  else
    LOG_INFO("[data] {}: {} {} tokenized in {:.2f}s on {} threads ({:.0f} {}/s)", what, n, unit, secs, at::get_num_threads(),
             static_cast<double>(n) / std::max(secs, 1e-9), unit);
}

// The rows filed under KEY, or encode(progress) run under a progress bar of N rows and filed with
// write(); logged either way.
template <class T>
std::vector<T> load_tokens(const TokenSource& source, const std::string& what, const std::string& unit, const std::string& key,
                           const std::function<std::vector<T>(const std::string&)>& read,
                           const std::function<size_t()>& rows,
                           const std::function<std::vector<T>(const std::function<void(size_t)>&)>& encode,
                           const std::function<void(const std::string&, const std::vector<T>&)>& write) {
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<T> out;
  const bool hit = data::cache_or_build(
      data::token_cache_dir(), key, [&](const std::string& path) { out = read(path); },
      [&] {
        ProgressBar bar(source.progress, static_cast<int64_t>(rows()));
        out = encode([&](size_t done) { bar.update(static_cast<int64_t>(done), "tokenizing " + what); });
        bar.finish();
      },
      [&](const std::string& path) { write(path, out); });
  log_loaded(what, out.size(), unit, hit, t0);
  return out;
}

}  // namespace

std::vector<data::Example> load_glue_examples(const TokenSource& source, const data::GlueTask& task, const std::string& root,
                                              const std::string& split, int64_t max_length, int64_t max_examples) {
  const std::string file = data::glue_split_path(task, root, split);
  const std::string key =
      token_key("glue", {task.name, split, std::to_string(max_length), std::to_string(max_examples)}, source.tokenizer_dir, file);
  const std::string description = fmt::format("{} {} (max_seq_len {}, first {} rows) of {} with the tokenizer of {}", task.name,
                                              split, max_length, max_examples, file, source.tokenizer_dir);
  std::vector<data::GlueExample> rows;
  return load_tokens<data::Example>(
      source, task.name + " " + split, "examples", key,
      [&](const std::string& path) { return data::read_token_file(path, key, source.tokenizer.vocab_size()); },
      [&] { return (rows = first_rows(data::read_glue_split(task, root, split), max_examples)).size(); },
      [&](const auto& progress) { return data::encode_glue(source.tokenizer, rows, max_length, 0, progress); },
      [&](const std::string& path, const auto& out) { data::write_token_file(path, key, description, out); });
}

std::vector<data::TextPair> load_text_pairs(const TokenSource& source, const data::GlueTask& task, const std::string& root,
                                            const std::string& split, int64_t max_length, int64_t max_examples,
                                            bool with_target) {
  const std::string file = data::glue_split_path(task, root, split);
  const std::string key = token_key("glue-text", {task.name, split, std::to_string(max_length), std::to_string(max_examples),
                                                  with_target ? "targets" : "no targets"},
                                    source.tokenizer_dir, file);
  const std::string description = fmt::format("{} {} as text-to-text (max_seq_len {}, first {} rows) of {} with the tokenizer of {}",
                                              task.name, split, max_length, max_examples, file, source.tokenizer_dir);
  std::vector<data::GlueExample> rows;
  return load_tokens<data::TextPair>(
      source, task.name + " " + split + " as text", "examples", key,
      [&](const std::string& path) { return data::read_text_pairs(path, key, source.tokenizer.vocab_size()); },
      [&] { return (rows = first_rows(data::read_glue_split(task, root, split), max_examples)).size(); },
      [&](const auto& progress) {
        return data::encode_t5_glue(source.tokenizer, task, rows, max_length, with_target, 0, progress);
      },
      [&](const std::string& path, const auto& out) { data::write_text_pairs(path, key, description, out); });
}

std::vector<data::SquadFeature> load_squad_features(const TokenSource& source, const tokenizers::WordPieceTokenizer& wordpiece,
                                                    const std::string& file, const std::vector<data::SquadExample>& examples,
                                                    const data::SquadFeatureOptions& o) {
  const std::string key = token_key("squad",
                                    {std::to_string(o.max_length), std::to_string(o.doc_stride), std::to_string(o.max_query_length),
                                     std::to_string(examples.size())},
                                    source.tokenizer_dir, file);
  const std::string description =
      fmt::format("SQuAD features (max_length {}, doc_stride {}, max_query_length {}, first {} questions) of {} with the tokenizer of {}",
                  o.max_length, o.doc_stride, o.max_query_length, examples.size(), file, source.tokenizer_dir);
  return load_tokens<data::SquadFeature>(
      source, fs::path(file).filename().string(), "features", key,
      [&](const std::string& path) { return data::read_squad_features(path, key, source.tokenizer.vocab_size(), examples); },
      [&] { return examples.size(); },
      [&](const auto& progress) { return data::make_squad_features(wordpiece, examples, o, 0, progress); },
      [&](const std::string& path, const auto& out) { data::write_squad_features(path, key, description, out); });
}

data::TokenBlocks load_corpus_blocks(const TokenSource& source, const std::string& file, const data::CorpusOptions& o) {
  const std::string key =
      token_key("corpus", {std::to_string(o.block_size), o.sample_by, std::to_string(o.group_samples)}, source.tokenizer_dir, file);
  const std::string description = fmt::format("{} in blocks of {} tokens (samples by {}, groups of {}) with the tokenizer of {}",
                                              file, o.block_size, o.sample_by, o.group_samples, source.tokenizer_dir);
  const auto t0 = std::chrono::steady_clock::now();
  const std::string dir = data::token_cache_dir();
  data::TokenBlocks blocks;
  std::string built;  // where the blocks were streamed to
  bool temporary = false;
  const bool hit = data::cache_or_build(
      dir, key, [&](const std::string& path) { blocks = data::TokenBlocks(path, key, source.tokenizer.vocab_size()); },
      [&] {
        // beside the cache file (renamed into place), or a temporary when there is no cache directory
        temporary = dir.empty() || !fs::is_directory(dir);
        built = temporary ? (fs::temp_directory_path() / fmt::format("sculpt_corpus_{}_{}", ::getpid(), key)).string()
                          : (fs::path(dir) / (key + ".building")).string();
        std::error_code ec;
        ProgressBar bar(source.progress, static_cast<int64_t>(fs::file_size(file, ec)));
        data::write_corpus_blocks(source.tokenizer, file, o, built, key, description, 0,
                                  [&](size_t bytes) { bar.update(static_cast<int64_t>(bytes), "tokenizing " + file); });
        bar.finish();
      },
      [&](const std::string& path) {
        fs::rename(built, path);
        built = path;
      });
  if (!hit) {
    blocks = data::TokenBlocks(built, key, source.tokenizer.vocab_size());
    if (temporary) fs::remove(built);  // the mapping keeps the pages
  }
  log_loaded(fs::path(file).filename().string(), static_cast<size_t>(blocks.size()),
             fmt::format("blocks of {} tokens", o.block_size), hit, t0);
  return blocks;
}

const std::vector<std::string>& tokenizer_file_names() {
  static const std::vector<std::string> names = {"vocab.txt",   "tokenizer_config.json", "special_tokens_map.json",
                                                 "tokenizer.json", "spiece.model",       "added_tokens.json",
                                                 "vocab.json",  "merges.txt",            "encoder.json",
                                                 "vocab.bpe"};
  return names;
}

}  // namespace sculpt::train
