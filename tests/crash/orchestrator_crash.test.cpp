// Crash test of the orchestrator (ctest label `crash`): a ring of machines passes tokens, driven
// by outside sends (with idempotency keys) and by each machine's own timers, on simulated time.
// The orchestrator is abandoned without shutdown at a seeded random point — over the memory
// store by destroying it mid-run, over Redis by a child process that kills itself with SIGKILL
// (a private redis-server with appendfsync always) — and a new one restores from the store,
// sends every outside event again with its key, and runs until nothing is left to do. Then each
// machine must have received exactly what its predecessor sent it, and every outside event must
// have been applied exactly once: nothing lost, nothing applied twice.
//
// Crash points: XSN_CRASH_POINTS (default 100 per store) from XSN_CRASH_SEED (default 1).
#include <xsn/orchestrator/orchestrator.hpp>

#include "catch.hpp"

#include <xsn/bus/channel_event_bus.hpp>
#include <xsn/config.hpp>
#include <xsn/parse/scxml.hpp>
#include <xsn/store/memory_state_store.hpp>

#if XSN_WITH_ADVANCED
#include <xsn/advanced/redis_state_store.hpp>

#include "redis_server.hpp"
#endif

#include <boost/asio/io_context.hpp>
#include <boost/json/serialize.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;

constexpr int ring = 100;       // machines
constexpr int pokes = 30;       // outside sends (each starts a token of 1..max_hops hops)
constexpr int max_hops = 5;
constexpr int ticks = 2;        // timer-driven tokens per machine
constexpr auto step = 20ms;     // simulated time between outside sends

std::shared_ptr<const xsn::statechart> ring_chart() {
  std::string doc = R"x(<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" datamodel="ecmascript">
  <datamodel>
    <data id="recv" expr="0"/><data id="sent" expr="0"/><data id="poked" expr="0"/>
    <data id="ticks" expr="0"/><data id="errors" expr="0"/>
    <data id="next" expr="'n' + ((parseInt(_sessionid.substring(1)) + 1) % RING)"/>
  </datamodel>
  <state id="run">
    <onentry><send event="tick" delay="50ms"/></onentry>
    <transition event="tick" cond="ticks &lt; TICKS">
      <assign location="ticks" expr="ticks + 1"/><assign location="sent" expr="sent + 1"/>
      <send targetexpr="'xsn:' + next" event="token"><param name="hops" expr="0"/></send>
      <send event="tick" delay="50ms"/>
    </transition>
    <transition event="token">
      <assign location="recv" expr="recv + 1"/>
      <if cond="_event.data.hops &gt; 0">
        <assign location="sent" expr="sent + 1"/>
        <send targetexpr="'xsn:' + next" event="token"><param name="hops" expr="_event.data.hops - 1"/></send>
      </if>
    </transition>
    <transition event="poke">
      <assign location="poked" expr="poked + 1"/><assign location="sent" expr="sent + 1"/>
      <send targetexpr="'xsn:' + next" event="token"><param name="hops" expr="_event.data.hops"/></send>
    </transition>
    <transition event="error.*"><assign location="errors" expr="errors + 1"/></transition>
  </state></scxml>)x";
  doc.replace(doc.find("RING"), 4, std::to_string(ring));
  doc.replace(doc.find("TICKS"), 5, std::to_string(ticks));
  auto r = xsn::parse_scxml(doc, "ring.scxml");
  if (!r) throw std::runtime_error(r.errors.front().to_string());
  return r.chart;
}

std::string id_of(int i) { return "n" + std::to_string(i); }

/// The outside sends of one run, drawn from its seed.
struct poke {
  int target;
  int hops;
};
std::vector<poke> schedule(std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<poke> out;
  for (int i = 0; i < pokes; ++i)
    out.push_back({static_cast<int>(rng() % ring), 1 + static_cast<int>(rng() % max_hops)});
  return out;
}

/// Thrown out of the driver when the crash point is reached (memory store: the process "dies").
struct crashed {};

/// One process's orchestrator on a store, driven on a manual clock. `crash_after` handlers into
/// the run, `on_crash` is called (it throws `crashed` or kills the process).
class driver {
 public:
  driver(boost::asio::io_context& ioc, xsn::manual_clock& clk, xsn::state_store& store, std::string prefix)
      : ioc_(ioc), clk_(clk), bus_(ioc.get_executor(), clk) {
    xsn::orchestrator_options o;
    o.key_prefix = std::move(prefix);
    orch_.emplace(ioc.get_executor(), clk, bus_, store, o);
    auto added = orch_->add_document("ring", ring_chart());
    if (!added) throw std::runtime_error(added.error().message);
  }
  ~driver() {
    orch_.reset();  // abandoned, as a crash leaves it: its waiting operations complete, cancelled
    bus_.shutdown();
    ioc_.restart();
    while (ioc_.poll_one() != 0) {
    }
  }
  driver(const driver&) = delete;
  driver& operator=(const driver&) = delete;

