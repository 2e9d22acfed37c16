#pragma once
// A region is a span of storage of one kind: host memory, pinned host memory, GPU memory or a
// disk file. kvbm either owns it (allocated here, freed when the last reference goes) or has it
// registered (someone else owns the memory; kvbm only records where it is).
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "kvbm/memory/storage_kind.hpp"

namespace kvbm {

class Region;
using RegionPtr = std::shared_ptr<Region>;

// Alignment of owned host regions and of every chunk on disk: what O_DIRECT asks for.
inline constexpr std::size_t kDirectIoAlignment = 4096;

struct DiskFileOptions {
  std::uint32_t id = 0;
  // Where to create an anonymous file (removed on close). Default: the current directory.
  std::optional<std::string> directory;
  // A file the user names: created if missing, grown to size, and kept on close.
  std::optional<std::string> keep_path;
};

class Region {
 public:
  // Owned regions. Each throws kvbm::Error naming the size, ordinal, path or CUDA error.
  [[nodiscard]] static RegionPtr allocate_system(std::size_t bytes);
  [[nodiscard]] static RegionPtr allocate_pinned(std::size_t bytes);
  [[nodiscard]] static RegionPtr allocate_device(std::uint32_t ordinal, std::size_t bytes);
  [[nodiscard]] static RegionPtr create_disk_file(std::size_t bytes, const DiskFileOptions& options = {});
  [[nodiscard]] static RegionPtr allocate(StorageKind kind, std::size_t bytes, const DiskFileOptions& disk = {});

  // Memory someone else owns: `kind` says what it is. With `pin_host`, System memory is pinned
  // with cudaHostRegister (and unregistered when the region goes), and the region is Pinned.
  // Pinned and Device pointers are checked against what CUDA knows of them.
  [[nodiscard]] static RegionPtr register_memory(void* ptr, std::size_t bytes, StorageKind kind,
                                                 bool pin_host = false);

  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;
  ~Region();

  [[nodiscard]] StorageKind kind() const { return kind_; }
  [[nodiscard]] std::size_t size() const { return size_; }
  // Host or device address; nullptr for disk regions.
  [[nodiscard]] std::byte* data() const { return data_; }
  // Disk regions: the O_DIRECT file descriptor; -1 otherwise.
  [[nodiscard]] int fd() const { return fd_; }
  // Disk regions: the file's path (an anonymous file's path names where it was created).
  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] bool owned() const { return owned_; }
  [[nodiscard]] std::string describe() const;

 private:
  Region(StorageKind kind, std::size_t size, std::byte* data, int fd, std::string path, bool owned,
         std::function<void()> release);

  StorageKind kind_;
  std::size_t size_;
  std::byte* data_;
  int fd_;
  std::string path_;
  bool owned_;
  std::function<void()> release_;
};

}  // namespace kvbm
