// `numa_event_bus` under real concurrency, on a simulated two-node topology: publishers on their
// own threads, consumers and the bus on an io_context thread. Threads are owned `std::jthread`s,
// joined before the checks; completion is awaited through futures, never by sleeping or polling.
// CI also runs this file under ThreadSanitizer.
#include <xsn/advanced/numa_event_bus.hpp>

#include "catch.hpp"

#include <xsn/runtime/clock.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_future.hpp>

#include <atomic>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;
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
  checking_consumer(xsn::subscription& s, std::uint64_t n, bool gaps = false,
                    std::optional<asio::any_io_executor> on = std::nullopt)
      : sub(s), expected(n), gaps_allowed(gaps), executor(std::move(on)) {}

  xsn::subscription& sub;
  std::uint64_t expected;
  bool gaps_allowed;
  std::optional<asio::any_io_executor> executor;  // where handlers run; the bus's by default
  std::vector<std::int64_t> last = std::vector<std::int64_t>(producers, -1);
  std::vector<std::uint64_t> per_producer = std::vector<std::uint64_t>(producers, 0);
  std::vector<xsn::bus_message> buf = std::vector<xsn::bus_message>(32);
  std::uint64_t received = 0;
  bool in_order = true;
  std::promise<std::error_code> done;

  void start() {
    auto handler = [this](std::error_code ec) { on_ready(ec); };
    if (executor) {
      sub.async_wait(asio::bind_executor(*executor, handler));
    } else {
      sub.async_wait(handler);
    }
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
/// for room with `async_publish` when a `wait` subscription is full; joined on return. With
/// several subscriptions, a refused `publish` has reached the others already, so a retry would
/// duplicate: `fan_out` publishes with `async_publish` only.
void publish_all(numa_event_bus& bus, const std::string& address, std::int64_t per_producer,
                 thread_checks& checks, bool fan_out = false) {
  std::vector<std::jthread> threads;
  for (int p = 0; p < producers; ++p) {
    threads.emplace_back([&, p] {
      for (std::int64_t i = 0; i < per_producer; ++i) {
        auto m = tagged(address, p, i);
        if (fan_out) {
          checks.expect(!bus.async_publish(std::move(m), asio::use_future).get());
          continue;
        }
        auto ec = bus.publish(std::move(m));
        if (ec == xsn::errc::queue_full) ec = bus.async_publish(std::move(m), asio::use_future).get();
        checks.expect(!ec);
      }
    });
  }
}

}  // namespace

