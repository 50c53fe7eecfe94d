#include "sculpt/core/schedule.h"

#include <cmath>

#include "sculpt/core/error.h"

namespace sculpt {

Duration Duration::parse(const std::string& text, bool allow_fraction) {
  const std::string hint = allow_fraction ? "a count with a unit (3e = epochs, 500u = updates) or a fraction such as 0.1"
                                          : "a count with a unit (3e = epochs, 500u = updates)";
  SCULPT_CHECK(!text.empty(), "empty duration: expected {}", hint);
  Duration d;
  std::string number = text;
  const char last = text.back();
  if (last == 'e' || last == 'u') {
    d.unit = last == 'e' ? Unit::epochs : Unit::updates;
    number = text.substr(0, text.size() - 1);
  } else {
    SCULPT_CHECK(allow_fraction, "duration '{}' has no unit: expected {}", text, hint);
    d.unit = Unit::fraction;
  }
  try {
    size_t used = 0;
    d.value = std::stod(number, &used);
    SCULPT_CHECK(used == number.size(), "x");
  } catch (const std::exception&) {
    fail("duration '{}' is not {}", text, hint);
  }
  SCULPT_CHECK(d.value >= 0 && std::isfinite(d.value), "duration '{}' must be non-negative", text);
  SCULPT_CHECK(d.unit != Unit::fraction || d.value <= 1, "fraction '{}' must be between 0 and 1", text);
  SCULPT_CHECK(d.unit != Unit::updates || d.value == std::floor(d.value), "update count '{}' must be whole", text);
  return d;
}

int64_t Duration::updates(int64_t updates_per_epoch, int64_t total_updates) const {
  switch (unit) {
    case Unit::updates: return static_cast<int64_t>(value);
    case Unit::epochs: return static_cast<int64_t>(std::llround(value * static_cast<double>(updates_per_epoch)));
    case Unit::fraction: return static_cast<int64_t>(std::llround(value * static_cast<double>(total_updates)));
  }
  return 0;
}

std::string Duration::str() const {
  auto num = [](double v) {
    std::string s = fmt::format("{}", v);
    return s;
  };
  switch (unit) {
    case Unit::updates: return num(value) + "u";
    case Unit::epochs: return num(value) + "e";
    case Unit::fraction: return num(value);
  }
  return {};
}

}  // namespace sculpt
