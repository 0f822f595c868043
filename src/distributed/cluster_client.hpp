#pragma once
// Part of xsn_distributed (private): a Redis Cluster client on the node's links. No C++ Redis
// Cluster client is packaged in Debian 12; this one keeps the slot map (`CLUSTER SHARDS`, or
// `CLUSTER SLOTS` before Redis 7), one `node_link` per primary, and follows the cluster's
// redirections (`MOVED`, `ASK`) and transient refusals (`TRYAGAIN`, `CLUSTERDOWN`).
#include "redis.hpp"

#include <boost/asio/steady_timer.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace xsn::inline v0::distributed {

/// Slots of a Redis Cluster.
inline constexpr std::size_t cluster_slots = 16384;

/// The slot of `key`: CRC16 (XMODEM) of its hash tag (the part between the first `{` and the
/// next `}`, when not empty) or else of the whole key, modulo 16384.
std::uint16_t key_slot(std::string_view key) noexcept;

/// The key a command is routed by, as `redis_client::command` documents it; none: any node.
std::optional<std::string_view> routing_key(const std::vector<std::string>& args) noexcept;

/// Slots `first`..`last` (inclusive) are served by the primary at `owner` ("host:port").
struct slot_range {
  std::uint16_t first = 0, last = 0;
  std::string owner;
};

/// The primaries' slot ranges in a `CLUSTER SHARDS` reply (Redis 7), or in a `CLUSTER SLOTS`
/// reply when `shards` is false; an address without host (empty or `?`) takes `asked_host`, the
/// host of the node asked. None: the reply is not of that shape.
std::optional<std::vector<slot_range>> parse_slot_map(const redisReply* reply, bool shards, std::string_view asked_host);

/// What a `cluster_client` did, for tests and metrics.
struct cluster_stats {
  std::uint64_t moved = 0;      ///< `MOVED` redirections followed.
  std::uint64_t asked = 0;      ///< `ASK` redirections followed.
  std::uint64_t retried = 0;    ///< `TRYAGAIN`/`CLUSTERDOWN` answers retried after a pause.
  std::uint64_t refreshes = 0;  ///< Slot maps read.
};

/// Limits and periods of a `cluster_client`.
struct cluster_options {
  std::chrono::milliseconds refresh_interval{5000};  ///< Periodic re-read of the slot map.
  std::chrono::milliseconds min_refresh_gap{100};    ///< Refreshes on failures are at least this apart.
  std::chrono::milliseconds retry_delay{50};         ///< Pause before `TRYAGAIN`/`CLUSTERDOWN` retries.
  unsigned max_redirects = 5;                         ///< `MOVED`/`ASK` followed per command.
  std::size_t max_waiting = 10000;                    ///< Commands waiting for a route.
};

/**
 * A `redis_client` for a Redis Cluster. It reads the slot map from the seeds (then from any
 * known node) at start, when a link fails, after a `MOVED`, and every `refresh_interval`; keeps
 * one link per primary (each loads the node script); sends a command to the primary of its key's
 * slot (a script by `keys[0]`; keyless commands to any primary). Every call must be made on the
 * strand given to `make`; callbacks run there.
 *
 * Guarantees: at most `max_redirects` redirections per command (then its last `MOVED`/`ASK`
 * reply is its answer); `TRYAGAIN`/`CLUSTERDOWN` retried every `retry_delay` until the
 * command's deadline (then that reply is its answer); at most `max_waiting` commands wait for a
 * route (no map yet, a slot without owner, a retry), beyond them `errc::queue_full` at once; when
 * no node can give a map and none is known, waiting commands fail with `errc::store_unavailable`.
 * Errors of a link (`store_unavailable`, timeouts) are answers: a command that may have run is
 * never sent twice.
 */
class cluster_client final : public redis_client, public std::enable_shared_from_this<cluster_client> {
 public:
  using options = cluster_options;  ///< Limits and periods.

  /// A client of the cluster whose seeds are `ep.cluster` (AUTH, timeouts and backoff from `ep`);
  /// `on_state` told when it becomes ready (a map, every primary's link ready) or stops being.
  static std::shared_ptr<cluster_client> make(advanced::detail::strand_type strand, const redis_endpoint& ep,
                                              node_link::state_fn on_state = {}, options opts = {});
  cluster_client(advanced::detail::strand_type strand, const redis_endpoint& ep, node_link::state_fn on_state,
                 options opts);  ///< Use `make` (owned by a `shared_ptr`).
  ~cluster_client() override;
  cluster_client(const cluster_client&) = delete;
  cluster_client& operator=(const cluster_client&) = delete;

  void command(std::vector<std::string> args, redis_callback cb, std::chrono::milliseconds timeout = {}) override;
  void script(const std::vector<std::string>& keys, const std::vector<std::string>& args, redis_callback cb) override;
  bool ready() const noexcept override;
  std::size_t pending() const noexcept override;
  void close() override;

  /// Counters since `make`.
  const cluster_stats& stats() const noexcept { return stats_; }
  /// "host:port" of the primary that the map gives `slot` now; empty when unknown.
  std::string owner_of(std::uint16_t slot) const;

 private:
  struct node;
  struct request;
  using request_ptr = std::shared_ptr<request>;

  void start();
  node* node_at(const std::string& address);
  void route(const request_ptr& r);
  void send(node& n, const request_ptr& r, bool asking);
  void on_reply(const request_ptr& r, const std::string& from, std::error_code ec, const redisReply* reply);
  bool redirect(const request_ptr& r, const std::string& from, std::string_view error);
  void note_moved(std::uint16_t slot, node* n);
  void park(const request_ptr& r);
  void on_retry_timer();
  void fail_waiting(std::error_code ec);
  void expire(const request_ptr& r);
  void finish(const request_ptr& r, std::error_code ec, const redisReply* reply);

  void refresh_soon();
  void schedule_refresh(std::chrono::milliseconds delay);
  void refresh();
  void ask_map(std::shared_ptr<const std::vector<std::string>> candidates, std::size_t i, bool shards, std::string why);
  void on_map_reply(const std::shared_ptr<const std::vector<std::string>>& candidates, std::size_t i, bool shards,
                    std::error_code ec, const redisReply* r);
  void map_failed(const std::string& why);
  void apply_map(const std::vector<slot_range>& ranges);
  void on_link_state(const std::string& address, bool up, const std::string& why);
  void tell_state(const std::string& why);

  advanced::detail::strand_type strand_;
  redis_endpoint ep_;
  node_link::state_fn on_state_;
  options opts_;
  boost::asio::steady_timer refresh_timer_;
  boost::asio::steady_timer retry_timer_;
  std::unordered_map<std::string, std::unique_ptr<node>> nodes_;  ///< By "host:port".
  std::vector<node*> slots_;                                       ///< Empty until the first map.
  std::vector<node*> primaries_;                                   ///< Owners of slots in the map.
  std::deque<request_ptr> waiting_;                                ///< Without a route for now.
  cluster_stats stats_;
  std::uint64_t refresh_gen_ = 0;  ///< Stale refresh timer waits compare it.
  advanced::detail::steady::time_point last_refresh_{};
  unsigned map_failures_ = 0;      ///< Consecutive failed refreshes, for the backoff.
  std::size_t next_candidate_ = 0;  ///< Rotates the node asked first.
  bool refreshing_ = false;
  bool refresh_again_ = false;
  bool retry_armed_ = false;
  bool closed_ = false;
  bool told_ = false;        ///< Whether `on_state_` was last told "up".
  bool told_once_ = false;
  std::string told_why_;
};

}  // namespace xsn::inline v0::distributed
