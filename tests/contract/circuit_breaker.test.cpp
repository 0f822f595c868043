// Contract of `xsn::circuit_breaker`: every implementation must pass it. Implementations join the
// `implementations` list below (the advanced ones when they are built).
#include <xsn/resilience/circuit_breaker.hpp>

#include <xsn/config.hpp>
#include <xsn/resilience/simple_circuit_breaker.hpp>
#include <xsn/core/clock.hpp>
#include <xsn/core/errors.hpp>
#if XSN_WITH_ADVANCED
#include <xsn/advanced/bucketed_circuit_breaker.hpp>
#endif

#include "catch.hpp"

#include <boost/asio/append.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/system/system_error.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <tuple>
#include <vector>

using namespace std::chrono_literals;

namespace {

using xsn::breaker_state;
using time_point = xsn::clock::time_point;

/// What every implementation is configured to: `failure_threshold` consecutive failures (no
/// success in between) open it; it stays open `open_duration`; half-open admits `trial_calls`
/// calls, closes when all succeed and re-opens on the first failure.
struct contract_config {
  std::uint32_t failure_threshold = 3;
  xsn::clock::duration open_duration = 10s;
  std::uint32_t trial_calls = 1;
};

struct simple_impl {
  static std::unique_ptr<xsn::circuit_breaker> make(xsn::clock& clk, const contract_config& c) {
    return std::make_unique<xsn::simple_circuit_breaker>(
        clk, xsn::simple_breaker_options{c.failure_threshold, c.open_duration, c.trial_calls});
  }
};

/**
 * A minimal sliding-window policy written against the protected hooks only, standing in for the
 * advanced bucketed breaker until it joins the list: it sees every call (success tracking on),
 * judges durations (`measures_calls`), opens when the failure rate over the last `window` calls
 * reaches `rate_percent` (slow calls count as failures), and can be restored from persisted state.
 * With `rate_percent` 100 and `window` = threshold it opens after `threshold` consecutive failures,
 * which is what the contract configures.
 */
class window_breaker final : public xsn::circuit_breaker {
 public:
  struct options {
    std::uint32_t window = 3;
    std::uint32_t rate_percent = 100;
    xsn::clock::duration open_duration = 10s;
    std::uint32_t trial_calls = 1;
    xsn::clock::duration slow_call = xsn::clock::duration::max();
  };

  window_breaker(xsn::clock& clk, options opts) : circuit_breaker(clk, /*measures_calls=*/true), opts_(opts) {
    auto lk = lock();
    track_successes(lk, true);  // a window counts every call
  }
  /// A breaker restored as `s` since `since` (as from a state store).
  window_breaker(xsn::clock& clk, options opts, breaker_state s, time_point since) : window_breaker(clk, opts) {
    auto lk = lock();
    restore(lk, s, since);
    if (s == breaker_state::open) open_until_ = since + opts_.open_duration;
  }

  /// Durations the hooks were given, in order (0 when not measured).
  std::vector<xsn::clock::duration> durations;

 protected:
  bool do_try_acquire(ticket& t) override {
    auto lk = lock();
    switch (state(lk)) {
      case breaker_state::closed: t = current_ticket(lk); return true;
      case breaker_state::open:
        if (clock().now() < open_until_) return false;
        transition(lk, breaker_state::half_open);
        admitted_ = succeeded_ = 0;
        [[fallthrough]];
      case breaker_state::half_open:
        if (admitted_ >= opts_.trial_calls) return false;
        ++admitted_;
        t = current_ticket(lk);
        return true;
    }
    return false;
  }
  void do_record_success(ticket t, xsn::clock::duration elapsed) override {
    record(t, elapsed >= opts_.slow_call, elapsed);
  }
  void do_record_failure(ticket t, xsn::clock::duration elapsed) override { record(t, true, elapsed); }
  void do_release(ticket t) override {
    auto lk = lock();
    if (is_current(lk, t) && state(lk) == breaker_state::half_open && admitted_ > succeeded_) --admitted_;
  }
  xsn::breaker_health do_health() const override {
    auto lk = lock();
    return {state(lk), consecutive_, last_transition(lk)};
  }

