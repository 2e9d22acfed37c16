#include "kvbm/manager/sequence_hash.hpp"

#include <xxhash.h>

#include <array>
#include <bit>

#include "common/make_error.hpp"

namespace kvbm {

static_assert(std::endian::native == std::endian::little, "sequence hashes hash little-endian bytes in place");

std::uint64_t salt_hash(std::string_view salt) noexcept {
  return salt.empty() ? 0 : XXH3_64bits(salt.data(), salt.size());
}

std::uint64_t block_hash(std::span<const std::uint32_t> tokens, std::uint64_t salt_hash) noexcept {
  return XXH3_64bits_withSeed(tokens.data(), tokens.size_bytes(), salt_hash);
}

SequenceHash chain_hash(SequenceHash parent, std::uint64_t block_hash) noexcept {
  const std::array<std::uint64_t, 2> pair = {parent, block_hash};
  return XXH3_64bits(pair.data(), sizeof(pair));
}

std::vector<SequenceHash> sequence_hashes(std::span<const std::uint32_t> tokens, std::size_t block_size,
                                          std::uint64_t salt_hash) {
  if (block_size == 0) throw make_error(ErrorCode::InvalidArgument, "sequence hashes: block size 0");
  std::vector<SequenceHash> hashes;
  hashes.reserve(tokens.size() / block_size);
  for (std::size_t start = 0; start + block_size <= tokens.size(); start += block_size) {
    const std::uint64_t hash = block_hash(tokens.subspan(start, block_size), salt_hash);
    hashes.push_back(hashes.empty() ? hash : chain_hash(hashes.back(), hash));
  }
  return hashes;
}

}  // namespace kvbm
