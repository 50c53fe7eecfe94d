// T5's pre-training objective, span corruption (Raffel et al. 2020; T5's random_spans_noise_mask,
// as Transformers' run_t5_mlm_flax.py writes it): round(L * noise_density) of an example's L
// tokens (at least 1, at most L - 1) fall in round(noise / mean_span) spans (at least 1); the noise
// and the kept tokens are each cut into that many non-empty segments at random and interleaved,
// kept first. The input replaces noise span k by sentinel k; the target is sentinel k before noise
// span k, for every k; both end with </s>. Rounding is numpy's (half to even).
// What zero-shot Taylor scores of a T5 read (compress/structure_scores.h): no labels needed.
#pragma once
#include <cstdint>
#include <vector>

namespace sculpt::data {

// true = noise; deterministic in SEED.
std::vector<bool> random_spans_noise_mask(int64_t length, double noise_density, double mean_span, uint64_t seed);

struct SpanCorruption {
  std::vector<int64_t> inputs, targets;
};

// IDS: the example's tokens without its final </s>. Sentinel k is FIRST_SENTINEL - k
// (<extra_id_0> is the highest of them in every T5 vocabulary).
SpanCorruption span_corrupt(const std::vector<int64_t>& ids, int64_t first_sentinel, int64_t eos, uint64_t seed,
                            double noise_density = 0.15, double mean_span = 3.0);

}  // namespace sculpt::data
