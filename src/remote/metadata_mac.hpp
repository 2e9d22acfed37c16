#pragma once
// Remote metadata authenticated with a shared secret: HMAC-SHA-256 (libsodium) over the encoded
// metadata, checked before a byte of it is decoded or handed to UCX. Signed metadata is
// kMagic, the 32-byte tag, then the metadata.
#include <string>
#include <string_view>

namespace kvbm::remote {

inline constexpr std::string_view kMacMagic = "kvbm-mac";
inline constexpr std::size_t kMacKeyBytes = 32;

// `metadata` with its tag for `key` (kMacKeyBytes bytes).
[[nodiscard]] std::string sign_metadata(const std::string& key, std::string_view metadata);
// The metadata of `signed_bytes` once its tag checks out for `key`; InvalidArgument otherwise
// (unsigned, truncated, or signed with another key), before anything else reads it.
[[nodiscard]] std::string_view verify_metadata(const std::string& key, std::string_view signed_bytes);
// A key file: kMacKeyBytes random bytes as 64 hex digits (mode 0600, never overwritten); and
// its reading (InvalidArgument for a malformed one or one others may read).
void write_metadata_key(const std::string& path);
[[nodiscard]] std::string read_metadata_key(const std::string& path);

}  // namespace kvbm::remote
