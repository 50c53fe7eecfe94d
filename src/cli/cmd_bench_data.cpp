// sculpt bench data: tokenization throughput, peak memory and token-cache reload time on a GLUE
// split or a synthetic MNLI-sized set of pairs drawn from the local GLUE text, beside Hugging
// Face's `tokenizers` (Rust, scripts/bench_tokenizers.py in the project's venv) on the same
// input, thread count and length, in the same run; the ids of the two are compared.
#include <ATen/Parallel.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

#include "args.h"
#include "commands.h"
#include "sculpt/core/env.h"
#include "sculpt/core/error.h"
#include "sculpt/data/batching.h"
#include "sculpt/data/glue.h"
#include "sculpt/data/token_cache.h"
#include "sculpt/tokenizers/tokenizer.h"

namespace fs = std::filesystem;

namespace sculpt::cli {
namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// VmHWM / VmRSS of this process in MB; reset_peak() starts a new high-water mark.
double status_mb(const char* field) {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind(field, 0) == 0) return std::stod(line.substr(std::string(field).size())) / 1024.0;
  return 0;
}
void reset_peak() { std::ofstream("/proc/self/clear_refs") << "5"; }

// `n` pairs of sentences drawn (seeded) from every local GLUE train and dev file: MNLI's size and
// kind of text where MNLI itself is not downloaded.
std::vector<data::GlueExample> synthetic_pairs(const std::string& root, size_t n, uint64_t seed = 20261202) {
  std::vector<std::string> pool;
  for (const auto& task : data::glue_tasks())
    for (const std::string split : {"train", "dev"}) {
      if (!fs::exists(data::glue_split_path(task, root, split))) continue;
      for (auto& row : data::read_glue_split(task, root, split)) {
        pool.push_back(std::move(row.text_a));
        if (row.text_b) pool.push_back(std::move(*row.text_b));
      }
    }
  SCULPT_CHECK(!pool.empty(), "{}: no GLUE files to draw sentences from (scripts/download_glue.sh)", root);
  std::mt19937_64 rng(seed);
  std::vector<data::GlueExample> out(n);
  for (size_t i = 0; i < n; ++i) {
    out[i].text_a = pool[rng() % pool.size()];
    out[i].text_b = pool[rng() % pool.size()];
    out[i].label = static_cast<float>(i % 3);  // MNLI's three classes, in turn
  }
  return out;
}

// The synthetic pairs as an MNLI directory (DIR/MNLI/train.tsv with TRAIN, dev_matched.tsv and
// dev_mismatched.tsv with MNLI's dev sizes), in GLUE's column layout, so that a whole training
// run's data path can be measured at MNLI's size where MNLI itself is not downloaded.
void write_synthetic_mnli(const std::string& root, const fs::path& dir, const std::vector<data::GlueExample>& train) {
  fs::create_directories(dir / "MNLI");
  const auto& labels = data::glue_task("mnli").labels;
  auto write = [&](const std::string& name, const std::vector<data::GlueExample>& rows) {
    std::ofstream out(dir / "MNLI" / (name + ".tsv"));
    out << "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\tsentence2_parse"
           "\tsentence1\tsentence2\tlabel1\tgold_label\n";
    for (size_t i = 0; i < rows.size(); ++i) {
      const auto& label = labels[static_cast<size_t>(rows[i].label)];
      out << i << "\t0\t0\tsynthetic\t\t\t\t\t" << rows[i].text_a << '\t' << rows[i].text_b.value_or("") << '\t' << label << '\t'
          << label << '\n';
    }
    SCULPT_CHECK(out.good(), "{}: cannot write", (dir / "MNLI" / (name + ".tsv")).string());
  };
  write("train", train);
  write("dev_matched", synthetic_pairs(root, 9815, 1));
  write("dev_mismatched", synthetic_pairs(root, 9832, 2));
  std::printf("wrote %zu train pairs and MNLI-sized dev sets under %s/MNLI\n", train.size(), dir.string().c_str());
}

