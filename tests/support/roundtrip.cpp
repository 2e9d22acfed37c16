#include "support/roundtrip.hpp"

#include <unistd.h>

#include <filesystem>
#include <thread>

#include <fmt/format.h>

namespace kvbm::testing {

std::string LayoutChoice::name() const {
  if (form == LayoutForm::FullyContiguous) return host_offset ? fmt::format("fc+{}", host_offset) : "fc";
  return order == LayerOrder::BlockContiguous ? "ls-block" : "ls-outer";
}

std::vector<LayoutChoice> all_layout_choices() {
  return {{LayoutForm::FullyContiguous, LayerOrder::BlockContiguous, 0},
          {LayoutForm::FullyContiguous, LayerOrder::BlockContiguous, 3},
          {LayoutForm::LayerSeparate, LayerOrder::BlockContiguous, 0},
          {LayoutForm::LayerSeparate, LayerOrder::OuterContiguous, 0}};
}

LayoutPtr make_layout(const LayoutConfig& config, StorageKind kind, const LayoutChoice& choice,
                      const std::string& disk_dir) {
  DiskFileOptions disk;
  disk.directory = disk_dir;
  if (choice.form == LayoutForm::FullyContiguous && choice.host_offset != 0 && !kind.is_disk()) {
    const std::size_t bytes = Layout::required_bytes_fully_contiguous(config, kind) + choice.host_offset;
    return Layout::fully_contiguous(config, Region::allocate(kind, bytes), choice.host_offset);
  }
  return Layout::allocate(config, kind, choice.form, choice.order, disk);
}

namespace {

// Both layouts poisoned, random bytes in `block_count` scattered source blocks, and the pairs
// that send them to scattered destination blocks.
struct PoisonedPairs {
  std::vector<std::size_t> from;
  std::vector<std::size_t> to;
  std::vector<std::vector<Bytes>> contents;  // [pair][layer * outer + o]
  std::vector<BlockPair> pairs;
};

PoisonedPairs poisoned_pairs(const Layout& src, const Layout& dst, std::size_t block_count, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  poison(src, std::byte{0xa5});
  poison(dst, std::byte{0x5a});
  PoisonedPairs out;
  out.from = scattered_blocks(block_count, src.config().num_blocks, rng);
  out.to = scattered_blocks(block_count, dst.config().num_blocks, rng);
  out.contents = fill_random(src, out.from, rng);
  for (std::size_t i = 0; i < block_count; ++i) out.pairs.emplace_back(out.from[i], out.to[i]);
  return out;
}

// Every chunk of `dst`: layers [first, first + count) of the destination blocks hold the source
// bytes, everything else the poison. "" or the first mismatch.
std::string compare_destination(const Layout& dst, const std::vector<std::size_t>& from,
                                const std::vector<std::size_t>& to, const std::vector<std::vector<Bytes>>& contents,
                                std::size_t first, std::size_t count) {
  const auto& config = dst.config();
  const Bytes poison_bytes(dst.chunk_bytes(), std::byte{0x5a});
  std::vector<int> destination_of(config.num_blocks, -1);
  for (std::size_t i = 0; i < to.size(); ++i) destination_of[to[i]] = static_cast<int>(i);
  for (std::size_t b = 0; b < config.num_blocks; ++b) {
    for (std::size_t l = 0; l < config.num_layers; ++l) {
      const int i = l >= first && l < first + count ? destination_of[b] : -1;
      for (std::size_t o = 0; o < config.outer_dim; ++o) {
        const Bytes& want = i >= 0 ? contents[i][l * config.outer_dim + o] : poison_bytes;
        if (read_chunk(dst, b, l, o) != want) {
          return fmt::format("destination block {} layer {} outer {}: {}", b, l, o,
                             i >= 0 ? fmt::format("differs from source block {}", from[i]) : "poison overwritten");
        }
      }
    }
  }
  return "";
}

}  // namespace

std::string check_roundtrip(TransferContext& context, const LayoutPtr& src, const LayoutPtr& dst,
                            std::size_t block_count, std::uint64_t seed) {
  return check_roundtrip_with([&](std::span<const BlockPair> pairs) { return context.transfer(src, dst, pairs); }, src,
                              dst, block_count, seed);
}

std::string check_roundtrip(const TransferPath& path, std::size_t block_count, std::uint64_t seed) {
  return check_roundtrip_with([&](std::span<const BlockPair> pairs) { return path.post(pairs); }, path.src(), path.dst(),
                              block_count, seed);
}

std::string check_roundtrip_with(const std::function<TransferHandle(std::span<const BlockPair>)>& move,
                                 const LayoutPtr& src, const LayoutPtr& dst, std::size_t block_count,
                                 std::uint64_t seed) {
  const auto& config = src->config();
  const auto [from, to, contents, pairs] = poisoned_pairs(*src, *dst, block_count, seed);

  const Status status = move(pairs).wait();
  if (!status.ok()) return "transfer failed: " + status.to_string();

  if (std::string mismatch = compare_destination(*dst, from, to, contents, 0, config.num_layers); !mismatch.empty()) {
    return mismatch;
  }
  for (std::size_t i = 0; i < block_count; ++i) {
    for (std::size_t l = 0; l < config.num_layers; ++l) {
      for (std::size_t o = 0; o < config.outer_dim; ++o) {
        if (read_chunk(*src, from[i], l, o) != contents[i][l * config.outer_dim + o]) {
          return fmt::format("source block {} changed", from[i]);
        }
      }
    }
  }
  return "";
}

std::string check_layer_view_roundtrip(TransferContext& context, const LayoutPtr& src, const LayoutPtr& dst,
                                      std::size_t first, std::size_t count, std::size_t block_count,
                                      std::uint64_t seed, bool prepared) {
  const auto [from, to, contents, pairs] = poisoned_pairs(*src, *dst, block_count, seed);

  const LayoutPtr src_view = src->layers(first, count);
  const LayoutPtr dst_view = dst->layers(first, count);
  const Status status =
      (prepared ? context.prepare(src_view, dst_view).post(pairs) : context.transfer(src_view, dst_view, pairs)).wait();
  if (!status.ok()) return "transfer failed: " + status.to_string();

  return compare_destination(*dst, from, to, contents, first, count);
}

TempDir::TempDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "kvbm-test-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;  // a destructor must not throw: a busy mount point is left behind
  std::filesystem::remove_all(path_, ignored);
}

std::vector<std::string> concurrent_gpu_roundtrips(TransferContext& context, const LayoutConfig& config,
                                                   const LayoutChoice& device_choice, std::size_t block_count,
                                                   const std::string& disk_dir) {
  std::vector<std::string> results(8);
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < results.size(); ++t) {
    threads.emplace_back([&, t] {
      auto host = make_layout(config, StorageKind::pinned(), {}, disk_dir);
      auto device = make_layout(config, StorageKind::device(0), device_choice, disk_dir);
      results[t] = t % 2 ? check_roundtrip(context, host, device, block_count, t)
                         : check_roundtrip(context, device, host, block_count, t);
    });
  }
  for (auto& thread : threads) thread.join();
  return results;
}

}  // namespace kvbm::testing
