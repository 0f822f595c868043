#include <xsn/core/logging.hpp>

#include "catch.hpp"

#include <xsn/bus/channel_event_bus.hpp>
#include <xsn/orchestrator/orchestrator.hpp>
#include <xsn/parse/scxml.hpp>
#include <xsn/resilience/simple_circuit_breaker.hpp>
#include <xsn/core/clock.hpp>
#include <xsn/store/memory_state_store.hpp>

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

// Records are captured with `xsn::logging::configure` and a sink that keeps them; every test
// leaves the registry as it found it (no xsn logger registered).

using namespace std::chrono_literals;
using xsn::logging::level;

namespace {

struct captured {
  std::string logger;
  level severity;
  std::string what;                            // the first word
  std::map<std::string, std::string> fields;  // key=value, quotes removed
};

/// Splits `what key=value key="quoted value"` (JSON-style escapes kept as they are: enough here).
captured parse(const xsn::logging::record& r) {
  captured c{std::string(r.logger), r.severity, {}, {}};
  const std::string text(r.text);
  std::size_t i = text.find(' ');
  c.what = text.substr(0, i);
  while (i != std::string::npos && i < text.size()) {
    const std::size_t key_start = i + 1;
    const std::size_t eq = text.find('=', key_start);
    if (eq == std::string::npos) break;
    const std::string key = text.substr(key_start, eq - key_start);
    std::string value;
    std::size_t end;
    if (eq + 1 < text.size() && text[eq + 1] == '"') {
      end = eq + 2;
      while (end < text.size() && text[end] != '"') end += text[end] == '\\' ? 2 : 1;
      value = text.substr(eq + 2, end - eq - 2);
      ++end;
    } else {
      end = text.find(' ', eq);
      value = text.substr(eq + 1, end == std::string::npos ? std::string::npos : end - eq - 1);
    }
    c.fields[key] = value;
    i = end;
  }
  return c;
}

/// Enables xsn's loggers at `lvl` for the test's lifetime and keeps what they write.
class log_capture {
 public:
  explicit log_capture(level lvl) {
    xsn::logging::configure(lvl, [this](const xsn::logging::record& r) {
      std::lock_guard lock(mutex_);
      records_.push_back(parse(r));
    });
  }
  ~log_capture() { xsn::logging::reset(); }
  log_capture(const log_capture&) = delete;
  log_capture& operator=(const log_capture&) = delete;

  std::vector<captured> records() const {
    std::lock_guard lock(mutex_);
    return records_;
  }
  /// The records of `logger` whose first word is `what`.
  std::vector<captured> find(const std::string& logger, const std::string& what) const {
    std::vector<captured> out;
    for (auto& r : records())
      if (r.logger == logger && r.what == what) out.push_back(r);
    return out;
  }
  void clear() {
    std::lock_guard lock(mutex_);
    records_.clear();
  }

 private:
  mutable std::mutex mutex_;
  std::vector<captured> records_;
};

struct runtime {
  boost::asio::io_context ioc;
  xsn::manual_clock clk;

  void settle() {
    ioc.restart();
    ioc.poll();
  }
};

}  // namespace

TEST_CASE("logging: a breaker transition names the breaker and both states", "[logging]") {
  log_capture cap(level::info);
  xsn::manual_clock clk;
  xsn::simple_circuit_breaker breaker(clk, {.failure_threshold = 2, .open_duration = 10s, .name = "store db"});
  CHECK(breaker.name() == "store db");

  breaker.record_failure();
  CHECK(cap.find("xsn.breaker", "transition").empty());
  breaker.record_failure();  // opens
  auto opened = cap.find("xsn.breaker", "transition");
  REQUIRE(opened.size() == 1);
  CHECK(opened[0].severity == level::warn);
  CHECK(opened[0].fields["breaker"] == "store db");  // quoted: it holds a space
  CHECK(opened[0].fields["from"] == "closed");
  CHECK(opened[0].fields["to"] == "open");
  CHECK(opened[0].fields["at_ns"] == std::to_string(clk.now().time_since_epoch().count()));

  clk.advance(10s);
  REQUIRE(breaker.try_acquire());  // half-open
  breaker.record_success();        // closes
  auto all = cap.find("xsn.breaker", "transition");
  REQUIRE(all.size() == 3);
  CHECK(all[1].severity == level::info);
  CHECK(all[1].fields["from"] == "open");
  CHECK(all[1].fields["to"] == "half_open");
  CHECK(all[2].fields["from"] == "half_open");
  CHECK(all[2].fields["to"] == "closed");
  // Failures and rejections are per call: `debug` only.
  CHECK(cap.find("xsn.breaker", "failure").empty());
  CHECK(cap.find("xsn.breaker", "rejected").empty());
}

