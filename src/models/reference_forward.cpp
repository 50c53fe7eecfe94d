#include "sculpt/models/reference_forward.h"

#include <torch/torch.h>

#include <filesystem>

#include "sculpt/core/error.h"
#include "sculpt/models/any_bert.h"
#include "sculpt/models/bert.h"
#include "sculpt/models/config_check.h"
#include "sculpt/models/opt.h"
#include "sculpt/models/t5.h"

namespace fs = std::filesystem;

namespace sculpt::models {
namespace {

// Strict load: every key of the map present, nothing unexpected (tied duplicates allowed).
template <typename Model>
void load_strict(Model& model, const KeyMap& keys, const std::string& dir, io::WeightFormat prefer) {
  auto report = load_state(*model, keys, io::load_hf_weights(dir, prefer));
  SCULPT_CHECK(report.missing.empty() && report.unexpected.empty(), "{}", report.describe(dir));
}

torch::Tensor grad_norms(torch::nn::Module& model, const KeyMap& keys, std::vector<std::string>& names) {
  auto params = model.named_parameters();
  std::vector<torch::Tensor> norms;
  for (const auto& kp : keys) {
    if (kp.alias) continue;
    auto& p = params[kp.internal];
    norms.push_back(p.grad().defined() ? p.grad().norm() : torch::zeros({}));
    names.push_back(kp.hf);
  }
  return torch::stack(norms);
}

}  // namespace

ReferenceForward reference_forward(const std::string& model_dir, const io::TensorMap& inputs, io::WeightFormat prefer,
                                   int64_t max_new_tokens) {
  const std::string config_path = (fs::path(model_dir) / "config.json").string();
  auto config_json = io::read_json(config_path);
  const std::string type = config_json.value("model_type", "");
  auto get = [&](const char* name) {
    auto it = inputs.find(name);
    return it == inputs.end() ? torch::Tensor() : it->second;
  };
  SCULPT_CHECK(get("input_ids").defined() || get("gen_input_ids").defined(), "inputs: 'input_ids' is required");
  const ForwardOptions all{true, true};
  ReferenceForward result;
  auto finish = [&](torch::nn::Module& model, const KeyMap& keys, std::map<std::string, torch::Tensor> named) {
    // A packed block left with no head (or none at all) has no attention probabilities.
    for (auto& [name, t] : named)
      if (t.defined()) result.outputs[name] = t.detach().clone();
    if (named.count("loss")) {
      named["loss"].backward();
      result.outputs["grad_norms"] = grad_norms(model, keys, result.grad_norm_names);
    }
  };
  auto generate = [&](auto& model) {  // T5 or OPT: greedy ids and their scores
    auto [ids, scores] = model->generate(get("gen_input_ids"), get("gen_attention_mask"), max_new_tokens);
    result.outputs["generated_ids"] = ids;
    result.outputs["generate_scores"] = scores;
  };

  if (type == "bert") {
    auto model = load_any_bert(model_dir, prefer);  // dense or packed
    model.module->eval();
    Batch batch{get("input_ids"), get("attention_mask"), get("token_type_ids"),
                get("labels"),    get("start_positions"), get("end_positions")};
    finish(*model.module, model.keys, model.forward(batch, all).named());
  } else if (type == "t5") {
    const auto config = t5_config_from_json(config_json, config_path);
    check_config_against_weights(config, model_dir, config_path, /*packed=*/!config.layer_shapes.empty());
    T5 model(config);
    auto keys = t5_key_map(model->config);
    load_strict(model, keys, model_dir, prefer);
    model->eval();
    if (get("input_ids").defined())
      finish(*model, keys,
             model->forward(get("input_ids"), get("attention_mask"), get("decoder_input_ids"), get("decoder_attention_mask"),
                            get("labels"), all).named());
    if (get("gen_input_ids").defined()) generate(model);
  } else if (type == "opt") {
    const auto config = opt_config_from_json(config_json, config_path);
    check_config_against_weights(config, model_dir, config_path, /*packed=*/!config.layer_shapes.empty());
    Opt model(config);
    auto keys = opt_key_map(model->config);
    load_strict(model, keys, model_dir, prefer);
    model->eval();
    if (get("input_ids").defined()) finish(*model, keys, model->forward(get("input_ids"), get("attention_mask"), get("labels"), all).named());
    if (get("gen_input_ids").defined() && model->config.head == HeadType::causal_lm) generate(model);
  } else {
    fail("{}: model_type '{}' is not supported (bert, t5, opt)", model_dir, type);
  }
  return result;
}

}  // namespace sculpt::models
