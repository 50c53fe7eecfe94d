#include "sculpt/tokenizers/tokenizer.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>

#include "sculpt/core/error.h"
#include "sculpt/io/hf_dir.h"
#include "sculpt/tokenizers/bpe.h"
#include "sculpt/tokenizers/sentencepiece.h"
#include "sculpt/tokenizers/wordpiece.h"

namespace fs = std::filesystem;

namespace sculpt::tokenizers {

void truncate_pair(std::vector<int64_t>& ids, std::vector<int64_t>* pair, size_t num_special, const EncodeOptions& o) {
  if (o.truncation.empty() || o.truncation == "do_not_truncate" || o.max_length < 0) return;
  const size_t total = ids.size() + (pair ? pair->size() : 0) + num_special;
  if (total <= static_cast<size_t>(o.max_length)) return;
  size_t remove = total - static_cast<size_t>(o.max_length);
  // As HF: when the chosen sequence is too short to absorb the cut, nothing is removed.
  if (o.truncation == "only_first" || (o.truncation == "longest_first" && !pair)) {
    if (ids.size() > remove) ids.resize(ids.size() - remove);
  } else if (o.truncation == "longest_first") {
    // As `tokenizers` (every fast tokenizer, and Transformers 5's slow ones): the longer input is
    // cut to fit beside the shorter; when both must be cut, the shorter keeps budget / 2 and the
    // longer the rest. (Transformers 4's slow tokenizers cut one token at a time and, at equal
    // lengths, from the pair first: the first input kept one token more when it was the shorter.)
    const size_t budget = static_cast<size_t>(o.max_length) > num_special ? static_cast<size_t>(o.max_length) - num_special : 0;
    size_t n1 = ids.size(), n2 = pair->size();
    const bool swap = n1 > n2;
    if (swap) std::swap(n1, n2);
    n2 = n1 > budget ? n1 : std::max(n1, budget - n1);
    if (n1 + n2 > budget) {
      n1 = budget / 2;
      n2 = n1 + budget % 2;
    }
    if (swap) std::swap(n1, n2);
    ids.resize(std::min(ids.size(), n1));
    pair->resize(std::min(pair->size(), n2));
  } else if (o.truncation == "only_second") {
    if (pair && pair->size() > remove) pair->resize(pair->size() - remove);
  } else {
    fail("unknown truncation strategy '{}' (longest_first, only_first, only_second)", o.truncation);
  }
}

namespace {
std::unique_ptr<Tokenizer> load_by_class(const std::string& dir);
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& dir) {
  // The readers check the values they use; a JSON value of the wrong type anywhere else in a
  // tokenizer file still ends as a message naming the directory, not an escaped exception.
  try {
    return load_by_class(dir);
  } catch (const nlohmann::json::exception& e) {
    fail("tokenizer {}: a tokenizer file holds a value of the wrong type ({})", dir, e.what());
  }
}

namespace {

std::unique_ptr<Tokenizer> load_by_class(const std::string& dir) {
  const fs::path d(dir);
  SCULPT_CHECK(fs::is_directory(d), "tokenizer {}: no such directory", dir);
  std::string cls;
  if (fs::exists(d / "tokenizer_config.json")) cls = io::read_json((d / "tokenizer_config.json").string()).value("tokenizer_class", "");
  if (cls.empty() && fs::exists(d / "vocab.txt")) cls = "BertTokenizer";
  if (cls.empty() && fs::exists(d / "spiece.model")) cls = "T5Tokenizer";
  if (cls == "BertTokenizer" || cls == "BertTokenizerFast") return WordPieceTokenizer::from_dir(dir);
  if (cls.empty() && (fs::exists(d / "merges.txt") || fs::exists(d / "vocab.bpe"))) cls = "GPT2Tokenizer";
  if (cls == "T5Tokenizer" || cls == "T5TokenizerFast") return SentencePieceTokenizer::from_dir(dir);
  if (cls == "GPT2Tokenizer" || cls == "GPT2TokenizerFast") return BpeTokenizer::from_dir(dir);
  SCULPT_CHECK(!cls.empty(), "{}: no tokenizer files (tokenizer_config.json, vocab.txt, spiece.model or merges.txt)", dir);
  fail("{}: tokenizer class '{}' is not supported yet (BertTokenizer, T5Tokenizer, GPT2Tokenizer)", dir, cls);
}

}  // namespace

}  // namespace sculpt::tokenizers
