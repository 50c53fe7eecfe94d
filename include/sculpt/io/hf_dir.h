// A Hugging Face model directory: config.json, weights (model.safetensors, sharded
// model.safetensors.index.json, pytorch_model.bin, or sculpt's k-means codebooks
// model.codebook.safetensors, io/codebook_weights.h), tokenizer files.
#pragma once
#include <nlohmann/json_fwd.hpp>

#include <string>

#include "sculpt/io/safetensors.h"

namespace sculpt::io {

nlohmann::json read_json(const std::string& path);

enum class WeightFormat { safetensors, bin };

// Load every weight tensor of DIR. `prefer` picks the format when both are present.
TensorMap load_hf_weights(const std::string& dir, WeightFormat prefer = WeightFormat::safetensors);
// The shapes DIR's weights declare (file names as load_hf_weights chooses them), from the
// safetensors headers alone; empty when DIR holds only pytorch_model.bin (a pickle has no header
// to read without unpickling it).
TensorShapes load_hf_weight_shapes(const std::string& dir, WeightFormat prefer = WeightFormat::safetensors);
// A torch.save zip archive of a plain dict name -> tensor (pytorch_model.bin).
TensorMap read_torch_bin(const std::string& path);
// Shards listed in model.safetensors.index.json (weight_map), each read once.
TensorMap read_sharded_safetensors(const std::string& index_path);

}  // namespace sculpt::io