 private:
  void record(ticket t, bool failed, xsn::clock::duration elapsed) {
    auto lk = lock();
    durations.push_back(elapsed);
    if (!is_current(lk, t)) return;
    consecutive_ = failed ? consecutive_ + 1 : 0;
    switch (state(lk)) {
      case breaker_state::closed: {
        calls_.push_back(failed);
        if (calls_.size() > opts_.window) calls_.erase(calls_.begin());
        const auto failures = static_cast<std::uint32_t>(std::count(calls_.begin(), calls_.end(), true));
        if (calls_.size() == opts_.window && failures * 100 >= opts_.rate_percent * opts_.window) open(lk);
        break;
      }
      case breaker_state::open: break;
      case breaker_state::half_open:
        if (failed) {
          open(lk);
        } else if (++succeeded_ >= opts_.trial_calls) {
          transition(lk, breaker_state::closed);
          calls_.clear();
        }
        break;
    }
  }
  void open(lock_type& lk) {
    open_until_ = clock().now() + opts_.open_duration;
    transition(lk, breaker_state::open);
  }

  const options opts_;
  std::vector<bool> calls_;
  time_point open_until_{};
  std::uint32_t consecutive_ = 0;
  std::uint32_t admitted_ = 0;
  std::uint32_t succeeded_ = 0;
};

struct window_impl {
  static std::unique_ptr<xsn::circuit_breaker> make(xsn::clock& clk, const contract_config& c) {
    return std::make_unique<window_breaker>(
        clk, window_breaker::options{c.failure_threshold, 100, c.open_duration, c.trial_calls});
  }
};

#if XSN_WITH_ADVANCED
/// The real sliding-window breaker, configured to the contract: a count-based window of
/// `failure_threshold` calls that must all have failed (rate 100 %, minimum = window) is exactly
/// "`failure_threshold` consecutive failures"; half-open closes when all trials succeed and
/// re-opens on the first failure; no backoff, no jitter, no slow calls.
struct bucketed_impl {
  static std::unique_ptr<xsn::circuit_breaker> make(xsn::clock& clk, const contract_config& c) {
    xsn::advanced::bucketed_breaker_options o;
    o.window = xsn::advanced::window_kind::count_based;
    o.window_size = c.failure_threshold;
    o.minimum_calls = c.failure_threshold;
    o.failure_rate_threshold = 100;
    o.half_open_permitted_calls = c.trial_calls;
    o.half_open_successes_to_close = 0;  // all of them
    o.open_duration = c.open_duration;
    o.backoff_multiplier = 1;
    o.max_open_duration = c.open_duration;
    o.jitter = 0;
    return std::make_unique<xsn::advanced::bucketed_circuit_breaker>(clk, std::move(o));
  }
};
using implementations = std::tuple<simple_impl, window_impl, bucketed_impl>;
#else
using implementations = std::tuple<simple_impl, window_impl>;
#endif

/// A breaker under test with its manual clock and the state changes it reported.
template <class Impl>
struct fixture {
  struct change {
    breaker_state from, to;
    time_point at;
    bool operator==(const change&) const = default;
  };

  explicit fixture(contract_config c = {}) : config(c) {
    clk.advance(1s);  // so that "at construction" is not the zero time point
    breaker = Impl::make(clk, config);
    sub = breaker->on_state_change(
        [this](breaker_state from, breaker_state to, time_point at) { changes.push_back({from, to, at}); });
  }

  /// Records `failure_threshold` failures through `try_acquire`/`record_failure`.
  void trip() {
    for (std::uint32_t i = 0; i < config.failure_threshold; ++i) {
      REQUIRE(breaker->try_acquire());
      breaker->record_failure();
    }
    REQUIRE(breaker->state() == breaker_state::open);
  }
  /// Trips the breaker, waits out the open duration and takes the first trial permission.
  void to_half_open() {
    trip();
    clk.advance(config.open_duration);
    REQUIRE(breaker->try_acquire());
    REQUIRE(breaker->state() == breaker_state::half_open);
  }

