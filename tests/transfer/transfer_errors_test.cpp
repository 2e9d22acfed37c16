// Bad requests and real I/O failures: each fails the transfer with an error naming the index,
// path or errno, and the context goes on serving the next request.
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <filesystem>
#include <numeric>

#include "kvbm/common/error.hpp"
#include "platform/cuda_runtime.hpp"
#include "support/roundtrip.hpp"

namespace kvbm::testing {
namespace {

LayoutConfig config_of(std::size_t blocks, std::size_t chunk) {
  return {.num_blocks = blocks, .num_layers = 2, .outer_dim = 2, .page_size = 1, .inner_dim = chunk, .dtype_bytes = 1};
}

Status run(TransferContext& context, const LayoutPtr& src, const LayoutPtr& dst, std::vector<BlockPair> pairs) {
  return context.transfer(src, dst, pairs).wait();
}

void expect_error(const Status& status, ErrorCode code, const std::string& text) {
  ASSERT_FALSE(status.ok()) << "expected an error containing '" << text << "'";
  EXPECT_EQ(status.error().code(), code) << status.to_string();
  EXPECT_NE(status.error().message().find(text), std::string::npos) << status.to_string();
}

// After any failure the same context must still move bytes correctly.
void expect_still_serving(TransferContext& context, const std::string& dir) {
  auto a = make_layout(config_of(9, 777), StorageKind::system(), {}, dir);
  auto b = make_layout(config_of(9, 777), StorageKind::disk(0), {}, dir);
  EXPECT_EQ(check_roundtrip(context, a, b, 3, 1234), "");
}

class TransferErrors : public ::testing::Test {
 protected:
  TempDir dir;
  TransferContext context;
  LayoutPtr system(std::size_t blocks = 8, std::size_t chunk = 512) {
    return make_layout(config_of(blocks, chunk), StorageKind::system(), {}, dir.path());
  }
  LayoutPtr disk(std::size_t blocks = 8, std::size_t chunk = 512) {
    return make_layout(config_of(blocks, chunk), StorageKind::disk(0), {}, dir.path());
  }
};

TEST_F(TransferErrors, SourceIndexOutOfRange) {
  expect_error(run(context, system(), system(), {{0, 0}, {8, 1}}), ErrorCode::OutOfRange, "source block index 8 (pair 1)");
  expect_still_serving(context, dir.path());
}

TEST_F(TransferErrors, DestinationIndexOutOfRange) {
  expect_error(run(context, system(), disk(), {{1, 100}}), ErrorCode::OutOfRange, "destination block index 100 (pair 0)");
}

TEST_F(TransferErrors, DestinationNamedTwice) {
  expect_error(run(context, system(), system(), {{0, 3}, {1, 4}, {2, 3}}), ErrorCode::InvalidArgument,
               "destination block 3 is named twice (pairs 0 and 2)");
}

// Indices are checked batch by batch, just before each batch starts: a bad pair in a later
// batch names its place in the whole request, and no batch from it onwards moves a byte.
TEST_F(TransferErrors, BadPairInALaterBatchStopsTheBatchesFromIt) {
  TransferConfig config = TransferConfig{};
  config.max_transfer_batch_size = 2;
  TransferContext batched(config);
  auto src = system(16);
  auto dst = system(16);
  std::mt19937_64 rng(11);
  std::vector<std::size_t> all(16);
  std::iota(all.begin(), all.end(), 0);
  fill_random(*src, all, rng);
  poison(*dst, std::byte{0x5a});
  const Bytes poisoned = read_chunk(*dst, 0, 0, 0);
  // Four batches of two pairs; pair 5 (in the third batch) is out of range, so the third and
  // fourth batches never start.
  std::vector<BlockPair> pairs = {{0, 0}, {1, 1}, {2, 2}, {3, 3}, {4, 4}, {99, 5}, {6, 6}, {7, 7}};
  expect_error(batched.transfer(src, dst, pairs).wait(), ErrorCode::OutOfRange, "source block index 99 (pair 5)");
  for (std::size_t block : {4, 5, 6, 7}) EXPECT_EQ(read_chunk(*dst, block, 1, 1), poisoned) << "block " << block;
  // A destination named again in a later batch is caught there, naming both pairs.
  pairs = {{0, 8}, {1, 9}, {2, 10}, {3, 11}, {4, 9}, {5, 12}};
  expect_error(batched.transfer(src, dst, pairs).wait(), ErrorCode::InvalidArgument,
               "destination block 9 is named twice (pairs 1 and 4)");
  EXPECT_EQ(read_chunk(*dst, 12, 0, 0), poisoned);
  expect_still_serving(batched, dir.path());
}

TEST_F(TransferErrors, ChunkSizesDiffer) {
  expect_error(run(context, system(8, 512), system(8, 1024), {{0, 0}}), ErrorCode::InvalidArgument,
               "chunk bytes: 512 vs 1024");
}

TEST_F(TransferErrors, OverlapInTheSameRegion) {
  auto layout = system();
  expect_error(run(context, layout, layout, {{1, 2}, {2, 5}}), ErrorCode::InvalidArgument,
               "source block 2 overlaps destination block 2");
  // Disjoint blocks of one layout are fine, and move correctly.
  EXPECT_EQ(check_roundtrip(context, layout, layout, 1, 7).find("overlap"), std::string::npos);
  // Two layouts over one region, shifted by half a chunk: overlap found through byte ranges.
  auto region = Region::allocate_system(Layout::required_bytes_fully_contiguous(config_of(8, 512), StorageKind::system()) + 256);
  auto a = Layout::fully_contiguous(config_of(8, 512), region, 0);
  auto b = Layout::fully_contiguous(config_of(8, 512), region, 256);
  expect_error(run(context, a, b, {{4, 4}}), ErrorCode::InvalidArgument, "source block 4 overlaps destination block");
  EXPECT_TRUE(run(context, a, b, {{0, 6}}).ok());
}

TEST_F(TransferErrors, EmptyRequestCompletesOk) { EXPECT_TRUE(run(context, system(), disk(), {}).ok()); }

TEST_F(TransferErrors, NullLayout) { expect_error(run(context, nullptr, disk(), {{0, 0}}), ErrorCode::InvalidArgument, "null"); }

// Preparing a path refuses what a transfer would, at once; a prepared path's bad requests are
// errors of their handles, and the path keeps serving.
TEST_F(TransferErrors, PreparedPathsRefuseBadPairsAndServeOnAfterBadRequests) {
  const auto thrown = [](const std::function<void()>& prepare) {
    try {
      prepare();
    } catch (const Error& error) {
      EXPECT_EQ(error.code(), ErrorCode::InvalidArgument);
      return error.message();
    }
    return std::string("nothing thrown");
  };
  EXPECT_NE(thrown([&] { (void)context.prepare(nullptr, disk()); }).find("null"), std::string::npos);
  EXPECT_NE(thrown([&] { (void)context.prepare(system(8, 512), system(8, 1024)); }).find("chunk bytes: 512 vs 1024"),
            std::string::npos);
  const TransferPath path = context.prepare(system(), disk());
  expect_error(path.post(std::vector<BlockPair>{{8, 0}}).wait(), ErrorCode::OutOfRange, "source block index 8");
  expect_error(path.post(std::vector<BlockPair>{{0, 1}, {2, 1}}).wait(), ErrorCode::InvalidArgument,
               "destination block 1 is named twice");
  EXPECT_EQ(check_roundtrip(path, 3, 99), "");
}

// A GPU fence only exists for paths on CUDA streams: a host <-> disk path is refused, naming
// its kinds and plan, and keeps serving.
TEST_F(TransferErrors, AFenceOnAPathWithoutCudaStreamsIsRefused) {
  const TransferPath path = context.prepare(system(), disk());
  try {
    (void)path.fence();
    FAIL() << "a fence on a system -> disk path was made";
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::Unsupported);
    EXPECT_NE(error.message().find("System -> Disk(0) runs as Direct(NixlWrite)"), std::string::npos)
        << error.message();
  }
  EXPECT_EQ(check_roundtrip(path, 3, 17), "");
}

TEST_F(TransferErrors, GpuPlanWithoutGpuExecutorIsNamed) {
  if (cuda::device_count() > 0) GTEST_SKIP() << "a CUDA device is present";
  // Device regions cannot even be made here: the error names CUDA.
  try {
    (void)make_layout(config_of(4, 512), StorageKind::device(0), {}, dir.path());
    FAIL();
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::Unsupported);
  }
}

