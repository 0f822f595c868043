#pragma once
/// \file A private Redis Cluster for a test: `primaries` `redis_server`s (loopback, temporary
/// directories, `--cluster-enabled yes`) joined by `redis-cli --cluster create` without replicas,
/// and slot migration helpers (the steps of `redis-cli --cluster reshard`, one at a time, so a
/// test can act in the middle of one). Needs `redis-server` and `redis-cli` (Debian:
/// redis-server, redis-tools; `$XSN_REDIS_CLI` overrides the latter's path). The servers are
/// killed and reaped by the destructor.
#include "redis_server.hpp"

#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace xsn_test {

class redis_cluster {
 public:
  explicit redis_cluster(std::size_t primaries = 3) {
    redis_server_config cfg;
    cfg.extra = {"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000"};
    for (std::size_t i = 0; i < primaries; ++i) nodes_.push_back(std::make_unique<redis_server>(cfg));
    create();
    for (auto& n : nodes_) ids_.push_back(n->command({"CLUSTER", "MYID"}).str);
  }
  redis_cluster(const redis_cluster&) = delete;
  redis_cluster& operator=(const redis_cluster&) = delete;

  std::size_t size() const noexcept { return nodes_.size(); }
  redis_server& node(std::size_t i) { return *nodes_.at(i); }
  std::uint16_t port(std::size_t i) const { return nodes_.at(i)->port(); }
  const std::string& id(std::size_t i) const { return ids_.at(i); }
  /// Every node as a seed ("127.0.0.1", port).
  std::vector<std::pair<std::string, std::uint16_t>> seeds() const {
    std::vector<std::pair<std::string, std::uint16_t>> out;
    for (const auto& n : nodes_) out.emplace_back("127.0.0.1", n->port());
    return out;
  }

  /// The node that owns `slot`, as node 0 sees it (`CLUSTER SLOTS`).
  std::size_t owner_of(std::uint16_t slot) {
    const auto r = nodes_.front()->command({"CLUSTER", "SLOTS"});
    for (const auto& e : r.elements) {
      if (e.elements.size() < 3 || slot < e.elements[0].integer || slot > e.elements[1].integer) continue;
      for (std::size_t i = 0; i < nodes_.size(); ++i)
        if (e.elements[2].elements.size() >= 2 && e.elements[2].elements[1].integer == nodes_[i]->port()) return i;
    }
    throw std::runtime_error("slot " + std::to_string(slot) + " has no owner");
  }

  /// Migration step 1: `to` imports `slot`, its owner `from` migrates it (keys stay on `from`).
  void begin_migration(std::uint16_t slot, std::size_t from, std::size_t to) {
    check(node(to).command({"CLUSTER", "SETSLOT", std::to_string(slot), "IMPORTING", id(from)}));
    check(node(from).command({"CLUSTER", "SETSLOT", std::to_string(slot), "MIGRATING", id(to)}));
  }
  /// Migration step 2: moves the keys of `slot` from `from` to `to` (`MIGRATE ... KEYS`), or only `keys`.
  void migrate_keys(std::uint16_t slot, std::size_t from, std::size_t to, std::vector<std::string> keys = {}) {
    if (keys.empty()) {
      for (const auto& k : node(from).command({"CLUSTER", "GETKEYSINSLOT", std::to_string(slot), "100000"}).elements)
        keys.push_back(k.str);
    }
    if (keys.empty()) return;
    std::vector<std::string> args{"MIGRATE", "127.0.0.1", std::to_string(port(to)), "", "0", "5000", "KEYS"};
    args.insert(args.end(), keys.begin(), keys.end());
    check(node(from).command(args));
  }
  /// Migration step 3: `slot` belongs to `to`, told to the new owner, the old one, then the rest.
  void end_migration(std::uint16_t slot, std::size_t from, std::size_t to) {
    std::vector<std::size_t> order{to, from};
    for (std::size_t i = 0; i < size(); ++i)
      if (i != to && i != from) order.push_back(i);
    for (auto i : order) check(node(i).command({"CLUSTER", "SETSLOT", std::to_string(slot), "NODE", id(to)}));
  }
  /// The three steps.
  void move_slot(std::uint16_t slot, std::size_t to) {
    const auto from = owner_of(slot);
    if (from == to) return;
    begin_migration(slot, from, to);
    migrate_keys(slot, from, to);
    end_migration(slot, from, to);
  }

 private:
  static void check(const redis_reply& r) {
    if (r.error()) throw std::runtime_error("redis cluster fixture: " + r.str);
  }

  // `redis-cli --cluster create` assigns the slots evenly and waits until the nodes agree on them.
  void create() {
    const char* env = std::getenv("XSN_REDIS_CLI");
    std::string cli = env && *env ? env : "/usr/bin/redis-cli";
    if (::access(cli.c_str(), X_OK) != 0)
      throw std::runtime_error("redis-cli not found at " + cli + ": install it (apt-get install redis-tools) or set XSN_REDIS_CLI");
    std::vector<std::string> args{cli, "--cluster", "create"};
    for (const auto& n : nodes_) args.push_back("127.0.0.1:" + std::to_string(n->port()));
    for (const char* a : {"--cluster-replicas", "0", "--cluster-yes"}) args.emplace_back(a);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const std::string log = (nodes_.front()->dir() / "cluster-create.log").string();
    const pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
      throw std::runtime_error("redis-cli --cluster create failed; see " + log);
    // Readiness: every node says the cluster is ok (gossip after the slots agree). Asked again
    // at once, paced by the round trip itself (no fixed sleep), within a bound.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    for (auto& n : nodes_) {
      while (n->command({"CLUSTER", "INFO"}).str.find("cluster_state:ok") == std::string::npos) {
        if (std::chrono::steady_clock::now() > deadline) throw std::runtime_error("the test cluster is not ok after 20 s");
      }
    }
  }

  std::vector<std::unique_ptr<redis_server>> nodes_;
  std::vector<std::string> ids_;
};

}  // namespace xsn_test
