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
#include <xsn/bus/detail/mpmc_ring.hpp>

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

/// Bounded to the bus's capacity by a shared count (see `moodycamel_throughput`).
void baseline_moodycamel_bounded(benchmark::State& state, int producers) {
  moodycamel_throughput(state, producers, 64, true);
}

// ---- experiments: the numa bus's queue structure without the bus (issue 14, item 3) ----
// Not baselines: they isolate the question whether a ring per producer would let a bounded,
// causally ordered queue keep up with moodycamel at 2p1c (docs/benchmarks.md, session 12).

/// One `mpmc_ring` shared by the producers (a CAS on its tail per push), as a numa subscription
/// holds; producers yield while it is full, the consumer pops batches and yields while it is empty.
void experiment_shared_ring(benchmark::State& state, int producers) {
  xsn::detail::mpmc_ring<xsn::bus_message> ring(capacity);
  const std::string address = "m1";
  const xsn::value payload = payload_of(64);
  std::vector<xsn::bus_message> buf(batch);
  run(state, producers, [&](int n, std::int64_t total) {
    return run_round(
        n, total,
        [&](std::uint64_t first, std::uint64_t count) {
          for (std::uint64_t i = first; i < first + count; ++i) {
            auto m = make_item(address, payload, i);
            while (!ring.try_push(m)) std::this_thread::yield();
          }
        },
        [&](std::int64_t expected) {
          std::uint64_t sum = 0;
          for (std::int64_t received = 0; received < expected;) {
            const std::size_t k = ring.pop_batch(buf.data(), buf.size(), true);
            if (k == 0) std::this_thread::yield();
            sum += sum_of(buf, k);
            received += static_cast<std::int64_t>(k);
          }
          return sum;
        });
  });
}

/// A message and its place in publication order.
struct lane_item {
  std::uint64_t seq = 0;
  xsn::bus_message msg;
};

/**
 * A ring per producer: a producer takes a sequence number from one shared counter (a
 * `fetch_add`, never retried), which is also the bound: number `s` waits until the consumer has
 * taken more than `s - capacity` items. The consumer merges the rings by sequence number. It
 * hands out the smallest staged number only when every ring with nothing staged was found empty
 * after that item was popped: a publication that happened before it is then visible, so causal
 * order holds, and a producer preempted before writing holds up nobody (its publication races
 * the others'). What it leaves out of the bus: drop-oldest, and finding a thread's ring.
 */
void experiment_lanes(benchmark::State& state, int producers) {
  std::vector<std::unique_ptr<xsn::detail::mpmc_ring<lane_item>>> lanes;
  for (int p = 0; p < producers; ++p) lanes.push_back(std::make_unique<xsn::detail::mpmc_ring<lane_item>>(capacity));
  alignas(64) std::atomic<std::uint64_t> next_seq{0};
  alignas(64) std::atomic<std::uint64_t> consumed{0};
  const std::string address = "m1";
  const xsn::value payload = payload_of(64);
  run(state, producers, [&](int n, std::int64_t total) {
    next_seq = 0;
    consumed = 0;
    return run_round(
        n, total,
        [&](std::uint64_t first, std::uint64_t count) {
          auto& lane = *lanes[first / (static_cast<std::uint64_t>(total) / n)];
          for (std::uint64_t i = first; i < first + count; ++i) {
            lane_item item{next_seq.fetch_add(1, std::memory_order_acq_rel), make_item(address, payload, i)};
            while (item.seq >= consumed.load(std::memory_order_acquire) + capacity) std::this_thread::yield();
            while (!lane.try_push(item)) std::this_thread::yield();
          }
        },
        [&](std::int64_t expected) {
          struct staged {
            std::vector<lane_item> buf = std::vector<lane_item>(batch);
            std::size_t pos = 0, len = 0;
            std::uint64_t popped_at = 0;   // the consumer's clock when this batch was popped
            std::uint64_t checked_at = 0;  // ... when the ring was last found empty
          };
          std::vector<staged> st(static_cast<std::size_t>(n));
          std::uint64_t clock = 0, sum = 0, taken = 0;
          auto refill = [&](std::size_t l) {
            st[l].pos = 0;
            st[l].len = lanes[l]->pop_batch(st[l].buf.data(), batch, false);
            (st[l].len ? st[l].popped_at : st[l].checked_at) = ++clock;
          };
          while (taken < static_cast<std::uint64_t>(expected)) {
            std::size_t best = st.size();
            for (std::size_t l = 0; l < st.size(); ++l) {
              if (st[l].pos == st[l].len) continue;
              if (best == st.size() || st[l].buf[st[l].pos].seq < st[best].buf[st[best].pos].seq) best = l;
            }
            if (best == st.size()) {  // nothing staged
              bool any = false;
              for (std::size_t l = 0; l < st.size(); ++l) refill(l), any |= st[l].len != 0;
              if (!any) std::this_thread::yield();
              continue;
            }
            bool recheck = false;
            for (std::size_t l = 0; l < st.size(); ++l) {
              if (st[l].pos == st[l].len && st[l].checked_at < st[best].popped_at) refill(l), recheck = true;
            }
            if (recheck) continue;
            sum += st[best].buf[st[best].pos++].msg.correlation_id;
            if (++taken % batch == 0) consumed.store(taken, std::memory_order_release);
          }
          consumed.store(taken, std::memory_order_release);
          return sum;
        });
  });
}

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
BENCHMARK_CAPTURE(baseline_moodycamel_bounded, 1p1c_64B, 1)
    ->Name("baseline/moodycamel_bounded/1p1c_64B")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(baseline_moodycamel_bounded, 2p1c_64B, 2)
    ->Name("baseline/moodycamel_bounded/2p1c_64B")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(experiment_shared_ring, 1p1c_64B, 1)
    ->Name("experiment/shared_ring/1p1c_64B")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(experiment_shared_ring, 2p1c_64B, 2)
    ->Name("experiment/shared_ring/2p1c_64B")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(experiment_lanes, 1p1c_64B, 1)->Name("experiment/lanes/1p1c_64B")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(experiment_lanes, 2p1c_64B, 2)->Name("experiment/lanes/2p1c_64B")->Unit(benchmark::kMillisecond);