  contract_config config;
  xsn::manual_clock clk;
  std::unique_ptr<xsn::circuit_breaker> breaker;
  std::vector<change> changes;
  xsn::breaker_subscription sub;
};

bool is_circuit_open(const std::system_error& e) { return e.code() == xsn::errc::circuit_open; }

/// An asynchronous operation that completes with `ec` (and `values...`) through `io`.
template <class... Values>
auto completes_with(boost::asio::io_context& io, int& started, std::error_code ec = {}, Values... values) {
  return [&io, &started, ec, values...](auto handler) {
    ++started;
    boost::asio::post(io, boost::asio::append(std::move(handler), ec, values...));
  };
}

const std::error_code some_error = std::make_error_code(std::errc::connection_refused);

}  // namespace

TEMPLATE_LIST_TEST_CASE("circuit_breaker contract: starts closed and admits calls", "[circuit_breaker][contract]",
                        implementations) {
  fixture<TestType> f;
  CHECK(f.breaker->state() == breaker_state::closed);
  const auto h = f.breaker->health();
  CHECK(h.state == breaker_state::closed);
  CHECK(h.consecutive_failures == 0);
  CHECK(h.last_transition == f.clk.now());
  for (int i = 0; i < 100; ++i) {
    REQUIRE(f.breaker->try_acquire());
    f.breaker->record_success();
  }
  CHECK(f.breaker->state() == breaker_state::closed);
  CHECK(f.changes.empty());
  CHECK(&f.breaker->clock() == &f.clk);
}

TEMPLATE_LIST_TEST_CASE("circuit_breaker contract: closed opens after the failure threshold",
                        "[circuit_breaker][contract]", implementations) {
  fixture<TestType> f;
  for (std::uint32_t i = 1; i < f.config.failure_threshold; ++i) {
    REQUIRE(f.breaker->try_acquire());
    f.breaker->record_failure();
    CHECK(f.breaker->state() == breaker_state::closed);
    CHECK(f.breaker->health().consecutive_failures == i);
  }
  f.clk.advance(5ms);
  REQUIRE(f.breaker->try_acquire());
  f.breaker->record_failure();
  CHECK(f.breaker->state() == breaker_state::open);
  const auto h = f.breaker->health();
  CHECK(h.state == breaker_state::open);
  CHECK(h.consecutive_failures == f.config.failure_threshold);
  CHECK(h.last_transition == f.clk.now());
  using change = typename fixture<TestType>::change;
  CHECK(f.changes == std::vector<change>{{breaker_state::closed, breaker_state::open, f.clk.now()}});
}

TEMPLATE_LIST_TEST_CASE("circuit_breaker contract: open rejects with circuit_open", "[circuit_breaker][contract]",
                        implementations) {
  fixture<TestType> f;
  f.trip();
  CHECK_FALSE(f.breaker->try_acquire());

  int calls = 0;
  // Throws for results other than std::error_code; `f` is not called.
  try {
    f.breaker->execute([&] { ++calls; });
    FAIL("execute did not throw");
  } catch (const std::system_error& e) {
    CHECK(is_circuit_open(e));
    CHECK(e.code().message() == "circuit breaker is open");
  }
  CHECK_THROWS_MATCHES(f.breaker->execute([&] { return ++calls; }), std::system_error,
                       Catch::Predicate<std::system_error>(is_circuit_open));
  // Returns the code for std::error_code results.
  const std::error_code ec = f.breaker->execute([&]() -> std::error_code {
    ++calls;
    return {};
  });
  CHECK(ec == xsn::errc::circuit_open);
  CHECK(calls == 0);
  CHECK(f.breaker->state() == breaker_state::open);
  CHECK(f.changes.size() == 1);  // rejections cause no transition
}

TEMPLATE_LIST_TEST_CASE("circuit_breaker contract: open moves to half-open after the open duration",
                        "[circuit_breaker][contract]", implementations) {
  fixture<TestType> f;
  f.trip();
  const auto opened = f.clk.now();
  f.clk.advance(f.config.open_duration - 1ns);
  CHECK_FALSE(f.breaker->try_acquire());
  CHECK(f.breaker->state() == breaker_state::open);
  f.clk.advance(1ns);
  CHECK(f.breaker->state() == breaker_state::open);  // lazily: on the next try_acquire
  f.clk.advance(7ms);
  REQUIRE(f.breaker->try_acquire());
  CHECK(f.breaker->state() == breaker_state::half_open);
  CHECK(f.breaker->health().last_transition == f.clk.now());
  using change = typename fixture<TestType>::change;
  CHECK(f.changes == std::vector<change>{{breaker_state::closed, breaker_state::open, opened},
                                         {breaker_state::open, breaker_state::half_open, f.clk.now()}});
}

