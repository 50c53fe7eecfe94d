#include "sculpt/tokenizers/bpe.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <limits>

#include "sculpt/core/error.h"
#include "sculpt/io/hf_dir.h"
#include "sculpt/tokenizers/unicode.h"
#include "sculpt/tokenizers/config_values.h"

namespace fs = std::filesystem;

namespace sculpt::tokenizers {
namespace {

// Unicode White_Space (what the `regex` module's \s matches in GPT-2's pattern).
bool is_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
         c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}
bool is_letter(char32_t c) { return unicode::category(c)[0] == 'L'; }
bool is_number(char32_t c) { return unicode::category(c)[0] == 'N'; }
bool is_other(char32_t c) { return !is_space(c) && !is_letter(c) && !is_number(c); }

}  // namespace

std::vector<std::u32string> BpeTokenizer::pretokenize(const std::u32string& s) {
  // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  std::vector<std::u32string> out;
  const size_t n = s.size();
  size_t i = 0;
  auto run = [&](size_t from, bool (*pred)(char32_t)) {
    size_t j = from;
    while (j < n && pred(s[j])) ++j;
    return j;
  };
  while (i < n) {
    if (s[i] == U'\'') {
      static const std::u32string contractions[] = {U"'s", U"'t", U"'re", U"'ve", U"'m", U"'ll", U"'d"};
      bool hit = false;
      for (const auto& c : contractions) {
        if (s.compare(i, c.size(), c) == 0) {
          out.push_back(c);
          i += c.size();
          hit = true;
          break;
        }
      }
      if (hit) continue;
    }
    const size_t start = i, body = (s[i] == U' ' && i + 1 < n) ? i + 1 : i;
    size_t end = start;
    for (auto pred : {is_letter, is_number, is_other}) {
      if (pred(s[body])) {
        end = run(body, pred);
        break;
      }
    }
    if (end > start) {
      out.push_back(s.substr(start, end - start));
      i = end;
      continue;
    }
    // Whitespace: a run leaves its last character to the next token when a non-space follows.
    size_t j = run(i, is_space);
    if (j < n && j - i > 1) j -= 1;
    out.push_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

BpeTokenizer::BpeTokenizer(const std::string& vocab_path, const std::string& merges_path, BpeOptions options,
                           const nlohmann::json* config)
    : options_(std::move(options)) {
  // GPT-2's byte -> printable unicode table.
  std::vector<int> printable;
  for (int b = '!'; b <= '~'; ++b) printable.push_back(b);
  for (int b = 0xA1; b <= 0xAC; ++b) printable.push_back(b);
  for (int b = 0xAE; b <= 0xFF; ++b) printable.push_back(b);
  int extra = 0;
  for (int b = 0; b < 256; ++b) {
    bool direct = std::find(printable.begin(), printable.end(), b) != printable.end();
    byte_to_unicode_[b] = unicode::encode(static_cast<char32_t>(direct ? b : 256 + extra++));
  }
  auto vocab = io::read_json(vocab_path);
  SCULPT_CHECK(vocab.is_object(), "{}: expected a JSON object token -> id", vocab_path);
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    SCULPT_CHECK(it.value().is_number_integer() && it.value().get<int64_t>() >= 0, "{}: token '{}' has id {}; expected an id >= 0",
                 vocab_path, it.key(), it.value().dump());
    vocab_[it.key()] = it.value().get<int64_t>();
    inverse_[it.value().get<int64_t>()] = it.key();
  }
  std::ifstream in(merges_path);
  SCULPT_CHECK(in.good(), "{}: cannot open merges", merges_path);
  std::string line;
  size_t rank = 0, number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line.rfind("#version", 0) == 0) continue;
    auto space = line.find(' ');
    SCULPT_CHECK(space != std::string::npos, "{}:{}: a merge is two symbols separated by a space", merges_path, number);
    ranks_.emplace(std::make_pair(line.substr(0, space), line.substr(space + 1)), rank++);
  }
  if (config) added_.add_from_config(*config);
  for (const auto& s : {options_.bos, options_.eos, options_.unk, options_.pad})
    if (!s.empty() && !added_.by_content(s) && vocab_.count(s)) added_.add({s, vocab_.at(s), false, false, true});
}

