#include "kvbm/layout/layout_config.hpp"

#include <gtest/gtest.h>

#include "kvbm/common/error.hpp"

namespace kvbm {

LayoutConfig small_config() { return {.num_blocks = 4, .num_layers = 3, .outer_dim = 2, .page_size = 16, .inner_dim = 64, .dtype_bytes = 2}; }

TEST(LayoutConfig, ChunkBytesAndCount) {
  const LayoutConfig config = small_config();
  EXPECT_NO_THROW(config.validate());
  EXPECT_EQ(config.chunk_bytes(), 16u * 64 * 2);
  EXPECT_EQ(config.num_chunks(), 4u * 3 * 2);
}

TEST(LayoutConfig, EachZeroFieldIsNamed) {
  const std::pair<std::size_t LayoutConfig::*, const char*> fields[] = {
      {&LayoutConfig::num_blocks, "num_blocks"}, {&LayoutConfig::num_layers, "num_layers"},
      {&LayoutConfig::page_size, "page_size"},   {&LayoutConfig::inner_dim, "inner_dim"},
      {&LayoutConfig::dtype_bytes, "dtype_bytes"}, {&LayoutConfig::outer_dim, "outer_dim"}};
  for (const auto& [field, name] : fields) {
    LayoutConfig config = small_config();
    config.*field = 0;
    try {
      config.validate();
      FAIL() << name;
    } catch (const Error& error) {
      EXPECT_EQ(error.code(), ErrorCode::InvalidArgument);
      EXPECT_NE(error.message().find(name), std::string::npos) << error.what();
    }
  }
}

TEST(LayoutConfig, OuterDimMustBeOneOrTwo) {
  LayoutConfig config = small_config();
  config.outer_dim = 3;
  try {
    config.validate();
    FAIL();
  } catch (const Error& error) {
    EXPECT_NE(error.message().find("outer_dim must be 1 or 2 (K/V), got 3"), std::string::npos) << error.what();
  }
}

TEST(LayoutConfig, OverflowIsAnError) {
  LayoutConfig config = small_config();
  config.page_size = std::size_t{1} << 40;
  config.inner_dim = std::size_t{1} << 30;
  EXPECT_THROW(config.validate(), Error);
  config = small_config();
  config.num_blocks = std::size_t{1} << 62;
  try {
    config.validate();
    FAIL();
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::OutOfRange);
    EXPECT_NE(error.message().find("overflows"), std::string::npos) << error.what();
  }
}

}  // namespace kvbm
