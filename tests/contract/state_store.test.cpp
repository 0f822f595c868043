#include <xsn/store/state_store.hpp>

#include "catch.hpp"

#include <xsn/config.hpp>
#include <xsn/store/memory_state_store.hpp>
#if XSN_WITH_ADVANCED
#include <xsn/advanced/redis_state_store.hpp>

#include "redis_server.hpp"
#endif

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <system_error>
#include <tuple>
#include <utility>
#include <vector>

// The contract every `state_store` must meet, run over every implementation in
// `store_fixtures`. A fixture owns an io_context, a store on it and (when `manual_time`) a
// `manual_clock` the store's TTLs follow, and offers:
//   F(capacity)               a store bounded by `capacity` (when `bounded`)
//   state_store& store()
//   bool on_executor()        true inside a handler run by the store's executor
//   void run_until(pred)      runs handlers until `pred()`; FAILs if the store stalls
//   void settle()             runs every handler that is ready, then returns
//   void advance(duration)    moves the store's clock (when `manual_time`)
// A remote store (Redis) joins with a fixture whose `run_until` waits on its connection.

using namespace std::chrono_literals;

namespace {

/// How big a bounded fixture's store may grow.
struct capacity {
  std::size_t entries = 1000;
  std::size_t bytes = std::size_t{16} << 20;
};

/// A memory-backed `Store` on a private io_context and manual clock.
template <class Store>
struct basic_memory_fixture {
  static constexpr bool manual_time = true;
  static constexpr bool bounded = true;

  explicit basic_memory_fixture(capacity c = {})
      : store_(ioc.get_executor(), clk, xsn::memory_store_options{c.entries, c.bytes}) {}

  xsn::state_store& store() { return store_; }
  bool on_executor() { return ioc.get_executor().running_in_this_thread(); }
  template <typename Pred>
  void run_until(Pred done) {
    ioc.restart();
    while (!done()) {
      if (ioc.run_one() == 0) FAIL("the store stalled: no handler left to run");
    }
  }
  void settle() {
    ioc.restart();
    ioc.poll();
  }
  void advance(xsn::clock::duration d) { clk.advance(d); }

  boost::asio::io_context ioc;
  xsn::manual_clock clk;
  Store store_;
};

/// `memory_state_store` on a private io_context and manual clock.
using memory_fixture = basic_memory_fixture<xsn::memory_state_store>;

/// A store that keeps only the interface's default batch (`do_write_batch`: one write per entry),
/// forwarding every other operation to a `memory_state_store`, so that the default is held to the
/// contract too.
class forwarding_store final : public xsn::state_store {
 public:
  forwarding_store(executor_type ex, xsn::clock& clk, xsn::memory_store_options o)
      : state_store(ex), inner_(ex, clk, o) {}

 protected:
  void do_get(std::string key, get_handler handler) override {
    inner_.async_get(std::move(key), std::move(handler));
  }
  void do_put(std::string key, std::string value, xsn::put_options opts,
              write_handler handler) override {
    inner_.async_put(std::move(key), std::move(value), opts, std::move(handler));
  }
  void do_compare_and_set(std::string key, xsn::store_version expected, std::string value,
                          xsn::put_options opts, write_handler handler) override {
    inner_.async_compare_and_set(std::move(key), expected, std::move(value), opts,
                                 std::move(handler));
  }
  void do_erase(std::string key, std::optional<xsn::store_version> expected,
                write_handler handler) override {
    if (expected) return inner_.async_compare_and_erase(std::move(key), *expected, std::move(handler));
    inner_.async_erase(std::move(key), std::move(handler));
  }
  void do_list(std::string prefix, xsn::list_options opts, list_handler handler) override {
    inner_.async_list(std::move(prefix), std::move(opts), std::move(handler));
  }
  xsn::watch_handle do_watch(std::string prefix, xsn::watch_callback fn) override {
    return inner_.watch(std::move(prefix), std::move(fn));
  }
  xsn::store_health do_health() const override { return inner_.health(); }

 private:
  xsn::memory_state_store inner_;
};

/// `forwarding_store`: the interface's default batch over the memory store.
using default_batch_fixture = basic_memory_fixture<forwarding_store>;

#if XSN_WITH_ADVANCED
/// `redis_state_store` on a private io_context and manual clock, against this process's own
/// redis-server, under a key prefix of its own. Its I/O runs on the io_context, so waiting for
/// a completion means running it; a store that stays silent for 10 s has stalled.
struct redis_fixture {
  static constexpr bool manual_time = true;
  static constexpr bool bounded = true;

  static xsn::advanced::redis_store_options options(capacity c) {
    xsn::advanced::redis_store_options o;
    o.port = xsn_test::shared_redis().port();
    o.key_prefix = xsn_test::unique_prefix("contract");
    o.max_entries = c.entries;
    o.max_bytes = c.bytes;
    // Generous: a loaded CI machine moving 1 MiB values must not time out (a stall is 10 s).
    o.connect_timeout = std::chrono::seconds(5);
    o.command_timeout = std::chrono::seconds(5);
    return o;
  }

  explicit redis_fixture(capacity c = {}) : store_(ioc.get_executor(), clk, options(c)) {
    bool connected = false;
    store_.async_connect([&](std::error_code ec) {
      if (ec) FAIL("cannot connect to redis-server: " << store_.last_error());
      connected = true;
    });
    run_until([&] { return connected; });
  }

  xsn::state_store& store() { return store_; }
  bool on_executor() { return ioc.get_executor().running_in_this_thread(); }
  template <typename Pred>
  void run_until(Pred done) {
    ioc.restart();
    while (!done()) {
      if (ioc.run_one_for(std::chrono::seconds(10)) == 0) FAIL("the store stalled for 10 s");
    }
  }
  /// Runs until nothing is in flight and no handler is ready: a barrier through Redis (every
  /// earlier reply and watch message is in), then the handlers it made ready, which may start
  /// more operations (a coroutine's next step), and so on.
  void settle() {
    for (int i = 0; i < 1000; ++i) {
      bool flushed = false;
      store_.async_flush([&](std::error_code) { flushed = true; });
      run_until([&] { return flushed; });
      if (ioc.poll() == 0 && store_.pending() == 0) return;
    }
    FAIL("the store never settled");
  }
  void advance(xsn::clock::duration d) { clk.advance(d); }

