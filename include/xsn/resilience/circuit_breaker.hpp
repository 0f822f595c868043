#pragma once
/// \file The circuit breaker interface: stop calling a dependency that keeps failing, probe it
/// again after a while. Synchronous (`execute`) and asynchronous (`async_execute`) calls.
#include <xsn/core/clock.hpp>
#include <xsn/core/errors.hpp>

#include <boost/asio/append.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/associator.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/execution/executor.hpp>
#include <boost/asio/is_executor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/system_executor.hpp>
#include <boost/system/error_code.hpp>

#include <atomic>
#include <concepts>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>

namespace xsn::inline v0 {

/// The three states of a circuit breaker.
enum class breaker_state : std::uint8_t {
  closed,     ///< Calls go through; failures are counted.
  open,       ///< Calls are rejected with `errc::circuit_open` until the open duration has passed.
  half_open,  ///< A limited number of trial calls go through; their outcome closes or re-opens.
};

/// `"closed"`, `"open"` or `"half_open"`.
constexpr std::string_view to_string(breaker_state s) noexcept {
  switch (s) {
    case breaker_state::closed: return "closed";
    case breaker_state::open: return "open";
    case breaker_state::half_open: return "half_open";
  }
  return "unknown";
}

/// A snapshot of a breaker's health, for monitoring.
struct breaker_health {
  breaker_state state = breaker_state::closed;  ///< State when the snapshot was taken.
  std::uint32_t consecutive_failures = 0;       ///< Failures since the last success.
  clock::time_point last_transition{};          ///< Time of the last transition (construction if none).
};

/// Called on every state change with the old state, the new state and the clock's time of it.
using breaker_listener = std::function<void(breaker_state from, breaker_state to, clock::time_point at)>;

namespace detail {
struct breaker_listeners;
/// `async_execute` without an I/O executor.
struct no_io_executor {};
template <class Handler>
class breaker_completion;
template <class Signature>
struct breaker_signature;
/// `void(Error, Args...)`, `Error` being `std::error_code` or `boost::system::error_code`: the
/// completion signatures `async_execute` accepts.
template <class Error, class... Args>
  requires(std::same_as<Error, std::error_code> || std::same_as<Error, boost::system::error_code>)
struct breaker_signature<void(Error, Args...)> {
  /// `handler` bound to `errc::circuit_open` and value-initialized other arguments, as asio does.
  template <class Handler>
  static auto rejected(Handler&& handler) {
    return boost::asio::append(std::forward<Handler>(handler), Error(make_error_code(errc::circuit_open)),
                               std::decay_t<Args>{}...);
  }
};
}  // namespace detail

/**
 * A subscription to a breaker's state changes; unsubscribes when destroyed (RAII). Movable.
 *
 * After `reset` (or the destructor) returns, the listener is not called again and is not running
 * on another thread (it may still be running further up the calling thread's stack, when the
 * listener resets its own subscription): `reset` waits for a listener running on another thread,
 * so do not call it while holding a lock that listener takes. It may outlive the breaker: it then
 * does nothing.
 */
class breaker_subscription {
 public:
  /// An empty subscription.
  breaker_subscription() noexcept = default;
  breaker_subscription(breaker_subscription&& other) noexcept;
  breaker_subscription& operator=(breaker_subscription&& other) noexcept;
  breaker_subscription(const breaker_subscription&) = delete;
  breaker_subscription& operator=(const breaker_subscription&) = delete;
  /// Unsubscribes.
  ~breaker_subscription();

  /// Unsubscribes now; does nothing when empty.
  void reset() noexcept;
  /// True until `reset`, destruction or a move from it.
  explicit operator bool() const noexcept { return id_ != 0; }

