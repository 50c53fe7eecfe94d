#include "sculpt/compress/quantize.h"

#include <torch/torch.h>

#include <algorithm>
#include <filesystem>

#include "sculpt/core/error.h"
#include "sculpt/io/files.h"
#include "sculpt/io/hf_dir.h"

namespace fs = std::filesystem;

namespace sculpt::compress {
namespace {

constexpr double kEps = 1.1920928955078125e-07;  // float32 epsilon: PyTorch observers' smallest scale

torch::Tensor weight_scale(const torch::Tensor& w) { return (w.detach().abs().amax(1).to(torch::kFloat32) / 127.0).clamp_min(kEps); }

}  // namespace

torch::Tensor fake_quant_weight(const torch::Tensor& w) {
  const auto scale = weight_scale(w);
  const auto zero = torch::zeros({w.size(0)}, torch::TensorOptions().dtype(torch::kInt32).device(w.device()));
  return torch::fake_quantize_per_channel_affine(w, scale, zero, 0, -127, 127);
}

io::Int8Matrix quantize_weight(const torch::Tensor& w) {
  io::Int8Matrix m;
  m.scale = weight_scale(w).to(torch::kCPU);
  // The fake-quantized values divided back: exactly the integers fake_quantize rounded to.
  m.q = torch::round(fake_quant_weight(w.detach()).to(torch::kCPU, torch::kFloat32) / m.scale.unsqueeze(1)).to(torch::kInt8);
  m.input_scale = 0;
  return m;
}

FakeQuantLinear::FakeQuantLinear(const torch::Device& device, double averaging) : averaging_(averaging) {
  const auto o = torch::TensorOptions().dtype(torch::kFloat32).device(device);
  min = torch::zeros({}, o), max = torch::zeros({}, o), seen = torch::zeros({}, o);
}

std::pair<torch::Tensor, torch::Tensor> FakeQuantLinear::input_qparams() const {
  const auto lo = min.clamp_max(0), hi = max.clamp_min(0);
  const auto scale = ((hi - lo) / 127.0).clamp_min(kEps);
  const auto zero = (-torch::round(lo / scale)).clamp(0, 127).to(torch::kInt32);
  return {scale, zero};
}

torch::Tensor FakeQuantLinear::forward(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) {
  if (observe) {
    torch::NoGradGuard no_grad;
    const auto xmin = x.detach().min().to(torch::kFloat32), xmax = x.detach().max().to(torch::kFloat32);
    // First batch: its range; then min += c (batch min - min), as MovingAverageMinMaxObserver,
    // or (c = 0, calibration) the running extremes, as MinMaxObserver.
    const auto lo = averaging_ > 0 ? min + averaging_ * (xmin - min) : torch::minimum(min, xmin);
    const auto hi = averaging_ > 0 ? max + averaging_ * (xmax - max) : torch::maximum(max, xmax);
    min.copy_(torch::where(seen > 0, lo, xmin));
    max.copy_(torch::where(seen > 0, hi, xmax));
    seen.fill_(1);
  }
  const auto [scale, zero] = input_qparams();
  const auto xq = torch::fake_quantize_per_tensor_affine(x.to(torch::kFloat32), scale, zero, 0, 127).to(x.scalar_type());
  return at::linear(xq, fake_quant_weight(weight).to(x.scalar_type()), bias.defined() ? bias.to(x.scalar_type()) : bias);
}

bool FakeQuantLinear::observed() const { return seen.item<float>() > 0; }

io::Int8Matrix FakeQuantLinear::export_int8(const torch::Tensor& weight) const {
  auto m = quantize_weight(weight);
  SCULPT_CHECK(observed(), "a quantized layer has never seen an input: no range to export (train or calibrate first)");
  const auto [scale, zero] = input_qparams();
  m.input_scale = scale.item<double>();
  m.input_zero_point = zero.item<int64_t>();
  return m;
}

std::vector<std::pair<std::string, std::shared_ptr<FakeQuantLinear>>> attach_fake_quant(
    torch::nn::Module& module, const std::vector<std::pair<std::string, std::string>>& hf_and_internal, double averaging) {
  auto modules = module.named_modules();
  std::vector<std::pair<std::string, std::shared_ptr<FakeQuantLinear>>> out;
  for (const auto& [hf, internal] : hf_and_internal) {
    const std::string path = internal.substr(0, internal.rfind('.'));
    auto* m = modules.find(path);
    auto* linear = m ? (*m)->as<models::LinearImpl>() : nullptr;
    SCULPT_CHECK(linear != nullptr, "{} ({}) is not the weight of a linear map: it cannot be quantized", hf, internal);
    auto kernel = std::make_shared<FakeQuantLinear>(linear->weight.device(), averaging);
    linear->kernel = kernel;
    out.emplace_back(hf, kernel);
  }
  return out;
}

std::map<std::string, io::Int8Matrix> int8_matrices(torch::nn::Module& module,
                                                    const std::vector<std::pair<std::string, std::shared_ptr<FakeQuantLinear>>>& layers,
                                                    const models::KeyMap& keys) {
  auto params = module.named_parameters();
  std::map<std::string, io::Int8Matrix> out;
  for (const auto& [hf, kernel] : layers) {
    auto kp = std::find_if(keys.begin(), keys.end(), [&](const models::KeyPair& k) { return k.hf == hf && !k.alias; });
    SCULPT_CHECK(kp != keys.end() && params.find(kp->internal), "{}: not a parameter of this model", hf);
    out[hf] = kernel->export_int8(*params.find(kp->internal));
  }
  return out;
}

void write_int8_directory(const std::string& dir, const std::map<std::string, io::Int8Matrix>& quantized, const std::string& how) {
  const fs::path st = fs::path(dir) / "model.safetensors";
  SCULPT_CHECK(fs::exists(st), "{}: no model.safetensors to quantize", dir);
  auto plain = io::read_safetensors(st.string()).tensors;
  for (const auto& [hf, m] : quantized) {
    auto it = plain.find(hf);
    SCULPT_CHECK(it != plain.end(), "{}: no {} among the exported weights", st.string(), hf);
    SCULPT_CHECK(it->second.sizes() == m.q.sizes(), "{}: {} is {}, its int8 form {}", st.string(), hf, c10::str(it->second.sizes()),
                 c10::str(m.q.sizes()));
    plain.erase(it);
  }
  io::write_int8_weights((fs::path(dir) / io::kInt8WeightsFile).string(), plain, quantized);
  fs::remove(st);
  const auto config_path = (fs::path(dir) / "config.json").string();
  auto config = io::read_json(config_path);
  config["sculpt_quantization"] = {{"bits", 8},
                                   {"weights", "symmetric int8 per output channel [-127, 127]"},
                                   {"inputs", quantized.empty() || quantized.begin()->second.input_scale > 0
                                                  ? "affine per tensor [0, 127] (static scale and zero point)"
                                                  : "affine per tensor [0, 127], each input's own range (dynamic)"},
                                   {"method", how},
                                   {"layers", static_cast<int64_t>(quantized.size())}};
  io::write_file_atomic(config_path, config.dump(2) + "\n");
}

}  // namespace sculpt::compress
