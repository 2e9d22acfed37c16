// `kvbm keygen NAME`: a CURVE key pair for the leader/worker channel, NAME.key (the pair, mode
// 0600) and NAME.pub (the public key, for the other side).
#include <iostream>

#include "commands.hpp"
#include "kvbm/distributed/curve_keys.hpp"
#include "remote/metadata_mac.hpp"

namespace kvbm::tools {

Command add_keygen_command(CLI::App& app) {
  auto* command = app.add_subcommand("keygen", "Write a CURVE key pair: NAME.key (secret, mode 0600) and NAME.pub");
  auto name = std::make_shared<std::string>();
  auto metadata = std::make_shared<bool>(false);
  command->add_option("NAME", *name, "Path and name of the pair, without extension")->required();
  command->add_flag("--metadata-key", *metadata,
                    "Write NAME, a secret (mode 0600) that remote agents share to sign their metadata, instead");
  return {command, [name, metadata] {
    if (*metadata) {
      remote::write_metadata_key(*name);
      std::cout << *name << "\n";
      return 0;
    }
    write_curve_keypair(*name, generate_curve_keypair());
    std::cout << *name << ".key " << *name << ".pub\n";
    return 0;
  }};
}

}  // namespace kvbm::tools
