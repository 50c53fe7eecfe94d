// A JSON object's member, or nullptr when the value is not an object or the member is absent or
// null: how every reader of an HF config file (model config.json, tokenizer_config.json) asks
// whether a key is set before checking its type and range.
#pragma once
#include <nlohmann/json.hpp>

namespace sculpt::io {

inline const nlohmann::json* json_member(const nlohmann::json& j, const char* key) {
  if (!j.is_object()) return nullptr;
  auto it = j.find(key);
  return it == j.end() || it->is_null() ? nullptr : &*it;
}

}  // namespace sculpt::io
