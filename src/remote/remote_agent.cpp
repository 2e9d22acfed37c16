// The remote agent: its construction, the memory it exports (registered with UCX once, kept
// until it closes) and the public calls; peers in remote_agent_peers.cpp, transfers in
// remote_agent_transfers.cpp.
#include "remote/remote_agent_impl.hpp"

namespace kvbm {

using namespace remote_agent_parts;

namespace {

std::vector<std::unique_ptr<Lane>> make_lanes(const RemoteAgentOptions& options) {
  std::vector<std::unique_ptr<Lane>> lanes;
  for (std::size_t i = 0; i < options.lanes; ++i) {
    lanes.push_back(std::make_unique<Lane>(remote::UcxWorkerOptions{options.transports, options.net_devices}, i));
  }
  return lanes;
}

}  // namespace

RemoteAgent::Impl::Impl(RemoteAgentOptions options_in)
    : options(std::move(options_in)), lanes(make_lanes(options)), worker(lanes.front()->worker) {
  if (options.capabilities.allow_gpu_rdma) check_device_memory_support();
  if (options.stage_remote_device) stager = std::make_unique<remote::Stager>(options.cuda, options.staging_bytes);
  worker.call([this] { register_notification_handler(); });
  for (auto& lane : lanes) {
    lane->worker.set_tick([this, lane = lane.get()](UcxWorker::Clock::time_point now) { expire(*lane, now); });
  }
}

RemoteAgent::Impl::~Impl() {
  stager.reset();  // staged transfers finish first: their slices need the workers
  // Lane 0 last: the other lanes' parts are answered first, and a part answered last there may
  // still hand lane 0 its transfer's notification.
  for (std::size_t i = lanes.size(); i-- > 0;) {
    Lane& lane = *lanes[i];
    lane.worker.stop([this, &lane] {
      const Error closing = make_error(ErrorCode::Cancelled, "the agent is closing");
      for (auto& [name, peer] : peers) close_link(lane, *peer, closing);
      drain(lane);
      if (lane.index != 0) return;
      for (Export& entry : exports) {
        for (ucp_mem_h mapping : entry.mappings) ucp_mem_unmap(worker.context(), mapping);
      }
    });
  }
}

void RemoteAgent::Impl::check_device_memory_support() {
  ucp_context_attr_t attributes{};
  attributes.field_mask = UCP_ATTR_FIELD_MEMORY_TYPES;
  const ucs_status_t status = ucp_context_query(worker.context(), &attributes);
  if (status != UCS_OK || !(attributes.memory_types & UCS_BIT(UCS_MEMORY_TYPE_CUDA))) {
    throw make_error(ErrorCode::Unsupported,
                     "allow_gpu_rdma: this UCX cannot reach CUDA device memory (stage_remote_device can)");
  }
}

Mapping RemoteAgent::Impl::map(void* address, std::size_t length) {
  ucp_mem_map_params_t params{};
  params.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS | UCP_MEM_MAP_PARAM_FIELD_LENGTH | UCP_MEM_MAP_PARAM_FIELD_FLAGS;
  params.address = address;
  params.length = length;
  params.flags = address ? 0 : UCP_MEM_MAP_ALLOCATE;
  ucp_mem_h mapping = nullptr;
  const ucs_status_t status = ucp_mem_map(worker.context(), &params, &mapping);
  if (status != UCS_OK) return Mapping{nullptr, status};
  return Mapping{mapping, UCS_OK};
}

void RemoteAgent::Impl::unmap(const std::vector<ucp_mem_h>& mappings) {
  for (ucp_mem_h mapping : mappings) ucp_mem_unmap(worker.context(), mapping);
}

std::uint32_t RemoteAgent::Impl::export_mapped(const LayoutPtr& layout, std::vector<ucp_mem_h> mappings) {
  Export entry{layout, {}, std::move(mappings)};
  entry.description.info = {0, layout->config(), layout->form(), layout->order(), layout->kind()};
  entry.description.base_offset = layout->base_offset();
  worker.call([&] {
    for (std::size_t r = 0; r < entry.mappings.size(); ++r) {
      void* key = nullptr;
      std::size_t key_bytes = 0;
      const ucs_status_t status = ucp_rkey_pack(worker.context(), entry.mappings[r], &key, &key_bytes);
      if (status != UCS_OK) {
        unmap(entry.mappings);
        remote::throw_ucx(status, "packing a remote key");
      }
      const Region& region = *layout->regions()[r];
      entry.description.regions.push_back({reinterpret_cast<std::uint64_t>(region.data()), region.size(),
                                           std::string(static_cast<const char*>(key), key_bytes)});
      ucp_rkey_buffer_release(key);
    }
  });
  std::lock_guard lock(mutex);
  entry.description.info.id = static_cast<std::uint32_t>(exports.size());
  exports.push_back(std::move(entry));
  return exports.back().description.info.id;
}
RemoteAgent::RemoteAgent(RemoteAgentOptions options) {
  remote::check_agent_name(options.name);
  if (options.transfer_timeout.count() <= 0) {
    throw make_error(ErrorCode::InvalidArgument, "transfer_timeout of {} ms (must be positive)",
                     options.transfer_timeout.count());
  }
  if (options.transports.empty()) throw make_error(ErrorCode::InvalidArgument, "no UCX transports named");
  if (options.lanes < 1 || options.lanes > 16) {
    throw make_error(ErrorCode::InvalidArgument, "lanes={} (must be 1 to 16)", options.lanes);
  }
  impl_ = std::make_unique<Impl>(std::move(options));
}

RemoteAgent::~RemoteAgent() = default;

const std::string& RemoteAgent::name() const { return impl_->options.name; }

std::uint32_t RemoteAgent::export_layout(const LayoutPtr& layout) {
  if (!layout) throw make_error(ErrorCode::InvalidArgument, "no layout to export");
  if (layout->is_layer_view()) {
    throw make_error(ErrorCode::InvalidArgument, "{} is a layer view: export the whole layout", layout->describe());
  }
  const StorageKind kind = layout->kind();
  if (kind.is_disk() || (kind.is_device() && !impl_->options.capabilities.allow_gpu_rdma)) {
    throw make_error(ErrorCode::InvalidArgument, "a {} layout cannot be exported{}", kind.to_string(),
                     kind.is_device() ? " without GPU RDMA" : "");
  }
  std::vector<ucp_mem_h> mappings;
  impl_->worker.call([&] {
    for (const RegionPtr& region : layout->regions()) {
      const auto mapping = impl_->map(region->data(), region->size());
      if (!mapping) {
        impl_->unmap(mappings);
        remote::throw_ucx(mapping.error(), "registering " + region->describe());
      }
      mappings.push_back(*mapping);
    }
  });
  return impl_->export_mapped(layout, std::move(mappings));
}

std::pair<LayoutPtr, std::uint32_t> RemoteAgent::allocate_exported(const LayoutConfig& config, LayoutForm form,
                                                                   LayerOrder order) {
  config.validate();
  const bool contiguous = form == LayoutForm::FullyContiguous;
  const std::size_t bytes = contiguous ? Layout::required_bytes_fully_contiguous(config, StorageKind::system())
                                       : Layout::required_bytes_per_layer(config, StorageKind::system());
  std::vector<ucp_mem_h> mappings;
  std::vector<RegionPtr> regions;
  impl_->worker.call([&] {
    for (std::size_t r = 0; r < (contiguous ? 1 : config.num_layers); ++r) {
      const auto mapping = impl_->map(nullptr, bytes);
      if (!mapping) {
        impl_->unmap(mappings);
        remote::throw_ucx(mapping.error(), fmt::format("allocating {} bytes", bytes));
      }
      mappings.push_back(*mapping);
      ucp_mem_attr_t attributes{};
      attributes.field_mask = UCP_MEM_ATTR_FIELD_ADDRESS;
      (void)ucp_mem_query(*mapping, &attributes);
      regions.push_back(Region::register_memory(attributes.address, bytes, StorageKind::system()));
    }
  });
  LayoutPtr layout = contiguous ? Layout::fully_contiguous(config, regions.front())
                                : Layout::layer_separate(config, std::move(regions), order);
  const std::uint32_t id = impl_->export_mapped(layout, std::move(mappings));
  return {std::move(layout), id};
}

std::string RemoteAgent::metadata() const {
  AgentMetadata metadata{impl_->options.name, impl_->worker.address(), {}};
  std::lock_guard lock(impl_->mutex);
  for (const Export& entry : impl_->exports) metadata.layouts.push_back(entry.description);
  const std::string encoded = remote::encode(metadata);
  return impl_->options.metadata_key.empty() ? encoded : remote::sign_metadata(impl_->options.metadata_key, encoded);
}

std::string RemoteAgent::import_peer(std::string_view bytes) {
  auto peer = std::make_shared<Peer>();
  if (!impl_->options.metadata_key.empty()) bytes = remote::verify_metadata(impl_->options.metadata_key, bytes);
  peer->metadata = remote::decode(bytes);
  const std::string name = peer->metadata.name;
  if (name == impl_->options.name) {
    throw make_error(ErrorCode::InvalidArgument, "peer metadata names this agent itself ({})", printable(name));
  }
  peer->links.resize(impl_->lanes.size());
  for (Link& link : peer->links) link.peer_name = name;
  // Lane 0 connects at import; the others when a transfer first takes them (issue).
  impl_->worker.call([&] {
    Lane& first = *impl_->lanes.front();
    impl_->connect(first, *peer);
    std::shared_ptr<Peer> replaced;
    {
      std::lock_guard lock(impl_->mutex);
      replaced = std::exchange(impl_->peers[name], peer);
    }
    if (replaced) {
      impl_->close_everywhere(first, replaced, make_error(ErrorCode::Cancelled, "peer {} was imported again", printable(name)));
    }
  });
  return name;
}

std::vector<RemoteLayoutInfo> RemoteAgent::peer_layouts(const std::string& peer) const {
  std::vector<RemoteLayoutInfo> layouts;
  for (const ExportedLayout& layout : impl_->find_peer(peer)->metadata.layouts) layouts.push_back(layout.info);
  return layouts;
}

TransferPlan RemoteAgent::plan(StorageKind local, StorageKind remote, bool local_is_source) const {
  return impl_->plan(local, remote, local_is_source);
}

TransferHandle RemoteAgent::write(const LayoutPtr& local, const std::string& peer, std::uint32_t remote_layout,
                                  std::span<const BlockPair> pairs, std::string notification) {
  return impl_->start(local, peer, remote_layout, pairs, true, std::move(notification));
}

TransferHandle RemoteAgent::read(const std::string& peer, std::uint32_t remote_layout, const LayoutPtr& local,
                                 std::span<const BlockPair> pairs) {
  return impl_->start(local, peer, remote_layout, pairs, false, {});
}

std::optional<RemoteNotification> RemoteAgent::wait_notification(std::chrono::milliseconds timeout) {
  std::unique_lock lock(impl_->notifications_mutex);
  if (!impl_->notification_arrived.wait_for(lock, timeout, [&] { return !impl_->notifications.empty(); })) {
    return std::nullopt;
  }
  RemoteNotification notification = std::move(impl_->notifications.front());
  impl_->notifications.pop_front();
  return notification;
}

}  // namespace kvbm