TEMPLATE_LIST_TEST_CASE("circuit_breaker contract: a successful trial closes", "[circuit_breaker][contract]",
                        implementations) {
  fixture<TestType> f;
  f.to_half_open();
  f.breaker->record_success();
  CHECK(f.breaker->state() == breaker_state::closed);
  const auto h = f.breaker->health();
  CHECK(h.consecutive_failures == 0);
  CHECK(h.last_transition == f.clk.now());
  // Closed again: the failure count starts from zero.
  for (std::uint32_t i = 1; i < f.config.failure_threshold; ++i) {
    REQUIRE(f.breaker->try_acquire());
    f.breaker->record_failure();
  }
  CHECK(f.breaker->state() == breaker_state::closed);
  CHECK(f.changes.back().to == breaker_state::closed);
}

TEMPLATE_LIST_TEST_CASE("circuit_breaker contract: a failed trial re-opens for another open duration",
                        "[circuit_breaker][contract]", implementations) {
  fixture<TestType> f;
  f.to_half_open();
  f.clk.advance(1ms);
  f.breaker->record_failure();
  CHECK(f.breaker->state() == breaker_state::open);
  CHECK(f.breaker->health().last_transition == f.clk.now());
  f.clk.advance(f.config.open_duration - 1ns);
  CHECK_FALSE(f.breaker->try_acquire());
  f.clk.advance(1ns);
  CHECK(f.breaker->try_acquire());
  CHECK(f.breaker->state() == breaker_state::half_open);
}

TEMPLATE_LIST_TEST_CASE("circuit_breaker contract: half-open admits the permitted trial calls only",
                        "[circuit_breaker][contract]", implementations) {
  const std::uint32_t trials = GENERATE(1u, 2u, 3u);
  fixture<TestType> f({.failure_threshold = 2, .open_duration = 1s, .trial_calls = trials});
  f.to_half_open();  // takes the first trial
  for (std::uint32_t i = 1; i < trials; ++i) REQUIRE(f.breaker->try_acquire());
  CHECK_FALSE(f.breaker->try_acquire());
  CHECK_FALSE(f.breaker->try_acquire());
  // A trial given back frees its slot.
  f.breaker->release();
  CHECK(f.breaker->try_acquire());
  CHECK_FALSE(f.breaker->try_acquire());
  // All trials succeed: closed, and calls flow again.
  for (std::uint32_t i = 0; i < trials; ++i) {
    CHECK(f.breaker->state() == breaker_state::half_open);
    f.breaker->record_success();
  }
  CHECK(f.breaker->state() == breaker_state::closed);
  CHECK(f.breaker->try_acquire());
  f.breaker->record_success();
}

TEMPLATE_LIST_TEST_CASE("circuit_breaker contract: execute rejects beyond the trial calls",
                        "[circuit_breaker][contract]", implementations) {
  fixture<TestType> f;
  f.to_half_open();  // the only trial is taken
  int calls = 0;
  CHECK(f.breaker->execute([&]() -> std::error_code {
    ++calls;
    return {};
  }) == xsn::errc::circuit_open);
  CHECK(calls == 0);
  f.breaker->record_success();
  CHECK(f.breaker->state() == breaker_state::closed);
}

