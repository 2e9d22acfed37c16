// How copy ops become O_DIRECT units, and that joined units move the right bytes on both
// backends: chunks staged anyway that sit in consecutive 4 KiB slots share one I/O.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <future>
#include <random>

#include "support/roundtrip.hpp"
#include "transfer/backends/disk/disk_request.hpp"

namespace kvbm::testing {
namespace {

constexpr std::size_t kPage = 4096;

struct Fixture {
  TempDir dir;
  RegionPtr memory = Region::allocate_system(64 * kPage + 1);
  RegionPtr file = [&] {
    DiskFileOptions options;
    options.directory = dir.path();
    return Region::create_disk_file(64 * kPage, options);
  }();

  CopyOp write_op(std::size_t memory_offset, std::size_t file_offset, std::size_t bytes) const {
    return {{memory.get(), memory_offset}, {file.get(), file_offset}, bytes};
  }
  CopyOp read_op(std::size_t memory_offset, std::size_t file_offset, std::size_t bytes) const {
    return {{file.get(), file_offset}, {memory.get(), memory_offset}, bytes};
  }
};

std::size_t units_of(const CopyOps& ops, std::size_t max_unit_bytes = 1u << 20) {
  return DiskRequest(ops, max_unit_bytes, [](Status) {}).unit_count();
}

TEST(DiskRequest, StagedChunksInConsecutiveSlotsShareOneUnit) {
  Fixture f;
  CopyOps small;  // 1000-byte chunks, one per 4 KiB slot: each would be a staged page of its own
  for (std::size_t i = 0; i < 8; ++i) small.push_back(f.write_op(1 + i * 1000, i * kPage, 1000));
  EXPECT_EQ(units_of(small), 1u);
  EXPECT_EQ(units_of(small, 2 * kPage), 4u);  // a unit never grows past the largest I/O

  CopyOps gap = small;
  gap[4] = f.write_op(1 + 4 * 1000, 9 * kPage, 1000);  // slot 9, not 4: the run breaks there
  EXPECT_EQ(units_of(gap), 3u);

  CopyOps pages;  // aligned whole pages go to the disk directly, one I/O each, never joined
  for (std::size_t i = 0; i < 4; ++i) pages.push_back(f.write_op((2 * i) * kPage, i * kPage, kPage));
  EXPECT_EQ(units_of(pages), 4u);
}

Status run(DiskBackend& backend, const CopyOps& ops, std::size_t max_unit_bytes = 1u << 20) {
  std::promise<Status> outcome;
  auto request = std::make_shared<DiskRequest>(ops, max_unit_bytes, [&](Status status) { outcome.set_value(status); });
  backend.submit(request);
  return outcome.get_future().get();
}

class JoinedUnits : public ::testing::TestWithParam<std::string> {};
class EngineBounds : public ::testing::TestWithParam<std::string> {};

TEST_P(JoinedUnits, WriteZeroPadsAndReadScattersBack) {
  Fixture f;
  auto backend = make_disk_backend({.backend = GetParam(), .queue_depth = 4});
  std::mt19937_64 rng(7);
  for (std::size_t i = 0; i < f.memory->size(); ++i) f.memory->data()[i] = static_cast<std::byte>(rng());
  const std::vector<std::byte> original(f.memory->data(), f.memory->data() + f.memory->size());
  CopyOps writes;
  CopyOps reads;
  for (std::size_t i = 0; i < 6; ++i) {
    writes.push_back(f.write_op(3 + i * 777, (10 + i) * kPage, 777));
    reads.push_back(f.read_op(40 * kPage + 5 + i * 777, (10 + i) * kPage, 777));
  }
  ASSERT_EQ(units_of(writes), 1u);
  ASSERT_TRUE(run(*backend, writes).ok());

  const RegionPtr pages = Region::allocate_system(6 * kPage);  // page-aligned, as O_DIRECT needs
  const std::byte* on_disk = pages->data();
  ASSERT_EQ(::pread(f.file->fd(), pages->data(), 6 * kPage, 10 * kPage), static_cast<ssize_t>(6 * kPage));
  for (std::size_t i = 0; i < 6; ++i) {
    EXPECT_EQ(std::memcmp(on_disk + i * kPage, original.data() + 3 + i * 777, 777), 0) << "slot " << i;
    const auto* padding = on_disk + i * kPage + 777;
    EXPECT_TRUE(std::all_of(padding, padding + kPage - 777, [](std::byte b) { return b == std::byte{0}; }))
        << "padding of slot " << i;
  }

  ASSERT_TRUE(run(*backend, reads).ok());
  for (std::size_t i = 0; i < 6; ++i) {
    EXPECT_EQ(std::memcmp(f.memory->data() + 40 * kPage + 5 + i * 777, original.data() + 3 + i * 777, 777), 0)
        << "chunk " << i;
  }
  // Bytes between the chunks read back were not touched.
  EXPECT_EQ(f.memory->data()[40 * kPage + 4], original[40 * kPage + 4]);
  EXPECT_EQ(f.memory->data()[40 * kPage + 5 + 6 * 777], original[40 * kPage + 5 + 6 * 777]);
}

INSTANTIATE_TEST_SUITE_P(Backends, JoinedUnits, ::testing::Values("io_uring", "threads"));

// The engine's bounds: more units than slots, staged units queued behind two staging buffers
// (the byte bound allows two 8 KiB I/Os in flight), direct and staged units mixed in one request,
// all landing where they belong. Several requests are submitted at once.
TEST_P(EngineBounds, MoreUnitsThanSlotsAndStagingBuffersAllLand) {
  Fixture f;
  auto backend = make_disk_backend({.backend = GetParam(), .queue_depth = 3, .io_bytes = 2 * kPage,
                                    .in_flight_bytes = 4 * kPage});
  std::mt19937_64 rng(11);
  const Bytes original = random_bytes(f.memory->size(), rng);
  std::memcpy(f.memory->data(), original.data(), original.size());
  CopyOps first;
  CopyOps second;
  for (std::size_t i = 0; i < 16; ++i) {
    // Even pages: aligned whole pages, direct. Odd: 1000 bytes from an odd address, staged.
    if (i % 2 == 0) first.push_back(f.write_op(i * kPage, i * kPage, kPage));
    else first.push_back(f.write_op(i * kPage + 1, i * kPage, 1000));
  }
  for (std::size_t i = 0; i < 8; ++i) {  // staged, two units each
    second.push_back(f.write_op((16 + i * 5) * kPage + 3, (16 + i * 4) * kPage, 3 * kPage + 5));
  }
  ASSERT_GE(units_of(second, 2 * kPage), 16u);
  std::promise<Status> first_done;
  std::promise<Status> second_done;
  backend->submit(std::make_shared<DiskRequest>(first, 2 * kPage, [&](Status s) { first_done.set_value(s); }));
  backend->submit(std::make_shared<DiskRequest>(second, 2 * kPage, [&](Status s) { second_done.set_value(s); }));
  ASSERT_TRUE(first_done.get_future().get().ok());
  ASSERT_TRUE(second_done.get_future().get().ok());

  // Read everything back into poisoned memory elsewhere.
  RegionPtr back = Region::allocate_system(f.memory->size());
  std::memset(back->data(), 0xee, back->size());
  CopyOps reads;
  for (const CopyOp& op : first) reads.push_back({op.dst, {back.get(), op.src.offset}, op.bytes});
  for (const CopyOp& op : second) reads.push_back({op.dst, {back.get(), op.src.offset}, op.bytes});
  ASSERT_TRUE(run(*backend, reads, 2 * kPage).ok());
  for (const CopyOp& op : reads) {
    EXPECT_EQ(std::memcmp(back->data() + op.dst.offset, original.data() + op.dst.offset, op.bytes), 0)
        << "chunk at " << op.dst.offset;
  }
}

// Files come and go while the backend lives: each file's registration ends with its last I/O,
// so a new file (its Region perhaps at the freed one's address, its descriptor the same number)
// is never written through a stale registration. More files than the registered table holds go
// by descriptor in the same request.
TEST_P(EngineBounds, FilesThatComeAndGoAndMoreFilesThanTheTableAllLand) {
  TempDir dir;
  DiskFileOptions options;
  options.directory = dir.path();
  auto backend = make_disk_backend({.backend = GetParam(), .queue_depth = 8});
  RegionPtr memory = Region::allocate_system(80 * kPage);
  std::mt19937_64 rng(12);
  const Bytes original = random_bytes(memory->size(), rng);
  std::memcpy(memory->data(), original.data(), original.size());
  const RegionPtr on_disk = Region::allocate_system(kPage);  // page-aligned, as O_DIRECT needs
  for (int round = 0; round < 20; ++round) {
    RegionPtr file = Region::create_disk_file(2 * kPage, options);
    const std::size_t at = static_cast<std::size_t>(round) * kPage;
    ASSERT_TRUE(run(*backend, {{{memory.get(), at}, {file.get(), kPage}, kPage}}).ok());
    ASSERT_EQ(::pread(file->fd(), on_disk->data(), kPage, kPage), static_cast<ssize_t>(kPage));
    ASSERT_EQ(std::memcmp(on_disk->data(), original.data() + at, kPage), 0) << "round " << round;
  }
  std::vector<RegionPtr> files;
  CopyOps writes;
  for (std::size_t i = 0; i < 80; ++i) {
    files.push_back(Region::create_disk_file(kPage, options));
    writes.push_back({{memory.get(), i * kPage}, {files.back().get(), 0}, kPage});
  }
  ASSERT_TRUE(run(*backend, writes).ok());
  for (std::size_t i = 0; i < files.size(); ++i) {
    ASSERT_EQ(::pread(files[i]->fd(), on_disk->data(), kPage, 0), static_cast<ssize_t>(kPage));
    EXPECT_EQ(std::memcmp(on_disk->data(), original.data() + i * kPage, kPage), 0) << "file " << i;
  }
}

// A failing I/O (a read past the end of its file) fails its request with the file named; the
// backend's slots, staging buffers and registrations come back, and the next request runs.
TEST_P(EngineBounds, AFailedIoFailsItsRequestAndTheEngineGoesOn) {
  Fixture f;
  auto backend = make_disk_backend({.backend = GetParam(), .queue_depth = 2, .io_bytes = 2 * kPage,
                                    .in_flight_bytes = 2 * kPage});
  CopyOps past_end;
  for (std::size_t i = 0; i < 6; ++i) past_end.push_back(f.read_op(i * kPage + 1, (62 + i) * kPage, 100));
  const Status failed = run(*backend, past_end, 2 * kPage);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.error().code(), ErrorCode::Io);
  EXPECT_NE(failed.error().message().find(f.file->path()), std::string::npos) << failed.to_string();

