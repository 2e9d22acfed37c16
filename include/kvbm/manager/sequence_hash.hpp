#pragma once
// Sequence hashes as Dynamo's KVBM computes them, so that kvbm's caches and events line up with
// an engine's: a block's hash is XXH3-64 of its token ids (u32 little-endian) seeded with the
// request's salt hash (0 without salt); block 0's sequence hash is its block hash, block i's is
// XXH3-64 of the 16 bytes [parent sequence hash (u64 LE), block hash (u64 LE)]. Only full blocks
// have one.
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace kvbm {

using SequenceHash = std::uint64_t;

// XXH3-64 of the salt's bytes; 0 for no salt (the empty string).
[[nodiscard]] std::uint64_t salt_hash(std::string_view salt) noexcept;
[[nodiscard]] std::uint64_t block_hash(std::span<const std::uint32_t> tokens, std::uint64_t salt_hash) noexcept;
[[nodiscard]] SequenceHash chain_hash(SequenceHash parent, std::uint64_t block_hash) noexcept;
// The sequence hash of every full block of `tokens` (a trailing partial block has none).
// Throws InvalidArgument for block_size 0.
[[nodiscard]] std::vector<SequenceHash> sequence_hashes(std::span<const std::uint32_t> tokens, std::size_t block_size,
                                                        std::uint64_t salt_hash);

}  // namespace kvbm
