#include "sculpt/train/precision.h"

#include <ATen/autocast_mode.h>

#include "sculpt/core/error.h"

namespace sculpt::train {
namespace {

bool enabled(c10::DeviceType t) { return at::autocast::is_autocast_enabled(t); }
void set_enabled(c10::DeviceType t, bool on) { at::autocast::set_autocast_enabled(t, on); }
at::ScalarType dtype(c10::DeviceType t) { return at::autocast::get_autocast_dtype(t); }
void set_dtype(c10::DeviceType t, at::ScalarType d) { at::autocast::set_autocast_dtype(t, d); }

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
