#include "sculpt/models/config_check.h"

#include <fmt/ranges.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <optional>
#include <vector>

#include "sculpt/core/error.h"
#include "sculpt/io/json_member.h"
#include "sculpt/io/codebook_weights.h"
#include "sculpt/io/hf_dir.h"

namespace fs = std::filesystem;

namespace sculpt::models {

int64_t config_int(const nlohmann::json& j, const char* key, int64_t fallback, int64_t lo, int64_t hi,
                   const std::string& source) {
  const auto* v = io::json_member(j, key);
  if (!v) return fallback;
  int64_t out = 0;
  if (v->is_number_integer()) {
    if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
      fail("{}: '{}' is {}; expected an integer in [{}, {}]", source, key, v->dump(), lo, hi);
    out = v->get<int64_t>();
  } else if (v->is_number_float() && std::isfinite(v->get<double>()) && std::floor(v->get<double>()) == v->get<double>() &&
             std::fabs(v->get<double>()) < 9.0e18) {
    out = static_cast<int64_t>(v->get<double>());  // 768.0, as some exporters write
  } else {
    fail("{}: '{}' is {}; expected an integer in [{}, {}]", source, key, v->dump(), lo, hi);
  }
  SCULPT_CHECK(out >= lo && out <= hi, "{}: '{}' is {}; expected an integer in [{}, {}]", source, key, out, lo, hi);
  return out;
}

double config_real(const nlohmann::json& j, const char* key, double fallback, double lo, double hi,
                   const std::string& source) {
  const auto* v = io::json_member(j, key);
  if (!v) return fallback;
  SCULPT_CHECK(v->is_number(), "{}: '{}' is {}; expected a number in [{}, {}]", source, key, v->dump(), lo, hi);
  const double out = v->get<double>();
  SCULPT_CHECK(std::isfinite(out) && out >= lo && out <= hi, "{}: '{}' is {}; expected a number in [{}, {}]", source, key,
               v->dump(), lo, hi);
  return out;
}

bool config_bool(const nlohmann::json& j, const char* key, bool fallback, const std::string& source) {
  const auto* v = io::json_member(j, key);
  if (!v) return fallback;
  SCULPT_CHECK(v->is_boolean(), "{}: '{}' is {}; expected true or false", source, key, v->dump());
  return v->get<bool>();
}

std::string config_string(const nlohmann::json& j, const char* key, const std::string& fallback,
                          const std::string& source) {
  const auto* v = io::json_member(j, key);
  if (!v) return fallback;
  SCULPT_CHECK(v->is_string(), "{}: '{}' is {}; expected a string", source, key, v->dump());
  return v->get<std::string>();
}

int64_t rotated_norm_width_of(const nlohmann::json& j, int64_t hidden, const std::string& source) {
  if (!j.contains("sculpt_rotated")) return 0;
  const auto& b = j["sculpt_rotated"];
  const std::string where = source + " sculpt_rotated";
  SCULPT_CHECK(b.is_object() && b.value("format", 0) == 1, "{}: expected {{\"format\": 1, ...}}", where);
  return config_int(b, "norm_width", 0, hidden, kMaxWidth, where);
}

void write_rotated_block(nlohmann::json& j, const TransformerConfig& c) {
  j.erase("sculpt_rotated");
  if (c.rotated_norm_width > 0) j["sculpt_rotated"] = {{"format", 1}, {"norm_width", c.rotated_norm_width}, {"head_dim", c.head_dim()}};
}

namespace {

AttentionShape attention_shape_of(const nlohmann::json& l, const char* present_key, const TransformerConfig& c,
                                  const std::string& at) {
  AttentionShape a{config_int(l, "heads", -1, 0, c.num_heads, at), config_int(l, "qk_dim", -1, 0, c.head_dim(), at),
                   config_int(l, "vo_dim", -1, 0, c.head_dim(), at), config_bool(l, present_key, true, at)};
  SCULPT_CHECK(a.heads >= 0 && a.qk_dim >= 0 && a.vo_dim >= 0, "{}: heads, qk_dim and vo_dim are required", at);
  return a;
}

nlohmann::json attention_json(const AttentionShape& a, const char* present_key) {
  return {{"heads", a.heads}, {"qk_dim", a.qk_dim}, {"vo_dim", a.vo_dim}, {present_key, a.present}};
}

}  // namespace

std::vector<LayerShape> layer_shapes_of(const nlohmann::json& j, const TransformerConfig& c, int64_t count,
                                        const std::string& source) {
  std::vector<LayerShape> shapes;
  if (!j.contains("sculpt_packed")) return shapes;
  const auto& b = j["sculpt_packed"];
  const std::string where = source + " sculpt_packed";
  SCULPT_CHECK(b.is_object() && b.value("format", 0) == 1 && b.contains("layers") && b["layers"].is_array(),
               "{}: expected {{\"format\": 1, \"layers\": [...]}}", where);
  SCULPT_CHECK(static_cast<int64_t>(b["layers"].size()) == count, "{}: {} layers for {} in the model", where,
               b["layers"].size(), count);
  for (size_t i = 0; i < b["layers"].size(); ++i) {
    const auto& l = b["layers"][i];
    const std::string at = fmt::format("{} layers[{}]", where, i);
    SCULPT_CHECK(l.is_object(), "{}: expected an object", at);
    LayerShape s;
    s.attn = attention_shape_of(l, "attn", c, at);
    s.cross = l.contains("cross") ? attention_shape_of(l["cross"], "present", c, at + " cross") : AttentionShape{0, 0, 0, false};
    s.ffn_dim = config_int(l, "ffn_dim", -1, 0, c.intermediate_size, at);
    s.ffn = config_bool(l, "ffn", true, at);
    SCULPT_CHECK(s.ffn_dim >= 0, "{}: ffn_dim is required", at);
    if (l.contains("bias_heads")) {
      SCULPT_CHECK(l["bias_heads"].is_array() && static_cast<int64_t>(l["bias_heads"].size()) == s.attn.heads,
                   "{}: bias_heads must list one head per kept head ({})", at, s.attn.heads);
      for (const auto& h : l["bias_heads"]) {
        SCULPT_CHECK(h.is_number_integer() && h.get<int64_t>() >= 0 && h.get<int64_t>() < c.num_heads,
                     "{}: bias_heads holds {}; expected head indices in [0, {})", at, h.dump(), c.num_heads);
        s.bias_heads.push_back(h.get<int64_t>());
      }
    }
    // In order along the stream: attention, cross-attention (T5's decoder), FFN.
    const std::vector<std::pair<const char*, std::vector<int64_t>*>> lists = {
        {"attn_from", &s.attn_from}, {"cross_from", &s.cross_from}, {"ffn_from", &s.ffn_from}};
    for (auto [key, list] : lists) {
      if (!l.contains(key)) continue;
      SCULPT_CHECK(l[key].is_array() && !l[key].empty(), "{}: {} must list the stream's coordinates after the block", at, key);
      for (const auto& f : l[key]) {
        SCULPT_CHECK(f.is_number_integer(), "{}: {} holds {}; expected coordinates", at, key, f.dump());
        list->push_back(f.get<int64_t>());
      }
    }
    const bool decoder_block = c.model_type == "t5" && static_cast<int64_t>(i) >= c.num_layers;
    SCULPT_CHECK(s.attn_from.empty() == s.ffn_from.empty() && s.cross_from.empty() == (s.attn_from.empty() || !decoder_block),
                 "{}: attn_from{} and ffn_from come together", at, decoder_block ? ", cross_from" : "");
    SCULPT_CHECK(s.attn_from.empty() || c.pre_norm, "{}: per-site streams need pre-norm blocks", at);
    shapes.push_back(s);
  }
  // Each list indexes the stream before its block: the layer's input site (the model's own
  // stream_width), then the previous list's length.
  TransformerConfig packed = c;
  packed.layer_shapes = shapes;
  for (size_t i = 0; i < shapes.size(); ++i) {
    const size_t first = c.model_type == "t5" && static_cast<int64_t>(i) >= c.num_layers ? static_cast<size_t>(c.num_layers) : 0;
    int64_t before = packed.stream_width(i, first);
    auto& s = shapes[i];
    for (auto [key, list] : {std::pair{"attn_from", &s.attn_from}, std::pair{"cross_from", &s.cross_from}, std::pair{"ffn_from", &s.ffn_from}}) {
      for (const int64_t f : *list)
        SCULPT_CHECK(f >= -1 && f < before, "{} layers[{}]: {} holds {}; expected -1 or a coordinate in [0, {}) of the stream before the block",
                     where, i, key, f, before);
      if (!list->empty()) before = static_cast<int64_t>(list->size());
    }
  }
  return shapes;
}

void write_layer_shapes(nlohmann::json& j, const std::vector<LayerShape>& shapes) {
  j.erase("sculpt_packed");
  if (shapes.empty()) return;
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& s : shapes) {
    nlohmann::json l = attention_json(s.attn, "attn");
    l["ffn_dim"] = s.ffn_dim;
    l["ffn"] = s.ffn;
    if (s.cross.present || s.cross.heads > 0) l["cross"] = attention_json(s.cross, "present");
    if (!s.bias_heads.empty()) l["bias_heads"] = s.bias_heads;
    if (!s.attn_from.empty()) l["attn_from"] = s.attn_from, l["ffn_from"] = s.ffn_from;
    if (!s.cross_from.empty()) l["cross_from"] = s.cross_from;
    layers.push_back(l);
  }
  j["sculpt_packed"] = {{"format", 1}, {"layers", layers}};
}

