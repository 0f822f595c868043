#pragma once
/// \file A circuit breaker on a sliding window (count- or time-based) with failure-rate and
/// slow-call-rate thresholds, exponential backoff with jitter, and state shared through a
/// `state_store` between the processes guarding one dependency.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <xsn/resilience/circuit_breaker.hpp>
#include <xsn/store/state_store.hpp>

namespace xsn::inline v0::advanced {

/// How the sliding window of a `bucketed_circuit_breaker` is measured.
enum class window_kind : std::uint8_t {
  count_based,  ///< The last `window_size` calls.
  time_based,   ///< The calls of the last `window_size` buckets of `bucket_duration` each.
};

/// How a `bucketed_circuit_breaker` decides. Every field has a usable default; the constructor
/// rejects values out of range with `std::invalid_argument`.
struct bucketed_breaker_options {
  /// Count-based (default, as resilience4j) or time-based window.
  window_kind window = window_kind::count_based;
  /// Count-based: calls in the window (1 to 2^20). Time-based: buckets in the window (1 to 1024).
  std::uint32_t window_size = 100;
  /// Time-based: the width of one bucket; positive. Unused when count-based.
  clock::duration bucket_duration = std::chrono::seconds(1);
  /// Calls the window must hold before its rates count; at least 1, and for a count-based window
  /// at most `window_size`.
  std::uint32_t minimum_calls = 100;
  /// Opens when failures / calls in the window reach this percentage; (0, 100].
  double failure_rate_threshold = 50.0;
  /// Opens when slow calls / calls in the window reach this percentage; (0, 100].
  double slow_call_rate_threshold = 100.0;
  /// A call taking at least this long is slow (successful or not). `duration::max()` (default):
  /// no call is slow, and calls are not timed (no clock reads per call).
  clock::duration slow_call_duration = clock::duration::max();
  /// Trial calls admitted in half-open; at least 1. Others are rejected until it has decided.
  std::uint32_t half_open_permitted_calls = 5;
  /// Successful trials that close the breaker; 0 (default): all `half_open_permitted_calls`.
  /// It re-opens as soon as that many successes can no longer be reached. A slow trial fails.
  std::uint32_t half_open_successes_to_close = 0;
  /// Open duration of the first opening; zero or more.
  clock::duration open_duration = std::chrono::seconds(30);
  /// Each re-opening without a close in between multiplies the open duration by this; >= 1.
  double backoff_multiplier = 2.0;
  /// The open duration never exceeds this (before jitter); >= `open_duration`.
  clock::duration max_open_duration = std::chrono::minutes(5);
  /// The open duration is multiplied by a uniform factor in [1 - jitter, 1 + jitter]; [0, 1).
  double jitter = 0.1;
  /// The random source of the jitter, called under the breaker's lock (uniform 64-bit values, e.g.
  /// a seeded `std::mt19937_64`). Empty: a `std::mt19937_64` seeded from `std::random_device`.
  std::function<std::uint64_t()> random;
  /// Where the state is shared; none: the breaker is local to this process. The store must
  /// outlive the breaker.
  std::shared_ptr<state_store> store;
  /// The key of the shared state (1 to `state_store::max_key_size` bytes); required with `store`.
  /// Every breaker guarding the same dependency uses the same key.
  std::string store_key;
};

/// The sliding window's content, for monitoring.
struct bucketed_breaker_window {
  std::uint64_t calls = 0;       ///< Calls in the window.
  std::uint64_t failures = 0;    ///< Failed calls in the window.
  std::uint64_t slow_calls = 0;  ///< Slow calls in the window (successful or not).
};

/// The state of the sharing through the store, for monitoring.
struct bucketed_breaker_sharing {
  bool enabled = false;            ///< A store was given.
  store_version version = 0;       ///< The last version of the key this breaker knows.
  std::uint64_t published = 0;     ///< Transitions written to the store.
  std::uint64_t applied = 0;       ///< Transitions of other breakers applied here.
  std::uint64_t malformed = 0;     ///< Records in the store that could not be read (ignored).
  std::uint64_t store_errors = 0;  ///< Store operations that failed (other than conflicts).
  std::string last_error;          ///< The last malformed record or store error; empty if none.
};

/**
 * A circuit breaker on a sliding window of the latest outcomes, as resilience4j's and Polly's:
 *
 * - **Window.** Count-based: the last `window_size` calls, one slot each. Time-based: `window_size`
 *   buckets of `bucket_duration` on the `xsn::clock` (bucket `n` covers `[n * d, (n + 1) * d)`);
 *   old buckets are dropped lazily, by the first outcome recorded in a newer bucket.
 * - **Opening.** Once the window holds `minimum_calls` calls, the breaker opens when the failure
 *   rate reaches `failure_rate_threshold` or the slow-call rate reaches
 *   `slow_call_rate_threshold`. A failed call, a slow call or the call that brings the window to
 *   `minimum_calls` checks the rates (a success cannot raise them otherwise).
 * - **Open.** Rejects for the open duration: `open_duration * backoff_multiplier^n` (n: re-openings
 *   since the last close), at most `max_open_duration`, times a random factor in
 *   `[1 - jitter, 1 + jitter]`.
 * - **Half-open.** Admits `half_open_permitted_calls` trials; closes after
 *   `half_open_successes_to_close` successes, re-opens (with backoff) as soon as that is out of
 *   reach. Closing empties the window and resets the backoff.
 * - **Health.** `consecutive_failures` counts failures since the last success.
 *
 * Cost when closed: every call is recorded (success tracking is always on, so calls take the
 * base's slow path, which is lock-free here): a count-based success is two relaxed atomic
 * read-modify-writes (the call counter, the slot), a time-based one a clock read and one
 * read-modify-write into the current bucket. Failures and slow calls add one or two, and check
 * the rates in O(1) (count-based) or O(window_size) (time-based). Transitions take the lock.
 *
 * **Sharing.** With a `store`, every transition to `open` or `closed` is written to `store_key`
 * with compare-and-set (`{"state", "attempt", "open_for_ns", ...}` as JSON; an open record with
 * a TTL of its open duration), and the breaker watches the key: when another breaker opens, this
 * one opens too, for the remaining open duration it published (so clocks need no common epoch);
 * when another closes, this one closes. Half-open is local: each breaker probes on its own. The
 * consistency is eventual: a transition reaches the other breakers after the store's watch
 * latency plus one read; in between they decide on their own windows, which are not shared. On a
 * conflict an opening wins over a closing. A malformed record is ignored (counted in `sharing()`
 * and logged on the `xsn.breaker` spdlog logger, if the application registered one); a failed
 * store operation likewise, and the breaker goes on locally. Store operations are asynchronous
 * (completion handlers on the store's executor); one write is in flight at a time, later
 * transitions coalesce into the latest (bounded).
 *
 * No thread or timer of its own. Lifetime: the clock and the store must outlive the breaker;
 * store completions still pending when it is destroyed do nothing. Do not destroy the breaker from
 * one of its listeners or while the store's executor runs one of its store completions on
 * another thread without synchronisation (the destructor waits for one that is running).
 */
class bucketed_circuit_breaker final : public circuit_breaker {
 public:
  /// A closed breaker reading time from `clk` (which must outlive it); with a store, it watches
  /// the key and then reads its current record. Throws `std::invalid_argument` for options out of
  /// range (the message names the field).
  explicit bucketed_circuit_breaker(xsn::clock& clk, bucketed_breaker_options opts = {});
  /// Ends the watch; pending store completions do nothing afterwards.
  ~bucketed_circuit_breaker() override;

