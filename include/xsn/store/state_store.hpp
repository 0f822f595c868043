#pragma once
/// \file The key-value store for machine snapshots: versioned, compare-and-set, TTL, watches.
#include <xsn/core/clock.hpp>
#include <xsn/core/errors.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace xsn::inline v0 {

/// Version of a stored value. `0` means "absent"; real versions start at 1.
using store_version = std::uint64_t;

/// A value as read from a store.
struct stored_value {
  std::string value;                         ///< The bytes stored (any bytes, not only text).
  store_version version = 0;                 ///< The version the write that stored it returned.
  std::optional<clock::time_point> expires_at;  ///< When it expires; none: never.
};

/// Options of `async_put` and `async_compare_and_set`.
struct put_options {
  /// Time to live, from the store clock's `now()` at the write; must be positive. None: the
  /// value never expires. Every write sets the TTL afresh (none clears a previous one).
  std::optional<clock::duration> ttl;
};

/// One write of a batch: an unconditional put, or a compare-and-set when `expected` is set.
struct batch_write {
  std::string key;
  std::string value;
  std::optional<store_version> expected;  ///< Compare-and-set on this version (0: only if absent); none: put.
  put_options opts;
};

/// What happened to one write of a batch.
struct batch_result {
  std::error_code ec;          ///< Its own error; `errc::version_conflict` for a failed compare-and-set.
  store_version version = 0;   ///< The new version; on `version_conflict` the current one (0: absent).
};

/// Options of `async_list`.
struct list_options {
  /// At most this many entries come back; 1 to `state_store::max_list_limit`.
  std::size_t limit = 1000;
  /// Only keys greater than this one; for paging: pass the last key of the previous page.
  std::string start_after;
};

/// What happened to a watched key.
enum class watch_kind {
  put,     ///< Written by `async_put` or `async_compare_and_set` (created or replaced).
  erase,   ///< Removed by `async_erase` or `async_compare_and_erase`.
  expire,  ///< Removed because its TTL ran out.
};

/// One change reported to a watch.
struct watch_event {
  std::string key;       ///< The key that changed.
  watch_kind kind{};     ///< What happened.
  /// `put`: the new version. `erase`, `expire`: the version of the value that was removed.
  store_version version = 0;
};

/// Receives the changes of a watch.
using watch_callback = std::function<void(const watch_event&)>;

/// A snapshot of a store's state, cheap to take (no round trip).
struct store_health {
  bool reachable = false;      ///< The store can serve requests (always true in memory).
  std::size_t entries = 0;     ///< Entries held, counting expired ones not yet swept.
  std::size_t bytes = 0;       ///< Bytes held: sum of key and value sizes.
  std::size_t max_entries = 0; ///< Capacity in entries; 0 when the store has no known limit.
  std::size_t max_bytes = 0;   ///< Capacity in bytes; 0 when the store has no known limit.
};

/**
 * A store's failure with its cause, as the orchestrator reports it: the code operations completed
 * with, and what the store knows of why (`redis 127.0.0.1:6379: cannot connect: Connection
 * refused`), from `state_store::error_message`. Converts to and from `std::error_code`, so code
 * written for the bare code keeps working.
 */
struct store_error {
  std::error_code code;  ///< The error operations completed with.
  std::string message;   ///< Where and why; `code.message()` when the store knows no more.

  store_error() = default;
  /// A bare code, explained by its own message.
  store_error(std::error_code ec) : code(ec), message(ec ? ec.message() : std::string{}) {}  // NOLINT: implicit
  /// A code with the store's explanation.
  store_error(std::error_code ec, std::string why) : code(ec), message(std::move(why)) {}
  /// The code alone.
  operator std::error_code() const noexcept { return code; }  // NOLINT: implicit
};

/**
 * An active watch; destroying it (or `reset`) unsubscribes.
 *
 * When `reset` or the destructor returns, the callback is not running and will not run again,
 * with one exception: called from inside the watch's own callback, they return at once and the
 * callback simply finishes. The handle may outlive its store (destroying the store ends every
 * watch first). Move-only.
 */
class watch_handle {
 public:
  /// What a store implements to end one of its watches (see the class guarantee).
  class subscription {
   public:
    virtual ~subscription();
    /// Ends the watch; idempotent.
    virtual void cancel() noexcept = 0;
  };

