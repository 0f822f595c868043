#include <xsn/runtime/session.hpp>

#include "catch.hpp"

#include <xsn/config.hpp>
#include <xsn/parse/scxml.hpp>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json/serialize.hpp>

#include <exception>
#include <future>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

namespace {

using states = std::vector<std::string>;

std::shared_ptr<const xsn::statechart> chart(const std::string& body, const std::string& attrs = "") {
  auto r = xsn::parse_scxml("<scxml xmlns=\"http://www.w3.org/2005/07/scxml\" version=\"1.0\"" + attrs + ">" + body + "</scxml>",
                            "async.scxml");
  if (!r) FAIL(r.errors.front().to_string());
  return r.chart;
}

const char* toggle = R"(<state id="off"><transition event="flip" target="on"/></state>
  <state id="on"><transition event="flip" target="off"/><transition event="quit" target="end"/></state><final id="end"/>)";

/// The outcome of one `async_send` completed through a callback.
struct outcome {
  bool called = false;
  std::error_code ec;
  states st;
  auto handler() {
    return [this](std::error_code e, states s) {
      CHECK_FALSE(called);
      called = true;
      ec = e;
      st = std::move(s);
    };
  }
};

struct harness {
  boost::asio::io_context ioc;
  xsn::manual_clock clk;
  std::unique_ptr<xsn::session> s;
  explicit harness(const char* body, xsn::session_options o = {}) {
    s = std::make_unique<xsn::session>(chart(body), ioc.get_executor(), clk, std::move(o));
  }
  void settle() {
    ioc.restart();
    ioc.poll();
  }
};

}  // namespace

TEST_CASE("async_send: a callback completes after the event's macrostep with the configuration") {
  harness h(toggle);
  h.s->start();
  outcome a, b, c;
  h.s->async_send(xsn::event("flip"), a.handler());
  h.s->async_send(xsn::event("flip"), b.handler());
  h.s->async_send(xsn::event("flip"), c.handler());
  CHECK_FALSE(a.called);  // never inside the initiating call
  CHECK(h.s->active_atomic_states() == states{"off"});
  h.settle();
  REQUIRE(a.called);
  REQUIRE(b.called);
  REQUIRE(c.called);
  CHECK_FALSE(a.ec);
  CHECK_FALSE(b.ec);
  CHECK_FALSE(c.ec);
  // Each sees the configuration right after its own macrostep.
  CHECK(a.st == states{"on"});
  CHECK(b.st == states{"off"});
  CHECK(c.st == states{"on"});
}

TEST_CASE("async_send: use_future yields the error code and the states as a tuple") {
  harness h(toggle);
  h.s->start();
  auto f = h.s->async_send(xsn::event("flip"), boost::asio::use_future);
  h.settle();
  REQUIRE(f.wait_for(std::chrono::seconds(0)) == std::future_status::ready);
  auto [ec, st] = f.get();
  CHECK_FALSE(ec);
  CHECK(st == states{"on"});
}

TEST_CASE("async_send: a coroutine awaits each macrostep") {
  harness h(toggle);
  h.s->start();
  std::vector<states> seen;
  std::error_code last;
  bool finished = false;
  auto body = [&]() -> boost::asio::awaitable<void> {
    for (const char* name : {"flip", "flip", "flip", "quit"}) {
      auto [ec, st] = co_await h.s->async_send(xsn::event(name), boost::asio::use_awaitable);
      if (ec) co_return;
      seen.push_back(st);
    }
    auto [ec, st] = co_await h.s->async_send(xsn::event("flip"), boost::asio::use_awaitable);
    last = ec;
  };
  boost::asio::co_spawn(h.ioc, body(), [&](std::exception_ptr e) {
    CHECK_FALSE(e);
    finished = true;
  });
  h.settle();
  REQUIRE(finished);
  CHECK(seen == std::vector<states>{{"on"}, {"off"}, {"on"}, {"end"}});
  CHECK(last == xsn::errc::not_running);  // the machine reached its final state
}

