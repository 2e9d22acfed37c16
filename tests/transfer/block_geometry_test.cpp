// The block-pair kernel's geometry must place every chunk where the layout does, for every pair
// of layout forms, and merge slots only where both sides are adjacent.
#include "transfer/engine/block_geometry.hpp"

#include <gtest/gtest.h>

#include <fmt/format.h>

namespace kvbm {
namespace {

constexpr std::size_t kLayers = 3;
constexpr std::size_t kOuter = 2;
constexpr std::size_t kChunk = 1000;

LayoutConfig shape(std::size_t blocks = 5, std::size_t layers = kLayers) {
  return {.num_blocks = blocks, .num_layers = layers, .outer_dim = kOuter, .page_size = 1, .inner_dim = kChunk,
          .dtype_bytes = 1};
}

struct Form {
  std::string name;
  LayoutPtr (*make)(const LayoutConfig&);
};

const Form kForms[] = {
    {"fully contiguous",
     [](const LayoutConfig& c) { return Layout::allocate(c, StorageKind::system(), LayoutForm::FullyContiguous); }},
    {"fully contiguous at offset 24",
     [](const LayoutConfig& c) {
       const std::size_t bytes = Layout::required_bytes_fully_contiguous(c, StorageKind::system());
       return Layout::fully_contiguous(c, Region::allocate(StorageKind::system(), bytes + 24), 24);
     }},
    {"layer-separate block-contiguous",
     [](const LayoutConfig& c) {
       return Layout::allocate(c, StorageKind::system(), LayoutForm::LayerSeparate, LayerOrder::BlockContiguous);
     }},
    {"layer-separate outer-contiguous",
     [](const LayoutConfig& c) {
       return Layout::allocate(c, StorageKind::system(), LayoutForm::LayerSeparate, LayerOrder::OuterContiguous);
     }},
};

std::uint64_t address(const Layout& layout, std::size_t block, std::size_t layer, std::size_t outer) {
  const ChunkLocation chunk = layout.locate(block, layer, outer);
  return reinterpret_cast<std::uint64_t>(chunk.region->data() + chunk.offset);
}

// Chunk (block, layer, outer) as the geometry places it: inside merged slot slot / k, at
// (slot % k) chunks from its start.
std::uint64_t placed(const std::vector<std::uint64_t>& slots, std::uint64_t block_stride, std::size_t block,
                     std::size_t slot) {
  const std::size_t k = kLayers * kOuter / slots.size();
  return slots[slot / k] + block * block_stride + (slot % k) * kChunk;
}

TEST(BlockGeometry, PlacesEveryChunkWhereTheLayoutDoesForEveryPairOfForms) {
  for (const Form& src_form : kForms) {
    for (const Form& dst_form : kForms) {
      SCOPED_TRACE(src_form.name + " -> " + dst_form.name);
      auto src = src_form.make(shape());
      auto dst = dst_form.make(shape());
      const auto geometry = block_geometry(*src, *dst);
      ASSERT_TRUE(geometry.has_value());
      ASSERT_EQ(geometry->src_slots.size(), geometry->dst_slots.size());
      EXPECT_EQ(geometry->slot_bytes * geometry->src_slots.size(), kLayers * kOuter * kChunk);
      for (std::size_t block = 0; block < 5; ++block) {
        for (std::size_t layer = 0; layer < kLayers; ++layer) {
          for (std::size_t outer = 0; outer < kOuter; ++outer) {
            const std::size_t slot = layer * kOuter + outer;
            ASSERT_EQ(placed(geometry->src_slots, geometry->src_block_stride, block, slot),
                      address(*src, block, layer, outer))
                << fmt::format("source block {} layer {} outer {}", block, layer, outer);
            ASSERT_EQ(placed(geometry->dst_slots, geometry->dst_block_stride, block, slot),
                      address(*dst, block, layer, outer))
                << fmt::format("destination block {} layer {} outer {}", block, layer, outer);
          }
        }
      }
    }
  }
}

TEST(BlockGeometry, MergesSlotsOnlyWhereBothSidesAreAdjacent) {
  const auto slots_between = [](const Form& a, const Form& b) {
    return block_geometry(*a.make(shape()), *b.make(shape()))->src_slots.size();
  };
  const Form& contiguous = kForms[0];
  const Form& block_contiguous = kForms[2];
  const Form& outer_contiguous = kForms[3];
  EXPECT_EQ(slots_between(contiguous, contiguous), 1u);               // a whole block is one run
  EXPECT_EQ(slots_between(contiguous, block_contiguous), kLayers);    // K and V of a layer are adjacent
  EXPECT_EQ(slots_between(block_contiguous, block_contiguous), kLayers);
  EXPECT_EQ(slots_between(outer_contiguous, contiguous), kLayers * kOuter);  // nothing adjacent
}

TEST(BlockGeometry, RefusesMoreSlotsThanTheKernelHolds) {
  const LayoutConfig config = shape(2, BlockGeometry::kMaxSlots / kOuter + 1);
  auto src = Layout::allocate(config, StorageKind::system(), LayoutForm::LayerSeparate, LayerOrder::OuterContiguous);
  auto dst = Layout::allocate(config, StorageKind::system(), LayoutForm::FullyContiguous);
  EXPECT_FALSE(block_geometry(*src, *dst).has_value());
  // Fully contiguous on both sides, the same shape is one slot.
  EXPECT_TRUE(block_geometry(*dst, *dst).has_value());
}

TEST(BlockGeometry, RunsMergeOnlyWhereNeighbouringBlocksAreAdjacentAndMostPairsContinueARun) {
  auto contiguous = kForms[0].make(shape(64));
  auto outer_contiguous = kForms[3].make(shape(64));
  std::vector<BlockPair> runs;
  for (std::size_t b = 0; b < 10; ++b) runs.emplace_back(b, 20 + b);
  std::vector<BlockPair> scattered;
  for (std::size_t b = 0; b < 10; ++b) scattered.emplace_back(3 * b, 40 - 2 * b);
  std::vector<BlockPair> half = scattered;
  for (std::size_t b = 0; b < 5; ++b) half[b] = {b, b};  // pairs 1..4 continue a run: 4 of 10
  const auto contiguous_pair = *block_geometry(*contiguous, *contiguous);
  EXPECT_TRUE(runs_would_merge(contiguous_pair, runs));
  EXPECT_FALSE(runs_would_merge(contiguous_pair, scattered));
  EXPECT_FALSE(runs_would_merge(contiguous_pair, half));
  // Outer-contiguous layers keep a slot's chunks of neighbouring blocks adjacent; the fully
  // contiguous side does not.
  EXPECT_TRUE(runs_would_merge(*block_geometry(*outer_contiguous, *outer_contiguous), runs));
  EXPECT_FALSE(runs_would_merge(*block_geometry(*outer_contiguous, *contiguous), runs));
  // Slots as large as a descriptor's largest piece gain nothing from merging.
  const LayoutConfig large{.num_blocks = 16, .num_layers = 1, .outer_dim = 1, .page_size = 1, .inner_dim = 65536,
                           .dtype_bytes = 1};
  auto big = Layout::allocate(large, StorageKind::system(), LayoutForm::FullyContiguous);
  EXPECT_FALSE(runs_would_merge(*block_geometry(*big, *big), runs));
}

}  // namespace
}  // namespace kvbm
