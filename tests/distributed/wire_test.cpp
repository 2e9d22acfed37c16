#include "kvbm/distributed/wire.hpp"

#include <gtest/gtest.h>

#include "kvbm/common/error.hpp"

namespace kvbm {

TEST(Wire, RoundTripsWithSeedFieldNames) {
  BlockTransferRequest request{BlockTransferPool::Host, BlockTransferPool::Device, {{3, 7}, {4, 8}}, std::nullopt};
  const std::string text = encode_request(request);
  EXPECT_EQ(text, R"({"from_pool":"Host","to_pool":"Device","blocks":[[3,7],[4,8]],"connector_req":null})");
  EXPECT_EQ(decode_request(text), request);
  request.connector_req = ConnectorRequest{"req-1", "7f2c"};
  EXPECT_EQ(decode_request(encode_request(request)), request);
}

TEST(Wire, UnknownFieldsAreIgnoredAndConnectorReqMayBeAbsent) {
  const auto request = decode_request(
      R"({"from_pool":"Disk","to_pool":"Device","blocks":[[0,1]],"priority":3,"extra":{"a":[1,2]}})");
  EXPECT_EQ(request.from_pool, BlockTransferPool::Disk);
  EXPECT_FALSE(request.connector_req.has_value());
  const auto with = decode_request(
      R"({"from_pool":"Host","to_pool":"Disk","blocks":[],"connector_req":{"request_id":"r","uuid":"u","extra":1}})");
  EXPECT_EQ(with.connector_req->uuid, "u");
}

TEST(Wire, BadInputNamesTheProblem) {
  const std::pair<const char*, const char*> cases[] = {
      {"", "not valid JSON"},
      {"not json", "not valid JSON"},
      {"[1,2]", "expected a JSON object, got array"},
      {R"({"to_pool":"Host","blocks":[]})", "missing field 'from_pool'"},
      {R"({"from_pool":"Host","blocks":[]})", "missing field 'to_pool'"},
      {R"({"from_pool":"Host","to_pool":"Disk"})", "missing field 'blocks'"},
      {R"({"from_pool":"Gpu","to_pool":"Disk","blocks":[]})", "'from_pool' is 'Gpu'"},
      {R"({"from_pool":7,"to_pool":"Disk","blocks":[]})", "'from_pool' must be a string, got number"},
      {R"({"from_pool":"Host","to_pool":"Disk","blocks":{}})", "'blocks' must be an array, got object"},
      {R"({"from_pool":"Host","to_pool":"Disk","blocks":[[1]]})", "blocks[0] must be a pair"},
      {R"({"from_pool":"Host","to_pool":"Disk","blocks":[[1,2],[-1,2]]})", "blocks[1] must be a pair"},
      {R"({"from_pool":"Host","to_pool":"Disk","blocks":[[1,2.5]]})", "blocks[0] must be a pair"},
      {R"({"from_pool":"Host","to_pool":"Disk","blocks":[["1",2]]})", "blocks[0] must be a pair"},
      {R"({"from_pool":"Host","to_pool":"Disk","blocks":[],"connector_req":5})", "'connector_req' must be an object"},
      {R"({"from_pool":"Host","to_pool":"Disk","blocks":[],"connector_req":{"uuid":"u"}})", "missing field 'request_id'"},
      {R"({"from_pool":"Host","to_pool":"Disk","blocks":[],"connector_req":{"request_id":"r","uuid":1}})",
       "connector_req.'uuid' must be a string"},
  };
  for (const auto& [text, expected] : cases) {
    try {
      (void)decode_request(text);
      ADD_FAILURE() << "accepted: " << text;
    } catch (const Error& error) {
      EXPECT_EQ(error.code(), ErrorCode::InvalidArgument);
      EXPECT_NE(error.message().find(expected), std::string::npos) << text << " -> " << error.what();
    }
  }
}

}  // namespace kvbm
