// Threads recording outcomes into one bucketed breaker. No sleeps, no polling: the threads start
// together on a latch and report through futures; every thread is a std::jthread owned by the test
// and joined. Time is a manual clock that the workers only read (nobody advances it while they
// run). CI also runs this file under ThreadSanitizer.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <latch>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>
#include <xsn/advanced/bucketed_circuit_breaker.hpp>
#include <xsn/core/clock.hpp>

#include "catch.hpp"

using namespace std::chrono_literals;
using xsn::breaker_state;
using xsn::advanced::bucketed_breaker_options;
using xsn::advanced::bucketed_circuit_breaker;
using xsn::advanced::window_kind;

namespace {

constexpr int threads = 4;

/// Runs `work(thread_index)` on `threads` threads started together; returns their results.
template <class Work>
auto on_threads(Work work) {
  using result = decltype(work(0));
  std::latch start(threads);
  std::vector<std::future<result>> futures;
  std::vector<std::jthread> pool;
  for (int i = 0; i < threads; ++i) {
    std::packaged_task<result()> task([&work, &start, i] {
      start.arrive_and_wait();
      return work(i);
    });
    futures.push_back(task.get_future());
    pool.emplace_back(std::move(task));
  }
  for (auto& t : pool) t.join();
  std::vector<result> results;
  for (auto& f : futures) results.push_back(f.get());  // rethrows a worker's exception
  return results;
}

bucketed_breaker_options never_opens(window_kind kind, std::uint32_t size) {
  bucketed_breaker_options o;
  o.window = kind;
  o.window_size = kind == window_kind::count_based ? size : 10;  // time-based: 10 buckets of 1 s
  o.bucket_duration = 1s;
  o.minimum_calls = kind == window_kind::count_based ? size : 1'000'000;
  o.failure_rate_threshold = 100;
  o.slow_call_duration = 100ms;
  o.jitter = 0;
  return o;
}

}  // namespace

TEST_CASE("bucketed_breaker_concurrency: outcomes from several threads are counted exactly",
          "[bucketed_circuit_breaker][concurrency]") {
  constexpr int per_thread = 20'000;
  const auto kind = GENERATE(window_kind::count_based, window_kind::time_based);
  xsn::manual_clock clk;
  // A window big enough for every call: nothing slides out, so the totals are exact.
  bucketed_circuit_breaker b(clk, never_opens(kind, threads * per_thread + 1));
  // Catch2 assertions are not thread-safe: the workers count, the main thread checks.
  const auto refused = on_threads([&](int t) {
    int r = 0;
    for (int i = 0; i < per_thread; ++i) {
      if (!b.try_acquire()) ++r;
      if (i % 4 == t % 4) {
        b.record_failure();
      } else if (i % 8 == 1) {
        b.record_success(200ms);  // slow
      } else {
        b.record_success();
      }
    }
    return r;
  });
  CHECK(refused == std::vector<int>(threads, 0));
  const auto w = b.window();
  CHECK(w.calls == threads * per_thread);
  CHECK(w.failures == threads * per_thread / 4);
  std::uint64_t slow = 0;
  for (int t = 0; t < threads; ++t) {
    for (int i = 0; i < per_thread; ++i) slow += (i % 4 != t % 4 && i % 8 == 1);
  }
  CHECK(w.slow_calls == slow);
  CHECK(b.state() == breaker_state::closed);
}

TEST_CASE("bucketed_breaker_concurrency: a sliding count window stays consistent",
          "[bucketed_circuit_breaker][concurrency]") {
  constexpr int per_thread = 20'000;
  xsn::manual_clock clk;
  bucketed_circuit_breaker b(clk, never_opens(window_kind::count_based, 64));
  const auto refused = on_threads([&](int t) {
    int r = 0;
    for (int i = 0; i < per_thread; ++i) {
      if (!b.try_acquire()) ++r;
      if (t == 0 && i % 2 == 0) {  // at most every other call fails: the 100 % rate is never reached
        b.record_failure();
      } else {
        b.record_success();
      }
    }
    return r;
  });
  CHECK(refused == std::vector<int>(threads, 0));
  // Which outcomes are the last 64 depends on the interleaving; the running counts must match the
  // slots whatever it was. The last 64 calls of one thread make the window exact.
  CHECK(b.window().calls == 64);
  CHECK(b.window().failures <= 32);
  for (int i = 0; i < 64; ++i) {
    REQUIRE(b.try_acquire());
    b.record_success();
  }
  CHECK(b.window().failures == 0);
  CHECK(b.state() == breaker_state::closed);
}

TEST_CASE("bucketed_breaker_concurrency: failures from several threads open it once",
          "[bucketed_circuit_breaker][concurrency]") {
  const auto kind = GENERATE(window_kind::count_based, window_kind::time_based);
  xsn::manual_clock clk;
  bucketed_breaker_options o;
  o.window = kind;
  o.window_size = 100;
  o.minimum_calls = 50;
  o.failure_rate_threshold = 50;
  o.half_open_permitted_calls = 3;
  o.open_duration = 10s;
  o.jitter = 0;
  bucketed_circuit_breaker b(clk, o);
  std::mutex m;
  std::vector<std::pair<breaker_state, breaker_state>> changes;
  auto sub = b.on_state_change([&](breaker_state from, breaker_state to, auto) {
    std::lock_guard lk(m);
    changes.emplace_back(from, to);
  });
  const auto rejected = on_threads([&](int) {
    int r = 0;
    for (int i = 0; i < 1'000; ++i) {
      if (!b.try_acquire()) {
        ++r;
        continue;
      }
      b.record_failure();
    }
    return r;
  });
  CHECK(b.state() == breaker_state::open);
  CHECK(changes == std::vector<std::pair<breaker_state, breaker_state>>{{breaker_state::closed, breaker_state::open}});
  int total_rejected = 0;
  for (int r : rejected) total_rejected += r;
  CHECK(total_rejected > 0);

  // Half-open: exactly the permitted trials across threads.
  clk.advance(10s);
  const auto admitted = on_threads([&](int) {
    int n = 0;
    for (int i = 0; i < 100; ++i) n += b.try_acquire() ? 1 : 0;
    return n;
  });
  int total = 0;
  for (int n : admitted) total += n;
  CHECK(total == 3);
  CHECK(b.state() == breaker_state::half_open);
}
