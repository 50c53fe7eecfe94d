// sculpt compress: the one-shot compressors (compress/one_shot.h, compress/kmeans.h) from a dense
// BERT directory (slice: also a pre-LN OPT or a T5, compress/rotate.h) to a model directory every verb
// loads, with compression.json beside it.
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <numeric>

#include "args.h"
#include "commands.h"
#include "sculpt/compress/kmeans_model.h"
#include "sculpt/compress/one_shot.h"
#include "sculpt/compress/one_shot_decoder.h"
#include "sculpt/compress/pack_decoder.h"
#include "sculpt/compress/prune_report.h"
#include "sculpt/compress/rotate.h"
#include "sculpt/compress/quantize.h"
#include "sculpt/core/env.h"
#include "sculpt/core/log.h"
#include "sculpt/data/batching.h"
#include "sculpt/data/glue.h"
#include "sculpt/data/mlm_masking.h"
#include "sculpt/data/span_corruption.h"
#include "sculpt/io/files.h"
#include "sculpt/io/hf_dir.h"
#include "sculpt/io/int8_weights.h"
#include "sculpt/io/model_dir.h"
#include "sculpt/models/any_bert.h"
#include "sculpt/models/config_check.h"
#include "sculpt/models/hf_model.h"
#include "sculpt/models/packed_bert.h"
#include "sculpt/train/bert_classifier.h"
#include "sculpt/train/evaluate.h"
#include "sculpt/train/glue_data.h"
#include "sculpt/train/select_weights.h"
#include "sculpt/train/sink.h"

namespace fs = std::filesystem;

