#pragma once
/// \file Checks shared by every library's version of the benchmark machines, so a machine that
/// does less work than the others cannot post a figure.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>

namespace xsn_bench {

/// Entry actions the parallel machine runs: `a1` and `b1` on start, then one per region per event.
constexpr std::int64_t parallel_expected_entries(std::int64_t events) noexcept {
  return 2 + 2 * events;
}

/// Marks the run as failed unless `counter` holds the entries `events` events must have caused.
/// Does nothing when the run has already failed.
inline void check_parallel(benchmark::State& state, std::int64_t counter, std::int64_t events) {
  if (state.error_occurred()) return;
  const auto expected = parallel_expected_entries(events);
  if (counter != expected) {
    const auto msg = "entry actions counted " + std::to_string(counter) + ", expected " +
                     std::to_string(expected);
    state.SkipWithError(msg.c_str());  // copies the message (Google Benchmark >= 1.7)
  }
}

/// Marks the run as failed unless the toggle machine ended in `on` exactly when `events` is odd.
/// Does nothing when the run has already failed.
inline void check_toggle(benchmark::State& state, bool on_active, std::int64_t events) {
  if (state.error_occurred()) return;
  if (on_active != (events % 2 == 1)) state.SkipWithError("toggle machine is in the wrong state");
}

}  // namespace xsn_bench