  /// The options it was created with.
  const bucketed_breaker_options& options() const noexcept { return opts_; }
  /// The window's content now (each counter exact at some instant).
  bucketed_breaker_window window() const;
  /// Re-openings since the last close (the backoff exponent of the next opening).
  std::uint32_t open_attempts() const;
  /// The end of the current open period (meaningful while open).
  clock::time_point open_until() const noexcept {
    return clock::time_point(clock::duration(open_until_.load(std::memory_order_relaxed)));
  }
  /// The sharing through the store.
  bucketed_breaker_sharing sharing() const;

 protected:
  bool do_try_acquire(ticket& t) override;
  void do_record_success(ticket t, clock::duration elapsed) override;
  void do_record_failure(ticket t, clock::duration elapsed) override;
  void do_release(ticket t) override;
  breaker_health do_health() const override;

 private:
  struct window_state;  // the slots or buckets
  struct shared_state;  // the store, the watch and pending writes; outlives the breaker if needed
  friend struct shared_state;
  /// A transition to open or closed, as shared through the store (JSON there).
  struct record {
    breaker_state state = breaker_state::closed;
    std::uint32_t attempt = 0;   // re-openings since the last close
    clock::duration open_for{};  // open: the open duration from the write on
    clock::time_point at{};      // the writer's clock (informational)
    std::uint64_t writer = 0;    // identifies the writing breaker
    std::string to_json() const;
    /// Parses a stored record; `nullopt` (and why in `error`) when malformed.
    static std::optional<record> parse(const std::string& text, std::string& error);
  };

  void record_outcome(ticket t, bool failed, clock::duration elapsed);
  void record_closed(bool failed, bool slow);
  void evaluate();
  void record_trial(lock_type& lk, bool failed);
  void open(lock_type& lk);
  void close(lock_type& lk);
  void reset_window();
  clock::duration next_open_duration();
  void apply_remote(const record& r);
  void deliver();

  const bucketed_breaker_options opts_;
  const std::uint32_t successes_to_close_;
  std::unique_ptr<window_state> window_;
  alignas(64) std::atomic<clock::time_point::rep> open_until_{0};  // read without the lock
  std::atomic<std::uint32_t> consecutive_{0};
  std::uint32_t attempts_ = 0;             // guarded by lock()
  std::uint32_t trials_admitted_ = 0;      // guarded by lock()
  std::uint32_t trials_succeeded_ = 0;     // guarded by lock()
  std::uint32_t trials_failed_ = 0;        // guarded by lock()
  std::function<std::uint64_t()> random_;  // guarded by lock()
  std::optional<record> outbox_;           // guarded by lock(): the transition to publish
  std::shared_ptr<shared_state> shared_;
};

}  // namespace xsn::inline v0::advanced
