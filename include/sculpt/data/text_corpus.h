// Plain-text corpora for masked language modelling, as Transformers' run_mlm.py reads them: the
// file split into samples (every line, or paragraphs separated by blank lines), each sample
// encoded with the tokenizer's special tokens, and every group of 1,000 samples concatenated and
// cut into blocks of block_size tokens, the group's last partial block dropped (run_mlm's
// group_texts, which datasets.map applies per batch of 1,000). The file is read
// and tokenized in pieces and the blocks are streamed to a token-cache file that is then
// memory-mapped, so a corpus larger than memory works; the blocks are the same at any thread
// count.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include <torch/types.h>

namespace sculpt::tokenizers {
class Tokenizer;
}

namespace sculpt::data {

struct CorpusOptions {
  int64_t block_size = 128;
  std::string sample_by = "line";  // line | paragraph (datasets' text loader's sample_by)
  int64_t group_samples = 1000;    // samples concatenated before cutting; 0: the whole corpus
  size_t piece_bytes = 32 << 20;   // text read and tokenized at a time (bounds memory, not the output)
};

struct CorpusStats {
  int64_t samples = 0, tokens = 0, blocks = 0, bytes = 0;
};

// FILE's blocks written to PATH (a temporary beside it, renamed when complete) as a token file
// (data/token_file.h) with one int32 column "blocks" [n, block_size]. progress(bytes read).
CorpusStats write_corpus_blocks(const tokenizers::Tokenizer& tokenizer, const std::string& file, const CorpusOptions& options,
                                const std::string& path, const std::string& key, const std::string& description,
                                int threads = 0, const std::function<void(size_t)>& progress = {});

// The blocks of a file written above, memory-mapped (pages are read as they are touched); a file
// whose key, shape or ids are wrong is refused.
class TokenBlocks {
 public:
  TokenBlocks() = default;
  TokenBlocks(const std::string& path, const std::string& key, size_t vocab_size);
  int64_t size() const { return blocks_.defined() ? blocks_.size(0) : 0; }
  int64_t block_size() const { return blocks_.defined() ? blocks_.size(1) : 0; }
  const int32_t* block(int64_t i) const { return blocks_.data_ptr<int32_t>() + i * block_size(); }
  const torch::Tensor& tensor() const { return blocks_; }  // [n, block_size] int32, mapped

 private:
  torch::Tensor blocks_;
};

}  // namespace sculpt::data
