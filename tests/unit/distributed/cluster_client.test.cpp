#include "distributed/cluster_client.hpp"

#include "catch.hpp"
#include "names.hpp"
#include "redis_cluster.hpp"
#include "redis_server.hpp"

#include "distributed/keys.hpp"

#include <xsn/core/errors.hpp>

#include <boost/asio/error.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

// The Redis Cluster client of `xsn serve` against a real 3-primary cluster on loopback: routing
// by slot, MOVED after a resharding, ASK and TRYAGAIN during a migration, close, bad seeds.
// Each test case runs in its own process (catch_discover_tests), with a cluster of its own.

namespace dist = xsn::distributed;
using namespace std::chrono_literals;

namespace {

/// A reply, copied out of the callback.
struct answer {
  std::error_code ec;
  xsn_test::redis_reply reply;
};

/// A client on an io_context that this thread runs while it waits for something.
struct harness {
  explicit harness(std::vector<std::pair<std::string, std::uint16_t>> seeds, dist::cluster_options opts = {},
                   std::chrono::milliseconds command_timeout = 5s) {
    dist::redis_endpoint ep;
    ep.cluster = std::move(seeds);
    ep.command_timeout = command_timeout;
    ep.connect_timeout = 2s;
    ep.reconnect_initial = 10ms;
    ep.reconnect_max = 200ms;
    client = dist::cluster_client::make(strand, ep, [this](bool up, const std::string& why) { states.emplace_back(up, why); },
                                        opts);
  }
  ~harness() {
    if (client) client->close();
  }

  /// Runs handlers until `done()` or 20 s passed; false then, or when the context ran out of work.
  bool run_until(const std::function<bool()>& done) {
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (!done()) {
      if (ioc.stopped() || std::chrono::steady_clock::now() > deadline) return false;
      ioc.run_one_for(100ms);
    }
    return true;
  }
  bool wait_ready() {
    return run_until([this] { return client->ready(); });
  }

  /// Runs one command on the client (from its strand) and waits for the answer.
  answer call(std::vector<std::string> args, std::chrono::milliseconds timeout = {}) {
    std::optional<answer> out;
    boost::asio::post(strand, [&] {
      client->command(std::move(args), [&](std::error_code ec, const redisReply* r) { out = answer{ec, xsn_test::flatten(r)}; },
                      timeout);
    });
    REQUIRE(run_until([&] { return out.has_value(); }));
    return *out;
  }
  answer script(const std::vector<std::string>& keys, const std::vector<std::string>& args) {
    std::optional<answer> out;
    boost::asio::post(strand, [&] {
      client->script(keys, args, [&](std::error_code ec, const redisReply* r) { out = answer{ec, xsn_test::flatten(r)}; });
    });
    REQUIRE(run_until([&] { return out.has_value(); }));
    return *out;
  }
  std::string address_of(xsn_test::redis_cluster& c, std::size_t i) { return xsn_test::named("127.0.0.1:", c.port(i)); }

  boost::asio::io_context ioc;
  xsn::advanced::detail::strand_type strand{boost::asio::make_strand(ioc.get_executor())};
  std::vector<std::pair<bool, std::string>> states;
  std::shared_ptr<dist::cluster_client> client;
};

/// A node of `c` other than `i`.
std::size_t other(const xsn_test::redis_cluster& c, std::size_t i) { return (i + 1) % c.size(); }

}  // namespace

TEST_CASE("cluster_client: key_slot hashes the hash tag like Redis") {
  // Values from `redis-cli cluster keyslot` (Redis 7.0.15).
  CHECK(dist::key_slot("123456789") == 12739);  // CRC16-XMODEM check value 0x31C3
  CHECK(dist::key_slot("foo") == 12182);
  CHECK(dist::key_slot("bar") == 5061);
  CHECK(dist::key_slot("{user1000}.following") == 3443);
  CHECK(dist::key_slot("{user1000}.followers") == 3443);
  CHECK(dist::key_slot("") == 0);
  CHECK(dist::key_slot("{}") == 15257);         // an empty tag: the whole key
  CHECK(dist::key_slot("{}foo") == 9500);
  CHECK(dist::key_slot("foo{}{bar}") == 8363);  // the first `{` decides, its tag is empty
  CHECK(dist::key_slot("foo{{bar}}zap") == 4015);
  CHECK(dist::key_slot("foo{bar}{zap}") == 5061);
  CHECK(dist::key_slot("{xsn:7}:lease") == 10882);
  CHECK(dist::key_slot("{xsn:}:nodes") == 14802);
  dist::keyspace ks;
  CHECK(dist::key_slot(ks.lease(7)) == dist::key_slot(ks.machine_prefix(7) + "order-1"));
}

