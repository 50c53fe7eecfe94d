#include "sculpt/train/finetune.h"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <functional>
#include <map>
#include <thread>

#include "sculpt/core/error.h"
#include "sculpt/core/log.h"
#include "sculpt/core/machine.h"
#include "sculpt/core/signals.h"
#include "sculpt/data/batching.h"
#include "sculpt/io/files.h"
#include "sculpt/io/hf_dir.h"
#include "sculpt/io/model_dir.h"
#include "sculpt/train/checkpoint.h"
#include "sculpt/train/evaluate.h"
#include "sculpt/train/optim.h"
#include "sculpt/train/prefetch.h"
#include "sculpt/train/precision.h"
#include "sculpt/train/sink.h"
#include "sculpt/train/distributed.h"
#include "sculpt/train/task.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace sculpt::train {

namespace {

// CoFi trains everything but the embeddings (word, position, type and their LayerNorm): by
// HF name, so dense and packed models alike.
void freeze_embeddings(torch::nn::Module& model, const models::KeyMap& keys) {
  int n = 0;
  for (const auto& [name, p] : hf_named_parameters(model, keys))
    if (name.find("embeddings.") != std::string::npos) p.set_requires_grad(false), ++n;
  SCULPT_CHECK(n > 0, "train.freeze_embeddings: this model has no parameter named *embeddings.*");
  LOG_INFO("[run] {} embedding tensors frozen", n);
}

}  // namespace

