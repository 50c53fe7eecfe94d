// BERT: the generic encoder core + BERT's embeddings, pooler and heads (sequence
// classification, regression, question answering, masked LM), loaded from a Hugging Face
// directory.
#pragma once
#include <torch/nn.h>

#include <memory>

#include "sculpt/io/hf_dir.h"
#include "sculpt/models/config.h"
#include "sculpt/models/encoder_head.h"
#include "sculpt/models/key_map.h"
#include "sculpt/models/layers.h"
#include "sculpt/models/outputs.h"

namespace sculpt::models {

struct BertImpl : torch::nn::Module {
  explicit BertImpl(TransformerConfig config);
  ModelOutput forward(const Batch& batch, const ForwardOptions& options = {});
  // Hugging Face's initialisation: N(0, initializer_range) matrices and embeddings,
  // zero biases, unit LayerNorm, zero padding row.
  void init_weights();

  TransformerConfig config;
  Embeddings embed{nullptr};
  torch::nn::ModuleList layers{nullptr};
  EncoderHeads heads;  // pooler + classifier, or the span head
  // Masked LM (BertLMPredictionHead): dense + activation + LayerNorm, then the word embeddings
  // (tied) as the decoder, plus a vocabulary bias.
  models::Linear mlm_transform{nullptr};
  torch::nn::LayerNorm mlm_norm{nullptr};
  torch::Tensor mlm_bias;
};
TORCH_MODULE(Bert);

KeyMap bert_key_map(const TransformerConfig& c);

struct LoadedBert {
  Bert model{nullptr};
  LoadReport report;
};
// Load config + weights. strict: any missing or unexpected key is an error. Otherwise
// (fine-tuning a pretrained encoder) a missing head is initialised and reported, an
// unexpected key (e.g. MLM head) is reported, but a missing encoder weight is still an error.
LoadedBert load_bert(const std::string& dir, bool strict, io::WeightFormat prefer = io::WeightFormat::safetensors,
                     const TransformerConfig* override_config = nullptr);
// Write config.json + model.safetensors (HF key names) into dir.
void save_bert(Bert& model, const std::string& dir);

}  // namespace sculpt::models
