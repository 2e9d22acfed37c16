#include "kvbm/common/error.hpp"

#include <gtest/gtest.h>

namespace kvbm {

TEST(Error, WhatCarriesCodeAndMessage) {
  const Error error = make_error(ErrorCode::OutOfRange, "block index {} is out of range", 7);
  EXPECT_EQ(error.code(), ErrorCode::OutOfRange);
  EXPECT_EQ(error.message(), "block index 7 is out of range");
  EXPECT_STREQ(error.what(), "[out_of_range] block index 7 is out of range");
}

TEST(Error, ErrnoErrorNamesCallPathAndErrno) {
  const Error error = errno_error("open", "/no/such/file", ENOENT);
  EXPECT_EQ(error.code(), ErrorCode::Io);
  EXPECT_NE(error.message().find("/no/such/file"), std::string::npos);
  EXPECT_NE(error.message().find("errno 2"), std::string::npos);
  EXPECT_NE(error.message().find("No such file"), std::string::npos);
}

TEST(Status, OkAndError) {
  Status ok;
  EXPECT_TRUE(ok.ok());
  EXPECT_NO_THROW(ok.throw_if_error());
  Status failed = make_error(ErrorCode::Io, "disk gone");
  EXPECT_FALSE(failed.ok());
  EXPECT_EQ(failed.error().code(), ErrorCode::Io);
  EXPECT_THROW(failed.throw_if_error(), Error);
  EXPECT_EQ(failed.to_string(), "[io] disk gone");
}

}  // namespace kvbm
