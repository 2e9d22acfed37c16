#include "kvbm/distributed/curve_keys.hpp"

#include <zmq.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/make_error.hpp"
#include "common/secret_file.hpp"

namespace kvbm {
namespace {

constexpr std::size_t kZ85KeyLength = 40;

bool is_z85_key(const std::string& key) {
  if (key.size() != kZ85KeyLength) return false;
  std::uint8_t binary[32];
  return zmq_z85_decode(binary, key.c_str()) != nullptr;
}

// The value of the line "`field` = <key>" (a key alone on the line is the public key of a .pub).
std::string key_field(const std::string& text, const std::string& field, const std::string& path) {
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    line.erase(std::remove_if(line.begin(), line.end(), [](char c) { return c == ' ' || c == '\t' || c == '\r'; }),
               line.end());
    if (line.empty() || line[0] == '#') continue;
    const auto equals = line.find('=');
    const std::string name = equals == std::string::npos ? "public" : line.substr(0, equals);
    const std::string value = equals == std::string::npos ? line : line.substr(equals + 1);
    if (name != field) continue;
    if (!is_z85_key(value)) {
      throw make_error(ErrorCode::InvalidArgument, "key file {}: its {} key is not 40 characters of Z85",
                       printable(path), field);
    }
    return value;
  }
  throw make_error(ErrorCode::InvalidArgument, "key file {} has no {} key", printable(path), field);
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw make_error(ErrorCode::Io, "cannot read key file {}: {}", printable(path), std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

CurveKeyPair generate_curve_keypair() {
  char public_key[kZ85KeyLength + 1];
  char secret_key[kZ85KeyLength + 1];
  if (!zmq_has("curve") || zmq_curve_keypair(public_key, secret_key) != 0) {
    throw make_error(ErrorCode::Unsupported, "this libzmq has no CURVE security (built without libsodium)");
  }
  return {public_key, secret_key};
}

void write_curve_keypair(const std::string& name, const CurveKeyPair& keys) {
  const std::string header = "# kvbm CURVE key (ZeroMQ Z85)\n";
  create_file_exclusively(name + ".key", header + "public = " + keys.public_key + "\nsecret = " + keys.secret_key + "\n",
                          0600);
  create_file_exclusively(name + ".pub", header + "public = " + keys.public_key + "\n", 0644);
}

CurveKeyPair read_curve_secret_file(const std::string& path) {
  const std::string text = read_owner_only_file(path, "key file");
  return {key_field(text, "public", path), key_field(text, "secret", path)};
}

std::string read_curve_public_file(const std::string& path) { return key_field(read_text(path), "public", path); }

std::vector<std::string> read_curve_public_directory(const std::string& directory) {
  std::vector<std::string> keys;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(directory, error)) {
    if (entry.path().extension() == ".pub") keys.push_back(read_curve_public_file(entry.path().string()));
  }
  if (error) throw make_error(ErrorCode::Io, "cannot list {}: {}", printable(directory), error.message());
  if (keys.empty()) {
    throw make_error(ErrorCode::InvalidArgument, "{} holds no .pub file: no worker could connect", printable(directory));
  }
  return keys;
}

}  // namespace kvbm
