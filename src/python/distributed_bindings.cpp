// kvbm.Leader and kvbm.Worker: the leader/worker channel from Python. A Worker runs in this
// process, serving its pools on a thread of its own until stop(); a Leader sends it messages
// (by handler name, JSON data) and block transfers between its pools. With replicated=True on
// both, rank 0 loads and NCCL broadcasts the loaded device blocks to every rank.
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <future>
#include <thread>

#include "bindings.hpp"
#include "kvbm/distributed/block_transfer_handler.hpp"
#include "kvbm/distributed/curve_keys.hpp"
#include "kvbm/distributed/leader.hpp"
#include "kvbm/distributed/nccl_communicator.hpp"
#include "kvbm/distributed/worker.hpp"
#include "kvbm/distributed/wire.hpp"

namespace kvbm::python {
namespace {

std::chrono::milliseconds to_ms(double seconds) {
  if (!(seconds >= 0)) throw Error(ErrorCode::InvalidArgument, "timeout must be >= 0 seconds");
  return std::chrono::milliseconds(static_cast<std::int64_t>(seconds * 1000));
}

// A worker serving on its own thread; stopped (and joined, GIL released) by stop() or when it
// is dropped.
struct PyWorker {
  std::unique_ptr<Worker> worker;
  std::thread thread;
  std::shared_future<Status> outcome;  // run()'s, once it returns