TEST_CASE("async_send: errors: not started, queue full, ended before processing, session destroyed") {
  SECTION("not started") {
    harness h(toggle);
    outcome a;
    h.s->async_send(xsn::event("flip"), a.handler());
    h.settle();
    REQUIRE(a.called);
    CHECK(a.ec == xsn::errc::not_running);
  }
  SECTION("queue full") {
    xsn::session_options o;
    o.queue_capacity = 1;
    harness h(toggle, o);
    h.s->start();
    outcome a, b;
    h.s->async_send(xsn::event("flip"), a.handler());
    h.s->async_send(xsn::event("flip"), b.handler());
    h.ioc.restart();
    h.ioc.run_one();  // queues the first: the queue is full now
    h.ioc.run_one();  // the second is refused
    h.settle();
    REQUIRE(a.called);
    REQUIRE(b.called);
    CHECK_FALSE(a.ec);
    CHECK(b.ec == xsn::errc::queue_full);
    CHECK(a.st == states{"on"});
  }
  SECTION("the session ends before the event is processed") {
    harness h(toggle);
    h.s->start();
    outcome a, b, c;
    h.s->async_send(xsn::event("flip"), a.handler());
    h.s->async_send(xsn::event("quit"), b.handler());
    h.s->async_send(xsn::event("flip"), c.handler());
    h.settle();
    REQUIRE((a.called && b.called && c.called));
    CHECK_FALSE(a.ec);
    CHECK_FALSE(b.ec);
    CHECK(b.st == states{"end"});
    CHECK(c.ec == xsn::errc::not_running);
  }
  SECTION("stopped with events queued") {
    harness h(toggle);
    h.s->start();
    outcome a;
    h.s->async_send(xsn::event("flip"), a.handler());
    h.ioc.restart();
    h.ioc.run_one();  // queued, not yet processed
    h.s->stop();
    h.settle();
    REQUIRE(a.called);
    CHECK(a.ec == xsn::errc::not_running);
  }
  SECTION("destroyed before the call reached it, and with the event queued") {
    harness h(toggle);
    h.s->start();
    outcome a, b;
    h.s->async_send(xsn::event("flip"), a.handler());
    h.ioc.restart();
    h.ioc.run_one();  // a is queued in the session
    h.s->async_send(xsn::event("flip"), b.handler());
    h.s.reset();
    h.settle();
    REQUIRE((a.called && b.called));
    CHECK(a.ec == std::errc::operation_canceled);
    CHECK(b.ec == std::errc::operation_canceled);
  }
}

TEST_CASE("async_send: an event dropped with its cancelled child fails, later ones complete in order") {
  harness h(R"(<state id="s"><invoke id="kid"><content><scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0">
      <state id="k"/></scxml></content></invoke>
      <transition event="leave" target="t"/></state>
    <state id="t"><transition event="back" target="s"/><transition event="ping" target="u"/></state><state id="u"/>)");
  h.s->start();
  h.settle();
  xsn::event forged("ping");
  forged.invokeid = "kid";  // looks like the child's: dropped when the child is cancelled
  outcome leave, ping, ping2;
  h.s->async_send(xsn::event("leave"), leave.handler());
  h.s->async_send(forged, ping.handler());
  h.s->async_send(xsn::event("ping"), ping2.handler());
  h.ioc.restart();
  for (int i = 0; i < 3; ++i) h.ioc.run_one();  // all three queued before the first is processed
  h.settle();
  REQUIRE((leave.called && ping.called && ping2.called));
  CHECK(leave.st == states{"t"});
  CHECK(ping.ec == std::errc::operation_canceled);
  CHECK_FALSE(ping2.ec);
  CHECK(ping2.st == states{"u"});
}

TEST_CASE("async_send: through a strand, completions on the handler's executor") {
  boost::asio::io_context ioc;
  xsn::manual_clock clk;
  auto strand = boost::asio::make_strand(ioc);
  xsn::session s(chart(toggle), strand, clk);
  boost::asio::post(strand, [&] { s.start(); });
  outcome a;
  s.async_send(xsn::event("flip"), boost::asio::bind_executor(strand, a.handler()));
  ioc.run();
  REQUIRE(a.called);
  CHECK(a.st == states{"on"});
}
// The multi-threaded case is in session_concurrency.test.cpp (CI runs it under ThreadSanitizer).