TEST_F(TransferErrors, TruncatedFileMidTransferIsAShortRead) {
  const std::string path = dir.path() + "/kept";
  DiskFileOptions options;
  options.keep_path = path;
  const LayoutConfig config = config_of(16, 4096);
  auto region = Region::create_disk_file(Layout::required_bytes_fully_contiguous(config, StorageKind::disk(0)), options);
  auto disk_layout = Layout::fully_contiguous(config, region);
  auto host = make_layout(config, StorageKind::system(), {}, dir.path());
  poison(*host, std::byte{0x77});
  // Someone truncates the file under kvbm: blocks past 4 are gone.
  ASSERT_EQ(::truncate(path.c_str(), 4 * 4 * 4096), 0);
  expect_error(run(context, disk_layout, host, {{1, 1}, {9, 2}, {12, 3}}), ErrorCode::Io, "short read");
  expect_error(run(context, disk_layout, host, {{9, 2}}), ErrorCode::Io, path);
  // Reads of what is still there work.
  EXPECT_TRUE(run(context, disk_layout, host, {{0, 0}, {2, 1}}).ok());
  expect_still_serving(context, dir.path());
}

TEST_F(TransferErrors, FileSizeLimitMidTransferIsEfbig) {
  const LayoutConfig config = config_of(16, 4096);
  auto disk_layout = disk(16, 4096);
  auto host = system(16, 4096);
  // A real kernel limit: writes at or past 32 KiB into any file now fail with EFBIG.
  std::signal(SIGXFSZ, SIG_IGN);
  rlimit old{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
  rlimit limited = old;
  limited.rlim_cur = 32 * 1024;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &limited), 0);
  const Status status = run(context, host, disk_layout, {{0, 0}, {3, 5}, {4, 9}});
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &old), 0);
  expect_error(status, ErrorCode::Io, "errno 27");  // EFBIG
  EXPECT_NE(status.error().message().find("File too large"), std::string::npos);
  expect_still_serving(context, dir.path());
}

