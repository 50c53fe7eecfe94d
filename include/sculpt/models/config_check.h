// config.json values read with their ranges, and a config checked against the shapes its weight
// file declares, before anything is allocated: a wrong value is refused with the file, the key,
// the value and what was expected, never a SIGFPE, a hang or LibTorch's allocation error.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

#include "sculpt/models/config.h"

namespace sculpt::models {

// Upper bounds far above every published checkpoint (mT5's vocabulary is 250k, the widest
// models 12k-25k, the deepest a few hundred layers) and far below what would exhaust memory.
inline constexpr int64_t kMaxVocab = int64_t{1} << 24, kMaxWidth = int64_t{1} << 16, kMaxFfn = int64_t{1} << 20,
                         kMaxPositions = int64_t{1} << 20, kMaxLayers = 1024, kMaxLabels = int64_t{1} << 16;

// KEY of config.json: absent or null gives `fallback`; a wrong type, a fraction where an integer
// is due, or a value outside [lo, hi] is refused naming SOURCE and KEY.
int64_t config_int(const nlohmann::json& j, const char* key, int64_t fallback, int64_t lo, int64_t hi,
                   const std::string& source);
double config_real(const nlohmann::json& j, const char* key, double fallback, double lo, double hi,
                   const std::string& source);
bool config_bool(const nlohmann::json& j, const char* key, bool fallback, const std::string& source);
std::string config_string(const nlohmann::json& j, const char* key, const std::string& fallback,
                          const std::string& source);

// A rotated, sliced stream's `sculpt_rotated` block ({"format": 1, "norm_width": D, ...}, written
// by compress/rotate.h): its norm width, at least HIDDEN; 0 when the block is absent.
int64_t rotated_norm_width_of(const nlohmann::json& j, int64_t hidden, const std::string& source);
// Writes (or removes, for an unrotated C) that block in J.
void write_rotated_block(nlohmann::json& j, const TransformerConfig& c);

// A packed decoder's `sculpt_packed` block ({"format": 1, "layers": [{"heads", "qk_dim", "vo_dim",
// "ffn_dim", "attn", "ffn"}, ...]}, written by compress/pack_decoder.h): one shape per layer of
// COUNT, each within C's full sizes; empty when the block is absent.
std::vector<LayerShape> layer_shapes_of(const nlohmann::json& j, const TransformerConfig& c, int64_t count,
                                        const std::string& source);
// Writes (or removes, for no SHAPES) that block in J.
void write_layer_shapes(nlohmann::json& j, const std::vector<LayerShape>& shapes);

// The parameter count the sizes describe (embeddings, every block, the untied LM head).
double parameter_count(const TransformerConfig& c);
// Refused when those parameters in fp32 exceed this machine's memory: sizes that pass each
// range but not together (vocab_size 16M with hidden_size 65536) with no weights to compare.
void check_parameter_budget(const TransformerConfig& c, const std::string& source);

// The sizes of `c` against the shapes DIR's safetensors declare (vocabulary, width, positions,
// FFN, heads, number of layers, each family by its own weight names), from the headers alone.
// `packed`: a packed model, whose widths are per layer (its sculpt_packed block is range-checked
// on parsing); only the vocabulary, positions and stream width are compared.
void check_config_against_weights(const TransformerConfig& c, const std::string& dir, const std::string& config_source,
                                  bool packed = false);

}  // namespace sculpt::models
