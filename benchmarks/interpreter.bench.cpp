/// \file The xsn interpreter on the toggle and parallel machines, one pre-resolved external event
/// per iteration through `session::process` (the whole macrostep runs synchronously).
#include "bench_checks.hpp"

#include <xsn/xsn.hpp>

#include <benchmark/benchmark.h>
#include <boost/asio/io_context.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace {

constexpr std::string_view toggle_scxml = R"(<?xml version="1.0"?>
<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" datamodel="null" initial="off">
  <state id="off"><transition event="toggle" target="on"/></state>
  <state id="on"><transition event="toggle" target="off"/></state>
</scxml>
)";

constexpr std::string_view parallel_scxml = R"(<?xml version="1.0"?>
<scxml xmlns="http://www.w3.org/2005/07/scxml" xmlns:xsn="http://xsn.dev/scxml"
       version="1.0" datamodel="null" initial="p">
  <parallel id="p">
    <state id="a" initial="a1">
      <state id="a1"><onentry><xsn:action name="count"/></onentry><transition event="next" target="a2"/></state>
      <state id="a2"><onentry><xsn:action name="count"/></onentry><transition event="next" target="a3"/></state>
      <state id="a3"><onentry><xsn:action name="count"/></onentry><transition event="next" target="a1"/></state>
    </state>
    <state id="b" initial="b1">
      <state id="b1"><onentry><xsn:action name="count"/></onentry><transition event="next" target="b2"/></state>
      <state id="b2"><onentry><xsn:action name="count"/></onentry><transition event="next" target="b3"/></state>
      <state id="b3"><onentry><xsn:action name="count"/></onentry><transition event="next" target="b1"/></state>
    </state>
  </parallel>
</scxml>
)";

/// Parses one of the machines above; on failure marks the run failed and returns null.
std::shared_ptr<const xsn::statechart> parse_or_skip(benchmark::State& state, std::string_view text,
                                                     std::string_view name) {
  auto r = xsn::parse_scxml(text, name);
  if (!r) {
    const auto msg = "parse failed: " + (r.errors.empty() ? std::string("no chart")
                                                           : r.errors.front().to_string());
    state.SkipWithError(msg.c_str());
    return nullptr;
  }
  return r.chart;
}

/// An external event whose name is resolved against `chart` once, as a hot path would do it.
xsn::event resolved_event(const xsn::statechart& chart, std::string name) {
  xsn::event ev(std::move(name));
  chart.resolve(ev);
  return ev;
}

void interpreter_toggle(benchmark::State& state) {
  const auto chart = parse_or_skip(state, toggle_scxml, "toggle.scxml");
  if (!chart) return;
  boost::asio::io_context ioc;
  xsn::manual_clock clk;
  xsn::session s(chart, ioc.get_executor(), clk);
  s.start();
  const auto ev = resolved_event(*chart, "toggle");
  for (auto _ : state) {
    if (s.process(ev)) {
      state.SkipWithError("session::process failed");
      break;
    }
  }
  const auto events = static_cast<std::int64_t>(state.iterations());
  xsn_bench::check_toggle(state, s.is_active(chart->find_state("on")), events);
  state.SetItemsProcessed(events);
}

void interpreter_parallel(benchmark::State& state) {
  const auto chart = parse_or_skip(state, parallel_scxml, "parallel.scxml");
  if (!chart) return;
  std::int64_t counter = 0;
  boost::asio::io_context ioc;
  xsn::manual_clock clk;
  xsn::session_options o;
  o.actions["count"] = [&counter](xsn::session&) {
    ++counter;
    benchmark::DoNotOptimize(counter);
  };
  xsn::session s(chart, ioc.get_executor(), clk, std::move(o));
  s.start();
  const auto ev = resolved_event(*chart, "next");
  for (auto _ : state) {
    if (s.process(ev)) {
      state.SkipWithError("session::process failed");
      break;
    }
  }
  const auto events = static_cast<std::int64_t>(state.iterations());
  xsn_bench::check_parallel(state, counter, events);
  state.SetItemsProcessed(events);
}

}  // namespace

BENCHMARK(interpreter_toggle)->Name("interpreter/toggle");
BENCHMARK(interpreter_parallel)->Name("interpreter/parallel");
