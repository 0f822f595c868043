#pragma once
/// \file The in-process `state_store`: bounded, versioned, TTL through the clock interface.
#include <xsn/core/clock.hpp>
#include <xsn/store/state_store.hpp>

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace xsn::inline v0 {

/// Capacity of a `memory_state_store`.
struct memory_store_options {
  /// Most entries held at once (expired ones count until swept).
  std::size_t max_entries = 100'000;
  /// Most bytes held at once: the sum of key and value sizes, without bookkeeping overhead.
  std::size_t max_bytes = std::size_t{256} << 20;
};

/**
 * A `state_store` in process memory: nothing is persisted, everything is lost with the process.
 *
 * Bounded: a write that would take the store past `max_entries` or `max_bytes` first sweeps
 * expired entries, then fails with `errc::store_full` if it still does not fit; nothing is
 * evicted. Replacing a value counts only the difference in size.
 *
 * Thread-safe: every member may be called from any thread. Each operation takes effect, under
 * one lock, inside the initiating call (so one thread's writes get increasing versions in call
 * order); only its completion is deferred, posted to the executor.
 *
 * TTL: `expires_at = clock.now() + ttl`; a value is expired from `expires_at` on. Expired values
 * are dropped lazily by any operation that meets them, and by a sweep when a timer, scheduled on
 * the clock for the earliest expiry, fires; both report `watch_kind::expire`. The store calls
 * `clock.now()` from whichever thread calls it, and `clock.schedule` / `clock.cancel` only from
 * its executor or from its own timer callback. `asio_clock` and `manual_clock` are not
 * thread-safe: with them, use a single-threaded executor (or one strand for the clock's users
 * and the store), and drive a `manual_clock` from the thread that runs the executor.
 *
 * Watch callbacks run one at a time on a strand of the executor, in version order. A write's
 * completion and its watch notifications are posted separately: their relative order is not
 * specified. Notifications queue on the executor without bound while it is not run.
 *
 * Lifetime: the clock must outlive the store; destroy the store before its execution context,
 * or after it has stopped running. The destructor, like `async_close`, cancels the timer (which
 * would otherwise keep an `asio_clock`'s executor busy until the next expiry) and ends every
 * watch.
 *
 * Logging (`xsn/core/logging.hpp`, logger `xsn.store`): a compare-and-set or erase conflict
 * at `info`, a write refused for lack of room at `warn`, the destruction at `info`; expiries and
 * new watches at `debug`; every operation at `trace`. Fields: `op`, `key`, versions.
 */
class memory_state_store final : public state_store {
 public:
  /// A store whose completions and watch callbacks run on `ex`, and whose TTLs follow `clk`.
  memory_state_store(executor_type ex, xsn::clock& clk, memory_store_options opts = {});
  /// Cancels the expiry timer and ends every watch (see `watch_handle`).
  ~memory_state_store() override;
  memory_state_store(const memory_state_store&) = delete;
  memory_state_store& operator=(const memory_state_store&) = delete;

  /// The capacity the store was created with.
  const memory_store_options& options() const noexcept;

 protected:
  void do_get(std::string key, get_handler handler) override;
  void do_put(std::string key, std::string value, put_options opts,
              write_handler handler) override;
  void do_compare_and_set(std::string key, store_version expected, std::string value,
                          put_options opts, write_handler handler) override;
  void do_erase(std::string key, std::optional<store_version> expected,
                write_handler handler) override;
  /// The whole batch under one lock (one completion).
  void do_write_batch(std::vector<batch_write> writes, batch_handler handler) override;
  void do_list(std::string prefix, list_options opts, list_handler handler) override;
  watch_handle do_watch(std::string prefix, watch_callback fn) override;
  store_health do_health() const override;
  /// Cancels the timer and ends every watch; completes at once.
  void do_close(close_handler handler) override;

 private:
  /// Cancels the timer and ends every watch, once; logs `what`.
  void shut(const char* what);

  struct impl;  // Shared with posted tasks and the timer callback (weakly) and watch handles.
  std::shared_ptr<impl> impl_;
};

}  // namespace xsn::inline v0
