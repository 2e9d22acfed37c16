#include "kvbm/memory/region.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <vector>

#include "kvbm/common/error.hpp"
#include "platform/cuda_runtime.hpp"

namespace kvbm {
namespace fs = std::filesystem;

TEST(Region, SystemRegionIsAlignedAndWritable) {
  auto region = Region::allocate_system(10'000);
  EXPECT_EQ(region->kind(), StorageKind::system());
  EXPECT_EQ(region->size(), 10'000u);
  EXPECT_TRUE(region->owned());
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(region->data()) % kDirectIoAlignment, 0u);
  std::memset(region->data(), 0xab, region->size());
  EXPECT_EQ(region->data()[9'999], std::byte{0xab});
}

TEST(Region, ZeroSizeIsAnError) {
  EXPECT_THROW((void)Region::allocate_system(0), Error);
  EXPECT_THROW((void)Region::create_disk_file(0), Error);
  int value = 0;
  EXPECT_THROW((void)Region::register_memory(&value, 0, StorageKind::system()), Error);
}

TEST(Region, AnonymousDiskFileIsDirectAndRemovedOnClose) {
  const fs::path dir = fs::temp_directory_path() / fs::path("kvbm-region-test-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  {
    DiskFileOptions options;
    options.directory = dir.string();
    options.id = 7;
    auto region = Region::create_disk_file(5000, options);
    EXPECT_EQ(region->kind(), StorageKind::disk(7));
    EXPECT_GE(region->fd(), 0);
    EXPECT_EQ(region->data(), nullptr);
    struct stat st{};
    ASSERT_EQ(::fstat(region->fd(), &st), 0);
    EXPECT_EQ(st.st_size, 8192);  // rounded up to whole 4 KiB pages
    // The file is already gone from the directory: nothing can be left behind.
    EXPECT_TRUE(fs::is_empty(dir));
    auto page = Region::allocate_system(4096);
    std::memset(page->data(), 0x11, 4096);
    EXPECT_EQ(::pwrite(region->fd(), page->data(), 4096, 4096), 4096);
    std::memset(page->data(), 0, 4096);
    EXPECT_EQ(::pread(region->fd(), page->data(), 4096, 4096), 4096);
    EXPECT_EQ(page->data()[100], std::byte{0x11});
  }
  fs::remove_all(dir);
}

TEST(Region, KeptDiskFileSurvivesClose) {
  const fs::path path = fs::temp_directory_path() / ("kvbm-keep-" + std::to_string(::getpid()));
  {
    DiskFileOptions options;
    options.keep_path = path.string();
    auto region = Region::create_disk_file(4096, options);
    EXPECT_EQ(region->path(), path.string());
  }
  EXPECT_TRUE(fs::exists(path));
  EXPECT_EQ(fs::file_size(path), 4096u);
  fs::remove(path);
}

TEST(Region, DiskFileInMissingDirectoryNamesThePath) {
  DiskFileOptions options;
  options.directory = "/nonexistent/kvbm/dir";
  try {
    (void)Region::create_disk_file(4096, options);
    FAIL();
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::Io);
    EXPECT_NE(error.message().find("/nonexistent/kvbm/dir"), std::string::npos) << error.what();
    EXPECT_NE(error.message().find("errno"), std::string::npos) << error.what();
  }
}

TEST(Region, RegisteredSystemMemoryIsNotOwned) {
  std::vector<std::byte> buffer(1000);
  auto region = Region::register_memory(buffer.data(), buffer.size(), StorageKind::system());
  EXPECT_FALSE(region->owned());
  EXPECT_EQ(region->data(), buffer.data());
  EXPECT_THROW((void)Region::register_memory(nullptr, 10, StorageKind::system()), Error);
  EXPECT_THROW((void)Region::register_memory(buffer.data(), 10, StorageKind::disk(0)), Error);
}

TEST(Region, WithoutGpuPinnedAndDeviceFailSayingSo) {
  if (cuda::device_count() > 0) GTEST_SKIP() << "a CUDA device is present; the GPU tests cover this";
  for (auto attempt : {+[] { (void)Region::allocate_pinned(4096); }, +[] { (void)Region::allocate_device(0, 4096); },
                       +[] { (void)Region::allocate(StorageKind::device(2), 4096); }}) {
    try {
      attempt();
      FAIL();
    } catch (const Error& error) {
      EXPECT_EQ(error.code(), ErrorCode::Unsupported);
      EXPECT_TRUE(error.message().find("CUDA") != std::string::npos) << error.what();
    }
  }
  std::vector<std::byte> buffer(4096);
  EXPECT_THROW((void)Region::register_memory(buffer.data(), buffer.size(), StorageKind::system(), true), Error);
  EXPECT_THROW((void)Region::register_memory(buffer.data(), buffer.size(), StorageKind::pinned()), Error);
  EXPECT_THROW((void)Region::register_memory(buffer.data(), buffer.size(), StorageKind::device(0)), Error);
}

}  // namespace kvbm
