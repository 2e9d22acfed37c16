#include "common/make_error.hpp"
#include "kvbm/transfer/transfer_handle.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <optional>
#include <thread>

#include "support/roundtrip.hpp"
#include "transfer/engine/join.hpp"

namespace kvbm {

TEST(TransferHandle, WaitForTimesOutThenCompletes) {
  auto state = std::make_shared<CompletionState>();
  TransferHandle handle(state);
  EXPECT_FALSE(handle.poll().has_value());
  EXPECT_FALSE(handle.wait_for(std::chrono::milliseconds(20)).has_value());
  std::thread finisher([state] { state->complete(make_error(ErrorCode::Io, "boom")); });
  const Status status = handle.wait();
  finisher.join();
  EXPECT_FALSE(status.ok());
  EXPECT_EQ(handle.poll()->error().message(), "boom");
}

// Waits (yielding) until a waiter of `state` has gone to sleep `count` times in all.
void await_sleeps(CompletionState& state, std::uint64_t count) {
  while (state.sleeps() < count) std::this_thread::yield();
}

// A waiter woken because the end is near polls for it; if the end comes later than its poll
// lasts, it sleeps again and still sees the outcome. Said after the end, it changes nothing.
TEST(TransferHandle, EndIsNearWakesTheWaiterWhichStillSeesTheEnd) {
  for (const bool end_after_the_poll : {false, true}) {
    auto state = std::make_shared<CompletionState>();
    TransferHandle handle(state);
    std::thread worker([state, end_after_the_poll] {
      await_sleeps(*state, 1);  // the waiter polled, then slept
      state->end_is_near();
      state->end_is_near();  // said twice: once counts
      if (end_after_the_poll) await_sleeps(*state, 2);  // it woke, polled in vain and slept again
      state->complete(make_error(ErrorCode::Io, "last batch"));
      state->end_is_near();
    });
    const Status status = handle.wait();
    worker.join();
    ASSERT_FALSE(status.ok()) << end_after_the_poll;
    EXPECT_EQ(status.error().message(), "last batch");
  }
}

// A join says when a few parts are left, once, and never when it has no more parts than that.
TEST(Join, SaysWhenAFewPartsAreLeft) {
  int few_left = 0;
  std::optional<Status> outcome;
  auto join = Join::make(4, [&](Status status) { outcome = std::move(status); }, [&] { ++few_left; }, 2);
  join->arrive(Status{});
  EXPECT_EQ(few_left, 0);
  join->arrive(make_error(ErrorCode::Io, "second part"));
  EXPECT_EQ(few_left, 1);
  join->arrive(Status{});
  EXPECT_EQ(few_left, 1);
  EXPECT_FALSE(outcome.has_value());
  join->arrive(Status{});
  EXPECT_EQ(few_left, 1);
  ASSERT_TRUE(outcome.has_value());
  EXPECT_EQ(outcome->error().message(), "second part");
  for (std::size_t parts : {1, 2}) {
    auto small = Join::make(parts, [&](Status) {}, [&] { ++few_left; }, 2);
    for (std::size_t i = 0; i < parts; ++i) small->arrive(Status{});
  }
  EXPECT_EQ(few_left, 1);
}

TEST(TransferHandle, CallbackRunsOnceBeforeOrAfterCompletion) {
  auto state = std::make_shared<CompletionState>();
  TransferHandle handle(state);
  std::atomic<int> calls{0};
  handle.on_complete([&](const Status& status) { calls += status.ok() ? 1 : 100; });
  state->complete(Status{});
  state->complete(make_error(ErrorCode::Io, "late"));  // ignored: completes once
  handle.on_complete([&](const Status& status) { calls += status.ok() ? 1 : 100; });
  EXPECT_EQ(calls.load(), 2);
}

TEST(TransferHandle, WaitReturnsOnlyAfterTheCallbacksHaveRun) {
  auto state = std::make_shared<CompletionState>();
  TransferHandle handle(state);
  std::atomic<bool> started{false}, release{false}, callback_done{false};
  handle.on_complete([&](const Status&) {
    started = true;
    while (!release) std::this_thread::yield();  // held until the test has looked
    callback_done = true;
  });
  std::thread finisher([state] { state->complete(Status{}); });
  while (!started) std::this_thread::yield();
  // The outcome is set and its callback is running: neither poll() nor a waiter may see it yet.
  EXPECT_FALSE(handle.poll().has_value());
  std::atomic<bool> waited{false};
  std::thread waiter([&] {
    EXPECT_TRUE(handle.wait().ok());
    EXPECT_TRUE(callback_done.load());
    waited = true;
  });
  await_sleeps(*state, 1);  // the waiter polled for the outcome, did not see it, and slept
  EXPECT_FALSE(waited.load());
  release = true;
  waiter.join();
  finisher.join();
  EXPECT_TRUE(waited.load());
}

TEST(TransferHandle, CallbackMayWaitOnAndDestroyItsOwnHandle) {
  auto state = std::make_shared<CompletionState>();
  auto handle = std::make_unique<TransferHandle>(state);
  std::optional<Status> seen_inside;
  handle->on_complete([&](const Status&) {
    seen_inside = handle->poll();
    handle.reset();  // the destructor waits: on the completing thread it must not block
  });
  std::thread finisher([state] { state->complete(make_error(ErrorCode::Io, "inside")); });
  finisher.join();
  ASSERT_TRUE(seen_inside.has_value());
  EXPECT_EQ(seen_inside->error().message(), "inside");
  EXPECT_EQ(handle, nullptr);
  EXPECT_EQ(state->poll()->error().message(), "inside");
}

TEST(TransferHandle, RealTransferCallbackAndPoll) {
  testing::TempDir dir;
  TransferContext context;
  const LayoutConfig config{.num_blocks = 64, .num_layers = 2, .outer_dim = 2, .page_size = 1, .inner_dim = 65536,
                            .dtype_bytes = 1};
  auto src = Layout::allocate(config, StorageKind::system(), LayoutForm::FullyContiguous);
  auto dst = Layout::allocate(config, StorageKind::disk(0), LayoutForm::LayerSeparate, LayerOrder::OuterContiguous,
                              DiskFileOptions{.directory = dir.path()});
  std::vector<BlockPair> pairs;
  for (std::size_t b = 0; b < 64; ++b) pairs.emplace_back(b, 63 - b);
  std::atomic<bool> called{false};
  auto handle = context.transfer(src, dst, pairs);
  handle.on_complete([&](const Status& status) { called = status.ok(); });
  EXPECT_TRUE(handle.wait_for(std::chrono::seconds(30)).value().ok());
  EXPECT_TRUE(called.load());
  EXPECT_TRUE(handle.poll().value().ok());
}

// A callback given to post() is attached before the I/O starts, so however fast the transfer,
// it runs on the disk backend's thread: the caller (a worker's receiving thread) never does.
TEST(TransferHandle, APostedCallbackRunsOnTheThreadThatFinishesTheTransfer) {
  testing::TempDir dir;
  TransferContext context;
  const LayoutConfig config{.num_blocks = 2, .num_layers = 1, .outer_dim = 1, .page_size = 1, .inner_dim = 4096,
                            .dtype_bytes = 1};
  auto src = Layout::allocate(config, StorageKind::system(), LayoutForm::FullyContiguous);
  auto dst = Layout::allocate(config, StorageKind::disk(0), LayoutForm::FullyContiguous, LayerOrder::OuterContiguous,
                              DiskFileOptions{.directory = dir.path()});
  const TransferPath path = context.prepare(src, dst);
  const std::vector<BlockPair> pairs{{0, 1}};
  for (int round = 0; round < 50; ++round) {
    std::thread::id ran_on;
    auto handle = path.post(pairs, [&](const Status& status) {
      EXPECT_TRUE(status.ok()) << status.to_string();
      ran_on = std::this_thread::get_id();
    });
    ASSERT_TRUE(handle.wait().ok());
    ASSERT_NE(ran_on, std::this_thread::get_id()) << "round " << round;
  }
  // Pairs that fail their checks are answered on the caller's thread, with the error.
  std::optional<Status> refused;
  auto handle = path.post(std::vector<BlockPair>{{0, 9}}, [&](const Status& status) { refused = status; });
  ASSERT_TRUE(refused.has_value());
  EXPECT_NE(refused->error().message().find("9"), std::string::npos) << refused->to_string();
  EXPECT_FALSE(handle.wait().ok());
}

}  // namespace kvbm
