// sculpt forward / tokenize / eval: run an HF model directory or tokenizer on given inputs.
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>

#include "args.h"
#include "sculpt/core/env.h"
#include "commands.h"
#include "sculpt/data/batching.h"
#include "sculpt/data/glue.h"
#include "sculpt/data/squad.h"
#include "sculpt/tokenizers/wordpiece.h"
#include "sculpt/io/files.h"
#include "sculpt/io/hf_dir.h"
#include "sculpt/io/model_dir.h"
#include "sculpt/models/any_bert.h"
#include "sculpt/models/bert.h"
#include "sculpt/models/opt.h"
#include "sculpt/models/reference_forward.h"
#include "sculpt/tokenizers/jsonl.h"
#include "sculpt/data/token_cache.h"
#include "sculpt/recipe/recipe.h"
#include "sculpt/train/clm_data.h"
#include "sculpt/train/evaluate.h"
#include "sculpt/train/glue_data.h"
#include "sculpt/train/task.h"
#include "sculpt/train/token_data.h"

namespace fs = std::filesystem;

namespace sculpt::cli {

int cmd_forward(int argc, char** argv) {
  auto args = Args::parse(argc, argv, 2, {"model", "inputs", "out", "weights", "max-new-tokens"});
  const std::string format = args.get("weights", "safetensors");
  SCULPT_CHECK(format == "safetensors" || format == "bin", "--weights must be safetensors or bin");
  io::require_model_dir(args.require("model"), "--model");
  auto inputs = io::read_safetensors(args.require("inputs")).tensors;
  auto result = models::reference_forward(args.require("model"), inputs,
                                          format == "bin" ? io::WeightFormat::bin : io::WeightFormat::safetensors,
                                          std::stoll(args.get("max-new-tokens", "8")));
  io::Metadata meta = {{"format", "pt"}, {"producer", "sculpt forward"}};
  if (!result.grad_norm_names.empty()) meta["grad_norm_names"] = nlohmann::json(result.grad_norm_names).dump();
  io::write_safetensors(args.require("out"), result.outputs, meta);
  std::fprintf(stderr, "wrote %zu tensors to %s\n", result.outputs.size(), args.require("out").c_str());
  return 0;
}

int cmd_tokenize(int argc, char** argv) {
  auto args = Args::parse(argc, argv, 2, {"tokenizer", "input", "out", "cache", "corpus", "block-size", "sample-by"});
  if (args.has("corpus")) {  // a text corpus into the token cache in blocks (masked language modelling)
    const std::string dir = args.require("tokenizer");
    auto tokenizer = tokenizers::load_tokenizer(dir);
    data::CorpusOptions o;
    o.block_size = std::stoll(args.get("block-size", "128"));
    o.sample_by = args.get("sample-by", "line");
    const auto blocks = train::load_corpus_blocks({*tokenizer, dir, "auto"}, args.get("corpus"), o);
    std::printf("%s: %lld blocks of %lld tokens in the token cache %s\n", args.get("corpus").c_str(),
                static_cast<long long>(blocks.size()), static_cast<long long>(o.block_size), data::token_cache_dir().c_str());
    return 0;
  }
  if (args.has("cache")) {  // fill the token cache ahead of a job: every split the recipe's run reads
    auto r = recipe::load_recipe(args.get("cache"), args.overrides);
    if (r.run.threads > 0) at::set_num_threads(static_cast<int>(r.run.threads));
    if (r.data.is_squad() || r.model.family == "t5") {
      // Their features depend on the model (SQuAD's length on its positions): the task builds them.
      train::make_task(r, torch::kCPU);
      std::printf("%s: the train and dev splits are in the token cache %s\n", r.data.task.c_str(), data::token_cache_dir().c_str());
      return 0;
    }
    train::GlueData data(r);
    std::printf("%s: %zu train and %zu dev examples in the token cache %s\n", r.data.task.c_str(), data.train.size(),
                data.dev.front().second.size(), data::token_cache_dir().c_str());
    return 0;
  }
  auto tokenizer = tokenizers::load_tokenizer(args.require("tokenizer"));
  const std::string input = args.require("input");
  std::ifstream in(input);
  SCULPT_CHECK(in.good(), "{}: cannot open", input);
  std::string line, out;
  size_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.empty()) continue;
    nlohmann::json request;
    try {
      request = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      fail("{}:{}: not valid JSON ({})", input, number, e.what());
    }
    try {
      out += tokenizers::encode_request(*tokenizer, request).dump() + "\n";
    } catch (const Error& e) {
      fail("{}:{}: {}", input, number, e.what());
    }
  }
  io::write_file_atomic(args.require("out"), out);
  return 0;
}

