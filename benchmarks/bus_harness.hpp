#pragma once
/// \file The harness the bus benchmarks share (benchmarks/bus.bench.cpp and
/// benchmarks/advanced/bus.bench.cpp): the item every queue moves, producer threads joined per
/// round, the exactly-once check and wall-clock `items_per_second`.
#include <xsn/bus/event_bus.hpp>
#include <xsn/core/clock.hpp>

#include <benchmark/benchmark.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json/string.hpp>
#include <concurrentqueue/blockingconcurrentqueue.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace xsn_bench::bus_harness {

inline constexpr std::int64_t items_per_iteration = 1 << 20;
inline constexpr std::size_t capacity = 10'000;  // the bus's default; the baseline queues are bounded alike
inline constexpr std::size_t batch = 256;        // consumer's batch for the bus and moodycamel

/// The item every variant moves: address, event name, 64-byte payload, sequence number.
inline xsn::bus_message make_item(const std::string& address, const xsn::value& payload, std::uint64_t seq) {
  xsn::bus_message m(address, xsn::event("tick", payload));
  m.correlation_id = seq;  // summed by the consumer
  return m;
}

/// A JSON string payload of `bytes` bytes (8 fit in the string itself, 64 are one allocation).
inline xsn::value payload_of(std::size_t bytes) { return xsn::value(boost::json::string(bytes, 'x')); }

/// The sum of the sequence numbers of the first `k` items of a consumer's batch `buf`.
inline std::uint64_t sum_of(const std::vector<xsn::bus_message>& buf, std::size_t k) {
  std::uint64_t sum = 0;
  for (std::size_t j = 0; j < k; ++j) sum += buf[j].correlation_id;
  return sum;
}

/// The sum of the sequence numbers `0 .. total - 1` (each producer sends a contiguous range), which
/// the consumer must arrive at.
inline std::uint64_t expected_sum(std::int64_t total) {
  const auto t = static_cast<std::uint64_t>(total);
  return t * (t - 1) / 2;
}

/// Runs `producers` threads, each producing its share of `total` items through `produce(first,
/// count)`, while `consume(total)` drains on this thread and returns the sum of sequence numbers.
template <class Produce, class Consume>
bool run_round(int producers, std::int64_t total, Produce produce, Consume consume) {
  std::uint64_t sum = 0;
  {
    std::vector<std::jthread> threads;
    const std::int64_t share = total / producers;
    for (int p = 0; p < producers; ++p) {
      threads.emplace_back([&produce, p, share] {
        produce(static_cast<std::uint64_t>(p * share), static_cast<std::uint64_t>(share));
      });
    }
    sum = consume(total);
  }  // joined
  return sum == expected_sum(total);
}

/// Runs rounds while the benchmark wants iterations. `items_per_second` is set from wall-clock
/// time measured here (not Google Benchmark's CPU time of this thread, which leaves out the
/// producers and the time spent waiting; `UseRealTime()` would rename the benchmark).
template <class Round>
void run(benchmark::State& state, int producers, Round round) {
  std::chrono::steady_clock::duration wall{};
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    const bool ok = round(producers, items_per_iteration);
    wall += std::chrono::steady_clock::now() - start;
    if (!ok) {
      state.SkipWithError("the consumer did not see every item exactly once");
      return;
    }
  }
  const double items = static_cast<double>(state.iterations()) * items_per_iteration;
  state.counters["items_per_second"] = items / std::chrono::duration<double>(wall).count();
}

/// An `event_bus` `Bus` (constructed from an executor and a clock): producers `publish`
/// (non-blocking) and, when the subscription is full, wait for room with
/// `async_publish(..., use_future)` (backpressure, `overflow_policy::wait`). The consumer runs the
/// bus's io_context: `async_wait`, then `try_receive_batch` until empty.
template <class Bus>
void bus_throughput(benchmark::State& state, int producers, std::size_t payload_bytes) {
  boost::asio::io_context ioc;
  xsn::manual_clock clk;
  Bus bus(ioc.get_executor(), clk);
  auto sub = bus.subscribe("m1", {.capacity = capacity, .overflow = xsn::overflow_policy::wait});
  const std::string address = "m1";
  const xsn::value payload = payload_of(payload_bytes);
  std::vector<xsn::bus_message> buf(batch);

  run(state, producers, [&](int n, std::int64_t total) {
    return run_round(
        n, total,
        [&](std::uint64_t first, std::uint64_t count) {
          for (std::uint64_t i = first; i < first + count; ++i) {
            auto m = make_item(address, payload, i);
            if (bus.publish(std::move(m)) == xsn::errc::queue_full) {
              // `publish` moves only on success: `m` is intact.
              bus.async_publish(std::move(m), boost::asio::use_future).get();
            }
          }
        },
        [&](std::int64_t expected) {
          std::uint64_t sum = 0;
          std::int64_t received = 0;
          std::function<void(std::error_code)> on_ready = [&](std::error_code ec) {
            if (ec) return;
            while (std::size_t k = sub->try_receive_batch(buf)) {
              sum += sum_of(buf, k);
              received += static_cast<std::int64_t>(k);
            }
            if (received < expected) sub->async_wait(on_ready);
          };
          sub->async_wait(on_ready);
          ioc.restart();
          ioc.run();  // until the last item: then nothing is pending
          return sum;
        });
  });
}

/// moodycamel's `BlockingConcurrentQueue` of the same items: a producer token per producer, bulk
/// blocking dequeue. Unbounded (its fast path), or with `bounded` held to the bus's bound by a
/// count of queued items shared by the producers and the consumer: a producer takes a place
/// (`fetch_add`) before enqueueing and, when `capacity` items are queued, gives it back and yields
/// until there is room; the consumer returns the places of each batch. That measures what a bound
/// shared by every producer costs moodycamel (one contended read-modify-write per item), without
/// the bus's routing, parking or cross-producer order, which moodycamel does not keep (its
/// producers' queues are their own).
inline void moodycamel_throughput(benchmark::State& state, int producers, std::size_t payload_bytes,
                                  bool bounded = false) {
  moodycamel::BlockingConcurrentQueue<xsn::bus_message> q;
  std::atomic<std::int64_t> queued{0};
  const std::string address = "m1";
  const xsn::value payload = payload_of(payload_bytes);
  std::vector<xsn::bus_message> buf(batch);
  run(state, producers, [&](int n, std::int64_t total) {
    return run_round(
        n, total,
        [&](std::uint64_t first, std::uint64_t count) {
          moodycamel::ProducerToken token(q);
          constexpr auto bound = static_cast<std::int64_t>(capacity);
          for (std::uint64_t i = first; i < first + count; ++i) {
            while (bounded && queued.fetch_add(1, std::memory_order_acquire) >= bound) {
              queued.fetch_sub(1, std::memory_order_relaxed);
              std::this_thread::yield();
            }
            q.enqueue(token, make_item(address, payload, i));
          }
        },
        [&](std::int64_t expected) {
          std::uint64_t sum = 0;
          moodycamel::ConsumerToken token(q);
          for (std::int64_t received = 0; received < expected;) {
            const std::size_t k = q.wait_dequeue_bulk(token, buf.begin(), buf.size());
            if (bounded) queued.fetch_sub(static_cast<std::int64_t>(k), std::memory_order_release);
            sum += sum_of(buf, k);
            received += static_cast<std::int64_t>(k);
          }
          return sum;
        });
  });
}

}  // namespace xsn_bench::bus_harness
