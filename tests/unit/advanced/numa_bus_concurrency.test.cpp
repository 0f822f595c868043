// `numa_event_bus` under real concurrency, beyond what every bus is tested for in
// tests/unit/bus_concurrency.test.cpp: pinning to either node of a simulated two-node topology and
// the shards' counts, and per-operation cancellation emitted from the publisher's own thread while
// the consumer makes room on another. Threads are owned `std::jthread`s, joined before the checks;
// completion is awaited through futures, never by sleeping or polling. CI also runs this file under
// ThreadSanitizer.
#include <xsn/advanced/numa_event_bus.hpp>

#include "catch.hpp"

#include <xsn/core/clock.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_future.hpp>

#include <atomic>
#include <cstdint>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using xsn::advanced::numa_event_bus;
using xsn::advanced::numa_subscription_options;
using xsn::advanced::numa_topology;

namespace {

constexpr int producers = 4;

numa_topology two_nodes() { return numa_topology{{{0, {0}}, {1, {1}}}}; }

numa_subscription_options on_node(int node, std::size_t capacity,
                                  xsn::overflow_policy overflow = xsn::overflow_policy::wait) {
  return {.queue = {.capacity = capacity, .overflow = overflow}, .node = node};
}

/// An io_context running on its own thread until `stop()`.
struct io_thread {
  asio::io_context ioc;
  asio::executor_work_guard<asio::io_context::executor_type> guard = asio::make_work_guard(ioc);
  std::jthread thread{[this] { ioc.run(); }};

  void stop() {
    guard.reset();
    ioc.stop();
    if (thread.joinable()) thread.join();
  }
  ~io_thread() { stop(); }
};

/// Failures seen on worker threads, checked on the test's thread after they are joined.
struct thread_checks {
  std::atomic<int> failures{0};
  void expect(bool ok) noexcept {
    if (!ok) failures.fetch_add(1, std::memory_order_relaxed);
  }
};

xsn::bus_message tagged(const std::string& address, int producer, std::int64_t seq) {
  return {address, xsn::event(std::to_string(producer), seq)};
}

/// Drains a subscription with `async_wait` + `try_receive_batch` on the io thread until it has
/// seen `expected` messages or is closed, checking each producer's order (exact: 0, 1, 2, ...;
/// or increasing when gaps are allowed) and counting per producer.
struct checking_consumer {
  checking_consumer(xsn::subscription& s, std::uint64_t n, bool gaps = false)
      : sub(s), expected(n), gaps_allowed(gaps) {}

  xsn::subscription& sub;
  std::uint64_t expected;
  bool gaps_allowed;
  std::vector<std::int64_t> last = std::vector<std::int64_t>(producers, -1);
  std::vector<std::uint64_t> per_producer = std::vector<std::uint64_t>(producers, 0);
  std::vector<xsn::bus_message> buf = std::vector<xsn::bus_message>(32);
  std::uint64_t received = 0;
  bool in_order = true;
  std::promise<std::error_code> done;

  void start() {
    sub.async_wait([this](std::error_code ec) { on_ready(ec); });
  }
  void on_ready(std::error_code ec) {
    if (ec) return done.set_value(ec);
    while (std::size_t n = sub.try_receive_batch(buf)) {
      for (std::size_t i = 0; i < n; ++i) {
        const auto p = static_cast<std::size_t>(std::stoi(buf[i].event.name));
        const auto seq = buf[i].event.data.as_int64();
        if (gaps_allowed ? seq <= last[p] : seq != last[p] + 1) in_order = false;
        last[p] = seq;
        ++per_producer[p];
      }
      received += n;
    }
    if (received >= expected) return done.set_value({});
    start();
  }
};

/// Publishes `per_producer` messages from each of `producers` threads with `publish`, waiting
/// for room with `async_publish` when a `wait` subscription is full (a refused message is left
/// intact, so it is retried as is); joined on return.
void publish_all(numa_event_bus& bus, const std::string& address, std::int64_t per_producer,
                 thread_checks& checks) {
  std::vector<std::jthread> threads;
  for (int p = 0; p < producers; ++p) {
    threads.emplace_back([&, p] {
      for (std::int64_t i = 0; i < per_producer; ++i) {
        auto m = tagged(address, p, i);
        auto ec = bus.publish(std::move(m));
        if (ec == xsn::errc::queue_full) ec = bus.async_publish(std::move(m), asio::use_future).get();
        checks.expect(!ec);
      }
    });
  }
}

}  // namespace