TEST_CASE("cluster_client: routing_key follows the rule of redis_client::command") {
  using v = std::vector<std::string>;
  CHECK(dist::routing_key(v{"GET", "k"}) == "k");
  CHECK(dist::routing_key(v{"hmget", "h", "v", "ver"}) == "h");
  CHECK(dist::routing_key(v{"XGROUP", "CREATE", "s", "g", "0", "MKSTREAM"}) == "s");
  CHECK(dist::routing_key(v{"XREADGROUP", "GROUP", "g", "c", "COUNT", "10", "BLOCK", "500", "STREAMS", "s", ">"}) == "s");
  CHECK(dist::routing_key(v{"xread", "count", "1", "streams", "s", "0"}) == "s");
  CHECK_FALSE(dist::routing_key(v{"PUBLISH", "chan", "msg"}));
  CHECK_FALSE(dist::routing_key(v{"PING"}));
  CHECK_FALSE(dist::routing_key(v{"XREAD", "COUNT", "1"}));
}

TEST_CASE("cluster_client: commands and scripts to keys in many slots land on their primaries") {
  xsn_test::redis_cluster cluster;
  harness h(cluster.seeds());
  REQUIRE(h.wait_ready());
  REQUIRE_FALSE(h.states.empty());
  CHECK(h.states.back().first);

  // The slot function agrees with the servers'.
  for (int i = 0; i < 200; ++i) {
    const auto key = xsn_test::named("k", i * 7919) + (i % 3 ? "" : xsn_test::named("{t", i) + "}");
    CHECK(dist::key_slot(key) == cluster.node(0).command({"CLUSTER", "KEYSLOT", key}).integer);
  }

  std::set<std::size_t> owners;
  for (int i = 0; i < 64; ++i) {
    const auto key = xsn_test::named("{k", i) + "}:v";
    const auto set = h.call({"SET", key, xsn_test::named("value-", i)});
    REQUIRE_FALSE(set.ec);
    CHECK(set.reply.str == "OK");
    // Stored where the cluster says the slot lives.
    const auto owner = cluster.owner_of(dist::key_slot(key));
    owners.insert(owner);
    CHECK(cluster.node(owner).command({"GET", key}).str == xsn_test::named("value-", i));
    CHECK(h.client->owner_of(dist::key_slot(key)) == h.address_of(cluster, owner));
    CHECK(h.call({"GET", key}).reply.str == xsn_test::named("value-", i));
  }
  CHECK(owners.size() == cluster.size());

  // The node script, loaded on every primary by the links' handshake.
  dist::keyspace ks;
  ks.prefix = "x:";
  for (unsigned p = 0; p < 16; ++p) {
    const auto got = h.script({ks.lease(p), ks.epoch(p)}, {"acquire", "me", "60000"});
    REQUIRE_FALSE(got.ec);
    REQUIRE(got.reply.elements.size() == 2);
    CHECK(got.reply.elements[0].integer == 1);
    CHECK(h.call({"GET", ks.lease(p)}).reply.str == xsn_test::named("me ", got.reply.elements[1].integer));
  }
  // Keyless commands go to any primary; streams by their key.
  CHECK(h.call({"PING"}).reply.str == "PONG");
  CHECK(h.call({"PUBLISH", "x:reply:nobody", "hi"}).reply.integer == 0);
  CHECK_FALSE(h.call({"XGROUP", "CREATE", ks.stream(3), "xsn", "0", "MKSTREAM"}).reply.error());
  CHECK(h.call({"XADD", ks.stream(3), "*", "f", "v"}).reply.type == REDIS_REPLY_STRING);
  const auto read = h.call({"XREADGROUP", "GROUP", "xsn", "me", "COUNT", "10", "BLOCK", "100", "STREAMS", ks.stream(3), ">"}, 2s);
  REQUIRE_FALSE(read.ec);
  CHECK(read.reply.elements.size() == 1);
  CHECK(h.client->stats().moved == 0);  // the map was right: no redirection
  CHECK(h.client->stats().asked == 0);
  CHECK(h.client->pending() == 0);
}

