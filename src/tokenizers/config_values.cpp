#include "sculpt/tokenizers/config_values.h"

#include "sculpt/core/error.h"
#include "sculpt/io/json_member.h"

namespace sculpt::tokenizers {

bool config_flag(const nlohmann::json& config, const char* key, bool fallback, const std::string& path) {
  const auto* v = io::json_member(config, key);
  if (!v) return fallback;
  SCULPT_CHECK(v->is_boolean(), "{}: '{}' is {}; expected true or false", path, key, v->dump());
  return v->get<bool>();
}

int64_t config_count(const nlohmann::json& config, const char* key, int64_t fallback, const std::string& path) {
  const auto* v = io::json_member(config, key);
  if (!v) return fallback;
  SCULPT_CHECK(v->is_number_integer() && v->get<int64_t>() >= 0, "{}: '{}' is {}; expected an integer >= 0", path, key, v->dump());
  return v->get<int64_t>();
}

void config_token(const nlohmann::json& config, const char* key, std::string& field, const std::string& path) {
  const auto* v = io::json_member(config, key);
  if (!v) return;
  if (v->is_object() && v->contains("content")) v = &(*v)["content"];
  SCULPT_CHECK(v->is_string(), "{}: '{}' is {}; expected a token string or {{\"content\": ...}}", path, key, v->dump());
  field = v->get<std::string>();
}

}  // namespace sculpt::tokenizers
