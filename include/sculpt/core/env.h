// Process-wide settings read from the environment.
#pragma once
#include <string>

namespace sculpt {

// The shared data/fixture folder: $SCULPT_SHARED, else ../shared beside the source
// checkout (compiled in), else ../shared from the working directory. Empty if none exists.
std::string shared_dir();

// ATen's intra-op threads for this process: every core of a single-process run, the node's
// cores shared among its ranks otherwise (threads_for_rank in dist_env.h).
void init_threads();

// Expand "${SCULPT_SHARED}" and "${SCULPT_DATA}" in a path.
std::string expand_path(const std::string& path);

}  // namespace sculpt
