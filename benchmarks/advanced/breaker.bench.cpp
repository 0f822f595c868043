/// \file The cost of a closed `bucketed_circuit_breaker` around the same trivial callable as
/// benchmarks/breaker.bench.cpp (compare with `breaker/simple/closed` and `baseline/direct_call`
/// in the same run). One item = one call through `execute`, every call recorded in the window.
#include <benchmark/benchmark.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <xsn/advanced/bucketed_circuit_breaker.hpp>
#include <xsn/core/asio_clock.hpp>
#include <xsn/core/clock.hpp>

namespace {

using xsn::advanced::bucketed_breaker_options;
using xsn::advanced::bucketed_circuit_breaker;
using xsn::advanced::window_kind;

/// The callable: bumps a counter the compiler must keep (as in breaker.bench.cpp).
struct work {
  std::int64_t* counter;
  void operator()() const {
    ++*counter;
    benchmark::DoNotOptimize(*counter);
  }
};

/// Fails the run unless every call was made and counted in the window, and it stayed closed.
void check(benchmark::State& state, std::int64_t counter, const bucketed_circuit_breaker& b, bool whole_window) {
  if (state.error_occurred()) return;
  const auto calls = b.window().calls;
  if (counter != static_cast<std::int64_t>(state.iterations())) {
    const auto msg = "calls counted " + std::to_string(counter) + ", expected " + std::to_string(state.iterations());
    state.SkipWithError(msg.c_str());
  } else if (b.state() != xsn::breaker_state::closed) {
    state.SkipWithError("breaker left the closed state");
  } else if (whole_window && calls != std::min<std::uint64_t>(state.iterations(), b.options().window_size)) {
    state.SkipWithError("the window did not record every call");
  }
}

void run(benchmark::State& state, xsn::clock& clk, bucketed_breaker_options o, bool whole_window) {
  bucketed_circuit_breaker b(clk, std::move(o));
  std::int64_t counter = 0;
  const work w{&counter};
  for (auto _ : state) b.execute(w);
  check(state, counter, b, whole_window);
  state.SetItemsProcessed(state.iterations());
}

/// The defaults: count-based window of 100 calls, no slow-call timing.
void breaker_bucketed_closed(benchmark::State& state) {
  xsn::manual_clock clk;
  run(state, clk, {}, true);
}

/// A time-based window (10 buckets of 1 s): one clock read per call.
void breaker_bucketed_closed_time(benchmark::State& state) {
  xsn::manual_clock clk;
  bucketed_breaker_options o;
  o.window = window_kind::time_based;
  o.window_size = 10;
  run(state, clk, std::move(o), false);
}

/// Slow-call detection on a real clock (`asio_clock`, i.e. `steady_clock`): the base times every
/// call (two clock reads), the count-based window records it.
void breaker_bucketed_closed_timed_steady(benchmark::State& state) {
  boost::asio::io_context io;
  xsn::asio_clock clk(io.get_executor());
  bucketed_breaker_options o;
  o.slow_call_duration = std::chrono::seconds(1);
  run(state, clk, std::move(o), true);
}

/// Two threads share one breaker (a second, owned and joined, runs the same loop meanwhile).
void breaker_bucketed_closed_2threads(benchmark::State& state) {
  xsn::manual_clock clk;
  bucketed_circuit_breaker b(clk);
  struct alignas(64) padded_counter {
    std::int64_t value = 0;
  };
  struct alignas(64) padded_flag {
    std::atomic<bool> value{false};
  };
  padded_flag stop, running;
  padded_counter other_counter, counter;
  std::jthread other([&] {
    const work w{&other_counter.value};
    running.value.store(true);
    while (!stop.value.load(std::memory_order_relaxed))
      for (int i = 0; i < 1024; ++i) b.execute(w);
  });
  while (!running.value.load()) {
  }
  const work w{&counter.value};
  for (auto _ : state) b.execute(w);
  stop.value.store(true);
  other.join();
  check(state, counter.value, b, false);
  state.SetItemsProcessed(state.iterations());
}

}  // namespace

BENCHMARK(breaker_bucketed_closed)->Name("breaker/bucketed/closed");
BENCHMARK(breaker_bucketed_closed_time)->Name("breaker/bucketed/closed_time_based");
BENCHMARK(breaker_bucketed_closed_timed_steady)->Name("breaker/bucketed/closed_slow_call_timing_steady_clock");
BENCHMARK(breaker_bucketed_closed_2threads)->Name("breaker/bucketed/closed_2threads");
