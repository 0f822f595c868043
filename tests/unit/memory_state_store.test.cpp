#include <xsn/store/memory_state_store.hpp>

#include "catch.hpp"

#include <xsn/core/asio_clock.hpp>

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

// What the contract suite (tests/contract/state_store.test.cpp) cannot see: the expiry timer,
// lifetimes, and the accounting of this implementation. Deterministic: a manual clock, and
// io_context::poll to run what is ready.

using namespace std::chrono_literals;

namespace {

struct harness {
  boost::asio::io_context ioc;
  xsn::manual_clock clk;
  std::unique_ptr<xsn::memory_state_store> store;

  explicit harness(xsn::memory_store_options o = {})
      : store(std::make_unique<xsn::memory_state_store>(ioc.get_executor(), clk, o)) {}

  void settle() {
    ioc.restart();
    ioc.poll();
  }
  xsn::store_version put(const std::string& k, const std::string& v,
                         std::optional<xsn::clock::duration> ttl = std::nullopt) {
    std::optional<xsn::store_version> out;
    store->async_put(k, v, xsn::put_options{ttl}, [&](std::error_code ec, xsn::store_version ver) {
      CHECK_FALSE(ec);
      out = ver;
    });
    settle();
    REQUIRE(out);
    return *out;
  }
  bool has(const std::string& k) {
    std::optional<bool> out;
    store->async_get(k, [&](std::error_code, std::optional<xsn::stored_value> v) {
      out = v.has_value();
    });
    settle();
    REQUIRE(out);
    return *out;
  }
};

}  // namespace