  boost::asio::io_context ioc;
  xsn::manual_clock clk;
  xsn::advanced::redis_state_store store_;
};

using store_fixtures = std::tuple<memory_fixture, redis_fixture>;
// The interface's default batch (one write per entry) differs from the memory store only there:
// it joins the batch cases alone (a whole third store made this file the slowest to compile).
using batch_fixtures = std::tuple<memory_fixture, default_batch_fixture, redis_fixture>;
#else
using store_fixtures = std::tuple<memory_fixture>;
using batch_fixtures = std::tuple<memory_fixture, default_batch_fixture>;
#endif

struct write_result {
  std::error_code ec;
  xsn::store_version version = 0;
};

struct get_result {
  std::error_code ec;
  std::optional<xsn::stored_value> value;
};

struct list_result {
  std::error_code ec;
  std::vector<xsn::state_store::entry> entries;
  std::vector<std::string> keys() const {
    std::vector<std::string> out;
    for (const auto& e : entries) out.push_back(e.first);
    return out;
  }
};

// Each helper initiates one operation, checks that it did not complete inside the initiating
// call, runs the executor until it completes and checks that it completed on the executor.

template <typename F, typename Result, typename Initiate>
Result await(F& f, Initiate initiate) {
  std::optional<Result> r;
  bool on_executor = false;
  initiate([&](auto&&... args) {
    on_executor = f.on_executor();
    r = Result{std::forward<decltype(args)>(args)...};
  });
  CHECK_FALSE(r.has_value());  // never inline
  f.run_until([&] { return r.has_value(); });
  CHECK(on_executor);
  return std::move(*r);
}

template <typename F>
get_result get(F& f, std::string key) {
  return await<F, get_result>(f, [&](auto h) { f.store().async_get(std::move(key), std::move(h)); });
}

template <typename F>
write_result put(F& f, std::string key, std::string value, xsn::put_options o = {}) {
  return await<F, write_result>(
      f, [&](auto h) { f.store().async_put(std::move(key), std::move(value), o, std::move(h)); });
}

template <typename F>
write_result cas(F& f, std::string key, xsn::store_version expected, std::string value,
                 xsn::put_options o = {}) {
  return await<F, write_result>(f, [&](auto h) {
    f.store().async_compare_and_set(std::move(key), expected, std::move(value), o, std::move(h));
  });
}

template <typename F>
write_result erase(F& f, std::string key) {
  return await<F, write_result>(f,
                                [&](auto h) { f.store().async_erase(std::move(key), std::move(h)); });
}

template <typename F>
write_result cas_erase(F& f, std::string key, xsn::store_version expected) {
  return await<F, write_result>(f, [&](auto h) {
    f.store().async_compare_and_erase(std::move(key), expected, std::move(h));
  });
}

template <typename F>
list_result list(F& f, std::string prefix, xsn::list_options o = {}) {
  return await<F, list_result>(
      f, [&](auto h) { f.store().async_list(std::move(prefix), std::move(o), std::move(h)); });
}

struct batch_out {
  std::error_code ec;
  std::vector<xsn::batch_result> results;
};

template <typename F>
batch_out batch(F& f, std::vector<xsn::batch_write> writes) {
  return await<F, batch_out>(
      f, [&](auto h) { f.store().async_write_batch(std::move(writes), std::move(h)); });
}

/// `c` followed by `i` in decimal (not `"k" + std::to_string(i)`: GCC 12 warns, wrongly, -Wrestrict).
std::string numbered(char c, std::size_t i) {
  std::string s(1, c);
  s += std::to_string(i);
  return s;
}

xsn::batch_write bput(std::string key, std::string value, xsn::put_options o = {}) {
  return xsn::batch_write{std::move(key), std::move(value), std::nullopt, o};
}

xsn::batch_write bcas(std::string key, xsn::store_version expected, std::string value,
                      xsn::put_options o = {}) {
  return xsn::batch_write{std::move(key), std::move(value), expected, o};
}

/// Records the events of one watch.
struct recorder {
  std::vector<xsn::watch_event> events;
  xsn::watch_callback callback() {
    return [this](const xsn::watch_event& ev) { events.push_back(ev); };
  }
};

bool same(const xsn::watch_event& ev, const std::string& key, xsn::watch_kind kind,
          xsn::store_version version) {
  return ev.key == key && ev.kind == kind && ev.version == version;
}

const std::error_code ok{};
const std::error_code conflict = xsn::make_error_code(xsn::errc::version_conflict);
const std::error_code invalid = xsn::make_error_code(xsn::errc::invalid_argument);
const std::error_code full = xsn::make_error_code(xsn::errc::store_full);

}  // namespace

