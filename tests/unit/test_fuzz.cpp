// A seeded in-process fuzz suite over every input a user hands sculpt: safetensors bytes,
// config.json, recipes, GLUE TSV, SQuAD JSON, tokenizer files, token-cache files and codebook weights. Each
// mutated input must be accepted or refused with a sculpt::Error (a message naming the file); any other exception, a
// crash or a hang fails the suite. Allocation stays bounded because every size is checked
// against the bytes present (safetensors) or a range (configs) before anything is allocated.
// Counts per target are printed; SCULPT_FUZZ_SCALE multiplies them (default 1: ~12,500 cases).
#include <cstdlib>
#include <cstring>
#include <functional>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "sculpt/core/error.h"
#include "sculpt/data/batching.h"
#include "sculpt/data/glue.h"
#include "sculpt/data/glue_text.h"
#include "sculpt/data/squad.h"
#include "sculpt/data/text_corpus.h"
#include "sculpt/data/token_cache.h"
#include "sculpt/io/codebook_weights.h"
#include "sculpt/io/files.h"
#include "sculpt/io/hf_dir.h"
#include "sculpt/io/safetensors.h"
#include "sculpt/models/reference_forward.h"
#include "sculpt/recipe/recipe.h"
#include "sculpt/tokenizers/tokenizer.h"
#include "sculpt/tokenizers/wordpiece.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace sculpt {
namespace {

int scale() {
  const char* s = std::getenv("SCULPT_FUZZ_SCALE");
  return s && std::atoi(s) > 0 ? std::atoi(s) : 1;
}

const char* const kInteresting[] = {"0",          "-1",        "1e309",  "4294967296", "9223372036854775807", "-9223372036854775808",
                                    "1000000000", "0.5",       "NaN",    "\"\"",       "null",                "[]",
                                    "{}",         "true",      "\t",     "\n",         "\xff\xfe",            "\xe2\x82",
                                    "65536",      "16777217",  "\"x\"",  ":",          ",",                   "\\u0000"};

// 1-4 random edits: bit flips, random bytes, deletions, insertions of bytes or interesting
// tokens, duplicated ranges, truncation, digits replaced by an extreme number.
std::string mutate(std::string s, std::mt19937_64& rng) {
  auto pick = [&](size_t n) { return n ? static_cast<size_t>(rng() % n) : 0; };
  const int edits = 1 + static_cast<int>(rng() % 4);
  for (int k = 0; k < edits; ++k) {
    const size_t at = pick(s.size() + 1);
    switch (rng() % 7) {
      case 0:
        if (!s.empty()) s[pick(s.size())] ^= static_cast<char>(1 << (rng() % 8));
        break;
      case 1:
        if (!s.empty()) s[pick(s.size())] = static_cast<char>(rng());
        break;
      case 2:
        s.erase(std::min(at, s.size()), 1 + pick(16));
        break;
      case 3:
        s.insert(at, kInteresting[pick(std::size(kInteresting))]);
        break;
      case 4: {
        const size_t len = 1 + pick(32);
        if (at < s.size()) s.insert(pick(s.size() + 1), s.substr(at, len));
        break;
      }
      case 5:
        s.resize(at);
        break;
      default: {
        size_t d = s.find_first_of("0123456789", at);
        if (d == std::string::npos) break;
        size_t e = d;
        while (e < s.size() && std::isdigit(static_cast<unsigned char>(s[e]))) ++e;
        s.replace(d, e - d, kInteresting[pick(std::size(kInteresting))]);
      }
    }
  }
  return s;
}

// A safetensors file mutated whole (even cases) or in its header JSON alone with the length
// prefix fixed (odd cases), so that parsing gets past it and the checks behind it get their turn.
std::string mutate_safetensors(const std::string& valid, int i, std::mt19937_64& rng) {
  if (i % 2 == 0) return mutate(valid, rng);
  uint64_t header_len = 0;
  std::memcpy(&header_len, valid.data(), 8);
  std::string header = mutate(valid.substr(8, header_len), rng);
  const uint64_t len = header.size();
  return std::string(reinterpret_cast<const char*>(&len), 8) + header + valid.substr(8 + header_len);
}

struct Tally {
  int accepted = 0, refused = 0;
  std::vector<std::string> failures;  // non-sculpt exceptions, with the case number
};

// Run one case: ok / sculpt::Error / anything else (a failure, kept with the input's number).
template <typename Fn>
void run_case(Tally& t, int number, Fn&& fn) {
  try {
    fn();
    ++t.accepted;
  } catch (const Error&) {
    ++t.refused;
  } catch (const std::exception& e) {
    if (t.failures.size() < 10) t.failures.push_back(fmt::format("case {}: {}", number, e.what()));
  }
}

void report(const char* target, const Tally& t) {
  std::printf("[fuzz] %-12s %6d cases: %6d accepted, %6d refused, %zu other exceptions\n", target,
              t.accepted + t.refused + static_cast<int>(t.failures.size()), t.accepted, t.refused, t.failures.size());
  for (const auto& f : t.failures) ADD_FAILURE() << target << ": " << f;
}

std::string slurp(const std::string& path) { return io::read_file(path); }
void write(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

TEST(Fuzz, SafetensorsBytesAndHeaders) {
  std::mt19937_64 rng(1);
  const std::string valid = io::serialize_safetensors(
      {{"a", torch::arange(12, torch::kFloat32).reshape({3, 4})}, {"b", torch::ones({2}, torch::kBFloat16)},
       {"c", torch::zeros({0}, torch::kInt64)}, {"d", torch::tensor(true)}},
      {{"format", "pt"}});
  Tally t;
  const int n = 3000 * scale();
  for (int i = 0; i < n; ++i) {
    const std::string bytes = mutate_safetensors(valid, i, rng);
    run_case(t, i, [&] {
      auto content = io::parse_safetensors("fuzz.safetensors", bytes.data(), bytes.size());
      for (auto& [k, v] : content.tensors) (void)v.sum();
    });
  }
  report("safetensors", t);
}

// Mutated config.json beside a fixture's real weights, run as `sculpt forward` runs it.
TEST(Fuzz, ConfigJsonOfEveryFamily) {
  SCULPT_REQUIRE_SHARED(root, "fixtures/hf");
  std::mt19937_64 rng(2);
  testing::TempDir tmp;
  Tally t;
  const std::vector<std::string> fixtures = {"bert_seqcls", "opt_seqcls", "t5_small"};
  std::map<std::string, std::string> configs;
  for (const auto& f : fixtures) {
    fs::create_directories(tmp.str(f));
    fs::create_symlink(root + "/" + f + "/model.safetensors", tmp.str(f + "/model.safetensors"));
    configs[f] = slurp(root + "/" + f + "/config.json");
  }
  const io::TensorMap inputs = {{"input_ids", torch::tensor({{5, 6, 7, 8}}, torch::kLong)}};
  const int n = 1500 * scale();
  for (int i = 0; i < n; ++i) {
    const auto& f = fixtures[static_cast<size_t>(i) % fixtures.size()];
    write(tmp.str(f + "/config.json"), mutate(configs[f], rng));
    run_case(t, i, [&] { models::reference_forward(tmp.str(f), inputs); });
  }
  report("config.json", t);
}

TEST(Fuzz, Recipes) {
  std::mt19937_64 rng(3);
  std::vector<std::string> texts;
  for (const auto& e : fs::directory_iterator(std::string(SCULPT_SOURCE_DIR) + "/recipes/tests")) texts.push_back(slurp(e.path().string()));
  Tally t;
  const int n = 3000 * scale();
  for (int i = 0; i < n; ++i) {
    const std::string text = mutate(texts[static_cast<size_t>(i) % texts.size()], rng);
    run_case(t, i, [&] { recipe::parse_recipe(text, "fuzz.yaml"); });
  }
  report("recipe", t);
}

TEST(Fuzz, GlueTsv) {
  SCULPT_REQUIRE_SHARED(glue, "data/glue");
  SCULPT_REQUIRE_SHARED(tok, "fixtures/hf/tok_bert_wordpiece");
  std::mt19937_64 rng(4);
  const auto tokenizer = tokenizers::load_tokenizer(tok);
  testing::TempDir tmp;
  const std::vector<std::pair<std::string, std::string>> tasks = {{"mrpc", "MRPC"}, {"stsb", "STS-B"}, {"cola", "CoLA"}, {"rte", "RTE"}};
  std::map<std::string, std::string> heads;
  for (const auto& [name, dir] : tasks) {
    std::istringstream in(slurp(glue + "/" + dir + "/dev.tsv"));
    std::string head, line;
    for (int k = 0; k < 12 && std::getline(in, line); ++k) head += line + "\n";
    heads[name] = head;
    fs::create_directories(tmp.str(dir));
  }
  Tally t;
  const int n = 1000 * scale();
  for (int i = 0; i < n; ++i) {
    const auto& [name, dir] = tasks[static_cast<size_t>(i) % tasks.size()];
    write(tmp.str(dir + "/dev.tsv"), mutate(heads[name], rng));
    run_case(t, i, [&] {
      auto rows = data::read_glue_split(data::glue_task(name), tmp.str(), "dev");
      data::encode_glue(*tokenizer, rows, 32, 1);
    });
  }
  report("glue tsv", t);
}

TEST(Fuzz, SquadJson) {
  SCULPT_REQUIRE_SHARED(dev, "data/squad/dev-v1.1.json");
  SCULPT_REQUIRE_SHARED(tok, "fixtures/hf/bert_qa");
  std::mt19937_64 rng(5);
  auto tokenizer = tokenizers::WordPieceTokenizer::from_dir(tok);
  // One article with two paragraphs of the real file.
  auto full = nlohmann::json::parse(slurp(dev));
  nlohmann::json small = {{"version", "1.1"}, {"data", {full["data"][0]}}};
  small["data"][0]["paragraphs"] = {full["data"][0]["paragraphs"][0], full["data"][0]["paragraphs"][1]};
  const std::string valid = small.dump();
  testing::TempDir tmp;
  Tally t;
  const int n = 1000 * scale();
  for (int i = 0; i < n; ++i) {
    write(tmp.str("squad.json"), mutate(valid, rng));
    run_case(t, i, [&] {
      auto examples = data::read_squad(tmp.str("squad.json"));
      data::make_squad_features(*tokenizer, examples, {64, 16, 24});
    });
  }
  report("squad json", t);
}

// vocab.txt and tokenizer_config.json of WordPiece, vocab.json and merges.txt of byte-level BPE.
TEST(Fuzz, TokenizerFiles) {
  SCULPT_REQUIRE_SHARED(wp, "fixtures/hf/tok_bert_wordpiece");
  SCULPT_REQUIRE_SHARED(bpe, "fixtures/hf/tok_opt_bpe");
  std::mt19937_64 rng(6);
  testing::TempDir tmp;
  for (const auto& [src, dst] : std::vector<std::pair<std::string, std::string>>{{wp, "wp"}, {bpe, "bpe"}}) {
    fs::create_directories(tmp.str(dst));
    for (const auto& e : fs::directory_iterator(src))
      if (e.path().extension() != ".jsonl") fs::copy_file(e.path(), tmp.str(dst + "/" + e.path().filename().string()));
  }
  const std::vector<std::pair<std::string, std::string>> files = {
      {"wp", "vocab.txt"}, {"wp", "tokenizer_config.json"}, {"bpe", "vocab.json"}, {"bpe", "merges.txt"}, {"bpe", "tokenizer_config.json"}};
  std::map<std::string, std::string> originals;
  for (const auto& [d, f] : files) originals[d + "/" + f] = slurp(tmp.str(d + "/" + f));
  Tally t;
  const int n = 1000 * scale();
  for (int i = 0; i < n; ++i) {
    const auto& [d, f] = files[static_cast<size_t>(i) % files.size()];
    const std::string rel = d + "/" + f;
    write(tmp.str(rel), mutate(originals[rel], rng));
    run_case(t, i, [&] {
      auto tokenizer = tokenizers::load_tokenizer(tmp.str(d));
      tokenizers::EncodeOptions o;
      o.truncation = "longest_first";
      o.max_length = 16;
      tokenizer->encode("Hello world, naïve café! 12,345 tokens.", std::string("A second text."), o);
    });
    write(tmp.str(rel), originals[rel]);
  }
  report("tokenizer", t);
}

}  // namespace
}  // namespace sculpt

