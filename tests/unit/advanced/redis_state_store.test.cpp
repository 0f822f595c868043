#include <xsn/advanced/redis_state_store.hpp>

#include "catch.hpp"
#include "names.hpp"
#include "redis_server.hpp"

#include <xsn/bus/channel_event_bus.hpp>
#include <xsn/orchestrator/orchestrator.hpp>
#include <xsn/parse/scxml.hpp>

#include <boost/asio/error.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json/parse.hpp>

#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <tuple>
#include <vector>

// The Redis store beyond the common contract (tests/contract/state_store.test.cpp): AUTH, key
// prefixes, junk in Redis, faults (crash and restart, a slow server, killed connections, no
// server), bounds, and the orchestrator running on it. Each test waits for completions by
// running the io_context; 10 s without any completion is a stall.

using namespace std::chrono_literals;
using xsn::advanced::redis_state_store;
using xsn::advanced::redis_store_options;

namespace {

const std::error_code ok{};
const std::error_code unavailable = xsn::make_error_code(xsn::errc::store_unavailable);
const std::error_code bad_message = std::make_error_code(std::errc::bad_message);

/// Initiates with a callback that fulfils a future of the completion's arguments (Boost 1.81's
/// `as_tuple(use_future)` does not compile).
template <typename... Args, typename Initiate>
std::future<std::tuple<Args...>> start(Initiate initiate) {
  auto p = std::make_shared<std::promise<std::tuple<Args...>>>();
  auto f = p->get_future();
  initiate([p](Args... a) { p->set_value(std::tuple<Args...>(std::move(a)...)); });
  return f;
}
using ec_t = std::error_code;
using version_t = xsn::store_version;

/// An io_context and a manual clock; stores are made on them.
struct env {
  boost::asio::io_context ioc;
  xsn::manual_clock clk;

  redis_store_options options(const xsn_test::redis_server& server) const {
    redis_store_options o;
    o.port = server.port();
    o.key_prefix = xsn_test::unique_prefix("unit");
    o.connect_timeout = 5s;  // generous for loaded machines; a stall is 10 s
    o.command_timeout = 5s;
    o.reconnect_initial = 5ms;
    o.reconnect_max = 20ms;
    return o;
  }
  std::unique_ptr<redis_state_store> make(redis_store_options o) {
    return std::make_unique<redis_state_store>(ioc.get_executor(), clk, std::move(o));
  }

  template <typename T>
  T wait(std::future<T> f) {
    ioc.restart();
    while (f.wait_for(0s) != std::future_status::ready) {
      if (ioc.run_one_for(10s) == 0) FAIL("the store stalled for 10 s");
    }
    return f.get();
  }

  std::error_code connect(redis_state_store& s) {
    return std::get<0>(wait(start<ec_t>([&](auto h) { s.async_connect(std::move(h)); })));
  }
  std::error_code flush(redis_state_store& s) {
    return std::get<0>(wait(start<ec_t>([&](auto h) { s.async_flush(std::move(h)); })));
  }
  std::tuple<std::error_code, xsn::store_version> put(xsn::state_store& s, std::string k,
                                                      std::string v) {
    return wait(start<ec_t, version_t>([&](auto h) { s.async_put(std::move(k), std::move(v), std::move(h)); }));
  }
  std::tuple<std::error_code, xsn::store_version> cas(xsn::state_store& s, std::string k,
                                                      xsn::store_version e, std::string v) {
    return wait(start<ec_t, version_t>([&](auto h) { s.async_compare_and_set(std::move(k), e, std::move(v), std::move(h)); }));
  }
  std::tuple<std::error_code, std::optional<xsn::stored_value>> get(xsn::state_store& s,
                                                                    std::string k) {
    return wait(start<ec_t, std::optional<xsn::stored_value>>([&](auto h) { s.async_get(std::move(k), std::move(h)); }));
  }
  std::tuple<std::error_code, std::vector<xsn::state_store::entry>> list(xsn::state_store& s,
                                                                         std::string p) {
    return wait(start<ec_t, std::vector<xsn::state_store::entry>>([&](auto h) { s.async_list(std::move(p), std::move(h)); }));
  }
  /// Connects, retrying while attempts fail (the server is coming back).
  void reconnect(redis_state_store& s) {
    for (int i = 0; i < 200; ++i) {
      if (!connect(s)) return;
    }
    FAIL("never reconnected: " << s.last_error());
  }
};

}  // namespace

TEST_CASE("redis_state_store: AUTH with requirepass", "[redis]") {
  xsn_test::redis_server server({"s3cret pass", false, {}});
  env e;
  auto o = e.options(server);
  o.password = "s3cret pass";
  auto store = e.make(o);
  REQUIRE(e.connect(*store) == ok);
  CHECK(std::get<0>(e.put(*store, "k", "v")) == ok);
  CHECK(std::get<1>(e.get(*store, "k"))->value == "v");

  SECTION("a wrong password is a clear error, not a hang") {
    o.password = "wrong";
    auto bad = e.make(o);
    CHECK(e.connect(*bad) == unavailable);
    CHECK(bad->last_error().find("AUTH failed") != std::string::npos);
    CHECK(std::get<0>(e.put(*bad, "k", "x")) == unavailable);
    CHECK_FALSE(bad->health().reachable);
  }
  SECTION("no password where one is required") {
    o.password.clear();
    auto bad = e.make(o);
    CHECK(e.connect(*bad) == unavailable);
    CHECK(bad->last_error().find("NOAUTH") != std::string::npos);
  }
}

