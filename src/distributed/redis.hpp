#pragma once
// Part of xsn_distributed (private): the node's Redis connections, on the hiredis-on-Asio link
// of xsn_advanced (src/advanced/redis_connection.hpp), and helpers to read replies.
#include "store/redis_connection.hpp"

#include <hiredis/hiredis.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace xsn::inline v0::distributed {

/// Where Redis is and how to log in.
struct redis_endpoint {
  std::string host = "127.0.0.1";
  std::uint16_t port = 6379;
  /// Redis Cluster seed nodes (host, port); empty: the single server `host`:`port`.
  std::vector<std::pair<std::string, std::uint16_t>> cluster;
  std::string username;  ///< ACL user; empty: `AUTH password` or none.
  std::string password;  ///< Empty: no `AUTH`.
  std::chrono::milliseconds connect_timeout{1000};
  std::chrono::milliseconds command_timeout{2000};
  std::chrono::milliseconds reconnect_initial{50};
  std::chrono::milliseconds reconnect_max{2000};
};

/// A reply's callback: the reply is valid during the call only; null with an error.
using redis_callback = std::function<void(std::error_code, const redisReply*)>;

/// What the node needs of Redis: commands and the node script (`scripts.hpp`), to a single
/// server (`node_link`) or to a Redis Cluster (routing by the slot of the command's key). Every
/// call must be made on the strand the client was made with; callbacks run there.
class redis_client {
 public:
  virtual ~redis_client() = default;
  /// Runs a plain command; `timeout` 0 takes the endpoint's command timeout. In a cluster it
  /// goes to the primary of its key's slot (the key: `args[1]`; `XGROUP`: `args[2]`;
  /// `XREADGROUP`/`XREAD`: the first after `STREAMS`; `PUBLISH`: any node).
  virtual void command(std::vector<std::string> args, redis_callback cb, std::chrono::milliseconds timeout = {}) = 0;
  /// Runs the node script: `EVALSHA sha #keys keys... args...` (every key in one slot).
  virtual void script(const std::vector<std::string>& keys, const std::vector<std::string>& args, redis_callback cb) = 0;
  /// True when commands can go out now.
  virtual bool ready() const noexcept = 0;
  /// Commands queued or in flight.
  virtual std::size_t pending() const noexcept = 0;
  /// Fails everything pending with `operation_aborted` and closes for good.
  virtual void close() = 0;
};

/// One connection that runs commands and the node script (`scripts.hpp`), or subscribes to one
/// channel (`on_message`). Every call must be made on `strand`.
class node_link final : public redis_client {
 public:
  /// Told when the link becomes ready or stops being ready.
  using state_fn = std::function<void(bool up, const std::string& why)>;
  /// A message on the subscribed channel.
  using message_fn = std::function<void(std::string_view payload)>;

  /// A command link (loads the node script at every connect).
  static std::shared_ptr<node_link> commands(advanced::detail::strand_type strand, const redis_endpoint& ep,
                                             state_fn on_state = {});
  /// A link subscribed to `channel`.
  static std::shared_ptr<node_link> subscriber(advanced::detail::strand_type strand, const redis_endpoint& ep,
                                               std::string channel, message_fn on_message, state_fn on_state = {});

  void command(std::vector<std::string> args, redis_callback cb, std::chrono::milliseconds timeout = {}) override;
  void script(const std::vector<std::string>& keys, const std::vector<std::string>& args, redis_callback cb) override;
  bool ready() const noexcept override { return link_ && link_->ready(); }
  std::size_t pending() const noexcept override { return link_ ? link_->pending() : 0; }
  void close() override;

 private:
  std::shared_ptr<advanced::detail::redis_link> link_;
  redis_endpoint ep_;
};

/// A command client for `ep`: a `node_link` for a single server, a cluster client when
/// `ep.cluster` is set. `on_state` as for `node_link::commands`.
std::shared_ptr<redis_client> make_client(advanced::detail::strand_type strand, const redis_endpoint& ep,
                                          node_link::state_fn on_state = {});

// ---- reading replies ----
inline std::string_view str(const redisReply* r) noexcept {
  return r && r->str ? std::string_view(r->str, r->len) : std::string_view{};
}
inline bool is_error(const redisReply* r) noexcept { return r && r->type == REDIS_REPLY_ERROR; }
inline bool is_array(const redisReply* r) noexcept { return r && r->type == REDIS_REPLY_ARRAY; }
/// An integer reply, or a string holding one.
std::optional<std::int64_t> to_int(const redisReply* r) noexcept;

}  // namespace xsn::inline v0::distributed
