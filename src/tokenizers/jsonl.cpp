#include "sculpt/tokenizers/jsonl.h"

#include "sculpt/core/error.h"

namespace sculpt::tokenizers {

nlohmann::json encode_request(const Tokenizer& tokenizer, const nlohmann::json& request) {
  SCULPT_CHECK(request.is_object() && request.contains("text") && request["text"].is_string(),
               "each line needs a string 'text'");
  std::optional<std::string> pair;
  if (request.contains("text_pair") && request["text_pair"].is_string()) pair = request["text_pair"].get<std::string>();
  EncodeOptions options;
  if (request.contains("add_special_tokens") && !request["add_special_tokens"].is_null())
    options.add_special_tokens = request["add_special_tokens"].get<bool>();
  if (request.contains("truncation") && request["truncation"].is_string()) options.truncation = request["truncation"].get<std::string>();
  if (request.contains("truncation") && request["truncation"].is_boolean() && request["truncation"].get<bool>())
    options.truncation = "longest_first";
  if (request.contains("max_length") && request["max_length"].is_number_integer()) options.max_length = request["max_length"].get<int64_t>();

  Encoding e = tokenizer.encode(request["text"].get<std::string>(), pair, options);
  nlohmann::json out;
  out["text"] = request["text"];
  out["text_pair"] = pair ? nlohmann::json(*pair) : nlohmann::json(nullptr);
  out["add_special_tokens"] = options.add_special_tokens;
  out["truncation"] = options.truncation.empty() ? nlohmann::json(nullptr) : nlohmann::json(options.truncation);
  out["max_length"] = options.max_length < 0 ? nlohmann::json(nullptr) : nlohmann::json(options.max_length);
  out["input_ids"] = e.input_ids;
  out["token_type_ids"] = e.has_token_type_ids ? nlohmann::json(e.token_type_ids) : nlohmann::json(nullptr);
  out["attention_mask"] = e.attention_mask;
  out["special_tokens_mask"] = e.special_tokens_mask;
  out["tokens"] = e.tokens;
  return out;
}

}  // namespace sculpt::tokenizers
