// `channel_event_bus` under real concurrency: publishers on their own threads, the consumer and
// the bus on an io_context thread. Threads are owned `std::jthread`s, joined before the checks;
// completion is awaited through futures, never by sleeping or polling.
#include <xsn/bus/channel_event_bus.hpp>

#include "catch.hpp"

#include <xsn/runtime/clock.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <atomic>
#include <functional>
#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

constexpr int producers = 4;

/// An io_context running on its own thread until `stop()`; the bus lives on it.
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

/// Drains a subscription with `async_wait` + `try_receive_batch` on the io thread until it has
/// seen `expected` messages (or the subscription is closed), checking that each producer's
/// messages arrive in increasing order. `done` is fulfilled at the end.
struct checking_consumer {
  checking_consumer(xsn::subscription& s, std::uint64_t n, bool gaps = false)
      : sub(s), expected(n), gaps_allowed(gaps) {}

  xsn::subscription& sub;
  std::uint64_t expected;
  bool gaps_allowed;
  std::vector<std::int64_t> last = std::vector<std::int64_t>(producers, -1);
  std::vector<xsn::bus_message> buf = std::vector<xsn::bus_message>(64);
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
      }
      received += n;
    }
    if (received >= expected) return done.set_value({});
    start();
  }
};

}  // namespace

TEST_CASE("bus_concurrency: wait policy loses nothing and keeps each producer's order", "[bus][concurrency]") {
  constexpr std::int64_t per_producer = 20'000;
  xsn::manual_clock clk;
  io_thread io;
  xsn::channel_event_bus bus(io.ioc.get_executor(), clk);
  auto sub = bus.subscribe("m", {.capacity = 64, .overflow = xsn::overflow_policy::wait});
  checking_consumer consumer(*sub, producers * per_producer);
  auto finished = consumer.done.get_future();
  asio::post(io.ioc, [&] { consumer.start(); });

  std::atomic<std::uint64_t> waited{0};
  thread_checks checks;
  {
    std::vector<std::jthread> threads;
    for (int p = 0; p < producers; ++p) {
      threads.emplace_back([&, p] {
        for (std::int64_t i = 0; i < per_producer; ++i) {
          auto ec = bus.publish(tagged("m", p, i));
          if (ec == xsn::errc::queue_full) {  // full: wait for room, keeping this producer's order
            waited.fetch_add(1, std::memory_order_relaxed);
            ec = bus.async_publish(tagged("m", p, i), asio::use_future).get();
          }
          checks.expect(!ec);
        }
      });
    }
  }  // joined
  CHECK(checks.failures == 0);
  REQUIRE(finished.get() == std::error_code{});
  io.stop();
  CHECK(consumer.in_order);
  CHECK(consumer.received == static_cast<std::uint64_t>(producers * per_producer));
  const auto h = bus.health();
  CHECK(h.subscriptions[0].enqueued == static_cast<std::uint64_t>(producers * per_producer));
  CHECK(h.subscriptions[0].backlog == 0);
  CHECK(h.subscriptions[0].waiting_publishers == 0);
  CHECK(h.subscriptions[0].dropped == 0);
}

TEST_CASE("bus_concurrency: async_publish from many threads completes every publication", "[bus][concurrency]") {
  constexpr std::int64_t per_producer = 5'000;
  xsn::manual_clock clk;
  io_thread io;
  xsn::channel_event_bus bus(io.ioc.get_executor(), clk);
  auto sub = bus.subscribe("m", {.capacity = 8});
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

TEST_CASE("bus_concurrency: drop_oldest and fail account for every publication", "[bus][concurrency]") {
  constexpr std::int64_t per_producer = 20'000;
  const auto policy = GENERATE(xsn::overflow_policy::drop_oldest, xsn::overflow_policy::fail);
  xsn::manual_clock clk;
  io_thread io;
  xsn::channel_event_bus bus(io.ioc.get_executor(), clk);
  auto sub = bus.subscribe("m", {.capacity = 16, .overflow = policy});
  // The consumer drains concurrently; it stops when the bus is shut down and drained.
  checking_consumer consumer(*sub, UINT64_MAX, true);
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
  const auto counters = bus.health().subscriptions.at(0);  // final: no publisher is left
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

TEST_CASE("bus_concurrency: consumer and producers race on every wake-up", "[bus][concurrency]") {
  // Capacity 1 and an eager consumer: nearly every message goes through the sleep/wake path.
  constexpr std::int64_t per_producer = 5'000;
  xsn::manual_clock clk;
  io_thread io;
  xsn::channel_event_bus bus(io.ioc.get_executor(), clk);
  auto sub = bus.subscribe("m", {.capacity = 1});
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

TEST_CASE("bus_concurrency: concurrent requests each get their own reply", "[bus][concurrency]") {
  constexpr int per_thread = 500;
  xsn::manual_clock clk;  // touched only on the io thread; never advanced: no timeouts
  io_thread io;
  xsn::channel_event_bus bus(io.ioc.get_executor(), clk);
  auto service = bus.subscribe("service");
  thread_checks checks;
  // The responder: answers every request with its payload + 1000.
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
  // Everything answered: the timers are cancelled on the io thread; check there.
  std::promise<std::size_t> pending;
  asio::post(io.ioc, [&] { pending.set_value(clk.pending()); });
  CHECK(pending.get_future().get() == 0);
  bus.shutdown();  // completes the responder's receive
  io.stop();
  CHECK(checks.failures == 0);
  CHECK(bus.health().pending_requests == 0);
}

TEST_CASE("bus_concurrency: subscribing and unsubscribing while publishers run", "[bus][concurrency]") {
  xsn::manual_clock clk;
  io_thread io;
  xsn::channel_event_bus bus(io.ioc.get_executor(), clk);
  auto anchor = bus.subscribe("m", {.capacity = 4, .overflow = xsn::overflow_policy::drop_oldest});
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
    for (auto& r : running) r.get();  // both publishers are publishing
    for (int round = 0; round < 2'000; ++round) {
      auto s = bus.subscribe("m", {.capacity = 2, .overflow = xsn::overflow_policy::drop_oldest});
      xsn::bus_message m;
      s->try_receive(m);
    }
    stop = true;
  }
  CHECK(checks.failures == 0);
  CHECK(bus.health().subscriptions.size() == 1);
  CHECK(published.load() > 0);
  io.stop();
}

TEST_CASE("bus_concurrency: shutdown while publishers wait and the consumer runs", "[bus][concurrency]") {
  xsn::manual_clock clk;
  io_thread io;
  xsn::channel_event_bus bus(io.ioc.get_executor(), clk);
  auto sub = bus.subscribe("m", {.capacity = 2});
  // Gaps: a message whose wait was ended by the shutdown is not queued.
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
    for (auto& r : running) r.get();  // every publisher has published
    bus.shutdown();
  }  // every publisher saw bus_closed and returned
  CHECK(finished.get() == xsn::errc::bus_closed);
  io.stop();
  CHECK(checks.failures == 0);
  CHECK(consumer.in_order);
  CHECK_FALSE(bus.health().running);
  CHECK(bus.health().subscriptions.at(0).waiting_publishers == 0);
}
