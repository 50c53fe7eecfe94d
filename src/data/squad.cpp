#include "sculpt/data/squad.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <map>
#include <iterator>
#include <numeric>

#include "sculpt/core/error.h"
#include "sculpt/core/parallel.h"
#include "sculpt/io/hf_dir.h"
#include "sculpt/tokenizers/wordpiece.h"

namespace sculpt::data {

namespace {
// JSON answer_start counts Unicode code points; we index bytes.
size_t char_to_byte(const std::string& s, size_t chars) {
  size_t bytes = 0;
  for (size_t seen = 0; bytes < s.size() && seen < chars; ++seen) {
    unsigned char c = static_cast<unsigned char>(s[bytes]);
    bytes += c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
  }
  return std::min(bytes, s.size());
}
}  // namespace

std::vector<SquadExample> read_squad(const std::string& path) {
  auto j = io::read_json(path);
  SCULPT_CHECK(j.contains("data") && j["data"].is_array(), "{}: not a SQuAD file (no 'data' list)", path);
  std::vector<SquadExample> out;
  try {
    for (const auto& article : j["data"])
      for (const auto& para : article.at("paragraphs")) {
        const std::string context = para.at("context");
        for (const auto& qa : para.at("qas")) {
          SquadExample ex;
          ex.id = qa.at("id");
          ex.question = qa.at("question");
          ex.context = context;
          ex.is_impossible = qa.value("is_impossible", false);
          for (const auto& a : qa.at("answers")) {
            ex.answers.push_back(a.at("text"));
            ex.answer_starts.push_back(char_to_byte(context, a.at("answer_start").get<size_t>()));
          }
          out.push_back(std::move(ex));
        }
      }
  } catch (const nlohmann::json::exception& e) {
    fail("{}: malformed SQuAD entry ({}) after {} questions", path, e.what(), out.size());
  }
  return out;
}

std::vector<SquadFeature> make_squad_features(const tokenizers::WordPieceTokenizer& tok, const std::vector<SquadExample>& examples,
                                              const SquadFeatureOptions& o, int threads,
                                              const std::function<void(size_t)>& progress) {
  // Chunks of consecutive examples on every thread, concatenated in order: the same features
  // for any thread count (a chunk re-tokenizes at most the one paragraph it starts inside).
  constexpr size_t kChunk = 64;
  std::vector<std::vector<SquadFeature>> parts((examples.size() + kChunk - 1) / kChunk);
  parallel_chunks(examples.size(), kChunk, threads, [&](size_t begin, size_t end) {
    parts[begin / kChunk] = make_squad_features_range(tok, examples, begin, end, o);
  }, progress);
  std::vector<SquadFeature> out;
  for (auto& part : parts) std::move(part.begin(), part.end(), std::back_inserter(out));
  return out;
}

std::vector<SquadFeature> make_squad_features_range(const tokenizers::WordPieceTokenizer& tok,
                                                    const std::vector<SquadExample>& examples, size_t begin, size_t end,
                                                    const SquadFeatureOptions& o) {
  std::vector<SquadFeature> out;
  const int64_t cls = tok.token_to_id("[CLS]"), sep = tok.token_to_id("[SEP]");
  std::string cached_context;
  std::vector<int64_t> ctx_ids;
  std::vector<std::pair<int64_t, int64_t>> ctx_off;
  for (size_t e = begin; e < end; ++e) {
    const auto& ex = examples[e];
    if (ex.context != cached_context) {  // questions of one paragraph share its tokens
      ctx_ids = tok.ids_with_offsets(ex.context, ctx_off);
      cached_context = ex.context;
    }
    auto q = tok.ids(ex.question);
    if (static_cast<int64_t>(q.size()) > o.max_query_length) q.resize(static_cast<size_t>(o.max_query_length));
    const int64_t room = o.max_length - static_cast<int64_t>(q.size()) - 3;
    SCULPT_CHECK(room > o.doc_stride, "max_length {} leaves {} context tokens, not more than doc_stride {}", o.max_length, room,
                 o.doc_stride);
    const int64_t n = static_cast<int64_t>(ctx_ids.size());
    for (int64_t start = 0;; start += room - o.doc_stride) {
      const int64_t len = std::min(room, n - start);
      SquadFeature f;
      f.example = e;
      const size_t size = q.size() + 3 + static_cast<size_t>(len);  // [CLS] q [SEP] window [SEP]: exact, no slack kept
      f.ids.reserve(size), f.types.reserve(size), f.offsets.reserve(size);
      // ids < vocabulary, types 0/1, spans < the context's bytes (a JSON string well under 2 GB): all fit
      auto push = [&](int64_t id, int64_t type, std::pair<int64_t, int64_t> off) {
        f.ids.push_back(static_cast<int32_t>(id)), f.types.push_back(static_cast<uint8_t>(type));
        f.offsets.emplace_back(static_cast<int32_t>(off.first), static_cast<int32_t>(off.second));
      };
      push(cls, 0, {-1, -1});
      for (auto id : q) push(id, 0, {-1, -1});
      push(sep, 0, {-1, -1});
      const int64_t ctx_begin = static_cast<int64_t>(f.ids.size());
      for (int64_t k = start; k < start + len; ++k) push(ctx_ids[static_cast<size_t>(k)], 1, ctx_off[static_cast<size_t>(k)]);
      push(sep, 1, {-1, -1});
      // Training target: the first answer if it lies wholly inside this window, else [CLS].
      if (!ex.is_impossible && !ex.answers.empty()) {
        const int64_t a0 = static_cast<int64_t>(ex.answer_starts[0]), a1 = a0 + static_cast<int64_t>(ex.answers[0].size());
        int64_t s = -1, t = -1;
        for (int64_t k = 0; k < len; ++k) {
          const auto& off = ctx_off[static_cast<size_t>(start + k)];
          if (s < 0 && off.first <= a0 && off.second > a0) s = ctx_begin + k;
          if (off.first < a1 && off.second >= a1) t = ctx_begin + k;
        }
        if (s >= 0 && t >= s) f.start_position = s, f.end_position = t;
      }
      out.push_back(std::move(f));
      if (start + len >= n) break;
    }
  }
  return out;
}

models::Batch collate_squad(const std::vector<SquadFeature>& features, const std::vector<size_t>& indices, int64_t pad_id,
                            bool with_positions) {
  const int64_t B = static_cast<int64_t>(indices.size());
  int64_t T = 0;
  for (size_t i : indices) T = std::max<int64_t>(T, static_cast<int64_t>(features[i].ids.size()));
  auto ids = torch::full({B, T}, pad_id, torch::kLong), types = torch::zeros({B, T}, torch::kLong),
       mask = torch::zeros({B, T}, torch::kLong), sp = torch::zeros({B}, torch::kLong), ep = torch::zeros({B}, torch::kLong);
  auto ia = ids.accessor<int64_t, 2>(), ta = types.accessor<int64_t, 2>(), ma = mask.accessor<int64_t, 2>();
  auto sa = sp.accessor<int64_t, 1>(), ea = ep.accessor<int64_t, 1>();
  for (int64_t b = 0; b < B; ++b) {
    const auto& f = features[indices[static_cast<size_t>(b)]];
    for (size_t t = 0; t < f.ids.size(); ++t) {
      ia[b][static_cast<int64_t>(t)] = f.ids[t];
      ta[b][static_cast<int64_t>(t)] = f.types[t];
      ma[b][static_cast<int64_t>(t)] = 1;
    }
    sa[b] = f.start_position, ea[b] = f.end_position;
  }
  models::Batch batch;
  batch.input_ids = ids, batch.token_type_ids = types, batch.attention_mask = mask;
  if (with_positions) batch.start_positions = sp, batch.end_positions = ep;
  return batch;
}

std::vector<metrics::SquadPrediction> postprocess_squad(const std::vector<SquadExample>& examples,
                                                        const std::vector<SquadFeature>& features,
                                                        const std::vector<std::vector<float>>& start_logits,
                                                        const std::vector<std::vector<float>>& end_logits,
                                                        const SquadPostprocessOptions& o) {
  std::vector<std::vector<size_t>> by_example(examples.size());
  for (size_t i = 0; i < features.size(); ++i) by_example[features[i].example].push_back(i);
  auto top = [&](const std::vector<float>& v) {
    std::vector<size_t> idx(v.size());
    std::iota(idx.begin(), idx.end(), 0);
    const size_t k = std::min<size_t>(static_cast<size_t>(o.n_best), idx.size());
    std::partial_sort(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(k), idx.end(),
                      [&](size_t a, size_t b) { return v[a] > v[b]; });
    idx.resize(k);
    return idx;
  };
  std::vector<metrics::SquadPrediction> out;
  for (size_t e = 0; e < examples.size(); ++e) {
    double best_score = -1e30, null_score = 1e30;
    std::pair<int64_t, int64_t> best_span{-1, -1};
    for (size_t fi : by_example[e]) {
      const auto& f = features[fi];
      const auto& s = start_logits[fi];
      const auto& t = end_logits[fi];
      null_score = std::min(null_score, static_cast<double>(s[0]) + t[0]);  // [CLS], as run_qa's min_null_score
      for (size_t a : top(s))
        for (size_t b : top(t)) {
          if (a >= f.offsets.size() || b >= f.offsets.size() || f.offsets[a].first < 0 || f.offsets[b].first < 0) continue;
          if (b < a || static_cast<int64_t>(b - a + 1) > o.max_answer_length) continue;
          const double score = static_cast<double>(s[a]) + t[b];
          if (score > best_score) best_score = score, best_span = {f.offsets[a].first, f.offsets[b].second};
        }
    }
    metrics::SquadPrediction p;
    p.id = examples[e].id;
    if (best_span.first >= 0)
      p.text = examples[e].context.substr(static_cast<size_t>(best_span.first), static_cast<size_t>(best_span.second - best_span.first));
    p.null_score_diff = best_span.first >= 0 ? null_score - best_score : 1e30;
    if (o.v2 && p.null_score_diff > o.null_threshold) p.text.clear();
    out.push_back(std::move(p));
  }
  return out;
}

std::vector<metrics::SquadGold> squad_gold(const std::vector<SquadExample>& examples) {
  std::vector<metrics::SquadGold> gold;
  for (const auto& ex : examples) gold.push_back({ex.id, ex.is_impossible ? std::vector<std::string>{} : ex.answers});
  return gold;
}

}  // namespace sculpt::data
