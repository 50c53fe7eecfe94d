// The line format of `sculpt tokenize` (and of the HF tokenizer fixtures): a line has
// text, optional text_pair, add_special_tokens, truncation, max_length; the answer repeats
// them and adds input_ids, token_type_ids, attention_mask, tokens.
#pragma once
#include <nlohmann/json.hpp>

#include "sculpt/tokenizers/tokenizer.h"

namespace sculpt::tokenizers {

nlohmann::json encode_request(const Tokenizer& tokenizer, const nlohmann::json& request);

}  // namespace sculpt::tokenizers
