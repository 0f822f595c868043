// Every event bus under real concurrency: publishers on their own threads, the consumers and the
// bus on io_context threads. Each case runs for every implementation (`bus_implementations`: the
// channel bus, and the NUMA bus when xsn::advanced is built, which this executable then links).
// Threads are owned `std::jthread`s, joined before the checks; completion is awaited through
// futures, never by sleeping or polling. CI also runs this file under ThreadSanitizer.
// What only one bus does (NUMA pinning and shards, its cross-thread cancellation) is tested in
// that bus's own *_concurrency file.
#include <xsn/bus/event_bus.hpp>

#include "catch.hpp"

#include <xsn/bus/channel_event_bus.hpp>
#include <xsn/config.hpp>
#include <xsn/core/clock.hpp>
#if XSN_WITH_ADVANCED
#include <xsn/advanced/numa_event_bus.hpp>
#endif

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_future.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;

// ---- the implementations under test (as in tests/contract/event_bus.test.cpp) ----

/// How a test makes a bus of type `Bus` and its `k`-th subscription.
template <class Bus>
struct bus_under_test;

template <>
struct bus_under_test<xsn::channel_event_bus> {
  static std::unique_ptr<xsn::event_bus> make(asio::any_io_executor ex, xsn::clock& clk) {
    return std::make_unique<xsn::channel_event_bus>(std::move(ex), clk);
  }
  static std::unique_ptr<xsn::subscription> subscribe(xsn::event_bus& bus, std::string_view address,
                                                      xsn::subscription_options options, int /*k*/) {
    return bus.subscribe(address, options);
  }
};

#if XSN_WITH_ADVANCED
/// On a simulated two-node topology; subscription `k` is pinned to node `k % 2`, so a test with
/// two subscriptions has one in each node's shard.
template <>
struct bus_under_test<xsn::advanced::numa_event_bus> {
  static std::unique_ptr<xsn::event_bus> make(asio::any_io_executor ex, xsn::clock& clk) {
    xsn::advanced::numa_topology two_nodes{{{0, {0}}, {1, {1}}}};
    return std::make_unique<xsn::advanced::numa_event_bus>(std::move(ex), clk, std::move(two_nodes));
  }
  static std::unique_ptr<xsn::subscription> subscribe(xsn::event_bus& bus, std::string_view address,
                                                      xsn::subscription_options options, int k) {
    return static_cast<xsn::advanced::numa_event_bus&>(bus).subscribe_pinned(address, {.queue = options, .node = k % 2});
  }
};

using bus_implementations = std::tuple<xsn::channel_event_bus, xsn::advanced::numa_event_bus>;
#else
using bus_implementations = std::tuple<xsn::channel_event_bus>;
#endif

namespace {

constexpr int producers = 4;

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

/// A bus of type `Bus` living on an io thread, with a manual clock that is never advanced.
template <class Bus>
struct fixture {
  xsn::manual_clock clk;
  io_thread io;
  std::unique_ptr<xsn::event_bus> bus = bus_under_test<Bus>::make(io.ioc.get_executor(), clk);

  std::unique_ptr<xsn::subscription> subscribe(std::string_view address, xsn::subscription_options options = {},
                                               int k = 0) {
    return bus_under_test<Bus>::subscribe(*bus, address, options, k);
  }
};

/// Failures seen on worker threads (Catch2's assertions are not thread-safe): checked on the
/// test's thread after the workers are joined.
struct thread_checks {
  std::atomic<int> failures{0};
  void expect(bool ok) noexcept {
    if (!ok) failures.fetch_add(1, std::memory_order_relaxed);
  }
};

xsn::bus_message tagged(const std::string& address, int producer, std::int64_t seq) {
  return {address, xsn::event(std::to_string(producer), seq)};
}

/// Drains a subscription with `async_wait` + `try_receive_batch` until it has seen `expected`
/// messages or is closed, checking each producer's order (exact: 0, 1, 2, ...; or increasing when
/// gaps are allowed) and counting per producer. Its handlers run on `on`, else on the bus's
/// executor. `done` is fulfilled at the end.
struct checking_consumer {
  checking_consumer(xsn::subscription& s, std::uint64_t n, bool gaps = false,
                    std::optional<asio::any_io_executor> on = std::nullopt)
      : sub(s), expected(n), gaps_allowed(gaps), executor(std::move(on)) {}

