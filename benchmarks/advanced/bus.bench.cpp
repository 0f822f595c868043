/// \file `xsn::advanced::numa_event_bus` against moodycamel's `BlockingConcurrentQueue` and
/// `boost::lockfree::queue`, with 8- and 64-byte events, in the same `xsn_bench` run as the core
/// bus (`benchmarks/bus.bench.cpp`, whose harness this one follows).
///
/// The bus and moodycamel move the same item as the core benchmarks: an `xsn::bus_message` whose
/// event carries an 8- or 64-byte payload (`event.data`, a JSON string: 8 bytes fit in the
/// string itself, 64 bytes are one allocation by the producer, freed by the consumer), built by
/// the producer for each item. `boost::lockfree::queue` only takes trivially copyable types, so
/// its items are plain 8- or 64-byte structs (sequence number + padding): it moves less than the
/// others do. Producers run on their own `std::jthread`s (joined); the consumer drains on the
/// benchmark's thread. One iteration moves `items_per_iteration` items; `items_per_second` is
/// wall-clock. Each run checks that the consumer saw every item exactly once (count and sum of
/// sequence numbers), or posts no figure.
#include <xsn/advanced/numa_event_bus.hpp>
#include <xsn/core/clock.hpp>

#include "../bus_harness.hpp"

#include <benchmark/benchmark.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json/string.hpp>
#include <boost/lockfree/queue.hpp>
#include <concurrentqueue/blockingconcurrentqueue.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

namespace {

using namespace xsn_bench::bus_harness;

// ---- xsn::advanced::numa_event_bus ----

/// As `bus/channel` (`bus_throughput`). The subscription is pinned to the node of the CPU the
/// consumer runs on (the machine's topology).
void bus_numa(benchmark::State& state, int producers, std::size_t payload_bytes) {
  bus_throughput<xsn::advanced::numa_event_bus>(state, producers, payload_bytes);
}

// ---- moodycamel::BlockingConcurrentQueue, 8-byte payload (the 64-byte one is in bus.bench.cpp) ----

void baseline_moodycamel_8(benchmark::State& state, int producers) { moodycamel_throughput(state, producers, 8); }

// ---- boost::lockfree::queue ----

/// A trivially copyable item of exactly `Bytes` bytes: the sequence number and padding.
template <std::size_t Bytes>
struct pod_item {
  std::uint64_t seq;
  char pad[Bytes - sizeof(std::uint64_t)];
};
template <>
struct pod_item<8> {
  std::uint64_t seq;
};
static_assert(sizeof(pod_item<64>) == 64 && sizeof(pod_item<8>) == 8);
static_assert(std::is_trivially_copyable_v<pod_item<64>>);

/// Bounded (`capacity` nodes, allocated up front; `bounded_push` never allocates). The queue has
/// no blocking wait: a producer that finds it full and a consumer that finds it empty pause, and
/// yield after a few tries, which is how it is used without a condition variable.
template <std::size_t Bytes>
void baseline_boost_lockfree(benchmark::State& state, int producers) {
  boost::lockfree::queue<pod_item<Bytes>> q(capacity);
  run(state, producers, [&](int n, std::int64_t total) {
    return run_round(
        n, total,
        [&](std::uint64_t first, std::uint64_t count) {
          for (std::uint64_t i = first; i < first + count; ++i) {
            pod_item<Bytes> item{};
            item.seq = i;
            for (int tries = 0; !q.bounded_push(item); ++tries) {
              if (tries > 16) std::this_thread::yield();
            }
          }
        },
        [&](std::int64_t expected) {
          std::uint64_t sum = 0;
          pod_item<Bytes> item{};
          for (std::int64_t received = 0; received < expected;) {
            int tries = 0;
            while (!q.pop(item)) {
              if (++tries > 16) std::this_thread::yield();
            }
            sum += item.seq;
            ++received;
          }
          return sum;
        });
  });
}

void baseline_boost_lockfree_64(benchmark::State& state, int producers) { baseline_boost_lockfree<64>(state, producers); }
void baseline_boost_lockfree_8(benchmark::State& state, int producers) { baseline_boost_lockfree<8>(state, producers); }

}  // namespace

// Exact names: scripts and docs/benchmarks.md read them.
BENCHMARK_CAPTURE(bus_numa, 1p1c_64B, 1, 64)->Name("bus/numa/1p1c_64B")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(bus_numa, 2p1c_64B, 2, 64)->Name("bus/numa/2p1c_64B")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(bus_numa, 1p1c_8B, 1, 8)->Name("bus/numa/1p1c_8B")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(bus_numa, 2p1c_8B, 2, 8)->Name("bus/numa/2p1c_8B")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(baseline_moodycamel_8, 1p1c_8B, 1)
    ->Name("baseline/moodycamel/1p1c_8B")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(baseline_moodycamel_8, 2p1c_8B, 2)
    ->Name("baseline/moodycamel/2p1c_8B")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(baseline_boost_lockfree_64, 1p1c_64B, 1)
    ->Name("baseline/boost_lockfree/1p1c_64B")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(baseline_boost_lockfree_64, 2p1c_64B, 2)
    ->Name("baseline/boost_lockfree/2p1c_64B")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(baseline_boost_lockfree_8, 1p1c_8B, 1)
    ->Name("baseline/boost_lockfree/1p1c_8B")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(baseline_boost_lockfree_8, 2p1c_8B, 2)
    ->Name("baseline/boost_lockfree/2p1c_8B")->Unit(benchmark::kMillisecond);
