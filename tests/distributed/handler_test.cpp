// BlockTransferHandler and the connector scheduler, in-process (no messaging).
#include "kvbm/distributed/block_transfer_handler.hpp"

#include <gtest/gtest.h>

#include "support/roundtrip.hpp"

namespace kvbm::testing {
namespace {

using P = BlockTransferPool;

class Handler : public ::testing::Test {
 protected:
  LayoutConfig config{.num_blocks = 16, .num_layers = 2, .outer_dim = 2, .page_size = 4, .inner_dim = 32, .dtype_bytes = 2};
  TempDir dir;
  std::shared_ptr<TransferContext> context = std::make_shared<TransferContext>();
  LayoutPtr host = make_layout(config, StorageKind::system(), {}, dir.path());
  LayoutPtr disk = make_layout(config, StorageKind::disk(0), {}, dir.path());
  std::shared_ptr<ConnectorScheduler> scheduler = std::make_shared<ConnectorScheduler>();
  BlockTransferHandler handler{{nullptr, host, disk}, context, scheduler};

  // What a synchronous call threw, as a status (ok when it returned).
  template <typename Call>
  static Status outcome_of(Call&& call) {
    try {
      call();
      return {};
    } catch (const Error& error) {
      return error;
    }
  }
  Status run(const BlockTransferRequest& request) { return outcome_of([&] { handler.execute(request); }); }
  Status cancel(const std::string& uuid) { return outcome_of([&] { scheduler->cancel(uuid); }); }

