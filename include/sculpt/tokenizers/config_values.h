// Values of a tokenizer_config.json, read with their types checked: a wrong one is refused
// naming the file and key (never an escaped JSON exception). One reader for every tokenizer.
#pragma once
#include <nlohmann/json.hpp>

#include <string>

namespace sculpt::tokenizers {

// KEY as a boolean; absent or null gives `fallback`.
bool config_flag(const nlohmann::json& config, const char* key, bool fallback, const std::string& path);
// KEY as an integer >= 0; absent or null gives `fallback`.
int64_t config_count(const nlohmann::json& config, const char* key, int64_t fallback, const std::string& path);
// A special token given as "[SEP]" or as {"content": "[SEP]", ...}; absent or null keeps `field`.
void config_token(const nlohmann::json& config, const char* key, std::string& field, const std::string& path);

}  // namespace sculpt::tokenizers
