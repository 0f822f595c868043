/// \file The cost of a closed `simple_circuit_breaker` around a trivial callable: `execute` on one
/// thread and on two threads sharing one breaker, against calling the same callable directly.
/// One item = one call.
#include <xsn/resilience/simple_circuit_breaker.hpp>

#include <xsn/core/clock.hpp>

#include <benchmark/benchmark.h>

#include <atomic>
#include <thread>

#include <cstdint>
#include <string>

namespace {

/// The callable every benchmark here calls: bumps a counter the compiler must keep.
struct work {
  std::int64_t* counter;
  void operator()() const {
    ++*counter;
    benchmark::DoNotOptimize(*counter);
  }
};

/// Fails the run unless `counter` counted one call per iteration and the breaker stayed closed.
void check(benchmark::State& state, std::int64_t counter, const xsn::circuit_breaker* b) {
  if (state.error_occurred()) return;
  if (counter != static_cast<std::int64_t>(state.iterations())) {
    const auto msg = "calls counted " + std::to_string(counter) + ", expected " + std::to_string(state.iterations());
    state.SkipWithError(msg.c_str());
  } else if (b != nullptr && b->state() != xsn::breaker_state::closed) {
    state.SkipWithError("breaker left the closed state");
  }
}

/// Shared by the threads of `breaker/simple/closed_2threads` (and used by the one-thread run).
xsn::simple_circuit_breaker& shared_breaker() {
  static xsn::manual_clock clk;
  static xsn::simple_circuit_breaker b(clk);
  return b;
}

void baseline_direct_call(benchmark::State& state) {
  std::int64_t counter = 0;
  const work w{&counter};
  for (auto _ : state) w();
  check(state, counter, nullptr);
  state.SetItemsProcessed(state.iterations());
}

void breaker_simple_closed(benchmark::State& state) {
  xsn::manual_clock clk;
  xsn::simple_circuit_breaker b(clk);
  std::int64_t counter = 0;
  const work w{&counter};
  for (auto _ : state) b.execute(w);
  check(state, counter, &b);
  state.SetItemsProcessed(state.iterations());
}

void breaker_simple_closed_2threads(benchmark::State& state) {
  // Two threads share one breaker: this one is measured, a second (owned, joined) runs the same
  // loop all the while. Written by hand rather than with `->Threads(2)`, which would rename the
  // benchmark to `.../threads:2`.
  auto& b = shared_breaker();
  // Each thread's data on its own cache line: only the breaker is shared.
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
  check(state, counter.value, &b);
  state.SetItemsProcessed(state.iterations());
}

}  // namespace

BENCHMARK(baseline_direct_call)->Name("baseline/direct_call");
BENCHMARK(breaker_simple_closed)->Name("breaker/simple/closed");
BENCHMARK(breaker_simple_closed_2threads)->Name("breaker/simple/closed_2threads");
