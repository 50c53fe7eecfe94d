#include "sculpt/train/precision.h"

#include <ATen/autocast_mode.h>
#include <torch/version.h>

#include "sculpt/core/error.h"

namespace sculpt::train {
namespace {

// PyTorch 2.4 replaced the per-device functions with ones taking the device type.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
bool enabled(c10::DeviceType t) { return at::autocast::is_autocast_enabled(t); }
void set_enabled(c10::DeviceType t, bool on) { at::autocast::set_autocast_enabled(t, on); }
at::ScalarType dtype(c10::DeviceType t) { return at::autocast::get_autocast_dtype(t); }
void set_dtype(c10::DeviceType t, at::ScalarType d) { at::autocast::set_autocast_dtype(t, d); }
#else
bool enabled(c10::DeviceType t) { return t == c10::DeviceType::CUDA ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled(); }
void set_enabled(c10::DeviceType t, bool on) {
  if (t == c10::DeviceType::CUDA) at::autocast::set_enabled(on);
  else at::autocast::set_cpu_enabled(on);
}
at::ScalarType dtype(c10::DeviceType t) {
  return t == c10::DeviceType::CUDA ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
}
void set_dtype(c10::DeviceType t, at::ScalarType d) {
  if (t == c10::DeviceType::CUDA) at::autocast::set_autocast_gpu_dtype(d);
  else at::autocast::set_autocast_cpu_dtype(d);
}
#endif

}  // namespace

void check_precision(const std::string& p) {
  SCULPT_CHECK(p == "fp32" || p == "bf16", "precision '{}' is not fp32 or bf16", p);
}

AutocastGuard::AutocastGuard(const std::string& precision, const c10::Device& device) : type_(device.type()) {
  check_precision(precision);
  if (precision == "fp32") return;
  active_ = true;
  previous_enabled_ = enabled(type_);
  previous_dtype_ = static_cast<int>(dtype(type_));
  set_enabled(type_, true);
  set_dtype(type_, at::kBFloat16);
  at::autocast::increment_nesting();
}

AutocastGuard::~AutocastGuard() {
  if (!active_) return;
  // As torch.autocast's __exit__: the cast cache lives for the outermost region only.
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  set_enabled(type_, previous_enabled_);
  set_dtype(type_, static_cast<at::ScalarType>(previous_dtype_));
}

}  // namespace sculpt::train
