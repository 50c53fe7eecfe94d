// Mixed precision: an RAII guard that runs the forward under autocast (bf16) on the device's
// autocast key, as `with torch.autocast(device_type, dtype=torch.bfloat16)` does; parameters,
// gradients and the optimizer stay fp32.
#pragma once
#include <c10/core/Device.h>

#include <string>

namespace sculpt::train {

// "fp32" | "bf16"; anything else is refused with the choices.
void check_precision(const std::string& precision);

class AutocastGuard {
 public:
  AutocastGuard(const std::string& precision, const c10::Device& device);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool active_ = false;
  bool previous_enabled_ = false;
  c10::DeviceType type_;
  int previous_dtype_ = 0;
};

}  // namespace sculpt::train