 private:
  friend class circuit_breaker;
  breaker_subscription(std::weak_ptr<detail::breaker_listeners> registry, std::uint64_t id) noexcept
      : registry_(std::move(registry)), id_(id) {}
  std::weak_ptr<detail::breaker_listeners> registry_;
  std::uint64_t id_ = 0;
};

/**
 * A circuit breaker: protects callers from a dependency that keeps failing by rejecting calls
 * (`errc::circuit_open`) for a while, then letting a few trial calls probe whether it recovered.
 *
 * Two ways to use it:
 * - `execute(f)` / `async_execute(op, token)` make the call and record its outcome;
 * - `try_acquire()`, then `record_success()`, `record_failure()` or `release()` by hand, for
 *   calls that do not fit (custom failure classification, calls spread over several functions).
 *
 * What counts as a failure in `execute(f)`: `f` throws (the exception is recorded, then rethrown);
 * `f` returns a `std::error_code` that is non-zero; `f` returns a `bool` that is false. Any other
 * result is a success. In `async_execute`: the operation completes with a non-zero error code
 * (`std::error_code` or `boost::system::error_code`), `operation_aborted` included: a cancelled
 * call counts as failed, so a dependency that hangs until a timeout cancels it still opens.
 *
 * State changes: closed -> open, open -> half_open (lazily: on the first `try_acquire` after the
 * open duration, at that call's time), half_open -> closed or open. Which outcomes cause them is
 * the implementation's policy (`simple_circuit_breaker`: consecutive failures).
 *
 * Outcomes and state: an outcome recorded through `execute`/`async_execute` belongs to the state
 * the call was admitted in; a late outcome of a call admitted before the last transition is
 * ignored, except that outcomes of calls admitted while closed count whenever the breaker is
 * closed. Outcomes recorded by hand (`record_*`) have no admission to refer to: they count
 * against the current state.
 *
 * Thread safety: every member function may be called concurrently, except the destructor. The
 * closed state with no failure recorded is the fast path: `try_acquire`, `record_success` and
 * `release` are one relaxed atomic load there, inline, and write nothing shared. Everything else
 * (failures, rejections, transitions) takes the slow path: virtual `do_*` hooks, a small mutex
 * around transitions. `state()` is a snapshot: another thread may change it right after.
 *
 * Listeners (`on_state_change`) are called one at a time, in transition order, never under the
 * breaker's lock (they may call the breaker, even record outcomes; the transitions that causes
 * are delivered after the current listener returns). They run on a thread that caused a
 * transition, before the call that caused it returns unless another thread is already delivering,
 * in which case that thread delivers it. Listeners must not throw: a throwing listener
 * terminates the program (`std::terminate`).
 *
 * Logging (`xsn/core/logging.hpp`, logger `xsn.breaker`): every transition, just before the
 * listeners hear of it (`warn` when opening, `info` otherwise), with `name()`; rejections and
 * failures at `debug`. The closed fast path never logs.
 *
 * Lifetime: the breaker must outlive every `async_execute` it started until its completion
 * handler has run or been destroyed. The clock must outlive the breaker.
 *
 * Implementing a policy: derive, implement the `do_*` hooks, and use the protected helpers
 * (`lock`, `transition`, `restore`, `track_successes`, `is_current`) for the bookkeeping every
 * breaker shares. The public functions are non-virtual and deliver the state-change events.
 */
class circuit_breaker {
 public:
  /// Identifies the admission of one call; see `do_try_acquire`.
  using ticket = std::uint64_t;
  /// The ticket of outcomes recorded by hand: they count against the current state.
  static constexpr ticket untracked = ~ticket{0};

  virtual ~circuit_breaker();
  circuit_breaker(const circuit_breaker&) = delete;
  circuit_breaker& operator=(const circuit_breaker&) = delete;

  /// The current state (a snapshot). An open breaker whose open duration has passed still reads
  /// `open` until the next `try_acquire`.
  breaker_state state() const noexcept { return state_of(gate_.load(std::memory_order_acquire)); }
  /// State, consecutive failures, last transition time.
  breaker_health health() const { return do_health(); }
  /// The clock the breaker reads time from.
  xsn::clock& clock() const noexcept { return clock_; }
  /// The name its records on the `xsn.breaker` logger carry (see `set_name`); `breaker-N`, N
  /// unique in the process, unless the implementation set one.
  const std::string& name() const noexcept;