TEST_CASE("logging: an unnamed breaker gets a unique name; debug shows rejections", "[logging]") {
  log_capture cap(level::debug);
  xsn::manual_clock clk;
  xsn::simple_circuit_breaker a(clk, {.failure_threshold = 1});
  xsn::simple_circuit_breaker b(clk);
  CHECK(a.name().rfind("breaker-", 0) == 0);
  CHECK(a.name() != b.name());

  a.record_failure();
  CHECK_FALSE(a.try_acquire());
  auto failures = cap.find("xsn.breaker", "failure");
  REQUIRE(failures.size() == 1);
  CHECK(failures[0].fields["breaker"] == a.name());
  CHECK(failures[0].fields["state"] == "closed");
  auto rejected = cap.find("xsn.breaker", "rejected");
  REQUIRE(rejected.size() == 1);
  CHECK(rejected[0].severity == level::debug);
  CHECK(rejected[0].fields["state"] == "open");
}

TEST_CASE("logging: a bus overflow is logged once per episode, each drop at debug", "[logging]") {
  log_capture cap(level::debug);
  runtime rt;
  xsn::channel_event_bus bus(rt.ioc.get_executor(), rt.clk);
  auto sub = bus.subscribe("m 1", {.capacity = 1, .overflow = xsn::overflow_policy::drop_oldest});
  auto subscribed = cap.find("xsn.bus", "subscribe");
  REQUIRE(subscribed.size() == 1);
  CHECK(subscribed[0].fields["subscription"] == std::to_string(sub->id()));
  CHECK(subscribed[0].fields["address"] == "m 1");
  CHECK(subscribed[0].fields["policy"] == "drop_oldest");
  CHECK(subscribed[0].fields["capacity"] == "1");

  for (int i = 0; i < 3; ++i) REQUIRE_FALSE(bus.publish(xsn::bus_message("m 1", xsn::event("tick"))));
  auto overflow = cap.find("xsn.bus", "overflow");
  REQUIRE(overflow.size() == 1);
  CHECK(overflow[0].severity == level::warn);
  CHECK(overflow[0].fields["subscription"] == std::to_string(sub->id()));
  CHECK(overflow[0].fields["address"] == "m 1");
  CHECK(overflow[0].fields["policy"] == "drop_oldest");
  CHECK(overflow[0].fields["dropped"] == "1");
  auto drops = cap.find("xsn.bus", "dropped");
  REQUIRE(drops.size() == 2);
  CHECK(drops[1].severity == level::debug);

  xsn::bus_message got;
  REQUIRE(sub->try_receive(got));
  auto ended = cap.find("xsn.bus", "overflow_end");
  REQUIRE(ended.size() == 1);
  CHECK(ended[0].severity == level::info);
  CHECK(ended[0].fields["dropped"] == "2");
  CHECK(ended[0].fields["backlog"] == "0");

  REQUIRE_FALSE(bus.publish(xsn::bus_message("m 1", xsn::event("tick"))));
  REQUIRE_FALSE(bus.publish(xsn::bus_message("m 1", xsn::event("tick"))));
  CHECK(cap.find("xsn.bus", "overflow").size() == 2);  // a new episode

  bus.shutdown();
  auto shut = cap.find("xsn.bus", "shutdown");
  REQUIRE(shut.size() == 1);
  CHECK(shut[0].fields["subscriptions"] == "1");
  sub.reset();
  auto gone = cap.find("xsn.bus", "unsubscribe");
  REQUIRE(gone.size() == 1);
  CHECK(gone[0].fields["dropped"] == "3");
  CHECK(gone[0].fields["backlog"] == "1");
}

