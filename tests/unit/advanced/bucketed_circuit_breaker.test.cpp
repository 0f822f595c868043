// The sliding-window breaker: windows, rates, minimum calls, slow calls, backoff and jitter, and
// the state shared through a memory_state_store. Time is a manual clock; the store's completions
// and watch callbacks run on an io_context run by the test thread.
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>
#include <xsn/advanced/bucketed_circuit_breaker.hpp>
#include <xsn/core/clock.hpp>
#include <xsn/core/errors.hpp>
#include <xsn/store/memory_state_store.hpp>

#include "catch.hpp"

using namespace std::chrono_literals;
using xsn::breaker_state;
using xsn::advanced::bucketed_breaker_options;
using xsn::advanced::bucketed_circuit_breaker;
using xsn::advanced::window_kind;
using time_point = xsn::clock::time_point;

namespace {

/// Options without backoff or jitter, so open durations are exact.
bucketed_breaker_options plain(window_kind kind, std::uint32_t size, std::uint32_t minimum, double rate) {
  bucketed_breaker_options o;
  o.window = kind;
  o.window_size = size;
  o.bucket_duration = 1s;
  o.minimum_calls = minimum;
  o.failure_rate_threshold = rate;
  o.half_open_permitted_calls = 1;
  o.open_duration = 10s;
  o.backoff_multiplier = 1;
  o.max_open_duration = 10s;
  o.jitter = 0;
  return o;
}

void succeed(xsn::circuit_breaker& b) {
  REQUIRE(b.try_acquire());
  b.record_success();
}
void fail(xsn::circuit_breaker& b) {
  REQUIRE(b.try_acquire());
  b.record_failure();
}

/// Takes the first trial of a breaker whose open period has passed.
void to_half_open(bucketed_circuit_breaker& b, xsn::manual_clock& clk) {
  clk.advance_to(b.open_until());
  REQUIRE(b.try_acquire());
  REQUIRE(b.state() == breaker_state::half_open);
}

std::string message_of(const bucketed_breaker_options& o) {
  xsn::manual_clock clk;
  try {
    bucketed_circuit_breaker b(clk, o);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "(accepted)";
}

}  // namespace

TEST_CASE("bucketed_circuit_breaker: rates across time buckets", "[bucketed_circuit_breaker]") {
  xsn::manual_clock clk;
  bucketed_circuit_breaker b(clk, plain(window_kind::time_based, 3, 4, 50));
  succeed(b);
  succeed(b);
  clk.advance(1s);
  fail(b);  // 3 calls: under the minimum
  CHECK(b.state() == breaker_state::closed);
  clk.advance(1s);
  auto w = b.window();
  CHECK(w.calls == 3);
  CHECK(w.failures == 1);
  fail(b);  // 4 calls over three buckets, 2 failed: 50 %
  CHECK(b.state() == breaker_state::open);
  CHECK(b.health().consecutive_failures == 2);
}

TEST_CASE("bucketed_circuit_breaker: buckets rotate out with the clock", "[bucketed_circuit_breaker]") {
  xsn::manual_clock clk;
  bucketed_circuit_breaker b(clk, plain(window_kind::time_based, 2, 3, 60));
  fail(b);
  fail(b);  // 2 of 2 failed, under the minimum of 3
  CHECK(b.window().failures == 2);
  clk.advance(1s);
  CHECK(b.window().calls == 2);  // still in the 2-second window
  clk.advance(1s);
  CHECK(b.window().calls == 0);  // bucket 0 left the window
  succeed(b);
  succeed(b);
  fail(b);  // 1 of 3: below 60 %; the old failures no longer count
  CHECK(b.state() == breaker_state::closed);
  auto w = b.window();
  CHECK(w.calls == 3);
  CHECK(w.failures == 1);
  // A long idle period empties the whole window.
  clk.advance(1h);
  CHECK(b.window().calls == 0);
  fail(b);
  fail(b);
  CHECK(b.state() == breaker_state::closed);
  fail(b);  // 3 of 3 in the current bucket
  CHECK(b.state() == breaker_state::open);
}

TEST_CASE("bucketed_circuit_breaker: count-based window slides call by call", "[bucketed_circuit_breaker]") {
  xsn::manual_clock clk;
  bucketed_circuit_breaker b(clk, plain(window_kind::count_based, 4, 4, 75));
  fail(b);
  fail(b);
  succeed(b);
  succeed(b);  // F F S S: 50 %
  CHECK(b.window().failures == 2);
  fail(b);  // F S S F: 50 % (the first failure slid out)
  CHECK(b.state() == breaker_state::closed);
  CHECK(b.window().calls == 4);
  CHECK(b.window().failures == 2);
  fail(b);  // S S F F
  CHECK(b.state() == breaker_state::closed);
  fail(b);  // S F F F: 75 %
  CHECK(b.state() == breaker_state::open);
}

TEST_CASE("bucketed_circuit_breaker: rates count only from the minimum number of calls", "[bucketed_circuit_breaker]") {
  xsn::manual_clock clk;
  SECTION("count-based: the call reaching the minimum decides, even a success") {
    bucketed_circuit_breaker b(clk, plain(window_kind::count_based, 10, 5, 50));
    for (int i = 0; i < 4; ++i) fail(b);
    CHECK(b.state() == breaker_state::closed);  // 100 % of 4 calls: not enough calls
    succeed(b);                                 // 4 of 5
    CHECK(b.state() == breaker_state::open);
  }
  SECTION("time-based: likewise") {
    bucketed_circuit_breaker b(clk, plain(window_kind::time_based, 4, 3, 60));
    fail(b);
    clk.advance(1s);
    fail(b);
    CHECK(b.state() == breaker_state::closed);
    succeed(b);  // 2 of 3
    CHECK(b.state() == breaker_state::open);
  }
  SECTION("successes alone never open") {
    bucketed_circuit_breaker b(clk, plain(window_kind::time_based, 4, 3, 60));
    for (int i = 0; i < 100; ++i) succeed(b);
    CHECK(b.state() == breaker_state::closed);
    CHECK(b.window().calls == 100);
  }
}

TEST_CASE("bucketed_circuit_breaker: slow calls", "[bucketed_circuit_breaker]") {
  xsn::manual_clock clk;
  auto o = plain(window_kind::count_based, 4, 4, 100);
  o.slow_call_duration = 100ms;
  o.slow_call_rate_threshold = 50;
  bucketed_circuit_breaker b(clk, o);
  b.execute([&] { clk.advance(150ms); });  // slow success
  b.execute([&] { clk.advance(10ms); });
  CHECK(b.execute([&] {
    clk.advance(100ms);  // exactly the threshold: slow
    return std::error_code{};
  }) == std::error_code{});
  CHECK(b.state() == breaker_state::closed);
  auto w = b.window();
  CHECK(w.slow_calls == 2);
  CHECK(w.failures == 0);
  b.execute([] {});  // 2 of 4 slow
  CHECK(b.state() == breaker_state::open);

  SECTION("a slow trial fails in half-open") {
    to_half_open(b, clk);
    b.release();
    b.execute([&] { clk.advance(200ms); });
    CHECK(b.state() == breaker_state::open);
  }
  SECTION("a fast trial closes, recorded by hand with its duration") {
    to_half_open(b, clk);
    b.record_success(5ms);
    CHECK(b.state() == breaker_state::closed);
    CHECK(b.window().calls == 0);  // closing empties the window
  }
}

TEST_CASE("bucketed_circuit_breaker: half-open closes after the successes it needs", "[bucketed_circuit_breaker]") {
  xsn::manual_clock clk;
  auto o = plain(window_kind::count_based, 2, 2, 100);
  o.half_open_permitted_calls = 4;
  o.half_open_successes_to_close = 2;
  bucketed_circuit_breaker b(clk, o);
  fail(b);
  fail(b);
  to_half_open(b, clk);
  for (int i = 1; i < 4; ++i) REQUIRE(b.try_acquire());
  CHECK_FALSE(b.try_acquire());
  b.record_failure();
  b.record_failure();  // 2 of 4 failed: 2 successes are still possible
  CHECK(b.state() == breaker_state::half_open);
  SECTION("a third failure makes closing impossible") {
    b.record_failure();
    CHECK(b.state() == breaker_state::open);
  }
  SECTION("two successes close") {
    b.record_success();
    CHECK(b.state() == breaker_state::half_open);
    b.record_success();
    CHECK(b.state() == breaker_state::closed);
  }
}

TEST_CASE("bucketed_circuit_breaker: exponential backoff grows and is capped", "[bucketed_circuit_breaker]") {
  xsn::manual_clock clk;
  auto o = plain(window_kind::count_based, 1, 1, 100);
  o.open_duration = 1s;
  o.backoff_multiplier = 2;
  o.max_open_duration = 5s;
  bucketed_circuit_breaker b(clk, o);
  std::vector<xsn::clock::duration> durations;
  fail(b);
  durations.push_back(b.open_until() - clk.now());
  for (int i = 0; i < 4; ++i) {
    to_half_open(b, clk);
    b.record_failure();
    durations.push_back(b.open_until() - clk.now());
  }
  CHECK(durations == std::vector<xsn::clock::duration>{1s, 2s, 4s, 5s, 5s});
  CHECK(b.open_attempts() == 5);
  // Closing resets the backoff.
  to_half_open(b, clk);
  b.record_success();
  CHECK(b.open_attempts() == 0);
  fail(b);
  CHECK(b.open_until() - clk.now() == 1s);
}

TEST_CASE("bucketed_circuit_breaker: jitter stays in bounds and follows the seeded generator",
          "[bucketed_circuit_breaker]") {
  auto run = [](std::uint64_t seed) {
    xsn::manual_clock clk;
    auto o = plain(window_kind::count_based, 1, 1, 100);
    o.open_duration = 10s;
    o.max_open_duration = 10s;
    o.jitter = 0.25;
    o.random = [gen = std::mt19937_64(seed)]() mutable { return gen(); };
    bucketed_circuit_breaker b(clk, o);
    std::vector<xsn::clock::duration> durations;
    fail(b);
    for (int i = 0; i < 50; ++i) {
      durations.push_back(b.open_until() - clk.now());
      to_half_open(b, clk);
      b.record_failure();
    }
    return durations;
  };
  const auto a = run(42);
  for (auto d : a) {
    CHECK(d >= 7500ms);
    CHECK(d <= 12500ms);
  }
  CHECK(std::set<xsn::clock::duration>(a.begin(), a.end()).size() > 40);  // spread, not constant
  CHECK(run(42) == a);                                                    // deterministic
  CHECK(run(43) != a);
}

TEST_CASE("bucketed_circuit_breaker: invalid options are rejected with a clear error", "[bucketed_circuit_breaker]") {
  auto base = [] { return plain(window_kind::count_based, 10, 5, 50); };
  auto expect = [](const bucketed_breaker_options& o, const std::string& field) {
    const auto msg = message_of(o);
    INFO(msg);
    CHECK(msg.find("bucketed_circuit_breaker: ") == 0);
    CHECK(msg.find(field) != std::string::npos);
  };
  CHECK(message_of(base()) == "(accepted)");
  CHECK(message_of(bucketed_breaker_options{}) == "(accepted)");
  auto o = base();
  o.window_size = 0;
  expect(o, "window_size");
  o = base();
  o.window_size = (1u << 20) + 1;
  o.minimum_calls = 1;
  expect(o, "window_size");
  o = plain(window_kind::time_based, 2000, 1, 50);
  expect(o, "window_size");
  o = plain(window_kind::time_based, 10, 1, 50);
  o.bucket_duration = 0s;
  expect(o, "bucket_duration");
  o = base();
  o.minimum_calls = 0;
  expect(o, "minimum_calls");
  o = base();
  o.minimum_calls = 11;
  expect(o, "minimum_calls");
  for (double bad : {0.0, -1.0, 100.5, std::nan("")}) {
    o = base();
    o.failure_rate_threshold = bad;
    expect(o, "failure_rate_threshold");
    o = base();
    o.slow_call_rate_threshold = bad;
    expect(o, "slow_call_rate_threshold");
  }
  o = base();
  o.slow_call_duration = 0s;
  expect(o, "slow_call_duration");
  o = base();
  o.half_open_permitted_calls = 0;
  o.half_open_successes_to_close = 0;
  expect(o, "half_open_permitted_calls");
  o = base();
  o.half_open_successes_to_close = 2;
  expect(o, "half_open_successes_to_close");
  o = base();
  o.open_duration = -1s;
  expect(o, "open_duration");
  o = base();
  o.backoff_multiplier = 0.5;
  expect(o, "backoff_multiplier");
  o = base();
  o.max_open_duration = 1s;
  expect(o, "max_open_duration");
  for (double bad : {-0.1, 1.0, std::nan("")}) {
    o = base();
    o.jitter = bad;
    expect(o, "jitter");
  }
  o = base();
  o.store_key = "k";
  expect(o, "store_key");
}

// ---- sharing through a state store ----

namespace {

/// Two or more breakers on one memory store, with a manual clock and an io_context.
struct shared_fixture {
  shared_fixture() { clk.advance(1h); }

