// sculpt bench train: throughput of one fine-tuning step (forward, backward, AdamW) for a
// model shape, batch and length, with a same-run baseline: a plain matmul's FLOP rate on the
// same device, so the printed ratio says how much of the machine the step uses.
#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "args.h"
#include "commands.h"
#include "sculpt/io/hf_dir.h"
#include "sculpt/io/model_dir.h"
#include "sculpt/models/any_bert.h"
#include "sculpt/models/bert.h"
#include "sculpt/models/config_check.h"
#include "sculpt/models/hf_model.h"
#include "sculpt/models/opt.h"
#include "sculpt/models/packed_bert.h"
#include "sculpt/models/t5.h"
#include "sculpt/train/evaluate.h"
#include "sculpt/train/precision.h"
#include "sculpt/train/optim.h"
#include "sculpt/train/timing.h"

namespace fs = std::filesystem;

namespace sculpt::cli {
namespace {

using Clock = std::chrono::steady_clock;

nlohmann::json preset(const std::string& name) {
  if (name == "bert-base")
    return {{"hidden_size", 768}, {"num_hidden_layers", 12}, {"num_attention_heads", 12}, {"intermediate_size", 3072}};
  if (name == "quickstart")
    return {{"hidden_size", 128}, {"num_hidden_layers", 2}, {"num_attention_heads", 2}, {"intermediate_size", 512}};
  if (name == "bert-small")
    return {{"hidden_size", 512}, {"num_hidden_layers", 4}, {"num_attention_heads", 8}, {"intermediate_size", 2048}};
  fail("unknown --model preset '{}' (bert-base, bert-small, quickstart) — or pass --config config.json", name);
}

using train::sync;

double matmul_tflops(const torch::Device& device, int64_t n) {
  auto a = torch::randn({n, n}, torch::TensorOptions().device(device)), b = torch::randn({n, n}, a.options());
  torch::mm(a, b);
  sync(device);
  int reps = device.is_cuda() ? 50 : 5;
  auto t0 = Clock::now();
  for (int i = 0; i < reps; ++i) torch::mm(a, b);
  sync(device);
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  return 2.0 * n * n * n * reps / secs / 1e12;
}

}  // namespace

// sculpt bench infer --model A --model B ...: forward latency of each HF BERT directory on the
// same random batches (128 x 128 and 32 x 512 by default, clamped to the model's positions),
// speedups against the first model, all measured in this run.
// --synthetic PRESET: a random dense model of that shape and a random packed one with a third
// of the heads and a quarter of the FFN neurons in every layer (CoFi-style: full hidden width,
// diagonal residual maps), so dense-vs-packed speed can be measured where no checkpoint is.
std::vector<models::AnyBert> synthetic_pair(const std::string& name, std::vector<std::string>& labels) {
  nlohmann::json j = preset(name);
  j["model_type"] = "bert";
  auto c = models::bert_config_from_json(j);
  c.num_labels = 2;
  torch::manual_seed(0);
  models::Bert dense(c);
  dense->init_weights();
  models::PackedBertConfig pc;
  pc.base = c;
  pc.embedding_dim = c.hidden_size;
  pc.diagonal_residual = pc.norm_over_kept = true;
  for (int64_t l = 0; l < c.num_layers; ++l)
    pc.layers.push_back({c.hidden_size, c.hidden_size, std::max<int64_t>(1, c.num_heads / 3), c.head_dim(), c.head_dim(),
                         c.intermediate_size / 4});
  models::PackedBert packed(pc);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : packed->named_parameters()) {
      const auto& k = p.key();
      // Norm scales and diagonal residual maps start at 1 (layers.i.ln1.weight, layers.i.r1.weight, ln0_w).
      const bool weight = k.size() > 7 && k.substr(k.size() - 7) == ".weight";
      const bool scale = k == "ln0_w" || (weight && (k.find(".ln") != std::string::npos || k.find(".r1.") != std::string::npos ||
                                                     k.find(".r2.") != std::string::npos));
      if (scale) p.value().fill_(1.0);
      else p.value().normal_(0.0, 0.02);
    }
  }
  std::vector<models::AnyBert> out(2);
  out[0].module = dense.ptr();
  out[0].forward = [dense](const models::Batch& b, const models::ForwardOptions& o) mutable { return dense->forward(b, o); };
  out[0].config = c;
  out[1].module = packed.ptr();
  out[1].forward = [packed](const models::Batch& b, const models::ForwardOptions& o) mutable { return packed->forward(b, o); };
  out[1].config = c;
  out[1].packed = true;
  labels = {"dense " + name + " (random)", fmt::format("packed (random: {}/{} heads, 1/4 FFN)", pc.layers[0].heads, c.num_heads)};
  return out;
}

