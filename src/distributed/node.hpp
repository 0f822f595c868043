#pragma once
// Part of xsn_distributed (private): one `xsn serve` node. Machines map to partitions (a stable
// hash of the id); a node runs the partitions whose fenced lease it holds in Redis, one
// orchestrator each, and reads each partition's inbox stream with a consumer group. Anyone sends
// to machine X by adding an entry to X's partition stream; the owner applies it, persists the
// machine (a write the partition's lease fences), then acknowledges and deletes the entry and
// answers the sender through pub/sub. See docs/deployment.md.
#include "keys.hpp"
#include "redis.hpp"
#include "service.hpp"

#include <xsn/model/statechart.hpp>
#include <xsn/core/errors.hpp>
#include <xsn/core/value.hpp>

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace xsn::inline v0::distributed {

/// How one node runs.
struct node_options {
  /// This node's name (unique among the nodes of a deployment); the lease owner is the name
  /// plus a random incarnation, so a restarted node never passes for its earlier run.
  std::string node_id;
  redis_endpoint redis;
  std::string prefix = "xsn:";  ///< Every key starts with it (inside the hash tag).
  unsigned partitions = 64;     ///< Fixed for a deployment: the first node records it.
  /// Lease time to live; renewed (and membership refreshed) every third of it.
  std::chrono::milliseconds lease{2000};
  /// How long an HTTP call waits for the owner's answer before 504.
  std::chrono::milliseconds request_timeout{5000};
  /// Entries a partition's stream may hold (not yet applied); an add beyond fails: the HTTP
  /// call gets 503, a machine's message waits in its outbox and is tried again.
  std::size_t stream_capacity = 100'000;
  std::size_t read_batch = 256;          ///< Entries read per XREADGROUP / XAUTOCLAIM.
  std::size_t max_inflight = 2048;       ///< Entries of one partition applied and not yet acknowledged.
  std::size_t max_requests = 10'000;     ///< HTTP calls waiting for answers; beyond: 503.
  std::string http_address;              ///< Shown in /cluster.
  /// Told (on the node's executor) when a partition is `taken` (lease acquired), `running`
  /// (restored, reading its stream), `released` (handed over) or `dropped` (lease lost, fenced or
  /// not renewed in time: stopped without writing). For logs and tests.
  std::function<void(unsigned partition, std::string_view what)> on_partition;
  /// Told (on the node's executor) when the node cannot be part of the deployment (its partition
  /// count differs from the one recorded in Redis); it then never joins. `xsn serve` exits 2.
  std::function<void(const std::string& why)> on_fatal;
};

/// One node; everything runs on the `io_context` given (run it on one thread).
class node final : public machine_service {
 public:
  node(boost::asio::io_context& io, node_options opts);
  ~node() override;
  node(const node&) = delete;
  node& operator=(const node&) = delete;

  /// Makes `chart` available as document `name`. Call before `start`.
  result<void> add_document(std::string name, std::shared_ptr<const statechart> chart);
  /// Connects, joins the membership and starts taking partitions.
  void start();
  /// Hands the node's partitions over (each flushed, then its lease released), leaves the
  /// membership and closes every connection; `done` runs when nothing of the node is pending.
  void async_stop(std::function<void()> done);

  /// The lease owner name (node id and incarnation).
  const std::string& owner() const noexcept;
  /// Partitions this node runs now.
  std::vector<unsigned> held() const;

  void create(std::string id, std::string document, boost::json::value input, reply_handler h) override;
  void send(std::string id, boost::json::object event, std::string idempotency_key, reply_handler h) override;
  void get(std::string id, reply_handler h) override;
  void erase(std::string id, reply_handler h) override;
  void cluster(reply_handler h) override;
  bool ready(std::string& why) const override;
  std::string metrics() const override;

  struct impl;

 private:
  std::shared_ptr<impl> impl_;
};

/// The answer of GET /cluster and `xsn cluster status`, read from Redis: `{"nodes": [{owner, node,
/// http}], "partitions": [{partition, owner, epoch, stream_length, pending}]}`; 503 when Redis
/// does not answer. `h` runs on `cmd`'s strand.
void query_cluster(const std::shared_ptr<redis_client>& cmd, const keyspace& ks, unsigned partitions, reply_handler h);

}  // namespace xsn::inline v0::distributed
