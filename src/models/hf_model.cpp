#include "sculpt/models/hf_model.h"

#include <fmt/ranges.h>
#include <torch/torch.h>

#include <filesystem>

#include "sculpt/core/error.h"
#include "sculpt/core/log.h"
#include "sculpt/io/files.h"

namespace fs = std::filesystem;

namespace sculpt::models {

void init_normal(torch::nn::Module& module, double std) {
  torch::NoGradGuard no_grad;
  for (auto& item : module.named_parameters()) {
    const std::string& name = item.key();
    auto& p = item.value();
    if (name.find("norm.weight") != std::string::npos) p.fill_(1.0);
    else if (name.size() >= 4 && name.compare(name.size() - 4, 4, "bias") == 0) p.zero_();
    else p.normal_(0.0, std);
  }
}

// Weights a fine-tuning start may lack (initialised and reported, as HF does): task heads, and
// BERT's pooler, which masked-LM checkpoints do not have.
static bool is_head_key(const std::string& hf) {
  for (const char* prefix : {"classifier.", "qa_outputs.", "score.", "lm_head.", "cls.", "bert.pooler."})
    if (hf.rfind(prefix, 0) == 0) return true;
  return false;
}

LoadReport load_checkpoint(torch::nn::Module& module, const KeyMap& keys, const io::TensorMap& weights,
                           const std::string& source, bool strict, const std::vector<std::string>& ignorable) {
  auto report = load_state(module, keys, weights, ignorable);
  if (strict) {
    SCULPT_CHECK(report.missing.empty() && report.unexpected.empty(), "{}", report.describe(source));
    return report;
  }
  std::vector<std::string> body;
  for (const auto& k : report.missing)
    if (!is_head_key(k)) body.push_back(k);
  if (!body.empty()) fail("{}", LoadReport{body, {}}.describe(source));
  if (!report.missing.empty())
    LOG_WARN("[model] {}: newly initialised (not in the checkpoint): {}", source, fmt::join(report.missing, ", "));
  if (!report.unexpected.empty())
    LOG_WARN("[model] {}: {} checkpoint weights not used by this model (e.g. {})", source, report.unexpected.size(),
             report.unexpected.front());
  return report;
}

void save_hf(torch::nn::Module& module, const KeyMap& keys, const nlohmann::json& config, const std::string& dir) {
  fs::create_directories(dir);
  io::write_safetensors((fs::path(dir) / "model.safetensors").string(), export_state(module, keys), {{"format", "pt"}});
  io::write_file_atomic((fs::path(dir) / "config.json").string(), config.dump(2) + "\n");
}

}  // namespace sculpt::models
