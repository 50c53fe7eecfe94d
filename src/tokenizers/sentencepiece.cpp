#include "sculpt/tokenizers/sentencepiece.h"

#include <dlfcn.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <mutex>

#include "sculpt/build_paths.h"
#include "sculpt/core/error.h"
#include "sculpt/io/hf_dir.h"
#include "sculpt/tokenizers/config_values.h"

namespace fs = std::filesystem;

namespace sculpt::tokenizers {
namespace {

const std::string kUnderline = "\xe2\x96\x81";  // U+2581, SentencePiece's word boundary

struct ShimApi {
  void* (*load)(const char*, int, char*, int);
  void (*free)(void*);
  int (*size)(void*);
  int (*encode)(void*, const char*, int, int*, int);
  int (*id_to_piece)(void*, int, char*, int);
  int (*piece_to_id)(void*, const char*);
};

const ShimApi& shim() {
  static ShimApi api{};
  static std::string error;
  static std::once_flag once;
  std::call_once(once, [] {
    const std::string path = spm_shim_path();
    // RTLD_DEEPBIND keeps sentencepiece's bundled protobuf apart from libtorch's.
    void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    if (!lib) {
      error = fmt::format("cannot load the SentencePiece shim {} ({})", path, dlerror());
      return;
    }
    auto sym = [&](const char* name) { return dlsym(lib, name); };
    api.load = reinterpret_cast<decltype(api.load)>(sym("sculpt_spm_load"));
    api.free = reinterpret_cast<decltype(api.free)>(sym("sculpt_spm_free"));
    api.size = reinterpret_cast<decltype(api.size)>(sym("sculpt_spm_size"));
    api.encode = reinterpret_cast<decltype(api.encode)>(sym("sculpt_spm_encode"));
    api.id_to_piece = reinterpret_cast<decltype(api.id_to_piece)>(sym("sculpt_spm_id_to_piece"));
    api.piece_to_id = reinterpret_cast<decltype(api.piece_to_id)>(sym("sculpt_spm_piece_to_id"));
    if (!api.load || !api.free || !api.size || !api.encode || !api.id_to_piece || !api.piece_to_id)
      error = fmt::format("{}: missing symbols (rebuild sculpt)", path);
  });
  SCULPT_CHECK(error.empty(), "{}", error);
  return api;
}

}  // namespace

std::string spm_shim_path() {
  if (const char* env = std::getenv("SCULPT_SPM_SHIM"); env && *env) return env;
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    exe[n] = 0;
    for (const fs::path& dir : {fs::path(exe).parent_path(), fs::path(exe).parent_path() / ".." / "lib"}) {
      if (fs::exists(dir / "libsculpt_spm.so")) return (dir / "libsculpt_spm.so").string();
    }
  }
  return SCULPT_SPM_SHIM_PATH;
}

class SentencePieceModel {
 public:
  SentencePieceModel(const std::string& path, int add_dummy_prefix) {
    char err[1024] = {0};
    handle_ = shim().load(path.c_str(), add_dummy_prefix, err, sizeof err);
    SCULPT_CHECK(handle_ != nullptr, "SentencePiece: {}", err);
  }
  ~SentencePieceModel() { shim().free(handle_); }
  std::vector<int64_t> encode(const std::string& text) const {
    std::vector<int> buf(text.size() + 16);
    int n = shim().encode(handle_, text.data(), static_cast<int>(text.size()), buf.data(), static_cast<int>(buf.size()));
    if (n > static_cast<int>(buf.size())) {
      buf.resize(static_cast<size_t>(n));
      shim().encode(handle_, text.data(), static_cast<int>(text.size()), buf.data(), n);
    }
    return std::vector<int64_t>(buf.begin(), buf.begin() + n);
  }
  std::string piece(int64_t id) const {
    char buf[512];
    int n = shim().id_to_piece(handle_, static_cast<int>(id), buf, sizeof buf);
    return std::string(buf, static_cast<size_t>(std::min<int>(n, static_cast<int>(sizeof buf))));
  }
  int64_t id(const std::string& piece) const { return shim().piece_to_id(handle_, piece.c_str()); }
  int64_t size() const { return shim().size(handle_); }

 private:
  void* handle_ = nullptr;
};

SentencePieceTokenizer::SentencePieceTokenizer(const std::string& model_path, SentencePieceOptions options,
                                               const nlohmann::json* config)
    : options_(std::move(options)) {
  // HF's non-legacy T5 loads the model with add_dummy_prefix switched off.
  sp_ = std::make_unique<SentencePieceModel>(model_path, options_.legacy ? -1 : 0);
  const int64_t n = sp_->size();
  if (config) added_.add_from_config(*config);
  if (added_.empty()) {  // T5Tokenizer's defaults: sentinels at the top, stripping spaces around them
    for (int64_t i = 0; i < options_.extra_ids; ++i)
      added_.add({fmt::format("<extra_id_{}>", i), n + options_.extra_ids - 1 - i, true, true, true});
    for (const auto& s : {options_.eos, options_.unk}) added_.add({s, sp_->id(s), false, false, true});
    if (sp_->id(options_.pad) == sp_->id(options_.unk) && options_.pad != options_.unk)
      added_.add({options_.pad, n + options_.extra_ids, false, false, true});
    else
      added_.add({options_.pad, sp_->id(options_.pad), false, false, true});
  }
  unk_token_length_ = sp_->encode(options_.unk).size();
}

