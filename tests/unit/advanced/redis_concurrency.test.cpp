#include <xsn/advanced/redis_state_store.hpp>

#include "catch.hpp"
#include "redis_server.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstddef>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

// redis_state_store used from several threads at once, with its executor run by two more.
// Threads block on futures; the io_context threads complete them.

using xsn::advanced::redis_state_store;

namespace {

/// A store on an io_context run by two threads, joined on destruction.
struct threaded {
  explicit threaded(const std::string& tag) {
    xsn::advanced::redis_store_options o;
    o.port = xsn_test::shared_redis().port();
    o.key_prefix = xsn_test::unique_prefix(tag);
    o.connect_timeout = std::chrono::seconds(5);  // generous: TSan on a loaded machine
    o.command_timeout = std::chrono::seconds(5);
    store.emplace(ioc.get_executor(), clk, o);
    for (int i = 0; i < 2; ++i) runners.emplace_back([this] { ioc.run(); });
  }
  ~threaded() {
    store.reset();  // closes its connections on its strand
    work.reset();
    for (auto& t : runners) t.join();
  }

  boost::asio::io_context ioc;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work{ioc.get_executor()};
  xsn::manual_clock clk;  // never advanced: only read
  std::optional<redis_state_store> store;
  std::vector<std::thread> runners;
};

/// Initiates with a callback that fulfils a future of the completion's arguments (Boost 1.81's
/// `as_tuple(use_future)` does not compile).
template <typename... Args, typename Initiate>
std::future<std::tuple<Args...>> start(Initiate initiate) {
  auto p = std::make_shared<std::promise<std::tuple<Args...>>>();
  auto f = p->get_future();
  initiate([p](Args... a) { p->set_value(std::tuple<Args...>(std::move(a)...)); });
  return f;
}
using ec_t = std::error_code;
using version_t = xsn::store_version;
using value_t = std::optional<xsn::stored_value>;

}  // namespace

TEST_CASE("redis_concurrency: compare-and-set increments from four threads lose none",
          "[redis]") {
  threaded t("cas");
  auto& store = *t.store;
  REQUIRE_FALSE(std::get<0>(start<ec_t>([&](auto h) { store.async_connect(std::move(h)); }).get()));
  REQUIRE_FALSE(std::get<0>(start<ec_t, version_t>([&](auto h) { store.async_put("counter", "0", std::move(h)); }).get()));

  constexpr int threads = 4;
  constexpr int increments = 25;
  std::vector<std::future<int>> conflicts;
  for (int i = 0; i < threads; ++i) {
    conflicts.push_back(std::async(std::launch::async, [&store] {
      int lost = 0;
      for (int done = 0; done < increments;) {
        auto [ec, cur] = start<ec_t, value_t>([&](auto h) { store.async_get("counter", std::move(h)); }).get();
        if (ec || !cur) return -1;
        const auto next = std::to_string(std::stoi(cur->value) + 1);
        const auto seen = cur->version;  // Clang 14 cannot capture a structured binding
        auto [ec2, v] =
            start<ec_t, version_t>([&](auto h) {
              store.async_compare_and_set("counter", seen, next, std::move(h));
            }).get();
        if (ec2 == xsn::errc::version_conflict) {
          ++lost;
          continue;
        }
        if (ec2 || v <= cur->version) return -1;
        ++done;
      }
      return lost;
    }));
  }
  for (auto& c : conflicts) CHECK(c.get() >= 0);
  auto [ec, final_value] = start<ec_t, value_t>([&](auto h) { store.async_get("counter", std::move(h)); }).get();
  REQUIRE_FALSE(ec);
  REQUIRE(final_value);
  CHECK(final_value->value == std::to_string(threads * increments));
}

TEST_CASE("redis_concurrency: watch callbacks come one at a time, in version order", "[redis]") {
  threaded t("watch");
  auto& store = *t.store;
  REQUIRE_FALSE(std::get<0>(start<ec_t>([&](auto h) { store.async_connect(std::move(h)); }).get()));
  std::vector<xsn::store_version> seen;  // only touched by callbacks, then after the flush
  int running = 0;
  bool overlapped = false;
  auto w = store.watch("", [&](const xsn::watch_event& ev) {
    if (++running != 1) overlapped = true;
    seen.push_back(ev.version);
    --running;
  });

  constexpr int writers = 3;
  constexpr int writes = 40;
  std::vector<std::thread> threads;
  for (int i = 0; i < writers; ++i) {
    threads.emplace_back([&store, i] {
      std::vector<std::future<std::tuple<std::error_code, xsn::store_version>>> fs;
      for (int n = 0; n < writes; ++n) {
        const auto key = "w" + std::to_string(i) + "/" + std::to_string(n);
        fs.push_back(start<ec_t, version_t>([&](auto h) { store.async_put(key, "v", std::move(h)); }));
      }
      for (auto& f : fs) f.get();
    });
  }
  for (auto& th : threads) th.join();
  REQUIRE_FALSE(std::get<0>(start<ec_t>([&](auto h) { store.async_flush(std::move(h)); }).get()));
  w.reset();
  CHECK_FALSE(overlapped);
  REQUIRE(seen.size() == static_cast<std::size_t>(writers * writes));
  for (std::size_t i = 1; i < seen.size(); ++i) CHECK(seen[i - 1] < seen[i]);
}