namespace sculpt::cli {
namespace {

struct Sample {
  std::vector<data::Example> examples;
  std::string from;
};

// `--examples` rows drawn (seeded) from the task's train split, or the first non-empty lines of
// `--text` as single sentences (unlabelled).
Sample read_sample(const Args& args, const tokenizers::Tokenizer& tokenizer, int64_t max_positions, bool labelled) {
  const auto n = static_cast<size_t>(std::stoll(args.get("examples", "256")));
  // Never longer than the model's positions (a small model may have fewer than 128).
  const int64_t max_length = std::min<int64_t>(std::stoll(args.get("max-length", "128")), max_positions);
  std::vector<data::GlueExample> rows;
  Sample s;
  if (args.has("text")) {
    SCULPT_CHECK(!labelled, "--text is unlabelled; this method needs --task's labelled train examples");
    const std::string path = args.get("text");
    std::ifstream in(path);
    SCULPT_CHECK(in.good(), "--text {}: cannot open", path);
    std::string line;
    for (size_t number = 1; rows.size() < n && std::getline(in, line); ++number)
      if (line.find_first_not_of(" \t\r") != std::string::npos) rows.push_back({line, std::nullopt, -1, number});
    SCULPT_CHECK(!rows.empty(), "--text {}: no non-empty line", path);
    s.from = fmt::format("the first {} lines of {}", rows.size(), path);
  } else {
    SCULPT_CHECK(args.has("task"), "this method reads examples: give --task T (its train split) or --text FILE");
    const auto& task = data::glue_task(args.get("task"));
    auto all = data::read_glue_split(task, expand_path(args.get("data", "${SCULPT_DATA}/glue")), "train");
    std::vector<size_t> order(all.size());
    std::iota(order.begin(), order.end(), 0);
    data::shuffle_indices(order, std::stoull(args.get("seed", "0")));
    order.resize(std::min(order.size(), n));
    for (size_t i : order) rows.push_back(all[i]);
    s.from = fmt::format("{} random {} train examples (seed {})", rows.size(), task.name, args.get("seed", "0"));
  }
  s.examples = data::encode_glue(tokenizer, rows, max_length);
  return s;
}

models::Bert masked_lm_model(const std::string& dir, const torch::Device& device) {
  auto m = models::load_bert(dir, /*strict=*/true).model;
  m->to(device);
  return m;
}

// Padded batches for scores; unpadded single examples for the principal components.
std::vector<models::Batch> batches_of(const Sample& s, int64_t batch, int64_t pad_id, bool regression) {
  std::vector<models::Batch> out;
  for (const auto& idx : data::consecutive_batches(s.examples.size(), static_cast<size_t>(batch)))
    out.push_back(data::collate(s.examples, idx, pad_id, regression));
  return out;
}

models::Bert load_classifier(const Args& args, const std::string& dir) {
  const auto config = io::read_json((fs::path(dir) / "config.json").string());
  SCULPT_CHECK(!models::is_packed_bert(config), "--model {} is a packed model; compress starts from a dense BERT", dir);
  recipe::Recipe r;
  r.model.path = dir;
  if (!args.has("task")) {
    auto m = models::load_bert(dir, /*strict=*/true).model;
    SCULPT_CHECK(m->config.head == models::HeadType::sequence_classification,
                 "--model {} has no classification head: give --task T so that one is added for the task", dir);
    return m;
  }
  const auto& task = data::glue_task(args.get("task"));
  if (models::bert_config_from_json(config, dir).head != models::HeadType::sequence_classification)
    LOG_INFO("[compress] {} has no classification head: a new {}-label head is initialised for {} (fine-tune the result)", dir,
             task.num_labels(), task.name);
  return train::build_bert_classifier(r, task);
}

nlohmann::json compress_kmeans(const Args& args, const std::string& dir, const std::string& out, const torch::Device& device) {
  compress::KMeansOptions o;
  o.bits = std::stoi(args.get("bits", "4"));
  o.max_iterations = std::stoi(args.get("iterations", "30"));
  o.seed = std::stoull(args.get("seed", "0"));
  std::unique_ptr<train::ProgressBar> bar;  // made at the first tensor, when the count is known
  auto report = compress::code_model_kmeans(dir, out, o, device, [&](int64_t i, int64_t n, const std::string& name) {
    if (!bar) bar = std::make_unique<train::ProgressBar>(args.get("progress", "auto"), n);
    bar->update(i, name);
  });
  if (bar) bar->finish();
  return report;
}

// SliceGPT on a pre-LN OPT or a T5 (compress/one_shot_decoder.h) over the calibration lines or
// examples. For an OPT causal LM the calibration perplexity before and after is measured and
// reported.
nlohmann::json compress_stream_slice(const Args& args, const std::string& dir, const std::string& out, double target,
                                     const std::string& family) {
  auto tokenizer = tokenizers::load_tokenizer(dir);
  const int64_t round = std::stoll(args.get("round-to", "8"));
  torch::NoGradGuard no_grad;
  nlohmann::json report;
  std::string data_from;
  fs::create_directories(out);
  if (family == "t5") {
    auto model = models::load_t5(dir);
    model->eval();
    auto sample = read_sample(args, *tokenizer, std::stoll(args.get("max-length", "128")), false);
    data_from = sample.from;
    auto r = compress::slice_stream(model, batches_of(sample, 1, tokenizer->pad_id(), false), target, round);
    models::save_t5(r.model, out);
    report = r.report;
  } else {
    auto model = models::load_opt(dir);
    model->eval();
    const std::string problem = compress::rotation_problem(model->config);
    SCULPT_CHECK(problem.empty(), "--model {}: {}", dir, problem);
    auto sample = read_sample(args, *tokenizer, model->config.max_positions, false);
    data_from = sample.from;
    const auto batches = batches_of(sample, 1, tokenizer->pad_id(), false);
    auto r = compress::slice_stream(model, batches, target, round);
    models::save_opt(r.model, out);
    report = r.report;
    if (model->config.head == models::HeadType::causal_lm) {
      auto perplexity = [&](models::Opt& m) {  // token-weighted mean next-token loss over the sample
        double nll = 0, tokens = 0;
        for (const auto& b : batches) {
          const double n = static_cast<double>(b.input_ids.size(1) - 1);
          if (n < 1) continue;
          nll += m->forward(b.input_ids, b.attention_mask, b.input_ids).loss.item<double>() * n, tokens += n;
        }
        return tokens > 0 ? std::exp(nll / tokens) : 0.0;
      };
      report["achieved"]["calibration_perplexity_before"] = perplexity(model);
      report["achieved"]["calibration_perplexity_after"] = perplexity(r.model);
    }
  }
  report["family"] = family;
  report["data"] = data_from;
  return report;
}

// Zero-shot Taylor scores of a T5 read its pre-training objective: each sample text (--text
// lines or --task's train inputs) span-corrupted, seeded per example from --seed.
std::vector<models::Batch> span_corrupted(const Args& args, const std::string& dir, int64_t max_length, std::string& data_from) {
  auto tokenizer = tokenizers::load_tokenizer(dir);
  const int64_t eos = tokenizer->token_to_id("</s>"), first = tokenizer->token_to_id("<extra_id_0>");
  SCULPT_CHECK(first > 0 && tokenizer->token_to_id("<extra_id_1>") == first - 1,
               "--model {}: its tokenizer has no T5 sentinels (<extra_id_0>, <extra_id_1>, ... counting down) for span corruption", dir);
  auto sample = read_sample(args, *tokenizer, max_length, false);
  const uint64_t seed = std::stoull(args.get("seed", "0"));
  std::vector<models::Batch> out;
  for (size_t i = 0; i < sample.examples.size(); ++i) {
    std::vector<int64_t> ids(sample.examples[i].ids.begin(), sample.examples[i].ids.end());
    if (!ids.empty() && ids.back() == eos) ids.pop_back();
    if (ids.size() < 2) continue;
    auto c = data::span_corrupt(ids, first, eos, data::mix_seed(seed, i));
    models::Batch b;
    b.input_ids = torch::tensor(c.inputs, torch::kLong).view({1, -1});
    b.attention_mask = torch::ones_like(b.input_ids);
    b.labels = torch::tensor(c.targets, torch::kLong).view({1, -1});
    out.push_back(std::move(b));
  }
  SCULPT_CHECK(!out.empty(), "span corruption: no example of {} has 2 tokens", sample.from);
  data_from = sample.from + ", span-corrupted (15% of the tokens in spans of mean length 3, T5's objective)";
  return out;
}

// One-shot pruning of an OPT's or a T5's heads and FFN neurons (or whole blocks)
// (compress/one_shot_decoder.h); the stream keeps its width. Magnitude and activations for both;
// Taylor for OPT on its causal-LM loss over unlabelled text (a classifier: on the task loss over
// labelled rows), for T5 on span corruption of unlabelled text.
nlohmann::json compress_decoder_units(const Args& args, const std::string& dir, const std::string& out, double target,
                                      const std::string& method, const std::string& family, const torch::Device& device) {
  compress::PruneOneShotOptions o;
  o.method = method;
  o.target = target;
  o.allocation = {args.get("granularity", "units"), args.get("scope", "global")};
  o.statistic = args.get("statistic", "mean_abs");
  std::string data_from = "none";
  // Single unpadded examples of the sample (labelled where the method needs labels).
  auto examples = [&](int64_t max_positions, bool labelled) {
    auto tokenizer = tokenizers::load_tokenizer(dir);
    auto sample = read_sample(args, *tokenizer, max_positions, labelled);
    data_from = sample.from;
    return batches_of(sample, 1, tokenizer->pad_id(), false);
  };
  fs::create_directories(out);
  nlohmann::json report;
  if (family == "t5") {
    auto model = models::load_t5(dir);
    model->to(device);
    model->eval();
    const int64_t max_length = std::stoll(args.get("max-length", "128"));
    auto r = compress::prune_units(model, method == "magnitude"    ? std::vector<models::Batch>{}
                                          : method == "activation" ? examples(max_length, false)
                                                                   : span_corrupted(args, dir, max_length, data_from),
                                   o);
    models::save_t5(r.model, out);
    report = r.report;
  } else {
    auto model = models::load_opt(dir);
    model->to(device);
    model->eval();
    const bool lm = model->config.head == models::HeadType::causal_lm;
    auto r = compress::prune_units(
        model, method == "magnitude" ? std::vector<models::Batch>{} : examples(model->config.max_positions, method == "taylor" && !lm), o);
    models::save_opt(r.model, out);
    report = r.report;
  }
  report["data"] = data_from;
  return report;
}

}  // namespace

int cmd_compress(int argc, char** argv) {
  auto args = Args::parse(argc, argv, 2, {"method", "model", "target", "out", "task", "data", "text", "examples", "batch",
                                          "max-length", "cost", "length", "scope", "granularity", "statistic", "seed",
                                          "round-to", "device", "bits", "iterations", "progress"});
  const std::string method = args.require("method"), dir = args.require("model"), out = args.require("out");
  SCULPT_CHECK(method == "magnitude" || method == "activation" || method == "taylor" || method == "slice" || method == "kmeans",
               "--method '{}': magnitude, activation, taylor, slice or kmeans", method);
  io::require_model_dir(dir, "--model");
  SCULPT_CHECK(!fs::exists(fs::path(out) / "config.json"), "--out {} already holds a model; remove it or choose another directory", out);
  const auto t0 = std::chrono::steady_clock::now();
  auto device = train::resolve_device(args.get("device", "cpu"));
  if (method == "kmeans") {
    auto report = compress_kmeans(args, dir, out, device);
    train::copy_tokenizer_files(dir, out);
    report["model"] = dir;
    report["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    io::write_file_atomic((fs::path(out) / "compression.json").string(), report.dump(2) + "\n");
    const auto& a = report["achieved"];
    std::printf("kmeans: %s to %s in %.1fs: %d-bit codebooks on %zu tensors, %.1f MB -> %.1f MB (%.2fx), relative error %.4f\n",
                dir.c_str(), out.c_str(), report["seconds"].get<double>(), std::stoi(args.get("bits", "4")),
                report["tensors_coded"].get<size_t>(), a["bytes_before"].get<double>() / 1e6, a["bytes_after"].get<double>() / 1e6,
                a["compression_ratio"].get<double>(), a["relative_error"].get<double>());
    return 0;
  }
  const double target = std::stod(args.require("target"));
  const std::string family = io::read_json((fs::path(dir) / "config.json").string()).value("model_type", "bert");
  if (method == "slice" && (family == "opt" || family == "t5")) {
    auto report = compress_stream_slice(args, dir, out, target, family);
    train::copy_tokenizer_files(dir, out);
    report["model"] = dir;
    report["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    io::write_file_atomic((fs::path(out) / "compression.json").string(), report.dump(2) + "\n");
    const auto& a = report["achieved"];
    std::printf("slice: %s to %s in %.1fs: d_model %lld -> %lld, blocks %lld -> %lld parameters, all %lld -> %lld%s\n", dir.c_str(),
                out.c_str(), report["seconds"].get<double>(), static_cast<long long>(a["hidden_before"].get<int64_t>()),
                static_cast<long long>(a["hidden_after"].get<int64_t>()), static_cast<long long>(a["block_parameters_before"].get<int64_t>()),
                static_cast<long long>(a["block_parameters_after"].get<int64_t>()), static_cast<long long>(a["parameters_before"].get<int64_t>()),
                static_cast<long long>(a["parameters_after"].get<int64_t>()),
                a.contains("calibration_perplexity_before")
                    ? fmt::format(", calibration perplexity {:.2f} -> {:.2f}", a["calibration_perplexity_before"].get<double>(),
                                  a["calibration_perplexity_after"].get<double>()).c_str()
                    : "");
    return 0;
  }
  if ((family == "opt" || family == "t5") && method != "slice") {
    auto report = compress_decoder_units(args, dir, out, target, method, family, device);
    train::copy_tokenizer_files(dir, out);
    report["model"] = dir;
    report["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    io::write_file_atomic((fs::path(out) / "compression.json").string(), report.dump(2) + "\n");
    const auto& a = report["achieved"];
    std::printf("%s: %s to %s in %.1fs: attention and FFN maps %lld -> %lld weights (%.4f remaining), all %lld -> %lld parameters\n",
                method.c_str(), dir.c_str(), out.c_str(), report["seconds"].get<double>(),
                static_cast<long long>(a["map_weights_before"].get<int64_t>()), static_cast<long long>(a["map_weights_after"].get<int64_t>()),
                a["map_weights_remaining"].get<double>(), static_cast<long long>(a["parameters_before"].get<int64_t>()),
                static_cast<long long>(a["parameters_after"].get<int64_t>()));
    return 0;
  }
  SCULPT_CHECK(family == "bert", "--method {}: {} is a {} model; sculpt compress takes bert, opt and t5", method, dir, family);
  auto model = load_classifier(args, dir);
  model->eval();
  model->to(device);
  for (auto& p : model->parameters()) p.set_requires_grad(false);
  auto tokenizer = tokenizers::load_tokenizer(dir);
  const bool regression = model->config.is_regression();
  compress::CostModel cost{args.get("cost", "params"), std::stoll(args.get("length", "128"))};
  compress::Compressed result;
  std::string data_from = "none";
  if (method == "slice") {
    auto sample = read_sample(args, *tokenizer, model->config.max_positions, false);
    data_from = sample.from;
    result = compress::slice_hidden(model, batches_of(sample, 1, tokenizer->pad_id(), regression),
                                    {target, std::stoll(args.get("round-to", "8")), cost});
  } else {
    compress::PruneOneShotOptions o;
    o.method = method;
    o.target = target;
    o.cost = cost;
    o.allocation = {args.get("granularity", "units"), args.get("scope", "global")};
    o.statistic = args.get("statistic", "mean_abs");
    std::vector<models::Batch> batches;
    const bool masked_lm = method == "taylor" && models::bert_config_from_json(io::read_json((fs::path(dir) / "config.json").string()), dir)
                                                         .head == models::HeadType::masked_lm;
    if (masked_lm) {
      // Zero-shot structured pruning of a pretrained masked LM: Taylor scores on its own loss over
      // unlabelled inputs (--text lines, or --task's train rows without their labels).
      auto sample = read_sample(args, *tokenizer, model->config.max_positions, false);
      data_from = sample.from + ", 15% of the tokens masked (80/10/10)";
      auto mlm = masked_lm_model(dir, device);
      o.scores = compress::taylor_mlm_scores(mlm, data::mask_each_example(sample.examples, *tokenizer, std::stoull(args.get("seed", "0"))));
    } else if (method == "activation" || method == "taylor") {
      auto sample = read_sample(args, *tokenizer, model->config.max_positions, method == "taylor");
      data_from = sample.from;
      batches = batches_of(sample, std::stoll(args.get("batch", "16")), tokenizer->pad_id(), regression);
    }
    result = compress::prune_one_shot(model, batches, o);
  }
  fs::create_directories(out);
  models::save_packed_bert(result.model, out);
  train::copy_tokenizer_files(dir, out);
  auto report = result.report;
  report["model"] = dir;
  report["data"] = data_from;
  report["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  io::write_file_atomic((fs::path(out) / "compression.json").string(), report.dump(2) + "\n");
  const auto& a = report["achieved"];
  std::printf("%s: %s to %s in %.1fs: CoFi sparsity %.4f, SP3 remaining %.4f, %s remaining %.4f\n", method.c_str(), dir.c_str(),
              out.c_str(), report["seconds"].get<double>(), a["packed_sparsity"].get<double>(), a["packed_remaining"].get<double>(),
              cost.of.c_str(), a["cost_remaining"].get<double>());
  return 0;
}

}  // namespace sculpt::cli

namespace sculpt::cli {

// Post-training int8 quantization of a BERT directory, dense or packed by pruning
// (compress/quantize.h, io/int8_weights.h): static (input ranges from calibration batches: the
// running min and max over --examples train rows of --task, or lines of --text) or dynamic
// (each input quantized by its own range).
int cmd_quantize(int argc, char** argv) {
  auto args = Args::parse(argc, argv, 2, {"model", "out", "mode", "task", "data", "text", "examples", "batch", "max-length", "seed",
                                          "device"});
  const std::string dir = args.require("model"), out = args.require("out"), mode = args.get("mode", "static");
  SCULPT_CHECK(mode == "static" || mode == "dynamic", "--mode '{}': static or dynamic", mode);
  io::require_model_dir(dir, "--model");
  SCULPT_CHECK(!fs::exists(fs::path(out) / "config.json"), "--out {} already holds a model; remove it or choose another directory", out);
  SCULPT_CHECK(!fs::exists(fs::path(dir) / io::kInt8WeightsFile), "--model {} is already an int8 directory", dir);
  const auto t0 = std::chrono::steady_clock::now();
  auto device = train::resolve_device(args.get("device", "cpu"));
  auto net = models::load_any_bert(dir);
  auto& model = *net.module;
  model.eval();
  net.to(device);
  for (auto& p : model.parameters()) p.set_requires_grad(false);
  const auto& keys = net.keys;
  const recipe::QuantizeSection defaults;
  std::map<std::string, io::Int8Matrix> quantized;
  std::string data_from = "none";
  torch::NoGradGuard no_grad;
  if (mode == "dynamic") {
    for (const auto& w : train::select_weights(model, keys, defaults.include, defaults.exclude, "quantize")) quantized[w.hf] = compress::quantize_weight(w.weight);
  } else {
    std::vector<std::pair<std::string, std::string>> names;
    for (const auto& w : train::select_weights(model, keys, defaults.include, defaults.exclude, "quantize")) names.emplace_back(w.hf, w.internal);
    auto layers = compress::attach_fake_quant(model, names, /*averaging=*/0);
    auto tokenizer = tokenizers::load_tokenizer(dir);
    auto sample = read_sample(args, *tokenizer, net.config.max_positions, false);
    data_from = sample.from;
    for (const auto& b : batches_of(sample, std::stoll(args.get("batch", "16")), tokenizer->pad_id(), false)) net.forward(b.to(device), {});
    quantized = compress::int8_matrices(model, layers, keys);
    for (auto& p : model.modules())
      if (auto* l = p->as<models::LinearImpl>()) l->kernel.reset();
  }
  fs::create_directories(out);
  net.save(out);
  const double bytes_before = static_cast<double>(fs::file_size(fs::path(out) / "model.safetensors"));
  compress::write_int8_directory(out, quantized, mode == "static" ? "ptq static (" + data_from + ")" : "ptq dynamic");
  train::copy_tokenizer_files(dir, out);
  const double bytes_after = static_cast<double>(fs::file_size(fs::path(out) / io::kInt8WeightsFile));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  nlohmann::json report = {{"method", "int8"}, {"mode", mode}, {"model", dir}, {"packed", net.packed}, {"data", data_from}, {"layers", quantized.size()},
                           {"bytes_before", bytes_before}, {"bytes_after", bytes_after}, {"seconds", seconds}};
  io::write_file_atomic((fs::path(out) / "compression.json").string(), report.dump(2) + "\n");
  std::printf("quantize: %s to %s in %.1fs: %zu linear maps to int8 (%s), %.1f MB -> %.1f MB\n", dir.c_str(), out.c_str(), seconds,
              quantized.size(), mode.c_str(), bytes_before / 1e6, bytes_after / 1e6);
  return 0;
}

}  // namespace sculpt::cli