  /// An empty handle: watches nothing.
  watch_handle() noexcept = default;
  /// Takes ownership of a store's subscription.
  explicit watch_handle(std::unique_ptr<subscription> sub) noexcept : sub_(std::move(sub)) {}
  /// Unsubscribes.
  ~watch_handle() { reset(); }
  watch_handle(watch_handle&&) noexcept = default;
  /// Unsubscribes from the current watch, then takes `other`'s.
  watch_handle& operator=(watch_handle&& other) noexcept {
    if (this != &other) {
      reset();
      sub_ = std::move(other.sub_);
    }
    return *this;
  }
  watch_handle(const watch_handle&) = delete;
  watch_handle& operator=(const watch_handle&) = delete;

  /// Unsubscribes now; the handle becomes empty.
  void reset() noexcept {
    if (sub_) {
      sub_->cancel();
      sub_.reset();
    }
  }
  /// True while the handle holds a watch.
  explicit operator bool() const noexcept { return sub_ != nullptr; }

 private:
  std::unique_ptr<subscription> sub_;
};

/**
 * A versioned key-value store, the interface every store implements (memory, Redis, ...).
 *
 * Keys are 1 to `max_key_size` bytes, values at most `max_value_size` bytes; any bytes. A bad
 * argument fails the operation with `errc::invalid_argument`; the check is made here, once, for
 * every implementation.
 *
 * Versions: every successful write returns a new version, greater than every version the store
 * returned before (store-wide, so a key erased and created again never reuses a version, and a
 * stale compare-and-set cannot succeed by accident). `0` stands for "absent".
 *
 * Asynchronous operations take any Asio completion token (callback, `use_future`,
 * `use_awaitable`, `deferred`, ...) and never complete inside the initiating call: the handler
 * runs on its associated executor, by default the store's executor (`get_executor()`). Error
 * completions carry a default value (`nullopt`, 0, empty vector) unless stated otherwise.
 * Every member function is thread-safe unless its implementation says otherwise.
 *
 * Expired values are absent for every operation, whether or not they have been swept yet.
 *
 * Closing: `async_close` ends the store's use of its executor (connections, reconnect and expiry
 * timers, watches), so that the executor's `run()` can return. Operations initiated after it fail
 * at once with `errc::store_closed`.
 */
class state_store {
 public:
  /// The executor completions run on by default.
  using executor_type = boost::asio::any_io_executor;
  /// Completion signature of `async_get`.
  using get_signature = void(std::error_code, std::optional<stored_value>);
  /// Completion signature of the writes: the new version (see each operation).
  using write_signature = void(std::error_code, store_version);
  /// An entry as `async_list` returns it.
  using entry = std::pair<std::string, stored_value>;
  /// Completion signature of `async_list`.
  using list_signature = void(std::error_code, std::vector<entry>);
  /// Completion signature of `async_write_batch`: one result per write, in order.
  using batch_signature = void(std::error_code, std::vector<batch_result>);
  /// Completion signature of `async_close`.
  using close_signature = void(std::error_code);

  /// Longest key, in bytes.
  static constexpr std::size_t max_key_size = 1024;
  /// Largest value, in bytes (1 MiB).
  static constexpr std::size_t max_value_size = std::size_t{1} << 20;
  /// Largest `list_options::limit`.
  static constexpr std::size_t max_list_limit = 10'000;
  static constexpr std::size_t max_batch_size = 1024;  ///< Most writes in one batch.

  virtual ~state_store();
  state_store(const state_store&) = delete;
  state_store& operator=(const state_store&) = delete;

  /// The executor completions run on unless the handler has an executor of its own.
  const executor_type& get_executor() const noexcept { return executor_; }

  /// Reads `key`. Completes with `nullopt` when it is absent or expired.
  /// Completion signature: void(std::error_code, std::optional<stored_value>)
  template <boost::asio::completion_token_for<get_signature> Token>
  auto async_get(std::string key, Token&& token) {
    return boost::asio::async_initiate<Token, get_signature>(
        [this](auto handler, std::string k) {
          get_handler h(std::move(handler));
          if (closed()) return fail(std::move(h), errc::store_closed);
          if (!valid_key(k)) return fail(std::move(h), errc::invalid_argument);
          do_get(std::move(k), std::move(h));
        },
        token, std::move(key));
  }

