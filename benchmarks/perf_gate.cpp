/// \file `xsn_perf_gate`: the workloads whose instruction counts CI gates on (scripts/perf_gate.sh,
/// docs/benchmarks.md, "Performance gates"). Wall time on a loaded CI machine means little; the
/// number of instructions an operation executes is the same on every run of the same binary.
///
/// Each workload sets up (outside any measurement), warms up, then runs its operation `n` times
/// and `2n` times, each run between callgrind client requests that start instrumentation, zero
/// the counters, and dump them as `<workload>@<count>` (run under
/// `valgrind --tool=callgrind --instr-atstart=no`). The script takes the difference of the two
/// dumps over `n`: instructions per operation with the setup and the measuring itself cancelled
/// out. Without valgrind the client requests do nothing, so the program is a quick self-check:
/// every workload verifies that it did the work it claims (the machine's state, the entry actions
/// counted, the store's versions, every message received, every send acknowledged) and the program
/// exits 1 otherwise, so a broken workload cannot post a figure.
///
/// The machines, documents and message shapes are those of the Google Benchmark suite
/// (bench_machines.hpp, bus_harness.hpp), so an Ir figure here and a ns figure in `xsn_bench`
/// describe the same operation.
///
/// Usage: xsn_perf_gate [--list | --toolchain | WORKLOAD...]   (no WORKLOAD: all of them)
#include <xsn/bus/channel_event_bus.hpp>
#include <xsn/orchestrator/orchestrator.hpp>
#include <xsn/parse/xstate.hpp>
#include <xsn/runtime/implementations.hpp>
#include <xsn/store/memory_state_store.hpp>
#include <xsn/xsn.hpp>

#include "bench_machines.hpp"
#include "bus_harness.hpp"
#include "../tests/support/names.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <valgrind/callgrind.h>

#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#ifndef XSN_PERF_TOOLCHAIN
#define XSN_PERF_TOOLCHAIN "unknown"
#endif