TEST_CASE("logging: a refused publication names the event", "[logging]") {
  log_capture cap(level::debug);
  runtime rt;
  xsn::channel_event_bus bus(rt.ioc.get_executor(), rt.clk);
  auto sub = bus.subscribe("m", {.capacity = 1, .overflow = xsn::overflow_policy::fail});
  REQUIRE_FALSE(bus.publish(xsn::bus_message("m", xsn::event("first"))));
  CHECK(bus.publish(xsn::bus_message("m", xsn::event("second"))) == xsn::errc::queue_full);
  auto overflow = cap.find("xsn.bus", "overflow");
  REQUIRE(overflow.size() == 1);
  CHECK(overflow[0].fields["policy"] == "fail");
  CHECK(overflow[0].fields["rejected"] == "1");
  auto rejected = cap.find("xsn.bus", "rejected");
  REQUIRE(rejected.size() == 1);
  CHECK(rejected[0].fields["event"] == "second");

  CHECK(bus.publish(xsn::bus_message("nobody", xsn::event("lost"))) == xsn::errc::no_subscriber);
  auto unroutable = cap.find("xsn.bus", "unroutable");
  REQUIRE(unroutable.size() == 1);
  CHECK(unroutable[0].fields["address"] == "nobody");
  CHECK(unroutable[0].fields["event"] == "lost");
}

TEST_CASE("logging: a request timeout is a warning with the request's address and event", "[logging]") {
  log_capture cap(level::warn);
  runtime rt;
  xsn::channel_event_bus bus(rt.ioc.get_executor(), rt.clk);
  auto service = bus.subscribe("service");
  std::optional<std::error_code> result;
  bus.async_request(xsn::bus_message("service", xsn::event("ping")), 5ms,
                    [&](std::error_code ec, xsn::bus_message) { result = ec; });
  rt.settle();
  rt.clk.advance(5ms);
  rt.settle();
  REQUIRE(result);
  CHECK(*result == xsn::errc::request_timeout);
  auto timeouts = cap.find("xsn.bus", "request_timeout");
  REQUIRE(timeouts.size() == 1);
  CHECK(timeouts[0].severity == level::warn);
  CHECK(timeouts[0].fields["address"] == "service");
  CHECK(timeouts[0].fields["event"] == "ping");
  CHECK(timeouts[0].fields.count("correlation") == 1);
}

TEST_CASE("logging: a store CAS conflict names op, key and both versions", "[logging]") {
  log_capture cap(level::info);
  runtime rt;
  auto store = std::make_unique<xsn::memory_state_store>(rt.ioc.get_executor(), rt.clk,
                                                         xsn::memory_store_options{.max_entries = 1});
  std::optional<xsn::store_version> v1;
  store->async_put("machine/a", "{}", [&](std::error_code ec, xsn::store_version v) {
    CHECK_FALSE(ec);
    v1 = v;
  });
  rt.settle();
  REQUIRE(v1);
  CHECK(cap.records().empty());  // a successful write is per operation: trace only

  std::optional<std::error_code> conflict;
  store->async_compare_and_set("machine/a", *v1 + 5, "{\"x\":1}",
                               [&](std::error_code ec, xsn::store_version) { conflict = ec; });
  rt.settle();
  REQUIRE(conflict);
  CHECK(*conflict == xsn::errc::version_conflict);
  auto records = cap.find("xsn.store", "conflict");
  REQUIRE(records.size() == 1);
  CHECK(records[0].severity == level::info);
  CHECK(records[0].fields["op"] == "cas");
  CHECK(records[0].fields["key"] == "machine/a");
  CHECK(records[0].fields["expected"] == std::to_string(*v1 + 5));
  CHECK(records[0].fields["current"] == std::to_string(*v1));

  std::optional<std::error_code> full;
  store->async_put("machine/b", "{}", [&](std::error_code ec, xsn::store_version) { full = ec; });
  rt.settle();
  REQUIRE(full);
  CHECK(*full == xsn::errc::store_full);
  auto refused = cap.find("xsn.store", "full");
  REQUIRE(refused.size() == 1);
  CHECK(refused[0].severity == level::warn);
  CHECK(refused[0].fields["op"] == "put");
  CHECK(refused[0].fields["key"] == "machine/b");
  CHECK(refused[0].fields["entries"] == "1");
  CHECK(refused[0].fields["max_entries"] == "1");

  store.reset();
  auto closed = cap.find("xsn.store", "closed");
  REQUIRE(closed.size() == 1);
  CHECK(closed[0].fields["entries"] == "1");
}

