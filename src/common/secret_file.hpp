#pragma once
// Files that hold secrets (CURVE key pairs, remote metadata keys): created exclusively (an
// existing file is never overwritten) with the mode given, and read only when no one but their
// owner may read them. Errors name the file and say what it is (`what`, e.g. "key file").
#include <string>
#include <string_view>
#include <sys/types.h>

namespace kvbm {

// Io naming the file when it exists already or cannot be written.
void create_file_exclusively(const std::string& path, std::string_view text, mode_t mode);
// The file's text. Io when it cannot be read; InvalidArgument when group or others may read it.
[[nodiscard]] std::string read_owner_only_file(const std::string& path, std::string_view what);

}  // namespace kvbm
