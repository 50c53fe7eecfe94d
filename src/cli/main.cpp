// sculpt: a tiny dispatcher; every verb lives in its own file.
#include <cstdio>
#include <cstring>
#include <string>

#include <c10/util/Exception.h>

#include "commands.h"
#include "sculpt/core/env.h"
#include "sculpt/core/error.h"
#include "sculpt/core/signals.h"

namespace {

const char* kUsage = R"(usage: sculpt <verb> [options]

  run RECIPE [key=value ...]      run a recipe (fine-tune, evaluate, export) into its run dir
  resume RUN_DIR [key=value ...]  continue a stopped run from its newest checkpoint
  validate RECIPE [key=value ...] check a recipe and print the resolved plan (dry run)
  eval --model DIR --task T [--data ROOT] [--split dev]   evaluate an HF model on GLUE
  forward --model DIR --inputs IN.safetensors --out OUT.safetensors
  tokenize --tokenizer DIR --input IN.jsonl --out OUT.jsonl
  tokenize --cache RECIPE [key=value ...]   fill the token cache with every split the recipe reads
  tokenize --corpus TEXT --tokenizer DIR [--block-size 128] [--sample-by line|paragraph]   a corpus into cached MLM blocks
  bench train [--model bert-base|--config JSON] [--batch 32] [--seq 128] [--device cpu|cuda] [--steps 10]
  bench infer --model DIR [--model DIR ...] [--shape 128x128 ...]   dense vs packed, same run
  bench data [--synthetic 400000 [--write-mnli DIR] | --task mnli [--split train]] [--threads N] [--max-length 128]   vs HF tokenizers, same run
  sweep SWEEP.yaml [--jobs N] [--status] [--slurm] [--stage S] [--tasks T1,T2] [--variants V1,V2]   run (or resume) a sweep's cells; --slurm: sbatch arrays
  table SWEEP_DIR [--out DIR] [--records DIR] [--no-speed]   the sweep's table (md/csv/tex), speedups, plots; cell records
  compress --method magnitude|activation|taylor|slice --model DIR --target X --out DIR [--task T | --text FILE]
           [--examples 256] [--cost params|flops] [--length 128] [--scope global|per_layer] [--granularity units|blocks]
                                  one-shot pruning (heads, neurons, blocks) or PCA slicing to a packed model;
                                  BERT (taylor on a BertForMaskedLM: its masked-LM loss); OPT (magnitude, activation,
                                  taylor on its causal-LM loss, slice); T5 (magnitude, activation, slice)
  compress --method kmeans --model DIR --bits 4 --out DIR   k-means weight sharing (b-bit codebook per matrix)
  quantize --model DIR --out DIR [--mode static|dynamic] [--task T | --text FILE] [--examples 256]
                                  post-training int8 of a dense or packed BERT (symmetric per-channel weights;
                                  static input ranges from calibration)
  env                             LibTorch, CUDA, cuDNN, NCCL, CPU units, threads, GPUs (for bug reports)
)";

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "help")) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const std::string verb = argv[1];
  sculpt::keep_freed_memory();
  if (verb == "run" || verb == "resume" || verb == "eval" || verb == "bench" || verb == "sweep" || verb == "env" || verb == "compress" ||
      verb == "quantize")
    sculpt::reexec_with_short_openmp_spin(argv);
  sculpt::init_threads();
  try {
    using namespace sculpt::cli;
    if (verb == "run") return cmd_run(argc, argv);
    if (verb == "resume") return cmd_resume(argc, argv);
    if (verb == "validate") return cmd_validate(argc, argv);
    if (verb == "forward") return cmd_forward(argc, argv);
    if (verb == "tokenize") return cmd_tokenize(argc, argv);
    if (verb == "eval") return cmd_eval(argc, argv);
    if (verb == "bench") return cmd_bench(argc, argv);
    if (verb == "env") return cmd_env(argc, argv);
    if (verb == "sweep") return cmd_sweep(argc, argv);
    if (verb == "table") return cmd_table(argc, argv);
    if (verb == "compress") return cmd_compress(argc, argv);
    if (verb == "quantize") return cmd_quantize(argc, argv);
    std::fprintf(stderr, "error: unknown verb '%s'\n%s", verb.c_str(), kUsage);
    return 2;
  } catch (const sculpt::StopRequested& stop) {
    return 143;  // 128 + SIGTERM: the scheduler requeues, `sculpt resume` continues
  } catch (const sculpt::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    if (!e.hint().empty()) std::fprintf(stderr, "hint: %s\n", e.hint().c_str());
    return 1;
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what_without_backtrace());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
