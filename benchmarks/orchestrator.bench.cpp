/// \file The orchestrator with 10,000 live toggle machines on one strand: events per second
/// through `async_send` (each acknowledged after its snapshot is in the memory store), and the
/// memory each machine costs (heap growth / machines, including its stored snapshot and the
/// orchestrator's bus subscription).
#include <xsn/bus/channel_event_bus.hpp>
#include <xsn/orchestrator/orchestrator.hpp>
#include <xsn/parse/scxml.hpp>
#include <xsn/store/memory_state_store.hpp>

#include "bench_machines.hpp"
#include "orchestrator_load.hpp"

#include <benchmark/benchmark.h>
#include <boost/asio/io_context.hpp>

#include <malloc.h>
#include <string>

namespace {

using xsn_bench::orchestrator_toggle_scxml;

/// Bytes in use by malloc (the resident set would not see memory freed by earlier benchmarks
/// and reused here).
long heap_bytes() { return static_cast<long>(mallinfo2().uordblks); }

void orchestrator_10k(benchmark::State& state) {
  constexpr int machines = 10'000;
  auto parsed = xsn::parse_scxml(orchestrator_toggle_scxml, "toggle.scxml");
  if (!parsed) return state.SkipWithError("parse failed");
  boost::asio::io_context ioc;
  xsn::manual_clock clk;
  const long before = heap_bytes();
  xsn::memory_state_store store(ioc.get_executor(), clk);
  xsn::channel_event_bus bus(ioc.get_executor(), clk);
  xsn::orchestrator orch(ioc.get_executor(), clk, bus, store);
  orch.add_document("toggle", parsed.chart);
  std::vector<std::string> ids;
  int done = 0, failed = 0;
  auto count = [&](std::error_code ec) {
    ++done;
    if (ec) ++failed;
  };
  for (int i = 0; i < machines; ++i) {
    ids.push_back(xsn_test::named("m", i));
    orch.async_create(ids.back(), "toggle", count);
  }
  auto run_until = [&](int target) {
    ioc.restart();
    while (done < target && ioc.run_one() != 0) {
    }
  };
  run_until(machines);
  if (failed) return state.SkipWithError("create failed");
  const long after = heap_bytes();
  std::size_t next = 0;
  for (auto _ : state) {
    const int batch = 1000;
    const int target = done + batch;
    for (int i = 0; i < batch; ++i)
      orch.async_send(ids[next++ % machines], xsn::event("toggle"),
                      [&count](std::error_code ec, const xsn::send_result&) { count(ec); });
    run_until(target);
  }
  if (failed) state.SkipWithError("send failed");
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * 1000);
  state.counters["bytes_per_machine"] = static_cast<double>(after - before) / machines;
  state.counters["machines"] = machines;
  bool shut = false;
  orch.async_shutdown(std::chrono::seconds(1), [&](std::error_code) { shut = true; });
  ioc.restart();
  while (!shut && ioc.run_one() != 0) {
  }
}

}  // namespace

BENCHMARK(orchestrator_10k)->Name("orchestrator/10k_machines")->Unit(benchmark::kMillisecond);

// ---- 1,000 machines on the memory store, 2 producer threads (orchestrator_load.hpp) ----

#include <boost/asio/executor_work_guard.hpp>

#include <thread>

namespace {

void orchestrator_memory_1k(benchmark::State& state) {
  boost::asio::io_context store_ctx;
  auto work = boost::asio::make_work_guard(store_ctx);
  std::thread store_thread([&] { store_ctx.run(); });
  xsn::manual_clock clk;
  {
    xsn::memory_state_store store(store_ctx.get_executor(), clk);
    xsn_bench::orchestrator_load(state, store, clk, store_ctx.get_executor());
  }
  work.reset();
  store_thread.join();
}

}  // namespace

BENCHMARK(orchestrator_memory_1k)->Name("orchestrator/memory_1k_machines")->Unit(benchmark::kMillisecond);
