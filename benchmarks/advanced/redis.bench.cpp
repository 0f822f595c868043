/// \file `redis_state_store` against raw hiredis on the same private redis-server (started by
/// the benchmark on a free loopback port, no persistence). Values are 1 KiB, keys cycle over
/// 1,024. Latency runs time one operation at a time, from the initiating call to the completion
/// handler, and report p50/p99/p99.9 in nanoseconds as counters; pipelined runs keep 64
/// operations in flight; `store/redis/put_batch` writes batches of 100 puts. Every run reports a wall-clock `items_per_second` counter (not Google
/// Benchmark's `UseRealTime`, which would append `/real_time` to the names the issue fixes);
/// the time column is the benchmark thread's CPU time.
#include <xsn/advanced/redis_state_store.hpp>

#include "../../tests/support/redis_server.hpp"

#include <benchmark/benchmark.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace {

constexpr std::size_t key_count = 1024;
constexpr std::size_t value_size = 1024;
constexpr std::size_t batch = 64;

using bench_clock = std::chrono::steady_clock;

xsn_test::redis_server& server() {
  static xsn_test::redis_server s;
  return s;
}

std::vector<std::string> make_keys() {
  std::vector<std::string> keys;
  for (std::size_t i = 0; i < key_count; ++i) keys.push_back("machine/" + std::to_string(i));
  return keys;
}

/// Latency samples, reported as p50/p99/p99.9 counters (nanoseconds).
class latencies {
 public:
  explicit latencies(benchmark::State& state) {
    samples_.reserve(std::min<std::size_t>(state.max_iterations, std::size_t{1} << 22));
  }
  void add(bench_clock::duration d) {
    samples_.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count());
  }
  void report(benchmark::State& state) {
    if (samples_.empty()) return;
    std::sort(samples_.begin(), samples_.end());
    auto at = [this](double q) {
      return static_cast<double>(
          samples_[static_cast<std::size_t>(q * static_cast<double>(samples_.size() - 1))]);
    };
    state.counters["p50_ns"] = at(0.50);
    state.counters["p99_ns"] = at(0.99);
    state.counters["p999_ns"] = at(0.999);
  }

 private:
  std::vector<std::int64_t> samples_;
};

/// Sets a wall-clock `items_per_second` from its construction (just before the timed loop) to
/// `report`.
class wall_rate {
 public:
  void report(benchmark::State& state, std::int64_t items) const {
    const std::chrono::duration<double> wall = bench_clock::now() - start_;
    if (wall.count() > 0) state.counters["items_per_second"] = static_cast<double>(items) / wall.count();
  }

 private:
  bench_clock::time_point start_ = bench_clock::now();
};

/// A connected store on a private io_context driven by the benchmark thread.
struct store_env {
  store_env() : store(ioc.get_executor(), clk, options()) {
    bool done = false;
    std::error_code ec;
    store.async_connect([&](std::error_code e) {
      ec = e;
      done = true;
    });
    while (!done) ioc.run_one();
    if (ec) throw std::system_error(ec, "redis_state_store: " + store.last_error());
  }
  static xsn::advanced::redis_store_options options() {
    xsn::advanced::redis_store_options o;
    o.port = server().port();
    o.key_prefix = xsn_test::unique_prefix("bench");
    return o;
  }
  /// Runs the io_context until `flag` is set.
  void run_until(const bool& flag) {
    while (!flag) ioc.run_one();
  }

  boost::asio::io_context ioc;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work{ioc.get_executor()};
  xsn::manual_clock clk;
  xsn::advanced::redis_state_store store;
};

void store_redis_put(benchmark::State& state) {
  store_env env;
  const auto keys = make_keys();
  const std::string value(value_size, 'v');
  latencies lat(state);
  std::size_t i = 0;
  const wall_rate rate;
  for (auto _ : state) {
    bool done = false;
    std::error_code ec;
    const auto start = bench_clock::now();
    env.store.async_put(keys[i++ % key_count], value, [&](std::error_code e, xsn::store_version) {
      ec = e;
      done = true;
    });
    env.run_until(done);
    lat.add(bench_clock::now() - start);
    if (ec) {
      state.SkipWithError(("put failed: " + ec.message()).c_str());
      break;
    }
  }
  lat.report(state);
  rate.report(state, static_cast<std::int64_t>(state.iterations()));
}

