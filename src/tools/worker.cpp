// `kvbm worker`: one rank of a tensor-parallel deployment, serving the leader's requests on
// its own Device, Host and Disk pools until killed or told to shut down.
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <optional>

#include <unistd.h>

#include "commands.hpp"
#include "common/logger.hpp"
#include "common/make_error.hpp"
#include "kvbm/config/environment.hpp"
#include "kvbm/distributed/worker.hpp"
#include "remote/metadata_mac.hpp"
#include "platform/cuda_runtime.hpp"

namespace kvbm::tools {
namespace {

struct WorkerCliOptions {
  std::string protocol = "kvbm";
  bool replicated = false;
  std::size_t broadcast_staging_mib = NcclConfig{}.staging_bytes >> 20;
  std::optional<std::size_t> nccl_timeout_ms;  // unset: KVBM_NCCL_TIMEOUT_MS
  std::string leader;   // empty: Dynamo's DYN_KVBM_LEADER_ZMQ_HOST and _PUB_PORT
  std::string replies;  // empty: kvbm: the leader's port + 1; Dynamo: DYN_KVBM_LEADER_ZMQ_ACK_PORT
  int rank = 0;
  int world_size = 1;
  std::size_t device_blocks = 0;
  std::optional<std::size_t> host_blocks;  // unset: DYN_KVBM_CPU_CACHE_GB, or the Dynamo leader's count
  std::optional<std::size_t> disk_blocks;  // unset: DYN_KVBM_DISK_CACHE_GB, or the Dynamo leader's count
  std::uint32_t device = 0;
  std::string host_kind;  // pinned | system; default pinned with a GPU, system without
  std::string disk_dir = environment::disk_dir();
  std::string layout = "fc";
  std::string disk_layout;  // empty: as `layout`
  std::string auth_key;    // CURVE: this worker's .key file
  std::string leader_pub;  // CURVE: the leader's .pub file
  std::optional<int> message_cpu;  // unset: not pinned
  std::optional<std::size_t> leader_wait_ms;  // unset: KVBM_LEADER_WAIT_MS
  std::string remote;          // UCX transports of a remote agent; empty: none
  std::string remote_name;     // empty: worker-RANK-PID
  std::string remote_devices = "lo";
  std::size_t remote_timeout_ms = 30000;
  std::size_t remote_lanes = RemoteAgentOptions{}.lanes;
  std::string remote_key;  // a metadata key file (kvbm keygen --metadata-key): signed metadata only
  LayoutConfig config{.num_blocks = 0, .num_layers = 4, .outer_dim = 2, .page_size = 16, .inner_dim = 128,
                      .dtype_bytes = 2};
};

std::atomic<Worker*> running_worker{nullptr};
static_assert(std::atomic<Worker*>::is_always_lock_free, "the signal handler needs a lock-free load");

void stop_on_signal(int) {
  if (Worker* worker = running_worker.load()) worker->stop();
}

// SIGINT and SIGTERM stop the worker; without SA_RESTART, so a blocking poll returns at once.
void stop_on_signals() {
  struct sigaction action {};
  action.sa_handler = stop_on_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0;
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

LayoutPtr make_pool(const WorkerCliOptions& options, std::size_t blocks, StorageKind kind) {
  if (blocks == 0) return nullptr;
  LayoutConfig config = options.config;
  config.num_blocks = blocks;
  const std::string& layout = kind.is_disk() && !options.disk_layout.empty() ? options.disk_layout : options.layout;
  const LayoutForm form = layout == "fc" ? LayoutForm::FullyContiguous : LayoutForm::LayerSeparate;
  const LayerOrder order = layout == "ls-outer" ? LayerOrder::OuterContiguous : LayerOrder::BlockContiguous;
  DiskFileOptions disk;
  disk.directory = options.disk_dir;
  return Layout::allocate(config, kind, form, order, disk);
}

std::size_t bytes_per_block(const LayoutConfig& config) {
  return config.num_layers * config.outer_dim * config.chunk_bytes();
}

// A pool size the user fixed, checked against what a Dynamo leader asked for.
std::size_t pool_size(const char* pool, const std::optional<std::size_t>& fixed, std::uint64_t asked) {
  if (!fixed) return asked;
  if (*fixed < asked) {
    log().warn("the leader asks for {} {} blocks but --{}-blocks fixes {}: requests for blocks {} and above will fail",
               asked, pool, pool, *fixed, *fixed);
  } else if (*fixed > asked) {
    log().info("--{}-blocks {} is more than the {} the leader asked for; using {}", pool, *fixed, asked, *fixed);
  }
  return *fixed;
}

}  // namespace

Command add_worker_command(CLI::App& app) {
  auto* command = app.add_subcommand("worker", "Serve a leader's block transfer requests on this rank's pools");
  auto o = std::make_shared<WorkerCliOptions>();
  command->add_option("--protocol", o->protocol,
                      "kvbm, or dynamo: answer a Dynamo 1.6 KVBM leader (its handshake sizes the host and disk pools)")
      ->check(CLI::IsMember({"kvbm", "dynamo"}))->capture_default_str();
  command->add_option("--leader", o->leader,
                      "Leader message endpoint (tcp://HOST:PORT; default: DYN_KVBM_LEADER_ZMQ_HOST and _PUB_PORT)");
  command->add_option("--replies", o->replies,
                      "Reply endpoint (default: kvbm: PORT+1; dynamo: DYN_KVBM_LEADER_ZMQ_HOST and _ACK_PORT)");
  command->add_flag("--replicated", o->replicated,
                    "Replicated mode: rank 0 loads, NCCL broadcasts to every rank's device pool (needs --device-blocks)");
  command->add_option("--broadcast-staging-mib", o->broadcast_staging_mib,
                      "Replicated mode: device memory the broadcast packs blocks into (larger requests stream through it)")
      ->check(CLI::Range(1, 1 << 20))->capture_default_str();
  command->add_option("--nccl-timeout-ms", o->nccl_timeout_ms,
                      "Replicated mode: joining NCCL and each broadcast give up after this long (default: KVBM_NCCL_TIMEOUT_MS)")
      ->check(CLI::PositiveNumber);
  command->add_option("--remote", o->remote,
                      "Start a remote agent on these UCX transports (tcp, sm, ...) exporting the host pool");
  command->add_option("--remote-name", o->remote_name, "The remote agent's name (default: worker-RANK-PID)");
  command->add_option("--remote-devices", o->remote_devices, "Network devices UCX may use")->capture_default_str();
  command->add_option("--remote-key", o->remote_key,
                      "A metadata key shared with the peers (kvbm keygen --metadata-key): metadata is signed with it, "
                      "and only metadata signed with it is imported")
      ->check(CLI::ExistingFile);
  command->add_option("--remote-timeout-ms", o->remote_timeout_ms, "A remote transfer fails after this long")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  command->add_option("--remote-lanes", o->remote_lanes,
                      "UCX workers, a thread each, that a large remote transfer is cut across")
      ->capture_default_str()
      ->check(CLI::Range(1, 16));
  command->add_option("--rank", o->rank, "This worker's rank")->capture_default_str()->check(CLI::NonNegativeNumber);
  command->add_option("--world-size", o->world_size, "Number of workers")->capture_default_str()->check(CLI::PositiveNumber);
  command->add_option("--device-blocks", o->device_blocks, "Blocks in the Device pool (0: no pool)");
  command->add_option("--host-blocks", o->host_blocks,
                      "Blocks in the Host pool (0: no pool; default: DYN_KVBM_CPU_CACHE_GB, or a Dynamo leader's count)");
  command->add_option("--disk-blocks", o->disk_blocks,
                      "Blocks in the Disk pool (0: no pool; default: DYN_KVBM_DISK_CACHE_GB, or a Dynamo leader's count)");
  command->add_option("--device", o->device, "CUDA device ordinal of the Device pool");
  command->add_option("--host-kind", o->host_kind, "pinned or system (default: pinned when a GPU is present)")
      ->check(CLI::IsMember({"pinned", "system"}));
  command->add_option("--disk-dir", o->disk_dir, "Directory of the Disk pool file (default: DYN_KVBM_DISK_CACHE_DIR, "
                      "else KVBM_DISK_DIR)")->check(CLI::ExistingDirectory);
  command->add_option("--layout", o->layout, "fc, ls-block or ls-outer")->check(CLI::IsMember({"fc", "ls-block", "ls-outer"}));
  command->add_option("--disk-layout", o->disk_layout, "Layout of the Disk pool (default: --layout)")
      ->check(CLI::IsMember({"fc", "ls-block", "ls-outer"}));
  command->add_option("--message-cpu", o->message_cpu,
                      "CPU for the receive loop and ZeroMQ I/O thread (default: not pinned)");
  auto* key = command->add_option("--auth-key", o->auth_key, "CURVE: this worker's key pair (kvbm keygen NAME: NAME.key)")
                  ->check(CLI::ExistingFile);
  command->add_option("--leader-pub", o->leader_pub, "CURVE: the leader's public key (its .pub file)")
      ->check(CLI::ExistingFile)->needs(key);
  key->needs("--leader-pub");
  command->add_option("--leader-wait-ms", o->leader_wait_ms,
                      "Give up when the leader has not been heard from within this long (default: KVBM_LEADER_WAIT_MS)")
      ->check(CLI::PositiveNumber);
  command->add_option("--num-layers", o->config.num_layers, "Layers per block")->check(CLI::PositiveNumber);
  command->add_option("--outer-dim", o->config.outer_dim, "1 or 2 (K and V)")->check(CLI::Range(1, 2));
  command->add_option("--page-size", o->config.page_size, "Tokens per block")->check(CLI::PositiveNumber);
  command->add_option("--inner-dim", o->config.inner_dim, "Elements per token")->check(CLI::PositiveNumber);
  command->add_option("--dtype-bytes", o->config.dtype_bytes, "Bytes per element")->check(CLI::PositiveNumber);
  return {command, [o, command] {
    if (o->rank >= o->world_size) {
      throw make_error(ErrorCode::InvalidArgument, "--rank {} is outside [0, --world-size={})", o->rank, o->world_size);
    }
    const bool dynamo = o->protocol == "dynamo";
    const environment::DynamoSettings deployment = environment::dynamo_settings();
    if (command->count("--disk-dir") == 0 && !deployment.disk_cache_dir.empty()) o->disk_dir = deployment.disk_cache_dir;
    const std::size_t block_bytes = bytes_per_block(o->config);
    const bool pinned = o->host_kind.empty() ? cuda::device_count() > 0 : o->host_kind == "pinned";
    const StorageKind host_kind = pinned ? StorageKind::pinned() : StorageKind::system();
    auto device_pool = make_pool(*o, o->device_blocks, StorageKind::device(o->device));
    auto context = std::make_shared<TransferContext>(environment::transfer_config());
    auto scheduler = std::make_shared<ConnectorScheduler>();
    const NcclConfig nccl =
        o->replicated ? NcclConfig{true, o->rank, o->world_size, o->broadcast_staging_mib << 20} : NcclConfig::disabled();
    const auto make_handler = [o, device_pool, context, scheduler, host_kind, nccl](std::size_t host_blocks,
                                                                                   std::size_t disk_blocks) {
      return std::make_shared<BlockTransferHandler>(
          BlockPools{device_pool, make_pool(*o, host_blocks, host_kind), make_pool(*o, disk_blocks, StorageKind::disk(0))},
          context, scheduler, nccl);
    };
    // Without a Dynamo leader to size them, unset pools take Dynamo's cache variables.
    std::shared_ptr<BlockTransferHandler> handler =
        dynamo ? make_handler(o->host_blocks.value_or(0), o->disk_blocks.value_or(0))
               : make_handler(o->host_blocks.value_or(environment::DynamoSettings::blocks(deployment.cpu_cache_gb, block_bytes)),
                              o->disk_blocks.value_or(environment::DynamoSettings::blocks(deployment.disk_cache_gb, block_bytes)));
    WorkerOptions given;
    given.leader_endpoint = o->leader.empty() ? deployment.pub_endpoint() : o->leader;
    given.rank = o->rank;
    given.world_size = o->world_size;
    given.message_cpu = o->message_cpu;
    if (!o->auth_key.empty()) {
      if (dynamo) throw Error(ErrorCode::InvalidArgument, "--auth-key: Dynamo's protocol has no authentication");
      given.auth_key = read_curve_secret_file(o->auth_key);
      given.leader_public_key = read_curve_public_file(o->leader_pub);
    }
    WorkerOptions options = environment::worker_options(std::move(given));
    options.reply_endpoint = !o->replies.empty() ? o->replies : dynamo && o->leader.empty() ? deployment.ack_endpoint() : "";
    if (dynamo) {
      options.dynamo = DynamoWorkerMode{
          .device_blocks = o->device_blocks,
          .bytes_per_block = block_bytes,
          .make_handler = [o, make_handler](std::uint64_t host, std::uint64_t disk) {
            return make_handler(pool_size("host", o->host_blocks, host), pool_size("disk", o->disk_blocks, disk));
          }};
    }
    if (o->leader_wait_ms) options.leader_wait = std::chrono::milliseconds(*o->leader_wait_ms);
    options.replicated = o->replicated;
    if (!o->remote.empty()) {
      options.remote = RemoteAgentOptions{
          .name = !o->remote_name.empty() ? o->remote_name : fmt::format("worker-{}-{}", o->rank, ::getpid()),
          .transports = o->remote,
          .net_devices = o->remote_devices,
          .lanes = o->remote_lanes,
          .transfer_timeout = std::chrono::milliseconds(o->remote_timeout_ms),
          .metadata_key = o->remote_key.empty() ? std::string() : remote::read_metadata_key(o->remote_key)};
    }
    if (o->nccl_timeout_ms) options.nccl_timeout = std::chrono::milliseconds(*o->nccl_timeout_ms);
    auto worker = std::make_unique<Worker>(std::move(options), handler);
    running_worker = worker.get();
    stop_on_signals();
    const Status status = worker->run();
    running_worker = nullptr;
    const int code = status.ok() ? 0 : 1;
    if (!status.ok()) std::cerr << "kvbm worker: " << status.error().message() << std::endl;
    if (worker->abandoned_transfers() > 0) {
      // They were answered with an error; waiting for them (the destructor would) could be forever.
      std::cerr << "kvbm worker: exiting with " << worker->abandoned_transfers() << " transfer(s) unfinished" << std::endl;
      std::_Exit(code);
    }
    return code;
  }};
}

}  // namespace kvbm::tools