namespace sculpt {
namespace {

// Token-cache files of every kind (GLUE examples, SQuAD features, T5 text pairs, corpus blocks),
// mutated on disk as a crash or a bad disk might leave them. A file that is read must hold what
// its users need: SQuAD spans are cut out of their contexts, examples are collated.
TEST(Fuzz, TokenCacheFiles) {
  SCULPT_REQUIRE_SHARED(dev, "data/squad/dev-v1.1.json");
  SCULPT_REQUIRE_SHARED(tok, "fixtures/hf/bert_qa");
  std::mt19937_64 rng(7);
  auto tokenizer = tokenizers::WordPieceTokenizer::from_dir(tok);
  const size_t vocab = tokenizer->vocab_size();
  auto examples = data::read_squad(dev);
  examples.resize(6);
  testing::TempDir tmp;
  data::write_squad_features(tmp.str("squad.st"), "k", "fuzz", data::make_squad_features(*tokenizer, examples, {64, 16, 24}));
  data::write_token_file(tmp.str("glue.st"), "k", "fuzz", {{{101, 7, 102}, {0, 0, 0}, 1.0f}, {{101, 9, 102, 8, 102}, {0, 0, 0, 1, 1}, 0.0f}});
  data::write_text_pairs(tmp.str("pairs.st"), "k", "fuzz", {{{5, 6, 7, 1}, {9, 1}, 1.0f}, {{8, 1}, {}, 0.0f}});
  write(tmp.str("corpus.txt"), examples[0].context + "\n" + examples[1].question + "\n\n" + examples[2].question + "\n");
  data::CorpusOptions co;
  co.block_size = 8;
  data::write_corpus_blocks(*tokenizer, tmp.str("corpus.txt"), co, tmp.str("blocks.st"), "k", "fuzz");
  const std::vector<std::pair<std::string, std::function<void(const std::string&)>>> readers = {
      {"squad.st",
       [&](const std::string& p) {
         auto f = data::read_squad_features(p, "k", vocab, examples);
         std::vector<std::vector<float>> zeros;
         for (const auto& x : f) zeros.emplace_back(x.ids.size(), 0.0f);
         data::postprocess_squad(examples, f, zeros, zeros, {});
       }},
      {"glue.st",
       [&](const std::string& p) {
         auto e = data::read_token_file(p, "k", vocab);
         std::vector<size_t> all(e.size());
         for (size_t i = 0; i < all.size(); ++i) all[i] = i;
         if (!e.empty()) data::collate(e, all, 0, false);
       }},
      {"pairs.st", [&](const std::string& p) { data::read_text_pairs(p, "k", vocab); }},
      {"blocks.st",
       [&](const std::string& p) {
         data::TokenBlocks b(p, "k", vocab);
         for (int64_t i = 0; i < b.size(); ++i) (void)b.block(i)[b.block_size() - 1];
       }},
  };
  Tally t;
  const int n = 1000 * scale();
  for (int i = 0; i < n; ++i) {
    const auto& [name, read] = readers[static_cast<size_t>(i) % readers.size()];
    const std::string valid = slurp(tmp.str(name));
    const std::string bytes = mutate_safetensors(valid, i, rng);
    write(tmp.str("case.st"), bytes);
    run_case(t, i, [&] { read(tmp.str("case.st")); });
  }
  report("token cache", t);
}

}  // namespace
}  // namespace sculpt

