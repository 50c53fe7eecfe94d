#include "sculpt/train/distributed.h"

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/torch.h>

#include "sculpt/core/error.h"
#include "sculpt/core/log.h"

namespace sculpt::train {

struct Distributed::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group;
};

Distributed::Distributed(const DistEnv& env) : env_(env) {
  if (!env.distributed()) return;
  impl_ = std::make_unique<Impl>();
  c10d::TCPStoreOptions options;
  options.port = static_cast<uint16_t>(env.master_port);
  options.isServer = env.rank == 0;
  options.numWorkers = static_cast<size_t>(env.world_size);
  options.timeout = std::chrono::milliseconds(300000);
  try {
    impl_->store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, options);
    auto gloo = c10d::ProcessGroupGloo::Options::create();
    gloo->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    impl_->group = c10::make_intrusive<c10d::ProcessGroupGloo>(impl_->store, env.rank, env.world_size, gloo);
  } catch (const c10::Error& e) {
    fail("cannot join the process group at {}:{} as rank {} of {} ({})", env.master_addr, env.master_port, env.rank,
         env.world_size, e.what_without_backtrace());
  }
  LOG_INFO("[dist] rank {} of {} ({}), Gloo over {}:{}", env.rank, env.world_size, env.launcher, env.master_addr, env.master_port);
}

Distributed::~Distributed() = default;

Distributed& process_group() {
  static Distributed group(read_dist_env());
  return group;
}

void Distributed::all_reduce_gradients(const std::vector<torch::Tensor>& params, double bucket_mb) {
  if (!impl_) return;
  torch::NoGradGuard no_grad;
  const int64_t bucket_elems = static_cast<int64_t>(bucket_mb * 1024 * 1024 / 4);
  std::vector<torch::Tensor> pending;
  int64_t pending_elems = 0;
  auto flush = [&] {
    if (pending.empty()) return;
    std::vector<torch::Tensor> flat_views;
    for (auto& g : pending) flat_views.push_back(g.reshape(-1));
    std::vector<torch::Tensor> flat = {torch::cat(flat_views)};
    impl_->group->allreduce(flat)->wait();
    int64_t offset = 0;
    for (auto& g : pending) {
      g.copy_(flat[0].narrow(0, offset, g.numel()).view_as(g));
      offset += g.numel();
    }
    pending.clear();
    pending_elems = 0;
  };
  for (const auto& p : params) {
    // A rank whose slice did not touch a parameter still takes part, with zeros.
    if (!p.grad().defined()) const_cast<torch::Tensor&>(p).mutable_grad() = torch::zeros_like(p);
    pending.push_back(p.grad());
    pending_elems += p.numel();
    if (pending_elems >= bucket_elems) flush();
  }
  flush();
}

torch::Tensor Distributed::all_reduce_sum(const torch::Tensor& t) {
  if (!impl_) return t;
  std::vector<torch::Tensor> v = {t.detach().clone()};
  impl_->group->allreduce(v)->wait();
  return v[0];
}

void Distributed::broadcast(const std::vector<torch::Tensor>& tensors) {
  if (!impl_) return;
  torch::NoGradGuard no_grad;
  for (const auto& t : tensors) {
    std::vector<torch::Tensor> v = {t.detach()};
    impl_->group->broadcast(v)->wait();
  }
}

void Distributed::barrier() {
  if (impl_) impl_->group->barrier()->wait();
}

std::vector<size_t> rank_slice(const std::vector<size_t>& batch, int rank, int world) {
  const size_t n = batch.size(), w = static_cast<size_t>(world), r = static_cast<size_t>(rank);
  const size_t begin = n * r / w, end = n * (r + 1) / w;
  return std::vector<size_t>(batch.begin() + static_cast<std::ptrdiff_t>(begin), batch.begin() + static_cast<std::ptrdiff_t>(end));
}

}  // namespace sculpt::train
