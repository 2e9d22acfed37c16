#include "kvbm/common/settings.hpp"

#include <gtest/gtest.h>

#include "kvbm/common/error.hpp"

namespace kvbm {

TEST(Settings, ParseSizeAcceptsSuffixes) {
  EXPECT_EQ(settings::parse_size("X", "4096"), 4096u);
  EXPECT_EQ(settings::parse_size("X", "4K"), 4096u);
  EXPECT_EQ(settings::parse_size("X", "256K"), 256u * 1024);
  EXPECT_EQ(settings::parse_size("X", "2M"), 2u << 20);
  EXPECT_EQ(settings::parse_size("X", "1G"), 1ull << 30);
  EXPECT_EQ(settings::parse_size("X", "3MiB"), 3u << 20);
}

TEST(Settings, ParseSizeRejectsGarbageNamingTheVariable) {
  for (const char* bad : {"", "abc", "-4", "12Q", "4 K", "99999999999999999999", "17179869184G"}) {
    try {
      (void)settings::parse_size("KVBM_THING", bad);
      FAIL() << "accepted '" << bad << "'";
    } catch (const Error& error) {
      EXPECT_EQ(error.code(), ErrorCode::InvalidArgument);
      EXPECT_NE(error.message().find("KVBM_THING"), std::string::npos) << error.what();
      EXPECT_NE(error.message().find(std::string("'") + bad + "'"), std::string::npos) << error.what();
    }
  }
}

TEST(Settings, ParseBool) {
  EXPECT_TRUE(settings::parse_bool("X", "1"));
  EXPECT_TRUE(settings::parse_bool("X", "TRUE"));
  EXPECT_FALSE(settings::parse_bool("X", "off"));
  EXPECT_THROW((void)settings::parse_bool("X", "maybe"), Error);
}

}  // namespace kvbm
