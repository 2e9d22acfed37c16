#include "kvbm/layout/layout.hpp"

#include <gtest/gtest.h>

#include <set>

#include "kvbm/common/error.hpp"

namespace kvbm {
namespace {

LayoutConfig config_with(std::size_t blocks, std::size_t layers, std::size_t outer, std::size_t chunk_elems) {
  return {.num_blocks = blocks, .num_layers = layers, .outer_dim = outer, .page_size = 1, .inner_dim = chunk_elems,
          .dtype_bytes = 1};
}

// Every chunk of a layout must be distinct, inside its region, and not overlap any other.
void expect_chunks_tile_regions(const Layout& layout) {
  std::set<std::pair<const Region*, std::size_t>> seen;
  const auto& config = layout.config();
  for (std::size_t b = 0; b < config.num_blocks; ++b) {
    for (std::size_t l = 0; l < config.num_layers; ++l) {
      for (std::size_t o = 0; o < config.outer_dim; ++o) {
        const ChunkLocation location = layout.locate(b, l, o);
        EXPECT_EQ(location.bytes, layout.chunk_bytes());
        EXPECT_LE(location.offset + location.bytes, location.region->size());
        EXPECT_EQ(location.offset % layout.chunk_stride(), 0u);
        EXPECT_TRUE(seen.insert({location.region, location.offset}).second) << b << "," << l << "," << o;
      }
    }
  }
}

}  // namespace

TEST(Layout, FullyContiguousOrderIsBlockLayerOuter) {
  const LayoutConfig config = config_with(5, 3, 2, 100);
  auto layout = Layout::allocate(config, StorageKind::system(), LayoutForm::FullyContiguous);
  EXPECT_EQ(layout->regions().size(), 1u);
  EXPECT_EQ(layout->chunk_stride(), 100u);
  EXPECT_EQ(layout->locate(0, 0, 1).offset, 100u);
  EXPECT_EQ(layout->locate(0, 1, 0).offset, 200u);
  EXPECT_EQ(layout->locate(1, 0, 0).offset, 600u);
  EXPECT_EQ(layout->locate(4, 2, 1).offset, 2900u);
  expect_chunks_tile_regions(*layout);
}

TEST(Layout, LayerSeparateBlockContiguous) {
  const LayoutConfig config = config_with(5, 3, 2, 100);
  auto layout = Layout::allocate(config, StorageKind::system(), LayoutForm::LayerSeparate, LayerOrder::BlockContiguous);
  ASSERT_EQ(layout->regions().size(), 3u);
  EXPECT_EQ(layout->locate(2, 1, 1).region, layout->regions()[1].get());
  EXPECT_EQ(layout->locate(2, 1, 1).offset, (2 * 2 + 1) * 100u);
  expect_chunks_tile_regions(*layout);
}

TEST(Layout, LayerSeparateOuterContiguous) {
  const LayoutConfig config = config_with(5, 3, 2, 100);
  auto layout = Layout::allocate(config, StorageKind::system(), LayoutForm::LayerSeparate, LayerOrder::OuterContiguous);
  EXPECT_EQ(layout->locate(2, 1, 1).offset, (1 * 5 + 2) * 100u);
  EXPECT_EQ(layout->locate(4, 0, 0).offset, 400u);
  expect_chunks_tile_regions(*layout);
}

TEST(Layout, DiskChunksAreFourKiBAligned) {
  const LayoutConfig config = config_with(3, 2, 2, 1000);
  for (LayoutForm form : {LayoutForm::FullyContiguous, LayoutForm::LayerSeparate}) {
    auto layout = Layout::allocate(config, StorageKind::disk(0), form, LayerOrder::BlockContiguous,
                                   DiskFileOptions{.directory = "/tmp"});
    EXPECT_EQ(layout->chunk_stride(), 4096u);
    EXPECT_EQ(layout->chunk_bytes(), 1000u);
    expect_chunks_tile_regions(*layout);
  }
}

TEST(Layout, IndicesOutOfRangeAreNamed) {
  auto layout = Layout::allocate(config_with(5, 3, 2, 16), StorageKind::system(), LayoutForm::FullyContiguous);
  const std::tuple<std::size_t, std::size_t, std::size_t, const char*> cases[] = {
      {5, 0, 0, "block index 5"}, {0, 3, 0, "layer index 3"}, {0, 0, 2, "outer index 2"}};
  for (const auto& [block, layer, outer, text] : cases) {
    try {
      (void)layout->locate(block, layer, outer);
      FAIL() << text;
    } catch (const Error& error) {
      EXPECT_EQ(error.code(), ErrorCode::OutOfRange);
      EXPECT_NE(error.message().find(text), std::string::npos) << error.what();
    }
  }
}

TEST(Layout, RegionTooSmallIsNamed) {
  const LayoutConfig config = config_with(5, 3, 2, 100);
  auto region = Region::allocate_system(2999);
  try {
    (void)Layout::fully_contiguous(config, region);
    FAIL();
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::OutOfRange);
    EXPECT_NE(error.message().find("needs 3000 bytes"), std::string::npos) << error.what();
    EXPECT_NE(error.message().find("2999 bytes"), std::string::npos) << error.what();
  }
  auto big = Region::allocate_system(4000);
  EXPECT_NO_THROW((void)Layout::fully_contiguous(config, big, 1000));
  EXPECT_THROW((void)Layout::fully_contiguous(config, big, 1001), Error);
}

TEST(Layout, LayerSeparateRegionChecks) {
  const LayoutConfig config = config_with(5, 2, 2, 100);
  auto good = Region::allocate_system(1000);
  auto small = Region::allocate_system(999);
  EXPECT_NO_THROW((void)Layout::layer_separate(config, {good, good}));
  try {
    (void)Layout::layer_separate(config, {good, small});
    FAIL();
  } catch (const Error& error) {
    EXPECT_NE(error.message().find("layer 1"), std::string::npos) << error.what();
  }
  EXPECT_THROW((void)Layout::layer_separate(config, {good}), Error);
  EXPECT_THROW((void)Layout::layer_separate(config, {good, nullptr}), Error);
  auto disk = Region::create_disk_file(4096 * 10, DiskFileOptions{.directory = "/tmp"});
  EXPECT_THROW((void)Layout::layer_separate(config, {good, disk}), Error);  // mixed kinds
}

TEST(Layout, DiskOffsetMustBeAligned) {
  const LayoutConfig config = config_with(1, 1, 1, 10);
  auto disk = Region::create_disk_file(4096 * 3, DiskFileOptions{.directory = "/tmp"});
  EXPECT_NO_THROW((void)Layout::fully_contiguous(config, disk, 4096));
  EXPECT_THROW((void)Layout::fully_contiguous(config, disk, 100), Error);
}

}  // namespace kvbm
