/// \file `memory_state_store` latency: one `async_put` or `async_compare_and_set` per item,
/// timed from the initiating call to the completion handler (which the executor runs).
/// Reports p50/p99 of that latency in nanoseconds as counters, and items_per_second.
#include <xsn/store/memory_state_store.hpp>

#include <benchmark/benchmark.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <system_error>
#include <vector>

namespace {

constexpr std::size_t key_count = 1024;       // distinct keys written in turn
constexpr std::size_t value_size = 256;       // a small machine snapshot

using bench_clock = std::chrono::steady_clock;

std::vector<std::string> make_keys() {
  std::vector<std::string> keys;
  keys.reserve(key_count);
  for (std::size_t i = 0; i < key_count; ++i) keys.push_back("machine/" + std::to_string(i));
  return keys;
}

/// Latency samples, reported as p50/p99 counters (nanoseconds).
class latencies {
 public:
  explicit latencies(benchmark::State& state) {
    samples_.reserve(std::min<std::size_t>(state.max_iterations, std::size_t{1} << 24));
  }
  void add(bench_clock::duration d) {
    samples_.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count());
  }
  void report(benchmark::State& state) {
    if (samples_.empty()) return;
    auto at = [this](double q) {
      const auto n = static_cast<std::size_t>(q * static_cast<double>(samples_.size() - 1));
      std::nth_element(samples_.begin(), samples_.begin() + static_cast<std::ptrdiff_t>(n),
                       samples_.end());
      return static_cast<double>(samples_[n]);
    };
    state.counters["p50_ns"] = at(0.50);
    state.counters["p99_ns"] = at(0.99);
  }

 private:
  std::vector<std::int64_t> samples_;
};

void store_memory_put(benchmark::State& state) {
  boost::asio::io_context ioc;
  xsn::manual_clock clk;
  xsn::memory_state_store store(ioc.get_executor(), clk);
  // Without outstanding work, the io_context would stop after the first completion.
  const auto work = boost::asio::make_work_guard(ioc);
  const auto keys = make_keys();
  const std::string value(value_size, 'v');
  latencies lat(state);
  std::error_code ec;
  xsn::store_version last = 0;
  bench_clock::time_point done;
  std::size_t i = 0;
  for (auto _ : state) {
    const auto start = bench_clock::now();
    store.async_put(keys[i++ % key_count], value, [&](std::error_code e, xsn::store_version v) {
      done = bench_clock::now();
      ec = e;
      last = v;
    });
    ioc.run_one();
    lat.add(done - start);
    if (ec) {
      state.SkipWithError(("put failed: " + ec.message()).c_str());
      break;
    }
  }
  benchmark::DoNotOptimize(last);
  if (!state.error_occurred() && last != static_cast<xsn::store_version>(state.iterations())) {
    state.SkipWithError("versions are not one per put");
  }
  lat.report(state);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

void store_memory_cas(benchmark::State& state) {
  boost::asio::io_context ioc;
  xsn::manual_clock clk;
  xsn::memory_state_store store(ioc.get_executor(), clk);
  // Without outstanding work, the io_context would stop after the first completion.
  const auto work = boost::asio::make_work_guard(ioc);
  const auto keys = make_keys();
  const std::string value(value_size, 'v');
  std::vector<xsn::store_version> versions(key_count, 0);  // 0: create
  latencies lat(state);
  std::error_code ec;
  bench_clock::time_point done;
  std::size_t i = 0;
  for (auto _ : state) {
    const std::size_t k = i++ % key_count;
    const auto start = bench_clock::now();
    store.async_compare_and_set(keys[k], versions[k], value,
                                [&](std::error_code e, xsn::store_version v) {
                                  done = bench_clock::now();
                                  ec = e;
                                  versions[k] = v;
                                });
    ioc.run_one();
    lat.add(done - start);
    if (ec) {  // every CAS must succeed: the benchmark holds the current versions
      state.SkipWithError(("compare-and-set failed: " + ec.message()).c_str());
      break;
    }
  }
  lat.report(state);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

}  // namespace

BENCHMARK(store_memory_put)->Name("store/memory/put");
BENCHMARK(store_memory_cas)->Name("store/memory/cas");
