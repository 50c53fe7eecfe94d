#include "sculpt/recipe/recipe.h"

#include <filesystem>
#include <map>
#include <set>

#include "sculpt/core/env.h"
#include "sculpt/core/error.h"
#include "sculpt/io/files.h"
#include "sculpt/recipe/node.h"

namespace fs = std::filesystem;

namespace sculpt::recipe {
namespace {

// HF config.json keys a recipe may set for a model built from scratch, per family.
const std::map<std::string, std::set<std::string>> kConfigKeys = {
    {"bert", {"vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
              "max_position_embeddings", "type_vocab_size", "hidden_act", "hidden_dropout_prob",
              "attention_probs_dropout_prob", "layer_norm_eps", "initializer_range", "pad_token_id", "classifier_dropout"}},
    {"t5", {"vocab_size", "d_model", "d_kv", "d_ff", "num_layers", "num_decoder_layers", "num_heads",
            "relative_attention_num_buckets", "relative_attention_max_distance", "dropout_rate", "layer_norm_epsilon",
            "feed_forward_proj", "tie_word_embeddings", "pad_token_id", "eos_token_id", "decoder_start_token_id"}},
    {"opt", {"vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "ffn_dim", "max_position_embeddings",
             "word_embed_proj_dim", "do_layer_norm_before", "dropout", "attention_dropout", "activation_function",
             "pad_token_id", "bos_token_id", "eos_token_id", "enable_bias", "init_std"}},
};

nlohmann::json yaml_to_json(const YAML::Node& n) {
  if (n.IsMap()) {
    nlohmann::json j = nlohmann::json::object();
    for (auto it = n.begin(); it != n.end(); ++it) j[it->first.Scalar()] = yaml_to_json(it->second);
    return j;
  }
  if (n.IsSequence()) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& v : n) j.push_back(yaml_to_json(v));
    return j;
  }
  if (n.IsNull()) return nullptr;
  const std::string& s = n.Scalar();
  if (n.Tag() == "!") return s;  // quoted in the YAML: a string
  bool b;
  int64_t i;
  double d;
  if (YAML::convert<int64_t>::decode(n, i)) return i;
  if (YAML::convert<double>::decode(n, d)) return d;
  if (YAML::convert<bool>::decode(n, b)) return b;
  return s;
}

void parse_model(Node node, ModelSection& m) {
  m.family = node.get<std::string>("family", m.family);
  if (!kConfigKeys.count(m.family)) node.error("family", fmt::format("'{}' is not one of bert, t5, opt", m.family));
  const auto& allowed = kConfigKeys.count(m.family) ? kConfigKeys.at(m.family) : kConfigKeys.at("bert");
  m.path = expand_path(node.get<std::string>("path", ""));
  m.tokenizer = expand_path(node.get<std::string>("tokenizer", ""));
  YAML::Node config = node.raw("config");
  if (config && !config.IsNull()) {
    if (!config.IsMap()) {
      node.error("config", "expected a map of HF config.json keys");
    } else {
      for (auto it = config.begin(); it != config.end(); ++it) {
        const std::string key = it->first.Scalar();
        if (!allowed.count(key)) {
          std::string hint = suggest(key, allowed);
          node.error("config", fmt::format("unknown {} config key '{}'{}", m.family, key,
                                           hint.empty() ? "" : fmt::format(" (did you mean '{}'?)", hint)));
        }
      }
      m.config = yaml_to_json(config);
    }
  }
  if (m.path.empty() && m.config.is_null()) node.error("path", "give a checkpoint directory (path) or an architecture (config)");
  if (m.tokenizer.empty()) m.tokenizer = m.path;
  if (m.tokenizer.empty()) node.error("tokenizer", "a model built from config needs a tokenizer directory");
  node.close();
}