TEST_CASE("redis_state_store: AUTH as an ACL user limited to its prefix", "[redis]") {
  auto& server = xsn_test::shared_redis();
  env e;
  auto o = e.options(server);
  const std::string user = "app" + std::to_string(::getpid());
  REQUIRE(server.command({"ACL", "SETUSER", user, "reset", "on", ">user-pw", "~" + o.key_prefix + "*",
                          "&" + o.key_prefix + "*", "+@all"})
              .str == "OK");
  o.username = user;
  o.password = "user-pw";
  auto store = e.make(o);
  REQUIRE(e.connect(*store) == ok);
  std::vector<xsn::watch_event> seen;
  auto w = store->watch("", [&](const xsn::watch_event& ev) { seen.push_back(ev); });
  const auto [ec, v] = e.put(*store, "k", "v");
  CHECK(ec == ok);
  CHECK(std::get<1>(e.get(*store, "k"))->version == v);
  REQUIRE(e.flush(*store) == ok);
  CHECK(seen.size() == 1);

  SECTION("a wrong password for the user fails to connect") {
    o.password = "nope";
    auto bad = e.make(o);
    CHECK(e.connect(*bad) == unavailable);
    CHECK(bad->last_error().find("AUTH failed") != std::string::npos);
  }
  SECTION("outside its key pattern the user gets an error, not a crash") {
    o.key_prefix = "elsewhere:";
    auto other = e.make(o);
    REQUIRE(e.connect(*other) == ok);
    CHECK(std::get<0>(e.put(*other, "k", "v")) == bad_message);
    // The scripts declare no keys, so Redis refuses the first redis.call (before any write).
    const auto why = other->last_error();
    CHECK((why.find("NOPERM") != std::string::npos || why.find("can't access") != std::string::npos));
  }
}

TEST_CASE("redis_state_store: key prefixes keep applications apart", "[redis]") {
  auto& server = xsn_test::shared_redis();
  env e;
  auto a = e.make(e.options(server));
  auto b = e.make(e.options(server));
  REQUIRE(e.connect(*a) == ok);
  REQUIRE(e.connect(*b) == ok);
  std::vector<xsn::watch_event> seen_b;
  auto w = b->watch("", [&](const xsn::watch_event& ev) { seen_b.push_back(ev); });

  REQUIRE(std::get<0>(e.put(*a, "k", "from a")) == ok);
  REQUIRE(std::get<0>(e.put(*a, "only-a", "x")) == ok);
  CHECK_FALSE(std::get<1>(e.get(*b, "k")));
  REQUIRE(std::get<0>(e.put(*b, "k", "from b")) == ok);
  CHECK(std::get<1>(e.get(*a, "k"))->value == "from a");
  CHECK(std::get<1>(e.list(*b, "")).size() == 1);
  CHECK(std::get<1>(e.list(*a, "")).size() == 2);
  REQUIRE(e.flush(*b) == ok);
  REQUIRE(seen_b.size() == 1);  // a's writes are not b's
  CHECK(seen_b[0].key == "k");
  CHECK(a->health().entries == 2);
  CHECK(b->health().entries == 1);
}

TEST_CASE("redis_state_store: two stores on one prefix share versions; health follows the counters replies carry",
          "[redis]") {
  auto& server = xsn_test::shared_redis();
  env e;
  const auto o = e.options(server);
  auto a = e.make(o);
  auto b = e.make(o);
  REQUIRE(e.connect(*a) == ok);
  REQUIRE(e.connect(*b) == ok);
  const auto [ec1, v1] = e.put(*a, "k", "12345");  // a creation: the general path, with counters
  REQUIRE(ec1 == ok);
  CHECK(a->health().entries == 1);
  CHECK(a->health().bytes == 6);
  const auto [ec2, v2] = e.put(*b, "k", "1");  // b replaces it: the fast path, a byte delta only
  REQUIRE(ec2 == ok);
  CHECK(v2 > v1);  // one counter per prefix: versions are store-wide
  const auto [ec3, v3] = e.cas(*a, "k", v1, "stale");
  CHECK(ec3 == xsn::make_error_code(xsn::errc::version_conflict));
  CHECK(v3 == v2);
  // Neither store has seen the other's counters yet: b applied -4 bytes to the 0 it knew (never
  // below zero), a still has its own 6.
  CHECK(b->health().entries == 0);
  CHECK(b->health().bytes == 0);
  CHECK(a->health().bytes == 6);
  // A reply that carries the counters (here a get of a missing key) brings both up to date.
  CHECK_FALSE(std::get<1>(e.get(*a, "missing")));
  CHECK_FALSE(std::get<1>(e.get(*b, "missing")));
  CHECK(a->health().entries == 1);
  CHECK(a->health().bytes == 2);
  CHECK(b->health().entries == 1);
  CHECK(b->health().bytes == 2);
  CHECK(std::get<1>(e.get(*a, "k"))->value == "1");
}