TEST_CASE("cluster_client: a MOVED after resharding is followed and updates the map") {
  xsn_test::redis_cluster cluster;
  harness h(cluster.seeds());
  REQUIRE(h.wait_ready());
  REQUIRE(h.call({"SET", "foo", "before"}).reply.str == "OK");
  const std::uint16_t slot = dist::key_slot("foo");
  const auto from = cluster.owner_of(slot);
  const auto to = other(cluster, from);
  cluster.move_slot(slot, to);
  CHECK(h.client->owner_of(slot) == h.address_of(cluster, from));  // the client does not know yet

  const auto got = h.call({"GET", "foo"});
  REQUIRE_FALSE(got.ec);
  CHECK(got.reply.str == "before");
  CHECK(h.client->stats().moved == 1);
  CHECK(h.client->owner_of(slot) == h.address_of(cluster, to));
  // Scripts too: the slot of "{foo}" is the slot of "foo".
  cluster.move_slot(slot, from);
  const auto s = h.script({"{foo}:lease", "{foo}:epoch"}, {"acquire", "me", "60000"});
  REQUIRE_FALSE(s.ec);
  CHECK(s.reply.elements.size() == 2);
  CHECK(h.client->stats().moved == 2);
  // The refresh the MOVED asked for agrees.
  REQUIRE(h.run_until([&] { return h.client->stats().refreshes >= 2; }));
  CHECK(h.client->owner_of(slot) == h.address_of(cluster, from));
}

TEST_CASE("cluster_client: ASK and TRYAGAIN during a migration") {
  xsn_test::redis_cluster cluster;
  harness h(cluster.seeds(), {}, 2s);
  REQUIRE(h.wait_ready());
  const std::uint16_t slot = dist::key_slot("{ask}");
  REQUIRE(h.call({"SET", "{ask}a", "1"}).reply.str == "OK");
  REQUIRE(h.call({"SET", "{ask}b", "2"}).reply.str == "OK");
  const auto from = cluster.owner_of(slot);
  const auto to = other(cluster, from);
  cluster.begin_migration(slot, from, to);
  cluster.migrate_keys(slot, from, to, {"{ask}a"});

  // Moved already: the old owner answers ASK, the new one serves it after ASKING.
  auto a = h.call({"GET", "{ask}a"});
  REQUIRE_FALSE(a.ec);
  CHECK(a.reply.str == "1");
  CHECK(h.client->stats().asked == 1);
  // Not moved yet: served where it is.
  CHECK(h.call({"GET", "{ask}b"}).reply.str == "2");
  CHECK(h.client->stats().asked == 1);
  // A new key goes to the importing node.
  CHECK(h.call({"SET", "{ask}new", "3"}).reply.str == "OK");
  CHECK(h.client->stats().asked == 2);
  CHECK(h.call({"GET", "{ask}new"}).reply.str == "3");
  CHECK(h.client->stats().moved == 0);
  CHECK(h.client->owner_of(slot) == h.address_of(cluster, from));  // ASK leaves the map alone

  // Keys on both sides: TRYAGAIN, retried until the deadline, then that answer.
  const auto retried = h.client->stats().retried;
  const auto both = h.call({"MGET", "{ask}a", "{ask}b"}, 300ms);
  REQUIRE_FALSE(both.ec);
  CHECK(both.reply.error());
  CHECK(both.reply.str.starts_with("TRYAGAIN"));
  CHECK(h.client->stats().retried > retried + 1);

  cluster.migrate_keys(slot, from, to);
  cluster.end_migration(slot, from, to);
  const auto after = h.call({"MGET", "{ask}a", "{ask}b"});
  REQUIRE(after.reply.elements.size() == 2);
  CHECK(after.reply.elements[0].str == "1");
  CHECK(after.reply.elements[1].str == "2");
  CHECK(h.client->stats().moved == 1);
  CHECK(h.client->owner_of(slot) == h.address_of(cluster, to));
}

TEST_CASE("cluster_client: a redirection loop ends after max_redirects") {
  xsn_test::redis_cluster cluster;
  dist::cluster_options o;
  o.max_redirects = 3;
  harness h(cluster.seeds(), o);
  REQUIRE(h.wait_ready());
  const std::uint16_t slot = dist::key_slot("loop");
  const auto from = cluster.owner_of(slot);
  const auto to = other(cluster, from);
  // Each side sends the client to the other: `from` migrates to `to` (ASK for a missing key),
  // `to` does not import (MOVED back to `from`).
  REQUIRE_FALSE(cluster.node(from).command({"CLUSTER", "SETSLOT", std::to_string(slot), "MIGRATING", cluster.id(to)}).error());
  const auto got = h.call({"GET", "loop"});
  REQUIRE_FALSE(got.ec);
  CHECK(got.reply.error());
  CHECK((got.reply.str.starts_with("ASK") || got.reply.str.starts_with("MOVED")));
  CHECK(h.client->stats().asked + h.client->stats().moved == 3);
  REQUIRE_FALSE(cluster.node(from).command({"CLUSTER", "SETSLOT", std::to_string(slot), "STABLE"}).error());
}