TEST_CASE("numa_bus_concurrency: producers on both nodes lose nothing and keep their order",
          "[bus][numa][concurrency]") {
  constexpr std::int64_t per_producer = 20'000;
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

TEST_CASE("numa_bus_concurrency: a topic with a consumer on each node gets every message on both",
          "[bus][numa][concurrency]") {
  constexpr std::int64_t per_producer = 5'000;
  xsn::manual_clock clk;
  io_thread io0, io1;  // one consumer thread per node
  numa_event_bus bus(io0.ioc.get_executor(), clk, two_nodes());
  auto s0 = bus.subscribe_pinned("topic", on_node(0, 32));
  auto s1 = bus.subscribe_pinned("topic", on_node(1, 32));
  checking_consumer c0(*s0, producers * per_producer);
  checking_consumer c1(*s1, producers * per_producer, false, io1.ioc.get_executor());  // runs on io1
  auto f0 = c0.done.get_future();
  auto f1 = c1.done.get_future();
  asio::post(io0.ioc, [&] { c0.start(); });
  asio::post(io1.ioc, [&] { c1.start(); });
  thread_checks checks;
  publish_all(bus, "topic", per_producer, checks, true);
  CHECK(checks.failures == 0);
  REQUIRE(f0.get() == std::error_code{});
  REQUIRE(f1.get() == std::error_code{});
  io0.stop();
  io1.stop();
  CHECK(c0.in_order);
  CHECK(c1.in_order);
  CHECK(c0.received == static_cast<std::uint64_t>(producers * per_producer));
  CHECK(c1.received == static_cast<std::uint64_t>(producers * per_producer));
}

TEST_CASE("numa_bus_concurrency: async_publish from many threads completes every publication in order",
          "[bus][numa][concurrency]") {
  constexpr std::int64_t per_producer = 5'000;
  xsn::manual_clock clk;
  io_thread io;
  numa_event_bus bus(io.ioc.get_executor(), clk, two_nodes());
  auto sub = bus.subscribe_pinned("m", on_node(1, 4));
  checking_consumer consumer(*sub, producers * per_producer);
  auto finished = consumer.done.get_future();
  asio::post(io.ioc, [&] { consumer.start(); });
  thread_checks checks;
  {
    std::vector<std::jthread> threads;
    for (int p = 0; p < producers; ++p) {
      threads.emplace_back([&, p] {
        for (std::int64_t i = 0; i < per_producer; ++i) {
          checks.expect(!bus.async_publish(tagged("m", p, i), asio::use_future).get());
        }
      });
    }
  }
  CHECK(checks.failures == 0);
  REQUIRE(finished.get() == std::error_code{});
  io.stop();
  CHECK(consumer.in_order);
  CHECK(consumer.received == static_cast<std::uint64_t>(producers * per_producer));
}

TEST_CASE("numa_bus_concurrency: drop_oldest and fail account for every publication", "[bus][numa][concurrency]") {
  constexpr std::int64_t per_producer = 20'000;
  const auto policy = GENERATE(xsn::overflow_policy::drop_oldest, xsn::overflow_policy::fail);
  xsn::manual_clock clk;
  io_thread io;
  numa_event_bus bus(io.ioc.get_executor(), clk, two_nodes());
  auto sub = bus.subscribe_pinned("m", on_node(0, 16, policy));
  checking_consumer consumer(*sub, UINT64_MAX, true);  // until shut down and drained
  auto finished = consumer.done.get_future();
  asio::post(io.ioc, [&] { consumer.start(); });
  std::atomic<std::uint64_t> accepted{0};
  thread_checks checks;
  {
    std::vector<std::jthread> threads;
    for (int p = 0; p < producers; ++p) {
      threads.emplace_back([&, p] {
        for (std::int64_t i = 0; i < per_producer; ++i) {
          const auto ec = bus.publish(tagged("m", p, i));
          if (!ec) {
            accepted.fetch_add(1, std::memory_order_relaxed);
          } else {
            checks.expect(ec == xsn::errc::queue_full);
          }
        }
      });
    }
  }
  const auto counters = bus.health().subscriptions.at(0);  // final: every publisher has returned
  bus.shutdown();
  CHECK(finished.get() == xsn::errc::bus_closed);
  io.stop();
  CHECK(checks.failures == 0);
  CHECK(consumer.in_order);
  const std::uint64_t total = producers * per_producer;
  if (policy == xsn::overflow_policy::drop_oldest) {
    CHECK(accepted == total);
    CHECK(counters.enqueued == total);
    CHECK(consumer.received + counters.dropped == total);
  } else {
    CHECK(counters.rejected + accepted == total);
    CHECK(consumer.received == accepted);
  }
}

TEST_CASE("numa_bus_concurrency: consumer and producers race on every wake-up", "[bus][numa][concurrency]") {
  constexpr std::int64_t per_producer = 5'000;
  xsn::manual_clock clk;
  io_thread io;
  numa_event_bus bus(io.ioc.get_executor(), clk, two_nodes());
  auto sub = bus.subscribe_pinned("m", on_node(1, 1));
  std::promise<void> done;
  std::uint64_t received = 0;
  thread_checks checks;
  std::function<void()> receive_one = [&] {
    sub->async_receive([&](std::error_code ec, xsn::bus_message) {
      checks.expect(!ec);
      if (ec || ++received == producers * per_producer) return done.set_value();
      receive_one();
    });
  };
  asio::post(io.ioc, receive_one);
  {
    std::vector<std::jthread> threads;
    for (int p = 0; p < producers; ++p) {
      threads.emplace_back([&, p] {
        for (std::int64_t i = 0; i < per_producer; ++i) {
          checks.expect(!bus.async_publish(tagged("m", p, i), asio::use_future).get());
        }
      });
    }
  }
  done.get_future().get();
  io.stop();
  CHECK(checks.failures == 0);
  CHECK(received == static_cast<std::uint64_t>(producers * per_producer));
}

TEST_CASE("numa_bus_concurrency: cancelling waiting publishers from another thread", "[bus][numa][concurrency]") {
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

TEST_CASE("numa_bus_concurrency: subscribing and unsubscribing on both nodes while publishers run",
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

TEST_CASE("numa_bus_concurrency: shutdown while publishers wait and the consumer runs", "[bus][numa][concurrency]") {
  xsn::manual_clock clk;
  io_thread io;
  numa_event_bus bus(io.ioc.get_executor(), clk, two_nodes());
  auto sub = bus.subscribe_pinned("m", on_node(1, 2));
  checking_consumer consumer(*sub, UINT64_MAX, true);
  auto finished = consumer.done.get_future();
  asio::post(io.ioc, [&] { consumer.start(); });
  thread_checks checks;
  {
    std::vector<std::promise<void>> started(producers);
    std::vector<std::future<void>> running;
    for (auto& s : started) running.push_back(s.get_future());
    std::vector<std::jthread> threads;
    for (int p = 0; p < producers; ++p) {
      threads.emplace_back([&, p] {
        for (std::int64_t i = 0;; ++i) {
          auto fut = bus.async_publish(tagged("m", p, i), asio::use_future);
          if (i == 0) started[static_cast<std::size_t>(p)].set_value();
          if (const auto ec = fut.get()) {
            checks.expect(ec == xsn::errc::bus_closed);
            return;
          }
        }
      });
    }
    for (auto& r : running) r.get();
    bus.shutdown();
  }
  CHECK(finished.get() == xsn::errc::bus_closed);
  io.stop();
  CHECK(checks.failures == 0);
  CHECK(consumer.in_order);
  CHECK_FALSE(bus.health().running);
  CHECK(bus.health().subscriptions.at(0).waiting_publishers == 0);
}

TEST_CASE("numa_bus_concurrency: concurrent requests each get their own reply", "[bus][numa][concurrency]") {
  constexpr int per_thread = 500;
  xsn::manual_clock clk;  // touched only on the io thread; never advanced
  io_thread io;
  numa_event_bus bus(io.ioc.get_executor(), clk, two_nodes());
  auto service = bus.subscribe_pinned("service", on_node(1, 64));
  thread_checks checks;
  std::function<void()> serve = [&] {
    service->async_receive([&](std::error_code ec, xsn::bus_message req) {
      if (ec) return;
      checks.expect(!bus.reply(req, xsn::event("answer", req.event.data.as_int64() + 1000)));
      serve();
    });
  };
  asio::post(io.ioc, serve);
  {
    std::vector<std::jthread> threads;
    for (int t = 0; t < producers; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < per_thread; ++i) {
          const std::int64_t payload = t * 100'000 + i;
          auto [ec, reply] = bus.async_request(tagged("service", t, payload), 1h, asio::use_future).get();
          checks.expect(!ec && reply.event.data.as_int64() == payload + 1000);
        }
      });
    }
  }
  std::promise<std::size_t> pending;
  asio::post(io.ioc, [&] { pending.set_value(clk.pending()); });
  CHECK(pending.get_future().get() == 0);
  bus.shutdown();
  io.stop();
  CHECK(checks.failures == 0);
  CHECK(bus.health().pending_requests == 0);
}
