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

Status run(DiskBackend& backend, const CopyOps& ops) {
  std::promise<Status> outcome;
  auto request = std::make_shared<DiskRequest>(ops, 1u << 20, [&](Status status) { outcome.set_value(status); });
  backend.submit(request);
  return outcome.get_future().get();
}

class JoinedUnits : public ::testing::TestWithParam<std::string> {};

TEST_P(JoinedUnits, WriteZeroPadsAndReadScattersBack) {
  Fixture f;
  auto backend = make_disk_backend(GetParam(), 4, 1u << 20);
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

}  // namespace
}  // namespace kvbm::testing