TEMPLATE_LIST_TEST_CASE("state_store: get, put and monotonic versions", "[state_store]",
                        store_fixtures) {
  TestType f;

  auto absent = get(f, "a");
  CHECK(absent.ec == ok);
  CHECK_FALSE(absent.value);

  const auto v1 = put(f, "a", "one");
  REQUIRE(v1.ec == ok);
  CHECK(v1.version > 0);
  auto r = get(f, "a");
  REQUIRE(r.value);
  CHECK(r.value->value == "one");
  CHECK(r.value->version == v1.version);
  CHECK_FALSE(r.value->expires_at);

  const auto v2 = put(f, "a", "two");
  REQUIRE(v2.ec == ok);
  CHECK(v2.version > v1.version);
  // Store-wide: another key's write gets a greater version too.
  const auto v3 = put(f, "b", "x");
  CHECK(v3.version > v2.version);
  const auto v4 = put(f, "a", "three");
  CHECK(v4.version > v3.version);
  r = get(f, "a");
  REQUIRE(r.value);
  CHECK(r.value->value == "three");
  CHECK(r.value->version == v4.version);

  SECTION("values are bytes, not text") {
    const std::string bytes("\0\xff\x01 z", 5);
    REQUIRE(put(f, std::string("k\0ey", 4), bytes).ec == ok);
    r = get(f, std::string("k\0ey", 4));
    REQUIRE(r.value);
    CHECK(r.value->value == bytes);
    CHECK_FALSE(get(f, "k").value);
  }
  SECTION("an empty value is a value") {
    REQUIRE(put(f, "e", "").ec == ok);
    r = get(f, "e");
    REQUIRE(r.value);
    CHECK(r.value->value.empty());
  }
}

TEMPLATE_LIST_TEST_CASE("state_store: async_close lets run() return and later operations fail",
                        "[state_store]", store_fixtures) {
  TestType f;
  REQUIRE(put(f, "a", "one").ec == ok);
  recorder seen;
  auto handle = f.store().watch("", seen.callback());
  std::vector<std::error_code> closes;
  f.store().async_close([&](std::error_code ec) { closes.push_back(ec); });
  f.store().async_close([&](std::error_code ec) { closes.push_back(ec); });  // idempotent
  CHECK(closes.empty());  // never inline
  CHECK(f.store().closed());
  // Nothing of the store (connections, timers, watches) keeps the executor busy: run() returns
  // (were it to hang, ctest's timeout fails the test).
  f.ioc.restart();
  f.ioc.run();
  CHECK(closes == std::vector<std::error_code>{ok, ok});

  const std::error_code closed = xsn::make_error_code(xsn::errc::store_closed);
  CHECK(get(f, "a").ec == closed);
  CHECK(put(f, "b", "two").ec == closed);
  CHECK(cas(f, "a", 1, "two").ec == closed);
  CHECK(erase(f, "a").ec == closed);
  CHECK(cas_erase(f, "a", 1).ec == closed);
  CHECK(list(f, "").ec == closed);
  const auto b = batch(f, {bput("c", "three")});
  CHECK(b.ec == closed);
  CHECK(b.results.empty());
  CHECK_THROWS_AS(f.store().watch("", seen.callback()), std::system_error);
  CHECK(seen.events.empty());
  handle.reset();  // a watch handle outlives the close
  bool again = false;
  f.store().async_close([&](std::error_code ec) { again = !ec; });
  f.run_until([&] { return again; });
}

TEMPLATE_LIST_TEST_CASE("state_store: compare-and-set", "[state_store]", store_fixtures) {
  TestType f;

  SECTION("expected 0 creates only if absent") {
    const auto created = cas(f, "k", 0, "first");
    REQUIRE(created.ec == ok);
    CHECK(created.version > 0);
    const auto again = cas(f, "k", 0, "second");
    CHECK(again.ec == conflict);
    CHECK(again.version == created.version);  // the current version comes back
    CHECK(get(f, "k").value->value == "first");
  }
  SECTION("the current version succeeds, a stale one conflicts") {
    const auto v1 = put(f, "k", "1").version;
    const auto v2 = cas(f, "k", v1, "2");
    REQUIRE(v2.ec == ok);
    CHECK(v2.version > v1);
    const auto stale = cas(f, "k", v1, "3");
    CHECK(stale.ec == conflict);
    CHECK(stale.version == v2.version);
    const auto r = get(f, "k");
    CHECK(r.value->value == "2");
    CHECK(r.value->version == v2.version);
  }
  SECTION("a non-zero version on an absent key conflicts with 0") {
    const auto r = cas(f, "nothing", 42, "x");
    CHECK(r.ec == conflict);
    CHECK(r.version == 0);
    CHECK_FALSE(get(f, "nothing").value);
  }
  SECTION("a version of another key does not match") {
    const auto va = put(f, "a", "x").version;
    put(f, "b", "y");
    CHECK(cas(f, "b", va, "z").ec == conflict);
  }
  SECTION("optimistic retry loop") {
    // What an orchestrator does: read, modify, compare-and-set, retry on conflict.
    put(f, "counter", "0");
    for (int i = 0; i < 5; ++i) {
      auto cur = get(f, "counter").value;
      REQUIRE(cur);
      if (i % 2 == 0) put(f, "counter", cur->value);  // someone else wrote in between
      auto r = cas(f, "counter", cur->version, std::to_string(std::stoi(cur->value) + 1));
      if (r.ec == conflict) {
        cur = get(f, "counter").value;
        CHECK(r.version == cur->version);
        r = cas(f, "counter", r.version, std::to_string(std::stoi(cur->value) + 1));
      }
      REQUIRE(r.ec == ok);
    }
    CHECK(get(f, "counter").value->value == "5");
  }
}

TEMPLATE_LIST_TEST_CASE("state_store: erase", "[state_store]", store_fixtures) {
  TestType f;
  const auto v1 = put(f, "k", "v").version;

  SECTION("returns the removed version; the key is absent after") {
    const auto r = erase(f, "k");
    CHECK(r.ec == ok);
    CHECK(r.version == v1);
    CHECK_FALSE(get(f, "k").value);
    const auto again = erase(f, "k");
    CHECK(again.ec == ok);
    CHECK(again.version == 0);
  }
  SECTION("a key created again never reuses a version") {
    erase(f, "k");
    const auto v2 = put(f, "k", "v").version;
    CHECK(v2 > v1);
    CHECK(cas(f, "k", v1, "stale").ec == conflict);
  }
  SECTION("compare-and-erase") {
    const auto stale = cas_erase(f, "k", v1 + 1000);
    CHECK(stale.ec == conflict);
    CHECK(stale.version == v1);
    CHECK(get(f, "k").value);
    const auto r = cas_erase(f, "k", v1);
    CHECK(r.ec == ok);
    CHECK(r.version == v1);
    CHECK_FALSE(get(f, "k").value);
    CHECK(cas_erase(f, "k", v1).ec == conflict);
    const auto absent = cas_erase(f, "k", 0);  // "only if absent": nothing to do
    CHECK(absent.ec == ok);
    CHECK(absent.version == 0);
  }
  SECTION("compare-and-erase with 0 on a present key conflicts") {
    const auto r = cas_erase(f, "k", 0);
    CHECK(r.ec == conflict);
    CHECK(r.version == v1);
    CHECK(get(f, "k").value);
  }
}

