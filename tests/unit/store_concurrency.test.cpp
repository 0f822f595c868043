#include <xsn/store/memory_state_store.hpp>

#include "catch.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <future>
#include <set>
#include <string>
#include <system_error>
#include <thread>
#include <tuple>
#include <vector>

// `memory_state_store` used from several threads at once: worker threads initiate operations
// and wait for them through futures, while two other threads run the executor (completions and
// watch callbacks). Threads are owned `std::jthread`s, joined before any check; Catch2 macros
// are used on the main thread only. No sleeps, no polling: every wait is on a future.
// Run under TSan as well (see docs/components.md).

namespace {

using boost::asio::use_future;

constexpr int workers = 4;

/// A store on an io_context run by two threads; destroyed after they have been joined.
struct environment {
  boost::asio::io_context ioc;
  xsn::manual_clock clk;  // no TTL here: `now()` is only read, never advanced
  xsn::memory_state_store store{ioc.get_executor(), clk};
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work{ioc.get_executor()};
  std::vector<std::jthread> runners;

  environment() {
    for (int i = 0; i < 2; ++i) runners.emplace_back([this] { ioc.run(); });
  }
  ~environment() { stop(); }
  /// Lets `run` return once every queued handler has run, and joins the runners.
  void stop() {
    work.reset();
    runners.clear();
  }
};

/// Runs `fn(i)` on `workers` threads and returns their results once all have been joined.
template <typename Fn>
auto on_workers(Fn fn) {
  using result = decltype(fn(0));
  std::vector<std::future<result>> futures;
  {
    std::vector<std::jthread> threads;
    for (int i = 0; i < workers; ++i) {
      std::packaged_task<result()> task([fn, i] { return fn(i); });
      futures.push_back(task.get_future());
      threads.emplace_back(std::move(task));
    }
  }  // joined
  std::vector<result> out;
  for (auto& f : futures) out.push_back(f.get());
  return out;
}

}  // namespace

TEST_CASE("store_concurrency: compare-and-set increments lose no update", "[store_concurrency]") {
  constexpr int increments = 150;
  environment env;
  auto& store = env.store;
  {
    auto [ec, v] = store.async_put("counter", "0", use_future).get();
    REQUIRE_FALSE(ec);
  }

  struct tally {
    std::vector<xsn::store_version> versions;  // of this worker's successful writes
    int conflicts = 0;
    int errors = 0;
  };
  const auto tallies = on_workers([&](int) {
    tally t;
    for (int done = 0; done < increments;) {
      auto [gec, cur] = store.async_get("counter", use_future).get();
      if (gec || !cur) {
        ++t.errors;
        break;
      }
      const auto next = std::to_string(std::stoi(cur->value) + 1);
      auto [ec, v] =
          store.async_compare_and_set("counter", cur->version, next, use_future).get();
      if (ec == xsn::errc::version_conflict) {
        ++t.conflicts;
        continue;
      }
      if (ec) {
        ++t.errors;
        break;
      }
      t.versions.push_back(v);
      ++done;
    }
    return t;
  });

  auto [ec, final_value] = store.async_get("counter", use_future).get();
  env.stop();
  REQUIRE_FALSE(ec);
  REQUIRE(final_value);
  CHECK(final_value->value == std::to_string(workers * increments));

  std::set<xsn::store_version> all;
  int conflicts = 0;
  for (const auto& t : tallies) {
    CHECK(t.errors == 0);
    CHECK(std::is_sorted(t.versions.begin(), t.versions.end()));  // one thread: increasing
    all.insert(t.versions.begin(), t.versions.end());
    conflicts += t.conflicts;
  }
  CHECK(all.size() == static_cast<std::size_t>(workers * increments));  // no version twice
  CHECK(*all.rbegin() == final_value->version);
  INFO("conflicts retried: " << conflicts);
}