TEST_CASE("cluster_client: close fails what is pending and leaves the io_context without work") {
  xsn_test::redis_cluster cluster;
  harness h(cluster.seeds());
  REQUIRE(h.wait_ready());
  std::vector<std::error_code> results;
  boost::asio::post(h.strand, [&] {
    for (int i = 0; i < 10; ++i)
      h.client->command({"SET", xsn_test::named("c", i), "x"}, [&](std::error_code ec, const redisReply*) { results.push_back(ec); });
    h.client->command({"XREAD", "BLOCK", "10000", "STREAMS", "{c}s", "$"},
                      [&](std::error_code ec, const redisReply*) { results.push_back(ec); }, 20s);
    h.client->close();
    // After close: failed at once.
    h.client->command({"GET", "c0"}, [&](std::error_code ec, const redisReply*) { results.push_back(ec); });
  });
  const auto start = std::chrono::steady_clock::now();
  h.ioc.run_for(10s);
  CHECK(h.ioc.stopped());  // nothing left: no timer, no socket, no reconnect
  CHECK(std::chrono::steady_clock::now() - start < 5s);
  REQUIRE(results.size() == 12);
  for (auto ec : results) CHECK(ec == std::errc::operation_canceled);
  CHECK_FALSE(h.client->ready());
  CHECK(h.client->pending() == 0);
}

TEST_CASE("cluster_client: close before the first map fails the waiting commands") {
  harness h({{"127.0.0.1", 1}});  // nothing listens on port 1
  std::vector<std::error_code> results;
  boost::asio::post(h.strand, [&] {
    h.client->command({"GET", "k"}, [&](std::error_code ec, const redisReply*) { results.push_back(ec); });
    h.client->close();
  });
  h.ioc.run_for(10s);
  CHECK(h.ioc.stopped());
  REQUIRE(results.size() == 1);
  CHECK(results[0] == std::errc::operation_canceled);
}

TEST_CASE("cluster_client: a seed that is not a cluster is a clear error, not a crash") {
  xsn_test::redis_server plain;
  harness h({{"127.0.0.1", plain.port()}});
  const auto got = h.call({"GET", "k"});
  CHECK(got.ec == xsn::errc::store_unavailable);
  REQUIRE(h.run_until([&] { return !h.states.empty(); }));
  CHECK_FALSE(h.states.front().first);
  CHECK_THAT(h.states.front().second, Catch::Matchers::ContainsSubstring("cluster support disabled"));
  CHECK_FALSE(h.client->ready());
  // It keeps trying (the seed may become a cluster node), and stays quiet about the same reason.
  const auto told = h.states.size();
  const auto got2 = h.call({"GET", "k"});
  CHECK(got2.ec == xsn::errc::store_unavailable);
  CHECK(h.states.size() == told);
}

TEST_CASE("cluster_client: unreachable seeds are skipped, the waiting queue is bounded") {
  xsn_test::redis_cluster cluster;
  SECTION("a dead seed first") {
    auto seeds = cluster.seeds();
    seeds.insert(seeds.begin(), {"127.0.0.1", 1});
    harness h(seeds);
    REQUIRE(h.wait_ready());
    CHECK(h.call({"SET", "k", "v"}).reply.str == "OK");
  }
  SECTION("beyond max_waiting before the first map: queue_full at once") {
    dist::cluster_options o;
    o.max_waiting = 2;
    harness h(cluster.seeds(), o);
    std::vector<std::error_code> results;
    std::vector<std::string> values;
    boost::asio::post(h.strand, [&] {
      for (int i = 0; i < 3; ++i)
        h.client->command({"PING"}, [&](std::error_code ec, const redisReply* r) {
          results.push_back(ec);
          values.emplace_back(dist::str(r));
        });
      CHECK(results.size() == 1);  // the third, before the map arrived
    });
    REQUIRE(h.run_until([&] { return results.size() == 3; }));
    CHECK(results[0] == xsn::errc::queue_full);
    CHECK_FALSE(results[1]);
    CHECK(values[1] == "PONG");
    CHECK(values[2] == "PONG");
  }
}
