#include "sculpt/tokenizers/added_tokens.h"

#include <nlohmann/json.hpp>

#include <algorithm>

#include "sculpt/core/error.h"
#include "sculpt/tokenizers/unicode.h"

namespace sculpt::tokenizers {

void AddedTokens::add(AddedToken token) {
  for (auto& t : tokens_)
    if (t.content == token.content) {
      t = token;
      return;
    }
  tokens_.push_back(std::move(token));
}

void AddedTokens::add_from_config(const nlohmann::json& config) {
  if (!config.contains("added_tokens_decoder") || !config["added_tokens_decoder"].is_object()) return;
  for (auto it = config["added_tokens_decoder"].begin(); it != config["added_tokens_decoder"].end(); ++it) {
    const auto& v = it.value();
    const std::string& key = it.key();
    SCULPT_CHECK(!key.empty() && key.size() < 19 && key.find_first_not_of("0123456789") == std::string::npos && v.is_object(),
                 "tokenizer_config.json: added_tokens_decoder['{}'] must map an id to a token object", key);
    try {
      add({v.value("content", ""), std::stoll(key), v.value("lstrip", false), v.value("rstrip", false), v.value("special", true)});
    } catch (const nlohmann::json::exception& e) {
      fail("tokenizer_config.json: added_tokens_decoder['{}']: {}", key, e.what());
    }
  }
}

const AddedToken* AddedTokens::by_content(const std::string& content) const {
  for (const auto& t : tokens_)
    if (t.content == content) return &t;
  return nullptr;
}

const AddedToken* AddedTokens::by_id(int64_t id) const {
  for (const auto& t : tokens_)
    if (t.id == id) return &t;
  return nullptr;
}

int64_t AddedTokens::max_id() const {
  int64_t top = -1;
  for (const auto& t : tokens_) top = std::max(top, t.id);
  return top;
}

namespace {
std::string strip_left(const std::string& s) {
  auto u = unicode::decode(s);
  size_t i = 0;
  while (i < u.size() && unicode::is_python_space(u[i])) ++i;
  return unicode::encode(u.substr(i));
}
std::string strip_right(const std::string& s) {
  auto u = unicode::decode(s);
  size_t n = u.size();
  while (n > 0 && unicode::is_python_space(u[n - 1])) --n;
  return unicode::encode(u.substr(0, n));
}
}  // namespace

std::vector<AddedTokens::Piece> AddedTokens::split(const std::string& text) const {
  std::vector<Piece> pieces;
  std::string pending;
  for (size_t i = 0; i < text.size();) {
    const AddedToken* hit = nullptr;
    for (const auto& t : tokens_)
      if (!t.content.empty() && text.compare(i, t.content.size(), t.content) == 0 &&
          (!hit || t.content.size() > hit->content.size()))
        hit = &t;
    if (hit) {
      pieces.push_back({pending, nullptr});
      pending.clear();
      pieces.push_back({hit->content, hit});
      i += hit->content.size();
    } else {
      pending.push_back(text[i++]);
    }
  }
  pieces.push_back({pending, nullptr});
  // lstrip/rstrip eat the whitespace next to a token, as HF's tokenize() does.
  for (size_t i = 0; i < pieces.size(); ++i) {
    if (!pieces[i].token) continue;
    if (pieces[i].token->rstrip && i + 1 < pieces.size() && !pieces[i + 1].token) pieces[i + 1].text = strip_left(pieces[i + 1].text);
    if (pieces[i].token->lstrip && i > 0 && !pieces[i - 1].token) pieces[i - 1].text = strip_right(pieces[i - 1].text);
  }
  std::vector<Piece> out;
  for (auto& p : pieces)
    if (p.token || !p.text.empty()) out.push_back(std::move(p));
  return out;
}

}  // namespace sculpt::tokenizers
