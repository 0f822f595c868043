#pragma once
// xsn_chaos' Redis faults (issue 12, fault tests 7b and 7c), beside the node kills of chaos.cpp:
//
//   --redis-cluster       the nodes share a 3-primary Redis Cluster (tests/support/redis_cluster.hpp)
//                         instead of one redis-server; they are given the `"cluster"` config form.
//   --migrate-slots K     with --redis-cluster: K times during the event phase (seeded pace), the
//                         slot of one partition's hash tag `{<prefix><n>}` moves from its primary to
//                         another, keys included, the steps of `redis-cli --cluster reshard` one at
//                         a time: SETSLOT IMPORTING/MIGRATING, MIGRATE ... KEYS in small batches
//                         with seeded gaps (the nodes meet ASK and TRYAGAIN meanwhile), SETSLOT
//                         NODE on every primary.
//   --redis-restarts K    single Redis only (appendonly, appendfsync always): K times during the
//                         event phase (seeded pace), redis-server is SIGKILLed and, after a seeded
//                         outage, started again on the same port and directory (it replays its
//                         append-only file); readiness is its sd_notify READY=1.
//
// The clients keep sending until every fault is done (as they do for the kills), and the final
// check is the campaign's: nothing acknowledged lost, nothing duplicated, every timer fired once.
// The cost figures of the summary then mean little: on a cluster they are the first primary's
// only, and a restarted redis-server starts its counters again from zero.
#include "redis_cluster.hpp"
#include "redis_server.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace chaos_faults {

/// The fault options of xsn_chaos.
struct fault_options {
  bool redis_cluster = false;
  int migrate_slots = 0;
  int redis_restarts = 0;
  bool any() const { return migrate_slots > 0 || redis_restarts > 0; }
};

inline constexpr const char* usage_text =
    "                 [--redis-cluster [--migrate-slots K]] [--redis-restarts K]\n"
    "       --redis-cluster: a 3-primary Redis Cluster; --migrate-slots K: K partitions' slots move\n"
    "       to another primary, keys included, while events flow\n"
    "       --redis-restarts K: redis-server is SIGKILLed and restarted K times while events flow\n";

/// Takes `argv[i]` (and its value) when it is a fault option; `bad` is called on a malformed one.
inline bool parse_option(fault_options& f, int argc, char** argv, int& i, const std::function<void(std::string)>& bad) {
  const std::string a = argv[i];
  auto count = [&]() -> int {
    if (i + 1 >= argc) bad(a + " needs a value");
    char* end = nullptr;
    const long v = std::strtol(argv[++i], &end, 10);
    if (*end || v < 0 || v > 1000) bad(a + ": not a count: " + argv[i]);
    return static_cast<int>(v);
  };
  if (a == "--redis-cluster") f.redis_cluster = true;
  else if (a == "--migrate-slots") f.migrate_slots = count();
  else if (a == "--redis-restarts") f.redis_restarts = count();
  else return false;
  return true;
}

/// Why these options cannot run together; empty when they can.
inline std::string check(const fault_options& f, const std::string& appendfsync, int partitions) {
  if (f.migrate_slots > 0 && !f.redis_cluster) return "--migrate-slots needs --redis-cluster";
  if (f.redis_restarts > 0 && f.redis_cluster) return "--redis-restarts is for the single Redis, not --redis-cluster";
  if (f.redis_restarts > 0 && appendfsync != "always")
    return "--redis-restarts needs --appendfsync always (an acknowledged write must survive the kill)";
  if (f.migrate_slots > partitions) return "--migrate-slots is at most --partitions (one slot per partition)";
  return {};
}

/// The Redis the nodes share: one redis-server (appendonly), or a 3-primary cluster.
class redis_backend {
 public:
  redis_backend(const fault_options& f, const std::string& appendfsync) {
    if (f.redis_cluster) {
      cluster_ = std::make_unique<xsn_test::redis_cluster>(3);
      return;
    }
    xsn_test::redis_server_config rc;
    rc.appendonly = true;
    rc.extra = {"--appendfsync", appendfsync};  // after the default `always`: the last one counts
    single_ = std::make_unique<xsn_test::redis_server>(rc);
  }