TEST_CASE("logging: store expiry at debug, operations at trace", "[logging]") {
  log_capture cap(level::trace);
  runtime rt;
  xsn::memory_state_store store(rt.ioc.get_executor(), rt.clk);
  store.async_put("k", "v", xsn::put_options{1s}, [](std::error_code, xsn::store_version) {});
  rt.settle();
  auto puts = cap.find("xsn.store", "put");
  REQUIRE(puts.size() == 1);
  CHECK(puts[0].severity == level::trace);
  CHECK(puts[0].fields["key"] == "k");
  CHECK(puts[0].fields["version"] == "1");
  rt.clk.advance(1s);
  rt.settle();
  auto expired = cap.find("xsn.store", "expired");
  REQUIRE(expired.size() == 1);
  CHECK(expired[0].severity == level::debug);
  CHECK(expired[0].fields["key"] == "k");
  CHECK(expired[0].fields["version"] == "1");
}

TEST_CASE("logging: nothing is logged per event at the default level", "[logging]") {
  log_capture cap(level::info);  // spdlog's default level
  runtime rt;
  xsn::channel_event_bus bus(rt.ioc.get_executor(), rt.clk);
  auto sub = bus.subscribe("m");
  xsn::memory_state_store store(rt.ioc.get_executor(), rt.clk);
  xsn::simple_circuit_breaker breaker(rt.clk);
  cap.clear();

  std::vector<xsn::bus_message> batch(16);
  for (int i = 0; i < 100; ++i) {
    REQUIRE_FALSE(bus.publish(xsn::bus_message("m", xsn::event("tick", i))));
    CHECK(breaker.execute([] { return std::error_code{}; }) == std::error_code{});
    store.async_put("k", std::to_string(i), [](std::error_code, xsn::store_version) {});
    store.async_get("k", [](std::error_code, std::optional<xsn::stored_value>) {});
  }
  rt.settle();
  std::size_t received = 0;
  while (std::size_t n = sub->try_receive_batch(batch)) received += n;
  CHECK(received == 100);
  CHECK(cap.records().empty());
}

TEST_CASE("logging: per-event records appear at trace and follow set_level", "[logging]") {
  log_capture cap(level::info);
  runtime rt;
  xsn::channel_event_bus bus(rt.ioc.get_executor(), rt.clk);
  auto sub = bus.subscribe("m");
  cap.clear();

  REQUIRE(xsn::logging::set_level("xsn.bus", level::trace));  // an existing bus follows
  REQUIRE_FALSE(bus.publish(xsn::bus_message("m", xsn::event("tick"))));
  xsn::bus_message got;
  REQUIRE(sub->try_receive(got));
  auto published = cap.find("xsn.bus", "publish");
  REQUIRE(published.size() == 1);
  CHECK(published[0].severity == level::trace);
  CHECK(published[0].fields["address"] == "m");
  CHECK(published[0].fields["event"] == "tick");
  CHECK(published[0].fields["subscriptions"] == "1");
  auto received = cap.find("xsn.bus", "receive");
  REQUIRE(received.size() == 1);
  CHECK(received[0].fields["subscription"] == std::to_string(sub->id()));
  CHECK(received[0].fields["count"] == "1");

  xsn::logging::set_level(level::off);
  cap.clear();
  REQUIRE_FALSE(bus.publish(xsn::bus_message("m", xsn::event("tick"))));
  CHECK(cap.records().empty());
}