TEMPLATE_LIST_TEST_CASE("circuit_breaker contract: state changes are reported in order",
                        "[circuit_breaker][contract]", implementations) {
  fixture<TestType> f;
  using change = typename fixture<TestType>::change;
  std::vector<change> expected;
  f.trip();
  expected.push_back({breaker_state::closed, breaker_state::open, f.clk.now()});
  f.clk.advance(f.config.open_duration);
  REQUIRE(f.breaker->try_acquire());
  expected.push_back({breaker_state::open, breaker_state::half_open, f.clk.now()});
  f.clk.advance(3ms);
  f.breaker->record_failure();
  expected.push_back({breaker_state::half_open, breaker_state::open, f.clk.now()});
  f.clk.advance(f.config.open_duration);
  REQUIRE(f.breaker->try_acquire());
  expected.push_back({breaker_state::open, breaker_state::half_open, f.clk.now()});
  f.clk.advance(2ms);
  f.breaker->record_success();
  expected.push_back({breaker_state::half_open, breaker_state::closed, f.clk.now()});
  CHECK(f.changes == expected);

  // A second listener sees later changes; a reset subscription sees nothing more.
  std::vector<breaker_state> second;
  auto sub2 = f.breaker->on_state_change([&](breaker_state, breaker_state to, time_point) { second.push_back(to); });
  CHECK(static_cast<bool>(sub2));
  f.sub.reset();
  CHECK_FALSE(static_cast<bool>(f.sub));
  f.trip();
  CHECK(second == std::vector<breaker_state>{breaker_state::open});
  CHECK(f.changes == expected);
}

TEMPLATE_LIST_TEST_CASE("circuit_breaker contract: listeners may call the breaker", "[circuit_breaker][contract]",
                        implementations) {
  fixture<TestType> f;
  std::vector<std::pair<breaker_state, breaker_state>> seen;
  std::optional<xsn::breaker_subscription> self;
  self = f.breaker->on_state_change([&](breaker_state from, breaker_state to, time_point) {
    seen.emplace_back(from, to);
    CHECK(f.breaker->state() == to);  // not under the lock: reading is fine
    (void)f.breaker->health();
    if (to == breaker_state::half_open) {
      f.breaker->record_failure();  // re-opens; delivered after this listener returns
      CHECK(f.breaker->state() == breaker_state::open);
      self.reset();                 // unsubscribing from inside the listener
    }
  });
  f.trip();
  f.clk.advance(f.config.open_duration);
  REQUIRE(f.breaker->try_acquire());  // half-open; the listener re-opens it
  CHECK(seen == std::vector<std::pair<breaker_state, breaker_state>>{
                    {breaker_state::closed, breaker_state::open}, {breaker_state::open, breaker_state::half_open}});
  CHECK(f.breaker->state() == breaker_state::open);
  // The fixture's listener saw all three, in order.
  REQUIRE(f.changes.size() == 3);
  CHECK(f.changes[2].from == breaker_state::half_open);
  CHECK(f.changes[2].to == breaker_state::open);
}

TEMPLATE_LIST_TEST_CASE("circuit_breaker contract: a subscription may outlive its breaker",
                        "[circuit_breaker][contract]", implementations) {
  xsn::manual_clock clk;
  xsn::breaker_subscription sub;
  {
    auto b = TestType::make(clk, {});
    sub = b->on_state_change([](breaker_state, breaker_state, time_point) {});
    CHECK(static_cast<bool>(sub));
  }
  sub.reset();  // the breaker is gone: nothing to do, no crash
  CHECK_FALSE(static_cast<bool>(sub));
  xsn::breaker_subscription moved = std::move(sub);
  CHECK_FALSE(static_cast<bool>(moved));
}

TEMPLATE_LIST_TEST_CASE("circuit_breaker contract: execute records exceptions as failures",
                        "[circuit_breaker][contract]", implementations) {
  fixture<TestType> f;
  for (std::uint32_t i = 0; i < f.config.failure_threshold; ++i) {
    CHECK_THROWS_AS(f.breaker->execute([]() -> int { throw std::runtime_error("down"); }), std::runtime_error);
  }
  CHECK(f.breaker->state() == breaker_state::open);
}