TEMPLATE_LIST_TEST_CASE("state_store: list by prefix", "[state_store]", store_fixtures) {
  TestType f;
  for (const char* k : {"m/3", "m/1", "n/1", "m/2", "m", "l/9", "m/10"}) {
    REQUIRE(put(f, k, std::string("v:") + k).ec == ok);
  }

  SECTION("matching keys in ascending order, with values and versions") {
    const auto r = list(f, "m/");
    REQUIRE(r.ec == ok);
    CHECK(r.keys() == std::vector<std::string>{"m/1", "m/10", "m/2", "m/3"});
    for (const auto& [key, sv] : r.entries) {
      CHECK(sv.value == "v:" + key);
      CHECK(sv.version == get(f, key).value->version);
    }
  }
  SECTION("the empty prefix lists everything") {
    CHECK(list(f, "").keys() ==
          std::vector<std::string>{"l/9", "m", "m/1", "m/10", "m/2", "m/3", "n/1"});
  }
  SECTION("no match") { CHECK(list(f, "zz").entries.empty()); }
  SECTION("limit and paging") {
    xsn::list_options o;
    o.limit = 3;
    auto page = list(f, "m", o);
    CHECK(page.keys() == std::vector<std::string>{"m", "m/1", "m/10"});
    o.start_after = page.entries.back().first;
    page = list(f, "m", o);
    CHECK(page.keys() == std::vector<std::string>{"m/2", "m/3"});  // short page: the last one
    o.start_after = "a";  // before the prefix: from its start
    CHECK(list(f, "m/", o).keys() == std::vector<std::string>{"m/1", "m/10", "m/2"});
    o.start_after = "m/3";
    CHECK(list(f, "m/", o).entries.empty());
  }
  SECTION("erased keys are not listed") {
    erase(f, "m/2");
    CHECK(list(f, "m/").keys() == std::vector<std::string>{"m/1", "m/10", "m/3"});
  }
  SECTION("bad limits and prefixes") {
    xsn::list_options o;
    o.limit = 0;
    CHECK(list(f, "m", o).ec == invalid);
    o.limit = xsn::state_store::max_list_limit + 1;
    CHECK(list(f, "m", o).ec == invalid);
    o.limit = xsn::state_store::max_list_limit;
    CHECK(list(f, "m", o).ec == ok);
    CHECK(list(f, std::string(xsn::state_store::max_key_size + 1, 'm')).ec == invalid);
  }
}

TEMPLATE_LIST_TEST_CASE("state_store: time to live", "[state_store]", store_fixtures) {
  if constexpr (!TestType::manual_time) {
    WARN("TTL is tested with a manual clock only");
    return;
  } else {
    TestType f;
    xsn::put_options ttl10;
    ttl10.ttl = 10s;

    const auto v = put(f, "t", "short-lived", ttl10);
    REQUIRE(v.ec == ok);
    auto r = get(f, "t");
    REQUIRE(r.value);
    REQUIRE(r.value->expires_at);

    SECTION("present until expires_at, absent from then on") {
      f.advance(9s);
      CHECK(get(f, "t").value);
      f.advance(1s);
      CHECK_FALSE(get(f, "t").value);
      CHECK(list(f, "").entries.empty());
      CHECK(erase(f, "t").version == 0);
    }
    SECTION("expires_at is the write time plus the TTL") {
      put(f, "u", "x", ttl10);
      f.advance(4s);
      const auto before = get(f, "u").value->expires_at;
      put(f, "u", "y", ttl10);
      const auto after = get(f, "u").value->expires_at;
      REQUIRE(before);
      REQUIRE(after);
      CHECK(*after - *before == 4s);
    }
    SECTION("a write without TTL clears it") {
      put(f, "t", "forever");
      CHECK_FALSE(get(f, "t").value->expires_at);
      f.advance(1h);
      CHECK(get(f, "t").value);
    }
    SECTION("a write with a TTL renews it") {
      f.advance(8s);
      cas(f, "t", v.version, "renewed", ttl10);
      f.advance(8s);
      CHECK(get(f, "t").value->value == "renewed");
      f.advance(2s);
      CHECK_FALSE(get(f, "t").value);
    }
    SECTION("an expired key is absent for compare-and-set") {
      f.advance(10s);
      CHECK(cas(f, "t", v.version, "x").ec == conflict);
      const auto created = cas(f, "t", 0, "new");
      CHECK(created.ec == ok);
      CHECK(created.version > v.version);
    }
    SECTION("listing skips expired entries") {
      put(f, "t2", "stays");
      put(f, "t3", "goes", ttl10);
      f.advance(10s);
      CHECK(list(f, "t").keys() == std::vector<std::string>{"t2"});
    }
    SECTION("a TTL must be positive") {
      xsn::put_options bad;
      bad.ttl = 0s;
      CHECK(put(f, "z", "x", bad).ec == invalid);
      bad.ttl = -1s;
      CHECK(cas(f, "z", 0, "x", bad).ec == invalid);
      CHECK_FALSE(get(f, "z").value);
    }
  }
}