  /**
   * Asks permission for one call. True when closed; when open and the open duration has passed,
   * moves to half-open and admits up to the implementation's number of trial calls. Every `true`
   * must be followed by exactly one of `record_success`, `record_failure` or `release`.
   */
  bool try_acquire() {
    if (is_fast(gate_.load(std::memory_order_relaxed))) [[likely]] return true;
    ticket t = 0;
    return acquire_slow(t);
  }
  /// Records that a call admitted by `try_acquire` succeeded.
  void record_success() {
    if (is_fast(gate_.load(std::memory_order_relaxed))) [[likely]] return;
    success_slow(untracked, {});
  }
  /// Records a success and how long the call took (for implementations that judge slow calls).
  void record_success(clock::duration elapsed) {
    if (is_fast(gate_.load(std::memory_order_relaxed))) [[likely]] return;
    success_slow(untracked, elapsed);
  }
  /// Records that a call admitted by `try_acquire` failed.
  void record_failure() { failure_slow(untracked, {}); }
  /// Records a failure and how long the call took.
  void record_failure(clock::duration elapsed) { failure_slow(untracked, elapsed); }
  /// Gives back a permission without an outcome (the call was not made, or was abandoned):
  /// in half-open, the trial slot is freed for another call.
  void release() {
    if (is_fast(gate_.load(std::memory_order_relaxed))) [[likely]] return;
    release_slow(untracked);
  }

  /**
   * Calls `f()` when permitted and records its outcome (see the class comment for what counts as
   * a failure). Returns what `f` returns.
   *
   * When rejected: if `f` returns `std::error_code`, returns `errc::circuit_open`; otherwise
   * throws `std::system_error` with `errc::circuit_open`. Exceptions from `f` propagate.
   */
  template <std::invocable F>
  std::invoke_result_t<F> execute(F&& f);

  /**
   * Starts the asynchronous operation `op` when permitted and records its outcome; when rejected,
   * completes with `errc::circuit_open` (other arguments value-initialized) without calling `op`.
   *
   * `op` is called as `op(handler)` and must start an operation that eventually calls the handler
   * once with `Signature`'s arguments, `void(Error, Args...)` where `Error` is `std::error_code`
   * or `boost::system::error_code`; e.g. `[&](auto handler) { timer.async_wait(std::move(handler)); }`
   * with `Signature` `void(boost::system::error_code)`. The handler carries the token's associated
   * executor, allocator and cancellation slot, so `op` sees them as usual.
   *
   * With `boost::asio::use_future`, Boost.Asio turns only a `boost::system::error_code` into an
   * exception: with `void(std::error_code)` the future holds the code instead.
   *
   * A rejection is never completed inline: it is posted through `ex` and then runs on the
   * handler's associated executor, or on `ex` when it has none (as an I/O object with executor
   * `ex` completes). A permitted call completes wherever `op` completes it.
   * An exception thrown by `op` itself propagates; the permission is then given back.
   *
   * Completion signature: `Signature` (default `void(std::error_code)`).
   */
  template <class Signature = void(std::error_code), class Executor, class Op,
            boost::asio::completion_token_for<Signature> Token>
    requires(boost::asio::execution::executor<Executor> || boost::asio::is_executor<Executor>::value)
  auto async_execute(const Executor& ex, Op&& op, Token&& token) {
    return initiate_async<Signature>(ex, std::forward<Op>(op), token);
  }

  /// As above without an I/O executor: a rejection is posted to the handler's associated
  /// executor, or, when it has none, to `boost::asio::system_executor` (as
  /// `boost::asio::post(token)` does, which starts Asio's system thread pool). Bind an executor to
  /// the token (`bind_executor`) or pass one to control where.
  template <class Signature = void(std::error_code), class Op,
            boost::asio::completion_token_for<Signature> Token>
  auto async_execute(Op&& op, Token&& token) {
    return initiate_async<Signature>(detail::no_io_executor{}, std::forward<Op>(op), token);
  }

  /// Calls `fn(from, to, at)` on every state change until the returned subscription is reset or
  /// destroyed. See the class comment for where and when listeners run.
  [[nodiscard]] breaker_subscription on_state_change(breaker_listener fn);

