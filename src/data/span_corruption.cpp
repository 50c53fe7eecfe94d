#include "sculpt/data/span_corruption.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "sculpt/core/error.h"
#include "sculpt/data/batching.h"
#include "sculpt/data/mlm_masking.h"

namespace sculpt::data {
namespace {

// numpy's round: half to even (the default floating-point rounding mode).
int64_t round_half_even(double x) { return static_cast<int64_t>(std::nearbyint(x)); }

// NUM_ITEMS cut into NUM_SEGMENTS non-empty runs: a segment starts after each of
// NUM_SEGMENTS - 1 distinct positions drawn from the NUM_ITEMS - 1 gaps.
std::vector<int64_t> random_segmentation(int64_t num_items, int64_t num_segments, uint64_t seed) {
  std::vector<size_t> gaps(static_cast<size_t>(num_items - 1));
  std::iota(gaps.begin(), gaps.end(), 0);
  shuffle_indices(gaps, seed);
  gaps.resize(static_cast<size_t>(num_segments - 1));
  std::sort(gaps.begin(), gaps.end());
  std::vector<int64_t> lengths;
  int64_t start = 0;
  for (size_t g : gaps) {
    lengths.push_back(static_cast<int64_t>(g) + 1 - start);
    start = static_cast<int64_t>(g) + 1;
  }
  lengths.push_back(num_items - start);
  return lengths;
}

}  // namespace

std::vector<bool> random_spans_noise_mask(int64_t length, double noise_density, double mean_span, uint64_t seed) {
  SCULPT_CHECK(length >= 2, "span corruption needs at least 2 tokens (got {})", length);
  const int64_t noise = std::clamp<int64_t>(round_half_even(static_cast<double>(length) * noise_density), 1, length - 1);
  const int64_t spans = std::min(std::max<int64_t>(round_half_even(static_cast<double>(noise) / mean_span), 1), length - noise);
  const auto noise_lengths = random_segmentation(noise, spans, mix_seed(seed, 1));
  const auto kept_lengths = random_segmentation(length - noise, spans, mix_seed(seed, 2));
  std::vector<bool> mask;
  for (int64_t s = 0; s < spans; ++s) {
    mask.insert(mask.end(), static_cast<size_t>(kept_lengths[static_cast<size_t>(s)]), false);
    mask.insert(mask.end(), static_cast<size_t>(noise_lengths[static_cast<size_t>(s)]), true);
  }
  return mask;
}

SpanCorruption span_corrupt(const std::vector<int64_t>& ids, int64_t first_sentinel, int64_t eos, uint64_t seed, double noise_density,
                            double mean_span) {
  const auto noise = random_spans_noise_mask(static_cast<int64_t>(ids.size()), noise_density, mean_span, seed);
  SpanCorruption out;
  int64_t span = -1;
  for (size_t i = 0; i < ids.size(); ++i) {
    const bool starts = noise[i] && (i == 0 || !noise[i - 1]);
    if (starts) {
      ++span;
      out.inputs.push_back(first_sentinel - span);
      out.targets.push_back(first_sentinel - span);
    }
    (noise[i] ? out.targets : out.inputs).push_back(ids[i]);
  }
  out.inputs.push_back(eos);
  out.targets.push_back(eos);
  return out;
}

}  // namespace sculpt::data
