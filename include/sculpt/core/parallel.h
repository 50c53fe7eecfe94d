// Work over [0, n) on plain threads in fixed chunks: each chunk writes only its own indices, so
// the result is the same for any thread count. Used for tokenization, where LibTorch's intra-op
// pool is idle and its OpenMP threads would spin against ours.
#pragma once
#include <cstddef>
#include <functional>

namespace sculpt {

// work(begin, end) for every chunk of `chunk` indices, on `threads` threads (<= 0: LibTorch's
// intra-op thread count). progress(done) runs on the calling thread, about every 200 ms and once
// at the end. The first exception a chunk throws is rethrown here after every thread stopped.
void parallel_chunks(size_t n, size_t chunk, int threads, const std::function<void(size_t, size_t)>& work,
                     const std::function<void(size_t)>& progress = {});

}  // namespace sculpt
