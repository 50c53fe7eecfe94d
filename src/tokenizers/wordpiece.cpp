#include "sculpt/tokenizers/wordpiece.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "sculpt/core/error.h"
#include "sculpt/io/hf_dir.h"
#include "sculpt/io/json_member.h"
#include "sculpt/tokenizers/unicode.h"
#include "sculpt/tokenizers/config_values.h"

namespace fs = std::filesystem;

namespace sculpt::tokenizers {
namespace {

bool is_whitespace(char32_t c) {
  return c == U' ' || c == U'\t' || c == U'\n' || c == U'\r' || std::string(unicode::category(c)) == "Zs";
}

bool is_control(char32_t c) {
  if (c == U'\t' || c == U'\n' || c == U'\r') return false;
  std::string cat = unicode::category(c);
  return cat == "Cc" || cat == "Cf";
}

bool is_punctuation(char32_t c) {
  if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126)) return true;
  return unicode::category(c)[0] == 'P';
}

bool is_cjk(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
         (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

// Python's str.split(): split on runs of whitespace, dropping empties.
std::vector<std::u32string> split_whitespace(const std::u32string& s) {
  std::vector<std::u32string> out;
  std::u32string cur;
  for (char32_t c : s) {
    if (unicode::is_python_space(c)) {
      if (!cur.empty()) out.push_back(std::move(cur)), cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

std::u32string strip_accents(const std::u32string& s) {
  std::u32string out;
  for (char32_t c : unicode::nfd(s))
    if (std::string(unicode::category(c)) != "Mn") out.push_back(c);
  return out;
}

}  // namespace

WordPieceTokenizer::WordPieceTokenizer(const std::string& vocab_path, WordPieceOptions options)
    : options_(std::move(options)) {
  std::ifstream in(vocab_path);
  SCULPT_CHECK(in.good(), "{}: cannot open vocabulary", vocab_path);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    vocab_.emplace(line, static_cast<int64_t>(inverse_.size()));
    inverse_.push_back(line);
  }
  SCULPT_CHECK(!inverse_.empty(), "{}: empty vocabulary", vocab_path);
  SCULPT_CHECK(vocab_.count(options_.unk), "{}: vocabulary has no unknown token '{}'", vocab_path, options_.unk);
  for (const auto& s : {options_.pad, options_.unk, options_.cls, options_.sep, options_.mask})
    specials_.push_back(unicode::decode(s));
  for (const auto& s : options_.never_split) specials_.push_back(unicode::decode(s));
  // Longest first, so that a special token that is a prefix of another never wins.
  std::sort(specials_.begin(), specials_.end(), [](const auto& a, const auto& b) { return a.size() > b.size(); });
}

std::unique_ptr<WordPieceTokenizer> WordPieceTokenizer::from_dir(const std::string& dir) {
  WordPieceOptions o;
  const fs::path d(dir);
  if (fs::exists(d / "tokenizer_config.json")) {
    const std::string path = (d / "tokenizer_config.json").string();
    auto j = io::read_json(path);
    SCULPT_CHECK(j.is_object(), "{}: expected a JSON object", path);
    o.do_lower_case = config_flag(j, "do_lower_case", o.do_lower_case, path);
    if (io::json_member(j, "strip_accents")) o.strip_accents = config_flag(j, "strip_accents", false, path) ? 1 : 0;
    o.tokenize_chinese_chars = config_flag(j, "tokenize_chinese_chars", o.tokenize_chinese_chars, path);
    o.max_input_chars_per_word =
        static_cast<size_t>(config_count(j, "max_input_chars_per_word", static_cast<int64_t>(o.max_input_chars_per_word), path));
    if (j.contains("never_split") && j["never_split"].is_array())
      for (const auto& t : j["never_split"]) {
        SCULPT_CHECK(t.is_string(), "{}: 'never_split' holds {}; expected strings", path, t.dump());
        o.never_split.push_back(t.get<std::string>());
      }
    for (auto [key, field] : {std::pair{"unk_token", &o.unk}, {"cls_token", &o.cls}, {"sep_token", &o.sep}, {"pad_token", &o.pad},
                              {"mask_token", &o.mask}})
      config_token(j, key, *field, path);
  } else if (fs::exists(d / "tokenizer.json")) {
    // A fast-tokenizer file only: its BertNormalizer carries the same switches (read through the
    // same typed readers, so a value of the wrong type is refused naming the file and key).
    const std::string path = (d / "tokenizer.json").string();
    const auto j = io::read_json(path);
    const auto* n = io::json_member(j, "normalizer");
    const auto* type = n ? io::json_member(*n, "type") : nullptr;
    if (type && *type == "BertNormalizer") {
      o.do_lower_case = config_flag(*n, "lowercase", true, path);
      if (io::json_member(*n, "strip_accents")) o.strip_accents = config_flag(*n, "strip_accents", false, path) ? 1 : 0;
      o.tokenize_chinese_chars = config_flag(*n, "handle_chinese_chars", true, path);
    }
    if (const auto* model = io::json_member(j, "model"))
      o.max_input_chars_per_word = static_cast<size_t>(
          config_count(*model, "max_input_chars_per_word", static_cast<int64_t>(o.max_input_chars_per_word), path));
  }
  SCULPT_CHECK(fs::exists(d / "vocab.txt"), "{}: no vocab.txt for a WordPiece tokenizer", dir);
  return std::make_unique<WordPieceTokenizer>((d / "vocab.txt").string(), o);
}

int64_t WordPieceTokenizer::token_to_id(const std::string& token) const {
  auto it = vocab_.find(token);
  return it != vocab_.end() ? it->second : vocab_.at(options_.unk);
}

std::vector<std::string> WordPieceTokenizer::basic_tokenize(const std::u32string& raw) const {
  std::u32string text;
  for (char32_t c : raw) {
    if (c == 0 || c == 0xFFFD || is_control(c)) continue;
    if (is_whitespace(c)) {
      text.push_back(U' ');
    } else if (options_.tokenize_chinese_chars && is_cjk(c)) {
      text += U' ';
      text.push_back(c);
      text += U' ';
    } else {
      text.push_back(c);
    }
  }
  const bool strip = options_.strip_accents == 1 || (options_.strip_accents == -1 && options_.do_lower_case);
  std::vector<std::string> out;
  for (auto token : split_whitespace(unicode::nfc(text))) {
    if (options_.do_lower_case) token = unicode::lower(token);
    if (strip) token = strip_accents(token);
    std::u32string cur;
    for (char32_t c : token) {
      if (is_punctuation(c)) {
        if (!cur.empty()) out.push_back(unicode::encode(cur)), cur.clear();
        out.push_back(unicode::encode(c));
      } else {
        cur.push_back(c);
      }
    }
    if (!cur.empty()) out.push_back(unicode::encode(cur));
  }
  return out;
}

void WordPieceTokenizer::wordpiece(const std::u32string& word, std::vector<std::string>& out) const {
  if (word.size() > options_.max_input_chars_per_word) {
    out.push_back(options_.unk);
    return;
  }
  std::vector<std::string> pieces;
  size_t start = 0;
  while (start < word.size()) {
    size_t end = word.size();
    std::string found;
    while (start < end) {
      std::string sub = (start > 0 ? "##" : "") + unicode::encode(word.substr(start, end - start));
      if (vocab_.count(sub)) {
        found = std::move(sub);
        break;
      }
      --end;
    }
    if (found.empty()) {
      out.push_back(options_.unk);
      return;
    }
    pieces.push_back(std::move(found));
    start = end;
  }
  out.insert(out.end(), pieces.begin(), pieces.end());
}

std::vector<std::string> WordPieceTokenizer::tokenize(const std::string& text) const {
  const std::u32string t = unicode::decode(text);
  std::vector<std::string> out;
  auto flush = [&](std::u32string chunk) {
    if (chunk.empty()) return;
    // HF lowercases the text (outside special tokens) before splitting it.
    if (options_.do_lower_case) chunk = unicode::lower(chunk);
    for (const auto& word : basic_tokenize(chunk)) wordpiece(unicode::decode(word), out);
  };
  std::u32string pending;
  for (size_t i = 0; i < t.size();) {
    const std::u32string* hit = nullptr;
    for (const auto& s : specials_)
      if (!s.empty() && t.compare(i, s.size(), s) == 0) {
        hit = &s;
        break;
      }
    if (hit) {
      flush(std::move(pending));
      pending.clear();
      out.push_back(unicode::encode(*hit));
      i += hit->size();
    } else {
      pending.push_back(t[i++]);
    }
  }
  flush(std::move(pending));
  return out;
}

std::vector<int64_t> WordPieceTokenizer::ids(const std::string& text) const {
  std::vector<int64_t> out;
  for (const auto& tok : tokenize(text)) out.push_back(token_to_id(tok));
  return out;
}

std::vector<int64_t> WordPieceTokenizer::ids_with_offsets(const std::string& text,
                                                         std::vector<std::pair<int64_t, int64_t>>& offsets) const {
  // Normalise character by character (the basic tokenizer's steps are per character), keeping
  // each normalised character's source byte span; then tokenize each whitespace word and
  // place its pieces back on those spans.
  const std::u32string chars = unicode::decode(text);
  std::vector<int64_t> byte_start(chars.size() + 1, 0);
  for (size_t i = 0; i < chars.size(); ++i) byte_start[i + 1] = byte_start[i] + static_cast<int64_t>(unicode::encode(chars[i]).size());
  const bool strip = options_.strip_accents == 1 || (options_.strip_accents == -1 && options_.do_lower_case);
  std::vector<int64_t> out;
  offsets.clear();
  size_t i = 0;
  while (i < chars.size()) {
    if (unicode::is_python_space(chars[i]) || is_whitespace(chars[i])) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < chars.size() && !unicode::is_python_space(chars[j]) && !is_whitespace(chars[j])) ++j;
    // Normalised characters of the word with their source index.
    std::u32string norm;
    std::vector<size_t> source;
    for (size_t k = i; k < j; ++k) {
      char32_t c = chars[k];
      if (c == 0 || c == 0xFFFD || is_control(c)) continue;
      std::u32string n(1, c);
      if (options_.do_lower_case) n = unicode::lower(n);
      if (strip) n = strip_accents(n);
      for (char32_t x : n) norm.push_back(x), source.push_back(k);
    }
    // Basic tokens: punctuation and CJK characters alone, the rest in runs.
    size_t a = 0;
    while (a < norm.size()) {
      size_t b = a + 1;
      const bool alone = is_punctuation(norm[a]) || (options_.tokenize_chinese_chars && is_cjk(norm[a]));
      if (!alone)
        while (b < norm.size() && !is_punctuation(norm[b]) && !(options_.tokenize_chinese_chars && is_cjk(norm[b]))) ++b;
      std::vector<std::string> pieces;
      wordpiece(norm.substr(a, b - a), pieces);
      size_t pos = a;
      for (const auto& piece : pieces) {
        size_t len = piece == options_.unk ? b - a : unicode::decode(piece.rfind("##", 0) == 0 ? piece.substr(2) : piece).size();
        if (pos >= b) pos = b - 1;
        size_t end = std::min(b, pos + std::max<size_t>(len, 1));
        out.push_back(token_to_id(piece));
        offsets.emplace_back(byte_start[source[pos]], byte_start[source[end - 1] + 1]);
        pos = end;
      }
      a = b;
    }
    i = j;
  }
  return out;
}

Encoding WordPieceTokenizer::encode(const std::string& text, const std::optional<std::string>& pair,
                                    const EncodeOptions& options) const {
  std::vector<int64_t> a = ids(text), b;
  if (pair) b = ids(*pair);
  const size_t num_special = options.add_special_tokens ? (pair ? 3 : 2) : 0;
  truncate_pair(a, pair ? &b : nullptr, num_special, options);

  Encoding e;
  auto push = [&](int64_t id, int64_t type, bool special) { e.add(id, type, special, id_to_token(id)); };
  const int64_t cls = token_to_id(options_.cls), sep = token_to_id(options_.sep);
  if (options.add_special_tokens) push(cls, 0, true);
  for (auto id : a) push(id, 0, false);
  if (options.add_special_tokens) push(sep, 0, true);
  // Without special tokens HF gives every token type 0, pair or not.
  const int64_t second = options.add_special_tokens ? 1 : 0;
  for (auto id : b) push(id, second, false);
  if (pair && options.add_special_tokens) push(sep, 1, true);
  return e;
}

}  // namespace sculpt::tokenizers