TEMPLATE_LIST_TEST_CASE("state_store: watch", "[state_store]", store_fixtures) {
  TestType f;
  recorder rec;
  auto handle = f.store().watch("m/", rec.callback());
  CHECK(handle);

  SECTION("put, compare-and-set and erase are reported in order, with versions") {
    const auto v1 = put(f, "m/a", "1").version;
    const auto v2 = cas(f, "m/a", v1, "2").version;
    const auto v3 = cas(f, "m/b", 0, "x").version;
    put(f, "other", "ignored");
    CHECK(erase(f, "m/a").version == v2);
    erase(f, "m/zz");  // absent: nothing happens, nothing is reported
    f.run_until([&] { return rec.events.size() >= 4; });
    f.settle();
    REQUIRE(rec.events.size() == 4);
    CHECK(same(rec.events[0], "m/a", xsn::watch_kind::put, v1));
    CHECK(same(rec.events[1], "m/a", xsn::watch_kind::put, v2));
    CHECK(same(rec.events[2], "m/b", xsn::watch_kind::put, v3));
    CHECK(same(rec.events[3], "m/a", xsn::watch_kind::erase, v2));
  }
  SECTION("failed writes are not reported") {
    const auto v1 = put(f, "m/a", "1").version;
    CHECK(cas(f, "m/a", v1 + 100, "x").ec == conflict);
    CHECK(cas_erase(f, "m/a", v1 + 100).ec == conflict);
    CHECK(put(f, "", "x").ec == invalid);
    f.settle();
    REQUIRE(rec.events.size() == 1);
    CHECK(same(rec.events[0], "m/a", xsn::watch_kind::put, v1));
  }
  SECTION("expiry is reported") {
    if constexpr (TestType::manual_time) {
      xsn::put_options o;
      o.ttl = 5s;
      const auto v = put(f, "m/t", "x", o).version;
      f.settle();
      f.advance(5s);  // no access: the store's own timer notices
      f.run_until([&] { return rec.events.size() >= 2; });
      REQUIRE(rec.events.size() == 2);
      CHECK(same(rec.events[1], "m/t", xsn::watch_kind::expire, v));
      CHECK_FALSE(get(f, "m/t").value);
      f.settle();
      CHECK(rec.events.size() == 2);  // reported once
    }
  }
  SECTION("several watches, overlapping prefixes") {
    recorder all;
    recorder exact;
    auto h_all = f.store().watch("", all.callback());
    auto h_exact = f.store().watch("m/a", exact.callback());
    put(f, "m/a", "1");
    put(f, "m/ab", "2");
    put(f, "x", "3");
    f.run_until([&] { return all.events.size() >= 3; });
    f.settle();
    CHECK(rec.events.size() == 2);
    CHECK(all.events.size() == 3);
    CHECK(exact.events.size() == 2);  // a prefix, not an exact key
  }
  SECTION("callbacks run on the store's executor") {
    bool on_executor = false;
    auto h = f.store().watch("", [&](const xsn::watch_event&) { on_executor = f.on_executor(); });
    put(f, "m/a", "1");
    f.run_until([&] { return rec.events.size() >= 1; });
    f.settle();
    CHECK(on_executor);
  }
  SECTION("no callback after the handle is destroyed") {
    f.store().async_put("m/a", "1", [](std::error_code, xsn::store_version) {});
    handle.reset();  // the put's notification is queued: it must not arrive
    CHECK_FALSE(handle);
    put(f, "m/a", "2");
    f.settle();
    CHECK(rec.events.empty());
  }
  SECTION("a callback may end its own watch and use the store") {
    recorder once;
    xsn::watch_handle self;
    std::optional<write_result> nested;
    self = f.store().watch("s/", [&](const xsn::watch_event& ev) {
      once.events.push_back(ev);
      self.reset();
      f.store().async_put("m/from-callback", "x", [&](std::error_code ec, xsn::store_version v) {
        nested = write_result{ec, v};
      });
    });
    put(f, "s/1", "a");
    put(f, "s/2", "b");
    f.run_until([&] { return nested.has_value(); });
    f.settle();
    CHECK(once.events.size() == 1);
    CHECK(nested->ec == ok);
    REQUIRE(rec.events.size() == 1);
    CHECK(rec.events[0].key == "m/from-callback");
  }
  SECTION("moving a handle keeps the watch; assigning over one ends it") {
    xsn::watch_handle moved = std::move(handle);
    put(f, "m/a", "1");
    f.run_until([&] { return rec.events.size() >= 1; });
    recorder other;
    moved = f.store().watch("m/", other.callback());  // ends `rec`'s watch
    put(f, "m/a", "2");
    f.run_until([&] { return other.events.size() >= 1; });
    f.settle();
    CHECK(rec.events.size() == 1);
    CHECK(other.events.size() == 1);
  }
  SECTION("bad arguments throw") {
    CHECK_THROWS_AS(f.store().watch(std::string(xsn::state_store::max_key_size + 1, 'x'),
                                    rec.callback()),
                    std::system_error);
    CHECK_THROWS_AS(f.store().watch("m/", xsn::watch_callback{}), std::system_error);
  }
}