  bool is_cluster() const { return cluster_ != nullptr; }
  xsn_test::redis_cluster& cluster() { return *cluster_; }
  xsn_test::redis_server& single() { return *single_; }
  /// Where the cost samples (`INFO`) are taken: the server, or the cluster's first primary only.
  xsn_test::redis_server& primary() { return cluster_ ? cluster_->node(0) : *single_; }

  /// The `"redis"` section of the nodes' config.
  boost::json::object config(const std::string& prefix) const {
    boost::json::object r{{"prefix", prefix}};
    if (cluster_) {
      boost::json::array seeds;
      for (const auto& [host, port] : cluster_->seeds()) seeds.emplace_back(host + ":" + std::to_string(port));
      r["cluster"] = std::move(seeds);
    } else {
      r["host"] = "127.0.0.1";
      r["port"] = single_->port();
    }
    return r;
  }

  std::string describe() const {
    if (!cluster_) return "redis-server on port " + std::to_string(single_->port());
    std::string s = "redis cluster on ports";
    for (std::size_t i = 0; i < cluster_->size(); ++i) s += " " + std::to_string(cluster_->port(i));
    return s;
  }

 private:
  std::unique_ptr<xsn_test::redis_server> single_;
  std::unique_ptr<xsn_test::redis_cluster> cluster_;
};

/// Runs the Redis faults on their own thread at a seeded pace while the events flow.
class injector {
 public:
  using clock_type = std::chrono::steady_clock;

  injector(const fault_options& f, std::uint64_t seed, redis_backend& redis, std::string prefix, int partitions)
      : opts_(f), rng_(seed * 7919u + 17u), redis_(redis), prefix_(std::move(prefix)), partitions_(partitions) {}
  ~injector() { stop(); }
  injector(const injector&) = delete;
  injector& operator=(const injector&) = delete;

  /// Starts the fault thread (none when there is nothing to do); `failed` gets what went wrong.
  void start(clock_type::time_point origin, std::function<void(std::string)> failed) {
    origin_ = origin;
    failed_ = std::move(failed);
    if (!opts_.any()) {
      done_ = true;
      return;
    }
    thread_ = std::thread([this] {
      try {
        run();
      } catch (const std::exception& e) {
        failed_(std::string("redis faults: ") + e.what());
      }
      done_ = true;
    });
  }
  /// Every fault was injected (or there were none): the clients may stop.
  bool done() const { return done_; }
  /// Ends the wait before the next fault (a fault under way is finished first) and joins.
  void stop() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  /// One line per fault, for the summary.
  const std::vector<std::string>& log() const { return log_; }
  int injected() const { return injected_; }

