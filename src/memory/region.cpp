#include "kvbm/memory/region.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "common/checked_math.hpp"
#include "platform/cuda_runtime.hpp"
#include "common/make_error.hpp"
#include "kvbm/common/error.hpp"
#include "kvbm/common/log.hpp"

namespace kvbm {
namespace {

void require_nonzero(std::size_t bytes, std::string_view what) {
  if (bytes == 0) throw make_error(ErrorCode::InvalidArgument, "{}: size must be greater than 0", what);
}

// Opens (or creates) the file behind a disk region with O_DIRECT and gives it `bytes` of space.
int open_disk_file(const DiskFileOptions& options, std::size_t bytes, std::string& path) {
  int fd = -1;
  if (options.keep_path) {
    path = *options.keep_path;
    fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_DIRECT | O_CLOEXEC, 0644);
    if (fd < 0) throw errno_error("open (O_DIRECT)", path, errno);
  } else {
    const std::string directory = options.directory.value_or(".");
    std::string name = directory + "/kvbm-disk-XXXXXX";
    fd = ::mkostemp(name.data(), O_DIRECT | O_CLOEXEC);
    if (fd < 0) throw errno_error("create file (O_DIRECT) in", directory, errno);
    // Unlinked at once: the kernel removes the file when the region closes it, even on a crash.
    ::unlink(name.c_str());
    path = name;
  }
  if (::fallocate(fd, 0, 0, static_cast<off_t>(bytes)) != 0) {
    const int err = errno;
    if (err != EOPNOTSUPP) {
      ::close(fd);
      if (options.keep_path) ::truncate(path.c_str(), 0);
      throw make_error(ErrorCode::Io, "fallocate of {} bytes for '{}' failed: {} (errno {})", bytes, path,
                       std::strerror(err), err);
    }
    // Filesystems without fallocate: a sparse file of the right size still works.
    if (::ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
      const int truncate_err = errno;
      ::close(fd);
      throw errno_error("ftruncate", path, truncate_err);
    }
  }
  return fd;
}

}  // namespace

Region::Region(StorageKind kind, std::size_t size, std::byte* data, int fd, std::string path, bool owned,
               std::function<void()> release)
    : kind_(kind), size_(size), data_(data), fd_(fd), path_(std::move(path)), owned_(owned),
      release_(std::move(release)) {}

Region::~Region() {
  if (release_) release_();
}

RegionPtr Region::allocate_system(std::size_t bytes) {
  require_nonzero(bytes, "system region");
  void* ptr = std::aligned_alloc(kDirectIoAlignment, round_up(bytes, kDirectIoAlignment));
  if (ptr == nullptr) throw make_error(ErrorCode::OutOfRange, "cannot allocate {} bytes of system memory", bytes);
  return RegionPtr(new Region(StorageKind::system(), bytes, static_cast<std::byte*>(ptr), -1, {}, true,
                              [ptr] { std::free(ptr); }));
}

RegionPtr Region::allocate_pinned(std::size_t bytes) {
  require_nonzero(bytes, "pinned region");
  void* ptr = cuda::host_alloc(bytes);
  return RegionPtr(new Region(StorageKind::pinned(), bytes, static_cast<std::byte*>(ptr), -1, {}, true,
                              [ptr] { cuda::host_free(ptr); }));
}

RegionPtr Region::allocate_device(std::uint32_t ordinal, std::size_t bytes) {
  require_nonzero(bytes, fmt::format("device {} region", ordinal));
  void* ptr = cuda::device_alloc(ordinal, bytes);
  return RegionPtr(new Region(StorageKind::device(ordinal), bytes, static_cast<std::byte*>(ptr), -1, {}, true,
                              [ordinal, ptr] { cuda::device_free(ordinal, ptr); }));
}

RegionPtr Region::create_disk_file(std::size_t bytes, const DiskFileOptions& options) {
  require_nonzero(bytes, "disk region");
  // O_DIRECT moves whole 4 KiB pages, so the file is sized to a multiple of them.
  const std::size_t file_bytes = round_up(bytes, kDirectIoAlignment);
  std::string path;
  const int fd = open_disk_file(options, file_bytes, path);
  return RegionPtr(new Region(StorageKind::disk(options.id), bytes, nullptr, fd, path, true,
                              [fd] { ::close(fd); }));
}

RegionPtr Region::allocate(StorageKind kind, std::size_t bytes, const DiskFileOptions& disk) {
  switch (kind.type()) {
    case StorageKind::Type::System: return allocate_system(bytes);
    case StorageKind::Type::Pinned: return allocate_pinned(bytes);
    case StorageKind::Type::Device: return allocate_device(kind.index(), bytes);
    case StorageKind::Type::Disk: {
      DiskFileOptions options = disk;
      options.id = kind.index();
      return create_disk_file(bytes, options);
    }
  }
  throw make_error(ErrorCode::InvalidArgument, "unknown storage kind");
}

RegionPtr Region::register_memory(void* ptr, std::size_t bytes, StorageKind kind, bool pin_host) {
  if (ptr == nullptr) throw make_error(ErrorCode::InvalidArgument, "cannot register a null pointer as {}", kind.to_string());
  require_nonzero(bytes, fmt::format("registered {} region at {}", kind.to_string(), ptr));
  auto* data = static_cast<std::byte*>(ptr);
  switch (kind.type()) {
    case StorageKind::Type::Disk:
      throw make_error(ErrorCode::InvalidArgument,
                       "a disk region cannot be registered by pointer; use create_disk_file with keep_path");
    case StorageKind::Type::System:
      if (pin_host) {
        cuda::host_register(ptr, bytes);
        return RegionPtr(new Region(StorageKind::pinned(), bytes, data, -1, {}, false,
                                    [ptr] { cuda::host_unregister(ptr); }));
      }
      return RegionPtr(new Region(kind, bytes, data, -1, {}, false, nullptr));
    case StorageKind::Type::Pinned: {
      if (pin_host) {
        throw make_error(ErrorCode::InvalidArgument, "memory at {} is registered as Pinned already; pin_host is for System memory", ptr);
      }
      const cuda::PointerInfo info = cuda::pointer_info(ptr);
      if (info.type != cuda::PointerType::Host) {
        throw make_error(ErrorCode::InvalidArgument,
                         "memory at {} was registered as Pinned but CUDA does not know it as pinned host memory{}",
                         ptr, cuda::device_count() == 0 ? fmt::format(" ({})", cuda::unavailable_reason()) : "");
      }
      return RegionPtr(new Region(kind, bytes, data, -1, {}, false, nullptr));
    }
    case StorageKind::Type::Device: {
      cuda::require_device(kind.index());
      const cuda::PointerInfo info = cuda::pointer_info(ptr);
      if (info.type != cuda::PointerType::Device || info.device != static_cast<int>(kind.index())) {
        throw make_error(ErrorCode::InvalidArgument,
                         "memory at {} was registered as {} but CUDA does not know it as memory of device {}", ptr,
                         kind.to_string(), kind.index());
      }
      return RegionPtr(new Region(kind, bytes, data, -1, {}, false, nullptr));
    }
  }
  throw make_error(ErrorCode::InvalidArgument, "unknown storage kind");
}

std::string Region::describe() const {
  if (kind_.is_disk()) return fmt::format("{} file '{}' ({} bytes)", kind_.to_string(), path_, size_);
  return fmt::format("{} {} at {} ({} bytes)", owned_ ? "owned" : "registered", kind_.to_string(),
                     static_cast<const void*>(data_), size_);
}

}  // namespace kvbm