  /// Writes `value` under `key` unconditionally; completes with the new version.
  /// Fails with `errc::store_full` when the store has no room for it.
  /// Completion signature: void(std::error_code, store_version)
  template <boost::asio::completion_token_for<write_signature> Token>
  auto async_put(std::string key, std::string value, put_options opts, Token&& token) {
    return boost::asio::async_initiate<Token, write_signature>(
        [this](auto handler, std::string k, std::string v, put_options o) {
          write_handler h(std::move(handler));
          if (closed()) return fail(std::move(h), errc::store_closed);
          if (!valid_key(k) || !valid_value(v) || !valid(o)) {
            return fail(std::move(h), errc::invalid_argument);
          }
          do_put(std::move(k), std::move(v), o, std::move(h));
        },
        token, std::move(key), std::move(value), opts);
  }
  /// `async_put` without TTL.
  /// Completion signature: void(std::error_code, store_version)
  template <boost::asio::completion_token_for<write_signature> Token>
  auto async_put(std::string key, std::string value, Token&& token) {
    return async_put(std::move(key), std::move(value), put_options{}, std::forward<Token>(token));
  }

  /**
   * Writes `value` under `key` only if the key's current version is `expected`; `expected == 0`
   * means "only if absent" (create). Completes with the new version.
   *
   * Fails with `errc::version_conflict` otherwise; the version argument is then the key's
   * current version (0 when absent), so a retry loop knows what it lost to. Fails with
   * `errc::store_full` when the store has no room for it.
   * Completion signature: void(std::error_code, store_version)
   */
  template <boost::asio::completion_token_for<write_signature> Token>
  auto async_compare_and_set(std::string key, store_version expected, std::string value,
                             put_options opts, Token&& token) {
    return boost::asio::async_initiate<Token, write_signature>(
        [this](auto handler, std::string k, store_version e, std::string v, put_options o) {
          write_handler h(std::move(handler));
          if (closed()) return fail(std::move(h), errc::store_closed);
          if (!valid_key(k) || !valid_value(v) || !valid(o)) {
            return fail(std::move(h), errc::invalid_argument);
          }
          do_compare_and_set(std::move(k), e, std::move(v), o, std::move(h));
        },
        token, std::move(key), expected, std::move(value), opts);
  }
  /// `async_compare_and_set` without TTL.
  /// Completion signature: void(std::error_code, store_version)
  template <boost::asio::completion_token_for<write_signature> Token>
  auto async_compare_and_set(std::string key, store_version expected, std::string value,
                             Token&& token) {
    return async_compare_and_set(std::move(key), expected, std::move(value), put_options{},
                                 std::forward<Token>(token));
  }

  /**
   * Writes many independent entries: each succeeds or fails on its own (no atomicity across
   * entries), results in the order of `writes`. The completion's own error is set only when the
   * batch as a whole was refused (more than `max_batch_size` writes: `errc::invalid_argument`;
   * the store closed: `errc::store_closed`; results empty); an invalid entry fails alone with `errc::invalid_argument`. An empty batch
   * completes with no results. Two writes of one key are applied in their order in `writes`.
   * Each write is what `async_put` or `async_compare_and_set` would do (versions, TTL,
   * `errc::store_full`, watches: one change per successful write, in version order); a store
   * may do the whole batch in fewer round trips than one per write.
   * Completion signature: void(std::error_code, std::vector<batch_result>)
   */
  template <boost::asio::completion_token_for<batch_signature> Token>
  auto async_write_batch(std::vector<batch_write> writes, Token&& token) {
    return boost::asio::async_initiate<Token, batch_signature>(
        [this](auto handler, std::vector<batch_write> w) {
          start_batch(std::move(w), batch_handler(std::move(handler)));
        },
        token, std::move(writes));
  }

  /// Removes `key`. Completes with the version the removed value had, 0 when it was absent
  /// (not an error). Completion signature: void(std::error_code, store_version)
  template <boost::asio::completion_token_for<write_signature> Token>
  auto async_erase(std::string key, Token&& token) {
    return boost::asio::async_initiate<Token, write_signature>(
        [this](auto handler, std::string k) {
          write_handler h(std::move(handler));
          if (closed()) return fail(std::move(h), errc::store_closed);
          if (!valid_key(k)) return fail(std::move(h), errc::invalid_argument);
          do_erase(std::move(k), std::nullopt, std::move(h));
        },
        token, std::move(key));
  }