  static void expect_error(const Status& status, ErrorCode code, const std::string& text) {
    ASSERT_FALSE(status.ok()) << "expected: " << text;
    EXPECT_EQ(status.error().code(), code) << status.to_string();
    EXPECT_NE(status.error().message().find(text), std::string::npos) << status.to_string();
  }
};

TEST_F(Handler, AcceptedPairsAreTheSeedsAndDeviceToDevice) {
  const std::set<std::pair<P, P>> accepted = {{P::Device, P::Host}, {P::Device, P::Disk}, {P::Host, P::Device},
                                              {P::Host, P::Disk},   {P::Disk, P::Device}, {P::Device, P::Device}};
  for (P from : {P::Device, P::Host, P::Disk}) {
    for (P to : {P::Device, P::Host, P::Disk}) EXPECT_EQ(is_accepted_pair(from, to), accepted.contains({from, to}));
  }
}

TEST_F(Handler, HostToDiskMovesBytes) {
  std::mt19937_64 rng(3);
  const auto contents = fill_random(*host, {1, 5}, rng);
  ASSERT_TRUE(run({P::Host, P::Disk, {{1, 9}, {5, 2}}, std::nullopt}).ok());
  EXPECT_EQ(read_block(*disk, 9), read_block(*host, 1));
  EXPECT_EQ(read_block(*disk, 2), read_block(*host, 5));
}

TEST_F(Handler, ErrorsInsteadOfPanics) {
  expect_error(run({P::Disk, P::Host, {{0, 0}}, std::nullopt}), ErrorCode::InvalidArgument,
               "invalid transfer type Disk -> Host");
  expect_error(run({P::Host, P::Host, {{0, 1}}, std::nullopt}), ErrorCode::InvalidArgument,
               "invalid transfer type Host -> Host");
  expect_error(run({P::Host, P::Device, {{0, 0}}, std::nullopt}), ErrorCode::InvalidArgument,
               "the Device pool is not configured");
  expect_error(run({P::Host, P::Disk, {{0, 16}}, std::nullopt}), ErrorCode::OutOfRange,
               "destination block index 16");
  expect_error(run({P::Host, P::Disk, {}, std::nullopt}), ErrorCode::InvalidArgument, "names no blocks");
  BlockTransferHandler no_scheduler{{nullptr, host, disk}, context, nullptr};
  expect_error(outcome_of([&] { no_scheduler.execute({P::Host, P::Disk, {{0, 0}}, ConnectorRequest{"req-9", "op"}}); }),
               ErrorCode::InvalidArgument, "req-9 carries connector_req but this worker has no scheduler");
  EXPECT_TRUE(run({P::Host, P::Disk, {{0, 0}}, std::nullopt}).ok());
}

TEST_F(Handler, ReplicatedModeChecksItsConfig) {
  // Replicated mode broadcasts into device pools: a rank without one is refused at once.
  expect_error(outcome_of([&] { BlockTransferHandler{{nullptr, host, disk}, context, scheduler, NcclConfig{true, 0, 2}}; }),
               ErrorCode::InvalidArgument, "needs a Device pool");
  expect_error(outcome_of([&] { BlockTransferHandler{{nullptr, host, disk}, context, scheduler, NcclConfig{true, 2, 2}}; }),
               ErrorCode::InvalidArgument, "rank 2 is outside [0, world_size=2)");
  expect_error(outcome_of([&] { BlockTransferHandler{{nullptr, host, disk}, context, scheduler, NcclConfig{true, 0, 0}}; }),
               ErrorCode::InvalidArgument, "world_size=0");
  EXPECT_EQ(handler.transfer_mode(), TransferMode::Sharded);
  expect_error(outcome_of([&] { handler.set_communicator(nullptr); }), ErrorCode::InvalidArgument, "sharded mode");
}

TEST_F(Handler, ConnectorOperationsAreScheduledCompletedOrCancelled) {
  const ConnectorRequest op{"req-1", "op-1"};
  scheduler->enqueue(op);
  EXPECT_TRUE(run({P::Host, P::Disk, {{0, 0}}, op}).ok());
  EXPECT_EQ(scheduler->state("op-1"), ConnectorScheduler::State::Finished);

  const ConnectorRequest queued{"req-2", "op-2"};
  scheduler->enqueue(queued);
  EXPECT_TRUE(cancel("op-2").ok());
  expect_error(run({P::Host, P::Disk, {{1, 1}}, queued}), ErrorCode::Cancelled, "op-2 of request req-2 was cancelled");
  EXPECT_EQ(scheduler->state("op-2"), ConnectorScheduler::State::Finished);

  // Cancelled before it even arrived.
  EXPECT_TRUE(cancel("op-3").ok());
  expect_error(run({P::Host, P::Disk, {{1, 1}}, ConnectorRequest{"req-3", "op-3"}}), ErrorCode::Cancelled,
               "cancelled");

  // Running operations cannot be cancelled.
  const ConnectorRequest running{"req-4", "op-4"};
  EXPECT_EQ(scheduler->schedule(running), SchedulingDecision::Execute);
  const Status late = cancel("op-4");
  ASSERT_FALSE(late.ok());
  EXPECT_NE(late.error().message().find("already running"), std::string::npos);
  scheduler->mark_complete(running, {});

  // Finished operations cannot be cancelled; the uuid used again is a new operation.
  const Status finished = cancel("op-1");
  ASSERT_FALSE(finished.ok());
  EXPECT_NE(finished.error().message().find("op-1 has already finished"), std::string::npos);
  scheduler->enqueue(op);
  EXPECT_TRUE(run({P::Host, P::Disk, {{0, 0}}, op}).ok());
}

// The table remembers at most its capacity of operations that are not queued or running.
TEST(ConnectorSchedulerMemory, CancelledAndFinishedEntriesAreBounded) {
  ConnectorScheduler scheduler(8);
  const ConnectorRequest live{"req", "live"};
  scheduler.enqueue(live);
  for (int i = 0; i < 1000; ++i) {
    ASSERT_NO_THROW(scheduler.cancel("early-" + std::to_string(i)));
    const ConnectorRequest done{"req", "done-" + std::to_string(i)};
    scheduler.enqueue(done);
    ASSERT_EQ(scheduler.schedule(done), SchedulingDecision::Execute);
    scheduler.mark_complete(done, {});
  }
  EXPECT_LE(scheduler.tracked(), 9u);
  EXPECT_EQ(scheduler.state("live"), ConnectorScheduler::State::Queued);  // never forgotten
  EXPECT_EQ(scheduler.state("early-999"), ConnectorScheduler::State::Cancelled);
  EXPECT_EQ(scheduler.state("done-999"), ConnectorScheduler::State::Finished);
  EXPECT_FALSE(scheduler.state("early-0").has_value());
  for (const std::string& bad : {std::string(), std::string(kMaxConnectorIdBytes + 1, 'x')}) {
    try {
      scheduler.cancel(bad);
      ADD_FAILURE() << "a uuid of " << bad.size() << " bytes was accepted";
    } catch (const Error& error) {
      EXPECT_EQ(error.code(), ErrorCode::InvalidArgument);
      EXPECT_NE(error.message().find(std::to_string(bad.size()) + " bytes"), std::string::npos);
    }
  }
}

}  // namespace
}  // namespace kvbm::testing
