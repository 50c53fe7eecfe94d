#include "sculpt/tokenizers/unicode.h"

#include <utf8proc.h>

#include <cstdlib>

namespace sculpt::unicode {

std::u32string decode(const std::string& utf8) {
  std::u32string out;
  out.reserve(utf8.size());
  const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(utf8.data());
  utf8proc_ssize_t left = static_cast<utf8proc_ssize_t>(utf8.size());
  while (left > 0) {
    utf8proc_int32_t cp;
    utf8proc_ssize_t n = utf8proc_iterate(p, left, &cp);
    if (n <= 0) {  // invalid byte: replace it and move on by one
      out.push_back(0xFFFD);
      n = 1;
    } else {
      out.push_back(static_cast<char32_t>(cp));
    }
    p += n;
    left -= n;
  }
  return out;
}

std::string encode(char32_t c) {
  utf8proc_uint8_t buf[4];
  auto n = utf8proc_encode_char(static_cast<utf8proc_int32_t>(c), buf);
  return std::string(reinterpret_cast<char*>(buf), static_cast<size_t>(n));
}

std::string encode(const std::u32string& text) {
  std::string out;
  out.reserve(text.size());
  for (char32_t c : text) out += encode(c);
  return out;
}

const char* category(char32_t c) { return utf8proc_category_string(static_cast<utf8proc_int32_t>(c)); }

bool is_python_space(char32_t c) {
  if ((c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F) || c == 0x20 || c == 0x85) return true;
  if (c < 0x80) return false;
  auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return cat == UTF8PROC_CATEGORY_ZS || cat == UTF8PROC_CATEGORY_ZL || cat == UTF8PROC_CATEGORY_ZP;
}

char32_t to_lower(char32_t c) { return static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))); }

std::u32string lower(const std::u32string& s) {
  std::u32string out;
  out.reserve(s.size());
  for (char32_t c : s) {
    if (c == 0x130) {  // Python: 'İ'.lower() == 'i̇' (full case mapping)
      out.push_back(U'i');
      out.push_back(0x307);
    } else {
      out.push_back(to_lower(c));
    }
  }
  return out;
}

static std::u32string normalize(const std::u32string& s, utf8proc_option_t options) {
  std::string utf8 = encode(s);
  utf8proc_uint8_t* result = nullptr;
  auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(utf8.data()), static_cast<utf8proc_ssize_t>(utf8.size()),
                        &result, static_cast<utf8proc_option_t>(options | UTF8PROC_STABLE));
  if (n < 0) return s;
  std::string normalized(reinterpret_cast<char*>(result), static_cast<size_t>(n));
  std::free(result);
  return decode(normalized);
}

std::u32string nfc(const std::u32string& s) { return normalize(s, static_cast<utf8proc_option_t>(UTF8PROC_COMPOSE)); }
std::u32string nfd(const std::u32string& s) { return normalize(s, static_cast<utf8proc_option_t>(UTF8PROC_DECOMPOSE)); }

}  // namespace sculpt::unicode