 protected:
  /// The lock that guards transitions and the policy's bookkeeping.
  using lock_type = std::unique_lock<std::mutex>;

  /// `measures_calls`: whether `execute`/`async_execute` time the calls they make on the slow
  /// path and pass the durations to the hooks (costs two `clock.now()` per call).
  explicit circuit_breaker(xsn::clock& clk, bool measures_calls = false);

  /// Takes the breaker's lock.
  lock_type lock() const { return lock_type(mutex_); }

  /// Names the breaker in its log records (e.g. after the dependency it guards); an empty `name`
  /// keeps the default. Call it from the derived constructor, before the breaker is shared.
  void set_name(std::string name);

  /**
   * Changes state (no-op when already `to`) and queues the event for the listeners; they are
   * called after the hook returns, outside the lock. Every transition starts a new generation:
   * tickets of the old one are no longer current. Requires `lk` to hold `lock()`.
   */
  void transition(lock_type& lk, breaker_state to);
  /**
   * Sets the state and the time of the last transition without an event, for a breaker restored
   * from persisted state (typically in the derived constructor). Starts a new generation.
   * Requires `lk` to hold `lock()`.
   */
  void restore(lock_type& lk, breaker_state s, clock::time_point last_transition);
  /**
   * While closed, successes skip the hooks unless tracking is on (the fast path). Turn it on when
   * a success would change something (`simple_circuit_breaker`: a failure count to reset), or
   * permanently (a sliding window counts every call). Requires `lk` to hold `lock()`.
   */
  void track_successes(lock_type& lk, bool on);
  /// The ticket of a call admitted now. Requires `lk` to hold `lock()`.
  ticket current_ticket(const lock_type& lk) const noexcept;
  /// Whether an outcome with ticket `t` counts now: `untracked`, a closed-state ticket while
  /// closed, or a ticket of the current generation. Requires `lk` to hold `lock()`.
  bool is_current(const lock_type& lk, ticket t) const noexcept;
  /// The state a ticket was issued in.
  static breaker_state ticket_state(ticket t) noexcept { return state_of(t); }
  /// The state; requires `lk` to hold `lock()`.
  breaker_state state(const lock_type& lk) const noexcept;
  /// Time of the last transition (construction time if none); requires `lk` to hold `lock()`.
  clock::time_point last_transition(const lock_type& lk) const noexcept;

  /**
   * Permission for a call when the fast path does not apply (not closed, or tracking successes).
   * On entry `t` is the ticket of the state the caller saw (read without the lock); on `true` it
   * must be the call's ticket: set it to `current_ticket(lk)` when the state changed meanwhile.
   */
  virtual bool do_try_acquire(ticket& t) = 0;
  /// A success, when the fast path does not apply. `elapsed` is zero unless measured.
  virtual void do_record_success(ticket t, clock::duration elapsed) = 0;
  /// A failure (always). `elapsed` is zero unless measured.
  virtual void do_record_failure(ticket t, clock::duration elapsed) = 0;
  /// A permission given back, when the fast path does not apply.
  virtual void do_release(ticket t) = 0;
  /// The health snapshot.
  virtual breaker_health do_health() const = 0;

 private:
  template <class Handler>
  friend class detail::breaker_completion;

  // gate_: bits 0-1 state, bit 2 "track successes", bits 3.. generation. Zero low bits: the
  // fast path (closed, nothing to record on success).
  static constexpr std::uint64_t state_mask = 3;
  static constexpr std::uint64_t track_bit = 4;
  static constexpr std::uint64_t generation_one = 8;
  static constexpr bool is_fast(std::uint64_t gate) noexcept { return (gate & 7) == 0; }
  static constexpr breaker_state state_of(std::uint64_t gate) noexcept {
    return static_cast<breaker_state>(gate & state_mask);
  }

  bool acquire_slow(ticket& t);
  void success_slow(ticket t, clock::duration elapsed);
  void failure_slow(ticket t, clock::duration elapsed);
  void release_slow(ticket t);
  [[noreturn]] static void throw_circuit_open();
  void deliver_events();
  void log_transition(breaker_state from, breaker_state to, clock::time_point at) const;