  bucketed_breaker_options options(std::string key = "breakers/payments") {
    auto o = plain(window_kind::count_based, 2, 2, 100);
    o.store = store;
    o.store_key = std::move(key);
    return o;
  }
  /// Runs every pending completion and watch callback.
  void settle() {
    io.restart();
    io.run();
  }
  // Callbacks rather than use_future: GCC's -Wmaybe-uninitialized misfires on Boost's use_future at -O1.
  std::optional<xsn::stored_value> stored(const std::string& key = "breakers/payments") {
    std::error_code ec = xsn::errc::not_running;
    std::optional<xsn::stored_value> got;
    store->async_get(key, [&](std::error_code e, std::optional<xsn::stored_value> v) {
      ec = e;
      got = std::move(v);
    });
    settle();
    REQUIRE_FALSE(ec);
    return got;
  }
  void put(const std::string& value, const std::string& key = "breakers/payments") {
    std::error_code ec = xsn::errc::not_running;
    store->async_put(key, value, [&](std::error_code e, xsn::store_version) { ec = e; });
    settle();
    REQUIRE_FALSE(ec);
  }

  xsn::manual_clock clk;
  boost::asio::io_context io;
  std::shared_ptr<xsn::memory_state_store> store = std::make_shared<xsn::memory_state_store>(io.get_executor(), clk);
};

}  // namespace

TEST_CASE("bucketed_circuit_breaker: two breakers share open and close through the store",
          "[bucketed_circuit_breaker][store]") {
  shared_fixture f;
  bucketed_circuit_breaker a(f.clk, f.options());
  bucketed_circuit_breaker b(f.clk, f.options());
  std::vector<std::pair<breaker_state, breaker_state>> b_changes;
  auto sub =
      b.on_state_change([&](breaker_state from, breaker_state to, time_point) { b_changes.emplace_back(from, to); });
  f.settle();

  fail(a);
  fail(a);
  REQUIRE(a.state() == breaker_state::open);
  CHECK(b.state() == breaker_state::closed);  // not yet: the store has not told it
  f.clk.advance(3s);
  f.settle();
  CHECK(b.state() == breaker_state::open);
  // Open for the remaining duration A published, from when B learnt it.
  CHECK(b.open_until() == f.clk.now() + 10s);
  CHECK_FALSE(b.try_acquire());
  CHECK(b_changes ==
        std::vector<std::pair<breaker_state, breaker_state>>{{breaker_state::closed, breaker_state::open}});
  CHECK(a.sharing().published == 1);
  CHECK(b.sharing().applied == 1);
  CHECK(a.sharing().version == b.sharing().version);
  auto v = f.stored();
  REQUIRE(v);
  CHECK(v->value.find("\"state\":\"open\"") != std::string::npos);
  REQUIRE(v->expires_at);  // an open record lives as long as the open period
  CHECK(*v->expires_at == a.open_until());

  // A probes and closes: B closes too.
  f.clk.advance_to(a.open_until());
  REQUIRE(a.try_acquire());
  a.record_success();
  REQUIRE(a.state() == breaker_state::closed);
  f.settle();
  CHECK(b.state() == breaker_state::closed);
  CHECK(b_changes.back() == std::pair{breaker_state::open, breaker_state::closed});
  CHECK(b.window().calls == 0);

  // B opens now: A follows.
  fail(b);
  fail(b);
  f.settle();
  CHECK(a.state() == breaker_state::open);
  CHECK(a.sharing().applied == 1);  // B's opening (its own transitions are not "applied")
  CHECK(a.sharing().malformed == 0);
  CHECK(a.sharing().store_errors == 0);
}

TEST_CASE("bucketed_circuit_breaker: a new breaker starts from the stored state", "[bucketed_circuit_breaker][store]") {
  shared_fixture f;
  bucketed_circuit_breaker a(f.clk, f.options());
  f.settle();
  fail(a);
  fail(a);
  f.settle();
  bucketed_circuit_breaker late(f.clk, f.options());
  CHECK(late.state() == breaker_state::closed);
  f.settle();
  CHECK(late.state() == breaker_state::open);
  CHECK(late.sharing().version == a.sharing().version);
}

TEST_CASE("bucketed_circuit_breaker: concurrent openings agree on one record", "[bucketed_circuit_breaker][store]") {
  shared_fixture f;
  bucketed_circuit_breaker a(f.clk, f.options());
  bucketed_circuit_breaker b(f.clk, f.options());
  f.settle();
  fail(a);
  fail(a);
  fail(b);
  fail(b);  // both open before either heard of the other
  f.settle();
  CHECK(a.state() == breaker_state::open);
  CHECK(b.state() == breaker_state::open);
  CHECK(a.sharing().published + b.sharing().published == 1);  // the loser adopted the winner's
  CHECK(a.sharing().store_errors + b.sharing().store_errors == 0);
}

TEST_CASE("bucketed_circuit_breaker: an opening wins over a concurrent closing", "[bucketed_circuit_breaker][store]") {
  shared_fixture f;
  auto o = f.options();
  o.backoff_multiplier = 2;
  o.max_open_duration = 1min;
  bucketed_circuit_breaker a(f.clk, o);
  bucketed_circuit_breaker b(f.clk, o);
  f.settle();
  fail(a);
  fail(a);
  f.settle();
  REQUIRE(b.state() == breaker_state::open);
  f.clk.advance(10s);
  REQUIRE(a.try_acquire());
  REQUIRE(b.try_acquire());
  a.record_success();  // A closes...
  b.record_failure();  // ...while B re-opens, before either heard of the other
  f.settle();
  CHECK(b.state() == breaker_state::open);
  CHECK(a.state() == breaker_state::open);
  CHECK(a.open_attempts() == 2);  // B's backoff level came with it
  auto v = f.stored();
  REQUIRE(v);
  CHECK(v->value.find("\"state\":\"open\"") != std::string::npos);
}

TEST_CASE("bucketed_circuit_breaker: malformed shared state is ignored, counted and overwritten",
          "[bucketed_circuit_breaker][store]") {
  shared_fixture f;
  const std::string junk =
      GENERATE(std::string("not json {"), std::string("[1,2]"), std::string("{}"),
               std::string(R"({"v":1,"state":"ajar","attempt":0,"open_for_ns":1,"writer":"0000000000000001"})"),
               std::string(R"({"v":1,"state":"open","attempt":-1,"open_for_ns":1,"writer":"0000000000000001"})"),
               std::string(R"({"v":1,"state":"open","attempt":0,"open_for_ns":-5,"writer":"0000000000000001"})"),
               std::string(R"({"v":1,"state":"open","attempt":0,"open_for_ns":"x","writer":"0000000000000001"})"),
               std::string(R"({"v":2,"state":"open","attempt":0,"open_for_ns":1,"writer":"0000000000000001"})"),
               std::string(R"({"v":1,"state":"open","attempt":0,"open_for_ns":1})"), std::string("\x00\xff\xfe", 3),
               std::string());
  INFO(junk);
  bucketed_circuit_breaker b(f.clk, f.options());
  f.settle();
  f.put(junk);  // through the watch
  CHECK(b.state() == breaker_state::closed);
  auto s = b.sharing();
  CHECK(s.malformed == 1);
  CHECK(s.last_error.find("malformed") != std::string::npos);
  // Read at construction, too.
  bucketed_circuit_breaker late(f.clk, f.options());
  f.settle();
  CHECK(late.state() == breaker_state::closed);
  CHECK(late.sharing().malformed == 1);
  // The breaker still works and replaces the junk with its own record.
  fail(b);
  fail(b);
  f.settle();
  CHECK(b.sharing().published == 1);
  CHECK(late.state() == breaker_state::open);
  auto v = f.stored();
  REQUIRE(v);
  CHECK(v->value.find("\"state\":\"open\"") != std::string::npos);
}

TEST_CASE("bucketed_circuit_breaker: a stored open duration is bounded by max_open_duration",
          "[bucketed_circuit_breaker][store]") {
  shared_fixture f;
  bucketed_circuit_breaker b(f.clk, f.options());
  f.settle();
  f.put(R"({"v":1,"state":"open","attempt":1000000,"open_for_ns":9000000000000000000,"writer":"00000000000000ab"})");
  CHECK(b.state() == breaker_state::open);
  CHECK(b.open_until() == f.clk.now() + b.options().max_open_duration);
  CHECK(b.open_attempts() == 64);
}

TEST_CASE("bucketed_circuit_breaker: store completions after the breaker is gone do nothing",
          "[bucketed_circuit_breaker][store]") {
  shared_fixture f;
  bucketed_circuit_breaker a(f.clk, f.options());
  {
    bucketed_circuit_breaker b(f.clk, f.options());
    fail(b);
    fail(b);  // its write's completion and the initial read are pending
  }
  f.settle();
  CHECK(a.state() == breaker_state::open);  // the write itself was made
}