double parameter_count(const TransformerConfig& c) {
  const double h = static_cast<double>(c.hidden_size), f = static_cast<double>(c.intermediate_size);
  const double inner = static_cast<double>(c.num_heads) * static_cast<double>(c.head_dim());
  const double attention = 4 * h * inner, ffn = (c.gated_ffn ? 3 : 2) * h * f;
  const double wep = static_cast<double>(c.word_embed_proj_dim > 0 ? c.word_embed_proj_dim : c.hidden_size);
  double n = static_cast<double>(c.vocab_size) * wep * (c.tie_word_embeddings ? 1 : 2);
  if (c.model_type != "t5") n += static_cast<double>(c.max_positions + 2) * h + static_cast<double>(c.type_vocab_size) * h;
  n += static_cast<double>(c.num_layers) * (attention + ffn);
  n += static_cast<double>(c.num_decoder_layers) * (2 * attention + ffn);
  return n;
}

void check_parameter_budget(const TransformerConfig& c, const std::string& source) {
  const double bytes = 4 * parameter_count(c);
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
  const double memory = pages > 0 && page > 0 ? static_cast<double>(pages) * static_cast<double>(page) : 0;
  SCULPT_CHECK(memory == 0 || bytes <= memory,
               "{}: these sizes describe {:.3g} parameters ({:.1f} GiB in fp32), more than this machine's {:.1f} GiB of "
               "memory (vocabulary {}, width {}, {} layers of FFN {}, {} positions)",
               source, bytes / 4, bytes / (1 << 30), memory / (1 << 30), c.vocab_size, c.hidden_size,
               c.num_layers + c.num_decoder_layers, c.intermediate_size, c.max_positions);
}

