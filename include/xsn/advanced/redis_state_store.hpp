#pragma once
/// \file `state_store` on Redis (hiredis 0.14 for the protocol, Asio for the sockets).
#include <xsn/core/clock.hpp>
#include <xsn/store/state_store.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <system_error>

namespace xsn::inline v0::advanced {

/// Where and how a `redis_state_store` connects, and its limits.
struct redis_store_options {
  std::string host = "127.0.0.1";  ///< An address (connected to directly) or a host name (resolved asynchronously).
  std::uint16_t port = 6379;       ///< TCP port.
  int database = 0;                ///< `SELECT`ed after connecting when not 0.
  std::string username;            ///< ACL user; empty: `AUTH password` (requirepass) or none.
  std::string password;            ///< Empty: no `AUTH`.
  /// Every Redis key (and the watch channel) of this store starts with it: one per application.
  std::string key_prefix = "xsn:";

  /// Resolving, connecting, authenticating and loading the scripts, per attempt.
  std::chrono::milliseconds connect_timeout{2000};
  /// From the initiating call to the reply. Past it, an operation not yet sent fails with
  /// `errc::store_unavailable`; one already sent fails with `std::errc::timed_out` and the
  /// connection is dropped and reopened (the replies of a pipeline cannot be told apart after a
  /// lost one).
  std::chrono::milliseconds command_timeout{1000};
  std::chrono::milliseconds reconnect_initial{50};  ///< First delay before reconnecting.
  std::chrono::milliseconds reconnect_max{5000};    ///< Cap of the exponential backoff.

  /// Most operations (`async_connect` and `async_flush` included) initiated and not completed;
  /// past it an operation fails at once with `errc::queue_full` (nothing queues without bound;
  /// the store's own sweeps, one per timer expiry and per connect, are not counted).
  std::size_t max_pending = 10'000;
  /// Capacity enforced atomically by the scripts; 0: none (Redis' own `maxmemory` still holds:
  /// its OOM error becomes `errc::store_full`).
  std::size_t max_entries = 0;
  std::size_t max_bytes = 0;  ///< Sum of key and value sizes; 0: no limit.
  /// Most memory one Redis reply may take while it is read (its strings, 8 bytes per array
  /// element, 64 per reply object; the largest replies are a `get` of the largest value and a
  /// page of `async_list`); at least 4 KiB. A reply over it drops the connection, since the rest
  /// of the stream cannot be read, and fails its operation with `std::errc::value_too_large`;
  /// the other operations in flight are resent or fail as on any lost connection. It bounds what
  /// a broken or hostile server can make this process allocate.
  std::size_t max_reply_bytes = 64u << 20;
  /// The least `max_reply_bytes` the store accepts (4 KiB); the constructor throws under it.
  static constexpr std::size_t min_reply_bytes = 4096;

  /// Wall-clock backstop of TTLs: Redis drops a value `ttl + expiry_backstop` after the write
  /// even when no xsn process is left to sweep it. None: values expire by the clock only.
  std::optional<std::chrono::milliseconds> expiry_backstop = std::chrono::hours(1);
};

/**
 * A `state_store` kept in Redis (5 or later; tested with 7.0): the whole contract, shared by
 * every process that uses the same server and `key_prefix`.
 *
 * Atomicity: each operation is one Lua script (`EVALSHA`; scripts are loaded at every connect,
 * and a `NOSCRIPT` reply, which means nothing ran, is resent as `EVAL`). Versions come from one
 * counter per prefix, so they are store-wide and monotonic as long as Redis keeps its data
 * (use `appendonly yes`, see docs/redis.md). Layout under prefix `P` (layout 2, docs/redis.md):
 * `P d:<key>` one hash per entry with its value and its `version expiry size`, `P i` a sorted
 * set of the keys (listing is `ZRANGEBYLEX` on it: ordered pages in O(log n + page), never
 * `KEYS`, no full `SCAN` per page), `P x` and `P t` the keys with a TTL (by expiry; version and
 * size), `P c` the version, entry and byte counters, `P w` the channel of change messages. Not
 * for Redis Cluster (the scripts touch keys they do not declare).
 *
 * TTL and the clock: `expires_at = clk.now() + ttl` is computed here and kept exactly in the
 * record; every script receives `clk.now()` and treats a value whose `expires_at` has passed
 * as absent (removing it and publishing `expire`), so tests drive expiry with a
 * `manual_clock`. A timer on `clk`, armed for the earliest expiry this store has seen (its own
 * writes, and the earliest stored one at each connect), sweeps the rest. Every process sharing
 * a prefix must therefore use clocks with the same epoch (`asio_clock`: the host's steady clock,
 * so one host; several hosts need a clock on a common time base). `expiry_backstop` lets Redis
 * delete a forgotten value by wall time (a value it removes reads as expired).
 *
 * Watches: every write's script publishes `kind version key` on `P w`; the store subscribes on
 * a second connection when the first watch starts, and holds back later commands until the
 * subscription is confirmed, so every write initiated after `watch` returns is seen. Messages
 * published while the subscriber connection is down are lost (Redis pub/sub is at most once).
 *
 * Connections: one for commands (pipelined: everything queued while a write is in flight goes
 * out in one `write`), one for the subscription, both reopened after a failure with exponential
 * backoff and full jitter. Reads (`get`, `list`) that were in flight on a broken connection are
 * resent; writes are not (a write whose reply was lost may or may not have happened, and
 * retrying a compare-and-set could fail against its own success): they fail with
 * `errc::store_unavailable`, or `std::errc::timed_out`, and the caller reads back to find out.
 * While Redis cannot be reached, operations wait for the next connect attempt and fail with
 * `errc::store_unavailable` when it fails (within the backoff delay plus `connect_timeout`),
 * never later than `command_timeout`. A malformed value under the prefix (another program's
 * junk) or an unexpected reply fails the operation with `std::errc::bad_message`.
 *
 * Threads: no thread of its own. Sockets, timers and watch callbacks run on a strand of the
 * executor, which therefore must be run for operations to complete (blocking its only thread on
 * a future of this store deadlocks). Every member is thread-safe; `clk.now()` is called from
 * the initiating thread and from the strand, `schedule`/`cancel` from the strand (and `cancel`
 * from the destructor): with a `manual_clock`, drive everything from one thread.
 *
 * Closing: the connections, their reconnect backoff and timeouts, and the expiry timer keep the
 * executor busy for as long as the store lives, so `io.run()` does not return on its own.
 * `async_close` ends them: operations pending (queued, waiting for a connect, or sent and
 * not answered) complete with `boost::asio::error::operation_aborted` (a write among them may
 * or may not have happened), later ones fail at once with `errc::store_closed`, and it completes
 * once the connections are closed; the executor's `run()` then returns when the rest of the
 * program is done.
 *
 * Errors: operations complete with an `std::error_code`; `error_message(ec)` adds where and why
 * (`redis 127.0.0.1:6379: cannot connect: Connection refused`), which the orchestrator puts in
 * its logs, `health().last_error` and `on_write_error`.
 *
 * Lifetime: the clock must outlive the store. The destructor ends every watch, fails nothing
 * synchronously and closes the connections on the strand (as `async_close`, without waiting);
 * operations still pending complete with `boost::asio::error::operation_aborted`.
 */
class redis_state_store final : public state_store {
 public:
  /// Completion signature of `async_connect` and `async_flush`.
  using done_signature = void(std::error_code);