RunResult run_finetune(const recipe::Recipe& r, bool resume) {
  const std::string run_dir = r.run_dir();
  if (!r.model.path.empty()) io::require_model_dir(r.model.path, "model.path");
  const torch::Device device = resolve_device(r.run.device);
  Distributed& dist = process_group(device);
  log::set_rank(dist.rank());
  const bool main = dist.is_main();
  CheckpointManager checkpoints(run_dir, r.checkpoint.keep_last);
  if (!resume && !checkpoints.list().empty())
    throw Error(fmt::format("{} already holds checkpoints of an earlier run", run_dir),
                fmt::format("continue it with `sculpt resume {}`, or pick another run.name / run.dir", run_dir));
  dist.barrier();  // every rank has looked before rank 0 writes anything
  if (main) {
    fs::create_directories(run_dir);
    if (!resume) io::write_file_atomic((fs::path(run_dir) / "recipe.resolved.yaml").string(), r.resolved_yaml());
  }

  torch::manual_seed(static_cast<uint64_t>(r.run.seed));
  std::unique_ptr<Task> task = make_task(r, device, resume && !checkpoints.list().empty());
  torch::nn::Module& model = task->model();
  model.train();
  if (r.train.freeze_embeddings) freeze_embeddings(model, task->keys());
  dist.broadcast(model.parameters());  // identical starting weights on every rank
  const std::string metric = task->main_metric();
  int64_t n_params = 0;
  for (const auto& p : model.parameters()) n_params += p.numel();

  data::PlanOptions plan_options{static_cast<size_t>(r.data.batch_size), true, r.data.bucket_by_length, false};
  const auto& lengths = task->train_lengths();
  const int64_t batches_per_epoch = static_cast<int64_t>(data::plan_epoch(lengths, plan_options, r.run.seed, 0).size());
  const int64_t accum = r.train.grad_accum;
  const int64_t updates_per_epoch = std::max<int64_t>(1, batches_per_epoch / accum);
  const int64_t total = r.train.duration.updates(updates_per_epoch);
  const int64_t warmup = r.train.warmup.updates(updates_per_epoch, total);
  auto every = [&](const Duration& du) { return std::max<int64_t>(1, du.updates(updates_per_epoch, total)); };
  const int64_t log_every = every(r.logging.every), eval_every = every(r.eval.every), ckpt_every = every(r.checkpoint.every);
  SCULPT_CHECK(r.data.batch_size >= dist.world_size(), "data.batch_size {} is smaller than the world size {}",
               r.data.batch_size, dist.world_size());
  LOG_INFO("[run] {} ({}) on {}: {} parameters, {} updates ({} per epoch, batch {} x accum {} over {} rank(s)), warmup {}, "
           "eval every {}, checkpoint every {}",
           run_dir, task->describe(), device.str(), n_params, total, updates_per_epoch, r.data.batch_size, accum,
           dist.world_size(), warmup, eval_every, ckpt_every);

  OptimizerSetup setup = task->make_optimizer({r.train.lr, r.train.weight_decay, r.train.betas[0], r.train.betas[1], r.train.eps});
  FusedAdamW* optimizer = setup.optimizer.get();
  TrainState state;
  JsonlWriter metrics_log((fs::path(run_dir) / "metrics.jsonl").string()), eval_log((fs::path(run_dir) / "eval.jsonl").string());
  if (resume) {
    auto restored = checkpoints.restore(model, task->keys(), *optimizer, [&task](const io::TensorMap& extras, const std::string& path) {
      task->load_extra_state(extras, path);
    });
    if (restored) state = *restored;
    else LOG_WARN("[ckpt] no readable checkpoint in {}: starting from the beginning", checkpoints.dir());
  }
  if (main) {
    metrics_log.truncate_after(state.step);
    eval_log.truncate_after(state.step);
  }
  dist.barrier();

  install_stop_signal_handlers();
  std::vector<torch::Tensor> params;  // every trainable parameter (all-reduced)
  for (const auto& p : model.parameters())
    if (p.requires_grad()) params.push_back(p);
  const std::vector<torch::Tensor> clipped = task->clipped_parameters();
  GradReducer reducer(dist, params, r.train.grad_bucket_mb);
  const int64_t start_step = state.step;  // the first update of this process reports the buckets

  ProgressBar bar(r.logging.progress_bar, total);
  auto window_start = Clock::now();
  int64_t window_samples = 0, window_tokens = 0;
  auto session_start = Clock::now();
  const double seconds_before = state.train_seconds;
  auto elapsed = [&] { return seconds_before + std::chrono::duration<double>(Clock::now() - session_start).count(); };
  std::map<std::string, double> last_eval;
  int64_t last_saved = resume ? state.step : -1;

  std::function<void()> flush_before_save;  // set below: a checkpoint never holds an unchecked update
  auto save = [&] {
    if (flush_before_save) flush_before_save();
    state.train_seconds = elapsed();
    bar.clear();
    if (main) checkpoints.save(model, task->keys(), *optimizer, state, task->extra_state());
    dist.barrier();
    last_saved = state.step;
  };
  // Export an HF directory atomically: written beside, renamed over.
  auto export_model = [&](const std::string& name) {
    if (!main) return;
    const fs::path dir = fs::path(run_dir) / name, tmp = fs::path(run_dir) / (name + ".tmp");
    fs::remove_all(tmp);
    task->export_to(tmp.string());
    io::fsync_dir(tmp.string());
    fs::remove_all(dir);
    fs::rename(tmp, dir);
  };

  // The plan of each epoch, for the update being consumed and the one being prefetched.
  std::map<int64_t, std::vector<std::vector<size_t>>> plans;
  auto plan_of = [&](int64_t epoch) -> const std::vector<std::vector<size_t>>& {
    auto it = plans.find(epoch);
    if (it == plans.end()) {
      while (plans.size() > 1 && plans.begin()->first < epoch) plans.erase(plans.begin());
      it = plans.emplace(epoch, data::plan_epoch(lengths, plan_options, r.run.seed, epoch)).first;
    }
    return it->second;
  };
  // The global micro-batches of the update at (epoch, batch); moves the cursor past them (a
  // new epoch starts when fewer than `accum` batches are left in this one).
  struct Cursor {
    int64_t epoch, batch;
  };
  auto next_update = [&](Cursor& c) {
    if (c.batch + accum > static_cast<int64_t>(plan_of(c.epoch).size())) ++c.epoch, c.batch = 0;
    const auto& plan = plan_of(c.epoch);
    std::vector<std::vector<size_t>> global(plan.begin() + c.batch, plan.begin() + c.batch + accum);
    c.batch += accum;
    return global;
  };
  auto mine_of = [&](const std::vector<std::vector<size_t>>& global) {
    std::vector<std::vector<size_t>> mine;
    for (const auto& g : global) mine.push_back(rank_slice(g, dist.rank(), dist.world_size()));
    return mine;
  };
  Prefetcher prefetcher([&task](const std::vector<size_t>& idx) { return task->collate(idx); }, device);
  Cursor ahead{state.epoch, state.batch_in_epoch};
  std::vector<std::vector<size_t>> upcoming;
  if (state.step < total) {
    upcoming = next_update(ahead);
    prefetcher.submit(mine_of(upcoming));
  }

  // Per-update values stay on the device and are read at flush points (log, eval, checkpoint,
  // end): the loop itself never waits for the device. The window's loss sum continues from the
  // checkpointed one, so a resumed run adds in the same order and logs the same averages.
  const auto on_device = torch::TensorOptions().device(device).dtype(torch::kDouble);
  torch::Tensor window_loss = torch::full({1}, state.window_loss, on_device);
  torch::Tensor last_grad_norm = torch::zeros({1}, on_device);
  torch::Tensor bad_loss_at = torch::full({1}, -1.0, on_device), bad_norm_at = torch::full({1}, -1.0, on_device);
  double grad_norm = 0;
  std::string bar_status;
  // Reads the device values; a non-finite loss or gradient norm since the last flush stops the
  // run here, before anything after it is evaluated or checkpointed (its step was skipped on
  // the device). Multi-rank: also agrees on the stop flag (a signal that reached any rank).
  int64_t flushed_at = -1;  // log, eval and checkpoint often fall on one update: read once
  auto flush = [&]() {
    if (flushed_at == state.step) return;
    flushed_at = state.step;
    const auto host = torch::cat({window_loss, last_grad_norm, bad_loss_at, bad_norm_at}).to(torch::kCPU);
    const auto h = host.accessor<double, 1>();
    state.window_loss = h[0];
    grad_norm = h[1];
    if (h[2] >= 0 || h[3] >= 0) {
      bar.finish();
      const bool loss_first = h[2] >= 0 && (h[3] < 0 || h[2] <= h[3]);
      fail("non-finite {} at update {}: the run stops here; that update was skipped and nothing from it on was "
           "checkpointed (lower train.lr or check the data)",
           loss_first ? "loss" : "gradient norm", static_cast<int64_t>(loss_first ? h[2] : h[3]));
    }
  };
  flush_before_save = flush;
  auto stop_agreed = [&]() {
    if (dist.world_size() == 1) return stop_requested();
    return dist.all_reduce_sum(torch::tensor({stop_requested() ? 1.0 : 0.0}, torch::kDouble)).to(torch::kCPU).item<double>() > 0;
  };

  while (state.step < total) {
    const std::vector<std::vector<size_t>> global = std::move(upcoming);
    const std::vector<models::Batch> batches = prefetcher.take();
    state.epoch = ahead.epoch, state.batch_in_epoch = ahead.batch;  // consumed through this update
    if (state.step + 1 < total) {
      upcoming = next_update(ahead);
      prefetcher.submit(mine_of(upcoming));  // collated while this update computes
    }
    const double multiplier = r.train.lr_schedule == "constant" ? linear_schedule(std::min(state.step, warmup), warmup, total)
                                                                : linear_schedule(state.step, warmup, total);
    const double lr = r.train.lr * multiplier;  // the model's rate, for the log
    apply_schedule(setup, multiplier);
    task->begin_update(state.step, updates_per_epoch, total);
    clear_grads(*optimizer);
    torch::Tensor loss_sum = torch::zeros({1}, torch::TensorOptions().device(device));
    int64_t samples = 0, tokens = 0;  // of the global batch: every rank knows them
    for (int64_t m = 0; m < accum; ++m) {
      const auto& g = global[static_cast<size_t>(m)];
      samples += static_cast<int64_t>(g.size());
      for (size_t i : g) tokens += task->tokens_of(i);
      const auto& batch = batches[static_cast<size_t>(m)];
      if (!batch.input_ids.defined()) continue;  // this rank's slice is empty
      // Each rank's mean, weighted by its share, sums (over ranks) to the global batch mean.
      const double share = static_cast<double>(batch.size()) / static_cast<double>(g.size());
      torch::Tensor loss;
      {
        AutocastGuard autocast(r.train.precision, device);  // the forward only; backward outside, as PyTorch does
        loss = task->loss(batch).to(torch::kFloat);
      }
      loss = loss * (share / static_cast<double>(accum));
      if (m + 1 == accum) reducer.arm();  // the update's gradients are complete after this backward
      loss.backward();
      loss_sum += loss.detach();
    }
    // The loss rides in the last gradient bucket: one collective per update.
    if (dist.world_size() > 1) {
      reducer.finish({loss_sum});
      if (state.step == start_step)
        LOG_INFO("[dist] gradients in {} buckets of <= {} MiB, {} of them launched during backward", reducer.buckets(),
                 r.train.grad_bucket_mb, reducer.launched_in_backward());
    }
    const torch::Tensor norm = clip_grad_norm(clipped, r.train.max_grad_norm).to(device, torch::kDouble).reshape({1});
    const torch::Tensor loss_d = loss_sum.to(torch::kDouble);
    const torch::Tensor bad_loss = loss_d.isfinite().logical_not(), bad_norm = norm.isfinite().logical_not();
    optimizer->skip_step_if(bad_loss.logical_or(bad_norm));  // on the device, no host read
    task->before_step();
    optimizer->step();
    task->after_step();
    ++state.step;
    bad_loss_at.masked_fill_(bad_loss.logical_and(bad_loss_at < 0), static_cast<double>(state.step));
    bad_norm_at.masked_fill_(bad_norm.logical_and(bad_norm_at < 0), static_cast<double>(state.step));
    window_loss += loss_d;
    last_grad_norm.copy_(norm);
    state.samples += samples;
    state.tokens += tokens;
    window_samples += samples;
    window_tokens += tokens;
    ++state.window_updates;
    bar.update(state.step, bar_status.empty() ? fmt::format("lr {:.2e}", lr) : bar_status);

    if (state.step % log_every == 0 || state.step == total) {
      flush();
      const double secs = std::chrono::duration<double>(Clock::now() - window_start).count();
      bar.clear();
      nlohmann::json rec = {{"step", state.step},
                            {"epoch", static_cast<double>(state.step) / static_cast<double>(updates_per_epoch)},
                            {"loss", state.window_loss / static_cast<double>(state.window_updates)},
                            {"lr", lr},
                            {"grad_norm", grad_norm},
                            {"samples_per_s", secs > 0 ? static_cast<double>(window_samples) / secs : 0.0},
                            {"tokens_per_s", secs > 0 ? static_cast<double>(window_tokens) / secs : 0.0},
                            {"elapsed_s", elapsed()}};
      const nlohmann::json extra = task->log_fields();
      for (const auto& [k, v] : extra.items()) rec[k] = v;
      if (main) metrics_log.write(rec);
      LOG_INFO("Ep. {:.2f} : Up. {} : loss {:.4f} : gNorm {:.3f} : L.r. {:.3e} : {:.0f} samples/s{}",
               rec["epoch"].get<double>(), state.step, rec["loss"].get<double>(), grad_norm, lr, rec["samples_per_s"].get<double>(),
               task->log_line(extra));
      bar_status = fmt::format("loss {:.4f} lr {:.2e}", rec["loss"].get<double>(), lr);
      state.window_loss = 0;
      state.window_updates = 0;
      window_loss.zero_();
      window_samples = 0;
      window_tokens = 0;
      window_start = Clock::now();
    }
    if (state.step % eval_every == 0 || state.step == total) {
      flush();
      auto t0 = Clock::now();
      last_eval = task->evaluate();
      model.train();
      nlohmann::json rec = {{"step", state.step},
                            {"epoch", static_cast<double>(state.step) / static_cast<double>(updates_per_epoch)},
                            {"eval_seconds", std::chrono::duration<double>(Clock::now() - t0).count()}};
      for (const auto& [k, v] : last_eval) rec[k] = v;
      SCULPT_CHECK(last_eval.count(metric), "eval.metric '{}' is not among the reported metrics", metric);
      const double value = last_eval[metric];
      const bool improved = !std::isnan(value) && (state.best_step < 0 || (task->higher_is_better() ? value > state.best_metric : value < state.best_metric));
      const bool best = improved && task->eligible_for_best(last_eval);
      if (best) {
        state.best_metric = last_eval[metric];
        state.best_step = state.step;
        export_model("best");
      }
      rec["best"] = best;
      if (main) eval_log.write(rec);
      bar.clear();
      LOG_INFO("[eval] Up. {} : {} {:.4f}{}", state.step, metric, last_eval[metric],
               best ? " : new best" : state.best_step < 0 ? std::string(" : no best yet") : fmt::format(" : best {:.4f} at {}", state.best_metric, state.best_step));
    }
    if (state.step % ckpt_every == 0 || state.step == total) save();
    // One process checks its signal flag every update (a host flag, no device sync); several
    // agree on it at their flush points, so that all stop after the same update.
    const bool at_flush = state.step % log_every == 0 || state.step % eval_every == 0 || state.step % ckpt_every == 0;
    if ((dist.world_size() == 1 || at_flush) && stop_agreed()) {
      if (last_saved != state.step) save();
      bar.finish();
      LOG_WARN("[run] stopped by signal {} after update {}; resume with `sculpt resume {}`", stop_signal(), state.step, run_dir);
      throw StopRequested{stop_signal()};
    }
    if (r.debug.crash_after_step > 0 && state.step == r.debug.crash_after_step) std::raise(SIGKILL);
    if (r.debug.step_delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(r.debug.step_delay_ms));
  }
  bar.finish();
  if (last_eval.empty()) {
    last_eval = task->evaluate();
    model.train();
  }
  export_model("final");

  RunResult result{state.step, last_eval, state.best_metric, state.best_step, elapsed()};
  nlohmann::json results = {{"task", r.data.task},          {"family", r.model.family},
                            {"metric", metric},             {"best", {{"step", state.best_step}, {"value", state.best_metric}}},
                            {"final", last_eval},           {"updates", state.step},
                            {"train_seconds", result.train_seconds}, {"parameters", n_params},
                            {"device", describe_device(device)},
                            {"best_model", (fs::path(run_dir) / "best").string()}};
  if (main) io::write_file_atomic((fs::path(run_dir) / "results.json").string(), results.dump(2) + "\n");
  dist.barrier();
  LOG_INFO("[run] done: {} updates in {:.1f}s; {}; results in {}/results.json", state.step, result.train_seconds,
           state.best_step < 0 ? std::string("no evaluation was eligible for best")
                               : fmt::format("best {} {:.4f} at update {}", metric, state.best_metric, state.best_step),
           run_dir);
  return result;
}

}  // namespace sculpt::train
