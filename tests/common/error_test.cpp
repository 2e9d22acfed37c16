#include "common/make_error.hpp"
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
  // Asking an ok status for its error is not undefined: it says there is none.
  EXPECT_EQ(ok.error().code(), ErrorCode::Internal);
  EXPECT_NE(ok.error().message().find("ok Status"), std::string::npos);
}

TEST(Error, MessagesAreValidUtf8AndBounded) {
  const Error error(ErrorCode::InvalidArgument, std::string("bad \xff\xfe byte ") + std::string(10000, 'x'));
  EXPECT_NE(error.message().find("bad \\xff\\xfe byte"), std::string::npos) << error.message();
  EXPECT_LE(error.message().size(), Error::kMaxErrorMessageBytes + 32);
  EXPECT_EQ(printable("a\x01" "b\xc3\xa9"), "a\\x01b\xc3\xa9");  // control bytes escaped, UTF-8 kept
  EXPECT_EQ(printable(std::string(200, 'y'), 10), "yyyyyyyyyy...(200 bytes)");
  EXPECT_EQ(parse_error_code("io"), ErrorCode::Io);
  EXPECT_EQ(parse_error_code("restarted"), ErrorCode::Restarted);
  EXPECT_FALSE(parse_error_code("nope").has_value());
}

TEST(Error, AnyExceptionBecomesAnError) {
  const auto convert = [](auto&& thrower) {
    try {
      thrower();
    } catch (...) {
      return current_exception_as_error("here");
    }
    return Error(ErrorCode::Internal, std::string_view("nothing thrown"));
  };
  EXPECT_EQ(convert([] { throw make_error(ErrorCode::Io, "kept"); }).code(), ErrorCode::Io);
  EXPECT_EQ(convert([] { throw std::runtime_error("library"); }).message(), "here: library");
  EXPECT_EQ(convert([] { throw 7; }).code(), ErrorCode::Internal);
}

}  // namespace kvbm
