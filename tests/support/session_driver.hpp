#pragma once
// A session on a private io_context and manual clock, driven from the test thread: the fixture
// the XState, builder and actor tests share, over the public `xsn::testing::driver`. Each step (an
// event sent, time advanced) is followed by `settle`, which runs the io_context until nothing is
// ready, so the step's macrosteps (and what they started: child actors, timers due) are done
// before the test looks.
#include "catch.hpp"

#include <xsn/parse/xstate.hpp>
#include <xsn/runtime/implementations.hpp>
#include <xsn/runtime/session.hpp>
#include <xsn/testing.hpp>

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace xsn_test {

/// The chart of XState JSON config `json`; fails the test with the first located error.
inline std::shared_ptr<const xsn::statechart> xstate_chart(const std::string& json, const std::string& file = "test.json") {
  auto r = xsn::parse_xstate(json, file);
  INFO((r.errors.empty() ? std::string() : r.errors.front().to_string()));
  REQUIRE(r);
  return r.chart;
}

/// `chart` bound to `impl`; fails the test with the bind error.
inline std::shared_ptr<const xsn::bound_implementations> bound(const xsn::statechart& chart, const xsn::implementations& impl) {
  auto b = xsn::bind(chart, impl);
  INFO((b ? std::string() : b.error().message));
  REQUIRE(b);
  return *b;
}

/// A session of `chart` (see the file comment). Messages the session logs as errors are kept.
struct session_driver {
  xsn::testing::driver drv;
  boost::asio::io_context& ioc = drv.io();
  xsn::manual_clock& clk = drv.clock();
  std::shared_ptr<const xsn::statechart> chart;
  xsn::datamodel_factory datamodel;
  std::unique_ptr<xsn::session> s;
  std::vector<std::string> errors;
  /// Called on the options of every session `make` makes (set it before `open`).
  std::function<void(xsn::session_options&)> options;

  /// A session of `chart` with datamodel `dm`, started (and settled) unless `start_now` is false.
  session_driver(std::shared_ptr<const xsn::statechart> c, xsn::datamodel_factory dm, bool start_now = true)
      : chart(std::move(c)) {
    open(std::move(dm), start_now);
  }
  /// No session yet: `open` makes it (for fixtures that bind implementations first).
  explicit session_driver(std::shared_ptr<const xsn::statechart> c) : chart(std::move(c)) {}
  /// Makes the session, with datamodel `dm`, and starts it unless `start_now` is false.
  void open(xsn::datamodel_factory dm, bool start_now = true) {
    datamodel = std::move(dm);
    s = make();
    if (start_now) start();
  }
  /// Another session of the same chart on the same io_context and clock (for restore tests).
  std::unique_ptr<xsn::session> make() {
    xsn::session_options o;
    o.make_datamodel = datamodel;
    o.on_log = [this](std::string_view label, std::string_view msg) {
      if (label == "error") errors.emplace_back(msg);
    };
    if (options) options(o);
    return drv.make_session(chart, std::move(o));
  }
  void start() { drv.start(*s); }
  /// Runs the io_context until nothing is ready.
  void settle() { drv.settle(); }
  /// Sends `name` (with `data`) and settles.
  session_driver& send(const std::string& name, xsn::value data = nullptr) {
    REQUIRE_FALSE(s->send(xsn::event(name, std::move(data))));
    settle();
    return *this;
  }
  /// Advances the clock by `ms`, firing each timer due in due order and settling after each.
  session_driver& advance(int ms) {
    drv.advance(std::chrono::milliseconds(ms));
    return *this;
  }
  /// Sends event `step`, or advances time by N ms when `step` is `+N`.
  void step(const std::string& step) {
    if (!step.empty() && step[0] == '+') {
      advance(std::stoi(step.substr(1)));
    } else {
      send(step);
    }
  }
  /// The active atomic states' ids.
  std::vector<std::string> states() const { return s->active_atomic_states(); }
  /// The active states' ids in document order, each followed by a space.
  std::string config() const {
    std::string out;
    for (auto st : s->configuration()) out += chart->states[st].id + " ";
    return out;
  }
  /// The snapshot's `status` (`active`, `done`, `error`, `stopped`).
  std::string status() const { return std::string(s->snapshot().at("status").as_string()); }
};

}  // namespace xsn_test