namespace {

/// Thrown by a workload that did not do what it claims; the program exits 1.
struct workload_failed : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void require(bool ok, const std::string& what) {
  if (!ok) throw workload_failed(what);
}

/// What a workload's setup returns: runs the operation `count` times.
using operation = std::function<void(std::int64_t count)>;

/// A named workload: `setup` builds everything and returns the operation, `check` (run last)
/// verifies the total work done; `n` is the smaller measured count, `warmup` runs first.
struct workload {
  std::string_view name;
  std::string_view what;  ///< One line for `--list` and the docs.
  std::int64_t warmup;
  std::int64_t n;
  std::function<void(const std::function<void(operation)>& measure)> run;
};

/// Runs `op(count)` with callgrind's counters zeroed before and dumped after as `name@count`.
void measured(std::string_view name, std::int64_t count, const operation& op) {
  const std::string label = std::string(name) + "@" + std::to_string(count);
  CALLGRIND_START_INSTRUMENTATION;
  CALLGRIND_ZERO_STATS;
  op(count);
  CALLGRIND_DUMP_STATS_AT(label.c_str());
  CALLGRIND_STOP_INSTRUMENTATION;
}

std::shared_ptr<const xsn::statechart> chart_or_throw(xsn::parse_result r) {
  require(static_cast<bool>(r), "parse failed: " + (r.errors.empty() ? std::string("no chart")
                                                                     : r.errors.front().to_string()));
  return r.chart;
}

/// An external event whose name is resolved against `chart` once, as the benchmarks do.
xsn::event resolved_event(const xsn::statechart& chart, std::string name) {
  xsn::event ev(std::move(name));
  chart.resolve(ev);
  return ev;
}

/// One session on `chart` taking `event` through `session::process` per operation, as
/// benchmarks/interpreter.bench.cpp does; `check(session, events)` verifies the end state.
template <class Check>
void drive_session(const std::function<void(operation)>& measure, std::shared_ptr<const xsn::statechart> chart,
                   xsn::session_options o, std::string event, Check check) {
  boost::asio::io_context ioc;
  xsn::manual_clock clk;
  xsn::session s(chart, ioc.get_executor(), clk, std::move(o));
  require(!s.start(), "session::start failed");
  const auto ev = resolved_event(*chart, std::move(event));
  std::int64_t events = 0;
  measure([&](std::int64_t count) {
    for (std::int64_t i = 0; i < count; ++i) {
      if (s.process(ev)) throw workload_failed("session::process failed");
    }
    events += count;
  });
  check(s, events);
}

void check_toggle(const xsn::session& s, const xsn::statechart& chart, std::string_view on, std::int64_t events) {
  require(s.is_active(chart.find_state(on)) == (events % 2 == 1), "toggle machine is in the wrong state");
}

void check_parallel(std::int64_t counter, std::int64_t events) {
  require(counter == 2 + 2 * events, "parallel machine: entry actions counted " + std::to_string(counter) +
                                         ", expected " + std::to_string(2 + 2 * events));
}

void interpreter_toggle(const std::function<void(operation)>& measure) {
  auto chart = chart_or_throw(xsn::parse_scxml(xsn_bench::toggle_scxml, "toggle.scxml"));
  drive_session(measure, chart, {}, "toggle",
                [&](const xsn::session& s, std::int64_t events) { check_toggle(s, *chart, "on", events); });
}

void interpreter_parallel(const std::function<void(operation)>& measure) {
  auto chart = chart_or_throw(xsn::parse_scxml(xsn_bench::parallel_scxml, "parallel.scxml"));
  std::int64_t counter = 0;
  xsn::session_options o;
  o.actions["count"] = [&counter](xsn::session&) { ++counter; };
  drive_session(measure, chart, std::move(o), "next",
                [&](const xsn::session&, std::int64_t events) { check_parallel(counter, events); });
}

/// Parses an XState machine and binds `impl` into `o`.
std::shared_ptr<const xsn::statechart> xstate_chart(std::string_view text, std::string_view name,
                                                    const xsn::implementations& impl, xsn::session_options& o) {
  auto chart = chart_or_throw(xsn::parse_xstate(text, name));
  auto bound = xsn::bind(*chart, impl);
  require(static_cast<bool>(bound), bound ? std::string() : bound.error().message);
  o.make_datamodel = xsn::xstate_datamodel(*bound);
  return chart;
}

void interpreter_xstate_toggle(const std::function<void(operation)>& measure) {
  xsn::session_options o;
  auto chart = xstate_chart(xsn_bench::toggle_xstate, "toggle.json", {}, o);
  drive_session(measure, chart, std::move(o), "toggle",
                [&](const xsn::session& s, std::int64_t events) { check_toggle(s, *chart, "toggle.on", events); });
}

void interpreter_xstate_parallel(const std::function<void(operation)>& measure) {
  std::int64_t counter = 0;
  xsn::implementations impl;
  impl.action("count", [&counter](xsn::value&, const xsn::event&, const xsn::value&) { ++counter; });
  xsn::session_options o;
  auto chart = xstate_chart(xsn_bench::parallel_xstate, "parallel.json", impl, o);
  drive_session(measure, chart, std::move(o), "next",
                [&](const xsn::session&, std::int64_t events) { check_parallel(counter, events); });
}

/// One parse of the generated 1,000-state document per operation (benchmarks/parse.bench.cpp).
void parse_generated(const std::function<void(operation)>& measure, xsn_bench::generated_doc::format f) {
  const xsn_bench::generated_doc doc(f);
  const bool xstate = f == xsn_bench::generated_doc::format::xstate;
  measure([&](std::int64_t count) {
    for (std::int64_t i = 0; i < count; ++i) {
      auto chart = chart_or_throw(xstate ? xsn::parse_xstate(doc.text, "gen.json")
                                         : xsn::parse_scxml(doc.text, "gen.scxml"));
      require(chart->states.size() == xsn_bench::generated_doc::states + (xstate ? 2u : 1u),
              "parsed chart does not have 1,000 states");
    }
  });
}

/// One 64-byte message (bus_harness.hpp's item) built, published and received per operation, on
/// one thread: the consumer drains with `try_receive_batch` every `batch` messages. Threads and
/// their scheduling would make the count vary, so this is the single-threaded cost of the path.
void bus_channel_publish(const std::function<void(operation)>& measure) {
  using namespace xsn_bench::bus_harness;
  boost::asio::io_context ioc;
  xsn::manual_clock clk;
  xsn::channel_event_bus bus(ioc.get_executor(), clk);
  auto sub = bus.subscribe("m1", {.capacity = capacity, .overflow = xsn::overflow_policy::wait});
  const std::string address = "m1";
  const xsn::value payload = payload_of(64);
  std::vector<xsn::bus_message> buf(batch);
  std::uint64_t seq = 0, sum = 0, received = 0;
  measure([&](std::int64_t count) {
    for (std::int64_t i = 0; i < count; ++i) {
      if (bus.publish(make_item(address, payload, seq++))) throw workload_failed("publish failed");
      if (seq % batch == 0) {
        while (std::size_t k = sub->try_receive_batch(buf)) {
          for (std::size_t j = 0; j < k; ++j) sum += buf[j].correlation_id;
          received += k;
        }
      }
    }
  });
  require(received == seq && sum == seq * (seq - 1) / 2, "the consumer did not see every message exactly once");
}

/// One `async_put` of a 256-byte value per operation, keys taken in turn from 1,024, the
/// completion run by `run_one` (benchmarks/store.bench.cpp's `store/memory/put`, without its clock
/// readings).
void store_memory_put(const std::function<void(operation)>& measure) {
  constexpr std::size_t key_count = 1024;
  boost::asio::io_context ioc;
  xsn::manual_clock clk;
  xsn::memory_state_store store(ioc.get_executor(), clk);
  const auto work = boost::asio::make_work_guard(ioc);
  std::vector<std::string> keys;
  for (std::size_t i = 0; i < key_count; ++i) keys.push_back(xsn_test::named("machine/", static_cast<long long>(i)));
  const std::string value(256, 'v');
  std::error_code ec;
  xsn::store_version last = 0;
  std::uint64_t puts = 0;
  measure([&](std::int64_t count) {
    for (std::int64_t i = 0; i < count; ++i) {
      store.async_put(keys[puts++ % key_count], value, [&](std::error_code e, xsn::store_version v) {
        ec = e;
        last = v;
      });
      ioc.run_one();
      if (ec) throw workload_failed("put failed: " + ec.message());
    }
  });
  require(last == puts, "versions are not one per put");
}

/// One `async_send` of `toggle` per operation to 10,000 live machines in turn, acknowledged once
/// its snapshot is in the memory store, all on one io_context (orchestrator.bench.cpp's
/// `orchestrator/10k_machines`, sends issued in batches of 1,000 as there).
void orchestrator_send(const std::function<void(operation)>& measure) {
  constexpr int machines = 10'000;
  constexpr int batch = 1000;
  auto chart = chart_or_throw(xsn::parse_scxml(xsn_bench::orchestrator_toggle_scxml, "toggle.scxml"));
  boost::asio::io_context ioc;
  xsn::manual_clock clk;
  xsn::memory_state_store store(ioc.get_executor(), clk);
  xsn::channel_event_bus bus(ioc.get_executor(), clk);
  xsn::orchestrator orch(ioc.get_executor(), clk, bus, store);
  require(static_cast<bool>(orch.add_document("toggle", chart)), "add_document failed");
  std::vector<std::string> ids;
  std::int64_t done = 0, failed = 0;
  auto count_one = [&](std::error_code ec) {
    ++done;
    if (ec) ++failed;
  };
  for (int i = 0; i < machines; ++i) {
    ids.push_back(xsn_test::named("m", i));
    orch.async_create(ids.back(), "toggle", count_one);
  }
  auto run_until = [&](std::int64_t target) {
    ioc.restart();
    while (done < target && ioc.run_one() != 0) {
    }
  };
  run_until(machines);
  require(failed == 0 && done == machines, "create failed");
  std::size_t next = 0;
  measure([&](std::int64_t count) {
    require(count % batch == 0, "orchestrator/send counts whole batches");
    for (std::int64_t b = 0; b < count / batch; ++b) {
      const std::int64_t target = done + batch;
      for (int i = 0; i < batch; ++i) {
        orch.async_send(ids[next++ % machines], xsn::event("toggle"),
                        [&count_one](std::error_code ec, const xsn::send_result&) { count_one(ec); });
      }
      run_until(target);
    }
  });
  require(failed == 0 && done == machines + static_cast<std::int64_t>(next), "a send failed or was not acknowledged");
  bool shut = false;
  orch.async_shutdown(std::chrono::seconds(1), [&](std::error_code) { shut = true; });
  ioc.restart();
  while (!shut && ioc.run_one() != 0) {
  }
}

// Counts are multiples of what makes a workload's state repeat (2 for toggle, 3 for parallel,
// 256 for the bus's drain batch, 1,024 keys, 1,000 sends per batch), so the n and 2n runs end
// in the same state as they began.
const std::vector<workload>& workloads() {
  using f = xsn_bench::generated_doc::format;
  static const std::vector<workload> all = {
      {"interpreter/toggle", "one `toggle` through session::process, SCXML toggle machine", 6144, 6144,
       interpreter_toggle},
      {"interpreter/parallel", "one `next` through session::process, SCXML parallel machine (2 entry actions)",
       6144, 6144, interpreter_parallel},
      {"interpreter/xstate_toggle", "as interpreter/toggle, the XState JSON machine", 6144, 6144,
       interpreter_xstate_toggle},
      {"interpreter/xstate_parallel", "as interpreter/parallel, the XState JSON machine", 6144, 6144,
       interpreter_xstate_parallel},
      {"parse/scxml", "one parse of the generated 1,000-state SCXML document", 1, 2,
       [](const auto& m) { parse_generated(m, f::scxml); }},
      {"parse/xstate", "one parse of the same chart as XState JSON", 1, 2,
       [](const auto& m) { parse_generated(m, f::xstate); }},
      {"bus/channel/publish", "one 64-byte message built, published and received (batches of 256), one thread",
       6144, 6144, bus_channel_publish},
      {"store/memory/put", "one async_put of 256 bytes (1,024 keys in turn) and its completion", 3072, 3072,
       store_memory_put},
      {"orchestrator/send", "one async_send to 10,000 toggle machines in turn, acknowledged after the store write",
       10000, 2000, orchestrator_send},
  };
  return all;
}

/// Runs `w`: setup, warm-up, then the `n` and `2n` measured runs.
void run(const workload& w) {
  int phase = 0;
  w.run([&](const operation& op) {
    require(phase++ == 0, "a workload measures once");
    op(w.warmup);
    measured(w.name, w.n, op);
    measured(w.name, 2 * w.n, op);
  });
  require(phase == 1, "the workload did not measure");
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string_view> args(argv + 1, argv + argc);
  if (args.size() == 1 && args[0] == "--toolchain") {
    std::puts(XSN_PERF_TOOLCHAIN);
    return 0;
  }
  if (args.size() == 1 && args[0] == "--list") {
    for (const auto& w : workloads()) std::printf("%-28s %s\n", w.name.data(), w.what.data());
    return 0;
  }
  std::vector<const workload*> chosen;
  for (const auto& w : workloads()) {
    bool wanted = args.empty();
    for (auto a : args) wanted = wanted || a == w.name;
    if (wanted) chosen.push_back(&w);
  }
  for (auto a : args) {
    bool known = false;
    for (const auto& w : workloads()) known = known || a == w.name;
    if (!known) {
      std::fprintf(stderr, "xsn_perf_gate: unknown workload '%.*s' (--list shows them)\n", static_cast<int>(a.size()),
                   a.data());
      return 64;
    }
  }
  for (const auto* w : chosen) {
    try {
      run(*w);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "xsn_perf_gate: %s: %s\n", w->name.data(), e.what());
      return 1;
    }
  }
  return 0;
}