struct HfResult {
  nlohmann::json stats;
  std::vector<std::vector<int32_t>> ids;
};

// scripts/bench_tokenizers.py on the same pairs; nullopt (with the reason printed) without it.
std::optional<HfResult> run_hf(const std::string& python, const std::string& script, const std::string& tokenizer,
                               const std::vector<data::GlueExample>& rows, int64_t max_length, int threads,
                               const fs::path& tmp) {
  if (!fs::exists(python) || !fs::exists(script) || !fs::exists(fs::path(tokenizer) / "tokenizer.json")) {
    std::printf("HF tokenizers: skipped (needs %s, %s and %s/tokenizer.json; scripts/setup.sh --test installs it)\n",
                python.c_str(), script.c_str(), tokenizer.c_str());
    return std::nullopt;
  }
  const auto input = tmp / "pairs.tsv", ids = tmp / "hf_ids.bin";
  {
    std::ofstream out(input);
    for (const auto& r : rows) out << r.text_a << '\t' << r.text_b.value_or("") << '\n';
  }
  const std::string command = fmt::format(
      "RAYON_NUM_THREADS={} TOKENIZERS_PARALLELISM=true '{}' '{}' --tokenizer '{}' --input '{}' --max-length {} --out '{}'",
      threads, python, script, tokenizer, input.string(), max_length, ids.string());
  FILE* pipe = ::popen(command.c_str(), "r");
  SCULPT_CHECK(pipe, "cannot run {}", command);
  std::string text;
  char buffer[4096];
  while (size_t got = std::fread(buffer, 1, sizeof(buffer), pipe)) text.append(buffer, got);
  const int status = ::pclose(pipe);
  if (status != 0 || text.empty()) {
    std::printf("HF tokenizers: %s failed (status %d)\n", script.c_str(), status);
    return std::nullopt;
  }
  HfResult out;
  out.stats = nlohmann::json::parse(text.substr(text.rfind('{')));
  std::ifstream in(ids, std::ios::binary);
  int64_t n = 0;
  in.read(reinterpret_cast<char*>(&n), 8);
  std::vector<int64_t> offsets(static_cast<size_t>(n) + 1);
  in.read(reinterpret_cast<char*>(offsets.data()), static_cast<std::streamsize>(offsets.size() * 8));
  std::vector<int32_t> flat(static_cast<size_t>(offsets.back()));
  in.read(reinterpret_cast<char*>(flat.data()), static_cast<std::streamsize>(flat.size() * 4));
  SCULPT_CHECK(in.good(), "{}: truncated", ids.string());
  for (int64_t i = 0; i < n; ++i) out.ids.emplace_back(flat.begin() + offsets[i], flat.begin() + offsets[i + 1]);
  return out;
}

}  // namespace