std::unique_ptr<BpeTokenizer> BpeTokenizer::from_dir(const std::string& dir) {
  const fs::path d(dir);
  const fs::path vocab = fs::exists(d / "vocab.json") ? d / "vocab.json" : d / "encoder.json";
  const fs::path merges = fs::exists(d / "merges.txt") ? d / "merges.txt" : d / "vocab.bpe";
  SCULPT_CHECK(fs::exists(vocab) && fs::exists(merges), "{}: needs vocab.json + merges.txt (or encoder.json + vocab.bpe)", dir);
  BpeOptions o;
  nlohmann::json config;
  if (fs::exists(d / "tokenizer_config.json")) {
    const std::string path = (d / "tokenizer_config.json").string();
    config = io::read_json(path);
    SCULPT_CHECK(config.is_object(), "{}: expected a JSON object", path);
    o.add_bos_token = config_flag(config, "add_bos_token", false, path);
    o.add_prefix_space = config_flag(config, "add_prefix_space", false, path);
    for (auto [key, field] : {std::pair{"bos_token", &o.bos}, {"eos_token", &o.eos}, {"unk_token", &o.unk}, {"pad_token", &o.pad}})
      config_token(config, key, *field, path);
  }
  return std::make_unique<BpeTokenizer>(vocab.string(), merges.string(), o, config.is_null() ? nullptr : &config);
}

std::vector<std::string> BpeTokenizer::bpe(const std::string& word) const {
  std::vector<std::string> symbols;
  for (char32_t c : unicode::decode(word)) symbols.push_back(unicode::encode(c));
  while (symbols.size() > 1) {
    size_t best = std::numeric_limits<size_t>::max();
    std::pair<std::string, std::string> best_pair;
    for (size_t i = 0; i + 1 < symbols.size(); ++i) {
      auto it = ranks_.find({symbols[i], symbols[i + 1]});
      if (it != ranks_.end() && it->second < best) best = it->second, best_pair = it->first;
    }
    if (best == std::numeric_limits<size_t>::max()) break;
    std::vector<std::string> merged;
    for (size_t i = 0; i < symbols.size();) {
      if (i + 1 < symbols.size() && symbols[i] == best_pair.first && symbols[i + 1] == best_pair.second) {
        merged.push_back(symbols[i] + symbols[i + 1]);
        i += 2;
      } else {
        merged.push_back(symbols[i++]);
      }
    }
    symbols = std::move(merged);
  }
  return symbols;
}

std::vector<int64_t> BpeTokenizer::ids(const std::string& text) const {
  std::vector<int64_t> out;
  const int64_t unk = vocab_.count(options_.unk) ? vocab_.at(options_.unk) : 0;
  bool first = true;
  for (const auto& piece : added_.split(text)) {
    if (piece.token) {
      out.push_back(piece.token->id);
      first = false;
      continue;
    }
    std::string chunk = piece.text;
    if (first && options_.add_prefix_space) chunk = " " + chunk;
    first = false;
    for (const auto& pre : pretokenize(unicode::decode(chunk))) {
      std::string mapped;
      for (unsigned char b : unicode::encode(pre)) mapped += byte_to_unicode_[b];
      for (const auto& tok : bpe(mapped)) {
        auto it = vocab_.find(tok);
        out.push_back(it != vocab_.end() ? it->second : unk);
      }
    }
  }
  return out;
}

std::vector<std::string> BpeTokenizer::tokenize(const std::string& text) const {
  std::vector<std::string> out;
  for (auto id : ids(text)) out.push_back(id_to_token(id));
  return out;
}

int64_t BpeTokenizer::token_to_id(const std::string& token) const {
  if (const auto* t = added_.by_content(token)) return t->id;
  auto it = vocab_.find(token);
  return it != vocab_.end() ? it->second : vocab_.count(options_.unk) ? vocab_.at(options_.unk) : 0;
}

std::string BpeTokenizer::id_to_token(int64_t id) const {
  if (const auto* t = added_.by_id(id)) return t->content;
  auto it = inverse_.find(id);
  return it != inverse_.end() ? it->second : options_.unk;
}

Encoding BpeTokenizer::encode(const std::string& text, const std::optional<std::string>& pair, const EncodeOptions& options) const {
  std::vector<int64_t> a = ids(text), b;
  if (pair) b = ids(*pair);
  const bool bos = options.add_special_tokens && options_.add_bos_token;
  truncate_pair(a, pair ? &b : nullptr, bos ? (pair ? 2 : 1) : 0, options);
  Encoding e;
  e.has_token_type_ids = false;
  auto push = [&](int64_t id, bool special) { e.add(id, 0, special, id_to_token(id)); };
  const int64_t bos_id = token_to_id(options_.bos);
  if (bos) push(bos_id, true);
  for (auto id : a) push(id, false);
  if (pair) {
    if (bos) push(bos_id, true);
    for (auto id : b) push(id, false);
  }
  return e;
}

}  // namespace sculpt::tokenizers