  /// A store on `ex` whose TTLs follow `clk`; starts connecting at once.
  redis_state_store(executor_type ex, xsn::clock& clk, redis_store_options opts = {});
  /// Ends every watch and closes the connections (see the class comment).
  ~redis_state_store() override;
  redis_state_store(const redis_state_store&) = delete;
  redis_state_store& operator=(const redis_state_store&) = delete;

  /// Makes a shared store, for code that holds a `std::shared_ptr<state_store>`.
  static std::shared_ptr<redis_state_store> create(executor_type ex, xsn::clock& clk,
                                                   redis_store_options opts = {});

  /// Completes once the command connection is ready (or at once when it is), or fails with
  /// `errc::store_unavailable` when the connect attempt under way fails (`errc::store_closed`
  /// after `async_close`).
  /// Completion signature: void(std::error_code)
  template <boost::asio::completion_token_for<done_signature> Token>
  auto async_connect(Token&& token) {
    return boost::asio::async_initiate<Token, done_signature>(
        [this](auto h) { do_connect(done_handler(std::move(h))); }, token);
  }

  /// A barrier: completes after every operation initiated before it has completed and every
  /// watch notification of the writes before it has been delivered to the callbacks.
  /// Completion signature: void(std::error_code)
  template <boost::asio::completion_token_for<done_signature> Token>
  auto async_flush(Token&& token) {
    return boost::asio::async_initiate<Token, done_signature>(
        [this](auto h) { do_flush(done_handler(std::move(h))); }, token);
  }

  /// The options the store was made with.
  const redis_store_options& options() const noexcept;
  /// Operations initiated whose reply has not been handled yet (at most `max_pending`).
  std::size_t pending() const noexcept;
  /// The last connection or protocol failure, for diagnostics (empty when none yet).
  std::string last_error() const;

 protected:
  void do_get(std::string key, get_handler handler) override;
  void do_put(std::string key, std::string value, put_options opts,
              write_handler handler) override;
  void do_compare_and_set(std::string key, store_version expected, std::string value,
                          put_options opts, write_handler handler) override;
  void do_erase(std::string key, std::optional<store_version> expected,
                write_handler handler) override;
  /// One script call per chunk of up to 256 entries, all chunks pipelined (see docs/redis.md).
  void do_write_batch(std::vector<batch_write> writes, batch_handler handler) override;
  void do_list(std::string prefix, list_options opts, list_handler handler) override;
  watch_handle do_watch(std::string prefix, watch_callback fn) override;
  store_health do_health() const override;
  /// Ends the watches and the expiry timer, then closes both connections on the strand.
  void do_close(close_handler handler) override;
  /// `redis HOST:PORT: ` and the connection's or Redis' own reason when `ec` comes from one.
  std::string do_error_message(std::error_code ec) const override;

 private:
  using done_handler = boost::asio::any_completion_handler<done_signature>;
  void do_connect(done_handler handler);
  void do_flush(done_handler handler);

  struct impl;
  std::shared_ptr<impl> impl_;
};

}  // namespace xsn::inline v0::advanced
