// Process-wide settings read from the environment.
#pragma once
#include <string>

namespace sculpt {

// The shared data/fixture folder: $SCULPT_SHARED, else ../shared beside the source
// checkout (compiled in), else ../shared from the working directory. Empty if none exists.
std::string shared_dir();

// ATen starts with one thread on some systems: use every core unless
// SCULPT_NUM_THREADS or OMP_NUM_THREADS says otherwise.
void init_threads();

// Expand "${SCULPT_SHARED}" and "${SCULPT_DATA}" in a path.
std::string expand_path(const std::string& path);

}  // namespace sculpt