namespace {

// The first declared tensor whose name is SUFFIX or ends with ".SUFFIX".
const std::pair<const std::string, std::vector<int64_t>>* find_suffix(const io::TensorShapes& shapes,
                                                                       const std::string& suffix) {
  for (const auto& kv : shapes) {
    const std::string& name = kv.first;
    if (name == suffix ||
        (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0 &&
         name[name.size() - suffix.size() - 1] == '.'))
      return &kv;
  }
  return nullptr;
}

// The number of blocks: one more than the largest N in any "<...>PREFIX<N>." name; nullopt when
// no name has the prefix.
std::optional<int64_t> count_blocks(const io::TensorShapes& shapes, const std::string& prefix) {
  std::optional<int64_t> top;
  for (const auto& kv : shapes) {
    const auto at = kv.first.find(prefix);
    if (at == std::string::npos || (at > 0 && kv.first[at - 1] != '.')) continue;
    size_t i = at + prefix.size();
    int64_t n = 0;
    size_t digits = 0;
    while (i < kv.first.size() && std::isdigit(static_cast<unsigned char>(kv.first[i])) && digits < 9)
      n = n * 10 + (kv.first[i++] - '0'), ++digits;
    if (digits > 0 && i < kv.first.size() && kv.first[i] == '.') top = std::max(top.value_or(0), n + 1);
  }
  return top;
}

struct Claim {
  std::string what;  // "vocab_size 30522", as the message shows it
  int64_t expected;
  std::vector<std::string> suffixes;  // the first one declared is compared
  size_t dim;
};

}  // namespace

