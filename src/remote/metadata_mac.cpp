#include "remote/metadata_mac.hpp"

#include <sodium.h>

#include <cerrno>
#include <cstring>
#include <sstream>

#include "common/make_error.hpp"
#include "common/secret_file.hpp"

namespace kvbm::remote {
namespace {

void init_sodium() {
  if (sodium_init() < 0) throw make_error(ErrorCode::Internal, "libsodium could not start");
}

void check_key(const std::string& key) {
  if (key.size() != kMacKeyBytes) {
    throw make_error(ErrorCode::InvalidArgument, "a metadata key is {} bytes, not {}", kMacKeyBytes, key.size());
  }
}

}  // namespace

std::string sign_metadata(const std::string& key, std::string_view metadata) {
  init_sodium();
  check_key(key);
  unsigned char tag[crypto_auth_hmacsha256_BYTES];
  crypto_auth_hmacsha256(tag, reinterpret_cast<const unsigned char*>(metadata.data()), metadata.size(),
                         reinterpret_cast<const unsigned char*>(key.data()));
  std::string out(kMacMagic);
  out.append(reinterpret_cast<const char*>(tag), sizeof(tag));
  out.append(metadata);
  return out;
}

std::string_view verify_metadata(const std::string& key, std::string_view signed_bytes) {
  init_sodium();
  check_key(key);
  const std::size_t header = kMacMagic.size() + crypto_auth_hmacsha256_BYTES;
  if (signed_bytes.size() < header || signed_bytes.substr(0, kMacMagic.size()) != kMacMagic) {
    throw make_error(ErrorCode::InvalidArgument, "peer metadata ({} bytes) is not signed: this agent takes signed metadata "
                     "only (metadata key)", signed_bytes.size());
  }
  const auto* tag = reinterpret_cast<const unsigned char*>(signed_bytes.data() + kMacMagic.size());
  const std::string_view metadata = signed_bytes.substr(header);
  if (crypto_auth_hmacsha256_verify(tag, reinterpret_cast<const unsigned char*>(metadata.data()), metadata.size(),
                                    reinterpret_cast<const unsigned char*>(key.data())) != 0) {
    throw make_error(ErrorCode::InvalidArgument,
                     "peer metadata ({} bytes) failed authentication: altered, or signed with another key",
                     signed_bytes.size());
  }
  return metadata;
}

void write_metadata_key(const std::string& path) {
  init_sodium();
  unsigned char key[kMacKeyBytes];
  randombytes_buf(key, sizeof(key));
  char hex[2 * kMacKeyBytes + 1];
  sodium_bin2hex(hex, sizeof(hex), key, sizeof(key));
  create_file_exclusively(path, std::string(hex) + "\n", 0600);
}

std::string read_metadata_key(const std::string& path) {
  std::istringstream in(read_owner_only_file(path, "metadata key"));
  std::string hex;
  in >> hex;
  std::string key(kMacKeyBytes, '\0');
  std::size_t length = 0;
  if (hex.size() != 2 * kMacKeyBytes ||
      sodium_hex2bin(reinterpret_cast<unsigned char*>(key.data()), key.size(), hex.c_str(), hex.size(), nullptr, &length,
                     nullptr) != 0 ||
      length != kMacKeyBytes) {
    throw make_error(ErrorCode::InvalidArgument, "metadata key {} is not {} hex digits", printable(path), 2 * kMacKeyBytes);
  }
  return key;
}

}  // namespace kvbm::remote