  std::mt19937_64 rng(13);
  const Bytes original = random_bytes(kPage, rng);
  std::memcpy(f.memory->data(), original.data(), kPage);
  ASSERT_TRUE(run(*backend, {f.write_op(0, 0, kPage)}, 2 * kPage).ok());
  std::memset(f.memory->data() + kPage, 0, kPage);
  ASSERT_TRUE(run(*backend, {f.read_op(kPage, 0, kPage)}, 2 * kPage).ok());
  EXPECT_EQ(std::memcmp(f.memory->data() + kPage, original.data(), kPage), 0);
}

TEST(DiskBackendOptions, BadOptionsAreRefusedByName) {
  auto refused = [](const DiskOptions& options, const std::string& name) {
    try {
      (void)make_disk_backend(options);
      ADD_FAILURE() << "accepted " << name;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    }
  };
  refused({.backend = "spdk"}, "spdk");
  refused({.queue_depth = 0}, "disk.queue_depth");
  refused({.io_bytes = 1000}, "disk.io_bytes");
  refused({.io_bytes = 8 * kPage, .in_flight_bytes = 4 * kPage}, "disk.in_flight_bytes");
}

// A request cut into units larger than the backend's staging buffers is refused, naming both
// sizes, before any I/O; the backend serves the next request.
TEST_P(EngineBounds, UnitsLargerThanTheBackendsAreRefused) {
  Fixture f;
  auto backend = make_disk_backend({.backend = GetParam(), .queue_depth = 2, .io_bytes = 2 * kPage,
                                    .in_flight_bytes = 2 * kPage});
  const Status refused = run(*backend, {f.write_op(1, 0, 8 * kPage)}, 8 * kPage);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code(), ErrorCode::InvalidArgument);
  EXPECT_NE(refused.error().message().find("32768"), std::string::npos) << refused.to_string();
  EXPECT_NE(refused.error().message().find("8192"), std::string::npos) << refused.to_string();
  EXPECT_TRUE(run(*backend, {f.write_op(1, 0, 8 * kPage)}, 2 * kPage).ok());
}

INSTANTIATE_TEST_SUITE_P(Backends, EngineBounds, ::testing::Values("io_uring", "threads"));

}  // namespace
}  // namespace kvbm::testing
