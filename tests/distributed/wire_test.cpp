#include "kvbm/distributed/wire.hpp"

#include <gtest/gtest.h>

#include <functional>
#include <variant>

#include "distributed/request_readers.hpp"
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
      {"[1,2]", "expected a JSON object, got an array of 2 elements"},
      {R"({"to_pool":"Host","blocks":[]})", "missing field 'from_pool'"},
      {R"({"from_pool":"Host","blocks":[]})", "missing field 'to_pool'"},
      {R"({"from_pool":"Host","to_pool":"Disk"})", "missing field 'blocks'"},
      {R"({"from_pool":"Gpu","to_pool":"Disk","blocks":[]})", "'from_pool' is 'Gpu'"},
      {R"({"from_pool":7,"to_pool":"Disk","blocks":[]})", "'from_pool' must be a string, got 7"},
      {R"({"from_pool":"Host","to_pool":"Disk","blocks":{}})", "'blocks' must be an array, got an object"},
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

// The canonical reader takes what encode_request writes without a connector; everything else
// it leaves to the JSON reader.
TEST(Wire, CanonicalReaderTakesWhatTheEncoderWrites) {
  using P = BlockTransferPool;
  const BlockTransferRequest requests[] = {
      {P::Host, P::Device, {{3, 7}}, std::nullopt},
      {P::Device, P::Disk, {{0, 0}, {10, 200}, {9999999999999999999ull, 1}}, std::nullopt},
      {P::Disk, P::Host, {}, std::nullopt},
  };
  for (const auto& request : requests) {
    const std::string text = encode_request(request);
    const auto read = read_canonical_request(text, kDefaultMaxBlockPairs);
    ASSERT_TRUE(read.has_value()) << text;
    EXPECT_EQ(*read, request) << text;
  }
  BlockTransferRequest with_connector = requests[0];
  with_connector.connector_req = ConnectorRequest{"r", "u"};
  EXPECT_FALSE(read_canonical_request(encode_request(with_connector), kDefaultMaxBlockPairs).has_value());
}

// Every text the canonical reader takes, the JSON reader reads the same; every text it leaves,
// decode_request reads as the JSON reader does, errors included.
TEST(Wire, CanonicalReaderAgreesWithTheJsonReader) {
  const std::string prefix = R"({"from_pool":"Host","to_pool":"Device","blocks":)";
  const std::string suffix = R"(,"connector_req":null})";
  const std::string blocks[] = {"[]", "[[1,2]]", "[[1,2],[3,4]]", "[[01,2]]", "[[1,2],]", "[[1, 2]]", "[[-1,2]]",
                                "[[1e3,2]]", "[[1.0,2]]", "[[9999999999999999999,0]]", "[[18446744073709551615,0]]",
                                "[[18446744073709551616,0]]", "[[1,2,3]]", "[[1]]", "[1,2]", "[[1,2]"};
  std::vector<std::string> texts;
  for (const auto& list : blocks) texts.push_back(prefix + list + suffix);
  for (const std::string odd : {R"({"from_pool":"Disky","to_pool":"Device","blocks":[],"connector_req":null})",
                                R"({"to_pool":"Device","from_pool":"Host","blocks":[],"connector_req":null})",
                                R"({"from_pool":"Host","to_pool":"Device","blocks":[],"connector_req":null} )",
                                R"( {"from_pool":"Host","to_pool":"Device","blocks":[],"connector_req":null})",
                                R"({"from_pool":"Host","to_pool":"Device","blocks":[],"connector_req":null}x)",
                                R"({"from_pool":"Host","to_pool":"Device","blocks":[]})",
                                R"({"from_pool":"Host","to_pool":"Dev)"}) {
    texts.push_back(odd);
  }
  const auto outcome = [](const std::function<BlockTransferRequest()>& read) -> std::variant<BlockTransferRequest, std::string> {
    try {
      return read();
    } catch (const Error& error) {
      return error.message();
    }
  };
  int canonical = 0;
  for (const auto& text : texts) {
    const auto by_json = outcome([&] { return read_json_request(text, kDefaultMaxBlockPairs); });
    if (const auto fast = read_canonical_request(text, kDefaultMaxBlockPairs)) {
      ++canonical;
      ASSERT_TRUE(std::holds_alternative<BlockTransferRequest>(by_json)) << text;
      EXPECT_EQ(*fast, std::get<BlockTransferRequest>(by_json)) << text;
    }
    EXPECT_EQ(outcome([&] { return decode_request(text); }), by_json) << text;
  }
  EXPECT_EQ(canonical, 4) << "[], [[1,2]], [[1,2],[3,4]] and the 19-digit index are canonical";
}

}  // namespace kvbm