// A model directory behind AnyBert's forward: BERT (dense or packed) as it is; OPT and T5 (HF's,
// rotated and sliced by `sculpt compress --method slice`, or packed by pruning) through their own
// forward, T5's decoder reading the inputs shifted right (one teacher-forced pass). GENERATE > 0:
// instead, greedy generation of that many new tokens from the batch as prompts, through the key/value
// cache, eos ignored so that every model generates as many.
models::AnyBert load_bench_model(const std::string& dir, int64_t generate) {
  const std::string path = (fs::path(dir) / "config.json").string();
  const auto j = io::read_json(path);
  const std::string type = j.value("model_type", "bert");
  models::AnyBert out;
  out.dir = dir;
  auto logits = [](torch::Tensor ids) {
    models::ModelOutput o;
    o.logits = std::move(ids);
    return o;
  };
  if (type == "opt") {
    auto m = models::load_opt(dir);
    SCULPT_CHECK(generate == 0 || m->config.head == models::HeadType::causal_lm, "--generate: {} is not an OPTForCausalLM", dir);
    m->config.eos_token_id = -1;  // generation never stops early (the bench only)
    out.module = m.ptr(), out.config = m->config;
    out.forward = [m, generate, logits](const models::Batch& b, const models::ForwardOptions&) mutable {
      if (generate > 0) return logits(m->generate(b.input_ids, torch::ones_like(b.input_ids), generate).first);
      return logits(m->forward(b.input_ids, b.attention_mask, torch::Tensor()).logits);
    };
    return out;
  }
  if (type == "t5") {
    auto m = models::load_t5(dir);
    m->config.eos_token_id = -1;
    out.module = m.ptr(), out.config = m->config;
    out.forward = [m, generate, logits](const models::Batch& b, const models::ForwardOptions&) mutable {
      if (generate > 0) return logits(m->generate(b.input_ids, torch::ones_like(b.input_ids), generate).first);
      return logits(m->forward(b.input_ids, b.attention_mask, m->shift_right(b.input_ids), b.attention_mask, torch::Tensor()).logits);
    };
    return out;
  }
  SCULPT_CHECK(generate == 0, "--generate: {} is an encoder ({}), it does not generate", dir, type);
  return models::load_any_bert(dir);
}