TEST_CASE("redis_state_store: junk under the prefix is an error, never a crash", "[redis]") {
  auto& server = xsn_test::shared_redis();
  env e;
  auto o = e.options(server);
  const auto p = o.key_prefix;
  auto store = e.make(o);
  REQUIRE(e.connect(*store) == ok);
  REQUIRE(std::get<0>(e.put(*store, "good", "v")) == ok);

  SECTION("a malformed record") {
    server.command({"HSET", p + "d:bad", "m", "not a record", "d", "v"});
    server.command({"ZADD", p + "i", "0", "bad"});
    CHECK(std::get<0>(e.get(*store, "bad")) == bad_message);
    CHECK(std::get<0>(e.put(*store, "bad", "x")) == bad_message);
    CHECK(std::get<0>(e.list(*store, "")) == bad_message);
    CHECK(store->last_error().find("malformed record") != std::string::npos);
    CHECK(std::get<1>(e.get(*store, "good"))->value == "v");  // the rest still works
  }
  SECTION("a record with a malformed expiry") {
    server.command({"HSET", p + "d:bad", "m", "12 99x 3", "d", "v"});
    CHECK(std::get<0>(e.get(*store, "bad")) == bad_message);
    CHECK(std::get<0>(e.put(*store, "bad", "x")) == bad_message);
  }
  SECTION("a record without its value") {
    server.command({"HSET", p + "d:bad", "m", "12 - 3"});
    server.command({"ZADD", p + "i", "0", "bad"});
    CHECK(std::get<0>(e.get(*store, "bad")) == bad_message);
    CHECK(std::get<0>(e.list(*store, "")) == bad_message);
  }
  SECTION("a record that is not a hash") {
    server.command({"SET", p + "d:h", "v"});
    CHECK(std::get<0>(e.get(*store, "h")) == bad_message);
    CHECK(store->last_error().find("WRONGTYPE") != std::string::npos);
    CHECK(std::get<0>(e.put(*store, "h", "x")) == bad_message);
  }
  SECTION("a TTL record that is malformed") {
    server.command({"HSET", p + "t", "gone", "junk"});
    server.command({"ZADD", p + "i", "0", "gone"});
    CHECK_FALSE(std::get<1>(e.get(*store, "gone")));  // absent, accounted as expired
    CHECK(std::get<0>(e.put(*store, "gone", "x")) == ok);
  }
  SECTION("counters of the wrong type") {
    server.command({"DEL", p + "c"});
    server.command({"SET", p + "c", "junk"});
    CHECK(std::get<0>(e.put(*store, "x", "v")) == bad_message);
    server.command({"DEL", p + "c"});
    server.command({"HSET", p + "c", "b", "junk"});
    CHECK(std::get<0>(e.put(*store, "x", "v")) == bad_message);
  }
  SECTION("junk on the watch channel is ignored") {
    std::vector<xsn::watch_event> seen;
    auto w = store->watch("", [&](const xsn::watch_event& ev) { seen.push_back(ev); });
    REQUIRE(e.flush(*store) == ok);
    for (const char* junk : {"", "p", "p x k", "z 1 k", "p 99999999999999999999999 k", "s nope"}) {
      server.command({"PUBLISH", p + "w", junk});
    }
    REQUIRE(std::get<0>(e.put(*store, "after", "v")) == ok);
    REQUIRE(e.flush(*store) == ok);
    REQUIRE(seen.size() == 1);
    CHECK(seen[0].key == "after");
  }
  SECTION("a record deleted behind the store's back reads as expired") {
    std::vector<xsn::watch_event> seen;
    auto w = store->watch("", [&](const xsn::watch_event& ev) { seen.push_back(ev); });
    server.command({"DEL", p + "d:good"});
    CHECK_FALSE(std::get<1>(e.get(*store, "good")));
    REQUIRE(e.flush(*store) == ok);
    REQUIRE(seen.size() == 1);
    CHECK(seen[0].kind == xsn::watch_kind::expire);
    CHECK(seen[0].version == 0);  // no TTL record: its version is not known any more
    CHECK(store->health().entries == 0);
  }
  SECTION("a TTL value Redis' backstop removed reads as expired, with its version") {
    std::vector<xsn::watch_event> seen;
    auto w = store->watch("", [&](const xsn::watch_event& ev) { seen.push_back(ev); });
    const auto [ec, v] = e.wait(start<ec_t, version_t>([&](auto h) {
      store->async_put("ttl", "abc", xsn::put_options{std::chrono::hours(1)}, std::move(h));
    }));
    REQUIRE(ec == ok);
    REQUIRE(e.flush(*store) == ok);
    seen.clear();
    server.command({"DEL", p + "d:ttl"});  // what PEXPIRE does when the backstop runs out
    const auto [ec2, listed] = e.list(*store, "");
    REQUIRE(ec2 == ok);
    CHECK(listed.size() == 1);  // "good" only
    REQUIRE(e.flush(*store) == ok);
    REQUIRE(seen.size() == 1);
    CHECK(seen[0].kind == xsn::watch_kind::expire);
    CHECK(seen[0].version == v);
    CHECK(server.command({"HGET", p + "c", "n"}).str == "1");
    CHECK(server.command({"HGET", p + "c", "b"}).str == "5");  // "good" + "v" only
    CHECK(server.command({"HLEN", p + "t"}).integer == 0);
    CHECK(server.command({"ZCARD", p + "x"}).integer == 0);
  }
}

