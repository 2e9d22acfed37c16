#include "kvbm/memory/storage_kind.hpp"

#include <gtest/gtest.h>

#include "kvbm/common/error.hpp"

namespace kvbm {

TEST(StorageKind, ParsesEveryKind) {
  EXPECT_EQ(StorageKind::parse("system"), StorageKind::system());
  EXPECT_EQ(StorageKind::parse("pinned"), StorageKind::pinned());
  EXPECT_EQ(StorageKind::parse("device"), StorageKind::device(0));
  EXPECT_EQ(StorageKind::parse("device:3"), StorageKind::device(3));
  EXPECT_EQ(StorageKind::parse("disk"), StorageKind::disk(0));
  EXPECT_EQ(StorageKind::parse("disk:42"), StorageKind::disk(42));
}

TEST(StorageKind, PrintsLikeTheSeed) {
  EXPECT_EQ(StorageKind::device(1).to_string(), "Device(1)");
  EXPECT_EQ(StorageKind::disk(42).to_string(), "Disk(42)");
  EXPECT_EQ(StorageKind::pinned().to_string(), "Pinned");
}

TEST(StorageKind, RejectsBadTextNamingIt) {
  for (const char* bad : {"", "gpu", "device:", "device:x", "device:-1", "disk:1:2", "system:0", "pinned:1",
                          "device:99999999999"}) {
    try {
      (void)StorageKind::parse(bad);
      FAIL() << "accepted '" << bad << "'";
    } catch (const Error& error) {
      EXPECT_EQ(error.code(), ErrorCode::InvalidArgument);
      EXPECT_NE(error.message().find(std::string("'") + bad + "'"), std::string::npos) << error.what();
    }
  }
}

}  // namespace kvbm
