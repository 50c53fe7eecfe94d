#include <nlohmann/json.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "sculpt/core/error.h"
#include "sculpt/io/files.h"
#include "sculpt/io/hf_dir.h"
#include "sculpt/models/bert.h"
#include "test_util.h"

namespace sculpt {
namespace {

// Build a file from a header JSON and a data section.
std::string make_file(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  return out + header + data;
}

void expect_refused(const std::string& bytes, const std::string& fragment) {
  try {
    io::parse_safetensors("bad.safetensors", bytes.data(), bytes.size());
    FAIL() << "accepted a bad file; expected an error containing '" << fragment << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.safetensors"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

// True when ADDRESS lies in a mapping of FILE, by /proc/self/maps.
bool mapped_from(const void* address, const std::string& file) {
  const std::string want = std::filesystem::canonical(file).string();
  std::ifstream maps("/proc/self/maps");
  const auto at = reinterpret_cast<uintptr_t>(address);
  for (std::string line; std::getline(maps, line);) {
    std::istringstream in(line);
    std::string range, perms, offset, dev, inode, path;
    in >> range >> perms >> offset >> dev >> inode >> path;
    const auto dash = range.find('-');
    const uintptr_t lo = std::stoull(range.substr(0, dash), nullptr, 16), hi = std::stoull(range.substr(dash + 1), nullptr, 16);
    if (at >= lo && at < hi) return path == want;
  }
  return false;
}

TEST(Safetensors, ReadingMapsTheFileAndWritesNeverReachIt) {
  testing::TempDir tmp;
  const std::string path = tmp.str("w.safetensors");
  const auto a = torch::arange(4096, torch::kFloat32).reshape({64, 64}), b = torch::arange(10, torch::kInt64);
  io::write_safetensors(path, {{"a", a}, {"b", b}});
  auto content = io::read_safetensors(path);
  EXPECT_TRUE(mapped_from(content.tensors.at("a").data_ptr(), path));
  EXPECT_TRUE(mapped_from(content.tensors.at("b").data_ptr(), path));
  EXPECT_TRUE(torch::equal(content.tensors.at("a"), a));
  EXPECT_TRUE(torch::equal(content.tensors.at("b"), b));
  content.tensors.at("a").fill_(7);  // copy-on-write: this process's pages only
  EXPECT_TRUE(torch::equal(io::read_safetensors(path).tensors.at("a"), a));
  EXPECT_EQ(io::read_safetensors_shapes(path), (io::TensorShapes{{"a", {64, 64}}, {"b", {10}}}));
}

TEST(Safetensors, UnalignedTensorsAreCopiedWithTheirValues) {
  // A 1-byte tensor first puts the F32 one at an odd offset (the format allows it).
  const float values[2] = {1.5f, -2.25f};
  std::string data(1, '\x2a');
  data.append(reinterpret_cast<const char*>(values), sizeof(values));
  const std::string header =
      R"({"u":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"f":{"dtype":"F32","shape":[2],"data_offsets":[1,9]}})";
  testing::TempDir tmp;
  const std::string path = tmp.str("odd.safetensors");
  std::ofstream(path, std::ios::binary) << make_file(header, data);
  auto content = io::read_safetensors(path);
  const auto& f = content.tensors.at("f");
  EXPECT_FALSE(mapped_from(f.data_ptr(), path));
  EXPECT_EQ(f[0].item<float>(), 1.5f);
  EXPECT_EQ(f[1].item<float>(), -2.25f);
  EXPECT_EQ(content.tensors.at("u")[0].item<uint8_t>(), 42);
}

TEST(Safetensors, LoadedModelParametersAreTheMappedWeights) {
  SCULPT_REQUIRE_SHARED(dir, "fixtures/hf/bert_seqcls");
  auto model = models::load_bert(dir, /*strict=*/true).model;
  const auto expected = io::parse_safetensors("copy", io::read_file(dir + "/model.safetensors").data(),
                                              std::filesystem::file_size(dir + "/model.safetensors")).tensors;
  size_t mapped = 0, total = 0;
  for (const auto& p : model->named_parameters()) {
    ++total;
    mapped += mapped_from(p.value().data_ptr(), dir + "/model.safetensors");
  }
  EXPECT_EQ(mapped, total);  // no parameter was copied out of the file
  EXPECT_TRUE(torch::equal(model->named_parameters()["embed.tok.weight"],
                           expected.at("bert.embeddings.word_embeddings.weight")));
}

TEST(Safetensors, ReadsEveryDtypeOfTheFixtureExactly) {
  SCULPT_REQUIRE_SHARED(dir, "fixtures/hf/safetensors_dtypes");
  auto content = io::read_safetensors(dir + "/dtypes.safetensors");
  auto values = io::read_json(dir + "/values.json")["tensors"];
  EXPECT_EQ(content.metadata.at("purpose"), "reader test");
  int checked = 0;
  for (auto it = values.begin(); it != values.end(); ++it) {
    if (!it->is_object() || !it->contains("dtype")) continue;
    const auto& t = content.tensors.at(it.key());
    EXPECT_EQ(io::dtype_name(t.scalar_type()), (*it)["dtype"].get<std::string>()) << it.key();
    EXPECT_EQ(t.sizes().vec(), (*it)["shape"].get<std::vector<int64_t>>()) << it.key();
    auto flat = t.reshape({-1});
    const auto& expected = (*it)["values"];
    ASSERT_EQ(static_cast<size_t>(flat.numel()), expected.size()) << it.key();
    for (size_t i = 0; i < expected.size(); ++i) {
      if (expected[i].is_boolean()) {
        EXPECT_EQ(flat[i].item<bool>(), expected[i].get<bool>()) << it.key() << "[" << i << "]";
      } else if (expected[i].is_number_integer()) {
        EXPECT_EQ(flat[i].to(torch::kInt64).item<int64_t>(), expected[i].get<int64_t>()) << it.key() << "[" << i << "]";
      } else {
        EXPECT_EQ(flat[i].to(torch::kFloat64).item<double>(), expected[i].get<double>()) << it.key() << "[" << i << "]";
      }
    }
    ++checked;
  }
  EXPECT_EQ(checked, 13);
}

TEST(Safetensors, RoundTripsAllDtypesZeroDimAndEmpty) {
  io::TensorMap tensors;
  for (auto type : {torch::kFloat64, torch::kFloat32, torch::kFloat16, torch::kBFloat16, torch::kInt64, torch::kInt32,
                    torch::kInt16, torch::kInt8, torch::kUInt8, torch::kBool}) {
    tensors["t_" + io::dtype_name(type)] = (torch::arange(12) % 7).reshape({3, 4}).to(type);
  }
  tensors["scalar"] = torch::tensor(3.5f).reshape({});
  tensors["empty"] = torch::zeros({2, 0});
  std::string bytes = io::serialize_safetensors(tensors, {{"format", "pt"}});
  uint64_t header_len;
  std::memcpy(&header_len, bytes.data(), 8);
  EXPECT_EQ(header_len % 8, 0u);
  auto back = io::parse_safetensors("mem", bytes.data(), bytes.size());
  EXPECT_EQ(back.metadata.at("format"), "pt");
  ASSERT_EQ(back.tensors.size(), tensors.size());
  for (const auto& [k, v] : tensors) {
    EXPECT_EQ(back.tensors[k].scalar_type(), v.scalar_type()) << k;
    EXPECT_TRUE(torch::equal(back.tensors[k], v)) << k;
  }
  EXPECT_EQ(back.tensors["scalar"].dim(), 0);
}

TEST(Safetensors, RefusesTruncatedFile) {
  std::string good = make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", std::string(8, '\1'));
  expect_refused(good.substr(0, good.size() - 3), "truncated");
  expect_refused(good.substr(0, 5), "shorter than");
  expect_refused(good.substr(0, 20), "runs past the end");
}

TEST(Safetensors, RefusesMalformedHeaders) {
  expect_refused(make_file("{not json", ""), "not valid JSON");
  expect_refused(make_file("[1,2]", ""), "JSON object");
  expect_refused(make_file(R"({"a":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}})", "abcd"), "unsupported dtype");
  expect_refused(make_file(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", std::string(8, 0)),
                 "does not match");
  expect_refused(make_file(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", std::string(4, 0)),
                 "non-negative");
  std::string huge(8, '\0');
  uint64_t n = 200'000'000;
  std::memcpy(huge.data(), &n, 8);
  expect_refused(huge, "exceeds");
}

TEST(Safetensors, RefusesOverlappingAndGappedOffsets) {
  expect_refused(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                           R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                           std::string(12, 0)),
                 "non-overlapping");
  expect_refused(make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", std::string(8, 0)),
                 "invalid data_offsets");
}

TEST(Safetensors, WritesAtomicallyAndReadsShards) {
  testing::TempDir tmp;
  io::write_safetensors(tmp.str("a.safetensors"), {{"x", torch::ones({2})}});
  io::write_safetensors(tmp.str("b.safetensors"), {{"y", torch::zeros({3})}});
  {
    std::ofstream index(tmp.str("model.safetensors.index.json"));
    index << R"({"metadata":{},"weight_map":{"x":"a.safetensors","y":"b.safetensors"}})";
  }
  auto all = io::load_hf_weights(tmp.str());
  ASSERT_EQ(all.size(), 2u);
  EXPECT_TRUE(torch::equal(all["y"], torch::zeros({3})));
  for (const auto& entry : std::filesystem::directory_iterator(tmp.path))
    EXPECT_EQ(entry.path().string().find(".tmp."), std::string::npos) << "temporary left behind";
}

TEST(Safetensors, ReadsPytorchBinLikeSafetensors) {
  SCULPT_REQUIRE_SHARED(dir, "fixtures/hf/bert_seqcls");
  auto st = io::load_hf_weights(dir, io::WeightFormat::safetensors);
  auto bin = io::load_hf_weights(dir, io::WeightFormat::bin);
  ASSERT_EQ(st.size(), bin.size());
  for (const auto& [k, v] : st) EXPECT_TRUE(torch::equal(v, bin.at(k))) << k;
}

TEST(Safetensors, CorruptBinIsRefusedWithReason) {
  testing::TempDir tmp;
  io::write_file_atomic(tmp.str("pytorch_model.bin"), "PK\x03\x04 garbage");
  EXPECT_THROW(io::read_torch_bin(tmp.str("pytorch_model.bin")), Error);
}

}  // namespace
}  // namespace sculpt
