// Recipe: the typed, validated form of a recipe YAML. The schema is closed: an unknown or
// mistyped key is an error naming the key path and line. `resolved` holds the tree with
// every default filled in; it is written into the run directory.
#pragma once
#include <yaml-cpp/yaml.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "sculpt/core/schedule.h"

namespace sculpt::recipe {

struct RunSection {
  std::string name = "run";
  std::string output_root = "runs";
  std::string dir;        // explicit run directory; default <output_root>/<name>
  int64_t seed = 42;
  std::string device = "auto";  // auto | cpu | cuda
  int64_t threads = 0;          // 0: every core
};

struct ModelSection {
  std::string family = "bert";  // bert | t5 | opt
  std::string path;        // HF directory of the starting checkpoint; empty: build from `config`
  std::string tokenizer;   // HF tokenizer directory; default: `path`
  nlohmann::json config;   // HF config.json keys for a model built from scratch
};

struct DataSection {
  std::string task = "sst2";  // a GLUE task, squad, squad_v2, mlm (masked LM on train_file's text), or clm (causal LM)
  std::string root = "${SCULPT_DATA}/glue";
  int64_t max_seq_len = 128;
  int64_t batch_size = 32;
  int64_t eval_batch_size = 128;
  bool bucket_by_length = true;
  int64_t max_train_examples = 0;  // 0: all
  int64_t max_eval_examples = 0;
  std::string train_file, dev_file; // SQuAD JSON files; resolved to <root>/{train,dev}-v1.1.json (v2.0);
                                    // mlm, clm: text files (dev_file empty: validation_percent of the train blocks)
  int64_t doc_stride = 128;         // SQuAD windows share this many tokens
  int64_t max_query_length = 64;    // SQuAD
  int64_t max_answer_length = 30;   // SQuAD
  // mlm (data/text_corpus.h, data/mlm_masking.h): blocks of max_seq_len tokens
  std::string sample_by = "line";  // line | paragraph
  double mlm_probability = 0.15;
  bool whole_word_mask = false;
  int64_t validation_percent = 5;  // run_mlm's validation_split_percentage: the first blocks held out
  bool is_squad() const { return task == "squad" || task == "squad_v2"; }
  bool is_mlm() const { return task == "mlm"; }
  bool is_clm() const { return task == "clm"; }  // causal LM on train_file's text (OPT)
  bool is_text() const { return is_mlm() || is_clm(); }
};

struct TrainSection {
  Duration duration = Duration::parse("3e");
  double lr = 2e-5;
  double weight_decay = 0.01;
  Duration warmup = Duration::parse("0.1", true);
  double max_grad_norm = 1.0;
  int64_t grad_accum = 1;
  std::vector<double> betas{0.9, 0.999};
  double eps = 1e-8;
  std::string precision = "fp32";  // fp32 | bf16 (autocast for the forward; fp32 weights and optimizer)
  std::string lr_schedule = "linear";  // linear (warmup, then linear decay to 0) | constant (warmup, then lr)
  bool freeze_embeddings = false;      // word, position and type embeddings and their LayerNorm
  double grad_bucket_mb = 25;          // data parallelism: gradients summed in buckets of this size (DDP's bucket_cap_mb)
};

struct EvalSection {
  Duration every = Duration::parse("1e");
  std::string metric;  // default: the task's main metric
};

struct CheckpointSection {
  Duration every = Duration::parse("500u");
  int64_t keep_last = 2;
};

struct LoggingSection {
  Duration every = Duration::parse("50u");
  std::string progress_bar = "auto";  // auto (terminal only) | on | off
};

// Structured pruning with distillation (method.md §3 SP3, §5 CoFi). Empty method: no pruning.
// Defaults depend on the method; recipe.resolved.yaml shows the values in force.
struct DistillSection {
  std::string teacher;  // top-level `distill:` only: fine-tune a packed model distilling from this dense teacher
  double temperature = 2;
  double pred_weight = 0.3, layer_weight = 0.7, task_weight = 0;  // SP3: 0.3 KL + 0.7 layer
  bool t_squared = false;                                         // CoFi multiplies the KL by T^2
  std::string layer_map = "sp3";                                  // sp3 (all states, j >= i) | cofi
  std::string span_kl = "mean";  // SQuAD's start and end KLs: mean (CoFi's and Intel's code) | sum (SP3's)
  // Masked LM's KL over: masked (the tokens the loss reads, the head run on those rows only) |
  // all (every real token, as IntelLabs' HFTeacherWrapper for Prune OFA: each token an example).
  std::string lm_positions = "masked";
};

struct PruneSection {
  // "" | sp3 | cofi (masks learned under distillation) | magnitude | activation | taylor | slice
  // (one-shot, compress/one_shot.h: no training, then the same packed evaluation and fine-tune stage)
  // | kmeans (one-shot too: Deep Compression's codebooks, compress/kmeans_model.h; its fine-tune
  // stage trains the centroids)
  std::string method;
  double target = 0.06;        // sp3: remaining fraction (residual maps included); cofi, one-shot: pruned fraction
                               // (slice: of the hidden dims)
  double epsilon = 0.02;       // best checkpoint only within target + epsilon (cofi: target - epsilon)
  double epsilon_below = 1.0;  // ... and no further than this past the target on the other side (1: no bound, as SP3/CoFi)
  std::string init = "paper";  // sp3 PCA init: paper (approximate) | exact
  int64_t pca_examples = 512, pca_tokens = 8;
  bool freeze_original = true;     // sp3: originals frozen, compactors trained
  double mask_lr = 0.1, lambda_lr = 0.1;
  bool schedule_reg_lr = true;     // sp3: mask and lambda rates decay with the model's
  Duration start = Duration::parse("2e");             // masks of group 0 (and the constraint) from here
  Duration structural_start = Duration::parse("8e");  // heads, MHA and FFN layers from here
  Duration target_warmup = Duration::parse("2e");     // ramp from all-kept to the target
  bool absolute = false;           // |s - t| in the linear term
  // How lambda follows the constraint. ascent: AdamW gradient ascent on both lambdas, unbounded
  // (SP3's and CoFi's code): lambda1 winds up while the masks lag the ramp and then drives the
  // size far past the target. anti_windup: the same ascent looking a few updates ahead (the
  // loss sees the predicted size, lambda1 is projected to 0 where it would push that size past
  // the target); compress/lagrangian.h says how far and why.
  std::string controller = "anti_windup";
  // OPT/T5 sp3: shared (one stream mask in the rotated basis, every writer) | per_site (a mask
  // per residual site, as SP3's BERT: each block reads and writes its own coordinates;
  // compress/pack_decoder.h). BERT's SP3 is always per-site, CoFi always shared.
  std::string stream_masks = "shared";
  double intermediate_log_alpha = 10;  // cofi: FFN neuron masks' log alpha init mean (CoFi's code: 0, its ISSUE #51)
  bool skip_empty_block_norm = false;  // cofi: an MHA/FFN block whose mask is 0 skips its LayerNorm (CoFi's code)
  std::string layer_filter = "none";   // cofi layer distillation matches only student layers whose block exists:
                                       // none | mha (CoFi's code) | ffn (what its maintainer says it should be)
  double log_alpha_clamp = 0;      // cofi: clamp log alpha to [-c, c] after each step (0: never)
  DistillSection distill;
  Duration finetune = Duration::parse("0u");  // fine-tune stage after packing (0: none; CoFi: 20e)
  double finetune_lr = 2e-5;
  // cofi: the stage keeps distilling from the teacher (same loss weights), constant lr, frozen
  // embeddings, as CoFi's code; plain: the task loss with the recipe's schedule.
  std::string finetune_as = "plain";
  // One-shot methods: how many random train examples the scores (or slice's principal
  // components) read, and how the removed share is allocated (compress/allocation.h).
  int64_t sample_examples = 256;
  std::string scope = "global";       // global | per_layer
  std::string granularity = "units";  // units (heads, neurons) | blocks
  std::string statistic = "mean_abs"; // activation: mean_abs | apoz
  int64_t round_to = 8;               // slice: kept dims a multiple of this
  int64_t bits = 4;                   // kmeans: 2^bits centroids per matrix
  bool enabled() const { return !method.empty(); }
  bool one_shot() const {
    return method == "magnitude" || method == "activation" || method == "taylor" || method == "slice" || method == "kmeans";
  }
};

// Unstructured sparsity of the weight matrices (Prune Once for All, method.md §6.2).
// gmp: Zhu & Gupta's gradual magnitude pruning, s_t = s_f + (s_i - s_f)(1 - (t - t0)/(t1 - t0))^3,
// masks recomputed every `every` updates from t0 to t1; lock: the zeros the model came with stay
// zero (pattern-locked transfer). Pruned weights get no gradient and are re-zeroed after each update.
struct SparsitySection {
  std::string method;  // "" | gmp | lock
  double initial = 0, final = 0.9;
  Duration begin = Duration::parse("0u"), end = Duration::parse("0.7", true), every = Duration::parse("100u");
  double exponent = 3;
  std::string scope = "uniform";  // uniform (each matrix alone) | global (one threshold for all)
  // Which parameters (HF names, 2-D only): the encoder's linear maps by default.
  std::string include = R"((layer|layers|block)\.[0-9]+\..*weight$)";
  std::string exclude = "relative_attention_bias";
  bool enabled() const { return !method.empty(); }
};

// 8-bit quantization-aware training (compress/quantize.h): fake-quantized weights and inputs of
// the chosen linear maps while training; the exported best/ and final/ are int8 directories.
struct QuantizeSection {
  std::string method;  // "" | qat
  double averaging = 0.01;  // the inputs' moving-average range
  std::string include = R"((layer|layers|block)\.[0-9]+\..*weight$)";  // HF names of the quantized weights
  std::string exclude = "relative_attention_bias";
  bool enabled() const { return !method.empty(); }
};

// Deep Compression's centroid fine-tuning (compress/codebook_share.h): a model read from a
// k-means directory (`sculpt compress --method kmeans`) trains with its weights shared: each coded
// matrix's gradient summed per cluster, its entries put back on their centroids after every
// update; best/ and final/ are codebook directories with the same indices.
struct CodebookSection {
  std::string method;  // "" | finetune
  bool enabled() const { return !method.empty(); }
};

struct DebugSection {
  int64_t crash_after_step = 0;  // tests: SIGKILL self right after this update (0: never)
  int64_t step_delay_ms = 0;     // tests: sleep after each update, so a signal lands mid-run
};

struct Recipe {
  std::string source;  // file name for messages
  RunSection run;
  ModelSection model;
  DataSection data;
  TrainSection train;
  EvalSection eval;
  CheckpointSection checkpoint;
  LoggingSection logging;
  PruneSection prune;
  DistillSection distill;  // set (distill.teacher) for a fine-tune that distils from a teacher
  SparsitySection sparsity;
  QuantizeSection quantize;
  CodebookSection codebook;
  DebugSection debug;
  YAML::Node resolved;

  std::string run_dir() const;
  std::string resolved_yaml() const;
};

// Parse YAML text (with key=value overrides applied first); throws sculpt::Error listing
// every problem with file, line and key path.
Recipe parse_recipe(const std::string& yaml_text, const std::string& source,
                    const std::vector<std::string>& overrides = {});
Recipe load_recipe(const std::string& path, const std::vector<std::string>& overrides = {});

}  // namespace sculpt::recipe