  /// Removes `key` only if its current version is `expected` (0: succeeds, erasing nothing, only
  /// when absent). Completes with the removed version; on `errc::version_conflict`, with the
  /// current one (0 when absent). Completion signature: void(std::error_code, store_version)
  template <boost::asio::completion_token_for<write_signature> Token>
  auto async_compare_and_erase(std::string key, store_version expected, Token&& token) {
    return boost::asio::async_initiate<Token, write_signature>(
        [this](auto handler, std::string k, store_version e) {
          write_handler h(std::move(handler));
          if (closed()) return fail(std::move(h), errc::store_closed);
          if (!valid_key(k)) return fail(std::move(h), errc::invalid_argument);
          do_erase(std::move(k), e, std::move(h));
        },
        token, std::move(key), expected);
  }

  /**
   * Lists the live entries whose key starts with `prefix` (empty: all), in ascending byte order
   * of keys, at most `opts.limit` of them, starting after `opts.start_after`. A page shorter than
   * the limit is the last one; otherwise ask again with `start_after` = the last key received.
   * Completion signature: void(std::error_code, std::vector<std::pair<std::string, stored_value>>)
   */
  template <boost::asio::completion_token_for<list_signature> Token>
  auto async_list(std::string prefix, list_options opts, Token&& token) {
    return boost::asio::async_initiate<Token, list_signature>(
        [this](auto handler, std::string p, list_options o) {
          list_handler h(std::move(handler));
          if (closed()) return fail(std::move(h), errc::store_closed);
          if (p.size() > max_key_size || o.limit == 0 || o.limit > max_list_limit ||
              o.start_after.size() > max_key_size) {
            return fail(std::move(h), errc::invalid_argument);
          }
          do_list(std::move(p), std::move(o), std::move(h));
        },
        token, std::move(prefix), std::move(opts));
  }
  /// `async_list` of the first page with the default limit.
  /// Completion signature: void(std::error_code, std::vector<std::pair<std::string, stored_value>>)
  template <boost::asio::completion_token_for<list_signature> Token>
  auto async_list(std::string prefix, Token&& token) {
    return async_list(std::move(prefix), list_options{}, std::forward<Token>(token));
  }

  /**
   * Calls `fn` for every change to a key starting with `prefix` (empty: all keys), for changes
   * made by writes initiated after `watch` returned, until the handle is destroyed.
   *
   * Callbacks run on the store's executor, one at a time (never two at once for one store), in
   * version order; see `watch_handle` for when they stop. A callback may use the store and may
   * destroy its own handle. Do not destroy a handle while holding a lock its callback (or another
   * watch's callback on the same store) takes. An exception from a callback propagates out of
   * the executor's `run()`. Throws `std::system_error(errc::invalid_argument)` when `prefix` is
   * longer than `max_key_size` or `fn` is empty, `std::system_error(errc::store_closed)` after
   * `async_close`.
   */
  [[nodiscard]] watch_handle watch(std::string prefix, watch_callback fn);

  /// The store's state, without a round trip (a remote store reports what it last knew).
  store_health health() const { return do_health(); }

  /**
   * Closes the store, so that nothing of it keeps its executor's `run()` from returning: ends
   * every watch, stops timers, and (for a remote store) closes its connections and stops
   * reconnecting. Operations in flight complete with `boost::asio::error::operation_aborted`
   * (or their result, when it was already in); operations initiated afterwards fail at once
   * with `errc::store_closed`, `watch` throws it. Completes once the store is closed.
   * Idempotent; thread-safe; may be called with operations in flight. A store in memory keeps
   * its data until destroyed, but serves no more operations.
   * Completion signature: void(std::error_code)
   */
  template <boost::asio::completion_token_for<close_signature> Token>
  auto async_close(Token&& token) {
    return boost::asio::async_initiate<Token, close_signature>(
        [this](auto handler) {
          closed_.store(true, std::memory_order_release);
          do_close(close_handler(std::move(handler)));
        },
        token);
  }
  /// True once `async_close` was called.
  bool closed() const noexcept { return closed_.load(std::memory_order_acquire); }

  /// What `ec`, an error an operation of this store just completed with, means here: the store,
  /// where it is, and the cause it knows of (`redis 127.0.0.1:6379: cannot connect: Connection
  /// refused`); `ec.message()` when it knows no more. For logs and `store_error`.
  std::string error_message(std::error_code ec) const { return do_error_message(ec); }

