// sculpt run / resume / validate.
#include <fmt/ranges.h>
#include <torch/torch.h>

#include <cstdio>
#include <filesystem>

#include "args.h"
#include "commands.h"
#include "sculpt/core/log.h"
#include "sculpt/io/hf_dir.h"
#include "sculpt/models/bert.h"
#include "sculpt/data/glue.h"
#include "sculpt/recipe/recipe.h"
#include "sculpt/tokenizers/tokenizer.h"
#include "sculpt/train/finetune.h"
#include "sculpt/train/task.h"

namespace fs = std::filesystem;

namespace sculpt::cli {
namespace {

void apply_threads(const recipe::Recipe& r) {
  if (r.run.threads > 0) at::set_num_threads(static_cast<int>(r.run.threads));
}

}  // namespace

int cmd_run(int argc, char** argv) {
  auto args = Args::parse(argc, argv, 2, {});
  SCULPT_CHECK(args.positional.size() == 1, "usage: sculpt run RECIPE [key=value ...]");
  auto r = recipe::load_recipe(args.positional[0], args.overrides);
  apply_threads(r);
  train::run_recipe(r, /*resume=*/false);
  return 0;
}

int cmd_resume(int argc, char** argv) {
  auto args = Args::parse(argc, argv, 2, {});
  SCULPT_CHECK(args.positional.size() == 1, "usage: sculpt resume RUN_DIR [key=value ...]");
  const std::string run_dir = args.positional[0];
  const std::string resolved = (fs::path(run_dir) / "recipe.resolved.yaml").string();
  SCULPT_CHECK(fs::exists(resolved), "{}: not a run directory (no recipe.resolved.yaml)", run_dir);
  // The run continues where it is, whatever run.dir/name the recipe had; a crash hook
  // used by a test must not fire again.
  std::vector<std::string> overrides = {"run.dir=" + run_dir, "debug.crash_after_step=0"};
  for (const auto& o : args.overrides) {
    const std::string key = o.substr(o[0] == '~' ? 1 : 0, o.find('='));
    const bool allowed = key.rfind("train.duration", 0) == 0 || key.rfind("logging.", 0) == 0 ||
                         key.rfind("eval.", 0) == 0 || key.rfind("checkpoint.", 0) == 0 || key.rfind("debug.", 0) == 0 ||
                         key == "run.threads" || key == "run.device";
    SCULPT_CHECK(allowed, "resume accepts overrides of train.duration, logging.*, eval.*, checkpoint.*, run.threads and "
                          "run.device only ('{}' would change the run)", key);
    overrides.push_back(o);
  }
  auto r = recipe::load_recipe(resolved, overrides);
  apply_threads(r);
  train::run_recipe(r, /*resume=*/true);
  return 0;
}

namespace {

// Files a recipe needs that are not there.
std::vector<std::string> missing_inputs(const recipe::Recipe& r) {
  std::vector<std::string> problems;
  std::vector<std::string> data_files;
  if (r.data.is_squad() || r.data.is_text()) {
    data_files = {r.data.train_file};
    if (!r.data.dev_file.empty()) data_files.push_back(r.data.dev_file);
  } else {
    const auto& task = data::glue_task(r.data.task);
    for (const auto& split : {std::string("train"), task.dev_splits.front()})
      data_files.push_back((fs::path(r.data.root) / task.dir / (split + ".tsv")).string());
  }
  for (const auto& f : data_files)
    if (!fs::exists(f)) problems.push_back(fmt::format("data: {} not found", f));
  if (!r.model.path.empty() && !fs::exists(fs::path(r.model.path) / "config.json"))
    problems.push_back(fmt::format("model.path: {} has no config.json", r.model.path));
  try {
    tokenizers::load_tokenizer(r.model.tokenizer);
  } catch (const Error& e) {
    problems.push_back(fmt::format("model.tokenizer: {}", e.what()));
  }
  return problems;
}

// Build a BERT GLUE classifier on CPU and push a tiny batch through it.
std::string dry_run_bert(const recipe::Recipe& r) {
  nlohmann::json j = r.model.path.empty() ? r.model.config : io::read_json((fs::path(r.model.path) / "config.json").string());
  j["model_type"] = "bert";
  auto config = models::bert_config_from_json(j, r.model.path.empty() ? "recipe model.config" : r.model.path + "/config.json");
  config.head = models::HeadType::sequence_classification;
  config.with_pooler = true;
  config.num_labels = data::glue_task(r.data.task).num_labels();
  models::Bert model(config);
  model->eval();
  models::Batch batch;
  batch.input_ids = torch::randint(0, config.vocab_size, {2, std::min<int64_t>(8, config.max_positions)});
  auto logits = model->forward(batch).logits;
  int64_t n = 0;
  for (const auto& p : model->parameters()) n += p.numel();
  return fmt::format("{} layers x {} hidden, {} parameters; dry-run logits {}", config.num_layers, config.hidden_size, n,
                     fmt::join(logits.sizes(), "x"));
}

}  // namespace

int cmd_validate(int argc, char** argv) {
  auto args = Args::parse(argc, argv, 2, {});
  SCULPT_CHECK(args.positional.size() == 1, "usage: sculpt validate RECIPE [key=value ...]");
  auto r = recipe::load_recipe(args.positional[0], args.overrides);
  auto problems = missing_inputs(r);
  if (problems.empty() && r.prune.enabled()) {
    const std::string teacher = train::teacher_problem(r);
    if (!teacher.empty()) problems.push_back("model.path: " + teacher);
  }
  if (problems.empty() && r.model.family == "bert" && !r.data.is_squad() && !r.data.is_text()) {
    try {
      std::printf("# model: %s\n", dry_run_bert(r).c_str());
    } catch (const Error& e) {
      problems.push_back(fmt::format("model: {}", e.what()));
    }
  }
  std::printf("%s", r.resolved_yaml().c_str());
  std::printf("# run dir: %s\n# task: %s, family: %s, device: %s\n", r.run_dir().c_str(), r.data.task.c_str(),
              r.model.family.c_str(), r.run.device.c_str());
  if (!problems.empty()) {
    for (const auto& p : problems) std::fprintf(stderr, "problem: %s\n", p.c_str());
    return 1;
  }
  std::printf("# ok\n");
  return 0;
}

}  // namespace sculpt::cli