int bench_data(int argc, char** argv) {
  auto args = Args::parse(argc, argv, 3, {"tokenizer", "task", "split", "data", "synthetic", "threads", "max-length", "python", "write-mnli"});
  const std::string tokenizer_dir = expand_path(args.get("tokenizer", "${SCULPT_SHARED}/models/bert-base-uncased-tokenizer"));
  const std::string root = expand_path(args.get("data", "${SCULPT_DATA}/glue"));
  const int threads = std::stoi(args.get("threads", std::to_string(at::get_num_threads())));
  const int64_t max_length = std::stoll(args.get("max-length", "128"));
  const fs::path exe_dir = fs::read_symlink("/proc/self/exe").parent_path();
  const std::string python = args.get("python", (exe_dir / "../.venv/bin/python").lexically_normal().string());
  const std::string script = (exe_dir / "../scripts/bench_tokenizers.py").lexically_normal().string();

  auto tokenizer = tokenizers::load_tokenizer(tokenizer_dir);
  auto t0 = Clock::now();
  std::vector<data::GlueExample> rows;
  std::string what;
  if (args.has("task")) {
    const auto& task = data::glue_task(args.get("task"));
    rows = data::read_glue_split(task, root, args.get("split", "train"));
    what = data::glue_split_path(task, root, args.get("split", "train"));
  } else {
    const size_t n = std::stoull(args.get("synthetic", "400000"));
    rows = synthetic_pairs(root, n);
    what = fmt::format("{} synthetic pairs drawn from the GLUE text under {}", n, root);
    if (args.has("write-mnli")) {
      write_synthetic_mnli(root, args.get("write-mnli"), rows);
      return 0;
    }
  }
  const double read_s = since(t0);
  std::printf("bench data: %s (%zu examples, read in %.2fs), tokenizer %s, max_length %lld, %d threads\n", what.c_str(),
              rows.size(), read_s, tokenizer_dir.c_str(), static_cast<long long>(max_length), threads);

  const double rss_before = status_mb("VmRSS:");
  reset_peak();
  t0 = Clock::now();
  auto examples = data::encode_glue(*tokenizer, rows, max_length, threads);
  const double encode_s = since(t0);
  const double peak_growth = status_mb("VmHWM:") - rss_before;
  size_t tokens = 0;
  for (const auto& e : examples) tokens += e.ids.size();

  const fs::path tmp = fs::temp_directory_path() / fmt::format("sculpt_bench_data_{}", ::getpid());
  fs::create_directories(tmp);
  const std::string cache_file = (tmp / "cache.safetensors").string();
  t0 = Clock::now();
  data::write_token_file(cache_file, "bench", what, examples);
  const double write_s = since(t0);
  t0 = Clock::now();
  auto reloaded = data::read_token_file(cache_file, "bench", tokenizer->vocab_size());
  const double reload_s = since(t0);
  const double file_mb = static_cast<double>(fs::file_size(cache_file)) / (1 << 20);
  SCULPT_CHECK(reloaded.size() == examples.size() && reloaded.back().ids == examples.back().ids, "token cache round trip differs");

  std::printf("%-22s %12s %12s %10s %16s\n", "", "examples/s", "tokens/s", "seconds", "peak growth MB");
  const double n = static_cast<double>(examples.size());
  std::printf("%-22s %12.0f %12.0f %10.2f %16.0f\n", "sculpt", n / encode_s, static_cast<double>(tokens) / encode_s, encode_s,
              peak_growth);
  auto hf = run_hf(python, script, tokenizer_dir, rows, max_length, threads, tmp);
  if (hf) {
    const double hs = hf->stats["seconds"].get<double>();
    std::printf("%-22s %12.0f %12.0f %10.2f %16.0f\n", ("HF tokenizers " + hf->stats["version"].get<std::string>()).c_str(),
                n / hs, hf->stats["tokens"].get<double>() / hs, hs, hf->stats["encode_rss_growth_mb"].get<double>());
    size_t same = 0, first_diff = examples.size();
    for (size_t i = 0; i < examples.size() && i < hf->ids.size(); ++i) {
      const bool equal = std::equal(examples[i].ids.begin(), examples[i].ids.end(), hf->ids[i].begin(), hf->ids[i].end());
      same += equal;
      if (!equal && first_diff == examples.size()) first_diff = i;
    }
    std::printf("ids identical: %zu / %zu examples%s\n", same, examples.size(),
                first_diff < examples.size() ? fmt::format(" (first difference: example {}, '{}' / '{}')", first_diff,
                                                           rows[first_diff].text_a, rows[first_diff].text_b.value_or("")).c_str()
                                             : "");
    std::printf("speed ratio sculpt / HF tokenizers: %.2fx (examples/s, %d threads each)\n", hs / encode_s, threads);
  }
  std::printf("token cache: written in %.2fs, reloaded in %.2fs (%.1f MB file, %zu examples)\n", write_s, reload_s, file_mb,
              reloaded.size());
  fs::remove_all(tmp);
  return 0;
}

}  // namespace sculpt::cli
