// Two threads sharing one breaker. No sleeps, no polling: the threads start together on a latch
// and report through futures; every thread is a std::jthread owned by the test and joined.
// Time is a manual clock, advanced only by the main thread while the workers are joined.
#include <xsn/resilience/simple_circuit_breaker.hpp>

#include <xsn/core/clock.hpp>
#include <xsn/core/errors.hpp>

#include "catch.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <latch>
#include <mutex>
#include <random>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using xsn::breaker_state;

namespace {

/// Runs `work(thread_index)` on two threads started together; returns their results.
template <class Work>
auto on_two_threads(Work work) {
  using result = decltype(work(0));
  std::latch start(2);
  std::vector<std::future<result>> futures;
  std::vector<std::jthread> threads;
  for (int i = 0; i < 2; ++i) {
    std::packaged_task<result()> task([&work, &start, i] {
      start.arrive_and_wait();
      return work(i);
    });
    futures.push_back(task.get_future());
    threads.emplace_back(std::move(task));
  }
  for (auto& t : threads) t.join();
  std::vector<result> results;
  for (auto& f : futures) results.push_back(f.get());  // rethrows a worker's exception
  return results;
}

/// Records transitions; checks that listeners never run concurrently.
struct transition_log {
  std::mutex mutex;
  std::vector<std::pair<breaker_state, breaker_state>> changes;
  std::atomic<int> inside{0};
  std::atomic<bool> overlapped{false};

  void operator()(breaker_state from, breaker_state to) {
    if (inside.fetch_add(1) != 0) overlapped = true;
    {
      std::lock_guard lk(mutex);
      changes.emplace_back(from, to);
    }
    inside.fetch_sub(1);
  }
};

const std::error_code failure = std::make_error_code(std::errc::connection_reset);

}  // namespace

TEST_CASE("breaker_concurrency: two threads on the closed path", "[breaker][concurrency]") {
  xsn::manual_clock clk;
  xsn::simple_circuit_breaker b(clk, {.failure_threshold = 3});
  transition_log log;
  auto sub = b.on_state_change([&](breaker_state f, breaker_state t, xsn::clock::time_point) { log(f, t); });
  constexpr int calls = 20'000;
  const auto counts = on_two_threads([&](int) {
    int made = 0;
    for (int i = 0; i < calls; ++i) {
      b.execute([&] { ++made; });
      if (b.try_acquire()) b.record_success();
    }
    return made;
  });
  CHECK(counts == std::vector<int>{calls, calls});
  CHECK(b.state() == breaker_state::closed);
  CHECK(log.changes.empty());
}

TEST_CASE("breaker_concurrency: failures from two threads open it once", "[breaker][concurrency]") {
  for (int round = 0; round < 50; ++round) {
    xsn::manual_clock clk;
    constexpr std::uint32_t threshold = 500;
    xsn::simple_circuit_breaker b(clk, {.failure_threshold = threshold});
    transition_log log;
    auto sub = b.on_state_change([&](breaker_state f, breaker_state t, xsn::clock::time_point) { log(f, t); });
    // Workers make no Catch2 assertions (not thread-safe): they return what they saw.
    const auto admitted = on_two_threads([&](int) {
      std::pair<int, int> n{0, 0};  // failures passed through, unexpected results
      for (;;) {
        const auto ec = b.execute([] { return failure; });
        if (ec == xsn::errc::circuit_open) return n;
        ++(ec == failure ? n.first : n.second);
      }
    });
    CHECK(admitted[0].second == 0);
    CHECK(admitted[1].second == 0);
    // The threshold-th failure opened it; calls admitted before that may have failed later.
    CHECK(admitted[0].first + admitted[1].first >= static_cast<int>(threshold));
    CHECK(b.state() == breaker_state::open);
    CHECK(log.changes == std::vector<std::pair<breaker_state, breaker_state>>{{breaker_state::closed, breaker_state::open}});
    CHECK(b.health().consecutive_failures == threshold);
  }
}

TEST_CASE("breaker_concurrency: half-open admits exactly the permitted trials", "[breaker][concurrency]") {
  xsn::manual_clock clk;
  constexpr std::uint32_t trials = 3;
  xsn::simple_circuit_breaker b(clk, {.failure_threshold = 1, .open_duration = 1s, .half_open_trial_calls = trials});
  for (int round = 0; round < 100; ++round) {
    REQUIRE(b.try_acquire());
    b.record_failure();
    REQUIRE(b.state() == breaker_state::open);
    clk.advance(1s);
    const auto admitted = on_two_threads([&](int) {
      std::uint32_t n = 0;
      for (int i = 0; i < 50; ++i) n += b.try_acquire() ? 1 : 0;
      return n;
    });
    REQUIRE(admitted[0] + admitted[1] == trials);
    CHECK(b.state() == breaker_state::half_open);
    for (std::uint32_t i = 0; i < trials; ++i) b.record_success();
    REQUIRE(b.state() == breaker_state::closed);
  }
}

TEST_CASE("breaker_concurrency: random outcomes keep the transitions a consistent chain", "[breaker][concurrency]") {
  xsn::manual_clock clk;
  // A zero open duration lets the breaker cycle through every state without touching the clock.
  xsn::simple_circuit_breaker b(clk, {.failure_threshold = 3, .open_duration = 0s, .half_open_trial_calls = 2});
  transition_log log;
  auto sub = b.on_state_change([&](breaker_state f, breaker_state t, xsn::clock::time_point) { log(f, t); });
  on_two_threads([&](int index) {
    std::minstd_rand rng(static_cast<std::uint32_t>(index) + 1);
    for (int i = 0; i < 20'000; ++i) {
      switch (rng() % 4) {
        case 0: (void)b.execute([] { return failure; }); break;
        case 1: (void)b.execute([] { return std::error_code{}; }); break;
        case 2:
          if (b.try_acquire()) {
            if (rng() % 2) b.record_failure();
            else b.release();
          }
          break;
        default: (void)b.health(); break;
      }
    }
    return 0;
  });
  CHECK_FALSE(log.overlapped.load());
  REQUIRE_FALSE(log.changes.empty());
  CHECK(log.changes.front().first == breaker_state::closed);
  for (std::size_t i = 1; i < log.changes.size(); ++i) {
    INFO("transition " << i);
    REQUIRE(log.changes[i].first == log.changes[i - 1].second);
    REQUIRE(log.changes[i].first != log.changes[i].second);
  }
  CHECK(log.changes.back().second == b.state());
  CHECK(b.health().state == b.state());
}

TEST_CASE("breaker_concurrency: a reset subscription is not called again", "[breaker][concurrency]") {
  for (int round = 0; round < 20; ++round) {
    xsn::manual_clock clk;
    xsn::simple_circuit_breaker b(clk, {.failure_threshold = 1, .open_duration = 0s});
    auto calls = std::make_unique<std::atomic<int>>(0);
    auto sub = b.on_state_change([c = calls.get()](breaker_state, breaker_state, xsn::clock::time_point) { ++*c; });
    on_two_threads([&](int index) {
      if (index == 0) {
        for (int i = 0; i < 2'000; ++i) (void)b.execute([i] { return i % 2 == 0 ? failure : std::error_code{}; });
        return 0;
      }
      sub.reset();
      // From here on the listener is neither running nor called: its state may go away.
      calls.reset();  // ASan reports a listener call after this
      return 0;
    });
    CHECK_FALSE(static_cast<bool>(sub));
  }
}