SentencePieceTokenizer::~SentencePieceTokenizer() = default;

std::unique_ptr<SentencePieceTokenizer> SentencePieceTokenizer::from_dir(const std::string& dir) {
  const fs::path d(dir);
  SCULPT_CHECK(fs::exists(d / "spiece.model"), "{}: no spiece.model", dir);
  SentencePieceOptions o;
  nlohmann::json config;
  if (fs::exists(d / "tokenizer_config.json")) {
    const std::string path = (d / "tokenizer_config.json").string();
    config = io::read_json(path);
    SCULPT_CHECK(config.is_object(), "{}: expected a JSON object", path);
    o.legacy = config_flag(config, "legacy", o.legacy, path);
    o.extra_ids = config_count(config, "extra_ids", o.extra_ids, path);
    SCULPT_CHECK(o.extra_ids <= 100000, "{}: 'extra_ids' is {}; expected at most 100000 sentinel tokens", path, o.extra_ids);
    for (auto [key, field] : {std::pair{"eos_token", &o.eos}, {"unk_token", &o.unk}, {"pad_token", &o.pad}})
      config_token(config, key, *field, path);
  }
  return std::make_unique<SentencePieceTokenizer>((d / "spiece.model").string(), o, config.is_null() ? nullptr : &config);
}

size_t SentencePieceTokenizer::vocab_size() const {
  // Added tokens may extend past the SentencePiece vocabulary (sentinels, <pad>).
  return static_cast<size_t>(std::max(sp_->size(), added_.max_id() + 1));
}

int64_t SentencePieceTokenizer::token_to_id(const std::string& token) const {
  if (const auto* t = added_.by_content(token)) return t->id;
  return sp_->id(token);
}

std::string SentencePieceTokenizer::id_to_token(int64_t id) const {
  if (const auto* t = added_.by_id(id)) return t->content;
  return sp_->piece(id);
}

std::vector<int64_t> SentencePieceTokenizer::sp_tokenize(const std::string& text) const {
  if (options_.legacy || !(text.rfind(kUnderline, 0) == 0 || text.rfind(" ", 0) == 0)) return sp_->encode(text);
  // Non-legacy: encode behind the unknown token so SentencePiece adds no extra boundary.
  auto ids = sp_->encode(options_.unk + text);
  return ids.size() >= unk_token_length_ ? std::vector<int64_t>(ids.begin() + static_cast<std::ptrdiff_t>(unk_token_length_), ids.end())
                                         : ids;
}

std::vector<int64_t> SentencePieceTokenizer::ids(const std::string& text) const {
  std::string t = text;
  if (!options_.legacy && !t.empty()) {
    std::string replaced;
    for (size_t i = 0; i < t.size();) {
      if (t.compare(i, kUnderline.size(), kUnderline) == 0) replaced += ' ', i += kUnderline.size();
      else replaced += t[i++];
    }
    t = kUnderline + replaced;
  }
  std::vector<int64_t> out;
  std::vector<bool> special;
  for (const auto& piece : added_.split(t)) {
    if (piece.token) {
      out.push_back(piece.token->id);
      special.push_back(true);
    } else {
      for (auto id : sp_tokenize(piece.text)) out.push_back(id), special.push_back(false);
    }
  }
  // Non-legacy: a lone boundary before a special token is dropped.
  if (!options_.legacy && out.size() > 1 && !special[0] && special[1] && sp_->piece(out[0]) == kUnderline)
    out.erase(out.begin());
  return out;
}

std::vector<std::string> SentencePieceTokenizer::tokenize(const std::string& text) const {
  std::vector<std::string> out;
  for (auto id : ids(text)) out.push_back(id_to_token(id));
  return out;
}

std::string SentencePieceTokenizer::decode(const std::vector<int64_t>& ids) const {
  std::string text;
  for (auto id : ids) {
    if (const auto* t = added_.by_id(id); t && t->special) continue;
    if (id < 0 || id >= sp_->size()) continue;
    text += sp_->piece(id);
  }
  std::string out;
  for (size_t i = 0; i < text.size();) {
    if (text.compare(i, kUnderline.size(), kUnderline) == 0) out += ' ', i += kUnderline.size();
    else out += text[i++];
  }
  size_t start = out.find_first_not_of(' ');
  return start == std::string::npos ? std::string() : out.substr(start);
}

Encoding SentencePieceTokenizer::encode(const std::string& text, const std::optional<std::string>& pair,
                                        const EncodeOptions& options) const {
  std::vector<int64_t> a = ids(text), b;
  if (pair) b = ids(*pair);
  const size_t num_special = options.add_special_tokens ? (pair ? 2 : 1) : 0;
  truncate_pair(a, pair ? &b : nullptr, num_special, options);
  const int64_t eos = eos_id();
  Encoding e;
  e.has_token_type_ids = options.add_special_tokens;
  auto push = [&](int64_t id, bool special) { e.add(id, 0, special, id_to_token(id)); };
  auto push_seq = [&](const std::vector<int64_t>& seq) {
    for (auto id : seq) push(id, false);
    // As HF's _add_eos_if_not_present: no second </s> after one already there.
    if (options.add_special_tokens && (seq.empty() || seq.back() != eos)) push(eos, true);
  };
  push_seq(a);
  if (pair) push_seq(b);
  return e;
}

}  // namespace sculpt::tokenizers
