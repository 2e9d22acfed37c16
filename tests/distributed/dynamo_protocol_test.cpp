// Dynamo's bincode frames, byte for byte (examples observed from Dynamo 1.6), and its
// connector_req fields on the wire.
#include "kvbm/distributed/dynamo_protocol.hpp"

#include <gtest/gtest.h>

#include "kvbm/common/error.hpp"
#include "kvbm/distributed/wire.hpp"

namespace kvbm {
namespace {

using namespace std::string_literals;

TEST(DynamoBincode, KnownFrames) {
  EXPECT_EQ(dynamo::encode(dynamo::WorkerMetadata{8, 8192}), "\x08\xfb\x00\x20"s);
  EXPECT_EQ(dynamo::encode(dynamo::LeaderMetadata{8, 8}), "\x08\x08"s);
  EXPECT_EQ(dynamo::decode_worker_metadata("\x08\xfb\x00\x20"s), (dynamo::WorkerMetadata{8, 8192}));
  EXPECT_EQ(dynamo::decode_leader_metadata("\x08\x08"s), (dynamo::LeaderMetadata{8, 8}));
  // Every width: 250 is the largest one-byte value; then u16, u32 and u64 after their tags.
  const std::pair<std::uint64_t, std::string> cases[] = {
      {0, "\x00"s},
      {250, "\xfa"s},
      {251, "\xfb\xfb\x00"s},
      {65535, "\xfb\xff\xff"s},
      {65536, "\xfc\x00\x00\x01\x00"s},
      {0xffffffffull, "\xfc\xff\xff\xff\xff"s},
      {0x100000000ull, "\xfd\x00\x00\x00\x00\x01\x00\x00\x00"s},
      {UINT64_MAX, "\xfd\xff\xff\xff\xff\xff\xff\xff\xff"s}};
  for (const auto& [value, bytes] : cases) {
    std::string out;
    dynamo::append_varint(out, value);
    EXPECT_EQ(out, bytes) << value;
    std::string_view in = bytes;
    EXPECT_EQ(dynamo::read_varint(in, "x"), value);
    EXPECT_TRUE(in.empty());
  }
}

TEST(DynamoBincode, MalformedFramesAreNamedErrors) {
  const auto message = [](auto&& decode) {
    try {
      decode();
    } catch (const Error& error) {
      EXPECT_EQ(error.code(), ErrorCode::InvalidArgument);
      return error.message();
    }
    ADD_FAILURE() << "accepted";
    return std::string();
  };
  EXPECT_NE(message([] { (void)dynamo::decode_worker_metadata(""); }).find("num_device_blocks: no bytes left"), std::string::npos);
  EXPECT_NE(message([] { (void)dynamo::decode_worker_metadata("\x08"s); }).find("bytes_per_block"), std::string::npos);
  EXPECT_NE(message([] { (void)dynamo::decode_worker_metadata("\x08\xfb\x00"s); }).find("1 bytes after tag 251, need 2"),
            std::string::npos);
  EXPECT_NE(message([] { (void)dynamo::decode_leader_metadata("\x08\xfe"s); }).find("tag 254"), std::string::npos);
  EXPECT_NE(message([] { (void)dynamo::decode_leader_metadata("\x08\x08\x01"s); }).find("1 bytes left over"), std::string::npos);
  EXPECT_NE(message([] { (void)dynamo::decode_leader_metadata("\x08\xfb\x05\x00"s); }).find("longer than it needs"),
            std::string::npos);
  // kvbm's JSON error reply, which Dynamo's leader once read as 123 blocks of 34 bytes.
  EXPECT_NE(message([] { (void)dynamo::decode_worker_metadata(R"({"rank":0})"); }).find("left over"), std::string::npos);
}

TEST(DynamoWire, ConnectorRequestTypeAndRequirementTravel) {
  const std::string dynamo_request =
      R"({"from_pool":"Device","to_pool":"Host","blocks":[[0,0],[1,1]],"connector_req":{"request_id":"req-1",)"
      R"("uuid":"1d093ad5-6b8b-4c0e-9d2e-2b5f8f7c1a3e","requirement":null,"request_type":"Scheduled"}})";
  const BlockTransferRequest request = decode_request(dynamo_request);
  ASSERT_TRUE(request.connector_req);
  EXPECT_EQ(request.connector_req->request_type, "Scheduled");
  EXPECT_EQ(request.connector_req->requirement, "null");
  EXPECT_EQ(encode_request(request), dynamo_request);  // byte for byte, in Dynamo's field order
  EXPECT_EQ(decode_request(encode_request(request)), request);
  EXPECT_THROW((void)decode_request(R"({"from_pool":"Host","to_pool":"Disk","blocks":[],"connector_req":)"
                                    R"({"request_id":"r","uuid":"u","request_type":"Later"}})"),
               Error);
  // Without the two fields (kvbm's own leader), nothing is added.
  const BlockTransferRequest plain = decode_request(R"({"from_pool":"Host","to_pool":"Disk","blocks":[[1,2]],)"
                                                    R"("connector_req":{"request_id":"r","uuid":"u"}})");
  EXPECT_EQ(encode_request(plain).find("request_type"), std::string::npos);
}

}  // namespace
}  // namespace kvbm