namespace sculpt {
namespace {

// A WordPiece directory with only tokenizer.json: its normalizer's switches go through the same
// typed readers as tokenizer_config.json's (they were raw nlohmann get<bool>() calls).
// k-means codebook weights (model.codebook.safetensors) as the model loader reads them: every
// coded tensor rebuilt from its indices, or the file refused.
TEST(Fuzz, CodebookWeightsFiles) {
  testing::TempDir tmp;
  const std::string file = tmp.str(io::kCodebookWeightsFile);
  io::CodedTensor coded{torch::tensor({-1.0f, 0.0f, 2.5f}), torch::tensor({2, 0, 1, 1, 0, 2, 2, 1}), 2, {2, 4}, torch::kFloat32};
  io::write_codebook_weights(file, {{"bias", torch::ones({4})}}, {{"w", coded}, {"e", {torch::tensor({1.0f, 3.0f}), torch::tensor({1, 0, 1}), 1, {3}, torch::kBFloat16}}});
  const std::string valid = slurp(file);
  std::mt19937_64 rng(11);
  Tally t;
  const int n = 1000 * scale();
  for (int i = 0; i < n; ++i) {
    write(file, mutate_safetensors(valid, i, rng));
    run_case(t, i, [&] {
      for (auto& [k, v] : io::load_hf_weights(tmp.str())) (void)v.sum();
      (void)io::load_hf_weight_shapes(tmp.str());
    });
  }
  report("codebook weights", t);
}

TEST(Fuzz, WordPieceTokenizerJsonValuesOfTheWrongTypeAreRefusedByKey) {
  SCULPT_REQUIRE_SHARED(wp, "fixtures/hf/tok_bert_wordpiece");
  testing::TempDir tmp;
  fs::copy_file(wp + "/vocab.txt", tmp.str("vocab.txt"));
  auto refused = [&](const std::string& json) {
    write(tmp.str("tokenizer.json"), json);
    try {
      tokenizers::WordPieceTokenizer::from_dir(tmp.str());
      return std::string("accepted");
    } catch (const Error& e) {
      return std::string(e.what());
    }
  };
  EXPECT_EQ(refused(R"({"normalizer": {"type": "BertNormalizer", "lowercase": false, "strip_accents": null}})"), "accepted");
  EXPECT_EQ(refused(R"({"normalizer": {"type": "BertNormalizer", "strip_accents": "yes"}})"),
            tmp.str("tokenizer.json") + ": 'strip_accents' is \"yes\"; expected true or false");
  EXPECT_EQ(refused(R"({"model": {"max_input_chars_per_word": -1}})"),
            tmp.str("tokenizer.json") + ": 'max_input_chars_per_word' is -1; expected an integer >= 0");
  EXPECT_EQ(refused(R"([1, 2])"), "accepted");  // no normalizer or model to read: the defaults
}

}  // namespace
}  // namespace sculpt