 protected:
  /// Handler of `do_get`.
  using get_handler = boost::asio::any_completion_handler<get_signature>;
  /// Handler of `do_put`, `do_compare_and_set` and `do_erase`.
  using write_handler = boost::asio::any_completion_handler<write_signature>;
  /// Handler of `do_list`.
  using list_handler = boost::asio::any_completion_handler<list_signature>;
  /// Handler of `do_write_batch`.
  using batch_handler = boost::asio::any_completion_handler<batch_signature>;
  /// Handler of `do_close`.
  using close_handler = boost::asio::any_completion_handler<close_signature>;

  /// Completions run on `ex` unless the handler has an executor of its own.
  explicit state_store(executor_type ex) : executor_(std::move(ex)) {}

  // The hooks receive validated arguments (keys, values, TTL, list limits); each must call its
  // handler exactly once, never from inside the hook itself (use `complete`).

  /// Reads `key`.
  virtual void do_get(std::string key, get_handler handler) = 0;
  /// Writes unconditionally.
  virtual void do_put(std::string key, std::string value, put_options opts,
                      write_handler handler) = 0;
  /// Writes if the version is `expected` (0: absent).
  virtual void do_compare_and_set(std::string key, store_version expected, std::string value,
                                  put_options opts, write_handler handler) = 0;
  /// Erases; with `expected`, only if the version is that (0: absent).
  virtual void do_erase(std::string key, std::optional<store_version> expected,
                        write_handler handler) = 0;
  /// Lists by prefix.
  virtual void do_list(std::string prefix, list_options opts, list_handler handler) = 0;
  /// Writes a batch of 1 to `max_batch_size` valid entries (the base has taken the invalid
  /// ones out); completes with one result per entry, in order. Default: one `do_put` /
  /// `do_compare_and_set` per entry (issued together, in order), completing when all have.
  virtual void do_write_batch(std::vector<batch_write> writes, batch_handler handler);
  /// Starts a watch (arguments validated).
  virtual watch_handle do_watch(std::string prefix, watch_callback fn) = 0;
  /// Reports health.
  virtual store_health do_health() const = 0;
  /// Closes (`closed()` is already true); called again by every `async_close`, so it must be
  /// idempotent, and must complete `handler` once the store is closed. Default: completes at
  /// once (a store that holds nothing on its executor).
  virtual void do_close(close_handler handler);
  /// Explains an error (see `error_message`). Default: `ec.message()`.
  virtual std::string do_error_message(std::error_code ec) const;

  /// Posts `handler(args...)` to the store's executor, then runs it on the handler's own
  /// associated executor (default: the store's); never inline.
  template <typename Handler, typename... Args>
  void complete(Handler handler, Args&&... args) const;

  /// True for a key of 1 to `max_key_size` bytes.
  static bool valid_key(const std::string& key) noexcept {
    return !key.empty() && key.size() <= max_key_size;
  }
  /// True for a value of at most `max_value_size` bytes.
  static bool valid_value(const std::string& value) noexcept {
    return value.size() <= max_value_size;
  }
  /// True when the TTL, if any, is positive.
  static bool valid(const put_options& opts) noexcept {
    return !opts.ttl || opts.ttl->count() > 0;
  }
  /// True for a batch entry `async_put` / `async_compare_and_set` would accept.
  static bool valid(const batch_write& w) noexcept {
    return valid_key(w.key) && valid_value(w.value) && valid(w.opts);
  }

 private:
  /// Completes `handler` with `e` and `nullopt`.
  void fail(get_handler handler, errc e) const;
  /// Completes `handler` with `e` and version 0.
  void fail(write_handler handler, errc e) const;
  /// Completes `handler` with `e` and no entries.
  void fail(list_handler handler, errc e) const;
  /// Validates a batch and hands its valid entries to `do_write_batch`.
  void start_batch(std::vector<batch_write> writes, batch_handler handler);

  executor_type executor_;
  std::atomic<bool> closed_{false};
};

}  // namespace xsn::inline v0

// ---- implementation of the templates ----
#include <boost/asio/append.hpp>
#include <boost/asio/post.hpp>

namespace xsn::inline v0 {

template <typename Handler, typename... Args>
void state_store::complete(Handler handler, Args&&... args) const {
  // `post` runs the handler through its associated executor (`append` forwards it), with the
  // store's executor as the default and as the one holding the outstanding work.
  boost::asio::post(executor_,
                    boost::asio::append(std::move(handler), std::forward<Args>(args)...));
}

}  // namespace xsn::inline v0
