/// \file Moving events between threads: `channel_event_bus` against a mutex + deque +
/// condition_variable queue and moodycamel's `BlockingConcurrentQueue`.
///
/// Every variant moves the same item, an `xsn::bus_message` whose event carries a 64-byte payload
/// (`event.data`, a JSON string: one allocation by the producer, freed by the consumer), built by
/// the producer for each item. Producers run on their own `std::jthread`s (joined); the consumer
/// drains on the benchmark's thread. One iteration moves `items_per_iteration` items;
/// `items_per_second` is wall-clock. Each run checks that the consumer saw every item exactly once
/// (count and sum of sequence numbers), or posts no figure.
#include <xsn/bus/channel_event_bus.hpp>
#include <xsn/core/clock.hpp>

#include "bus_harness.hpp"

#include <benchmark/benchmark.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json/string.hpp>
#include <concurrentqueue/blockingconcurrentqueue.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace xsn_bench::bus_harness;

// ---- xsn::channel_event_bus ----

/// The bus with 64-byte events (see `bus_throughput`).
void bus_channel(benchmark::State& state, int producers) {
  bus_throughput<xsn::channel_event_bus>(state, producers, 64);
}

// ---- mutex + deque + condition_variable ----

/// The textbook bounded blocking queue: one lock per push and per pop, condition variables
/// notified only when the other side waits.
class mutex_deque_queue {
 public:
  void push(xsn::bus_message m) {
    std::unique_lock lock(mutex_);
    if (items_.size() >= capacity) {
      ++producers_waiting_;
      not_full_.wait(lock, [&] { return items_.size() < capacity; });
      --producers_waiting_;
    }
    items_.push_back(std::move(m));
    const bool wake = consumer_waiting_;
    lock.unlock();
    if (wake) not_empty_.notify_one();
  }
  xsn::bus_message pop() {
    std::unique_lock lock(mutex_);
    if (items_.empty()) {
      consumer_waiting_ = true;
      not_empty_.wait(lock, [&] { return !items_.empty(); });
      consumer_waiting_ = false;
    }
    xsn::bus_message m = std::move(items_.front());
    items_.pop_front();
    const bool wake = producers_waiting_ != 0;
    lock.unlock();
    if (wake) not_full_.notify_one();
    return m;
  }

 private:
  std::mutex mutex_;
  std::condition_variable not_empty_, not_full_;
  std::deque<xsn::bus_message> items_;
  bool consumer_waiting_ = false;
  int producers_waiting_ = 0;
};

void baseline_mutex_deque(benchmark::State& state, int producers) {
  mutex_deque_queue q;
  const std::string address = "m1";
  const xsn::value payload = payload_of(64);
  run(state, producers, [&](int n, std::int64_t total) {
    return run_round(
        n, total,
        [&](std::uint64_t first, std::uint64_t count) {
          for (std::uint64_t i = first; i < first + count; ++i) q.push(make_item(address, payload, i));
        },
        [&](std::int64_t expected) {
          std::uint64_t sum = 0;
          for (std::int64_t i = 0; i < expected; ++i) sum += q.pop().correlation_id;
          return sum;
        });
  });
}

// ---- moodycamel::BlockingConcurrentQueue ----

/// Unbounded (moodycamel's fast path), 64-byte events (see `moodycamel_throughput`).
void baseline_moodycamel(benchmark::State& state, int producers) { moodycamel_throughput(state, producers, 64); }

}  // namespace

// Exact names: scripts and docs/benchmarks.md read them.
BENCHMARK_CAPTURE(bus_channel, 1p1c_64B, 1)->Name("bus/channel/1p1c_64B")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(bus_channel, 2p1c_64B, 2)->Name("bus/channel/2p1c_64B")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(baseline_mutex_deque, 1p1c_64B, 1)
    ->Name("baseline/mutex_deque/1p1c_64B")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(baseline_mutex_deque, 2p1c_64B, 2)
    ->Name("baseline/mutex_deque/2p1c_64B")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(baseline_moodycamel, 1p1c_64B, 1)
    ->Name("baseline/moodycamel/1p1c_64B")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(baseline_moodycamel, 2p1c_64B, 2)
    ->Name("baseline/moodycamel/2p1c_64B")->Unit(benchmark::kMillisecond);