TEST_CASE("redis_state_store: scripts flushed from Redis are sent again", "[redis]") {
  auto& server = xsn_test::shared_redis();
  env e;
  auto store = e.make(e.options(server));
  REQUIRE(e.connect(*store) == ok);
  REQUIRE(std::get<0>(e.put(*store, "k", "1")) == ok);
  REQUIRE(server.command({"SCRIPT", "FLUSH"}).str == "OK");
  const auto [ec, v] = e.put(*store, "k", "2");
  CHECK(ec == ok);
  CHECK(std::get<1>(e.get(*store, "k"))->version == v);
}

TEST_CASE("redis_state_store: killed and restarted with appendonly, no acknowledged write is lost",
          "[redis]") {
  xsn_test::redis_server server({"", true, {}});
  env e;
  auto store = e.make(e.options(server));
  REQUIRE(e.connect(*store) == ok);
  std::vector<xsn::store_version> versions;
  // (std::string(...) + : GCC 12 warns -Wrestrict, wrongly, on "literal" + std::string&&.)
  for (int i = 0; i < 20; ++i) {
    const auto [ec, v] = e.put(*store, std::string("k") + std::to_string(i), std::string("v") + std::to_string(i));
    REQUIRE(ec == ok);
    versions.push_back(v);
  }
  server.kill();
  // Gone: a clear error, for reads and writes alike.
  CHECK(std::get<0>(e.put(*store, "during", "x")) == unavailable);
  CHECK(std::get<0>(e.get(*store, "k0")) == unavailable);
  CHECK_FALSE(store->health().reachable);

  REQUIRE(server.start());
  e.reconnect(*store);
  for (int i = 0; i < 20; ++i) {
    const auto [ec, v] = e.get(*store, std::string("k") + std::to_string(i));
    REQUIRE(ec == ok);
    REQUIRE(v);
    CHECK(v->value == "v" + std::to_string(i));
    CHECK(v->version == versions[static_cast<std::size_t>(i)]);
  }
  CHECK_FALSE(std::get<1>(e.get(*store, "during")));
  const auto [ec, v] = e.put(*store, "after", "x");
  CHECK(ec == ok);
  CHECK(v > versions.back());  // the version counter survived too
  CHECK(store->health().entries == 21);
}

TEST_CASE("redis_state_store: a slow Redis is a command timeout, not a hang", "[redis]") {
  xsn_test::redis_server server;
  env e;
  auto o = e.options(server);
  o.command_timeout = 300ms;
  auto store = e.make(o);
  REQUIRE(e.connect(*store) == ok);
  const auto v1 = std::get<1>(e.put(*store, "k", "1"));
  {
    // Every client's commands wait 1.5 s (acknowledged before it starts, unlike DEBUG SLEEP).
    REQUIRE(server.command({"CLIENT", "PAUSE", "1500", "ALL"}).str == "OK");
    const auto [ec, v] = e.cas(*store, "k", v1, "2");
    // Sent and unanswered: timed out (the outcome is unknown); not sent: unavailable.
    CHECK((ec == std::errc::timed_out || ec == unavailable));
    CHECK(v == 0);
  }
  // The server wakes up; the store reconnects. The CAS may or may not have happened: read back.
  e.reconnect(*store);
  const auto [ec, cur] = e.get(*store, "k");
  REQUIRE(ec == ok);
  REQUIRE(cur);
  CHECK((cur->value == "1" || cur->value == "2"));
  CHECK(std::get<0>(e.cas(*store, "k", cur->version, "3")) == ok);
}

TEST_CASE("redis_state_store: a killed connection is reopened", "[redis]") {
  xsn_test::redis_server server;
  env e;
  auto store = e.make(e.options(server));
  REQUIRE(e.connect(*store) == ok);
  REQUIRE(std::get<0>(e.put(*store, "k", "v")) == ok);
  const auto killed = server.command({"CLIENT", "KILL", "TYPE", "normal"});
  CHECK(killed.integer >= 1);
  // A read in flight on the dead connection is resent on the new one.
  const auto [ec, v] = e.get(*store, "k");
  CHECK(ec == ok);
  REQUIRE(v);
  CHECK(v->value == "v");
  CHECK(std::get<0>(e.put(*store, "k", "w")) == ok);
  CHECK(store->health().reachable);
}