void check_config_against_weights(const TransformerConfig& c, const std::string& dir, const std::string& config_source,
                                  bool packed) {
  const io::TensorShapes shapes = io::load_hf_weight_shapes(dir);
  if (shapes.empty()) return;  // pytorch_model.bin only: the load itself compares every shape
  const fs::path d(dir);
  const std::string file = fs::exists(d / "model.safetensors")              ? (d / "model.safetensors").string()
                           : fs::exists(d / "model.safetensors.index.json") ? (d / "model.safetensors.index.json").string()
                                                                            : (d / io::kCodebookWeightsFile).string();
  auto kv = [](const char* key, int64_t v) { return fmt::format("{} {}", key, v); };
  std::vector<Claim> claims;
  std::vector<std::pair<std::string, std::pair<int64_t, std::string>>> depths;  // key -> (value, block prefix)
  if (c.model_type == "bert") {
    claims = {{kv("vocab_size", c.vocab_size), c.vocab_size, {"embeddings.word_embeddings.weight"}, 0},
              {kv("max_position_embeddings", c.max_positions), c.max_positions, {"embeddings.position_embeddings.weight"}, 0},
              {kv("type_vocab_size", c.type_vocab_size), c.type_vocab_size, {"embeddings.token_type_embeddings.weight"}, 0}};
    if (!packed) {
      claims.push_back({kv("hidden_size", c.hidden_size), c.hidden_size, {"embeddings.word_embeddings.weight"}, 1});
      claims.push_back({kv("hidden_size", c.hidden_size), c.hidden_size, {"encoder.layer.0.attention.self.query.weight"}, 0});
      claims.push_back({kv("intermediate_size", c.intermediate_size), c.intermediate_size,
                        {"encoder.layer.0.intermediate.dense.weight"}, 0});
    }
    // A packed layer whose blocks were all removed may hold no tensor at all: depth is checked
    // against its sculpt_packed block instead.
    if (!packed) depths.push_back({"num_hidden_layers", {c.num_layers, "encoder.layer."}});
  } else if (c.model_type == "opt") {
    claims = {{kv("vocab_size", c.vocab_size), c.vocab_size, {"decoder.embed_tokens.weight"}, 0},
              {kv("word_embed_proj_dim", c.word_embed_proj_dim), c.word_embed_proj_dim, {"decoder.embed_tokens.weight"}, 1},
              {kv("max_position_embeddings", c.max_positions) + " (+2 offset rows)", c.max_positions + 2,
               {"decoder.embed_positions.weight"}, 0},
              {kv("hidden_size", c.hidden_size), c.hidden_size, {"decoder.embed_positions.weight"}, 1},
              {kv("ffn_dim", c.intermediate_size), c.intermediate_size, {"decoder.layers.0.fc1.weight"}, 0}};
    // Packed: each layer's sizes are its own, and a layer left with no block holds no tensor.
    if (packed) claims.pop_back();
    if (!packed) depths.push_back({"num_hidden_layers", {c.num_layers, "decoder.layers."}});
  } else if (c.model_type == "t5") {
    const std::string attn = "encoder.block.0.layer.0.SelfAttention.";
    claims = {{kv("vocab_size", c.vocab_size), c.vocab_size, {"shared.weight"}, 0},
              {kv("d_model", c.hidden_size), c.hidden_size, {"shared.weight"}, 1},
              {fmt::format("num_heads {} x d_kv {}", c.num_heads, c.head_dim()), c.num_heads * c.head_dim(), {attn + "q.weight"}, 0},
              {kv("relative_attention_num_buckets", c.relative_buckets), c.relative_buckets,
               {attn + "relative_attention_bias.weight"}, 0},
              {kv("num_heads", c.num_heads), c.num_heads, {attn + "relative_attention_bias.weight"}, 1},
              {kv("d_ff", c.intermediate_size), c.intermediate_size,
               {"encoder.block.0.layer.1.DenseReluDense.wi.weight", "encoder.block.0.layer.1.DenseReluDense.wi_0.weight"}, 0}};
    if (packed) {  // blocks have their own sizes (or none): the vocabulary, width and position bias only
      claims.erase(claims.begin() + 2);
      claims.pop_back();
    } else {
      depths.push_back({"num_layers", {c.num_layers, "encoder.block."}});
      depths.push_back({"num_decoder_layers", {c.num_decoder_layers, "decoder.block."}});
    }
  }
  for (const auto& claim : claims) {
    for (const auto& suffix : claim.suffixes) {
      const auto* t = find_suffix(shapes, suffix);
      if (!t) continue;
      SCULPT_CHECK(claim.dim < t->second.size() && t->second[claim.dim] == claim.expected,
                   "{}: {} does not match the weights: {} declares '{}' with shape [{}]", config_source, claim.what, file,
                   t->first, fmt::join(t->second, ", "));
      break;
    }
  }
  for (const auto& [key, want] : depths) {
    const auto found = count_blocks(shapes, want.second);
    SCULPT_CHECK(!found || *found == want.first, "{}: {} is {} but {} holds {} blocks ({}0 ... {}{})", config_source, key,
                 want.first, file, found.value_or(0), want.second, want.second, found.value_or(1) - 1);
  }
}

}  // namespace sculpt::models