void store_redis_cas(benchmark::State& state) {
  store_env env;
  const auto keys = make_keys();
  const std::string value(value_size, 'v');
  std::vector<xsn::store_version> versions(key_count, 0);
  // Each key is created first (expected 0), then replaced at its current version.
  latencies lat(state);
  std::size_t i = 0;
  const wall_rate rate;
  for (auto _ : state) {
    const auto k = i++ % key_count;
    bool done = false;
    std::error_code ec;
    const auto start = bench_clock::now();
    env.store.async_compare_and_set(keys[k], versions[k], value,
                                    [&](std::error_code e, xsn::store_version v) {
                                      ec = e;
                                      versions[k] = v;
                                      done = true;
                                    });
    env.run_until(done);
    lat.add(bench_clock::now() - start);
    if (ec) {
      state.SkipWithError(("compare-and-set failed: " + ec.message()).c_str());
      break;
    }
  }
  lat.report(state);
  rate.report(state, static_cast<std::int64_t>(state.iterations()));
}

void store_redis_put_pipelined(benchmark::State& state) {
  store_env env;
  const auto keys = make_keys();
  const std::string value(value_size, 'v');
  std::size_t i = 0;
  const wall_rate rate;
  for (auto _ : state) {
    std::size_t left = batch;
    std::error_code ec;
    for (std::size_t n = 0; n < batch; ++n) {
      env.store.async_put(keys[i++ % key_count], value, [&](std::error_code e, xsn::store_version) {
        if (e) ec = e;
        --left;
      });
    }
    while (left > 0) env.ioc.run_one();
    if (ec) {
      state.SkipWithError(("put failed: " + ec.message()).c_str());
      break;
    }
  }
  rate.report(state, static_cast<std::int64_t>(state.iterations() * batch));
}

/// Batches of `put_batch_size` puts, one `async_write_batch` at a time (one script call per
/// batch); items are puts.
constexpr std::size_t put_batch_size = 100;

void store_redis_put_batch(benchmark::State& state) {
  store_env env;
  const auto keys = make_keys();
  const std::string value(value_size, 'v');
  std::size_t i = 0;
  const wall_rate rate;
  for (auto _ : state) {
    std::vector<xsn::batch_write> writes;
    writes.reserve(put_batch_size);
    for (std::size_t n = 0; n < put_batch_size; ++n) {
      writes.push_back(xsn::batch_write{keys[i++ % key_count], value, std::nullopt, {}});
    }
    bool done = false;
    std::error_code ec;
    env.store.async_write_batch(std::move(writes),
                                [&](std::error_code e, std::vector<xsn::batch_result> results) {
                                  ec = e;
                                  for (const auto& r : results) {
                                    if (r.ec) ec = r.ec;
                                  }
                                  if (!ec && results.size() != put_batch_size) {
                                    ec = std::make_error_code(std::errc::bad_message);
                                  }
                                  done = true;
                                });
    env.run_until(done);
    if (ec) {
      state.SkipWithError(("batch failed: " + ec.message()).c_str());
      break;
    }
  }
  rate.report(state, static_cast<std::int64_t>(state.iterations() * put_batch_size));
}

/// A blocking hiredis connection to the benchmark server.
std::unique_ptr<redisContext, void (*)(redisContext*)> raw_connection() {
  return {redisConnect("127.0.0.1", server().port()), &redisFree};
}

void baseline_hiredis_set(benchmark::State& state) {
  auto c = raw_connection();
  if (!c || c->err) {
    state.SkipWithError("cannot connect");
    return;
  }
  const auto keys = make_keys();
  const std::string value(value_size, 'v');
  const std::string prefix = xsn_test::unique_prefix("raw");
  latencies lat(state);
  std::size_t i = 0;
  const wall_rate rate;
  for (auto _ : state) {
    const std::string key = prefix + keys[i++ % key_count];
    const char* argv[] = {"SET", key.data(), value.data()};
    const std::size_t lens[] = {3, key.size(), value.size()};
    const auto start = bench_clock::now();
    auto* r = static_cast<redisReply*>(redisCommandArgv(c.get(), 3, argv, lens));
    lat.add(bench_clock::now() - start);
    if (!r || r->type == REDIS_REPLY_ERROR) {
      if (r) freeReplyObject(r);
      state.SkipWithError("SET failed");
      break;
    }
    freeReplyObject(r);
  }
  lat.report(state);
  rate.report(state, static_cast<std::int64_t>(state.iterations()));
}