TEST_CASE("store_concurrency: mixed operations keep the accounting exact", "[store_concurrency]") {
  constexpr int rounds = 200;
  environment env;
  auto& store = env.store;

  // Each worker owns the keys `w<i>/<n>`: puts them, lists them, erases every other one.
  const auto failures = on_workers([&](int i) {
    int bad = 0;
    const std::string prefix = "w" + std::to_string(i) + "/";
    for (int n = 0; n < rounds; ++n) {
      auto [ec, v] = store.async_put(prefix + std::to_string(n), std::string(10, 'x'),
                                     use_future).get();
      if (ec || v == 0) ++bad;
      if (n % 2 == 1) {
        auto [eec, ev] = store.async_erase(prefix + std::to_string(n - 1),
                                           use_future).get();
        if (eec || ev == 0) ++bad;
      }
      if (n % 50 == 0) {
        auto [lec, page] = store.async_list(prefix, use_future).get();
        if (lec || page.size() != static_cast<std::size_t>(n / 2 + 1)) ++bad;
        (void)store.health();
      }
    }
    return bad;
  });
  const auto health = store.health();
  env.stop();
  for (int bad : failures) CHECK(bad == 0);
  // Per worker: rounds/2 keys left, each "w<i>/<n>" + 10 bytes.
  CHECK(health.entries == static_cast<std::size_t>(workers * rounds / 2));
  std::size_t bytes = 0;
  for (int i = 0; i < workers; ++i) {
    for (int n = 1; n < rounds; n += 2) {
      bytes += ("w" + std::to_string(i) + "/" + std::to_string(n)).size() + 10;
    }
  }
  CHECK(health.bytes == bytes);
}

TEST_CASE("store_concurrency: a watch sees every write once, in version order",
          "[store_concurrency]") {
  constexpr int puts = 200;
  constexpr int expected = workers * puts;
  environment env;
  auto& store = env.store;

  std::vector<xsn::store_version> seen;  // touched by one callback at a time (the strand)
  std::promise<void> all_seen;
  auto handle = store.watch("", [&](const xsn::watch_event& ev) {
    seen.push_back(ev.version);
    if (seen.size() == static_cast<std::size_t>(expected)) all_seen.set_value();
  });

  const auto written = on_workers([&](int i) {
    std::vector<xsn::store_version> mine;
    for (int n = 0; n < puts; ++n) {
      auto [ec, v] = store.async_put("k" + std::to_string(i) + "/" + std::to_string(n % 7), "v",
                                     use_future).get();
      if (!ec) mine.push_back(v);
    }
    return mine;
  });
  all_seen.get_future().get();
  handle.reset();
  env.stop();

  REQUIRE(seen.size() == static_cast<std::size_t>(expected));
  CHECK(std::is_sorted(seen.begin(), seen.end()));
  std::set<xsn::store_version> from_writes;
  for (const auto& w : written) from_writes.insert(w.begin(), w.end());
  CHECK(std::set<xsn::store_version>(seen.begin(), seen.end()) == from_writes);
}

TEST_CASE("store_concurrency: no callback runs after reset returns on another thread",
          "[store_concurrency]") {
  constexpr int cycles = 100;
  environment env;
  auto& store = env.store;

  std::atomic<int> late_calls{0};
  // Workers subscribe, write (so their callbacks are queued or running on the executor's
  // threads), unsubscribe, and then mark the watch ended: a callback seeing the mark ran late.
  const auto results = on_workers([&](int i) {
    int failures = 0;
    for (int c = 0; c < cycles; ++c) {
      auto ended = std::make_shared<std::atomic<bool>>(false);
      auto h = store.watch("", [ended, &late_calls](const xsn::watch_event&) {
        if (ended->load()) late_calls.fetch_add(1);
      });
      auto [ec, v] = store.async_put("c" + std::to_string(i), std::to_string(c),
                                     use_future).get();
      if (ec) ++failures;
      // Another write whose notification is surely still queued when `reset` runs.
      store.async_put("d" + std::to_string(i), "x", [](std::error_code, xsn::store_version) {});
      h.reset();
      ended->store(true);
    }
    return failures;
  });
  // Flush what is queued: a final put's completion comes after every earlier notification
  // was at least posted; the stop below runs them all.
  (void)store.async_put("flush", "x", use_future).get();
  env.stop();
  for (int f : results) CHECK(f == 0);
  CHECK(late_calls.load() == 0);
}
