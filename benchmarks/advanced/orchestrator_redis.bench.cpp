/// \file `orchestrator/redis_1k_machines`: the load of orchestrator_load.hpp (1,000 toggle
/// machines, 2 producer threads, every event acknowledged once persisted) on the Redis store, on
/// a private redis-server (no persistence, as `baseline/hiredis/set_pipelined` in redis.bench.cpp).
#include <xsn/advanced/redis_state_store.hpp>

#include "../../tests/support/redis_server.hpp"
#include "../orchestrator_load.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <future>
#include <system_error>
#include <thread>

namespace {

void orchestrator_redis_1k(benchmark::State& state) {
  static xsn_test::redis_server server;
  boost::asio::io_context store_ctx;
  auto work = boost::asio::make_work_guard(store_ctx);
  std::thread store_thread([&] { store_ctx.run(); });
  xsn::manual_clock clk;
  {
    xsn::advanced::redis_store_options o;
    o.port = server.port();
    o.key_prefix = "bench-orch:";
    xsn::advanced::redis_state_store store(store_ctx.get_executor(), clk, o);
    std::promise<std::error_code> connected;
    store.async_connect([&connected](std::error_code ec) { connected.set_value(ec); });
    if (auto ec = connected.get_future().get()) {
      state.SkipWithError(("connect: " + ec.message()).c_str());
    } else {
      xsn_bench::orchestrator_load(state, store, clk, store_ctx.get_executor());
    }
  }
  work.reset();
  store_thread.join();
}

}  // namespace

BENCHMARK(orchestrator_redis_1k)->Name("orchestrator/redis_1k_machines")->Unit(benchmark::kMillisecond);