TEST_CASE("memory_state_store: options and health report the capacity", "[memory_state_store]") {
  harness h(xsn::memory_store_options{7, 300});
  CHECK(h.store->options().max_entries == 7);
  CHECK(h.store->options().max_bytes == 300);
  const auto health = h.store->health();
  CHECK(health.reachable);
  CHECK(health.max_entries == 7);
  CHECK(health.max_bytes == 300);
  const xsn::memory_store_options defaults;
  CHECK(defaults.max_entries == 100'000);
  CHECK(defaults.max_bytes == std::size_t{256} << 20);
}

TEST_CASE("memory_state_store: the expiry timer follows the earliest expiry",
          "[memory_state_store]") {
  harness h;
  const auto t0 = h.clk.now();
  CHECK(h.clk.pending() == 0);
  h.put("a", "x");  // no TTL, no timer
  CHECK(h.clk.pending() == 0);

  h.put("b", "x", 10s);
  CHECK(h.clk.pending() == 1);
  CHECK(h.clk.next_due() == t0 + 10s);

  h.put("c", "x", 5s);  // earlier: the timer moves
  CHECK(h.clk.pending() == 1);
  CHECK(h.clk.next_due() == t0 + 5s);

  h.put("d", "x", 20s);  // later: the timer stays
  CHECK(h.clk.pending() == 1);
  CHECK(h.clk.next_due() == t0 + 5s);

  h.clk.advance(5s);  // sweeps `c`, re-arms for `b`
  CHECK(h.store->health().entries == 3);
  CHECK(h.clk.next_due() == t0 + 10s);

  h.put("b", "no longer expires");  // the timer may fire early: it then re-arms
  h.clk.advance(5s);
  CHECK(h.store->health().entries == 3);
  CHECK(h.clk.next_due() == t0 + 20s);

  h.clk.advance(10s);
  CHECK(h.store->health().entries == 2);
  CHECK(h.clk.pending() == 0);  // nothing left to expire: no timer
  CHECK(h.has("a"));
  CHECK(h.has("b"));
}

TEST_CASE("memory_state_store: expiry events come in expiry order", "[memory_state_store]") {
  harness h;
  std::vector<std::string> expired;
  auto w = h.store->watch("", [&](const xsn::watch_event& ev) {
    if (ev.kind == xsn::watch_kind::expire) expired.push_back(ev.key);
  });
  h.put("late", "x", 3s);
  h.put("early", "x", 1s);
  h.put("middle", "x", 2s);
  h.clk.advance(10s);  // one sweep takes all three
  h.settle();
  CHECK(expired == std::vector<std::string>{"early", "middle", "late"});
  CHECK(h.store->health().entries == 0);
  CHECK(h.store->health().bytes == 0);
}

TEST_CASE("memory_state_store: the destructor cancels the timer", "[memory_state_store]") {
  harness h;
  h.put("k", "v", 1s);
  CHECK(h.clk.pending() == 1);
  h.store.reset();
  CHECK(h.clk.pending() == 0);
  h.clk.advance(1h);
  h.settle();
}

TEST_CASE("memory_state_store: a re-arm queued when the store is destroyed does nothing",
          "[memory_state_store]") {
  harness h;
  h.store->async_put("k", "v", xsn::put_options{1s}, [](std::error_code, xsn::store_version) {});
  h.store.reset();  // the re-arm task is still queued
  h.settle();
  CHECK(h.clk.pending() == 0);
}

TEST_CASE("memory_state_store: operations pending at destruction still complete",
          "[memory_state_store]") {
  harness h;
  std::optional<std::error_code> done;
  h.store->async_put("k", "v", [&](std::error_code ec, xsn::store_version) { done = ec; });
  h.store.reset();
  h.settle();
  REQUIRE(done);
  CHECK_FALSE(*done);
}

TEST_CASE("memory_state_store: watch handles may outlive the store", "[memory_state_store]") {
  harness h;
  int calls = 0;
  auto w = h.store->watch("", [&](const xsn::watch_event&) { ++calls; });
  h.store->async_put("k", "v", [](std::error_code, xsn::store_version) {});  // notification queued
  h.store.reset();  // ends the watch
  h.settle();
  CHECK(calls == 0);
  CHECK(w);  // still holds its (ended) subscription
  w.reset();
  CHECK_FALSE(w);
}

TEST_CASE("memory_state_store: a watch callback may destroy the store", "[memory_state_store]") {
  harness h;
  int calls = 0;
  auto w = h.store->watch("", [&](const xsn::watch_event&) {
    ++calls;
    h.store.reset();
  });
  h.store->async_put("a", "v", [](std::error_code, xsn::store_version) {});
  h.store->async_put("b", "v", [](std::error_code, xsn::store_version) {});
  h.settle();
  CHECK(calls == 1);  // the second notification was queued, but the store had ended the watch
  CHECK_FALSE(h.store);
}

TEST_CASE("memory_state_store: byte accounting counts keys and values", "[memory_state_store]") {
  harness h(xsn::memory_store_options{10, 1000});
  h.put("abc", "12345");  // 8
  h.put("de", "");        // 2
  CHECK(h.store->health().bytes == 10);
  h.put("abc", "1");      // 4
  CHECK(h.store->health().bytes == 6);
  h.put("ttl", "xy", 1s);  // 5
  CHECK(h.store->health().bytes == 11);
  h.clk.advance(1s);
  CHECK(h.store->health().bytes == 6);
  CHECK(h.store->health().entries == 2);
}

TEST_CASE("memory_state_store: a value larger than the whole store is store_full",
          "[memory_state_store]") {
  harness h(xsn::memory_store_options{10, 100});
  std::optional<std::error_code> ec;
  h.store->async_put("k", std::string(200, 'v'),
                     [&](std::error_code e, xsn::store_version) { ec = e; });
  h.settle();
  REQUIRE(ec);
  CHECK(*ec == xsn::errc::store_full);
}

TEST_CASE("memory_state_store: expiry on an asio_clock", "[memory_state_store]") {
  // A real timer, but due at once: `run` returns as soon as the sweep has run.
  boost::asio::io_context ioc;
  xsn::asio_clock clk(ioc.get_executor());
  xsn::memory_state_store store(ioc.get_executor(), clk);
  std::vector<xsn::watch_event> events;
  auto w = store.watch("", [&](const xsn::watch_event& ev) { events.push_back(ev); });
  store.async_put("k", "v", xsn::put_options{1ns}, [](std::error_code, xsn::store_version) {});
  ioc.run();
  REQUIRE(events.size() == 2);
  CHECK(events[1].kind == xsn::watch_kind::expire);
  CHECK(store.health().entries == 0);
  CHECK(clk.pending() == 0);
}

TEST_CASE("memory_state_store: a huge TTL saturates instead of overflowing",
          "[memory_state_store]") {
  harness h;
  h.clk.advance(1h);
  h.put("k", "v", xsn::clock::duration::max());
  std::optional<xsn::stored_value> got;
  h.store->async_get("k", [&](std::error_code, std::optional<xsn::stored_value> v) { got = v; });
  h.settle();
  REQUIRE(got);
  CHECK(got->expires_at == xsn::clock::time_point::max());
  h.clk.advance(24h * 365 * 100);
  CHECK(h.has("k"));
}

TEST_CASE("memory_state_store: async_close cancels the expiry timer of an asio_clock", "[memory_state_store]") {
  boost::asio::io_context ioc;
  xsn::asio_clock clk(ioc.get_executor());
  xsn::memory_state_store store(ioc.get_executor(), clk);
  std::optional<std::error_code> put_ec;
  std::optional<std::error_code> close_ec;
  // An hour's TTL arms a real timer on the io_context: without the close, run() waits for it.
  store.async_put("k", "v", xsn::put_options{std::chrono::hours(1)},
                  [&](std::error_code ec, xsn::store_version) { put_ec = ec; });
  ioc.poll();
  CHECK(put_ec == std::error_code{});
  CHECK(clk.pending() == 1);
  store.async_close([&](std::error_code ec) { close_ec = ec; });
  ioc.restart();
  ioc.run();
  CHECK(clk.pending() == 0);
  CHECK(close_ec == std::error_code{});
  std::optional<std::error_code> get_ec;
  store.async_get("k", [&](std::error_code ec, std::optional<xsn::stored_value>) { get_ec = ec; });
  ioc.restart();
  ioc.run();
  CHECK(get_ec == xsn::make_error_code(xsn::errc::store_closed));
}
