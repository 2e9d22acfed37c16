#include "common/secret_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/make_error.hpp"

namespace kvbm {

void create_file_exclusively(const std::string& path, std::string_view text, mode_t mode) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) throw make_error(ErrorCode::Io, "cannot create {}: {}", printable(path), std::strerror(errno));
  const ssize_t written = ::write(fd, text.data(), text.size());
  const int saved = errno;
  ::close(fd);
  if (written != static_cast<ssize_t>(text.size())) {
    throw make_error(ErrorCode::Io, "cannot write {}: {}", printable(path), std::strerror(saved));
  }
}

std::string read_owner_only_file(const std::string& path, std::string_view what) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) {
    throw make_error(ErrorCode::Io, "cannot read {} {}: {}", what, printable(path), std::strerror(errno));
  }
  if ((info.st_mode & 077) != 0) {
    throw make_error(ErrorCode::InvalidArgument, "{} {} may be read by others (mode {:o}); chmod 600 it", what,
                     printable(path), info.st_mode & 0777);
  }
  std::ifstream in(path);
  if (!in) throw make_error(ErrorCode::Io, "cannot read {} {}: {}", what, printable(path), std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace kvbm