  xsn::subscription& sub;
  std::uint64_t expected;
  bool gaps_allowed;
  std::optional<asio::any_io_executor> executor;
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
/// for room with `async_publish` when a `wait` subscription is full (a refused message is left
/// intact, so it is retried as is); joined on return. With several subscriptions a refused
/// `publish` has reached the others already, so a retry would duplicate: `fan_out` publishes
/// with `async_publish` only.
void publish_all(xsn::event_bus& bus, const std::string& address, std::int64_t per_producer,
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

TEMPLATE_LIST_TEST_CASE("bus_concurrency: wait policy loses nothing and keeps each producer's order",
                        "[bus][concurrency]", bus_implementations) {
  constexpr std::int64_t per_producer = 20'000;
  constexpr std::uint64_t total = producers * per_producer;
  fixture<TestType> f;
  auto sub = f.subscribe("m", {.capacity = 64, .overflow = xsn::overflow_policy::wait});
  checking_consumer consumer(*sub, total);
  auto finished = consumer.done.get_future();
  asio::post(f.io.ioc, [&] { consumer.start(); });
  thread_checks checks;
  publish_all(*f.bus, "m", per_producer, checks);
  CHECK(checks.failures == 0);
  REQUIRE(finished.get() == std::error_code{});
  f.io.stop();
  CHECK(consumer.in_order);
  CHECK(consumer.received == total);
  for (auto n : consumer.per_producer) CHECK(n == static_cast<std::uint64_t>(per_producer));
  const auto h = f.bus->health();
  CHECK(h.subscriptions.at(0).enqueued == total);
  CHECK(h.subscriptions.at(0).backlog == 0);
  CHECK(h.subscriptions.at(0).waiting_publishers == 0);
  CHECK(h.subscriptions.at(0).dropped == 0);
}

TEMPLATE_LIST_TEST_CASE("bus_concurrency: two consumers on their own threads each get every message of a topic",
                        "[bus][concurrency]", bus_implementations) {
  constexpr std::int64_t per_producer = 5'000;
  constexpr std::uint64_t total = producers * per_producer;
  fixture<TestType> f;  // the bus and consumer 0 on f.io
  io_thread io1;        // consumer 1
  auto s0 = f.subscribe("topic", {.capacity = 32}, 0);
  auto s1 = f.subscribe("topic", {.capacity = 32}, 1);  // NUMA: on the other node
  checking_consumer c0(*s0, total);
  checking_consumer c1(*s1, total, false, io1.ioc.get_executor());
  auto f0 = c0.done.get_future();
  auto f1 = c1.done.get_future();
  asio::post(f.io.ioc, [&] { c0.start(); });
  asio::post(io1.ioc, [&] { c1.start(); });
  thread_checks checks;
  publish_all(*f.bus, "topic", per_producer, checks, true);
  CHECK(checks.failures == 0);
  REQUIRE(f0.get() == std::error_code{});
  REQUIRE(f1.get() == std::error_code{});
  f.io.stop();
  io1.stop();
  CHECK(c0.in_order);
  CHECK(c1.in_order);
  CHECK(c0.received == total);
  CHECK(c1.received == total);
}

TEMPLATE_LIST_TEST_CASE("bus_concurrency: async_publish from many threads completes every publication in order",
                        "[bus][concurrency]", bus_implementations) {
  constexpr std::int64_t per_producer = 5'000;
  fixture<TestType> f;
  auto sub = f.subscribe("m", {.capacity = 4});
  checking_consumer consumer(*sub, producers * per_producer);
  auto finished = consumer.done.get_future();
  asio::post(f.io.ioc, [&] { consumer.start(); });
  thread_checks checks;
  {
    std::vector<std::jthread> threads;
    for (int p = 0; p < producers; ++p) {
      threads.emplace_back([&, p] {
        for (std::int64_t i = 0; i < per_producer; ++i) {
          checks.expect(!f.bus->async_publish(tagged("m", p, i), asio::use_future).get());
        }
      });
    }
  }  // joined
  CHECK(checks.failures == 0);
  REQUIRE(finished.get() == std::error_code{});
  f.io.stop();
  CHECK(consumer.in_order);
  CHECK(consumer.received == static_cast<std::uint64_t>(producers * per_producer));
}

TEMPLATE_LIST_TEST_CASE("bus_concurrency: drop_oldest and fail account for every publication", "[bus][concurrency]",
                        bus_implementations) {
  constexpr std::int64_t per_producer = 20'000;
  const auto policy = GENERATE(xsn::overflow_policy::drop_oldest, xsn::overflow_policy::fail);
  fixture<TestType> f;
  auto sub = f.subscribe("m", {.capacity = 16, .overflow = policy});
  checking_consumer consumer(*sub, UINT64_MAX, true);  // drains concurrently, until shut down
  auto finished = consumer.done.get_future();
  asio::post(f.io.ioc, [&] { consumer.start(); });
  std::atomic<std::uint64_t> accepted{0};
  thread_checks checks;
  {
    std::vector<std::jthread> threads;
    for (int p = 0; p < producers; ++p) {
      threads.emplace_back([&, p] {
        for (std::int64_t i = 0; i < per_producer; ++i) {
          const auto ec = f.bus->publish(tagged("m", p, i));
          if (!ec) {
            accepted.fetch_add(1, std::memory_order_relaxed);
          } else {
            checks.expect(ec == xsn::errc::queue_full);
          }
        }
      });
    }
  }
  const auto counters = f.bus->health().subscriptions.at(0);  // final: every publisher has returned
  f.bus->shutdown();
  CHECK(finished.get() == xsn::errc::bus_closed);
  f.io.stop();
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

TEMPLATE_LIST_TEST_CASE("bus_concurrency: consumer and producers race on every wake-up", "[bus][concurrency]",
                        bus_implementations) {
  // Capacity 1 and an eager consumer: nearly every message goes through the sleep/wake path.
  constexpr std::int64_t per_producer = 5'000;
  fixture<TestType> f;
  auto sub = f.subscribe("m", {.capacity = 1});
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
  asio::post(f.io.ioc, receive_one);
  {
    std::vector<std::jthread> threads;
    for (int p = 0; p < producers; ++p) {
      threads.emplace_back([&, p] {
        for (std::int64_t i = 0; i < per_producer; ++i) {
          checks.expect(!f.bus->async_publish(tagged("m", p, i), asio::use_future).get());
        }
      });
    }
  }
  done.get_future().get();
  f.io.stop();
  CHECK(checks.failures == 0);
  CHECK(received == static_cast<std::uint64_t>(producers * per_producer));
}

TEMPLATE_LIST_TEST_CASE("bus_concurrency: concurrent requests each get their own reply", "[bus][concurrency]",
                        bus_implementations) {
  constexpr int per_thread = 500;
  fixture<TestType> f;  // the clock is touched only on the io thread; never advanced: no timeouts
  auto service = f.subscribe("service", {.capacity = 64});
  thread_checks checks;
  // The responder: answers every request with its payload + 1000.
  std::function<void()> serve = [&] {
    service->async_receive([&](std::error_code ec, xsn::bus_message req) {
      if (ec) return;
      checks.expect(!f.bus->reply(req, xsn::event("answer", req.event.data.as_int64() + 1000)));
      serve();
    });
  };
  asio::post(f.io.ioc, serve);
  {
    std::vector<std::jthread> threads;
    for (int t = 0; t < producers; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < per_thread; ++i) {
          const std::int64_t payload = t * 100'000 + i;
          auto [ec, reply] = f.bus->async_request(tagged("service", t, payload), 1h, asio::use_future).get();
          checks.expect(!ec && reply.event.data.as_int64() == payload + 1000);
        }
      });
    }
  }
  // Everything answered: the timers are cancelled on the io thread; check there.
  std::promise<std::size_t> pending;
  asio::post(f.io.ioc, [&] { pending.set_value(f.clk.pending()); });
  CHECK(pending.get_future().get() == 0);
  f.bus->shutdown();  // completes the responder's receive
  f.io.stop();
  CHECK(checks.failures == 0);
  CHECK(f.bus->health().pending_requests == 0);
}

TEMPLATE_LIST_TEST_CASE("bus_concurrency: subscribing and unsubscribing while publishers run", "[bus][concurrency]",
                        bus_implementations) {
  fixture<TestType> f;
  auto anchor = f.subscribe("m", {.capacity = 4, .overflow = xsn::overflow_policy::drop_oldest});
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
          checks.expect(!f.bus->publish(tagged("m", p, i)));
          published.fetch_add(1, std::memory_order_relaxed);
          if (i == 0) started[static_cast<std::size_t>(p)].set_value();
        }
      });
    }
    for (auto& r : running) r.get();  // both publishers are publishing
    for (int round = 0; round < 2'000; ++round) {
      auto s = f.subscribe("m", {.capacity = 2, .overflow = xsn::overflow_policy::drop_oldest});
      xsn::bus_message m;
      s->try_receive(m);
    }
    stop = true;
  }
  CHECK(checks.failures == 0);
  CHECK(f.bus->health().subscriptions.size() == 1);
  CHECK(published.load() > 0);
  f.io.stop();
}