TEMPLATE_LIST_TEST_CASE("state_store: capacity", "[state_store]", store_fixtures) {
  if constexpr (!TestType::bounded) {
    WARN("not a bounded store");
    return;
  } else {
    SECTION("entries") {
      TestType f(capacity{3, 1 << 20});
      for (const char* k : {"a", "b", "c"}) REQUIRE(put(f, k, "v").ec == ok);
      const auto r = put(f, "d", "v");
      CHECK(r.ec == full);
      CHECK(r.version == 0);
      CHECK(cas(f, "d", 0, "v").ec == full);
      CHECK_FALSE(get(f, "d").value);
      CHECK(put(f, "a", "replaced").ec == ok);  // replacing adds no entry
      REQUIRE(erase(f, "b").ec == ok);
      CHECK(put(f, "d", "v").ec == ok);
      CHECK(f.store().health().entries == 3);
    }
    SECTION("bytes: keys and values") {
      TestType f(capacity{100, 20});
      REQUIRE(put(f, "k1", "12345678").ec == ok);  // 10 bytes
      REQUIRE(put(f, "k2", "12345678").ec == ok);  // 20
      CHECK(put(f, "k3", "").ec == full);          // 22 > 20
      CHECK(put(f, "k1", "123456789").ec == full); // 21
      CHECK(put(f, "k1", "1234").ec == ok);        // 16: shrinking is fine
      CHECK(put(f, "k3", "12").ec == ok);          // 20
      CHECK(f.store().health().bytes == 20);
      CHECK(get(f, "k1").value->value == "1234");
    }
    SECTION("the error is store_full with a clear message") {
      TestType f(capacity{1, 1 << 20});
      put(f, "a", "v");
      const auto r = put(f, "b", "v");
      CHECK(r.ec == xsn::errc::store_full);
      CHECK(r.ec.message() == "store is full");
    }
    if constexpr (TestType::manual_time) {
      SECTION("expired entries make room") {
        TestType f(capacity{2, 1 << 20});
        xsn::put_options o;
        o.ttl = 1s;
        put(f, "a", "v", o);
        put(f, "b", "v");
        CHECK(put(f, "c", "v").ec == full);
        f.settle();
        f.advance(1s);
        CHECK(put(f, "c", "v").ec == ok);
      }
    }
  }
}

TEMPLATE_LIST_TEST_CASE("state_store: invalid keys and values", "[state_store]", store_fixtures) {
  TestType f;
  const std::string longest(xsn::state_store::max_key_size, 'k');
  const std::string too_long(xsn::state_store::max_key_size + 1, 'k');

  CHECK(get(f, "").ec == invalid);
  CHECK(get(f, too_long).ec == invalid);
  CHECK(put(f, "", "v").ec == invalid);
  CHECK(put(f, too_long, "v").ec == invalid);
  CHECK(cas(f, "", 0, "v").ec == invalid);
  CHECK(cas(f, too_long, 0, "v").ec == invalid);
  CHECK(erase(f, "").ec == invalid);
  CHECK(cas_erase(f, too_long, 1).ec == invalid);

  const auto big = put(f, "big", std::string(xsn::state_store::max_value_size + 1, 'v'));
  CHECK(big.ec == invalid);
  CHECK(big.version == 0);
  CHECK_FALSE(get(f, "big").value);

  const auto v = put(f, longest, std::string(xsn::state_store::max_value_size, 'v'));
  CHECK(v.ec == ok);
  CHECK(get(f, longest).value->value.size() == xsn::state_store::max_value_size);
  CHECK(invalid.message() == "invalid argument");
  CHECK(f.store().health().entries == 1);  // nothing else was written
}

TEMPLATE_LIST_TEST_CASE("state_store: health", "[state_store]", store_fixtures) {
  TestType f;
  auto h = f.store().health();
  CHECK(h.reachable);
  CHECK(h.entries == 0);
  CHECK(h.bytes == 0);
  put(f, "ab", "cde");
  put(f, "x", "");
  h = f.store().health();
  CHECK(h.entries == 2);
  CHECK(h.bytes == 6);
  const auto v = put(f, "ab", "c").version;  // replacing: 3 bytes instead of 5, no new entry
  CHECK(f.store().health().entries == 2);
  CHECK(f.store().health().bytes == 4);
  CHECK(cas(f, "ab", v + 100, "longer value").ec == conflict);  // changes nothing
  CHECK(put(f, "ab", "cdefg").ec == ok);
  CHECK(f.store().health().entries == 2);
  CHECK(f.store().health().bytes == 8);
  put(f, "ab", "cde");
  erase(f, "ab");
  CHECK(f.store().health().entries == 1);
  CHECK(f.store().health().bytes == 1);
}

TEMPLATE_LIST_TEST_CASE("state_store: completion tokens", "[state_store]", store_fixtures) {
  TestType f;
  auto& store = f.store();

  SECTION("use_awaitable") {
    std::optional<std::string> seen;
    std::error_code conflict_seen;
    boost::asio::co_spawn(
        store.get_executor(),
        [&]() -> boost::asio::awaitable<void> {
          using boost::asio::as_tuple;
          using boost::asio::use_awaitable;
          auto [ec1, v1] = co_await store.async_put("c", "1", as_tuple(use_awaitable));
          auto [ec2, v2] = co_await store.async_compare_and_set("c", v1, "2", as_tuple(use_awaitable));
          auto [ec3, v3] = co_await store.async_compare_and_set("c", v1, "3", as_tuple(use_awaitable));
          conflict_seen = ec3;
          CHECK(v3 == v2);
          auto [ec4, got] = co_await store.async_get("c", as_tuple(use_awaitable));
          if (got) seen = got->value;
          auto [ec5, entries] = co_await store.async_list("", as_tuple(use_awaitable));
          CHECK(entries.size() == 1);
          auto [ec6, erased] = co_await store.async_erase("c", as_tuple(use_awaitable));
          CHECK(erased == v2);
        },
        boost::asio::detached);
    f.run_until([&] { return seen.has_value(); });
    f.settle();
    CHECK(*seen == "2");
    CHECK(conflict_seen == conflict);
    CHECK(f.store().health().entries == 0);
  }
  SECTION("deferred: nothing happens until the operation is launched") {
    auto op = store.async_put("d", "1", boost::asio::deferred);
    CHECK_FALSE(get(f, "d").value);
    std::optional<write_result> r;
    std::move(op)([&](std::error_code ec, xsn::store_version v) { r = write_result{ec, v}; });
    f.run_until([&] { return r.has_value(); });
    CHECK(r->ec == ok);
    CHECK(get(f, "d").value);
  }
  SECTION("a handler with its own executor runs there") {
    boost::asio::io_context other;
    bool ran = false;
    store.async_put("e", "1", boost::asio::bind_executor(other.get_executor(),
                                                         [&](std::error_code, xsn::store_version) {
                                                           ran = other.get_executor()
                                                                     .running_in_this_thread();
                                                         }));
    f.settle();
    CHECK_FALSE(ran);
    other.run();
    CHECK(ran);
  }
}

