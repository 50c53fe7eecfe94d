#include "sculpt/models/key_map.h"

#include <fmt/ranges.h>
#include <fmt/format.h>
#include <torch/torch.h>

#include <algorithm>
#include <set>

#include "sculpt/core/error.h"

namespace sculpt::models {

std::string LoadReport::describe(const std::string& source) const {
  std::string out;
  auto list = [](const std::vector<std::string>& keys) {
    std::string s;
    for (size_t i = 0; i < keys.size() && i < 20; ++i) s += (i ? ", " : "") + keys[i];
    if (keys.size() > 20) s += fmt::format(", ... ({} more)", keys.size() - 20);
    return s;
  };
  if (!missing.empty()) out += fmt::format("{}: missing {} keys: {}", source, missing.size(), list(missing));
  if (!unexpected.empty())
    out += fmt::format("{}{}: {} unexpected keys: {}", out.empty() ? "" : "; ", source, unexpected.size(),
                       list(unexpected));
  return out;
}

LoadReport load_state(torch::nn::Module& module, const KeyMap& map, const io::TensorMap& weights,
                      const std::vector<std::string>& ignorable) {
  auto params = module.named_parameters(/*recurse=*/true);
  LoadReport report;
  std::set<std::string> used(ignorable.begin(), ignorable.end());
  torch::NoGradGuard no_grad;
  std::set<std::string> filled;
  std::set<const void*> adopted;  // a storage adopted once: two parameters never share one
  for (const auto& kp : map) {
    auto* param = params.find(kp.internal);
    SCULPT_CHECK(param != nullptr, "key map names '{}' but the model has no such parameter", kp.internal);
    auto it = weights.find(kp.hf);
    if (kp.alias) {
      if (it == weights.end()) continue;
      used.insert(kp.hf);
      if (filled.count(kp.internal)) continue;
      auto primary = std::find_if(report.missing.begin(), report.missing.end(), [&](const std::string& hf) {
        for (const auto& other : map)
          if (other.hf == hf && other.internal == kp.internal) return true;
        return false;
      });
      if (primary != report.missing.end()) report.missing.erase(primary);
    } else if (it == weights.end()) {
      report.missing.push_back(kp.hf);
      continue;
    }
    used.insert(kp.hf);
    filled.insert(kp.internal);
    SCULPT_CHECK(it->second.sizes() == param->sizes(), "weight '{}' has shape {} but the model expects {}", kp.hf,
                 fmt::format("{}", fmt::join(it->second.sizes(), "x")), fmt::format("{}", fmt::join(param->sizes(), "x")));
    auto value = it->second.to(param->dtype());
    if (value.device() == param->device() && value.is_contiguous() && adopted.insert(value.storage().data()).second)
      param->set_data(value);
    else
      param->copy_(value);
  }
  for (const auto& [key, value] : weights)
    if (!used.count(key)) report.unexpected.push_back(key);
  return report;
}

io::TensorMap export_state(torch::nn::Module& module, const KeyMap& map) {
  auto params = module.named_parameters(true);
  io::TensorMap out;
  for (const auto& kp : map) {
    if (kp.alias) continue;
    auto* param = params.find(kp.internal);
    SCULPT_CHECK(param != nullptr, "key map names '{}' but the model has no such parameter", kp.internal);
    out[kp.hf] = param->detach().to(torch::kCPU).contiguous();
  }
  return out;
}

}  // namespace sculpt::models