/// What a user would write by hand for a versioned write: `EVALSHA` of a compare-and-set script
/// (version and value in one hash per key) on a blocking hiredis connection. The store's put
/// does more (store-wide versions, an index, counters, a change message), but this is the floor
/// that any Lua-scripted write pays on the same server.
void baseline_hiredis_eval_cas(benchmark::State& state) {
  auto c = raw_connection();
  if (!c || c->err) {
    state.SkipWithError("cannot connect");
    return;
  }
  static constexpr std::string_view script = R"lua(
local v = redis.call('HGET', KEYS[1], 'v') or '0'
if v ~= ARGV[1] then return {0, v} end
local n = redis.call('HINCRBY', KEYS[1], 'v', 1)
redis.call('HSET', KEYS[1], 'd', ARGV[2])
return {1, n}
)lua";
  auto* loaded = static_cast<redisReply*>(
      redisCommand(c.get(), "SCRIPT LOAD %b", script.data(), script.size()));
  if (!loaded || loaded->type != REDIS_REPLY_STRING) {
    if (loaded) freeReplyObject(loaded);
    state.SkipWithError("SCRIPT LOAD failed");
    return;
  }
  const std::string sha(loaded->str, loaded->len);
  freeReplyObject(loaded);
  const auto keys = make_keys();
  const std::string value(value_size, 'v');
  const std::string prefix = xsn_test::unique_prefix("rawcas");
  std::vector<long long> versions(key_count, 0);
  latencies lat(state);
  std::size_t i = 0;
  const wall_rate rate;
  for (auto _ : state) {
    const auto k = i++ % key_count;
    const std::string key = prefix + keys[k];
    const std::string expected = std::to_string(versions[k]);
    const char* argv[] = {"EVALSHA", sha.data(), "1", key.data(), expected.data(), value.data()};
    const std::size_t lens[] = {7, sha.size(), 1, key.size(), expected.size(), value.size()};
    const auto start = bench_clock::now();
    auto* r = static_cast<redisReply*>(redisCommandArgv(c.get(), 6, argv, lens));
    lat.add(bench_clock::now() - start);
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[0]->integer != 1) {
      if (r) freeReplyObject(r);
      state.SkipWithError("compare-and-set failed");
      break;
    }
    versions[k] = r->element[1]->integer;
    freeReplyObject(r);
  }
  lat.report(state);
  rate.report(state, static_cast<std::int64_t>(state.iterations()));
}

void baseline_hiredis_set_pipelined(benchmark::State& state) {
  auto c = raw_connection();
  if (!c || c->err) {
    state.SkipWithError("cannot connect");
    return;
  }
  const auto keys = make_keys();
  const std::string value(value_size, 'v');
  const std::string prefix = xsn_test::unique_prefix("raw");
  std::size_t i = 0;
  const wall_rate rate;
  for (auto _ : state) {
    for (std::size_t n = 0; n < batch; ++n) {
      const std::string key = prefix + keys[i++ % key_count];
      const char* argv[] = {"SET", key.data(), value.data()};
      const std::size_t lens[] = {3, key.size(), value.size()};
      redisAppendCommandArgv(c.get(), 3, argv, lens);
    }
    for (std::size_t n = 0; n < batch; ++n) {
      void* r = nullptr;
      if (redisGetReply(c.get(), &r) != REDIS_OK || !r) {
        state.SkipWithError("SET failed");
        return;
      }
      freeReplyObject(r);
    }
  }
  rate.report(state, static_cast<std::int64_t>(state.iterations() * batch));
}

}  // namespace

BENCHMARK(baseline_hiredis_set)->Name("baseline/hiredis/set");
BENCHMARK(baseline_hiredis_eval_cas)->Name("baseline/hiredis/eval_cas");
BENCHMARK(store_redis_put)->Name("store/redis/put");
BENCHMARK(store_redis_cas)->Name("store/redis/cas");
BENCHMARK(baseline_hiredis_set_pipelined)->Name("baseline/hiredis/set_pipelined");
BENCHMARK(store_redis_put_pipelined)->Name("store/redis/put_pipelined");
BENCHMARK(store_redis_put_batch)->Name("store/redis/put_batch");
