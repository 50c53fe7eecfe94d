#include "sculpt/io/hf_dir.h"

#include "sculpt/io/codebook_weights.h"
#include "sculpt/io/int8_weights.h"
#include "sculpt/io/model_dir.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "sculpt/core/error.h"
#include "sculpt/io/files.h"

namespace fs = std::filesystem;

namespace sculpt::io {

nlohmann::json read_json(const std::string& path) {
  std::string text = read_file(path);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: invalid JSON ({})", path, e.what());
  }
}

void require_model_dir(const std::string& dir, const std::string& what) {
  const fs::path d(dir);
  SCULPT_CHECK(!dir.empty(), "{}: no model directory given", what);
  SCULPT_CHECK(fs::exists(d), "{} {}: no such directory", what, dir);
  SCULPT_CHECK(fs::is_directory(d), "{} {}: not a directory (a model is a Hugging Face directory with config.json and weights)",
               what, dir);
  SCULPT_CHECK(fs::exists(d / "config.json"),
               "{} {}: no config.json, so not a Hugging Face model directory (scripts/get_model.sh puts one under data/models/)",
               what, dir);
}

TensorMap read_torch_bin(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  SCULPT_CHECK(in.good(), "{}: cannot open ({})", path, std::strerror(errno));
  std::vector<char> bytes(static_cast<size_t>(in.tellg()));  // read once, straight into pickle_load's buffer
  in.seekg(0);
  SCULPT_CHECK(in.read(bytes.data(), static_cast<std::streamsize>(bytes.size())), "{}: read failed", path);
  c10::IValue value;
  try {
    value = torch::pickle_load(bytes);
  } catch (const c10::Error& e) {
    fail("{}: cannot unpickle ({})", path, e.what_without_backtrace());
  }
  SCULPT_CHECK(value.isGenericDict(),
               "{}: expected a plain dict of tensors (HF's OrderedDict pickles cannot be read from C++; "
               "convert the checkpoint to safetensors)", path);
  TensorMap out;
  for (const auto& item : value.toGenericDict()) {
    SCULPT_CHECK(item.key().isString() && item.value().isTensor(), "{}: entries must be name -> tensor", path);
    // Tied entries share storage in the pickle; clone so each weight owns its memory.
    out[item.key().toStringRef()] = item.value().toTensor().clone();
  }
  return out;
}

namespace {

std::set<std::string> shard_names(const nlohmann::json& index, const std::string& index_path) {
  SCULPT_CHECK(index.contains("weight_map") && index["weight_map"].is_object(),
               "{}: missing 'weight_map'", index_path);
  std::set<std::string> shards;
  for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
    SCULPT_CHECK(it->is_string(), "{}: weight_map['{}'] is not a file name", index_path, it.key());
    shards.insert(it->get<std::string>());
  }
  return shards;
}

}  // namespace

TensorMap read_sharded_safetensors(const std::string& index_path) {
  nlohmann::json index = read_json(index_path);
  const std::set<std::string> shards = shard_names(index, index_path);
  TensorMap out;
  const fs::path dir = fs::path(index_path).parent_path();
  for (const auto& shard : shards) {
    for (auto& [key, t] : read_safetensors((dir / shard).string()).tensors) {
      SCULPT_CHECK(!out.count(key), "{}: tensor '{}' appears in more than one shard", index_path, key);
      out[key] = std::move(t);
    }
  }
  for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it)
    SCULPT_CHECK(out.count(it.key()), "{}: '{}' is listed in weight_map but not in shard {}", index_path,
                 it.key(), it->get<std::string>());
  return out;
}

TensorShapes load_hf_weight_shapes(const std::string& dir, WeightFormat prefer) {
  const fs::path d(dir);
  const fs::path st = d / "model.safetensors", index = d / "model.safetensors.index.json",
                 bin = d / "pytorch_model.bin";
  if (prefer == WeightFormat::bin && fs::exists(bin)) return {};
  if (fs::exists(st)) return read_safetensors_shapes(st.string());
  if (fs::exists(d / kCodebookWeightsFile)) return read_codebook_shapes((d / kCodebookWeightsFile).string());
  if (fs::exists(d / kInt8WeightsFile)) {  // from the header: NAME::int8 has NAME's shape, the other parts none
    TensorShapes out;
    for (auto& [k, shape] : read_safetensors_shapes((d / kInt8WeightsFile).string())) {
      const auto sep = k.find("::");
      if (sep == std::string::npos) out[k] = std::move(shape);
      else if (k.compare(sep, std::string::npos, "::int8") == 0) out[k.substr(0, sep)] = std::move(shape);
    }
    return out;
  }
  if (!fs::exists(index)) return {};
  TensorShapes out;
  for (const auto& shard : shard_names(read_json(index.string()), index.string()))
    for (auto& [key, shape] : read_safetensors_shapes((d / shard).string())) out[key] = std::move(shape);
  return out;
}

TensorMap load_hf_weights(const std::string& dir, WeightFormat prefer) {
  const fs::path d(dir);
  const fs::path st = d / "model.safetensors", index = d / "model.safetensors.index.json",
                 bin = d / "pytorch_model.bin";
  if (prefer == WeightFormat::bin && fs::exists(bin)) return read_torch_bin(bin.string());
  if (fs::exists(st)) return read_safetensors(st.string()).tensors;
  if (fs::exists(index)) return read_sharded_safetensors(index.string());
  if (fs::exists(bin)) return read_torch_bin(bin.string());
  if (fs::exists(d / kCodebookWeightsFile)) return read_codebook_weights((d / kCodebookWeightsFile).string());
  if (fs::exists(d / kInt8WeightsFile)) return dequantized(read_int8_weights((d / kInt8WeightsFile).string()));
  fail("{}: no weights found (expected model.safetensors, model.safetensors.index.json, pytorch_model.bin, {} or {})", dir,
       kCodebookWeightsFile, kInt8WeightsFile);
}

}  // namespace sculpt::io
