#include "sculpt/train/distributed.h"

#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <torch/csrc/distributed/c10d/NCCLUtils.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/torch.h>

#include <algorithm>
#include <functional>

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

struct GradReducer::Bucket {
  std::vector<size_t> params;  // indices into params_
  size_t pending = 0;          // gradients still to come in the armed backward
  std::vector<torch::Tensor> sent;  // what the flat sum is written back to
  torch::Tensor flat;
  c10::intrusive_ptr<c10d::Work> work;
};

namespace {
struct ReadyHook final : torch::autograd::PostAccumulateGradHook {
  explicit ReadyHook(std::function<void()> f) : on_ready(std::move(f)) {}
  void operator()(const torch::autograd::Variable& /*param*/) override { on_ready(); }
  std::function<void()> on_ready;
};
}  // namespace

GradReducer::GradReducer(Distributed& dist, std::vector<torch::Tensor> params, double bucket_mb)
    : dist_(dist) {
  if (!dist_.impl_) return;
  for (auto& p : params)  // a tied weight reached through two modules is summed once
    if (std::none_of(params_.begin(), params_.end(), [&](const torch::Tensor& q) { return q.is_same(p); })) params_.push_back(p);
  const auto cap = static_cast<int64_t>(bucket_mb * 1024 * 1024);
  int64_t bytes = 0;
  for (size_t i = params_.size(); i-- > 0;) {
    const auto& p = params_[i];
    const bool new_dtype = !buckets_.empty() && params_[buckets_.back()->params.front()].scalar_type() != p.scalar_type();
    if (buckets_.empty() || bytes >= cap || new_dtype) {
      buckets_.push_back(std::make_unique<Bucket>());
      bytes = 0;
    }
    buckets_.back()->params.push_back(i);
    bytes += p.numel() * static_cast<int64_t>(p.element_size());
    const size_t b = buckets_.size() - 1;
    torch::autograd::impl::set_post_acc_grad_hooks(p, std::make_unique<ReadyHook>([this, b] { on_gradient(b); }));
  }
  for (auto& b : buckets_) b->pending = b->params.size();
}

GradReducer::~GradReducer() {
  for (const auto& b : buckets_)
    for (size_t i : b->params) torch::autograd::impl::set_post_acc_grad_hooks(params_[i], nullptr);
}

void GradReducer::arm() { armed_ = dist_.impl_ != nullptr; }

void GradReducer::on_gradient(size_t bucket) {
  if (!armed_) return;
  --buckets_[bucket]->pending;
  // In order, and never the last bucket (the extras join it in finish()).
  while (next_ + 1 < buckets_.size() && buckets_[next_]->pending == 0) launch(*buckets_[next_++], {});
}

void GradReducer::launch(Bucket& b, const std::vector<torch::Tensor>& extras) {
  torch::NoGradGuard no_grad;
  b.sent.clear();
  std::vector<torch::Tensor> flat_views;
  for (size_t i : b.params) {
    auto& p = params_[i];
    if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
    b.sent.push_back(p.grad());
    flat_views.push_back(p.grad().reshape(-1));
  }
  for (const auto& e : extras) {
    b.sent.push_back(e);
    flat_views.push_back(e.reshape(-1).to(b.params.empty() ? e.scalar_type() : params_[b.params[0]].scalar_type()));
  }
  std::vector<torch::Tensor> flat = {torch::cat(flat_views)};
  b.work = dist_.impl_->group->allreduce(flat);
  b.flat = flat[0];
}

void GradReducer::finish(const std::vector<torch::Tensor>& extras) {
  if (!dist_.impl_) return;
  launched_in_backward_ = next_;  // the hooks launched buckets [0, next_)
  // An empty model (no trainable parameter) still sums the extras.
  if (buckets_.empty()) buckets_.push_back(std::make_unique<Bucket>());
  while (next_ < buckets_.size()) {
    const bool last = next_ + 1 == buckets_.size();
    launch(*buckets_[next_++], last ? extras : std::vector<torch::Tensor>{});
  }
  torch::NoGradGuard no_grad;
  for (auto& b : buckets_) {
    b->work->wait();
    int64_t offset = 0;
    for (auto& t : b->sent) {
      t.copy_(b->flat.narrow(0, offset, t.numel()).view_as(t));
      offset += t.numel();
    }
    b->pending = b->params.size();
    b->work.reset();
    b->sent.clear();
    b->flat = torch::Tensor();
  }
  next_ = 0;
  armed_ = false;
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
