#include "sculpt/core/parallel.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace sculpt {

void parallel_chunks(size_t n, size_t chunk, int threads, const std::function<void(size_t, size_t)>& work,
                     const std::function<void(size_t)>& progress) {
  using Clock = std::chrono::steady_clock;
  chunk = std::max<size_t>(chunk, 1);
  const size_t chunks = (n + chunk - 1) / chunk;
  const size_t workers = std::min<size_t>(chunks, static_cast<size_t>(threads > 0 ? threads : at::get_num_threads()));
  if (workers <= 1) {  // on the calling thread, still reporting progress (a 1-thread sweep cell shows its bar)
    auto last = Clock::now();
    for (size_t c = 0; c < chunks; ++c) {
      work(c * chunk, std::min(n, (c + 1) * chunk));
      if (progress && Clock::now() - last > std::chrono::milliseconds(200)) progress(std::min(n, (c + 1) * chunk)), last = Clock::now();
    }
    if (progress) progress(n);
    return;
  }
  std::atomic<size_t> next{0}, done{0};
  std::mutex mutex;
  std::condition_variable finished;
  size_t running = workers;
  std::exception_ptr error;
  auto loop = [&] {
    for (size_t c; (c = next.fetch_add(1)) < chunks;) {
      const size_t begin = c * chunk, end = std::min(n, begin + chunk);
      try {
        work(begin, end);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex);
        if (!error) error = std::current_exception();
        next.store(chunks);  // the others stop after their current chunk
      }
      done.fetch_add(end - begin);
    }
    std::lock_guard<std::mutex> lock(mutex);
    if (--running == 0) finished.notify_all();
  };
  std::vector<std::thread> pool;
  for (size_t i = 0; i < workers; ++i) pool.emplace_back(loop);
  {
    std::unique_lock<std::mutex> lock(mutex);
    while (!finished.wait_for(lock, std::chrono::milliseconds(200), [&] { return running == 0; }))
      if (progress) {
        lock.unlock();
        progress(done.load());
        lock.lock();
      }
  }
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
  if (progress) progress(done.load());
}

}  // namespace sculpt