int bench_infer(int argc, char** argv) {
  auto args = Args::parse(argc, argv, 3, {"model", "device", "steps", "warmup", "shape", "synthetic", "generate"});
  const int64_t generate = std::stoll(args.get("generate", "0"));  // new tokens per prompt; 0: one forward
  auto dirs = args.all("model");
  SCULPT_CHECK(!dirs.empty() || args.has("synthetic"),
               "usage: sculpt bench infer --model DENSE_DIR [--model PACKED_DIR ...] [--shape 128x128 ...] | --synthetic bert-base");
  auto shapes = args.all("shape");
  if (shapes.empty()) shapes = {"128x128", "32x512"};
  const auto device = train::resolve_device(args.get("device", "auto"));
  const int steps = std::stoi(args.get("steps", "5")), warmup = std::stoi(args.get("warmup", "1"));
  std::vector<models::AnyBert> nets;  // BERT dense or packed, OPT, T5
  if (args.has("synthetic")) nets = synthetic_pair(args.get("synthetic"), dirs);
  else
    for (const auto& d : dirs) {
      io::require_model_dir(d, "--model");
      nets.push_back(load_bench_model(d, generate));
    }
  for (auto& n : nets) {
    n.to(device);
    n.module->eval();
  }
  torch::NoGradGuard no_grad;
  std::printf("bench infer: device %s, threads %d, median of %d round-robin passes after %d warm-up%s\n", device.str().c_str(),
              at::get_num_threads(), steps, warmup,
              generate > 0 ? fmt::format(", greedy generation of {} tokens per prompt (KV cache)", generate).c_str() : "");
  for (const auto& shape : shapes) {
    const auto x = shape.find('x');
    SCULPT_CHECK(x != std::string::npos, "--shape is BATCHxLENGTH, e.g. 128x128");
    const int64_t B = std::stoll(shape.substr(0, x));
    int64_t T = std::stoll(shape.substr(x + 1));
    int64_t V = nets.front().config.vocab_size;
    for (auto& n : nets) T = std::min(T, n.config.max_positions - generate), V = std::min(V, n.config.vocab_size);
    SCULPT_CHECK(T > 0, "--generate {}: no room for a prompt within the models' positions", generate);
    models::Batch batch;
    batch.input_ids = torch::randint(5, V, {B, T}, torch::kLong).to(device);
    const auto medians = train::median_forward_seconds(nets, batch, steps, warmup, device);
    double baseline = 0;
    for (size_t i = 0; i < nets.size(); ++i) {
      const double secs = medians[i];
      if (i == 0) baseline = secs;
      int64_t n_params = 0;
      for (const auto& p : nets[i].module->parameters()) n_params += p.numel();
      if (generate > 0)
        std::printf("  %lldx%lld+%lld  %-40s %10lld params  %9.4f s/batch  %8.1f new tokens/s  speedup %.2fx\n",
                    static_cast<long long>(B), static_cast<long long>(T), static_cast<long long>(generate), dirs[i].c_str(),
                    static_cast<long long>(n_params), secs, static_cast<double>(B * generate) / secs, baseline / secs);
      else
        std::printf("  %lldx%lld  %-40s %10lld params  %9.4f s/batch  %8.1f samples/s  speedup %.2fx\n",
                    static_cast<long long>(B), static_cast<long long>(T), dirs[i].c_str(), static_cast<long long>(n_params), secs,
                    static_cast<double>(B) / secs, baseline / secs);
    }
  }
  return 0;
}