  std::uint64_t crash_after = 0;  // 0: never
  std::function<void()> on_crash;
  std::uint64_t handlers = 0;

  /// Runs handlers until nothing is ready and `done()` holds (default: no store write in flight),
  /// waiting for socket replies (Redis) when nothing is ready yet; counts them toward the crash point.
  void settle(const std::function<bool()>& done = {}) {
    ioc_.restart();
    while (true) {
      std::size_t n = ioc_.poll_one();
      if (n == 0) {
        if (done ? done() : quiet()) return;
        n = ioc_.run_one_for(30s);
        if (n == 0) throw std::runtime_error("stalled for 30 s");
      }
      if (crash_after != 0 && ++handlers == crash_after && on_crash) on_crash();
    }
  }
  bool quiet() const { return !orch_ || orch_->health().writes_in_flight == 0; }
  void create_all() {
    pending_ = ring;
    for (int i = 0; i < ring; ++i)
      orch_->async_create(id_of(i), "ring", [this](std::error_code ec) {
        if (ec && ec != xsn::errc::already_exists) note("create: " + ec.message());
        --pending_;
      });
    settle([&] { return pending_ == 0 && quiet(); });
    check();
  }
  std::size_t restore() {
    std::optional<std::size_t> n;
    pending_ = 1;
    orch_->async_restore([this, &n](std::error_code ec, std::size_t k) {
      if (ec) note("restore: " + ec.message());
      n = k;
      --pending_;
    });
    settle([&] { return pending_ == 0 && quiet(); });
    check();
    return *n;
  }
  /// Sends the pokes, `step` of simulated time apart, each with its idempotency key.
  void run_pokes(const std::vector<poke>& sched) {
    for (std::size_t i = 0; i < sched.size(); ++i) {
      xsn::send_options so{"p" + std::to_string(i)};
      pending_ = 1;
      orch_->async_send(id_of(sched[i].target), xsn::event("poke", boost::json::object{{"hops", sched[i].hops}}), so,
                        [this](std::error_code ec, const xsn::send_result&) {
                          if (ec && ec != std::errc::operation_canceled) note("poke: " + ec.message());
                          --pending_;
                        });
      settle([&] { return pending_ == 0 && quiet(); });
      check();
      advance(step);
    }
  }
  /// Runs until no timer is left and everything is written.
  void drain() {
    settle();
    for (int guard = 0; clk_.pending() > 0 && guard < 10'000; ++guard) advance(step);
    settle();
  }
  void advance(std::chrono::milliseconds d) {
    const auto until = clk_.now() + d;
    settle();
    while (clk_.fire_next(until)) settle();
    clk_.advance_to(until);
    settle();
  }
  /// Every machine's counters.
  std::vector<boost::json::object> counters() {
    std::vector<boost::json::object> out(ring);
    pending_ = ring;
    for (int i = 0; i < ring; ++i)
      orch_->async_snapshot(id_of(i), [this, &out, i](std::error_code ec, xsn::value v) {
        if (ec) note("snapshot of " + id_of(i) + ": " + ec.message());
        else out[i] = v.at("snapshot").at("context").as_object();
        --pending_;
      });
    settle([&] { return pending_ == 0; });
    check();
    return out;
  }
  xsn::orchestrator& orch() { return *orch_; }

 private:
  void note(std::string what) {
    if (failure_.empty()) failure_ = std::move(what);
  }
  void check() {
    if (!failure_.empty()) throw std::runtime_error(failure_);
  }
  int pending_ = 0;  // completions awaited; the callbacks capture `this`, which outlives the orchestrator
  std::string failure_;
  boost::asio::io_context& ioc_;
  xsn::manual_clock& clk_;
  xsn::channel_event_bus bus_;
  std::optional<xsn::orchestrator> orch_;
};

std::int64_t num(const boost::json::object& o, const char* k) { return o.at(k).to_number<std::int64_t>(); }

/// After the restart: nothing lost, nothing applied twice.
void verify(driver& d, const std::vector<poke>& sched, const std::string& what) {
  INFO(what);
  auto c = d.counters();
  std::vector<int> poked(ring, 0);
  for (const auto& p : sched) ++poked[p.target];
  std::int64_t recv = 0, sent = 0;
  for (int i = 0; i < ring; ++i) {
    INFO("machine " << id_of(i) << ": " << boost::json::serialize(c[i]));
    CHECK(num(c[i], "errors") == 0);
    CHECK(num(c[i], "poked") == poked[i]);
    CHECK(num(c[i], "ticks") == ticks);
    CHECK(num(c[i], "recv") == num(c[(i + ring - 1) % ring], "sent"));
    recv += num(c[i], "recv");
    sent += num(c[i], "sent");
  }
  CHECK(recv == sent);
  auto h = d.orch().health();
  CHECK(h.outbox == 0);
  CHECK(h.write_failures == 0);
}

/// The restarted process: restore, make what was never created, send every poke again (keys make
/// repeats harmless), run to the end, check.
void recover_and_verify(driver& d, const std::vector<poke>& sched, const std::string& what) {
  d.restore();
  d.create_all();
  d.run_pokes(sched);
  d.drain();
  verify(d, sched, what);
}

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : fallback;
}

}  // namespace