namespace {

int eval_squad(const Args& args) {
  const std::string dir = args.require("model");
  const bool v2 = args.require("task") == "squad_v2";
  const std::string path = expand_path(args.get("data", v2 ? "${SCULPT_DATA}/squad/dev-v2.0.json" : "${SCULPT_DATA}/squad/dev-v1.1.json"));
  auto t0 = std::chrono::steady_clock::now();
  auto tokenizer = tokenizers::WordPieceTokenizer::from_dir(dir);
  auto model = models::load_any_bert(dir);  // dense or packed by pruning
  SCULPT_CHECK(model.config.head == models::HeadType::question_answering, "{}: not a question-answering model", dir);
  auto device = train::resolve_device(args.get("device", "auto"));
  model.to(device);
  model.module->eval();
  auto examples = data::read_squad(path);
  if (args.has("max-examples")) examples.resize(std::min(examples.size(), static_cast<size_t>(std::stoll(args.get("max-examples")))));
  data::SquadFeatureOptions fo;
  fo.max_length = std::min<int64_t>(std::stoll(args.get("max-length", "384")), model.config.max_positions);
  fo.max_query_length = std::min<int64_t>(std::stoll(args.get("max-query-length", "64")), fo.max_length / 2);
  fo.doc_stride = std::min<int64_t>(std::stoll(args.get("doc-stride", "128")), (fo.max_length - fo.max_query_length - 3) / 2);
  const train::TokenSource source{*tokenizer, dir, "auto"};
  auto features = train::load_squad_features(source, *tokenizer, path, examples, fo);
  data::SquadPostprocessOptions po;
  po.v2 = v2;
  po.null_threshold = std::stod(args.get("null-threshold", "0"));
  std::vector<metrics::SquadPrediction> predictions;
  auto m = train::evaluate_squad([&](const models::Batch& b) { return model.forward(b, {}); }, examples, features, std::stoll(args.get("batch", "128")), tokenizer->pad_id(), device,
                                 po, &predictions);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  nlohmann::json j = {{"task", v2 ? "squad_v2" : "squad"}, {"data", path}, {"examples", examples.size()},
                      {"features", features.size()}, {"max_length", fo.max_length}, {"doc_stride", fo.doc_stride},
                      {"seconds", secs}};
  for (const auto& [k, v] : m) j[k] = v;
  if (args.has("predictions")) {
    nlohmann::json p = nlohmann::json::object();
    for (const auto& pr : predictions) p[pr.id] = pr.text;
    io::write_file_atomic(args.get("predictions"), p.dump(2) + "\n");
  }
  std::printf("%s\n", j.dump(2).c_str());
  return 0;
}

// An OPT directory (HF's, rotated or packed) as a causal LM on a text file: every block of
// --max-length tokens is scored (train/clm_data.h: the file is its own dev split).
int eval_clm(const Args& args) {
  const std::string dir = args.require("model");
  recipe::Recipe r;
  r.model.family = "opt";
  r.model.path = r.model.tokenizer = dir;
  r.data.task = "clm";
  r.data.train_file = r.data.dev_file = expand_path(args.require("data"));
  r.data.max_seq_len = std::stoll(args.get("max-length", "128"));
  r.data.max_eval_examples = std::stoll(args.get("max-examples", "0"));
  r.logging.progress_bar = "auto";
  auto t0 = std::chrono::steady_clock::now();
  auto model = models::load_opt(dir);
  SCULPT_CHECK(model->config.head == models::HeadType::causal_lm, "--model {}: not an OPTForCausalLM", dir);
  auto device = train::resolve_device(args.get("device", "auto"));
  model->to(device);
  model->eval();
  auto data = train::open_clm_data(r, model->config.max_positions);
  auto m = data->evaluate([&](const models::Batch& b) { return models::opt_logits(model, b); }, std::stoll(args.get("batch", "32")), device);
  nlohmann::json j = {{"task", "clm"}, {"data", r.data.dev_file}, {"max_length", std::min(r.data.max_seq_len, model->config.max_positions)},
                      {"seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()}};
  for (const auto& [k, v] : m) j[k] = v;
  std::printf("%s\n", j.dump(2).c_str());
  return 0;
}

}  // namespace

int cmd_eval(int argc, char** argv) {
  auto args = Args::parse(argc, argv, 2, {"model", "task", "data", "split", "batch", "device", "max-length", "doc-stride",
                                          "max-query-length", "max-examples", "null-threshold", "predictions"});
  const std::string dir = args.require("model");
  io::require_model_dir(dir, "--model");
  if (args.require("task").rfind("squad", 0) == 0) return eval_squad(args);
  if (args.require("task") == "clm") return eval_clm(args);
  const auto& task = data::glue_task(args.require("task"));
  const std::string root = expand_path(args.get("data", "${SCULPT_DATA}/glue"));
  auto tokenizer = tokenizers::load_tokenizer(dir);
  auto device = train::resolve_device(args.get("device", "auto"));
  // BERT (dense or packed by pruning) or an OPT classifier (dense or packed); both read GLUE as encode_glue writes it.
  const bool opt = io::read_json(dir + "/config.json").value("model_type", "bert") == "opt";
  std::optional<models::AnyBert> bert;
  models::Opt decoder{nullptr};
  if (opt) {
    decoder = models::load_opt(dir);
    SCULPT_CHECK(decoder->config.head == models::HeadType::sequence_classification,
                 "--model {}: an OPT causal LM has no classification head; score it with --task clm", dir);
    decoder->to(device);
    decoder->eval();
  } else {
    bert = models::load_any_bert(dir);
    SCULPT_CHECK(bert->config.head == models::HeadType::sequence_classification,
                 "--model {}: no classification head (a pretrained encoder, not a model fine-tuned on a task); fine-tune "
                 "it first (e.g. build/sculpt run recipes/minilm/finetune.yaml data.task=rte)", dir);
    bert->to(device);
    bert->module->eval();
  }
  const int64_t positions = opt ? decoder->config.max_positions : bert->config.max_positions;
  const std::string split = args.get("split", task.dev_splits.front());
  // Never longer than the model's positions (a small exported model may have fewer than 128).
  const int64_t max_length = std::min<int64_t>(std::stoll(args.get("max-length", "128")), positions);
  const int64_t max_examples = std::stoll(args.get("max-examples", "0"));  // as a recipe's data.max_eval_examples
  auto examples = data::encode_glue(*tokenizer, train::first_rows(data::read_glue_split(task, root, split), max_examples), max_length);
  auto logits = [&](const models::Batch& b) {
    return opt ? decoder->forward(b.input_ids, b.attention_mask, torch::Tensor()).logits : bert->forward(b, {}).logits;
  };
  auto m = train::evaluate_glue(logits, task.name, examples, std::stoll(args.get("batch", "128")), tokenizer->pad_id(), device);
  nlohmann::json j = {{"task", task.name}, {"split", split}, {"examples", examples.size()}};
  for (const auto& [k, v] : m) j[k] = v;
  std::printf("%s\n", j.dump(2).c_str());
  return 0;
}

}  // namespace sculpt::cli