int cmd_bench(int argc, char** argv) {
  if (argc >= 3 && std::string(argv[2]) == "infer") return bench_infer(argc, argv);
  if (argc >= 3 && std::string(argv[2]) == "data") return bench_data(argc, argv);
  SCULPT_CHECK(argc >= 3 && std::string(argv[2]) == "train", "usage: sculpt bench train [--model bert-base] [--config config.json] "
                                                             "[--batch 32] [--seq 128] [--device auto] [--steps 10] [--warmup 3] [--precision fp32|bf16] [--peak-tflops 989]"
                                                             " | sculpt bench infer --model DIR [--model DIR ...] [--generate N] | sculpt bench data [--synthetic 400000 | --task T] [--threads N]");
  auto args = Args::parse(argc, argv, 3, {"model", "config", "batch", "seq", "device", "steps", "warmup", "precision", "peak-tflops",
                                          "layers", "hidden", "heads", "ffn", "profile"},
                          {"forward-only"});
  const std::string precision = args.get("precision", "fp32");
  train::check_precision(precision);
  nlohmann::json j = args.has("config") ? io::read_json(args.get("config")) : preset(args.get("model", "bert-base"));
  j["model_type"] = "bert";
  // Shape flags override the preset (scripts/bench_vs_pytorch.sh passes all four).
  for (const auto& [flag, key] : std::vector<std::pair<std::string, std::string>>{
           {"layers", "num_hidden_layers"}, {"hidden", "hidden_size"}, {"heads", "num_attention_heads"}, {"ffn", "intermediate_size"}})
    if (args.has(flag)) j[key] = std::stoll(args.get(flag));
  // --forward-only: an inference forward (eval mode, no autograd) instead of a training step.
  const bool forward_only = args.has("forward-only");
  auto config = models::bert_config_from_json(j);
  config.num_labels = 2;
  const int64_t B = std::stoll(args.get("batch", "32")), T = std::stoll(args.get("seq", "128"));
  const int steps = std::stoi(args.get("steps", "10")), warmup = std::stoi(args.get("warmup", "3"));
  config.max_positions = std::max(config.max_positions, T);
  const auto device = train::resolve_device(args.get("device", "auto"));

  torch::manual_seed(0);
  models::Bert model(config);
  model->init_weights();
  model->to(device);
  model->train();
  auto optimizer = train::make_adamw(*model, {});
  int64_t n_params = 0, n_embedding = 0;
  for (const auto& p : model->named_parameters()) {
    n_params += p.value().numel();
    if (p.key().rfind("embed.", 0) == 0 && p.key().find("norm") == std::string::npos) n_embedding += p.value().numel();
  }

  models::Batch batch;
  batch.input_ids = torch::randint(5, config.vocab_size, {B, T}, torch::kLong);
  batch.attention_mask = torch::ones({B, T}, torch::kLong);
  batch.token_type_ids = torch::zeros({B, T}, torch::kLong);
  if (!forward_only) batch.labels = torch::randint(0, 2, {B}, torch::kLong);
  batch = batch.to(device);

  if (forward_only) model->eval();
  auto step = [&] {
    if (forward_only) {
      c10::InferenceMode inference;
      train::AutocastGuard autocast(precision, device);
      model->forward(batch);
      return;
    }
    train::clear_grads(*optimizer);
    torch::Tensor loss;
    {
      train::AutocastGuard autocast(precision, device);
      loss = model->forward(batch).loss.to(torch::kFloat);
    }
    loss.backward();
    optimizer->step();
  };
  for (int i = 0; i < warmup; ++i) step();
  sync(device);
  auto t0 = Clock::now();
  {
    // --profile FILE: a Chrome trace of the timed steps (per-op times; slows the steps down).
    std::unique_ptr<torch::autograd::profiler::RecordProfile> profile;
    if (args.has("profile")) profile = std::make_unique<torch::autograd::profiler::RecordProfile>(args.get("profile"));
    for (int i = 0; i < steps; ++i) step();
    sync(device);
  }
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count() / steps;

  // Training FLOPs per token: 6 N + 12 L H d_head T (attention scores and context), with N
  // the non-embedding parameters (a lookup is not a matmul), as MFU is usually counted.
  const double flops_per_token = 6.0 * static_cast<double>(n_params - n_embedding) +
                                 12.0 * static_cast<double>(config.num_layers * config.hidden_size * T);
  const double tflops = (forward_only ? 1.0 / 3.0 : 1.0) * flops_per_token * static_cast<double>(B * T) / secs / 1e12;
  const double peak = matmul_tflops(device, device.is_cuda() ? 8192 : 1024);
  std::printf("bench train%s: device %s, threads %d, %lld layers x %lld hidden, %lld parameters, batch %lld x length %lld, %s\n",
              forward_only ? " (inference forward)" : "", device.str().c_str(), at::get_num_threads(), static_cast<long long>(config.num_layers),
              static_cast<long long>(config.hidden_size), static_cast<long long>(n_params), static_cast<long long>(B),
              static_cast<long long>(T), precision.c_str());
  std::printf("  step time        %10.4f s\n", secs);
  std::printf("  samples/s        %10.1f\n", static_cast<double>(B) / secs);
  std::printf("  tokens/s         %10.0f\n", static_cast<double>(B * T) / secs);
  std::printf("  model TFLOP/s    %10.4f\n", tflops);
  std::printf("  matmul TFLOP/s   %10.4f  (baseline: fp32 %s GEMM, same run)\n", peak, device.is_cuda() ? "8192^3" : "1024^3");
  std::printf("  ratio step/GEMM  %10.2f\n", tflops / peak);
  // MFU against the device's dense peak for this precision (e.g. 989 for an H100 SXM in bf16).
  if (args.has("peak-tflops")) std::printf("  MFU              %10.1f%%  (of %s TFLOP/s)\n", 100 * tflops / std::stod(args.get("peak-tflops")),
                                           args.get("peak-tflops").c_str());
  return 0;
}

}  // namespace sculpt::cli
