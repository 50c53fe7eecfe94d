// Family-independent pieces of working with HF checkpoints: initialisation, loading with
// the strict / fine-tuning policy, and writing an HF directory back.
#pragma once
#include <nlohmann/json.hpp>
#include <torch/nn/module.h>

#include <string>

#include "sculpt/io/hf_dir.h"
#include "sculpt/models/key_map.h"

namespace sculpt::models {

// N(0, std) matrices and embeddings, zero biases, unit norm weights (HF's _init_weights).
void init_normal(torch::nn::Module& module, double std);

// strict: every key present, nothing unexpected. Otherwise a missing task head (classifier,
// qa_outputs, score, lm_head) keeps its fresh initialisation and is reported, unexpected keys
// are reported, and a missing body weight is still an error.
LoadReport load_checkpoint(torch::nn::Module& module, const KeyMap& keys, const io::TensorMap& weights,
                           const std::string& source, bool strict, const std::vector<std::string>& ignorable = {});

// config.json + model.safetensors (HF key names, tied duplicates left out as HF does).
void save_hf(torch::nn::Module& module, const KeyMap& keys, const nlohmann::json& config, const std::string& dir);

}  // namespace sculpt::models
