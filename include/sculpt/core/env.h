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

// libgomp's idle threads spin about 300,000 times before they sleep. With more busy threads than
// free cores (a sweep cell or another job beside this process) that spin took half the cycles:
// `sculpt eval --task squad` on 2,000 questions beside a 1-thread sweep cell, 2 cores: 19.8 s,
// 13.5 s with GOMP_SPINCOUNT=30000; alone, 10.7-11.1 s either way. libgomp reads it only when it
// loads, so a process started with neither GOMP_SPINCOUNT nor OMP_WAIT_POLICY set executes itself
// again, once, with GOMP_SPINCOUNT=30000 (about 0.4 s, so only the long verbs call this). Returns
// when nothing was to be done or the exec failed.
void reexec_with_short_openmp_spin(char** argv);

// glibc returns every freed block of more than ~128 KiB (an activation, a gradient) to the
// kernel, so each forward maps and faults in its tensors again: a 4-layer, 256-wide inference
// forward at 32x128 took 532k page faults and 6.7 s of CPU for 12 passes, 139k and 5.6 s with
// blocks up to 32 MiB (glibc's ceiling) kept in the heap and up to 1 GiB of free heap kept.
// Called first thing in main, before large allocations; MALLOC_MMAP_THRESHOLD_,
// MALLOC_TRIM_THRESHOLD_ or GLIBC_TUNABLES in the environment leave glibc's settings alone.
// Returns whether it set them.
bool keep_freed_memory();
// The environment variable that leaves glibc's malloc settings to the user, or null.
const char* malloc_settings_from_env();

// Expand "${SCULPT_SHARED}" and "${SCULPT_DATA}" in a path.
std::string expand_path(const std::string& path);

}  // namespace sculpt