  void stop() {
    nb::gil_scoped_release released;
    if (worker) worker->stop();
    if (thread.joinable()) thread.join();
  }
  // True once run() has returned (kvbm.Error if it returned one), False while still serving.
  bool wait(std::optional<double> timeout) {
    {
      nb::gil_scoped_release released;
      if (!timeout) outcome.wait();
      else if (outcome.wait_for(to_ms(*timeout)) != std::future_status::ready) return false;
    }
    outcome.get().throw_if_error();
    return true;
  }
  ~PyWorker() {
    stop();
    nb::gil_scoped_release released;
    worker.reset();
  }
};

// Each rank's reply: its data parsed as JSON (None when it sent none).
nb::list outcomes(const LeaderResult& result) {
  result.status.throw_if_error();
  const nb::object loads = nb::module_::import_("json").attr("loads");
  nb::list replies;
  for (const protocol::Outcome& outcome : result.outcomes) {
    nb::dict reply;
    reply["rank"] = outcome.rank;
    reply["data"] = outcome.data.empty() ? nb::none() : loads(outcome.data);
    replies.append(reply);
  }
  return replies;
}

}  // namespace

void bind_distributed(nb::module_& m) {
  m.def(
      "replicated_unavailable_reason",
      [] {
        std::string reason;
        return NcclCommunicator::available(reason) ? std::optional<std::string>() : std::optional<std::string>(reason);
      },
      "None when replicated mode can run in this process (a GPU and NCCL), else why not.");
  nb::class_<PyWorker>(m, "Worker", "One rank serving its pools to a leader, on a thread of this process.")
      .def(
          "__init__",
          [](PyWorker* self, const std::string& leader, PyContext& context, int rank, int world_size,
             const PyLayout* device, const PyLayout* host, const PyLayout* disk, double leader_wait, bool replicated,
             double nccl_timeout, std::size_t broadcast_staging_bytes, std::size_t concurrent_transfers,
             const std::optional<std::string>& auth_key, const std::optional<std::string>& leader_pub) {
            if (concurrent_transfers == 0) throw Error(ErrorCode::InvalidArgument, "concurrent_transfers must be >= 1");
            if (auth_key.has_value() != leader_pub.has_value()) {
              throw Error(ErrorCode::InvalidArgument, "auth_key and leader_pub go together (CURVE)");
            }
            WorkerOptions options;
            if (auth_key) {
              options.auth_key = read_curve_secret_file(*auth_key);
              options.leader_public_key = read_curve_public_file(*leader_pub);
            }
            options.concurrent_transfers = concurrent_transfers;
            options.leader_endpoint = leader;
            options.rank = rank;
            options.world_size = world_size;
            options.leader_wait = to_ms(leader_wait);
            options.replicated = replicated;
            options.nccl_timeout = to_ms(nccl_timeout);
            BlockPools pools{device ? device->layout : nullptr, host ? host->layout : nullptr,
                             disk ? disk->layout : nullptr};
            const NcclConfig nccl =
                replicated ? NcclConfig{true, rank, world_size, broadcast_staging_bytes} : NcclConfig::disabled();
            auto handler = std::make_shared<BlockTransferHandler>(std::move(pools), context.context, nullptr, nccl);
            auto worker = std::make_unique<Worker>(std::move(options), std::move(handler));
            std::promise<Status> finished;
            new (self) PyWorker{std::move(worker), {}, finished.get_future().share()};
            self->thread = std::thread([self, finished = std::move(finished)]() mutable {
              finished.set_value(self->worker->run());
            });
          },
          nb::arg("leader"), nb::kw_only(), nb::arg("context"), nb::arg("rank") = 0, nb::arg("world_size") = 1,
          nb::arg("device").none() = nb::none(), nb::arg("host").none() = nb::none(), nb::arg("disk").none() = nb::none(),
          nb::arg("leader_wait") = 300.0, nb::arg("replicated") = false, nb::arg("nccl_timeout") = 30.0,
          nb::arg("broadcast_staging_bytes") = NcclConfig{}.staging_bytes,
          nb::arg("concurrent_transfers") = WorkerOptions{}.concurrent_transfers, nb::arg("auth_key").none() = nb::none(),
          nb::arg("leader_pub").none() = nb::none(), nb::keep_alive<1, 3>(),
          "replicated=True: replicated mode (needs a device pool and NCCL); joining the communicator and each "
          "collective give up after nccl_timeout seconds, aborting it; the broadcast packs blocks into "
          "broadcast_staging_bytes of device memory. At most concurrent_transfers requests run at once; the "
          "rest wait their turn. auth_key (this worker's .key file) and leader_pub (the leader's .pub file): CURVE.")
      .def("stop", &PyWorker::stop, "Stops serving and waits for the worker's thread.")
      .def("wait", &PyWorker::wait, nb::arg("timeout") = nb::none(),
           "Waits until the worker stops serving: True (kvbm.Error if it stopped on an error, e.g. no leader "
           "within leader_wait), or False if it still serves after `timeout` seconds.");

  nb::class_<Leader>(m, "Leader", "Sends messages and block transfers to every worker rank and gathers their replies.")
      .def(
          "__init__",
          [](Leader* self, const std::string& bind, int world_size, bool replicated, const std::optional<std::string>& auth_key,
             const std::optional<std::string>& auth_peers) {
            if (auth_key.has_value() != auth_peers.has_value()) {
              throw Error(ErrorCode::InvalidArgument, "auth_key and auth_peers go together (CURVE)");
            }
            LeaderOptions options;
            options.message_endpoint = bind;
            options.world_size = world_size;
            options.replicated = replicated;
            if (auth_key) {
              options.auth_key = read_curve_secret_file(*auth_key);
              options.auth_peers = read_curve_public_directory(*auth_peers);
            }
            new (self) Leader(std::move(options));
          },
          nb::arg("bind"), nb::kw_only(), nb::arg("world_size") = 1, nb::arg("replicated") = false,
          nb::arg("auth_key").none() = nb::none(), nb::arg("auth_peers").none() = nb::none(),
          "replicated=True: only replicated workers register, and wait_for_workers() gives them an NCCL communicator. "
          "auth_key (the leader's .key file) and auth_peers (a directory of the workers' .pub files): CURVE.")
      .def(
          "wait_for_workers",
          [](Leader& self, double timeout) {
            nb::gil_scoped_release released;
            self.wait_for_workers(to_ms(timeout));
          },
          nb::arg("timeout") = 30.0, "Waits until every rank has registered; kvbm.Error naming the missing ranks.")
      .def(
          "send",
          [](Leader& self, const std::string& handler, nb::object data, double timeout) {
            std::vector<std::string> frames;
            if (!data.is_none()) frames.push_back(nb::cast<std::string>(nb::module_::import_("json").attr("dumps")(data)));
            LeaderResult result;
            {
              nb::gil_scoped_release released;
              result = self.send(handler, frames, to_ms(timeout));
            }
            return outcomes(result);
          },
          nb::arg("handler"), nb::arg("data") = nb::none(), nb::kw_only(), nb::arg("timeout") = 30.0,
          "Sends a message (e.g. 'kvbm.ping', 'kvbm.hash' with {'pool': 'Host', 'blocks': [...]}) to every rank: "
          "each rank's reply, or kvbm.Error with the ranks' errors.")
      .def(
          "transfer",
          [](Leader& self, const std::string& from_pool, const std::string& to_pool, nb::handle pairs,
             double timeout) {
            BlockTransferRequest request;
            request.from_pool = parse_pool(from_pool);
            request.to_pool = parse_pool(to_pool);
            request.blocks = block_pairs(pairs);
            LeaderResult result;
            {
              nb::gil_scoped_release released;
              result = self.transfer(request, to_ms(timeout));
            }
            return outcomes(result);
          },
          nb::arg("from_pool"), nb::arg("to_pool"), nb::arg("pairs"), nb::kw_only(), nb::arg("timeout") = 30.0,
          "Has every rank copy blocks between its pools ('Device', 'Host', 'Disk').")
      .def(
          "init_replicated",
          [](Leader& self, double timeout) {
            nb::gil_scoped_release released;
            self.init_replicated(to_ms(timeout));
          },
          nb::arg("timeout") = 60.0,
          "Replicated mode: every rank joins a new NCCL communicator (after a failure aborted the old one, once "
          "every rank is registered again).")
      .def("restarted_ranks", &Leader::restarted_ranks,
           "Ranks whose process was replaced since registration (their blocks are gone).")
      .def("acknowledge_restart", &Leader::acknowledge_restart, nb::arg("rank"),
           "The caller has accounted for the lost blocks of `rank`: its requests count again.")
      .def_prop_ro("world_size", &Leader::world_size);
}

}  // namespace kvbm::python