TEST_CASE("redis_state_store: a reply over max_reply_bytes fails its operation, and the store goes on", "[redis]") {
  xsn_test::redis_server server;
  env e;
  auto o = e.options(server);
  o.max_reply_bytes = 8192;
  auto store = e.make(o);
  REQUIRE(e.connect(*store) == ok);
  REQUIRE(std::get<0>(e.put(*store, "big", std::string(10'000, 'b'))) == ok);  // its reply is small
  REQUIRE(std::get<0>(e.put(*store, "small", "s")) == ok);
  const auto too_large = std::make_error_code(std::errc::value_too_large);
  const auto [ec, v] = e.get(*store, "big");
  CHECK(ec == too_large);
  CHECK_FALSE(v);
  CHECK(store->last_error().find("max_reply_bytes (8192)") != std::string::npos);
  CHECK(std::get<0>(e.list(*store, "")) == too_large);  // the page holds the big value
  // The connection was dropped and is reopened: everything else still works.
  const auto [ec2, small] = e.get(*store, "small");
  CHECK(ec2 == ok);
  REQUIRE(small);
  CHECK(small->value == "s");
  REQUIRE(std::get<0>(e.put(*store, "big", "now small")) == ok);
  const auto [ec3, entries] = e.list(*store, "");
  CHECK(ec3 == ok);
  CHECK(entries.size() == 2);
}

TEST_CASE("redis_state_store: a host name goes through the resolver and an address does not", "[redis]") {
  xsn_test::redis_server server;
  env e;
  auto by_name = e.options(server);
  by_name.host = "localhost";  // /etc/hosts: no DNS query
  auto named = e.make(by_name);
  REQUIRE(e.connect(*named) == ok);
  CHECK(std::get<0>(e.put(*named, "k", "by name")) == ok);
  auto by_address = e.options(server);
  by_address.key_prefix = by_name.key_prefix;
  auto addressed = e.make(by_address);  // host "127.0.0.1", the default: connected to directly
  REQUIRE(e.connect(*addressed) == ok);
  auto [ec, got] = e.get(*addressed, "k");
  CHECK(ec == ok);
  REQUIRE(got);
  CHECK(got->value == "by name");
}

TEST_CASE("redis_state_store: no Redis is a clear error within the connect timeout", "[redis]") {
  env e;
  redis_store_options o;
  {
    xsn_test::redis_server gone;  // a port that was just free, now closed again
    o.port = gone.port();
  }
  o.connect_timeout = 500ms;
  o.reconnect_initial = 5ms;
  o.reconnect_max = 20ms;
  auto store = e.make(o);
  CHECK(e.connect(*store) == unavailable);
  CHECK(std::get<0>(e.put(*store, "k", "v")) == unavailable);
  CHECK(std::get<0>(e.get(*store, "k")) == unavailable);
  CHECK_FALSE(store->health().reachable);
  CHECK(store->last_error().find("connect") != std::string::npos);
}

TEST_CASE("redis_state_store: bounded pending operations fail at once past the limit", "[redis]") {
  auto& server = xsn_test::shared_redis();
  env e;
  auto o = e.options(server);
  o.max_pending = 4;
  auto store = e.make(o);
  REQUIRE(e.connect(*store) == ok);
  std::vector<std::future<std::tuple<std::error_code, xsn::store_version>>> futures;
  for (int i = 0; i < 10; ++i) {
    futures.push_back(start<ec_t, version_t>([&](auto h) { store->async_put("k" + std::to_string(i), "v", std::move(h)); }));
  }
  int ok_count = 0;
  int full_count = 0;
  for (auto& f : futures) {
    const auto ec = std::get<0>(e.wait(std::move(f)));
    if (!ec) ++ok_count;
    if (ec == xsn::errc::queue_full) ++full_count;
  }
  CHECK(ok_count == 4);
  CHECK(full_count == 6);
  CHECK(std::get<0>(e.put(*store, "later", "v")) == ok);  // room again
}

TEST_CASE("redis_state_store: bad options are rejected", "[redis]") {
  env e;
  redis_store_options o;
  o.key_prefix.clear();
  CHECK_THROWS_AS(e.make(o), std::system_error);
  o.key_prefix = "x:";
  o.max_pending = 0;
  CHECK_THROWS_AS(e.make(o), std::system_error);
  o.max_pending = 10;
  o.max_reply_bytes = 4095;
  CHECK_THROWS_AS(e.make(o), std::system_error);
}

namespace {

const char* counter_doc = R"(<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" datamodel="ecmascript">
  <datamodel><data id="n" expr="0"/></datamodel>
  <state id="idle"><transition event="inc"><assign location="n" expr="n + 1"/></transition>
    <transition event="go" target="busy"/></state>
  <state id="busy"><transition event="back" target="idle"/></state></scxml>)";

}  // namespace

TEST_CASE("redis_state_store: the orchestrator runs on it unchanged and restores from it", "[redis]") {
  auto& server = xsn_test::shared_redis();
  env e;
  auto o = e.options(server);
  auto parsed = xsn::parse_scxml(counter_doc, "counter.scxml");
  REQUIRE(parsed);
  std::shared_ptr<xsn::state_store> store = redis_state_store::create(e.ioc.get_executor(), e.clk, o);
  REQUIRE(e.connect(static_cast<redis_state_store&>(*store)) == ok);

  // async_send completes with a send_result too; these checks need only the error.
  auto send_done = [](auto h) { return [h](std::error_code ec, const xsn::send_result&) { h(ec); }; };
  auto run = [&](auto initiate) {
    std::promise<std::error_code> p;
    initiate([&p](std::error_code ec) { p.set_value(ec); });
    return e.wait(p.get_future());
  };
  {
    xsn::channel_event_bus bus(e.ioc.get_executor(), e.clk);
    xsn::orchestrator orch(e.ioc.get_executor(), e.clk, bus, *store);
    orch.add_document("counter", parsed.chart);
    for (const char* id : {"a", "b", "c"}) {
      REQUIRE(run([&](auto h) { orch.async_create(id, "counter", h); }) == ok);
    }
    for (int i = 0; i < 3; ++i) REQUIRE(run([&](auto h) { orch.async_send("a", xsn::event("inc"), send_done(h)); }) == ok);
    REQUIRE(run([&](auto h) { orch.async_send("b", xsn::event("go"), send_done(h)); }) == ok);
    REQUIRE(run([&](auto h) { orch.async_shutdown(1s, h); }) == ok);
    bus.shutdown();
    e.ioc.restart();
    e.ioc.poll();
  }
  CHECK(std::get<1>(e.list(*store, "xsn/machines/")).size() == 3);
  {
    xsn::channel_event_bus bus(e.ioc.get_executor(), e.clk);
    xsn::orchestrator orch(e.ioc.get_executor(), e.clk, bus, *store);
    orch.add_document("counter", parsed.chart);
    std::promise<std::pair<std::error_code, std::size_t>> p;
    orch.async_restore([&p](std::error_code ec, std::size_t n) { p.set_value({ec, n}); });
    const auto [ec, n] = e.wait(p.get_future());
    REQUIRE(ec == ok);
    INFO("orchestrator: " << orch.health().last_error << "; store: " << store->health().entries
                          << " entries, last error: "
                          << static_cast<redis_state_store&>(*store).last_error());
    CHECK(n == 3);
    e.ioc.restart();
    e.ioc.poll();
    CHECK(orch.query("b")->states == std::vector<std::string>{"busy"});
    CHECK(orch.query("a")->states == std::vector<std::string>{"idle"});
    REQUIRE(run([&](auto h) { orch.async_send("a", xsn::event("inc"), send_done(h)); }) == ok);
    const auto stored = std::get<1>(e.get(*store, "xsn/machines/a"));
    REQUIRE(stored);
    const auto doc = boost::json::parse(stored->value);
    CHECK(doc.at("snapshot").at("context").at("n").to_number<std::int64_t>() == 4);
    REQUIRE(run([&](auto h) { orch.async_shutdown(1s, h); }) == ok);
    bus.shutdown();
    e.ioc.restart();
    e.ioc.poll();
  }
}

namespace {

using batch_t = std::vector<xsn::batch_result>;

std::tuple<std::error_code, batch_t> write_batch(env& e, xsn::state_store& s,
                                                 std::vector<xsn::batch_write> writes) {
  return e.wait(start<ec_t, batch_t>(
      [&](auto h) { s.async_write_batch(std::move(writes), std::move(h)); }));
}

xsn::batch_write bput(std::string key, std::string value) {
  return xsn::batch_write{std::move(key), std::move(value), std::nullopt, {}};
}

xsn::batch_write bcas(std::string key, xsn::store_version expected, std::string value) {
  return xsn::batch_write{std::move(key), std::move(value), expected, {}};
}

const std::error_code conflict = xsn::make_error_code(xsn::errc::version_conflict);

}  // namespace

TEST_CASE("redis_state_store: a batch of 1,000 writes is a few script calls, in order", "[redis]") {
  auto& server = xsn_test::shared_redis();
  env e;
  auto o = e.options(server);
  auto store = e.make(o);
  REQUIRE(e.connect(*store) == ok);
  const auto calls = [&] {
    const auto info = server.command({"INFO", "commandstats"}).str;
    const auto at = info.find("cmdstat_evalsha:calls=");
    if (at == std::string::npos) return 0LL;
    return std::stoll(info.substr(at + 22));
  };
  // A first write: the connect's sweep (a script call too) has run before it.
  REQUIRE(std::get<0>(e.put(*store, "k0", "x")) == ok);
  std::vector<xsn::batch_write> writes;
  for (int i = 0; i < 1000; ++i) {
    // Keys 0-799 are new; the last 200 writes replace keys 0-199 (the fast path's case).
    writes.push_back(bput(std::string("k") + std::to_string(i % 800), std::string(100, 'a') + std::to_string(i)));
  }
  const auto before = calls();
  const auto [ec, results] = write_batch(e, *store, std::move(writes));
  const auto used = calls() - before;
  REQUIRE(ec == ok);
  REQUIRE(results.size() == 1000);
  for (std::size_t i = 0; i < results.size(); ++i) {
    REQUIRE(results[i].ec == ok);
    if (i > 0) REQUIRE(results[i].version == results[i - 1].version + 1);  // one counter, in order
  }
  CHECK(used == 4);  // 256 entries per call
  CHECK(store->health().entries == 800);
  const auto [gec, v] = e.get(*store, "k5");
  REQUIRE(v);
  CHECK(v->value == std::string(100, 'a') + "805");
  CHECK(v->version == results[805].version);
  const auto [lec, all] = e.list(*store, "");
  CHECK(all.size() == 800);
  // The counters in Redis are exact, and the store took them from the batch's replies.
  CHECK(server.command({"HGET", o.key_prefix + "c", "n"}).str == "800");
  std::size_t bytes = 0;
  for (const auto& [k, sv] : all) bytes += k.size() + sv.value.size();
  CHECK(store->health().bytes == bytes);
  CHECK(store->pending() == 0);
}

TEST_CASE("redis_state_store: a batch mixing conflicts, a malformed record and watches", "[redis]") {
  auto& server = xsn_test::shared_redis();
  env e;
  auto o = e.options(server);
  const auto p = o.key_prefix;
  auto store = e.make(o);
  REQUIRE(e.connect(*store) == ok);
  std::vector<xsn::watch_event> seen;
  auto w = store->watch("", [&](const xsn::watch_event& ev) { seen.push_back(ev); });
  const auto [ec1, va] = e.put(*store, "a", "0");
  REQUIRE(ec1 == ok);
  server.command({"HSET", p + "d:bad", "m", "not a record", "d", "v"});
  server.command({"ZADD", p + "i", "0", "bad"});

  const auto [ec, r] = write_batch(e, *store,
                                   {bcas("a", va, "1"), bcas("a", va, "stale"), bput("bad", "x"),
                                    bcas("new", 0, "n"), bcas("new", 0, "again"), bput("a", "2")});
  REQUIRE(ec == ok);
  REQUIRE(r.size() == 6);
  CHECK(r[0].ec == ok);
  CHECK(r[1].ec == conflict);
  CHECK(r[1].version == r[0].version);
  CHECK(r[2].ec == bad_message);  // that entry alone: the others before and after still ran
  CHECK(store->last_error().find("malformed record") != std::string::npos);
  CHECK(r[3].ec == ok);
  CHECK(r[4].ec == conflict);
  CHECK(r[4].version == r[3].version);
  CHECK(r[5].ec == ok);
  CHECK(r[5].version > r[3].version);
  REQUIRE(e.flush(*store) == ok);
  REQUIRE(seen.size() == 4);
  CHECK(seen[1].key == "a");
  CHECK(seen[1].version == r[0].version);
  CHECK(seen[2].key == "new");
  CHECK(seen[2].version == r[3].version);
  CHECK(seen[3].key == "a");
  CHECK(seen[3].version == r[5].version);
  CHECK(std::get<1>(e.get(*store, "a"))->value == "2");
}

TEST_CASE("redis_state_store: a batch whose replies are lost fails its entries, not the store", "[redis]") {
  xsn_test::redis_server server;
  env e;
  auto o = e.options(server);
  o.command_timeout = 300ms;
  auto store = e.make(o);
  REQUIRE(e.connect(*store) == ok);
  const auto v1 = std::get<1>(e.put(*store, "k", "1"));
  REQUIRE(server.command({"CLIENT", "PAUSE", "1500", "ALL"}).str == "OK");
  std::vector<xsn::batch_write> writes{bcas("k", v1, "2")};
  for (int i = 0; i < 300; ++i) {  // two script calls
    std::string key(1, 'n');  // (not "n" + ...: GCC 12 warns -Wrestrict, wrongly)
    key += std::to_string(i);
    writes.push_back(bput(std::move(key), "v"));
  }
  const auto [ec, r] = write_batch(e, *store, std::move(writes));
  CHECK(ec == ok);
  REQUIRE(r.size() == 301);
  for (const auto& x : r) {
    // Sent and unanswered: timed out (the outcome is unknown); not sent: unavailable.
    CHECK((x.ec == std::errc::timed_out || x.ec == unavailable));
    CHECK(x.version == 0);
  }
  e.reconnect(*store);
  const auto [gec, cur] = e.get(*store, "k");
  REQUIRE(cur);
  CHECK((cur->value == "1" || cur->value == "2"));
  CHECK(store->pending() == 0);
  // And without any Redis: every entry is unavailable.
  server.kill();
  const auto [ec2, r2] = write_batch(e, *store, {bput("x", "1"), bput("y", "2")});
  CHECK(ec2 == ok);
  REQUIRE(r2.size() == 2);
  CHECK(r2[0].ec == unavailable);
  CHECK(r2[1].ec == unavailable);
}

TEST_CASE("redis_state_store: a batch past max_pending fails each entry with queue_full", "[redis]") {
  auto& server = xsn_test::shared_redis();
  env e;
  auto o = e.options(server);
  o.max_pending = 1;
  auto store = e.make(o);
  REQUIRE(e.connect(*store) == ok);
  auto first = start<ec_t, version_t>([&](auto h) { store->async_put("k", "v", std::move(h)); });
  const auto [ec, r] = write_batch(e, *store, {bput("a", "1"), bput("b", "2")});
  CHECK(ec == ok);
  REQUIRE(r.size() == 2);
  CHECK(r[0].ec == xsn::errc::queue_full);
  CHECK(r[1].ec == xsn::errc::queue_full);
  CHECK(std::get<0>(e.wait(std::move(first))) == ok);
  const auto [ec2, r2] = write_batch(e, *store, {bput("a", "1"), bput("b", "2")});
  CHECK(r2.at(1).ec == ok);
}

// ---- closing ----

namespace {

const std::error_code aborted = boost::asio::error::make_error_code(boost::asio::error::operation_aborted);
const std::error_code closed = xsn::make_error_code(xsn::errc::store_closed);

/// A port that was just free and is closed again: connecting is refused.
std::uint16_t refused_port() {
  xsn_test::redis_server gone;
  return gone.port();
}

}  // namespace

TEST_CASE("redis_state_store: async_close with operations in flight lets io.run() return", "[redis]") {
  xsn_test::redis_server server;  // its own: it is paused
  env e;
  auto store = e.make(e.options(server));
  REQUIRE(e.connect(*store) == ok);
  auto handle = store->watch("", [](const xsn::watch_event&) {});  // a second connection
  REQUIRE(e.flush(*store) == ok);
  // Redis answers nothing from now on: what is sent stays in flight.
  REQUIRE(server.command({"CLIENT", "PAUSE", "60000", "ALL"}).str == "OK");
  std::vector<std::error_code> results;
  for (int i = 0; i < 3; ++i) {
    store->async_put(xsn_test::named("k", i), "v",
                     [&](std::error_code ec, xsn::store_version) { results.push_back(ec); });
  }
  store->async_get("k0", [&](std::error_code ec, std::optional<xsn::stored_value>) { results.push_back(ec); });
  store->async_write_batch({xsn::batch_write{"b", "v", std::nullopt, {}}},
                           [&](std::error_code ec, std::vector<xsn::batch_result> r) {
                             results.push_back(ec);
                             for (const auto& one : r) results.push_back(one.ec);
                           });
  store->async_flush([&](std::error_code ec) { results.push_back(ec); });
  e.ioc.restart();
  e.ioc.poll();  // written to the socket
  CHECK(store->pending() == 6);
  std::optional<std::error_code> close_ec;
  store->async_close([&](std::error_code ec) { close_ec = ec; });
  // On this thread: returns once the store holds nothing on the io_context (a hang is the
  // test's timeout).
  e.ioc.restart();
  e.ioc.run();
  REQUIRE(close_ec);
  CHECK(*close_ec == ok);
  // The batch as a whole was accepted; its entry was aborted with the rest.
  CHECK(results == std::vector<std::error_code>{aborted, aborted, aborted, aborted, ok, aborted, aborted});
  CHECK(store->pending() == 0);
  CHECK(std::get<0>(e.put(*store, "later", "v")) == closed);
  CHECK(e.connect(*store) == closed);
  CHECK(e.flush(*store) == closed);
}

TEST_CASE("redis_state_store: async_close with nothing pending lets io.run() return", "[redis]") {
  auto& server = xsn_test::shared_redis();
  env e;
  auto store = e.make(e.options(server));
  REQUIRE(e.connect(*store) == ok);
  REQUIRE(std::get<0>(e.put(*store, "k", "v")) == ok);
  bool done = false;
  store->async_close([&](std::error_code ec) { done = !ec; });
  e.ioc.restart();
  e.ioc.run();
  CHECK(done);
  CHECK(std::get<0>(e.get(*store, "k")) == closed);
}

TEST_CASE("redis_state_store: async_close stops reconnecting to an unreachable Redis", "[redis]") {
  env e;
  redis_store_options o;
  o.port = refused_port();
  o.reconnect_initial = 5ms;
  o.reconnect_max = 20ms;
  auto store = e.make(o);
  REQUIRE(e.connect(*store) == unavailable);  // now waiting for the next attempt
  std::optional<std::error_code> put_ec;
  store->async_put("k", "v", [&](std::error_code ec, xsn::store_version) { put_ec = ec; });
  std::optional<std::error_code> close_ec;
  store->async_close([&](std::error_code ec) { close_ec = ec; });
  e.ioc.restart();
  e.ioc.run();  // without the close: reconnect attempts forever
  CHECK(put_ec == aborted);
  CHECK(close_ec == ok);
}

TEST_CASE("redis_state_store: an orchestrator's write error names the Redis host and port and the reason",
          "[redis]") {
  env e;
  redis_store_options o;
  o.port = refused_port();
  o.reconnect_initial = 5ms;
  o.reconnect_max = 20ms;
  const auto where = "redis 127.0.0.1:" + std::to_string(o.port) + ": ";
  auto parsed = xsn::parse_scxml(counter_doc, "counter.scxml");
  REQUIRE(parsed);
  redis_state_store store(e.ioc.get_executor(), e.clk, o);
  xsn::channel_event_bus bus(e.ioc.get_executor(), e.clk);
  std::vector<std::string> told;
  xsn::orchestrator_options oo;
  oo.on_write_error = [&](const std::string& machine, const xsn::store_error& err) {
    CHECK(err.code == unavailable);
    told.push_back(machine + ": " + err.message);
  };
  {
    xsn::orchestrator orch(e.ioc.get_executor(), e.clk, bus, store, oo);
    orch.add_document("counter", parsed.chart);
    std::promise<std::error_code> created;
    orch.async_create("a", "counter", [&](std::error_code ec) { created.set_value(ec); });
    CHECK(e.wait(created.get_future()) == unavailable);
    REQUIRE(told.size() == 1);
    CHECK(told[0] == "a: " + where + "cannot connect: Connection refused");
    CHECK(orch.health().last_error == "write of machine a failed: " + where + "cannot connect: Connection refused");
    CHECK(store.error_message(unavailable) == where + "cannot connect: Connection refused");
    CHECK(store.error_message(conflict) == where + conflict.message());
    // Then everything ends: the orchestrator, the bus, the store; io.run() returns.
    std::promise<std::error_code> down;
    orch.async_shutdown(1s, [&](std::error_code ec) { down.set_value(ec); });
    e.wait(down.get_future());
  }
  bus.shutdown();
  store.async_close([](std::error_code) {});
  e.ioc.restart();
  e.ioc.run();
}