TEST_CASE("orchestrator_crash: memory store, crash points at random handlers", "[crash]") {
  const int points = env_int("XSN_CRASH_POINTS", 100);
  const auto seed = static_cast<std::uint64_t>(env_int("XSN_CRASH_SEED", 1));
  // How many handlers a whole run takes (the range of crash points), without a crash.
  std::uint64_t total = 0;
  {
    boost::asio::io_context ioc;
    xsn::manual_clock clk;
    xsn::memory_state_store store(ioc.get_executor(), clk);
    driver d(ioc, clk, store, "ring/");
    d.crash_after = ~std::uint64_t{0};
    auto sched = schedule(seed);
    d.create_all();
    d.run_pokes(sched);
    d.drain();
    verify(d, sched, "no crash");
    total = d.handlers;
  }
  REQUIRE(total > 100);
  std::mt19937_64 rng(seed);
  for (int p = 0; p < points; ++p) {
    const auto sched = schedule(seed + 1000 + p);
    const std::uint64_t at = 1 + rng() % total;
    boost::asio::io_context ioc;
    xsn::manual_clock clk;
    xsn::memory_state_store store(ioc.get_executor(), clk);  // outlives the crashed process
    {
      driver d(ioc, clk, store, "ring/");
      d.crash_after = at;
      d.on_crash = [] { throw crashed{}; };
      try {
        d.create_all();
        d.run_pokes(sched);
        d.drain();
      } catch (const crashed&) {
      }
    }
    driver d(ioc, clk, store, "ring/");
    recover_and_verify(d, sched, "memory crash point " + std::to_string(p) + " at handler " + std::to_string(at));
  }
}

#if XSN_WITH_ADVANCED
TEST_CASE("orchestrator_crash: Redis store, a child process killed with SIGKILL", "[crash]") {
  const int points = env_int("XSN_CRASH_POINTS", 100);
  const auto seed = static_cast<std::uint64_t>(env_int("XSN_CRASH_SEED", 1));
  xsn_test::redis_server server({"", true, {}});  // appendonly yes, appendfsync always
  auto options = [&](const std::string& prefix) {
    xsn::advanced::redis_store_options o;
    o.port = server.port();
    o.key_prefix = prefix;
    // Stall detection only (real time): generous, since appendfsync always on a loaded CI disk
    // can take seconds.
    o.connect_timeout = 30s;
    o.command_timeout = 30s;
    return o;
  };
  auto connect = [](boost::asio::io_context& ioc, xsn::advanced::redis_state_store& s) {
    std::optional<std::error_code> r;
    s.async_connect([&r](std::error_code ec) { r = ec; });
    ioc.restart();
    while (!r && ioc.run_one_for(10s) != 0) {
    }
    if (!r || *r) throw std::runtime_error("cannot connect to the test redis-server");
  };
  std::mt19937_64 rng(seed + 7);
  for (int p = 0; p < points; ++p) {
    const auto sched = schedule(seed + 5000 + p);
    const std::uint64_t at = 1 + rng() % 4000;
    const std::string prefix = xsn_test::unique_prefix("crash");
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {  // the process that dies
      try {
        boost::asio::io_context ioc;
        xsn::manual_clock clk;
        xsn::advanced::redis_state_store store(ioc.get_executor(), clk, options(prefix));
        connect(ioc, store);
        driver d(ioc, clk, store, "ring/");
        d.crash_after = at;
        d.on_crash = [] { ::raise(SIGKILL); };
        d.create_all();
        d.run_pokes(sched);
        d.drain();
        ::_exit(0);  // finished before its crash point
      } catch (const std::exception& e) {
        std::fprintf(stderr, "crash point %d: the child failed before its crash point: %s\n", p, e.what());
        ::_exit(3);
      } catch (...) {
        ::_exit(3);
      }
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);  // its exit is the signal, no sleep
    const bool killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
    const bool finished = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    INFO("child status " << status);
    REQUIRE((killed || finished));
    boost::asio::io_context ioc;
    xsn::manual_clock clk;
    xsn::advanced::redis_state_store store(ioc.get_executor(), clk, options(prefix));
    connect(ioc, store);
    {
      driver d(ioc, clk, store, "ring/");
      recover_and_verify(d, sched, "redis crash point " + std::to_string(p) + " at handler " + std::to_string(at) +
                                       (killed ? " (killed)" : " (finished)"));
    }
  }
}
#endif
