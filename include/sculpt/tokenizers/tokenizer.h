// One tokenizer interface for every family: text (and optional pair) -> ids, token types,
// attention mask and token strings, as Hugging Face's slow tokenizers produce them.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace sculpt::tokenizers {

struct Encoding {
  std::vector<int64_t> input_ids, token_type_ids, attention_mask, special_tokens_mask;
  std::vector<std::string> tokens;
  bool has_token_type_ids = true;
  void add(int64_t id, int64_t type, bool special, std::string token) {
    input_ids.push_back(id);
    token_type_ids.push_back(type);
    attention_mask.push_back(1);
    special_tokens_mask.push_back(special ? 1 : 0);
    tokens.push_back(std::move(token));
  }
};

struct EncodeOptions {
  bool add_special_tokens = true;
  std::string truncation;  // "" | longest_first | only_first | only_second
  int64_t max_length = -1;
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  virtual std::vector<std::string> tokenize(const std::string& text) const = 0;
  virtual int64_t token_to_id(const std::string& token) const = 0;
  virtual std::string id_to_token(int64_t id) const = 0;
  virtual Encoding encode(const std::string& text, const std::optional<std::string>& pair = std::nullopt,
                          const EncodeOptions& options = {}) const = 0;
  virtual int64_t pad_id() const = 0;
  virtual size_t vocab_size() const = 0;
};

// Truncate ids/pair in place as HF's truncate_sequences does (right side) so that
// ids + pair + num_special <= max_length.
void truncate_pair(std::vector<int64_t>& ids, std::vector<int64_t>* pair, size_t num_special, const EncodeOptions& options);

// Load the tokenizer of a Hugging Face directory (tokenizer_config.json decides the class).
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& dir);

}  // namespace sculpt::tokenizers
