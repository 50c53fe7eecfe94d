// The few Unicode operations tokenizers need (via utf8proc), with Python's semantics where
// Hugging Face's slow tokenizers rely on them.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace sculpt::unicode {

// Decode UTF-8; invalid bytes become U+FFFD.
std::u32string decode(const std::string& utf8);
std::string encode(const std::u32string& text);
std::string encode(char32_t c);

// Two-letter general category, e.g. "Lu", "Mn", "Zs", "Cc".
const char* category(char32_t c);
bool is_python_space(char32_t c);  // str.isspace()
char32_t to_lower(char32_t c);
std::u32string lower(const std::u32string& s);
std::u32string nfc(const std::u32string& s);
std::u32string nfd(const std::u32string& s);

}  // namespace sculpt::unicode
