#include "sculpt/train/select_weights.h"

#include <regex>

#include "sculpt/core/error.h"

namespace sculpt::train {

std::vector<SelectedWeight> select_weights(torch::nn::Module& module, const models::KeyMap& keys, const std::string& include,
                                           const std::string& exclude, const std::string& section) {
  std::regex in, out;
  try {
    in = std::regex(include);
    out = std::regex(exclude.empty() ? std::string("$^") : exclude);
  } catch (const std::regex_error& e) {
    fail("{}: '{}' / '{}' is not a regular expression ({})", section, include, exclude, e.what());
  }
  auto params = module.named_parameters();
  std::vector<SelectedWeight> chosen;
  for (const auto& kp : keys) {
    if (kp.alias) continue;
    auto* p = params.find(kp.internal);
    // An empty matrix (a packed block with no heads or neurons left) has nothing to prune or quantize.
    if (p && p->dim() == 2 && p->numel() > 0 && std::regex_search(kp.hf, in) && !std::regex_search(kp.hf, out)) chosen.push_back({kp.hf, kp.internal, *p});
  }
  SCULPT_CHECK(!chosen.empty(), "{} '{}' matches no 2-D parameter of this model", section, include);
  return chosen;
}

}  // namespace sculpt::train
