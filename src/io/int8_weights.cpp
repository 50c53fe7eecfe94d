#include "sculpt/io/int8_weights.h"

#include <torch/torch.h>

#include "sculpt/core/error.h"

namespace sculpt::io {
namespace {
constexpr const char* kSuffixes[] = {"::int8", "::scale", "::input_scale", "::input_zero_point"};
}

void write_int8_weights(const std::string& path, const TensorMap& plain, const std::map<std::string, Int8Matrix>& quantized) {
  TensorMap all = plain;
  for (const auto& [name, m] : quantized) {
    all[name + "::int8"] = m.q.to(torch::kCPU, torch::kInt8).contiguous();
    all[name + "::scale"] = m.scale.to(torch::kCPU, torch::kFloat32).contiguous();
    all[name + "::input_scale"] = torch::tensor(static_cast<float>(m.input_scale));
    all[name + "::input_zero_point"] = torch::tensor(static_cast<int32_t>(m.input_zero_point));
  }
  write_safetensors(path, all, {{"format", "pt"}, {"sculpt_int8", "symmetric int8 weights per output channel; inputs uint7 per tensor"}});
}

Int8Weights read_int8_weights(const std::string& path) {
  auto file = read_safetensors(path);
  SCULPT_CHECK(file.metadata.count("sculpt_int8"), "{}: no sculpt_int8 metadata: not an int8 model file", path);
  Int8Weights out;
  std::map<std::string, std::map<std::string, torch::Tensor>> parts;
  for (auto& [key, t] : file.tensors) {
    const auto sep = key.find("::");
    if (sep == std::string::npos) out.plain[key] = t;
    else parts[key.substr(0, sep)][key.substr(sep)] = t;
  }
  for (auto& [name, p] : parts) {
    for (const char* s : kSuffixes) SCULPT_CHECK(p.count(s), "{}: {} has no {}", path, name, s);
    SCULPT_CHECK(p.size() == 4, "{}: {} has an unknown part", path, name);
    Int8Matrix m;
    m.q = p["::int8"], m.scale = p["::scale"];
    SCULPT_CHECK(m.q.scalar_type() == torch::kInt8 && m.q.dim() == 2, "{}: {}::int8 is not a 2-D I8 tensor", path, name);
    SCULPT_CHECK(m.scale.scalar_type() == torch::kFloat32 && m.scale.dim() == 1 && m.scale.size(0) == m.q.size(0),
                 "{}: {}::scale is not F32 [{}]", path, name, m.q.size(0));
    SCULPT_CHECK((m.scale > 0).all().item<bool>(), "{}: {}::scale has a value <= 0", path, name);
    SCULPT_CHECK(m.q.ge(-127).all().item<bool>(), "{}: {}::int8 holds -128 (symmetric weights are in [-127, 127])", path, name);
    m.input_scale = p["::input_scale"].item<double>();
    m.input_zero_point = p["::input_zero_point"].item<int64_t>();
    SCULPT_CHECK(m.input_scale >= 0 && m.input_zero_point >= 0 && m.input_zero_point <= 127,
                 "{}: {} has input scale {} and zero point {} (need >= 0, 0 for dynamic, and [0, 127])", path, name, m.input_scale,
                 m.input_zero_point);
    out.quantized[name] = m;
  }
  return out;
}

TensorMap dequantized(const Int8Weights& w) {
  TensorMap out = w.plain;
  for (const auto& [name, m] : w.quantized) out[name] = m.q.to(torch::kFloat32) * m.scale.unsqueeze(1);
  return out;
}

}  // namespace sculpt::io