// The distillation loss: CoFi's (T^2 KL, CoFi's layer map, 0.1 / 0.9, mean of the span KLs) or SP3's (KL, all
// states j >= i, 0.3 / 0.7, sum of the span KLs).
void parse_distill(Node& d, DistillSection& out, bool cofi) {
  out.temperature = d.get<double>("temperature", 2.0);
  out.pred_weight = d.get<double>("pred_weight", cofi ? 0.1 : 0.3);
  out.layer_weight = d.get<double>("layer_weight", cofi ? 0.9 : 0.7);
  out.task_weight = d.get<double>("task_weight", 0.0);
  out.t_squared = d.get<bool>("t_squared", cofi);
  out.layer_map = d.get<std::string>("layer_map", cofi ? "cofi" : "sp3");
  if (out.layer_map != "sp3" && out.layer_map != "cofi") d.error("layer_map", fmt::format("'{}' is not sp3 or cofi", out.layer_map));
  out.span_kl = d.get<std::string>("span_kl", cofi ? "mean" : "sum");
  if (out.span_kl != "mean" && out.span_kl != "sum") d.error("span_kl", fmt::format("'{}' is not mean or sum", out.span_kl));
  out.lm_positions = d.get<std::string>("lm_positions", out.lm_positions);
  if (out.lm_positions != "masked" && out.lm_positions != "all")
    d.error("lm_positions", fmt::format("'{}' is not masked or all", out.lm_positions));
  if (out.temperature <= 0) d.error("temperature", "must be positive");
  d.close();
}

}  // namespace

std::string Recipe::run_dir() const { return run.dir.empty() ? (fs::path(run.output_root) / run.name).string() : run.dir; }

std::string Recipe::resolved_yaml() const {
  YAML::Emitter out;
  out << resolved;
  return std::string(out.c_str()) + "\n";
}