TEMPLATE_LIST_TEST_CASE("state_store: write batch", "[state_store]", batch_fixtures) {
  TestType f;

  SECTION("puts and compare-and-sets, successes and conflicts, each with its own version") {
    const auto va = put(f, "a", "a0").version;
    const auto vb = put(f, "b", "b0").version;
    const auto r = batch(f, {bput("c", "c1"),          // 0: created
                             bcas("a", va, "a1"),      // 1: current version: ok
                             bcas("b", va, "b1"),      // 2: stale: conflict, b's version
                             bcas("d", 0, "d1"),       // 3: created only if absent: ok
                             bcas("a", 0, "a2"),       // 4: present: conflict, entry 1's version
                             bput("b", "b2"),          // 5: replaced
                             bcas("zz", 7, "x")});     // 6: absent: conflict, 0
    REQUIRE(r.ec == ok);
    REQUIRE(r.results.size() == 7);
    for (std::size_t i : {0u, 1u, 3u, 5u}) CHECK(r.results[i].ec == ok);
    for (std::size_t i : {2u, 4u, 6u}) CHECK(r.results[i].ec == conflict);
    // Successful writes get new versions, increasing in the batch's order.
    CHECK(r.results[0].version > vb);
    CHECK(r.results[1].version > r.results[0].version);
    CHECK(r.results[3].version > r.results[1].version);
    CHECK(r.results[5].version > r.results[3].version);
    CHECK(r.results[2].version == vb);
    CHECK(r.results[4].version == r.results[1].version);
    CHECK(r.results[6].version == 0);
    const std::vector<std::pair<std::string, std::size_t>> stored{
        {"c", 0}, {"a", 1}, {"d", 3}, {"b", 5}};
    for (const auto& [key, i] : stored) {
      const auto g = get(f, key);
      REQUIRE(g.value);
      CHECK(g.value->version == r.results[i].version);
    }
    CHECK(get(f, "a").value->value == "a1");
    CHECK(get(f, "b").value->value == "b2");
    CHECK_FALSE(get(f, "zz").value);
    // Later single writes still get greater versions.
    CHECK(put(f, "e", "x").version > r.results[5].version);
    CHECK(f.store().health().entries == 5);
  }
  SECTION("two writes of one key are applied in order") {
    auto r = batch(f, {bput("k", "1"), bput("k", "2"), bcas("n", 0, "a"), bcas("n", 0, "b")});
    REQUIRE(r.ec == ok);
    REQUIRE(r.results.size() == 4);
    CHECK(r.results[0].ec == ok);
    CHECK(r.results[1].ec == ok);
    CHECK(r.results[1].version > r.results[0].version);
    CHECK(r.results[2].ec == ok);
    CHECK(r.results[3].ec == conflict);  // the first one created it
    CHECK(r.results[3].version == r.results[2].version);
    CHECK(get(f, "k").value->value == "2");
    CHECK(get(f, "k").value->version == r.results[1].version);
    CHECK(get(f, "n").value->value == "a");
    // A compare-and-set on the version an earlier entry of the same batch produced.
    const auto vk = r.results[1].version;
    r = batch(f, {bput("k", "3"), bcas("k", vk, "stale")});
    CHECK(r.results[1].ec == conflict);
    CHECK(r.results[1].version == r.results[0].version);
    CHECK(get(f, "k").value->value == "3");
  }
  SECTION("the largest batch, over a few keys, keeps its order") {
    std::vector<xsn::batch_write> writes;
    for (std::size_t i = 0; i < xsn::state_store::max_batch_size; ++i) {
      writes.push_back(bput(numbered('k', i % 100), std::to_string(i)));
    }
    const auto r = batch(f, std::move(writes));
    REQUIRE(r.ec == ok);
    REQUIRE(r.results.size() == xsn::state_store::max_batch_size);
    for (std::size_t i = 0; i < r.results.size(); ++i) {
      REQUIRE(r.results[i].ec == ok);
      if (i > 0) REQUIRE(r.results[i].version > r.results[i - 1].version);
    }
    for (std::size_t k = 0; k < 100; ++k) {
      const auto last = k + 100 * ((xsn::state_store::max_batch_size - 1 - k) / 100);
      const auto g = get(f, numbered('k', k));
      REQUIRE(g.value);
      CHECK(g.value->value == std::to_string(last));
      CHECK(g.value->version == r.results[last].version);
    }
    CHECK(f.store().health().entries == 100);
  }
  SECTION("an empty batch completes with no results") {
    const auto r = batch(f, {});
    CHECK(r.ec == ok);
    CHECK(r.results.empty());
  }
  SECTION("a batch past max_batch_size is refused as a whole") {
    std::vector<xsn::batch_write> writes;
    for (std::size_t i = 0; i <= xsn::state_store::max_batch_size; ++i) {
      writes.push_back(bput(numbered('k', i), "v"));
    }
    const auto r = batch(f, std::move(writes));
    CHECK(r.ec == invalid);
    CHECK(r.results.empty());
    CHECK_FALSE(get(f, "k0").value);
    CHECK(f.store().health().entries == 0);
  }
  SECTION("an invalid entry fails alone") {
    xsn::put_options no_ttl;
    no_ttl.ttl = 0s;
    xsn::put_options negative;
    negative.ttl = -1s;
    const auto r = batch(f, {bput("a", "1"),
                             bput("", "empty key"),
                             bcas(std::string(xsn::state_store::max_key_size + 1, 'k'), 0, "x"),
                             bput("big", std::string(xsn::state_store::max_value_size + 1, 'v')),
                             bput("t0", "x", no_ttl),
                             bcas("t1", 0, "x", negative),
                             bcas("b", 0, "2")});
    REQUIRE(r.ec == ok);
    REQUIRE(r.results.size() == 7);
    CHECK(r.results[0].ec == ok);
    CHECK(r.results[6].ec == ok);
    CHECK(r.results[6].version > r.results[0].version);
    for (std::size_t i = 1; i < 6; ++i) {
      CHECK(r.results[i].ec == invalid);
      CHECK(r.results[i].version == 0);
    }
    for (const char* k : {"big", "t0", "t1"}) CHECK_FALSE(get(f, k).value);
    CHECK(get(f, "b").value->version == r.results[6].version);
    CHECK(f.store().health().entries == 2);
  }
  SECTION("a batch of invalid entries only writes nothing") {
    const auto r = batch(f, {bput("", "x"), bcas("", 3, "y")});
    REQUIRE(r.ec == ok);
    REQUIRE(r.results.size() == 2);
    CHECK(r.results[0].ec == invalid);
    CHECK(r.results[1].ec == invalid);
    CHECK(f.store().health().entries == 0);
  }
  SECTION("the largest key and value are accepted") {
    const std::string longest(xsn::state_store::max_key_size, 'k');
    const auto r = batch(f, {bput(longest, std::string(xsn::state_store::max_value_size, 'v')),
                             bput("e", "")});
    REQUIRE(r.results.size() == 2);
    CHECK(r.results[0].ec == ok);
    CHECK(r.results[1].ec == ok);
    CHECK(get(f, longest).value->value.size() == xsn::state_store::max_value_size);
    CHECK(get(f, "e").value->value.empty());
  }
  SECTION("watches see every successful write, in order") {
    recorder rec;
    auto handle = f.store().watch("m/", rec.callback());
    const auto r = batch(f, {bput("m/a", "1"), bput("m/b", "1"), bcas("m/a", 1'000'000, "x"),
                             bput("other", "1"), bput("", "invalid"), bput("m/a", "2")});
    REQUIRE(r.results.size() == 6);
    f.run_until([&] { return rec.events.size() >= 3; });
    f.settle();
    REQUIRE(rec.events.size() == 3);
    CHECK(same(rec.events[0], "m/a", xsn::watch_kind::put, r.results[0].version));
    CHECK(same(rec.events[1], "m/b", xsn::watch_kind::put, r.results[1].version));
    CHECK(same(rec.events[2], "m/a", xsn::watch_kind::put, r.results[5].version));
  }
  if constexpr (TestType::manual_time) {
    SECTION("entries with a TTL expire; one without clears it") {
      xsn::put_options ttl10;
      ttl10.ttl = 10s;
      put(f, "p", "old", ttl10);
      const auto r = batch(f, {bput("t", "x", ttl10), bput("p", "forever"), bcas("u", 0, "y", ttl10)});
      REQUIRE(r.results.size() == 3);
      for (const auto& e : r.results) CHECK(e.ec == ok);
      CHECK(get(f, "t").value->expires_at);
      CHECK_FALSE(get(f, "p").value->expires_at);
      f.settle();
      f.advance(10s);
      CHECK_FALSE(get(f, "t").value);
      CHECK_FALSE(get(f, "u").value);
      CHECK(get(f, "p").value);
    }
  }
  if constexpr (TestType::bounded) {
    SECTION("entries that do not fit fail alone with store_full") {
      TestType small(capacity{3, 1 << 20});
      REQUIRE(put(small, "a", "v").ec == ok);
      const auto r = batch(small, {bput("b", "v"), bput("c", "v"), bput("d", "v"),
                                   bput("a", "replaced"), bcas("e", 0, "v")});
      REQUIRE(r.results.size() == 5);
      CHECK(r.results[0].ec == ok);
      CHECK(r.results[1].ec == ok);
      CHECK(r.results[2].ec == full);
      CHECK(r.results[2].version == 0);
      CHECK(r.results[3].ec == ok);  // replacing adds no entry
      CHECK(r.results[4].ec == full);
      CHECK_FALSE(get(small, "d").value);
      CHECK(small.store().health().entries == 3);
    }
  }
  SECTION("a handler with its own executor runs there, with or without invalid entries") {
    boost::asio::io_context other;
    int ran = 0;
    std::vector<std::size_t> sizes;
    auto handler = [&](std::error_code ec, std::vector<xsn::batch_result> results) {
      CHECK(ec == ok);
      sizes.push_back(results.size());
      if (other.get_executor().running_in_this_thread()) ++ran;
    };
    f.store().async_write_batch({bput("x", "1")},
                                boost::asio::bind_executor(other.get_executor(), handler));
    f.store().async_write_batch({bput("y", "1"), bput("", "bad")},
                                boost::asio::bind_executor(other.get_executor(), handler));
    f.settle();
    CHECK(ran == 0);
    other.run();
    CHECK(ran == 2);
    CHECK(sizes == std::vector<std::size_t>{1, 2});
  }
  SECTION("use_awaitable") {
    std::optional<batch_out> got;
    boost::asio::co_spawn(
        f.store().get_executor(),
        [&]() -> boost::asio::awaitable<void> {
          // (A named vector: GCC 12 rejects a braced list inside a coroutine's co_await.)
          std::vector<xsn::batch_write> writes{bput("w", "1"), bcas("w", 0, "2")};
          auto [ec, results] = co_await f.store().async_write_batch(
              std::move(writes), boost::asio::as_tuple(boost::asio::use_awaitable));
          got = batch_out{ec, std::move(results)};
        },
        boost::asio::detached);
    f.run_until([&] { return got.has_value(); });
    REQUIRE(got->results.size() == 2);
    CHECK(got->results[0].ec == ok);
    CHECK(got->results[1].ec == conflict);
  }
}
