#include "sculpt/train/checkpoint.h"

#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <mutex>

#include "sculpt/core/error.h"
#include "sculpt/core/log.h"
#include "sculpt/io/files.h"
#include "sculpt/io/hf_dir.h"

namespace fs = std::filesystem;

namespace sculpt::train {

io::TensorMap rng_state() {
  io::TensorMap out;
  out["cpu"] = at::detail::getDefaultCPUGenerator().get_state();
  if (torch::cuda::is_available()) {
    for (int64_t i = 0; i < static_cast<int64_t>(torch::cuda::device_count()); ++i)
      out["cuda." + std::to_string(i)] =
          at::globalContext().defaultGenerator(at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(i))).get_state();
  }
  return out;
}

void set_rng_state(const io::TensorMap& state) {
  for (const auto& [key, value] : state) {
    if (key == "cpu") {
      at::Generator gen = at::detail::getDefaultCPUGenerator();  // a handle: copies share the state
      std::lock_guard<std::mutex> lock(gen.mutex());
      gen.set_state(value);
    } else if (key.rfind("cuda.", 0) == 0 && torch::cuda::is_available()) {
      auto index = static_cast<c10::DeviceIndex>(std::stoi(key.substr(5)));
      if (index >= static_cast<c10::DeviceIndex>(torch::cuda::device_count())) continue;
      {
        at::Generator gen = at::globalContext().defaultGenerator(at::Device(at::kCUDA, index));
        std::lock_guard<std::mutex> lock(gen.mutex());
        gen.set_state(value);
      }
    }
  }
}

CheckpointManager::CheckpointManager(std::string run_dir, int64_t keep_last)
    : dir_((fs::path(run_dir) / "checkpoints").string()), keep_last_(keep_last) {}

std::vector<std::string> CheckpointManager::list() const {
  std::vector<std::string> out;
  if (!fs::exists(dir_)) return out;
  for (const auto& entry : fs::directory_iterator(dir_)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_directory() && name.rfind("step_", 0) == 0 && name.find(".tmp") == std::string::npos)
      out.push_back(entry.path().string());
  }
  std::sort(out.begin(), out.end());  // zero-padded step numbers sort in order
  return out;
}

void CheckpointManager::save(torch::nn::Module& model, const models::KeyMap& keys, torch::optim::Optimizer& optimizer,
                             const TrainState& state, const io::TensorMap& extras) {
  fs::create_directories(dir_);
  const std::string name = fmt::format("step_{:08d}", state.step);
  const fs::path final_dir = fs::path(dir_) / name, tmp = fs::path(dir_) / (name + ".tmp");
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  io::write_safetensors((tmp / "model.safetensors").string(), models::export_state(model, keys), {{"format", "pt"}});
  torch::save(optimizer, (tmp / "optimizer.pt").string());
  io::write_safetensors((tmp / "rng.safetensors").string(), rng_state());
  if (!extras.empty()) io::write_safetensors((tmp / "task_state.safetensors").string(), extras);
  io::write_file_atomic((tmp / "state.json").string(), state.to_json().dump(2) + "\n");
  io::fsync_dir(tmp.string());
  fs::remove_all(final_dir);
  fs::rename(tmp, final_dir);
  io::write_file_atomic((fs::path(dir_) / "latest").string(), name + "\n");
  auto all = list();
  for (size_t i = 0; i + static_cast<size_t>(keep_last_) < all.size(); ++i) fs::remove_all(all[i]);
  LOG_INFO("[ckpt] saved {} (step {})", final_dir.string(), state.step);
}

TrainState CheckpointManager::restore_from(const std::string& path, torch::nn::Module& model, const models::KeyMap& keys,
                                           torch::optim::Optimizer& optimizer, const ExtrasLoader& load_extras) {
  auto state = TrainState::from_json(io::read_json(path + "/state.json"), path + "/state.json");
  auto weights = io::read_safetensors(path + "/model.safetensors").tensors;
  auto report = models::load_state(model, keys, weights);
  SCULPT_CHECK(report.missing.empty() && report.unexpected.empty(), "{}", report.describe(path + "/model.safetensors"));
  try {
    torch::load(optimizer, path + "/optimizer.pt");
  } catch (const c10::Error& e) {
    fail("{}/optimizer.pt: cannot load ({})", path, e.what_without_backtrace());
  }
  if (load_extras) {
    const std::string extras = path + "/task_state.safetensors";
    load_extras(fs::exists(extras) ? io::read_safetensors(extras).tensors : io::TensorMap{}, extras);
  }
  set_rng_state(io::read_safetensors(path + "/rng.safetensors").tensors);
  return state;
}

std::optional<TrainState> CheckpointManager::restore(torch::nn::Module& model, const models::KeyMap& keys,
                                                     torch::optim::Optimizer& optimizer, const ExtrasLoader& load_extras) {
  auto all = list();
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    try {
      auto state = restore_from(*it, model, keys, optimizer, load_extras);
      LOG_INFO("[ckpt] resumed from {} (step {})", *it, state.step);
      return state;
    } catch (const Error& e) {
      LOG_WARN("[ckpt] skipping unreadable checkpoint: {}", e.what());
    }
  }
  return std::nullopt;
}

}  // namespace sculpt::train
