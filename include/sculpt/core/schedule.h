// Durations with units, as Marian writes them: "3e" (epochs), "500u" (updates); where a
// fraction of the whole run is meaningful (warmup), a plain number below 1 such as 0.1.
#pragma once
#include <cstdint>
#include <string>

namespace sculpt {

struct Duration {
  enum class Unit { updates, epochs, fraction };
  double value = 0;
  Unit unit = Unit::updates;

  static Duration parse(const std::string& text, bool allow_fraction = false);
  // Number of updates, given updates per epoch and (for fractions) the run's total.
  int64_t updates(int64_t updates_per_epoch, int64_t total_updates = 0) const;
  std::string str() const;
};

}  // namespace sculpt
