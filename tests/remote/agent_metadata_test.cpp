#include "remote/agent_metadata.hpp"

#include <gtest/gtest.h>

#include "kvbm/common/error.hpp"

namespace kvbm::remote {
namespace {

AgentMetadata sample() {
  ExportedLayout contiguous;
  contiguous.info = {3, LayoutConfig{8, 2, 2, 4, 16, 2}, LayoutForm::FullyContiguous, LayerOrder::BlockContiguous,
                     StorageKind::pinned()};
  contiguous.base_offset = 64;
  contiguous.regions.push_back({0x10000, 64 + 8 * 2 * 2 * 4 * 16 * 2, "key-a"});
  ExportedLayout separate;
  separate.info = {5, LayoutConfig{4, 2, 1, 1, 8, 1}, LayoutForm::LayerSeparate, LayerOrder::OuterContiguous,
                   StorageKind::system()};
  separate.regions.push_back({0x20000, 32, "key-b"});
  separate.regions.push_back({0x30000, 40, "key-c"});
  return {"agent-1", std::string("\x01\x02\x03", 3), {contiguous, separate}};
}

std::string error_of(std::string_view bytes) {
  try {
    (void)decode(bytes);
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::InvalidArgument) << error.what();
    return error.message();
  }
  return "";
}

TEST(AgentMetadata, RoundTrips) {
  const AgentMetadata decoded = decode(encode(sample()));
  EXPECT_EQ(decoded.name, "agent-1");
  EXPECT_EQ(decoded.worker_address, std::string("\x01\x02\x03", 3));
  ASSERT_EQ(decoded.layouts.size(), 2u);
  EXPECT_EQ(decoded.layouts[0].info.id, 3u);
  EXPECT_EQ(decoded.layouts[0].info.config.inner_dim, 16u);
  EXPECT_EQ(decoded.layouts[0].base_offset, 64u);
  EXPECT_EQ(decoded.layouts[0].info.kind, StorageKind::pinned());
  EXPECT_EQ(decoded.layouts[1].info.form, LayoutForm::LayerSeparate);
  EXPECT_EQ(decoded.layouts[1].info.order, LayerOrder::OuterContiguous);
  EXPECT_EQ(decoded.layouts[1].regions[1].remote_key, "key-c");
}

TEST(AgentMetadata, EveryTruncationAndAnyTrailingByteIsRefused) {
  const std::string bytes = encode(sample());
  for (std::size_t size = 0; size < bytes.size(); ++size) {
    EXPECT_FALSE(error_of(std::string_view(bytes).substr(0, size)).empty()) << size;
  }
  EXPECT_NE(error_of(bytes + "x").find("1 bytes after the end"), std::string::npos);
  std::string wrong_magic = bytes;
  wrong_magic[0] = 'X';
  EXPECT_NE(error_of(wrong_magic).find("does not start with"), std::string::npos);
}

TEST(AgentMetadata, RegionsSmallerThanTheirShapeAreRefused) {
  AgentMetadata metadata = sample();
  metadata.layouts[0].regions[0].bytes -= 1;
  EXPECT_NE(error_of(encode(metadata)).find("region 0 of layout 3 has 4159 bytes, its shape needs 4096 from offset 64"),
            std::string::npos)
      << error_of(encode(metadata));
  metadata = sample();
  metadata.layouts[1].regions.pop_back();
  EXPECT_NE(error_of(encode(metadata)).find("has 1 regions"), std::string::npos);
  metadata = sample();
  metadata.layouts[0].regions[0].address = ~std::uint64_t{0} - 10;
  EXPECT_NE(error_of(encode(metadata)).find("wraps the address space"), std::string::npos);
  metadata = sample();
  metadata.layouts[0].base_offset = ~std::uint64_t{0};
  EXPECT_NE(error_of(encode(metadata)).find("from offset"), std::string::npos);
}

TEST(AgentMetadata, BadFieldsAreNamed) {
  AgentMetadata metadata = sample();
  metadata.layouts[1].info.id = 3;
  EXPECT_NE(error_of(encode(metadata)).find("layout id 3 appears twice"), std::string::npos);
  metadata = sample();
  metadata.layouts[0].info.kind = StorageKind::disk(0);
  EXPECT_NE(error_of(encode(metadata)).find("storage kind 3 cannot be reached remotely"), std::string::npos);
  metadata = sample();
  metadata.layouts[0].info.config.page_size = 0;
  EXPECT_NE(error_of(encode(metadata)).find("page_size"), std::string::npos);
  metadata = sample();
  metadata.name = "bad name";
  EXPECT_NE(error_of(encode(metadata)).find("byte 0x20 at 3"), std::string::npos);
  metadata = sample();
  metadata.worker_address.clear();
  EXPECT_NE(error_of(encode(metadata)).find("empty worker address"), std::string::npos);
  metadata = sample();
  metadata.layouts[0].regions[0].remote_key.clear();
  EXPECT_NE(error_of(encode(metadata)).find("no remote key"), std::string::npos);
  // Host memory with a device ordinal: decoding it and encoding again would give other bytes
  // (the fuzzer's round-trip check found it). Made here from a device layout's bytes, kind
  // byte then ordinal, with the kind changed to Pinned.
  metadata = sample();
  metadata.layouts[0].info.kind = StorageKind::device(0x01020304);
  std::string bytes = encode(metadata);
  const std::string device_ordinal("\x02\x04\x03\x02\x01", 5);
  const std::size_t at = bytes.find(device_ordinal);
  ASSERT_NE(at, std::string::npos);
  bytes[at] = '\x01';
  EXPECT_NE(error_of(bytes).find("host storage kind 1 with device ordinal 16909060"), std::string::npos)
      << error_of(bytes);
}

TEST(AgentMetadata, HugeCountsAreRefusedBeforeAnythingIsAllocated) {
  std::string bytes = encode(AgentMetadata{"a", "x", {}});
  bytes.resize(bytes.size() - 4);
  const std::uint32_t many = 0xffffffff;
  bytes.append(reinterpret_cast<const char*>(&many), 4);
  EXPECT_NE(error_of(bytes).find("layout count is 4294967295 (at most 1024)"), std::string::npos) << error_of(bytes);
  std::string long_name = "KVBMAGT1";
  long_name.append(reinterpret_cast<const char*>(&many), 4);
  EXPECT_NE(error_of(long_name).find("agent name of 4294967295 bytes"), std::string::npos) << error_of(long_name);
}

}  // namespace
}  // namespace kvbm::remote
