// Config values a new user might get wrong, one at a time in a copy of each family's fixture:
// every one is refused before allocation with the file and the key named (issue 14's cases:
// these used to end in SIGFPE, a hang, or raw LibTorch messages).
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "sculpt/core/error.h"
#include "sculpt/io/hf_dir.h"
#include "sculpt/models/config.h"
#include "sculpt/models/config_check.h"
#include "sculpt/models/reference_forward.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace sculpt {
namespace {

// FIXTURE's directory with config.json's KEY set to VALUE (weights linked), run as `sculpt
// forward` runs it; returns the error message ("" when accepted).
std::string forward_with(const std::string& fixture, const std::string& key, const nlohmann::json& value,
                         testing::TempDir& tmp) {
  auto config = io::read_json(fixture + "/config.json");
  config[key] = value;
  const std::string dir = tmp.str(key);
  fs::create_directories(dir);
  std::ofstream(dir + "/config.json") << config.dump(2);
  fs::create_symlink(fixture + "/model.safetensors", dir + "/model.safetensors");
  try {
    models::reference_forward(dir, {{"input_ids", torch::tensor({{5, 6, 7}}, torch::kLong)}});
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

void expect_refused(const std::string& fixture, const std::string& key, const nlohmann::json& value,
                    const std::string& expected) {
  testing::TempDir tmp;
  const std::string message = forward_with(fixture, key, value, tmp);
  EXPECT_NE(message.find(tmp.str(key) + "/config.json"), std::string::npos) << key << "=" << value << ": " << message;
  std::string want = expected;  // "$DIR": the copy's directory
  if (auto at = want.find("$DIR"); at != std::string::npos) want.replace(at, 4, tmp.str(key));
  EXPECT_NE(message.find(want), std::string::npos) << key << "=" << value << ": " << message;
}

TEST(ConfigCheck, BertValuesOutOfRangeAreRefusedNamingTheKey) {
  SCULPT_REQUIRE_SHARED(dir, "fixtures/hf/bert_seqcls");
  expect_refused(dir, "num_attention_heads", 0, "'num_attention_heads' is 0; expected an integer in [1, 64]");
  expect_refused(dir, "num_hidden_layers", 1000000000, "'num_hidden_layers' is 1000000000; expected an integer in [1, 1024]");
  expect_refused(dir, "hidden_size", 0, "'hidden_size' is 0; expected an integer in [1, 65536]");
  expect_refused(dir, "intermediate_size", -3, "'intermediate_size' is -3; expected an integer in [1, 1048576]");
  expect_refused(dir, "vocab_size", 1000000000, "'vocab_size' is 1000000000; expected an integer in [1, 16777216]");
  expect_refused(dir, "max_position_embeddings", 1000000000, "'max_position_embeddings' is 1000000000");
  expect_refused(dir, "num_attention_heads", 3, "hidden_size 64 is not a multiple of num_attention_heads 3");
  expect_refused(dir, "hidden_size", "64", "'hidden_size' is \"64\"; expected an integer");
  expect_refused(dir, "hidden_size", 64.5, "'hidden_size' is 64.5; expected an integer");
  expect_refused(dir, "pad_token_id", 1000, "'pad_token_id' is 1000; expected an integer in [0, 999]");
  expect_refused(dir, "layer_norm_eps", -1, "'layer_norm_eps' is -1; expected a number in [0, 1]");
}

TEST(ConfigCheck, BertSizesThatDisagreeWithTheWeightsAreRefusedBeforeAllocation) {
  SCULPT_REQUIRE_SHARED(dir, "fixtures/hf/bert_seqcls");
  expect_refused(dir, "vocab_size", 999,
                 "vocab_size 999 does not match the weights: $DIR/model.safetensors declares "
                 "'bert.embeddings.word_embeddings.weight' with shape [1000, 64]");
  expect_refused(dir, "hidden_size", 32, "hidden_size 32 does not match the weights");
  expect_refused(dir, "intermediate_size", 64, "intermediate_size 64 does not match the weights");
  expect_refused(dir, "max_position_embeddings", 128, "max_position_embeddings 128 does not match the weights");
  expect_refused(dir, "num_hidden_layers", 3,
                 "num_hidden_layers is 3 but $DIR/model.safetensors holds 2 blocks (encoder.layer.0 ... encoder.layer.1)");
  testing::TempDir tmp;
  EXPECT_EQ(forward_with(dir, "hidden_dropout_prob", 0.0, tmp), "");  // the check does not refuse the fixture itself
}

TEST(ConfigCheck, OptValuesAreRangeAndWeightChecked) {
  SCULPT_REQUIRE_SHARED(dir, "fixtures/hf/opt_seqcls");
  expect_refused(dir, "num_attention_heads", 0, "'num_attention_heads' is 0; expected an integer in [1, 64]");
  expect_refused(dir, "num_hidden_layers", 1000000000, "'num_hidden_layers' is 1000000000");
  expect_refused(dir, "hidden_size", 0, "'hidden_size' is 0");
  expect_refused(dir, "ffn_dim", -3, "'ffn_dim' is -3");
  expect_refused(dir, "vocab_size", 1000000000, "'vocab_size' is 1000000000");
  expect_refused(dir, "max_position_embeddings", 1000000000, "'max_position_embeddings' is 1000000000");
  expect_refused(dir, "max_position_embeddings", 32,
                 "max_position_embeddings 32 (+2 offset rows) does not match the weights: $DIR/model.safetensors declares 'model.decoder.embed_positions.weight' with shape [66, 64]");
  expect_refused(dir, "num_hidden_layers", 1, "num_hidden_layers is 1 but $DIR/model.safetensors holds 2 blocks");
  expect_refused(dir, "ffn_dim", 256, "ffn_dim 256 does not match the weights");
  expect_refused(dir, "do_layer_norm_before", "yes", "'do_layer_norm_before' is \"yes\"; expected true or false");
}

TEST(ConfigCheck, T5ValuesAreRangeAndWeightChecked) {
  SCULPT_REQUIRE_SHARED(dir, "fixtures/hf/t5_small");
  const auto config = io::read_json(dir + "/config.json");
  expect_refused(dir, "num_heads", 0, "'num_heads' is 0");
  expect_refused(dir, "num_layers", 1000000000, "'num_layers' is 1000000000");
  expect_refused(dir, "d_model", 0, "'d_model' is 0");
  expect_refused(dir, "d_ff", -3, "'d_ff' is -3");
  expect_refused(dir, "vocab_size", 1000000000, "'vocab_size' is 1000000000");
  expect_refused(dir, "num_decoder_layers", config["num_layers"].get<int64_t>() + 1, "num_decoder_layers is");
  expect_refused(dir, "num_heads", config["num_heads"].get<int64_t>() * 2, "does not match the weights");
  expect_refused(dir, "relative_attention_num_buckets", 7, "relative_attention_num_buckets 7 does not match the weights");
}

TEST(ConfigCheck, SizesWithinEachRangeButNotTogetherAreRefusedWithoutWeights) {
  nlohmann::json j = {{"vocab_size", 16777216}, {"hidden_size", 65536}, {"num_attention_heads", 1}};
  try {
    models::bert_config_from_json(j, "recipe model.config");
    FAIL() << "accepted 1.3e12 parameters";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("recipe model.config: these sizes describe 1.31e+12 parameters (4882.1 GiB in fp32), "
                                         "more than this machine's"), std::string::npos) << e.what();
  }
  j = {{"vocab_size", 1000}, {"hidden_size", 64}, {"num_attention_heads", 4}, {"num_hidden_layers", 2},
       {"intermediate_size", 128}, {"max_position_embeddings", 64}, {"type_vocab_size", 2}};
  EXPECT_DOUBLE_EQ(models::parameter_count(models::bert_config_from_json(j)),
                   // word + position(+2 rows budgeted) + type embeddings, then 2 x (4 x 64 x 64 + 2 x 64 x 128)
                   1000.0 * 64 + 66.0 * 64 + 2.0 * 64 + 2 * (4.0 * 64 * 64 + 2.0 * 64 * 128));
}

}  // namespace
}  // namespace sculpt
