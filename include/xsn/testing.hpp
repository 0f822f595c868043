#pragma once
/**
 * \file Testing helpers: an `io_context` and a `manual_clock` driven from the test thread.
 *
 * A test of a machine alternates steps (an event sent, virtual time moved) with looks at the
 * result. Between the two, the executor must run until nothing is ready: `io_context::poll()`
 * does that once, but after a `poll()` that found no work the `io_context` is *stopped* and every
 * later `poll()` returns 0 without running anything until `restart()` is called; a test that
 * forgets it silently stops seeing its machine move. `xsn::testing::driver` does it right:
 * ```cpp
 * xsn::testing::driver t;
 * auto door = t.make_session(chart);
 * t.start(*door);                       // entered, initial macrostep done
 * t.send(*door, xsn::event("open"));    // processed
 * t.advance(std::chrono::seconds(2));   // every timer due fired, in due order, each processed
 * ```
 */
#include <xsn/model/statechart.hpp>
#include <xsn/core/clock.hpp>
#include <xsn/runtime/implementations.hpp>
#include <xsn/runtime/session.hpp>

#include <boost/asio/io_context.hpp>

#include <cstddef>
#include <functional>
#include <memory>
#include <system_error>

namespace xsn::inline v0::testing {

/**
 * Runs an `io_context` and a `manual_clock` to quiescence, from one thread (the test's).
 *
 * Virtual time moves only through `advance` (or the clock itself); `settle` never moves it, so a
 * timer due now fires on `advance(0ms)`, not on `settle`. Declare the driver before the sessions
 * on it: they must be destroyed first.
 */
class driver {
 public:
  /// A driver owning its `io_context`.
  driver();
  /// A driver running `io`, which must outlive it.
  explicit driver(boost::asio::io_context& io);
  driver(const driver&) = delete;
  driver& operator=(const driver&) = delete;
  ~driver();

  /// The `io_context` the driver runs.
  boost::asio::io_context& io() noexcept { return *io_; }
  /// Its executor, for sessions, stores and buses under test.
  boost::asio::io_context::executor_type executor() noexcept { return io_->get_executor(); }
  /// The virtual clock (starts at 0).
  manual_clock& clock() noexcept { return clock_; }
  /// Virtual time elapsed since the clock's 0.
  xsn::clock::duration elapsed() const noexcept { return clock_.now().time_since_epoch(); }

  /**
   * Runs ready handlers until none is ready (`restart()`, then handlers one at a time), including
   * those the handlers post. Returns how many ran. Throws `std::runtime_error` once more than
   * `max_handlers` ran in one call: work that keeps re-posting itself is a bug to report, not a
   * test to hang.
   */
  std::size_t settle();

  /**
   * Moves virtual time forward by `d`: fires every timer due by `now + d` one at a time, in due
   * order (ties: scheduling order), with the clock at that timer's due time, and settles after
   * each; timers scheduled meanwhile fire too when due within the window. Settles first, and
   * ends with the clock at `now + d`. Returns the number of timers fired.
   */
  std::size_t advance(xsn::clock::duration d);

  /**
   * Settles, then fires timers one at a time (as `advance` does) until `pred()` holds, within
   * `within` of virtual time. Returns whether it holds; on false the clock is at `now + within`.
   */
  bool run_until(const std::function<bool()>& pred, xsn::clock::duration within);

  /// Most handlers one `settle` may run before it gives up (see `settle`).
  std::size_t max_handlers = 1'000'000;

  /// A session of `chart` on this driver's executor and clock, not started yet.
  std::unique_ptr<session> make_session(std::shared_ptr<const statechart> chart, session_options opts = {});
  /// A session of XState chart `chart` with its actions, guards, delays and actors bound from
  /// `impl` (`opts.make_datamodel` is replaced); fails with `bind`'s error.
  result<std::unique_ptr<session>> make_session(std::shared_ptr<const statechart> chart, const implementations& impl,
                                                session_options opts = {});
  /// Starts `s` and settles: its initial macrostep (and what it queued) is done. Returns
  /// `session::start`'s error (e.g. `errc::not_bound`: an XState machine whose names are unbound).
  std::error_code start(session& s);
  /// Queues `ev` on `s` and settles; returns `send`'s error (nothing is run on an error).
  std::error_code send(session& s, event ev);

 private:
  std::unique_ptr<boost::asio::io_context> own_;
  boost::asio::io_context* io_;
  manual_clock clock_;
};

}  // namespace xsn::inline v0::testing
