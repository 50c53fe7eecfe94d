#include "sculpt/train/distributed.h"

#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <torch/csrc/distributed/c10d/NCCLUtils.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/torch.h>

#include "sculpt/core/error.h"
#include "sculpt/core/log.h"

namespace sculpt::train {

struct Distributed::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> group;
};

Distributed::Distributed(const DistEnv& env, const torch::Device& device) : env_(env), device_(device) {
  if (!env.distributed()) return;
  impl_ = std::make_unique<Impl>();
  c10d::TCPStoreOptions options;
  options.port = static_cast<uint16_t>(env.master_port);
  options.isServer = env.rank == 0;
  options.numWorkers = static_cast<size_t>(env.world_size);
  options.timeout = std::chrono::milliseconds(300000);
  const char* backend = device.is_cuda() ? "NCCL" : "Gloo";
  try {
    impl_->store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, options);
    if (device.is_cuda()) {
      // NCCL picks the current device for its communicator: bind it first.
      c10::impl::getDeviceGuardImpl(c10::DeviceType::CUDA)->setDevice(device);
      impl_->group = c10::make_intrusive<c10d::ProcessGroupNCCL>(impl_->store, env.rank, env.world_size);
    } else {
      auto gloo = c10d::ProcessGroupGloo::Options::create();
      gloo->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      impl_->group = c10::make_intrusive<c10d::ProcessGroupGloo>(impl_->store, env.rank, env.world_size, gloo);
    }
  } catch (const c10::Error& e) {
    fail("cannot join the {} process group at {}:{} as rank {} of {} ({})", backend, env.master_addr, env.master_port,
         env.rank, env.world_size, e.what_without_backtrace());
  }
  LOG_INFO("[dist] rank {} of {} ({}, local rank {}), {} over {}:{} on {}", env.rank, env.world_size, env.launcher,
           env.local_rank, backend, env.master_addr, env.master_port, device.str());
}

Distributed::~Distributed() = default;

Distributed& process_group(const torch::Device& device) {
  static Distributed group(read_dist_env(), device);
  SCULPT_CHECK(group.device().type() == device.type(), "this process joined its group for {} and cannot run on {}",
               group.device().str(), device.str());
  return group;
}

void Distributed::all_reduce_gradients(const std::vector<torch::Tensor>& params, const std::vector<torch::Tensor>& extras,
                                       double bucket_mb) {
  if (!impl_) return;
  torch::NoGradGuard no_grad;
  const int64_t bucket_bytes = static_cast<int64_t>(bucket_mb * 1024 * 1024);
  struct Bucket {
    std::vector<torch::Tensor> grads;
    torch::Tensor flat;
    c10::intrusive_ptr<c10d::Work> work;
  };
  std::vector<Bucket> buckets(1);
  int64_t bytes = 0;
  // Every bucket is launched before any is waited on, so transfers queue back to back.
  auto launch = [&](Bucket& b) {
    std::vector<torch::Tensor> flat_views;
    for (auto& g : b.grads) flat_views.push_back(g.reshape(-1));
    std::vector<torch::Tensor> flat = {torch::cat(flat_views)};
    b.work = impl_->group->allreduce(flat);
    b.flat = flat[0];
  };
  for (const auto& p : params) {
    // A rank whose slice did not touch a parameter still takes part, with zeros.
    if (!p.grad().defined()) const_cast<torch::Tensor&>(p).mutable_grad() = torch::zeros_like(p);
    // One dtype per bucket (cat needs it; bf16 gradients travel as bf16).
    if (!buckets.back().grads.empty() && (bytes >= bucket_bytes || buckets.back().grads[0].scalar_type() != p.grad().scalar_type())) {
      launch(buckets.back());
      buckets.emplace_back();
      bytes = 0;
    }
    buckets.back().grads.push_back(p.grad());
    bytes += p.grad().numel() * static_cast<int64_t>(p.grad().element_size());
  }
  for (const auto& e : extras) {
    if (!buckets.back().grads.empty() && buckets.back().grads[0].scalar_type() != e.scalar_type()) {
      launch(buckets.back());
      buckets.emplace_back();
    }
    buckets.back().grads.push_back(e);
  }
  if (!buckets.back().grads.empty()) launch(buckets.back());
  for (auto& b : buckets) {
    if (!b.work) continue;
    b.work->wait();
    int64_t offset = 0;
    for (auto& g : b.grads) {
      g.copy_(b.flat.narrow(0, offset, g.numel()).view_as(g));
      offset += g.numel();
    }
  }
}

torch::Tensor Distributed::all_reduce_sum(const torch::Tensor& t) {
  if (!impl_) return t;
  std::vector<torch::Tensor> v = {t.detach().to(device_).clone()};
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

std::string nccl_version() { return c10d::getNcclVersion(); }

}  // namespace sculpt::train
