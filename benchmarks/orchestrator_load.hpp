#pragma once
/// \file The load of the `orchestrator/*_1k_machines` benchmarks: 1,000 toggle machines on an
/// orchestrator that owns one thread, a store on a thread of its own, and 2 producer threads that
/// send `toggle` events through `async_send`, each keeping at most `window` sends unacknowledged
/// (a counting semaphore, released by the acknowledgement). Reports the wall-clock rate of
/// acknowledged events (`items_per_second`) and the acknowledgement latency (`p50_ack_ns`,
/// `p99_ack_ns`: from `async_send` to its completion, which comes once the write is persisted).
#include <xsn/bus/channel_event_bus.hpp>
#include <xsn/orchestrator/orchestrator.hpp>
#include <xsn/parse/scxml.hpp>

#include <benchmark/benchmark.h>
#include <boost/asio/io_context.hpp>

#include "../tests/support/names.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <mutex>
#include <semaphore>
#include <string>
#include <thread>
#include <vector>

namespace xsn_bench {

inline constexpr int load_machines = 1000;
inline constexpr int load_producers = 2;
inline constexpr std::ptrdiff_t load_window = 256;  // unacknowledged sends per producer

/// Runs the load on `store` (whose completions run on a thread the caller drives); the bus runs on
/// `bus_ex`, which must be run by a thread too (its subscription's completions go through it).
inline void orchestrator_load(benchmark::State& state, xsn::state_store& store, xsn::clock& clk,
                              boost::asio::any_io_executor bus_ex) {
  using steady = std::chrono::steady_clock;
  auto parsed = xsn::parse_scxml(R"(<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" initial="off">
  <state id="off"><transition event="toggle" target="on"/></state>
  <state id="on"><transition event="toggle" target="off"/></state></scxml>)",
                                 "toggle.scxml");
  if (!parsed) return state.SkipWithError("parse failed");
  xsn::channel_event_bus bus(bus_ex, clk);
  xsn::orchestrator_options o;
  o.key_prefix = xsn_test::named("bench/", steady::now().time_since_epoch().count()) + "/";
  xsn::orchestrator orch(1, clk, bus, store, o);
  if (!orch.add_document("toggle", parsed.chart)) return state.SkipWithError("add_document failed");
  {
    std::vector<std::future<void>> created;
    std::atomic<int> failed{0};
    for (int i = 0; i < load_machines; ++i) {
      auto p = std::make_shared<std::promise<void>>();
      created.push_back(p->get_future());
      orch.async_create(xsn_test::named("m", i), "toggle", [p, &failed](std::error_code ec) {
        if (ec) ++failed;
        p->set_value();
      });
    }
    for (auto& f : created) f.wait();
    if (failed) return state.SkipWithError("create failed");
  }
  std::mutex samples_mutex;
  std::vector<std::int64_t> samples;
  std::atomic<std::int64_t> acked{0}, failures{0};
  const int per_round = 2000;  // events per benchmark iteration, split across the producers
  const auto start = steady::now();
  // One producer: `n` sends, at most `load_window` unacknowledged.
  auto produce = [&](int p, int n) {
    std::counting_semaphore<load_window> room(load_window);
    std::vector<std::int64_t> mine;
    std::mutex mine_mutex;
    for (int i = 0; i < n; ++i) {
      room.acquire();
      const auto t0 = steady::now();
      const int machine = (p * 7919 + i * 31) % load_machines;
      orch.async_send(xsn_test::named("m", machine), xsn::event("toggle"),
                      [&, t0](std::error_code ec, const xsn::send_result&) {
                        const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(steady::now() - t0).count();
                        if (ec) ++failures;
                        else ++acked;
                        {
                          std::lock_guard lock(mine_mutex);
                          mine.push_back(ns);
                        }
                        room.release();
                      });
    }
    for (std::ptrdiff_t k = 0; k < load_window; ++k) room.acquire();  // every send acknowledged
    std::lock_guard lock(samples_mutex);
    samples.insert(samples.end(), mine.begin(), mine.end());
  };
  // The benchmark thread is producer 0 (so its CPU time, which paces Google Benchmark, is real
  // work), the others run on threads of their own; every round is joined.
  for (auto _ : state) {
    std::vector<std::thread> others;
    for (int p = 1; p < load_producers; ++p) others.emplace_back(produce, p, per_round / load_producers);
    produce(0, per_round / load_producers);
    for (auto& t : others) t.join();
  }
  const std::chrono::duration<double> wall = steady::now() - start;
  if (failures) state.SkipWithError("a send failed");
  std::sort(samples.begin(), samples.end());
  if (!samples.empty()) {
    auto at = [&](double q) { return static_cast<double>(samples[static_cast<std::size_t>(q * double(samples.size() - 1))]); };
    state.counters["p50_ack_ns"] = at(0.50);
    state.counters["p99_ack_ns"] = at(0.99);
  }
  state.counters["items_per_second"] = static_cast<double>(acked.load()) / wall.count();
  state.counters["machines"] = load_machines;
  auto h = orch.health();
  state.counters["writes_per_batch"] = h.batches ? static_cast<double>(h.writes) / static_cast<double>(h.batches) : 0;
  std::promise<void> shut;
  orch.async_shutdown(std::chrono::seconds(5), [&shut](std::error_code) { shut.set_value(); });
  shut.get_future().wait();
  bus.shutdown();
}

}  // namespace xsn_bench
