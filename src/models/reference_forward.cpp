#include "sculpt/models/reference_forward.h"

#include <torch/torch.h>

#include <filesystem>

#include "sculpt/core/error.h"
#include "sculpt/models/bert.h"

namespace fs = std::filesystem;

namespace sculpt::models {

ReferenceForward reference_forward(const std::string& model_dir, const io::TensorMap& inputs, io::WeightFormat prefer) {
  auto config_json = io::read_json((fs::path(model_dir) / "config.json").string());
  const std::string type = config_json.value("model_type", "");
  SCULPT_CHECK(type == "bert", "{}: model_type '{}' is not supported by `forward` yet (bert)", model_dir, type);

  auto loaded = load_bert(model_dir, /*strict=*/true, prefer);
  auto& model = loaded.model;
  model->to(torch::kFloat32);
  model->eval();
  model->zero_grad();

  auto get = [&](const char* name) {
    auto it = inputs.find(name);
    return it == inputs.end() ? torch::Tensor() : it->second;
  };
  Batch batch{get("input_ids"), get("attention_mask"), get("token_type_ids"),
              get("labels"),    get("start_positions"), get("end_positions")};
  SCULPT_CHECK(batch.input_ids.defined(), "inputs: 'input_ids' is required");

  ModelOutput out = model->forward(batch, ForwardOptions{true, true});
  ReferenceForward result;
  for (auto& [name, t] : out.named()) result.outputs[name] = t.detach().clone();
  if (out.loss.defined()) {
    out.loss.backward();
    auto params = model->named_parameters();
    std::vector<torch::Tensor> norms;
    for (const auto& kp : bert_key_map(model->config)) {
      auto& p = params[kp.internal];
      norms.push_back(p.grad().defined() ? p.grad().norm() : torch::zeros({}));
      result.grad_norm_names.push_back(kp.hf);
    }
    result.outputs["grad_norms"] = torch::stack(norms);
  }
  return result;
}

}  // namespace sculpt::models