TEMPLATE_LIST_TEST_CASE("circuit_breaker contract: execute records error codes and false as failures",
                        "[circuit_breaker][contract]", implementations) {
  SECTION("std::error_code") {
    fixture<TestType> f;
    for (std::uint32_t i = 0; i < f.config.failure_threshold; ++i) {
      CHECK(f.breaker->execute([] { return some_error; }) == some_error);  // returned unchanged
    }
    CHECK(f.breaker->state() == breaker_state::open);
  }
  SECTION("bool") {
    fixture<TestType> f;
    for (std::uint32_t i = 0; i < f.config.failure_threshold; ++i) CHECK_FALSE(f.breaker->execute([] { return false; }));
    CHECK(f.breaker->state() == breaker_state::open);
  }
  SECTION("successes: void, values, a zero error code, true") {
    fixture<TestType> f;
    for (int i = 0; i < 10; ++i) {
      int calls = 0;
      f.breaker->execute([&] { ++calls; });
      CHECK(f.breaker->execute([] { return std::string("x"); }) == "x");
      CHECK_FALSE(f.breaker->execute([] { return std::error_code{}; }));
      CHECK(f.breaker->execute([] { return true; }));
      CHECK(calls == 1);
    }
    CHECK(f.breaker->state() == breaker_state::closed);
    CHECK(f.breaker->health().consecutive_failures == 0);
  }
  SECTION("a trial through execute closes or re-opens") {
    fixture<TestType> f;
    f.trip();
    f.clk.advance(f.config.open_duration);
    CHECK_FALSE(f.breaker->execute([] { return some_error; }) == xsn::errc::circuit_open);
    CHECK(f.breaker->state() == breaker_state::open);
    f.clk.advance(f.config.open_duration);
    CHECK(f.breaker->execute([] { return 42; }) == 42);
    CHECK(f.breaker->state() == breaker_state::closed);
  }
}

TEMPLATE_LIST_TEST_CASE("circuit_breaker contract: execute returns references and move-only values",
                        "[circuit_breaker][contract]", implementations) {
  fixture<TestType> f;
  int x = 1;
  int& r = f.breaker->execute([&]() -> int& { return x; });
  CHECK(&r == &x);
  auto p = f.breaker->execute([] { return std::make_unique<int>(7); });
  REQUIRE(p);
  CHECK(*p == 7);
}

TEMPLATE_LIST_TEST_CASE("circuit_breaker contract: a late outcome of an older trial is ignored",
                        "[circuit_breaker][contract]", implementations) {
  fixture<TestType> f({.failure_threshold = 1, .open_duration = 1s, .trial_calls = 2});
  boost::asio::io_context io;
  int started = 0;
  f.trip();
  f.clk.advance(1s);
  // Trial A (async, completes later with success) and trial B (fails now): re-opens.
  std::optional<std::error_code> a_result;
  f.breaker->async_execute(completes_with(io, started), [&](std::error_code ec) { a_result = ec; });
  REQUIRE(f.breaker->state() == breaker_state::half_open);
  REQUIRE(started == 1);
  CHECK(f.breaker->execute([] { return some_error; }) == some_error);
  REQUIRE(f.breaker->state() == breaker_state::open);
  // Next half-open; then A's success arrives: it belongs to the old trial round and must not
  // count toward closing this one.
  f.clk.advance(1s);
  REQUIRE(f.breaker->try_acquire());
  REQUIRE(f.breaker->state() == breaker_state::half_open);
  io.run();
  REQUIRE(a_result.has_value());
  CHECK_FALSE(*a_result);
  f.breaker->record_success();  // one of two trials of this round
  CHECK(f.breaker->state() == breaker_state::half_open);
  CHECK(f.breaker->try_acquire());
  f.breaker->record_success();
  CHECK(f.breaker->state() == breaker_state::closed);
}

