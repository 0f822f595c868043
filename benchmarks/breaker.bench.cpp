/// \file The cost of a closed `simple_circuit_breaker` around a trivial callable: `execute` on one
/// thread and on two threads sharing one breaker, against calling the same callable directly.
/// One item = one call.
#include <xsn/resilience/simple_circuit_breaker.hpp>

#include <xsn/runtime/clock.hpp>

#include <benchmark/benchmark.h>

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
  auto& b = shared_breaker();
  std::int64_t counter = 0;  // per thread: only the breaker is shared
  const work w{&counter};
  for (auto _ : state) b.execute(w);
  check(state, counter, &b);
  state.SetItemsProcessed(state.iterations());
}

}  // namespace

BENCHMARK(baseline_direct_call)->Name("baseline/direct_call");
BENCHMARK(breaker_simple_closed)->Name("breaker/simple/closed");
BENCHMARK(breaker_simple_closed_2threads)->Name("breaker/simple/closed_2threads")->Threads(2);