Recipe parse_recipe(const std::string& yaml_text, const std::string& source, const std::vector<std::string>& overrides) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::ParserException& e) {
    fail("{}:{}: YAML syntax error: {}", source, e.mark.line + 1, e.msg);
  }
  if (root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  SCULPT_CHECK(root.IsMap(), "{}: a recipe is a map of sections (run, model, data, train, ...)", source);
  for (const auto& o : overrides) apply_override(root, o);

  auto errors = std::make_shared<ErrorList>();
  errors->file = source;
  Recipe r;
  r.source = source;
  Node top(root, "", errors);

  Node run = top.child("run");
  r.run.name = run.get<std::string>("name", r.run.name);
  r.run.output_root = run.get<std::string>("output_root", r.run.output_root);
  r.run.dir = run.get<std::string>("dir", "");
  r.run.seed = run.get<int64_t>("seed", r.run.seed);
  r.run.device = run.get<std::string>("device", r.run.device);
  if (r.run.device != "auto" && r.run.device != "cpu" && r.run.device != "cuda" && r.run.device.rfind("cuda:", 0) != 0)
    run.error("device", fmt::format("'{}' is not auto, cpu or cuda", r.run.device));
  r.run.threads = run.get<int64_t>("threads", r.run.threads);
  run.close();

  parse_model(top.child("model"), r.model);

  Node data = top.child("data");
  r.data.task = data.get<std::string>("task", r.data.task);
  r.data.root = expand_path(data.get<std::string>("root", r.data.root));
  r.data.max_seq_len = data.get<int64_t>("max_seq_len", r.data.max_seq_len);
  r.data.batch_size = data.get<int64_t>("batch_size", r.data.batch_size);
  r.data.eval_batch_size = data.get<int64_t>("eval_batch_size", r.data.eval_batch_size);
  r.data.bucket_by_length = data.get<bool>("bucket_by_length", r.data.bucket_by_length);
  r.data.max_train_examples = data.get<int64_t>("max_train_examples", 0);
  r.data.max_eval_examples = data.get<int64_t>("max_eval_examples", 0);
  r.data.train_file = expand_path(data.get<std::string>("train_file", ""));
  r.data.dev_file = expand_path(data.get<std::string>("dev_file", ""));
  if (r.data.is_squad()) {  // the official file names under data.root unless given
    const bool v2 = r.data.task == "squad_v2";
    if (r.data.train_file.empty()) r.data.train_file = r.data.root + (v2 ? "/train-v2.0.json" : "/train-v1.1.json");
    if (r.data.dev_file.empty()) r.data.dev_file = r.data.root + (v2 ? "/dev-v2.0.json" : "/dev-v1.1.json");
  }
  r.data.doc_stride = data.get<int64_t>("doc_stride", r.data.doc_stride);
  r.data.max_query_length = data.get<int64_t>("max_query_length", r.data.max_query_length);
  r.data.max_answer_length = data.get<int64_t>("max_answer_length", r.data.max_answer_length);
  r.data.sample_by = data.get<std::string>("sample_by", r.data.sample_by);
  if (r.data.sample_by != "line" && r.data.sample_by != "paragraph")
    data.error("sample_by", fmt::format("'{}' is not line or paragraph", r.data.sample_by));
  r.data.mlm_probability = data.get<double>("mlm_probability", r.data.mlm_probability);
  if (r.data.mlm_probability <= 0 || r.data.mlm_probability >= 1) data.error("mlm_probability", "must be in (0, 1)");
  r.data.whole_word_mask = data.get<bool>("whole_word_mask", false);
  r.data.validation_percent = data.get<int64_t>("validation_percent", r.data.validation_percent);
  if (r.data.validation_percent < 0 || r.data.validation_percent >= 100) data.error("validation_percent", "must be in [0, 100)");
  if (r.data.is_text() && r.data.train_file.empty()) data.error("train_file", "language modelling reads a text file: set data.train_file");
  if (r.data.is_clm() && r.model.family != "opt") data.error("task", "causal language modelling is implemented for model.family opt");
  if (r.data.is_text() && r.data.dev_file.empty() && r.data.validation_percent == 0)
    data.error("validation_percent", "no dev_file and no held-out share: nothing to evaluate");
  if (r.data.batch_size <= 0) data.error("batch_size", "must be positive");
  if (r.data.max_seq_len < 8) data.error("max_seq_len", "must be at least 8");
  data.close();

  Node train = top.child("train");
  r.train.duration = train.get_duration("duration", "3e");
  r.train.lr = train.get<double>("lr", r.train.lr);
  r.train.weight_decay = train.get<double>("weight_decay", r.train.weight_decay);
  r.train.warmup = train.get_duration("warmup", "0.1", true);
  r.train.max_grad_norm = train.get<double>("max_grad_norm", r.train.max_grad_norm);
  r.train.grad_accum = train.get<int64_t>("grad_accum", r.train.grad_accum);
  r.train.betas = train.get<std::vector<double>>("betas", r.train.betas);
  r.train.eps = train.get<double>("eps", r.train.eps);
  r.train.precision = train.get<std::string>("precision", r.train.precision);
  if (r.train.precision != "fp32" && r.train.precision != "bf16")
    train.error("precision", fmt::format("'{}' is not fp32 or bf16", r.train.precision));
  r.train.lr_schedule = train.get<std::string>("lr_schedule", r.train.lr_schedule);
  if (r.train.lr_schedule != "linear" && r.train.lr_schedule != "constant")
    train.error("lr_schedule", fmt::format("'{}' is not linear or constant", r.train.lr_schedule));
  r.train.freeze_embeddings = train.get<bool>("freeze_embeddings", false);
  r.train.grad_bucket_mb = train.get<double>("grad_bucket_mb", r.train.grad_bucket_mb);
  if (!(r.train.grad_bucket_mb > 0)) train.error("grad_bucket_mb", "must be positive");
  if (r.train.betas.size() != 2) train.error("betas", "expected two numbers [beta1, beta2]");
  if (r.train.grad_accum < 1) train.error("grad_accum", "must be at least 1");
  if (r.train.lr <= 0) train.error("lr", "must be positive");
  train.close();

  Node eval = top.child("eval");
  r.eval.every = eval.get_duration("every", "1e");
  r.eval.metric = eval.get<std::string>("metric", "");
  eval.close();

  Node ckpt = top.child("checkpoint");
  r.checkpoint.every = ckpt.get_duration("every", "500u");
  r.checkpoint.keep_last = ckpt.get<int64_t>("keep_last", r.checkpoint.keep_last);
  if (r.checkpoint.keep_last < 1) ckpt.error("keep_last", "must be at least 1");
  ckpt.close();

  Node logging = top.child("logging");
  r.logging.every = logging.get_duration("every", "50u");
  r.logging.progress_bar = logging.get<std::string>("progress_bar", r.logging.progress_bar);
  logging.close();

  if (top.has("prune")) {
    Node prune = top.child("prune");
    auto& p = r.prune;
    p.method = prune.get<std::string>("method", "sp3");
    const bool cofi = p.method == "cofi", one_shot = p.one_shot();
    if (p.method != "sp3" && !cofi && !one_shot)
      prune.error("method", fmt::format("'{}' is not sp3, cofi, magnitude, activation, taylor, slice or kmeans", p.method));
    p.target = prune.get<double>("target", cofi ? 0.95 : one_shot ? 0.5 : 0.06);
    if (one_shot) {
      p.sample_examples = prune.get<int64_t>("sample_examples", p.sample_examples);
      if (p.sample_examples < 1) prune.error("sample_examples", "at least 1 train example");
      p.scope = prune.get<std::string>("scope", p.scope);
      if (p.scope != "global" && p.scope != "per_layer") prune.error("scope", fmt::format("'{}' is not global or per_layer", p.scope));
      p.granularity = prune.get<std::string>("granularity", p.granularity);
      if (p.granularity != "units" && p.granularity != "blocks")
        prune.error("granularity", fmt::format("'{}' is not units or blocks", p.granularity));
      p.statistic = prune.get<std::string>("statistic", p.statistic);
      if (p.statistic != "mean_abs" && p.statistic != "apoz")
        prune.error("statistic", fmt::format("'{}' is not mean_abs or apoz", p.statistic));
      p.round_to = prune.get<int64_t>("round_to", p.round_to);
      if (p.round_to < 1) prune.error("round_to", "at least 1");
    }
    if (p.method == "kmeans") {
      p.bits = prune.get<int64_t>("bits", p.bits);
      if (p.bits < 1 || p.bits > 8) prune.error("bits", fmt::format("{} bits: codebooks of 2 to 256 centroids take 1 to 8", p.bits));
    }
    p.epsilon = prune.get<double>("epsilon", cofi ? 0.01 : 0.02);
    p.epsilon_below = prune.get<double>("epsilon_below", 1.0);
    if (p.epsilon < 0 || p.epsilon_below < 0) prune.error("epsilon", "epsilon and epsilon_below must be >= 0");
    if (!cofi) {
      p.init = prune.get<std::string>("init", p.init);
      if (p.init != "paper" && p.init != "exact") prune.error("init", fmt::format("'{}' is not paper or exact", p.init));
      p.pca_examples = prune.get<int64_t>("pca_examples", p.pca_examples);
      p.pca_tokens = prune.get<int64_t>("pca_tokens", p.pca_tokens);
      p.freeze_original = prune.get<bool>("freeze_original", true);
    } else if (r.model.family == "opt" || r.model.family == "t5") {  // CoFi's masks on a rotated decoder stream
      p.pca_examples = prune.get<int64_t>("pca_examples", p.pca_examples);
      p.freeze_original = prune.get<bool>("freeze_original", false);
    } else {
      p.freeze_original = false;
    }
    p.mask_lr = prune.get<double>("mask_lr", cofi ? 0.01 : 0.1);
    p.lambda_lr = prune.get<double>("lambda_lr", cofi ? 0.01 : 0.1);
    p.schedule_reg_lr = prune.get<bool>("schedule_reg_lr", !cofi);
    p.start = prune.get_duration("start", cofi ? "1e" : "2e");
    p.structural_start = prune.get_duration("structural_start", cofi ? p.start.str() : "8e");
    p.target_warmup = prune.get_duration("target_warmup", "2e");
    p.absolute = prune.get<bool>("absolute", false);
    p.controller = prune.get<std::string>("controller", p.controller);
    if (p.controller != "anti_windup" && p.controller != "ascent")
      prune.error("controller", fmt::format("'{}' is not anti_windup or ascent", p.controller));
    if (cofi) {
      p.intermediate_log_alpha = prune.get<double>("intermediate_log_alpha", p.intermediate_log_alpha);
      p.skip_empty_block_norm = prune.get<bool>("skip_empty_block_norm", false);
      p.layer_filter = prune.get<std::string>("layer_filter", p.layer_filter);
      if (p.layer_filter != "none" && p.layer_filter != "mha" && p.layer_filter != "ffn")
        prune.error("layer_filter", fmt::format("'{}' is not none, mha or ffn", p.layer_filter));
    }
    p.log_alpha_clamp = prune.get<double>("log_alpha_clamp", cofi ? 4.605 : 0.0);
    Node d = prune.child("distill");
    parse_distill(d, p.distill, cofi);
    p.finetune = prune.get_duration("finetune", cofi ? "20e" : "0u");
    p.finetune_lr = prune.get<double>("finetune_lr", p.finetune_lr);
    const bool decoder = r.model.family == "opt" || r.model.family == "t5";
    p.finetune_as = prune.get<std::string>("finetune_as", cofi && !r.data.is_squad() && !decoder ? "cofi" : "plain");
    if (p.finetune_as != "cofi" && p.finetune_as != "plain")
      prune.error("finetune_as", fmt::format("'{}' is not cofi or plain", p.finetune_as));
    if (p.finetune_as == "cofi" && !cofi)
      prune.error("finetune_as", "the distilled fine-tune stage continues CoFi's shared-mask distillation: method cofi only");
    if (p.finetune_as == "cofi" && r.data.is_squad())
      prune.error("finetune_as", "the distilled fine-tune stage reads GLUE tasks; on SQuAD the packed model fine-tunes plain");
    if (p.method == "sp3" && (p.target <= 0 || p.target > 1.2)) prune.error("target", "SP3's target is the remaining fraction, in (0, 1.2]");
    if (one_shot && (p.target < 0 || p.target >= 1)) prune.error("target", "a one-shot target is the share removed, in [0, 1)");
    if (cofi && (p.target < 0 || p.target >= 1)) prune.error("target", "CoFi's target is the pruned fraction, in [0, 1)");
    const bool opt = r.model.family == "opt" && !r.data.is_squad() && !r.data.is_mlm();
    const bool t5 = r.model.family == "t5" && !r.data.is_squad() && !r.data.is_text();
    if ((r.model.family != "bert" && !opt && !t5) || r.data.is_mlm())
      prune.error("method", "pruning is implemented for BERT on GLUE tasks and SQuAD, for OPT on GLUE tasks and causal LM "
                            "(data.task clm), and for T5 on GLUE tasks as text-to-text");
    if (prune.has("stream_masks")) {
      p.stream_masks = prune.get<std::string>("stream_masks", p.stream_masks);
      if (p.stream_masks != "shared" && p.stream_masks != "per_site")
        prune.error("stream_masks", fmt::format("'{}' is not shared or per_site", p.stream_masks));
      if (p.stream_masks == "per_site" && !((opt || t5) && p.method == "sp3"))
        prune.error("stream_masks", "per-site stream masks are for SP3 on OPT and T5 (BERT's SP3 has them always, CoFi one shared mask)");
    }
    if ((opt || t5) && p.finetune_as == "cofi")
      prune.error("finetune_as", "the distilled fine-tune stage is BERT's; a packed OPT or T5 fine-tunes plain");
    if (one_shot && r.data.is_squad()) prune.error("method", "one-shot compression reads GLUE tasks; on SQuAD use sp3 or cofi");
    if (r.model.path.empty()) prune.error("method", "pruning distils from a fine-tuned teacher: set model.path");
    prune.close();
  }

  if (top.has("distill")) {
    Node d = top.child("distill");
    r.distill.teacher = d.get<std::string>("teacher", "");
    parse_distill(d, r.distill, true);
    if (r.distill.teacher.empty()) d.error("teacher", "a distilled fine-tune needs the dense teacher's directory");
    if (r.prune.enabled()) d.error("teacher", "pruning distils through prune.distill; a top-level distill is for fine-tuning");
    if (r.model.family != "bert") d.error("teacher", "distilled fine-tuning is implemented for BERT (model.family bert)");
  }

  if (top.has("sparsity")) {
    Node s = top.child("sparsity");
    auto& sp = r.sparsity;
    sp.method = s.get<std::string>("method", "gmp");
    if (sp.method != "gmp" && sp.method != "lock") s.error("method", fmt::format("'{}' is not gmp or lock", sp.method));
    if (sp.method == "gmp") {
      sp.initial = s.get<double>("initial", sp.initial);
      sp.final = s.get<double>("final", sp.final);
      if (sp.initial < 0 || sp.initial >= 1 || sp.final < 0 || sp.final >= 1) s.error("final", "sparsities are shares pruned, in [0, 1)");
      sp.begin = s.get_duration("begin", "0u", true);
      sp.end = s.get_duration("end", "0.7", true);
      sp.every = s.get_duration("every", "100u");
      sp.exponent = s.get<double>("exponent", sp.exponent);
      if (sp.exponent <= 0) s.error("exponent", "must be positive");
      sp.scope = s.get<std::string>("scope", sp.scope);
      if (sp.scope != "uniform" && sp.scope != "global") s.error("scope", fmt::format("'{}' is not uniform or global", sp.scope));
    }
    sp.include = s.get<std::string>("include", sp.include);
    sp.exclude = s.get<std::string>("exclude", sp.exclude);
    if (r.prune.enabled()) s.error("method", "unstructured sparsity and structured pruning (prune:) are separate runs");
    s.close();
  }

  if (top.has("quantize")) {
    Node q = top.child("quantize");
    r.quantize.method = q.get<std::string>("method", "qat");
    if (r.quantize.method != "qat") q.error("method", fmt::format("'{}' is not qat", r.quantize.method));
    r.quantize.averaging = q.get<double>("averaging", r.quantize.averaging);
    if (r.quantize.averaging <= 0 || r.quantize.averaging > 1) q.error("averaging", "must be in (0, 1]");
    r.quantize.include = q.get<std::string>("include", r.quantize.include);
    r.quantize.exclude = q.get<std::string>("exclude", r.quantize.exclude);
    if (r.prune.enabled()) q.error("method", "quantization-aware training and structured pruning (prune:) are separate runs");
    q.close();
  }

  if (top.has("codebook")) {
    Node c = top.child("codebook");
    r.codebook.method = c.get<std::string>("method", "finetune");
    if (r.codebook.method != "finetune") c.error("method", fmt::format("'{}' is not finetune", r.codebook.method));
    if (r.prune.enabled()) c.error("method", "centroid fine-tuning and structured pruning (prune:) are separate runs");
    if (r.sparsity.enabled() || r.quantize.enabled())
      c.error("method", "centroid fine-tuning shares weights through the codebook; sparsity: and quantize: would move them off it");
    c.close();
  }

  Node debug = top.child("debug");
  r.debug.crash_after_step = debug.get<int64_t>("crash_after_step", 0);
  r.debug.step_delay_ms = debug.get<int64_t>("step_delay_ms", 0);
  debug.close();

  top.close();
  errors->throw_if_any();
  r.resolved = root;
  return r;
}

Recipe load_recipe(const std::string& path, const std::vector<std::string>& overrides) {
  return parse_recipe(io::read_file(path), path, overrides);
}

}  // namespace sculpt::recipe
