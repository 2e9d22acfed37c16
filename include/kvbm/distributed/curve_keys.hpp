#pragma once
// CURVE keys for the leader/worker channel (ZeroMQ's CurveZMQ: each side authenticated by its
// key pair, every message encrypted). `kvbm keygen NAME` writes NAME.key (the pair; mode 0600)
// and NAME.pub (the public key alone, to hand to the other side). Keys are Z85 text, 40
// characters, as ZeroMQ takes them.
//
// Who holds what: the leader holds leader.key and a directory of the workers' .pub files (the
// only workers it accepts); each worker holds its own worker.key and the leader's leader.pub.
#include <string>
#include <vector>

namespace kvbm {

struct CurveKeyPair {
  std::string public_key;  // Z85
  std::string secret_key;  // Z85
};

// A fresh key pair. Throws Unsupported where libzmq was built without CURVE.
[[nodiscard]] CurveKeyPair generate_curve_keypair();
// Writes `name`.key (the pair, mode 0600, created exclusively: an existing file is an error)
// and `name`.pub. Throws Io naming the file.
void write_curve_keypair(const std::string& name, const CurveKeyPair& keys);
// Reads a .key file: InvalidArgument for a malformed one, or one that others than its owner may
// read (mode & 077), naming the file; Io when it cannot be read.
[[nodiscard]] CurveKeyPair read_curve_secret_file(const std::string& path);
// Reads a .pub file: its public key.
[[nodiscard]] std::string read_curve_public_file(const std::string& path);
// Every *.pub file's key in `directory` (InvalidArgument when there is none).
[[nodiscard]] std::vector<std::string> read_curve_public_directory(const std::string& directory);

}  // namespace kvbm