  /// Gives back the permission of ticket `t` (an abandoned asynchronous call).
  void give_back(ticket t) {
    if (is_fast(gate_.load(std::memory_order_relaxed))) return;
    release_slow(t);
  }
  /// Records the outcome of a call admitted with ticket `t` (timed when `start` is set).
  void finish(ticket t, bool failed, bool timed, clock::time_point start) {
    if (!failed) {
      if (is_fast(gate_.load(std::memory_order_relaxed))) [[likely]] return;
      success_slow(t, timed ? clock_.now() - start : clock::duration{});
    } else {
      failure_slow(t, timed ? clock_.now() - start : clock::duration{});
    }
  }

  template <class R>
  static bool is_failure(const R& r) noexcept {
    using value = std::remove_cvref_t<R>;
    if constexpr (std::is_same_v<value, std::error_code>) return static_cast<bool>(r);
    else if constexpr (std::is_same_v<value, bool>) return !r;
    else return false;
  }

  template <class F>
  [[gnu::noinline]] std::invoke_result_t<F> execute_slow(F&& f);  // out of line: `execute` inlines
  template <class F>
  std::invoke_result_t<F> invoke_and_record(F&& f, ticket t, bool timed, clock::time_point start);

  template <class Signature, class Executor, class Op, class Token>
  auto initiate_async(const Executor& ex, Op&& op, Token& token) {
    return boost::asio::async_initiate<Token, Signature>(
        [this, ex](auto&& handler, auto&& init_op) {
          start_async<Signature>(ex, std::forward<decltype(handler)>(handler),
                                 std::forward<decltype(init_op)>(init_op));
        },
        token, std::forward<Op>(op));
  }
  template <class Signature, class Executor, class Handler, class Op>
  void start_async(const Executor& ex, Handler&& handler, Op&& op);

  alignas(64) std::atomic<std::uint64_t> gate_{0};  // alone on its line with read-mostly data
  xsn::clock& clock_;
  const bool measures_calls_;
  mutable std::mutex mutex_;
  clock::time_point last_transition_;
  struct queued_event {
    breaker_state from, to;
    clock::time_point at;
  };
  std::deque<queued_event> queued_;   // guarded by mutex_
  bool delivering_ = false;           // guarded by mutex_
  std::atomic<bool> events_waiting_{false};
  std::shared_ptr<detail::breaker_listeners> listeners_;
};

namespace detail {

/**
 * The handler `async_execute` gives the operation: records the outcome, then calls the user's
 * handler. Abandoned (destroyed without being called), it gives the permission back.
 */
template <class Handler>
class breaker_completion {
 public:
  breaker_completion(circuit_breaker& b, circuit_breaker::ticket t, bool timed,
                     clock::time_point start, Handler&& h)
      : breaker_(&b), ticket_(t), timed_(timed), start_(start), handler_(std::move(h)) {}
  breaker_completion(breaker_completion&& o) noexcept(std::is_nothrow_move_constructible_v<Handler>)
      : breaker_(std::exchange(o.breaker_, nullptr)),
        ticket_(o.ticket_),
        timed_(o.timed_),
        start_(o.start_),
        handler_(std::move(o.handler_)) {}
  breaker_completion& operator=(breaker_completion&&) = delete;
  ~breaker_completion() {
    if (breaker_ != nullptr) {
      try {
        breaker_->give_back(ticket_);
      } catch (...) {  // a destructor must not throw; losing a release only delays a probe
      }
    }
  }

  /// Records the outcome (a non-zero first argument is a failure), then calls the handler.
  template <class Error, class... Args>
  void operator()(Error&& ec, Args&&... args) {
    if (auto* b = std::exchange(breaker_, nullptr)) b->finish(ticket_, static_cast<bool>(ec), timed_, start_);
    std::move(handler_)(std::forward<Error>(ec), std::forward<Args>(args)...);
  }