TEMPLATE_LIST_TEST_CASE("circuit_breaker contract: async_execute with a callback", "[circuit_breaker][contract]",
                        implementations) {
  fixture<TestType> f;
  boost::asio::io_context io;
  int started = 0;
  std::vector<std::error_code> results;
  auto collect = [&](std::error_code ec) { results.push_back(ec); };

  SECTION("successes and failures are recorded; the operation's code is passed through") {
    f.breaker->async_execute(completes_with(io, started, std::error_code{}), collect);
    for (std::uint32_t i = 0; i < f.config.failure_threshold; ++i) {
      f.breaker->async_execute(completes_with(io, started, some_error), collect);
    }
    CHECK(started == static_cast<int>(f.config.failure_threshold) + 1);
    CHECK(results.empty());
    CHECK(f.breaker->state() == breaker_state::closed);  // outcomes are recorded at completion
    io.run();
    REQUIRE(results.size() == f.config.failure_threshold + 1);
    CHECK_FALSE(results[0]);
    CHECK(results[1] == some_error);
    CHECK(f.breaker->state() == breaker_state::open);
  }
  SECTION("open: completes with circuit_open, posted, without starting the operation") {
    f.trip();
    f.breaker->async_execute(io.get_executor(), completes_with(io, started), collect);
    f.breaker->async_execute(completes_with(io, started), boost::asio::bind_executor(io, collect));
    CHECK(results.empty());  // never inline
    io.run();
    CHECK(started == 0);
    CHECK(results == std::vector<std::error_code>{xsn::errc::circuit_open, xsn::errc::circuit_open});
  }
  SECTION("a value signature: void(std::error_code, int)") {
    std::vector<std::pair<std::error_code, int>> values;
    auto collect_value = [&](std::error_code ec, int v) { values.emplace_back(ec, v); };
    f.breaker->template async_execute<void(std::error_code, int)>(completes_with(io, started, std::error_code{}, 5),
                                                                  collect_value);
    io.run();
    io.restart();
    f.trip();
    f.breaker->template async_execute<void(std::error_code, int)>(
        io.get_executor(), completes_with(io, started, std::error_code{}, 6), collect_value);
    io.run();
    CHECK(values == std::vector<std::pair<std::error_code, int>>{{{}, 5}, {xsn::errc::circuit_open, 0}});
  }
  SECTION("an abandoned operation gives its trial back") {
    f.to_half_open();
    f.breaker->release();  // the fixture's own trial
    // The operation drops its handler without calling it.
    f.breaker->async_execute([&](auto handler) { ++started; (void)handler; }, collect);
    CHECK(started == 1);
    CHECK(f.breaker->try_acquire());  // the slot is free again
    f.breaker->record_success();
    CHECK(f.breaker->state() == breaker_state::closed);
    CHECK(results.empty());
  }
  SECTION("an operation that throws when started gives its permission back") {
    f.to_half_open();
    f.breaker->release();
    CHECK_THROWS_AS(f.breaker->async_execute([](auto) { throw std::runtime_error("cannot start"); }, collect),
                    std::runtime_error);
    CHECK(f.breaker->state() == breaker_state::half_open);
    CHECK(f.breaker->try_acquire());
  }
}

TEMPLATE_LIST_TEST_CASE("circuit_breaker contract: async_execute with use_future", "[circuit_breaker][contract]",
                        implementations) {
  fixture<TestType> f;
  boost::asio::io_context io;
  int started = 0;

  // Boost.Asio's use_future throws for a boost::system::error_code, and hands a std::error_code
  // over as a value.
  auto ok = f.breaker->async_execute(completes_with(io, started, std::error_code{}), boost::asio::use_future);
  auto fails = f.breaker->async_execute(completes_with(io, started, some_error), boost::asio::use_future);
  auto value = f.breaker->template async_execute<void(std::error_code, int)>(
      completes_with(io, started, std::error_code{}, 9), boost::asio::use_future);
  io.run();
  CHECK_FALSE(ok.get());
  CHECK(fails.get() == some_error);
  CHECK(value.get() == std::tuple<std::error_code, int>{std::error_code{}, 9});
  CHECK(f.breaker->health().consecutive_failures == 0);  // the success after the failure reset it

  f.trip();
  auto rejected = f.breaker->async_execute(io.get_executor(), completes_with(io, started), boost::asio::use_future);
  // An executor bound to the token: the rejection runs there.
  auto rejected_boost = f.breaker->template async_execute<void(boost::system::error_code)>(
      completes_with(io, started), boost::asio::bind_executor(io, boost::asio::use_future));
  io.restart();
  io.run();
  CHECK(rejected.get() == xsn::errc::circuit_open);
  try {
    rejected_boost.get();
    FAIL("no exception");
  } catch (const boost::system::system_error& e) {
    CHECK(std::error_code(e.code()) == xsn::errc::circuit_open);
  }
  CHECK(started == 3);
}

