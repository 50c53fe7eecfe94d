#include "sculpt/models/int8_linear.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/torch.h>

#include <filesystem>

#include "sculpt/core/error.h"
#include "sculpt/core/log.h"

namespace fs = std::filesystem;

namespace sculpt::models {
namespace {

c10::IValue call(const char* name, std::vector<c10::IValue> stack) {
  static std::mutex mutex;
  static std::map<std::string, c10::OperatorHandle> ops;
  c10::OperatorHandle* op;
  {
    std::lock_guard<std::mutex> lock(mutex);
    auto it = ops.find(name);
    if (it == ops.end()) it = ops.emplace(name, c10::Dispatcher::singleton().findSchemaOrThrow(name, "")).first;
    op = &it->second;
  }
  op->callBoxed(&stack);
  return stack.at(0);
}

int64_t round_up(int64_t v, int64_t to) { return (v + to - 1) / to * to; }

torch::Tensor pad_to(const torch::Tensor& t, int64_t rows, int64_t cols) {
  if (t.size(0) == rows && t.size(1) == cols) return t.contiguous();
  return torch::constant_pad_nd(t, {0, cols - t.size(1), 0, rows - t.size(0)}, 0).contiguous();
}

}  // namespace

torch::Tensor pad_int8_weight(const torch::Tensor& q_t) { return pad_to(q_t, round_up(q_t.size(0), 16), round_up(q_t.size(1), 16)); }

torch::Tensor int_mm_padded(const torch::Tensor& xq, const torch::Tensor& q_t_padded, int64_t n) {
  const int64_t m = xq.size(0);
  const auto x = pad_to(xq, std::max<int64_t>(32, round_up(m, 16)), q_t_padded.size(0));
  return at::_int_mm(x, q_t_padded).narrow(0, 0, m).narrow(1, 0, n);
}

Int8LinearKernel::Int8LinearKernel(const io::Int8Matrix& m, const torch::Tensor& bias, const torch::Device& device) : m_(m) {
  bias_ = bias.defined() ? bias.detach().to(device, torch::kFloat32).contiguous() : bias;
  if (device.is_cuda()) {
    q_t_ = pad_int8_weight(m.q.t()).to(device);
    scale_ = m.scale.to(device);
    return;
  }
  const auto zeros = torch::zeros({m.q.size(0)}, torch::kLong);
  const auto qw = at::_make_per_channel_quantized_tensor(m.q.contiguous(), m.scale.to(torch::kDouble), zeros, 0);
  packed_ = call("quantized::linear_prepack", {qw, bias_.defined() ? c10::IValue(bias_) : c10::IValue()});
}

torch::Tensor Int8LinearKernel::forward(const torch::Tensor& x, const torch::Tensor& /*weight*/, const torch::Tensor& /*bias*/) {
  const bool dynamic = m_.input_scale <= 0;
  const auto shape = x.sizes().vec();
  auto x2 = x.reshape({-1, shape.back()}).to(torch::kFloat32).contiguous();
  if (!x.is_cuda()) {
    torch::Tensor y;
    if (dynamic) {
      y = call("quantized::linear_dynamic", {x2, packed_, true}).toTensor();
    } else {  // clamp to what [0, 127] represents: the op itself would use the full unsigned byte
      const double lo = -static_cast<double>(m_.input_zero_point) * m_.input_scale, hi = (127.0 - m_.input_zero_point) * m_.input_scale;
      y = call("quantized::linear_with_input_q_dq_qweight_dq_output_fp32", {x2.clamp(lo, hi), m_.input_scale, m_.input_zero_point, packed_})
              .toTensor();
    }
    auto out_shape = shape;
    out_shape.back() = y.size(-1);
    return y.view(out_shape).to(x.scalar_type());
  }
  // CUDA: x_q - z in [-127, 127] as int8, one int32 matmul, then both scales.
  torch::Tensor s = torch::full({}, m_.input_scale, x2.options()), z = torch::full({}, static_cast<double>(m_.input_zero_point), x2.options());
  if (dynamic) {  // the symmetric range of this input
    s = x2.abs().amax().clamp_min(1e-8) / 127.0;
    z = torch::zeros({}, x2.options());
  }
  auto xq = (torch::round(x2 / s) + z).clamp(dynamic ? -127 : 0, 127).sub(z).to(torch::kInt8);
  auto acc = int_mm_padded(xq, q_t_, m_.q.size(0));
  auto y = acc.to(torch::kFloat32) * (s * scale_);
  if (bias_.defined()) y = y + bias_;
  auto out_shape = shape;
  out_shape.back() = y.size(-1);
  return y.view(out_shape).to(x.scalar_type());
}

int64_t install_int8_kernels(torch::nn::Module& module, const KeyMap& keys, const std::string& dir) {
  const auto path = fs::path(dir) / io::kInt8WeightsFile;
  if (!fs::exists(path)) return 0;
  const auto w = io::read_int8_weights(path.string());
  auto modules = module.named_modules();
  int64_t n = 0;
  for (const auto& kp : keys) {
    auto it = w.quantized.find(kp.hf);
    if (kp.alias || it == w.quantized.end()) continue;
    const std::string internal = kp.internal.substr(0, kp.internal.rfind('.'));
    auto* m = modules.find(internal);
    SCULPT_CHECK(m != nullptr && (*m)->as<LinearImpl>() != nullptr, "{}: {} is quantized but {} is not a linear map", path.string(),
                 kp.hf, internal);
    auto* linear = (*m)->as<LinearImpl>();
    SCULPT_CHECK(linear->weight.sizes() == it->second.q.sizes(), "{}: {} has shape {}, the model's {}", path.string(), kp.hf,
                 c10::str(it->second.q.sizes()), c10::str(linear->weight.sizes()));
    linear->kernel = std::make_shared<Int8LinearKernel>(it->second, linear->bias, linear->weight.device());
    ++n;
  }
  SCULPT_CHECK(n == static_cast<int64_t>(w.quantized.size()), "{}: {} quantized matrices, {} of them are this model's", path.string(),
               w.quantized.size(), n);
  LOG_INFO("[model] {}: {} linear maps run int8 products", dir, n);
  return n;
}

}  // namespace sculpt::models