  /// The user's handler (for the associators).
  const Handler& handler() const noexcept { return handler_; }

 private:
  circuit_breaker* breaker_;
  circuit_breaker::ticket ticket_;
  bool timed_;
  clock::time_point start_;
  Handler handler_;
};

}  // namespace detail

// ---- templates ----

template <std::invocable F>
inline std::invoke_result_t<F> circuit_breaker::execute(F&& f) {
  const ticket gate = gate_.load(std::memory_order_relaxed);
  if (!is_fast(gate)) [[unlikely]] return execute_slow(std::forward<F>(f));
  return invoke_and_record(std::forward<F>(f), gate, false, {});
}

template <class F>
std::invoke_result_t<F> circuit_breaker::execute_slow(F&& f) {
  ticket t = 0;
  if (!acquire_slow(t)) {
    if constexpr (std::is_same_v<std::remove_cvref_t<std::invoke_result_t<F>>, std::error_code>) {
      return make_error_code(errc::circuit_open);
    } else {
      throw_circuit_open();
    }
  }
  return invoke_and_record(std::forward<F>(f), t, measures_calls_,
                           measures_calls_ ? clock_.now() : clock::time_point{});
}

template <class F>
inline std::invoke_result_t<F> circuit_breaker::invoke_and_record(F&& f, ticket t, bool timed,
                                                           clock::time_point start) {
  using result = std::invoke_result_t<F>;
  if constexpr (std::is_void_v<result>) {
    try {
      std::invoke(std::forward<F>(f));
    } catch (...) {
      finish(t, true, timed, start);
      throw;
    }
    finish(t, false, timed, start);
  } else {
    try {
      result r = std::invoke(std::forward<F>(f));
      finish(t, is_failure(r), timed, start);
      if constexpr (std::is_reference_v<result>) {
        return static_cast<result>(r);
      } else {
        return r;  // implicitly moved
      }
    } catch (...) {
      // Also reached when recording the outcome threw (`std::bad_alloc`); then the outcome was
      // not recorded and recording a failure is at worst one failure too many.
      finish(t, true, timed, start);
      throw;
    }
  }
}

template <class Signature, class Executor, class Handler, class Op>
void circuit_breaker::start_async(const Executor& ex, Handler&& handler, Op&& op) {
  using handler_type = std::decay_t<Handler>;
  ticket t = gate_.load(std::memory_order_relaxed);
  bool timed = false;
  clock::time_point start{};
  if (!is_fast(t)) [[unlikely]] {
    if (!acquire_slow(t)) {
      auto rejected = detail::breaker_signature<Signature>::rejected(std::forward<Handler>(handler));
      if constexpr (std::is_same_v<Executor, detail::no_io_executor>) {
        boost::asio::post(std::move(rejected));  // the handler's executor, else the system executor
      } else {
        boost::asio::post(ex, std::move(rejected));  // as an I/O object completes: via `ex`
      }
      return;
    }
    timed = measures_calls_;
    if (timed) start = clock_.now();
  }
  std::invoke(std::forward<Op>(op),
              detail::breaker_completion<handler_type>(*this, t, timed, start,
                                                       handler_type(std::forward<Handler>(handler))));
}

}  // namespace xsn::inline v0

/// The breaker's handler carries the user handler's associated executor, allocator and
/// cancellation slot, so the operation behaves as if given the user's handler.
template <template <class, class> class Associator, class Handler, class DefaultCandidate>
struct boost::asio::associator<Associator, xsn::detail::breaker_completion<Handler>, DefaultCandidate>
    : Associator<Handler, DefaultCandidate> {
  static typename Associator<Handler, DefaultCandidate>::type get(
      const xsn::detail::breaker_completion<Handler>& h) noexcept {
    return Associator<Handler, DefaultCandidate>::get(h.handler());
  }
  static auto get(const xsn::detail::breaker_completion<Handler>& h, const DefaultCandidate& c) noexcept
      -> decltype(Associator<Handler, DefaultCandidate>::get(h.handler(), c)) {
    return Associator<Handler, DefaultCandidate>::get(h.handler(), c);
  }
};
