// Added (special) tokens as HF's slow tokenizers handle them: matched whole in the raw text
// (leftmost, longest), with their lstrip/rstrip flags eating neighbouring whitespace.
#pragma once
#include <nlohmann/json_fwd.hpp>

#include <map>
#include <string>
#include <vector>

namespace sculpt::tokenizers {

struct AddedToken {
  std::string content;
  int64_t id = -1;
  bool lstrip = false, rstrip = false, special = true;
};

class AddedTokens {
 public:
  void add(AddedToken token);
  // From tokenizer_config.json's added_tokens_decoder (if present).
  void add_from_config(const nlohmann::json& tokenizer_config);
  // Split text into pieces; `special` marks pieces that are added tokens.
  struct Piece {
    std::string text;
    const AddedToken* token = nullptr;
  };
  std::vector<Piece> split(const std::string& text) const;
  const AddedToken* by_content(const std::string& content) const;
  const AddedToken* by_id(int64_t id) const;
  bool empty() const { return tokens_.empty(); }
  int64_t max_id() const;  // -1 when empty

 private:
  std::vector<AddedToken> tokens_;
};

}  // namespace sculpt::tokenizers
