// recipe.quantize (qat) on any task: FakeQuantLinear kernels (compress/quantize.h) on the chosen
// linear maps; their input ranges learn while training, freeze while evaluating, ride in every
// checkpoint, and every export (best/, final/) becomes an int8 directory.
#include <torch/torch.h>

#include "sculpt/compress/quantize.h"
#include "sculpt/core/error.h"
#include "sculpt/core/log.h"
#include "sculpt/train/select_weights.h"
#include "sculpt/train/wrapped_task.h"

namespace sculpt::train {
namespace {

class QuantTask : public WrappedTask {
 public:
  QuantTask(std::unique_ptr<Task> inner, const recipe::Recipe& r) : WrappedTask(std::move(inner)) {
    std::vector<std::pair<std::string, std::string>> names;
    for (const auto& w : select_weights(model(), keys(), r.quantize.include, r.quantize.exclude, "quantize.include"))
      names.emplace_back(w.hf, w.internal);
    layers_ = compress::attach_fake_quant(model(), names, r.quantize.averaging);
    LOG_INFO("[quantize] 8-bit quantization-aware training of {} linear maps (weights per channel, inputs per tensor)", layers_.size());
  }
  std::string describe() const override { return inner_->describe() + ", 8-bit QAT"; }
  std::map<std::string, double> evaluate() override {
    observe(false);
    auto m = inner_->evaluate();
    observe(true);
    return m;
  }
  void export_to(const std::string& dir) override {
    inner_->export_to(dir);
    compress::write_int8_directory(dir, compress::int8_matrices(model(), layers_, keys()), "qat");
  }
  io::TensorMap extra_state() override {
    auto s = inner_->extra_state();
    for (const auto& [hf, k] : layers_) {
      s["quant." + hf + ".min"] = k->min.to(torch::kCPU);
      s["quant." + hf + ".max"] = k->max.to(torch::kCPU);
      s["quant." + hf + ".seen"] = k->seen.to(torch::kCPU);
    }
    return s;
  }
  void load_extra_state(const io::TensorMap& state, const std::string& source) override {
    io::TensorMap rest;
    for (const auto& [k, v] : state)
      if (k.rfind("quant.", 0) != 0) rest[k] = v;
    torch::NoGradGuard no_grad;
    for (const auto& [hf, k] : layers_)
      for (auto* part : {&k->min, &k->max, &k->seen}) {
        const std::string name = "quant." + hf + (part == &k->min ? ".min" : part == &k->max ? ".max" : ".seen");
        auto it = state.find(name);
        SCULPT_CHECK(it != state.end(), "{}: no {} (a checkpoint of a run without `quantize:`)", source, name);
        part->copy_(it->second);
      }
    inner_->load_extra_state(rest, source);
  }

 private:
  void observe(bool on) {
    for (auto& [hf, k] : layers_) k->observe = on;
  }
  std::vector<std::pair<std::string, std::shared_ptr<compress::FakeQuantLinear>>> layers_;
};

}  // namespace

std::unique_ptr<Task> with_quantization(std::unique_ptr<Task> task, const recipe::Recipe& r) {
  return std::make_unique<QuantTask>(std::move(task), r);
}

}  // namespace sculpt::train
