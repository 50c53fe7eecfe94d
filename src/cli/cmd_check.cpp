// sculpt forward / tokenize / eval: run an HF model directory or tokenizer on given inputs.
#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "args.h"
#include "sculpt/core/env.h"
#include "commands.h"
#include "sculpt/data/batching.h"
#include "sculpt/data/glue.h"
#include "sculpt/io/files.h"
#include "sculpt/io/hf_dir.h"
#include "sculpt/models/bert.h"
#include "sculpt/models/reference_forward.h"
#include "sculpt/tokenizers/jsonl.h"
#include "sculpt/train/evaluate.h"

namespace fs = std::filesystem;

namespace sculpt::cli {

int cmd_forward(int argc, char** argv) {
  auto args = Args::parse(argc, argv, 2, {"model", "inputs", "out", "weights", "max-new-tokens"});
  const std::string format = args.get("weights", "safetensors");
  SCULPT_CHECK(format == "safetensors" || format == "bin", "--weights must be safetensors or bin");
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
  auto args = Args::parse(argc, argv, 2, {"tokenizer", "input", "out"});
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

int cmd_eval(int argc, char** argv) {
  auto args = Args::parse(argc, argv, 2, {"model", "task", "data", "split", "batch", "device", "max-length"});
  const std::string dir = args.require("model");
  const auto& task = data::glue_task(args.require("task"));
  const std::string root = expand_path(args.get("data", "${SCULPT_DATA}/glue"));
  auto tokenizer = tokenizers::load_tokenizer(dir);
  auto model = models::load_bert(dir, /*strict=*/true).model;
  auto device = train::resolve_device(args.get("device", "auto"));
  model->to(device);
  const std::string split = args.get("split", task.dev_splits.front());
  auto examples = data::encode_glue(*tokenizer, data::read_glue_split(task, root, split), std::stoll(args.get("max-length", "128")));
  auto m = train::evaluate_glue(model, task.name, examples, std::stoll(args.get("batch", "128")), tokenizer->pad_id(), device);
  nlohmann::json j = {{"task", task.name}, {"split", split}, {"examples", examples.size()}};
  for (const auto& [k, v] : m) j[k] = v;
  std::printf("%s\n", j.dump(2).c_str());
  return 0;
}

}  // namespace sculpt::cli
