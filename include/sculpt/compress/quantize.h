// 8-bit quantization-aware training and post-training quantization (Prune Once for All's last
// stage; IntelLabs' QuantizedLinear, method.md §6.2), as a LinearKernel on the chosen Linears:
//  * weights: symmetric per output channel, q = clamp(round(w / s), -127, 127), s = max|w_row| / 127,
//    recomputed from the current weights at every forward;
//  * inputs: affine per tensor on unsigned 7 bits [0, 127] (PyTorch's reduce_range for x86, which
//    keeps fbgemm's int16 pair sums from saturating), range by a moving average of each batch's
//    min and max (averaging constant 0.01, PyTorch's MovingAverageMinMaxObserver; the first batch
//    sets it), updated while `observe` is on (training, calibration), frozen for evaluation;
//  * both through PyTorch's fake_quantize ops: the forward sees the rounding, the backward is the
//    straight-through estimator (gradient 1 inside the range, 0 where clamped).
// Everything stays on the device; export reads the ranges once.
#pragma once
#include <torch/types.h>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "sculpt/io/int8_weights.h"
#include "sculpt/models/key_map.h"
#include "sculpt/models/layers.h"

namespace sculpt::compress {

// The weight as the int8 path will see it (STE gradient), and its int8 form.
torch::Tensor fake_quant_weight(const torch::Tensor& w);
io::Int8Matrix quantize_weight(const torch::Tensor& w);  // input_scale 0 (dynamic) until set

class FakeQuantLinear : public models::LinearKernel {
 public:
  // averaging 0: the running min and max (calibration for post-training quantization).
  explicit FakeQuantLinear(const torch::Device& device, double averaging = 0.01);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) override;
  // The input's scale and zero point now (device scalars, float and int32).
  std::pair<torch::Tensor, torch::Tensor> input_qparams() const;
  bool observed() const;  // whether any batch has been seen (reads the device)
  io::Int8Matrix export_int8(const torch::Tensor& weight) const;

  bool observe = true;
  torch::Tensor min, max, seen;  // [] float, float, and 0/1: the moving range (checkpointed)

 private:
  double averaging_;
};

// FakeQuantLinear kernels on the Linears whose weight's HF name is in NAMES (module internal
// names through the pairs (hf weight name, internal weight name)).
std::vector<std::pair<std::string, std::shared_ptr<FakeQuantLinear>>> attach_fake_quant(
    torch::nn::Module& module, const std::vector<std::pair<std::string, std::string>>& hf_and_internal, double averaging = 0.01);

// Each layer's int8 form from its kernel's range and the module's current weight (HF name ->
// matrix); a layer that has seen no input is refused.
std::map<std::string, io::Int8Matrix> int8_matrices(torch::nn::Module& module,
                                                    const std::vector<std::pair<std::string, std::shared_ptr<FakeQuantLinear>>>& layers,
                                                    const models::KeyMap& keys);
// Turns a float export directory into an int8 one: model.safetensors -> model.int8.safetensors
// with these matrices in place of the float ones; config.json gains "sculpt_quantization".
void write_int8_directory(const std::string& dir, const std::map<std::string, io::Int8Matrix>& quantized, const std::string& how);

}  // namespace sculpt::compress
