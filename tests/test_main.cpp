#include <gtest/gtest.h>

#include "sculpt/core/env.h"

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  sculpt::init_threads();
  return RUN_ALL_TESTS();
}