TEST_CASE("logging: components created after reset are silent", "[logging]") {
  std::vector<std::string> seen;
  xsn::logging::configure(level::trace, [&](const xsn::logging::record& r) { seen.emplace_back(r.text); });
  xsn::logging::reset();
  runtime rt;
  xsn::channel_event_bus bus(rt.ioc.get_executor(), rt.clk);
  auto sub = bus.subscribe("m");
  REQUIRE_FALSE(bus.publish(xsn::bus_message("m", xsn::event("tick"))));
  CHECK(seen.empty());
  CHECK_FALSE(xsn::logging::set_level("xsn.bus", level::info));  // none registered
}

TEST_CASE("logging: configure refuses bad arguments", "[logging]") {
  CHECK_THROWS_AS(xsn::logging::configure(level::info, xsn::logging::sink{}), std::invalid_argument);
  CHECK_THROWS_AS(xsn::logging::configure("xsn.nope", level::info, [](const xsn::logging::record&) {}),
                  std::invalid_argument);
  CHECK_THROWS_AS(xsn::logging::configure("xsn.bus", level::info, xsn::logging::sink{}), std::invalid_argument);
  CHECK_FALSE(xsn::logging::set_level("xsn.nope", level::info));
  CHECK(xsn::logging::is_component("xsn.orchestrator"));
  CHECK_FALSE(xsn::logging::is_component(""));
  CHECK(xsn::logging::to_string(level::warn) == "warn");
  CHECK(xsn::logging::to_string(static_cast<level>(200)) == "off");

  // One logger alone; values that need it are quoted as JSON strings.
  std::vector<std::string> seen;
  xsn::logging::configure("xsn.store", level::info, [&](const xsn::logging::record& r) {
    CHECK(r.logger == "xsn.store");
    seen.emplace_back(r.text);
  });
  {
    runtime rt;
    xsn::memory_state_store store(rt.ioc.get_executor(), rt.clk);
    store.async_compare_and_set("a \"b\"=\n", 3, "v", [](std::error_code, xsn::store_version) {});
    rt.settle();
  }
  xsn::logging::reset();
  REQUIRE(seen.size() == 2);  // the conflict, the destruction
  CHECK(seen[0] == "conflict op=cas key=\"a \\\"b\\\"=\\n\" expected=3 current=0");
}

TEST_CASE("logging: the orchestrator quotes its fields and backs off on unroutable messages", "[logging]") {
  log_capture cap(level::info);
  runtime rt;
  xsn::channel_event_bus bus(rt.ioc.get_executor(), rt.clk);
  xsn::memory_state_store store(rt.ioc.get_executor(), rt.clk);
  xsn::orchestrator orch(rt.ioc.get_executor(), rt.clk, bus, store);
  auto doc = xsn::parse_scxml(R"(<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0"><state id="s"/></scxml>)",
                              "one.scxml");
  REQUIRE(doc);
  orch.add_document("one state", doc.chart);
  std::optional<std::error_code> created;
  orch.async_create("cell 1", "one state", [&](std::error_code ec) { created = ec; });
  rt.settle();
  REQUIRE(created == std::error_code{});
  auto made = cap.find("xsn.orchestrator", "created");
  REQUIRE(made.size() == 1);
  CHECK(made[0].fields["machine"] == "cell 1");
  CHECK(made[0].fields["document"] == "one state");

  for (int i = 0; i < 5; ++i) CHECK_FALSE(bus.publish(xsn::bus_message("machine/ghost", xsn::event("lost"))));
  rt.settle();
  auto warned = cap.find("xsn.orchestrator", "unroutable");
  REQUIRE(warned.size() == 3);  // the 1st, 2nd and 4th
  CHECK(warned[0].severity == level::warn);
  CHECK(warned[0].fields["address"] == "machine/ghost");
  CHECK(warned[0].fields["event"] == "lost");
  CHECK(warned[2].fields["count"] == "4");
  CHECK(orch.health().unroutable == 5);

  std::optional<std::error_code> down;
  orch.async_shutdown(std::chrono::seconds(1), [&](std::error_code ec) { down = ec; });
  rt.settle();
  CHECK(down == std::error_code{});
}