TEMPLATE_LIST_TEST_CASE("bus_concurrency: shutdown while publishers wait and the consumer runs", "[bus][concurrency]",
                        bus_implementations) {
  fixture<TestType> f;
  auto sub = f.subscribe("m", {.capacity = 2});
  // Gaps: a message whose wait was ended by the shutdown is not queued.
  checking_consumer consumer(*sub, UINT64_MAX, true);
  auto finished = consumer.done.get_future();
  asio::post(f.io.ioc, [&] { consumer.start(); });
  thread_checks checks;
  {
    std::vector<std::promise<void>> started(producers);
    std::vector<std::future<void>> running;
    for (auto& s : started) running.push_back(s.get_future());
    std::vector<std::jthread> threads;
    for (int p = 0; p < producers; ++p) {
      threads.emplace_back([&, p] {
        for (std::int64_t i = 0;; ++i) {
          auto fut = f.bus->async_publish(tagged("m", p, i), asio::use_future);
          if (i == 0) started[static_cast<std::size_t>(p)].set_value();
          if (const auto ec = fut.get()) {
            checks.expect(ec == xsn::errc::bus_closed);
            return;
          }
        }
      });
    }
    for (auto& r : running) r.get();  // every publisher has published
    f.bus->shutdown();
  }  // every publisher saw bus_closed and returned
  CHECK(finished.get() == xsn::errc::bus_closed);
  f.io.stop();
  CHECK(checks.failures == 0);
  CHECK(consumer.in_order);
  CHECK_FALSE(f.bus->health().running);
  CHECK(f.bus->health().subscriptions.at(0).waiting_publishers == 0);
}
