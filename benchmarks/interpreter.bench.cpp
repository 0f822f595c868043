/// \file The xsn interpreter on the toggle and parallel machines, one pre-resolved external event
/// per iteration through `session::process` (the whole macrostep runs synchronously).
#include "bench_checks.hpp"
#include "bench_machines.hpp"

#include <xsn/runtime/builder.hpp>
#include <xsn/parse/xstate.hpp>
#include <xsn/runtime/implementations.hpp>
#include <xsn/xsn.hpp>

#include <benchmark/benchmark.h>
#include <boost/asio/io_context.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace {

using xsn_bench::parallel_scxml;
using xsn_bench::parallel_xstate;
using xsn_bench::toggle_scxml;
using xsn_bench::toggle_xstate;

/// The toggle beside `siblings` states no event involves: the cost of an event must not grow with them.
std::string toggle_with_siblings(int siblings) {
  std::string s = R"(<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" datamodel="null" initial="off">)"
                  R"(<state id="off"><transition event="toggle" target="on"/></state>)"
                  R"(<state id="on"><transition event="toggle" target="off"/></state>)";
  for (int i = 0; i < siblings; ++i) s += "<state id=\"s" + std::to_string(i) + "\"/>";
  return s + "</scxml>";
}

/// The toggle whose two states each have `others` transitions on other events before the toggle's
/// own: the cost of an event must not grow with the transitions it does not match.
std::string toggle_with_transitions(int others) {
  std::string s = R"(<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" datamodel="null" initial="off">)";
  for (std::string_view id : {"off", "on"}) {
    s += "<state id=\"" + std::string(id) + "\">";
    for (int i = 0; i < others; ++i) s += "<transition event=\"other" + std::to_string(i) + "\" target=\"off\"/>";
    s += std::string("<transition event=\"toggle\" target=\"") + (id == "off" ? "on" : "off") + "\"/></state>";
  }
  return s + "</scxml>";
}

/// Parses an XState machine of bench_machines.hpp and binds `impl`; on failure marks the run failed.
std::shared_ptr<const xsn::statechart> parse_xstate_or_skip(benchmark::State& state, std::string_view text,
                                                            std::string_view name, const xsn::implementations& impl,
                                                            xsn::session_options& o) {
  auto r = xsn::parse_xstate(text, name);
  if (!r) {
    const auto msg = "parse failed: " + (r.errors.empty() ? std::string("no chart") : r.errors.front().to_string());
    state.SkipWithError(msg.c_str());
    return nullptr;
  }
  auto bound = xsn::bind(*r.chart, impl);
  if (!bound) {
    state.SkipWithError(bound.error().message.c_str());
    return nullptr;
  }
  o.make_datamodel = xsn::xstate_datamodel(*bound);
  return r.chart;
}

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

/// The toggle machine `text`, one pre-resolved `toggle` per iteration.
void toggle_machine(benchmark::State& state, std::string_view text) {
  const auto chart = parse_or_skip(state, text, "toggle.scxml");
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

void interpreter_toggle(benchmark::State& state) { toggle_machine(state, toggle_scxml); }
void scale_siblings(benchmark::State& state) { toggle_machine(state, toggle_with_siblings(10'000)); }
void scale_transitions(benchmark::State& state) { toggle_machine(state, toggle_with_transitions(1'000)); }

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

/// Runs `session::process(ev)` per iteration; false (run marked failed) when it fails.
bool drive(benchmark::State& state, xsn::session& s, const xsn::event& ev) {
  for (auto _ : state) {
    if (s.process(ev)) {
      state.SkipWithError("session::process failed");
      return false;
    }
  }
  return true;
}

void interpreter_xstate_toggle(benchmark::State& state) {
  xsn::session_options o;
  const auto chart = parse_xstate_or_skip(state, toggle_xstate, "toggle.json", {}, o);
  if (!chart) return;
  boost::asio::io_context ioc;
  xsn::manual_clock clk;
  xsn::session s(chart, ioc.get_executor(), clk, std::move(o));
  s.start();
  if (!drive(state, s, resolved_event(*chart, "toggle"))) return;
  const auto events = static_cast<std::int64_t>(state.iterations());
  xsn_bench::check_toggle(state, s.is_active(chart->find_state("toggle.on")), events);
  state.SetItemsProcessed(events);
}

void interpreter_xstate_parallel(benchmark::State& state) {
  std::int64_t counter = 0;
  xsn::implementations impl;
  impl.action("count", [&counter](xsn::value&, const xsn::event&, const xsn::value&) {
    ++counter;
    benchmark::DoNotOptimize(counter);
  });
  xsn::session_options o;
  const auto chart = parse_xstate_or_skip(state, parallel_xstate, "parallel.json", impl, o);
  if (!chart) return;
  boost::asio::io_context ioc;
  xsn::manual_clock clk;
  xsn::session s(chart, ioc.get_executor(), clk, std::move(o));
  s.start();
  if (!drive(state, s, resolved_event(*chart, "next"))) return;
  const auto events = static_cast<std::int64_t>(state.iterations());
  xsn_bench::check_parallel(state, counter, events);
  state.SetItemsProcessed(events);
}

/// The toggle machine written with the C++ builder (`<xsn/runtime/builder.hpp>`): same model as
/// `xstate_toggle`, so the same cost is expected.
void interpreter_builder_toggle(benchmark::State& state) {
  auto m = xsn::machine("toggle").initial("off")
               .state("off", xsn::on("toggle", "on"))
               .state("on", xsn::on("toggle", "off"))
               .build();
  if (!m) {
    state.SkipWithError(m.error().message.c_str());
    return;
  }
  xsn::session_options o;
  o.make_datamodel = m->datamodel();
  boost::asio::io_context ioc;
  xsn::manual_clock clk;
  xsn::session s(m->chart, ioc.get_executor(), clk, std::move(o));
  s.start();
  if (!drive(state, s, resolved_event(*m->chart, "toggle"))) return;
  const auto events = static_cast<std::int64_t>(state.iterations());
  xsn_bench::check_toggle(state, s.is_active(m->chart->find_state("toggle.on")), events);
  state.SetItemsProcessed(events);
}

}  // namespace

BENCHMARK(interpreter_toggle)->Name("interpreter/toggle");
BENCHMARK(interpreter_parallel)->Name("interpreter/parallel");
BENCHMARK(interpreter_xstate_toggle)->Name("interpreter/xstate_toggle");
BENCHMARK(interpreter_xstate_parallel)->Name("interpreter/xstate_parallel");
BENCHMARK(interpreter_builder_toggle)->Name("interpreter/builder_toggle");
BENCHMARK(scale_siblings)->Name("scale/siblings_10000");
BENCHMARK(scale_transitions)->Name("scale/transitions_1000");
