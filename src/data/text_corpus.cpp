#include "sculpt/data/text_corpus.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "sculpt/core/error.h"
#include "sculpt/core/parallel.h"
#include "sculpt/data/token_file.h"
#include "sculpt/tokenizers/tokenizer.h"

namespace fs = std::filesystem;

namespace sculpt::data {
namespace {

// The samples of one piece of text: its lines, or its paragraphs (blank-line separated, their
// lines joined by "\n" as datasets' text loader keeps them). Empty samples are kept in line mode
// (run_mlm encodes an empty line as [CLS] [SEP]) and dropped between paragraphs.
std::vector<std::string> samples_of(const std::string& text, bool paragraphs) {
  std::vector<std::string> out;
  std::string paragraph;
  size_t at = 0;
  while (at < text.size()) {
    size_t end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(at, end - at);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    at = end + 1;
    if (!paragraphs) {
      out.push_back(std::move(line));
    } else if (line.find_first_not_of(" \t") == std::string::npos) {
      if (!paragraph.empty()) out.push_back(std::move(paragraph));
      paragraph.clear();
    } else {
      paragraph += paragraph.empty() ? line : "\n" + line;
    }
  }
  if (!paragraph.empty()) out.push_back(std::move(paragraph));
  return out;
}

// The next piece of FILE: about `bytes` of text, ending at a line end (paragraph mode: at a blank
// line) so that no sample is cut; "" at the end of the file.
std::string next_piece(std::ifstream& in, size_t bytes, bool paragraphs) {
  std::string piece(bytes, '\0');
  in.read(piece.data(), static_cast<std::streamsize>(bytes));
  piece.resize(static_cast<size_t>(in.gcount()));
  if (piece.empty()) return piece;
  for (std::string line; std::getline(in, line);) {  // finish the sample the read stopped inside
    piece += line;
    piece += '\n';
    if (!paragraphs || line.find_first_not_of(" \t\r") == std::string::npos) break;
  }
  return piece;
}

// A safetensors file with one int32 [n, width] tensor written as rows arrive: the header gets a
// fixed region (padded with spaces, as the format allows) that is filled in at the end.
class BlockFileWriter {
 public:
  static constexpr size_t kHeaderRegion = 4096;
  BlockFileWriter(std::string path, int64_t width) : path_(std::move(path)), tmp_(path_ + ".tmp"), width_(width) {
    out_ = std::fopen(tmp_.c_str(), "wb");
    SCULPT_CHECK(out_, "{}: cannot create ({})", tmp_, std::strerror(errno));
    const std::string zeros(8 + kHeaderRegion, ' ');
    put(zeros.data(), zeros.size());
  }
  ~BlockFileWriter() {
    if (out_) std::fclose(out_), fs::remove(tmp_);
  }
  void append(const int32_t* rows, int64_t n) {
    put(rows, static_cast<size_t>(n * width_) * sizeof(int32_t));
    rows_ += n;
  }
  void finish(const std::string& key, const std::string& description) {
    nlohmann::ordered_json header;
    header["__metadata__"] = {{"format", "sculpt-tokens-1"}, {"key", key}, {"description", description.substr(0, 2000)}};
    const uint64_t bytes = static_cast<uint64_t>(rows_ * width_) * sizeof(int32_t);
    header["blocks"] = {{"dtype", "I32"}, {"shape", {rows_, width_}}, {"data_offsets", {0, bytes}}};
    std::string json = header.dump();
    SCULPT_CHECK(json.size() <= kHeaderRegion, "{}: header of {} bytes does not fit its {}-byte region", tmp_, json.size(),
                 kHeaderRegion);
    json.resize(kHeaderRegion, ' ');
    const uint64_t length = kHeaderRegion;
    SCULPT_CHECK(std::fseek(out_, 0, SEEK_SET) == 0, "{}: cannot seek ({})", tmp_, std::strerror(errno));
    put(&length, 8);
    put(json.data(), json.size());
    SCULPT_CHECK(std::fflush(out_) == 0 && ::fsync(::fileno(out_)) == 0, "{}: cannot write ({})", tmp_, std::strerror(errno));
    std::fclose(out_);
    out_ = nullptr;
    fs::rename(tmp_, path_);
  }

 private:
  void put(const void* data, size_t size) {
    SCULPT_CHECK(std::fwrite(data, 1, size, out_) == size, "{}: cannot write ({})", tmp_, std::strerror(errno));
  }
  std::string path_, tmp_;
  int64_t width_, rows_ = 0;
  std::FILE* out_ = nullptr;
};

}  // namespace

CorpusStats write_corpus_blocks(const tokenizers::Tokenizer& tokenizer, const std::string& file, const CorpusOptions& o,
                                const std::string& path, const std::string& key, const std::string& description, int threads,
                                const std::function<void(size_t)>& progress) {
  SCULPT_CHECK(o.sample_by == "line" || o.sample_by == "paragraph", "corpus {}: sample_by '{}', expected line or paragraph",
               file, o.sample_by);
  SCULPT_CHECK(o.block_size >= 2, "corpus {}: block_size {} is below 2", file, o.block_size);
  std::ifstream in(file, std::ios::binary);
  SCULPT_CHECK(in.good(), "{}: cannot open the corpus ({})", file, std::strerror(errno));
  const bool paragraphs = o.sample_by == "paragraph";
  BlockFileWriter writer(path, o.block_size);
  CorpusStats stats;
  std::vector<int32_t> group;  // the tokens of the current group of samples
  int64_t in_group = 0;
  auto flush = [&] {  // the group's full blocks out, its remainder dropped (group_texts)
    const int64_t full = static_cast<int64_t>(group.size()) / o.block_size;
    writer.append(group.data(), full);
    stats.blocks += full;
    group.clear();
    in_group = 0;
  };
  for (std::string piece; !(piece = next_piece(in, o.piece_bytes, paragraphs)).empty();) {
    stats.bytes += static_cast<int64_t>(piece.size());
    const auto samples = samples_of(piece, paragraphs);
    std::vector<std::vector<int64_t>> ids(samples.size());
    parallel_chunks(samples.size(), 256, threads, [&](size_t begin, size_t end) {
      for (size_t i = begin; i < end; ++i) ids[i] = tokenizer.encode(samples[i]).input_ids;
    });
    for (const auto& sample : ids) {
      group.insert(group.end(), sample.begin(), sample.end());  // ids < vocabulary: fit int32
      stats.tokens += static_cast<int64_t>(sample.size());
      if (++in_group == o.group_samples) flush();
    }
    stats.samples += static_cast<int64_t>(samples.size());
    if (progress) progress(static_cast<size_t>(stats.bytes));
  }
  flush();
  writer.finish(key, description);
  return stats;
}

TokenBlocks::TokenBlocks(const std::string& path, const std::string& key, size_t vocab_size) {
  const TokenFile file(path, key);
  const auto shape = file.shape("blocks");
  SCULPT_CHECK(shape.size() == 2 && shape[1] >= 2, "{}: column 'blocks' is not [n, block_size]", path);
  blocks_ = file.column("blocks", torch::kInt32, shape);
  file.check_range("blocks", blocks_, 0, static_cast<int64_t>(vocab_size), fmt::format("the vocabulary of {}", vocab_size));
}

}  // namespace sculpt::data
