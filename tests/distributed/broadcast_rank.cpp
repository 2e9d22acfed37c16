#include "distributed/broadcast_rank.hpp"

#include <iostream>
#include <random>

#include "distributed/replicated_broadcast.hpp"
#include "kvbm/distributed/nccl_communicator.hpp"
#include "layout/chunk_io.hpp"
#include "support/roundtrip.hpp"

namespace kvbm::testing {

std::vector<std::string> broadcast_rank_args(const std::string& nccl_id, int rank, int world, int device) {
  return {kBroadcastRankFlag, nccl_id, std::to_string(rank), std::to_string(world), std::to_string(device)};
}

namespace {

// The bytes of one case's blocks, the same on every rank (from the case's seed).
std::vector<Bytes> case_bytes(std::size_t blocks, std::size_t bytes_per_block, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<Bytes> out(blocks, Bytes(bytes_per_block));
  for (auto& block : out) {
    for (auto& byte : block) byte = static_cast<std::byte>(rng());
  }
  return out;
}

// Broadcasts `blocks` of a pool of `config` in `choice` with `options` (a staging of
// `staging_blocks` blocks); "" when every rank's pool then holds what it should.
std::string run_case(NcclCommunicator& communicator, const LayoutConfig& config, const LayoutChoice& choice,
                     PackedBroadcastOptions options, std::size_t staging_blocks, std::uint64_t seed) {
  const TempDir dir;
  auto pool = make_layout(config, StorageKind::device(static_cast<std::uint32_t>(communicator.device())), choice,
                          dir.path());
  const std::size_t block_size = block_bytes(*pool);
  const std::vector<Bytes> sent = case_bytes(config.num_blocks, block_size, seed);
  const Bytes poison(block_size, std::byte{0xA5});
  for (std::size_t b = 0; b < config.num_blocks; ++b) write_block(*pool, b, communicator.rank() == 0 ? sent[b] : poison);
  // Scattered blocks, in more pieces than the staging holds at once.
  const std::vector<std::size_t> blocks = {3, 17, 0, 9, 22, 5, 11, 14, 1};
  options.staging_bytes = staging_blocks * block_size;
  PackedBroadcast(pool, options).run(communicator, blocks);
  for (std::size_t b = 0; b < config.num_blocks; ++b) {
    const bool moved = std::find(blocks.begin(), blocks.end(), b) != blocks.end();
    const Bytes& expected = moved || communicator.rank() == 0 ? sent[b] : poison;
    if (read_block(*pool, b) != expected) {
      return "block " + std::to_string(b) + (moved ? " does not hold rank 0's bytes" : " lost its poison");
    }
  }
  return "";
}

// Runs every case; "" when all matched, else what did not.
std::string run_cases(NcclCommunicator& communicator) {
  std::uint64_t seed = 7;
  std::size_t case_number = 0;
  for (std::size_t chunk : {std::size_t{1000}, std::size_t{4096}, std::size_t{65536}, std::size_t{2} << 20}) {
    const LayoutConfig config{.num_blocks = 24, .num_layers = 2, .outer_dim = 2, .page_size = 1, .inner_dim = chunk,
                              .dtype_bytes = 1};
    for (const LayoutChoice& choice : all_layout_choices()) {
      // Cases take turns between two slots with no ramp (three blocks a piece, each slot used
      // twice or more) and three slots with a ramp (pieces of 1, 3, 2, 2 and 1 blocks).
      const bool ramped = case_number++ % 2 == 1;
      const std::string mismatch =
          ramped ? run_case(communicator, config, choice, {.slots = 3, .ramp_steps = 1}, 9, ++seed)
                 : run_case(communicator, config, choice, {}, 6, ++seed);
      if (!mismatch.empty()) {
        return choice.name() + " chunk " + std::to_string(chunk) + (ramped ? " 3 slots ramped: " : " 2 slots: ") + mismatch;
      }
    }
  }
  // More chunk slots per block (1040, none adjacent) than the block-pair kernel takes: the
  // copies go as descriptors.
  const LayoutConfig many{.num_blocks = 24, .num_layers = 520, .outer_dim = 2, .page_size = 1, .inner_dim = 96,
                          .dtype_bytes = 1};
  const LayoutChoice separate{.form = LayoutForm::LayerSeparate, .order = LayerOrder::OuterContiguous};
  const std::string mismatch = run_case(communicator, many, separate, {}, 6, ++seed);
  return mismatch.empty() ? "" : "1040 slots a block: " + mismatch;
}

}  // namespace

int broadcast_rank_main(int argc, char** argv) {
  if (argc != 6) {
    std::cerr << kBroadcastRankFlag << " takes NCCL_ID RANK WORLD DEVICE\n";
    return 2;
  }
  const int rank = std::stoi(argv[3]);
  try {
    NcclCommunicator communicator(argv[2], rank, std::stoi(argv[4]), std::stoi(argv[5]), std::chrono::seconds(60));
    const std::string mismatch = run_cases(communicator);
    if (!mismatch.empty()) {
      std::cerr << "rank " << rank << ": " << mismatch << "\n";
      return 1;
    }
    return 0;
  } catch (const std::exception& error) {
    std::cerr << "rank " << rank << ": " << error.what() << "\n";
    return 1;
  }
}

}  // namespace kvbm::testing