TEST_F(TransferErrors, DiskFileOnAFullFilesystemIsEnospc) {
  const std::string mount_point = dir.path() + "/tiny";
  std::filesystem::create_directory(mount_point);
  if (::mount("tmpfs", mount_point.c_str(), "tmpfs", 0, "size=256k") != 0) {
    GTEST_SKIP() << "cannot mount a small tmpfs here (" << std::strerror(errno) << "); needs root";
  }
  DiskFileOptions options;
  options.directory = mount_point;
  try {
    (void)Layout::allocate(config_of(64, 4096), StorageKind::disk(0), LayoutForm::FullyContiguous,
                           LayerOrder::BlockContiguous, options);
    ADD_FAILURE() << "a 1 MiB disk layout fit in a 256 KiB filesystem";
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::Io);
    EXPECT_NE(error.message().find("errno 28"), std::string::npos) << error.what();  // ENOSPC
    EXPECT_NE(error.message().find(mount_point), std::string::npos) << error.what();
  }
  // A layout that fits works on the same filesystem.
  auto small = Layout::allocate(config_of(8, 4096), StorageKind::disk(0), LayoutForm::FullyContiguous,
                                LayerOrder::BlockContiguous, options);
  auto host = system(8, 4096);
  EXPECT_EQ(check_roundtrip(context, host, small, 3, 5), "");
  // The transfer has ended: kvbm holds no reference to the layout, so its file closes here
  // and the filesystem is no longer busy.
  small.reset();
  EXPECT_EQ(::umount(mount_point.c_str()), 0) << std::strerror(errno);
}

TEST_F(TransferErrors, ErrorInOneBatchFailsTheWhole) {
  TransferConfig config = TransferConfig{};
  config.max_transfer_batch_size = 2;
  TransferContext batched(config);
  const std::string path = dir.path() + "/kept";
  DiskFileOptions options;
  options.keep_path = path;
  const LayoutConfig layout = config_of(16, 4096);
  auto disk_layout = Layout::fully_contiguous(
      layout, Region::create_disk_file(Layout::required_bytes_fully_contiguous(layout, StorageKind::disk(0)), options));
  auto host = system(16, 4096);
  ASSERT_EQ(::truncate(path.c_str(), 8 * 4 * 4096), 0);
  // Seven batches of two; only the one holding block 14 fails.
  std::vector<BlockPair> pairs;
  for (std::size_t b = 0; b < 7; ++b) pairs.emplace_back(b, b);
  pairs.emplace_back(14, 7);
  for (std::size_t b = 8; b < 14; ++b) pairs.emplace_back(b % 8, b);
  expect_error(batched.transfer(disk_layout, host, pairs).wait(), ErrorCode::Io, "short read");
}

TEST(TransferConfigTest, BadSettingsAreNamed) {
  // The message of the Error that `attempt` throws ("", and a failure, when it throws none).
  const auto thrown = [](auto&& attempt) -> std::string {
    try {
      attempt();
    } catch (const Error& error) {
      return error.message();
    }
    ADD_FAILURE() << "no error was thrown";
    return "";
  };
  TransferConfig config;
  config.disk.io_bytes = 1000;
  EXPECT_NE(thrown([&] { config.validate(); }).find("disk.io_bytes=1000"), std::string::npos);
  config = TransferConfig{};
  config.cuda.kernel_streams = 9;
  const std::string streams = thrown([&] { config.validate(); });
  EXPECT_NE(streams.find("cuda.kernel_streams=9 must be in [1, 8]"), std::string::npos) << streams;
  config = TransferConfig{};
  config.cuda.copy_engine_call_copies = 0;
  EXPECT_NE(thrown([&] { config.validate(); }).find("cuda.copy_engine_call_copies=0 must be > 0"), std::string::npos);
  config = TransferConfig{};
  config.cuda.copy_path = static_cast<CudaCopyPath>(7);
  EXPECT_NE(thrown([&] { config.validate(); }).find("cuda.copy_path=7"), std::string::npos);
  config = TransferConfig{};
  config.latency = static_cast<LatencyPolicy>(9);
  EXPECT_NE(thrown([&] { config.validate(); }).find("latency=9"), std::string::npos);
  config = TransferConfig{};
  config.disk.backend = "spdk";
  EXPECT_NE(thrown([&] { TransferContext context(config); }).find("'spdk'"), std::string::npos);
}

}  // namespace
}  // namespace kvbm::testing