TEMPLATE_LIST_TEST_CASE("circuit_breaker contract: a rejection without any executor runs on the system executor",
                        "[circuit_breaker][contract]", implementations) {
  fixture<TestType> f;
  boost::asio::io_context io;
  int started = 0;
  f.trip();
  std::promise<std::pair<std::error_code, std::thread::id>> got;
  f.breaker->async_execute(completes_with(io, started),
                           [&](std::error_code ec) { got.set_value({ec, std::this_thread::get_id()}); });
  const auto [ec, thread] = got.get_future().get();
  CHECK(ec == xsn::errc::circuit_open);
  CHECK(thread != std::this_thread::get_id());
  CHECK(started == 0);
}

TEMPLATE_LIST_TEST_CASE("circuit_breaker contract: async_execute around a Boost.Asio operation",
                        "[circuit_breaker][contract]", implementations) {
  fixture<TestType> f;
  boost::asio::io_context io;
  boost::asio::steady_timer timer(io);
  std::vector<boost::system::error_code> results;
  auto wait = [&](auto handler) { timer.async_wait(std::move(handler)); };
  auto collect = [&](boost::system::error_code ec) { results.push_back(ec); };

  timer.expires_after(0s);  // already expired: completes with success
  f.breaker->template async_execute<void(boost::system::error_code)>(wait, collect);
  io.run();
  REQUIRE(results.size() == 1);
  CHECK_FALSE(results[0]);

  // Cancelled operations count as failures.
  for (std::uint32_t i = 0; i < f.config.failure_threshold; ++i) {
    timer.expires_after(1h);
    f.breaker->template async_execute<void(boost::system::error_code)>(wait, collect);
    timer.cancel();
    io.restart();
    io.run();
  }
  REQUIRE(results.size() == f.config.failure_threshold + 1);
  CHECK(results.back() == boost::asio::error::operation_aborted);
  CHECK(f.breaker->state() == breaker_state::open);

  f.breaker->template async_execute<void(boost::system::error_code)>(io.get_executor(), wait, collect);
  io.restart();
  io.run();
  CHECK(std::error_code(results.back()) == xsn::errc::circuit_open);
}

// ---- the policy hooks, through the test-only window policy ----

TEST_CASE("circuit_breaker policy hooks: measured durations and slow calls", "[circuit_breaker]") {
  xsn::manual_clock clk;
  window_breaker b(clk, {.window = 4, .rate_percent = 50, .open_duration = 1s, .slow_call = 100ms});
  b.execute([&] { clk.advance(30ms); });   // fast: success
  b.execute([&] { clk.advance(150ms); });  // slow: a failure
  CHECK(b.state() == breaker_state::closed);
  b.execute([] {});
  CHECK(b.state() == breaker_state::closed);
  CHECK(b.execute([&] {
    clk.advance(100ms);
    return 1;
  }) == 1);  // slow again: 2 of the last 4 calls failed
  CHECK(b.state() == breaker_state::open);
  CHECK(b.durations == std::vector<xsn::clock::duration>{30ms, 150ms, 0ms, 100ms});
  // By hand, with and without a duration.
  clk.advance(1s);
  REQUIRE(b.try_acquire());
  b.record_success(5ms);
  CHECK(b.state() == breaker_state::closed);
  CHECK(b.durations.back() == 5ms);
}

TEST_CASE("circuit_breaker policy hooks: a breaker restored from persisted state", "[circuit_breaker]") {
  xsn::manual_clock clk;
  clk.advance(1h);
  const auto opened = clk.now() - 4s;
  window_breaker b(clk, {.open_duration = 10s}, breaker_state::open, opened);
  std::vector<breaker_state> to;
  auto sub = b.on_state_change([&](breaker_state, breaker_state t, time_point) { to.push_back(t); });
  CHECK(b.state() == breaker_state::open);
  CHECK(b.health().last_transition == opened);
  CHECK_FALSE(b.try_acquire());
  clk.advance(6s);
  CHECK(b.try_acquire());
  b.record_success();
  CHECK(b.state() == breaker_state::closed);
  CHECK(to == std::vector<breaker_state>{breaker_state::half_open, breaker_state::closed});  // restore: no event
}