TEST_CASE("numa_bus_concurrency: a subscription pinned to either node gets every message, counted in its shard",
          "[bus][numa][concurrency]") {
  constexpr std::int64_t per_producer = 5'000;
  const int node = GENERATE(0, 1);
  xsn::manual_clock clk;
  io_thread io;
  numa_event_bus bus(io.ioc.get_executor(), clk, two_nodes());
  auto sub = bus.subscribe_pinned("m", on_node(node, 64));
  checking_consumer consumer(*sub, producers * per_producer);
  auto finished = consumer.done.get_future();
  asio::post(io.ioc, [&] { consumer.start(); });
  thread_checks checks;
  publish_all(bus, "m", per_producer, checks);
  CHECK(checks.failures == 0);
  REQUIRE(finished.get() == std::error_code{});
  io.stop();
  CHECK(consumer.in_order);
  CHECK(consumer.received == static_cast<std::uint64_t>(producers * per_producer));
  for (auto n : consumer.per_producer) CHECK(n == static_cast<std::uint64_t>(per_producer));
  const auto h = bus.health();
  CHECK(h.subscriptions.at(0).enqueued == static_cast<std::uint64_t>(producers * per_producer));
  CHECK(h.subscriptions.at(0).backlog == 0);
  CHECK(h.subscriptions.at(0).waiting_publishers == 0);
  const auto shards = bus.shards();
  CHECK(shards[static_cast<std::size_t>(node)].enqueued == static_cast<std::uint64_t>(producers * per_producer));
  CHECK(shards[static_cast<std::size_t>(1 - node)].enqueued == 0);
}

TEST_CASE("numa_bus_concurrency: publishers cancel their waits from their own threads, racing the consumer",
          "[bus][numa][concurrency]") {
  constexpr std::int64_t per_producer = 2'000;
  xsn::manual_clock clk;
  io_thread io;
  numa_event_bus bus(io.ioc.get_executor(), clk, two_nodes());
  auto sub = bus.subscribe_pinned("m", on_node(0, 2));
  checking_consumer consumer(*sub, UINT64_MAX, true);  // cancelled messages leave gaps
  auto finished = consumer.done.get_future();
  asio::post(io.ioc, [&] { consumer.start(); });
  std::atomic<std::uint64_t> completed{0}, canceled{0};
  thread_checks checks;
  {
    std::vector<std::jthread> threads;
    for (int p = 0; p < producers; ++p) {
      threads.emplace_back([&, p] {
        for (std::int64_t i = 0; i < per_producer; ++i) {
          asio::cancellation_signal sig;
          auto fut = bus.async_publish(tagged("m", p, i), asio::bind_cancellation_slot(sig.slot(), asio::use_future));
          if (i % 3 == 0) sig.emit(asio::cancellation_type::terminal);  // races with the consumer
          const auto ec = fut.get();
          if (!ec) {
            completed.fetch_add(1, std::memory_order_relaxed);
          } else {
            checks.expect(ec == std::errc::operation_canceled);
            canceled.fetch_add(1, std::memory_order_relaxed);
          }
        }
      });
    }
  }
  const auto counters = bus.health().subscriptions.at(0);
  bus.shutdown();
  CHECK(finished.get() == xsn::errc::bus_closed);
  io.stop();
  CHECK(checks.failures == 0);
  CHECK(consumer.in_order);
  CHECK(completed + canceled == static_cast<std::uint64_t>(producers * per_producer));
  CHECK(counters.waiting_publishers == 0);
  // Every completed publication was received; a cancelled one may have been queued already.
  CHECK(consumer.received >= completed);
  CHECK(consumer.received == counters.enqueued);
}

TEST_CASE("numa_bus_concurrency: pinned subscriptions come and go on both nodes while publishers run",
          "[bus][numa][concurrency]") {
  xsn::manual_clock clk;
  io_thread io;
  numa_event_bus bus(io.ioc.get_executor(), clk, two_nodes());
  auto anchor = bus.subscribe_pinned("m", on_node(0, 4, xsn::overflow_policy::drop_oldest));
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> published{0};
  thread_checks checks;
  {
    std::vector<std::promise<void>> started(2);
    std::vector<std::future<void>> running;
    for (auto& s : started) running.push_back(s.get_future());
    std::vector<std::jthread> threads;
    for (int p = 0; p < 2; ++p) {
      threads.emplace_back([&, p] {
        for (std::int64_t i = 0; !stop.load(std::memory_order_relaxed); ++i) {
          checks.expect(!bus.publish(tagged("m", p, i)));
          published.fetch_add(1, std::memory_order_relaxed);
          if (i == 0) started[static_cast<std::size_t>(p)].set_value();
        }
      });
    }
    for (auto& r : running) r.get();
    for (int round = 0; round < 2'000; ++round) {
      auto s = bus.subscribe_pinned("m", on_node(round % 2, 2, xsn::overflow_policy::drop_oldest));
      xsn::bus_message m;
      s->try_receive(m);
    }
    stop = true;
  }
  CHECK(checks.failures == 0);
  CHECK(bus.health().subscriptions.size() == 1);
  CHECK(bus.shards()[1].subscriptions == 0);
  CHECK(published.load() > 0);
  io.stop();
}
