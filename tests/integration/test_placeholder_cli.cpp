#include "test_util.h"
TEST(Cli, BinaryExists) { EXPECT_TRUE(std::filesystem::exists(sculpt::testing::cli_path())); }