 private:
  /// Waits `d` (the seeded pace); false when stopped meanwhile.
  bool pause(std::chrono::milliseconds d) {
    std::unique_lock lock(mutex_);
    return !wake_.wait_for(lock, d, [this] { return stop_; });
  }
  long long now_ms() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - origin_).count();
  }
  void note(const std::string& line) {
    std::cout << "faults: " << line << std::endl;
    log_.push_back(line);
  }
  int uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }

  void run() {
    for (int k = 0; k < opts_.redis_restarts; ++k) {
      if (!pause(std::chrono::milliseconds(uniform(1000, 3000)))) return;
      restart_redis();
      ++injected_;
    }
    if (opts_.migrate_slots == 0) return;
    // The partitions whose slots move: distinct slots, drawn once from the seed.
    std::vector<int> parts(static_cast<std::size_t>(partitions_));
    for (int p = 0; p < partitions_; ++p) parts[static_cast<std::size_t>(p)] = p;
    std::shuffle(parts.begin(), parts.end(), rng_);
    std::set<long long> slots;
    int moved = 0;
    for (int p : parts) {
      if (moved == opts_.migrate_slots) break;
      const auto tag = "{" + prefix_ + std::to_string(p) + "}";
      const auto r = redis_.cluster().node(0).command({"CLUSTER", "KEYSLOT", tag});
      if (r.error() || !slots.insert(r.integer).second) continue;
      if (!pause(std::chrono::milliseconds(uniform(1000, 3000)))) return;
      migrate(p, static_cast<std::uint16_t>(r.integer));
      ++moved;
      ++injected_;
    }
  }

  /// SIGKILL, a seeded outage, start on the same port and directory (appendonly replay).
  void restart_redis() {
    auto& server = redis_.single();
    const auto killed = now_ms();
    server.kill();
    const int outage = uniform(100, 1000);
    pause(std::chrono::milliseconds(outage));  // cut short by stop(), but the server is started again anyway
    const auto starting = clock_type::now();
    if (!server.start()) throw std::runtime_error("redis-server did not restart; see " + (server.dir() / "redis.log").string());
    const auto ready = std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - starting).count();
    note("redis-server killed at " + std::to_string(killed) + " ms, down " + std::to_string(outage) +
         " ms, restarted (append-only file replayed) in " + std::to_string(ready) + " ms");
  }

  /// Moves `slot` (partition `p`'s hash tag) to another primary, keys in batches of 3.
  void migrate(int p, std::uint16_t slot) {
    auto& c = redis_.cluster();
    const auto from = c.owner_of(slot);
    const auto to = (from + static_cast<std::size_t>(uniform(1, static_cast<int>(c.size()) - 1))) % c.size();
    const auto began = now_ms();
    const auto redirects_before = redirects();
    c.begin_migration(slot, from, to);
    pause(std::chrono::milliseconds(uniform(100, 500)));  // new keys go to `to` (ASK) meanwhile
    std::size_t keys = 0;
    int batches = 0;
    for (;;) {
      std::vector<std::string> batch;
      for (const auto& k : c.node(from).command({"CLUSTER", "GETKEYSINSLOT", std::to_string(slot), "3"}).elements)
        batch.push_back(k.str);
      if (batch.empty()) break;
      if (++batches > 10000) throw std::runtime_error("slot " + std::to_string(slot) + " never emptied on its source");
      c.migrate_keys(slot, from, to, batch);
      keys += batch.size();
      pause(std::chrono::milliseconds(uniform(20, 100)));  // keys split over two primaries meanwhile (TRYAGAIN)
    }
    c.end_migration(slot, from, to);
    if (c.owner_of(slot) != to) throw std::runtime_error("slot " + std::to_string(slot) + " did not move");
    const auto redirects_after = redirects();
    note("partition " + std::to_string(p) + " slot " + std::to_string(slot) + " moved from primary " +
         std::to_string(from) + " to " + std::to_string(to) + " (" + std::to_string(keys) + " keys in " +
         std::to_string(batches) + " batches) between " + std::to_string(began) + " and " +
         std::to_string(now_ms()) + " ms; the primaries answered ASK " +
         std::to_string(redirects_after.ask - redirects_before.ask) + ", TRYAGAIN " +
         std::to_string(redirects_after.tryagain - redirects_before.tryagain) + ", MOVED " +
         std::to_string(redirects_after.moved - redirects_before.moved) + " times meanwhile");
  }

  /// The redirections and retries the primaries answered so far (`INFO errorstats`, summed).
  struct redirect_counts {
    long long ask = 0, tryagain = 0, moved = 0;
  };
  redirect_counts redirects() {
    redirect_counts n;
    auto& c = redis_.cluster();
    for (std::size_t i = 0; i < c.size(); ++i) {
      const auto info = c.node(i).command({"INFO", "errorstats"}).str;  // errorstat_ASK:count=3
      auto count = [&](const std::string& name) -> long long {
        const auto at = info.find("errorstat_" + name + ":count=");
        return at == std::string::npos ? 0 : std::atoll(info.c_str() + at + name.size() + 17);
      };
      n.ask += count("ASK");
      n.tryagain += count("TRYAGAIN");
      n.moved += count("MOVED");
    }
    return n;
  }

  const fault_options opts_;
  std::mt19937_64 rng_;
  redis_backend& redis_;
  const std::string prefix_;
  const int partitions_;
  clock_type::time_point origin_;
  std::function<void(std::string)> failed_;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::atomic<bool> done_{false};
  std::vector<std::string> log_;  // written by the thread, read after stop()
  int injected_ = 0;
};

}  // namespace chaos_faults
