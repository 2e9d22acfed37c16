// Layer views (Layout::layers): the view locates its storage's layers, and a transfer between
// two views moves those layers of each block and nothing else, between every host and disk
// layout form, at odd chunk sizes.
#include <gtest/gtest.h>

#include "kvbm/common/error.hpp"
#include "kvbm/transfer/transfer_context.hpp"
#include "support/roundtrip.hpp"

namespace kvbm::testing {
namespace {

LayoutConfig config_with(std::size_t chunk_bytes) {
  return {.num_blocks = 23, .num_layers = 5, .outer_dim = 2, .page_size = 1, .inner_dim = chunk_bytes,
          .dtype_bytes = 1};
}

}  // namespace

TEST(LayerView, LocatesTheStorageLayerInEveryForm) {
  TempDir dir;
  for (const LayoutChoice& choice : all_layout_choices()) {
    SCOPED_TRACE(choice.name());
    const auto whole = make_layout(config_with(100), StorageKind::system(), choice, dir.path());
    const auto view = whole->layers(2, 2);
    EXPECT_TRUE(view->is_layer_view());
    EXPECT_FALSE(whole->is_layer_view());
    EXPECT_EQ(view->config().num_layers, 2u);
    EXPECT_EQ(view->config().num_blocks, 23u);
    const auto nested = view->layers(1, 1);  // a view of a view counts from the view's first layer
    for (std::size_t block : {0, 7, 22}) {
      for (std::size_t outer : {0, 1}) {
        const ChunkLocation a = view->locate(block, 1, outer);
        const ChunkLocation b = whole->locate(block, 3, outer);
        EXPECT_EQ(a.region, b.region);
        EXPECT_EQ(a.offset, b.offset);
        EXPECT_EQ(nested->locate(block, 0, outer).offset, b.offset);
      }
    }
    EXPECT_NE(view->describe().find("layers 2..3 of 5"), std::string::npos) << view->describe();
  }
}

TEST(LayerView, LayersPastTheLayoutAreNamed) {
  const auto whole = Layout::allocate(config_with(100), StorageKind::system(), LayoutForm::FullyContiguous);
  try {
    (void)whole->layers(4, 2);
    FAIL() << "layers 4..5 of 5 accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::OutOfRange);
    EXPECT_NE(std::string(e.what()).find("layers 4..5"), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)whole->layers(5, 1), Error);
  EXPECT_THROW((void)whole->layers(0, 0), Error);
  EXPECT_THROW((void)whole->layers(1, 2)->locate(0, 2, 0), Error);  // the view's own bound
}

TEST(LayerView, ViewsOfDifferentLayerCountsAreRefused) {
  const auto a = Layout::allocate(config_with(100), StorageKind::system(), LayoutForm::FullyContiguous);
  const auto b = Layout::allocate(config_with(100), StorageKind::system(), LayoutForm::FullyContiguous);
  TransferContext context;
  const std::vector<BlockPair> pairs{{0, 0}};
  const Status status = context.transfer(a->layers(0, 2), b->layers(0, 3), pairs).wait();
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.to_string().find("num_layers"), std::string::npos) << status.to_string();
}

TEST(LayerView, MovesOnlyItsLayersBetweenEveryHostAndDiskForm) {
  TempDir dir;
  TransferContext context;
  std::uint64_t seed = 1;
  for (StorageKind src_kind : {StorageKind::system(), StorageKind::disk(0)}) {
    for (StorageKind dst_kind : {StorageKind::system(), StorageKind::disk(1)}) {
      for (std::size_t chunk : {std::size_t{1000}, std::size_t{4096}}) {
        // Each form against itself and against the next one: every form on both sides, in half
        // the pairs of forms (the ASan build runs these too).
        const auto choices = all_layout_choices();
        for (std::size_t i = 0; i < choices.size(); ++i) {
          for (const LayoutChoice& dst_choice : {choices[i], choices[(i + 1) % choices.size()]}) {
            const LayoutChoice& src_choice = choices[i];
            SCOPED_TRACE(src_kind.to_string() + " " + src_choice.name() + " -> " + dst_kind.to_string() + " " +
                         dst_choice.name() + ", chunk " + std::to_string(chunk));
            const auto src = make_layout(config_with(chunk), src_kind, src_choice, dir.path());
            const auto dst = make_layout(config_with(chunk), dst_kind, dst_choice, dir.path());
            EXPECT_EQ(check_layer_view_roundtrip(context, src, dst, 3, 1, 7, ++seed, false), "");
            EXPECT_EQ(check_layer_view_roundtrip(context, src, dst, 1, 3, 5, ++seed, true), "");
          }
        }
      }
    }
  }
}

}  // namespace kvbm::testing
