// T5's tokenizer, identical to HF's (slow) T5Tokenizer: SentencePiece through a dlopen'ed
// shim (libsculpt_spm.so), </s> appended, pairs as A </s> B </s>, <extra_id_i> sentinels,
// an added <pad> where the model has none, legacy and non-legacy handling, truncation.
#pragma once
#include <memory>
#include <string>

#include "sculpt/tokenizers/added_tokens.h"
#include "sculpt/tokenizers/tokenizer.h"

namespace sculpt::tokenizers {

class SentencePieceModel;  // the loaded shim + model handle

struct SentencePieceOptions {
  bool legacy = true;
  int64_t extra_ids = 100;
  std::string eos = "</s>", unk = "<unk>", pad = "<pad>";
};

class SentencePieceTokenizer : public Tokenizer {
 public:
  // `config` is tokenizer_config.json's content (may be null: defaults of T5Tokenizer).
  SentencePieceTokenizer(const std::string& model_path, SentencePieceOptions options, const nlohmann::json* config);
  ~SentencePieceTokenizer() override;
  static std::unique_ptr<SentencePieceTokenizer> from_dir(const std::string& dir);

  std::vector<std::string> tokenize(const std::string& text) const override;
  int64_t token_to_id(const std::string& token) const override;
  std::string id_to_token(int64_t id) const override;
  Encoding encode(const std::string& text, const std::optional<std::string>& pair = std::nullopt,
                  const EncodeOptions& options = {}) const override;
  int64_t pad_id() const override { return token_to_id(options_.pad); }
  int64_t eos_id() const { return token_to_id(options_.eos); }
  size_t vocab_size() const override;
  std::vector<int64_t> ids(const std::string& text) const;
  // Text of ids, skipping special tokens (decode(..., skip_special_tokens=True)).
  std::string decode(const std::vector<int64_t>& ids) const;

 private:
  std::vector<int64_t> sp_tokenize(const std::string& text) const;

  SentencePieceOptions options_;
  std::unique_ptr<SentencePieceModel> sp_;
  AddedTokens added_;
  size_t unk_token_length_ = 0;
};

// Path of libsculpt_spm.so: $SCULPT_SPM_SHIM, beside the executable, or the build tree.
std::string spm_shim_path();

}  // namespace sculpt::tokenizers
