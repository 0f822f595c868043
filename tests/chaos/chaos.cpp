// xsn_chaos: a chaos campaign against `xsn serve` nodes sharing one Redis.
//
// It starts its own redis-server (appendonly) and N nodes, creates counters `c-*` and a token
// ring `ring-0` .. `ring-99` over HTTP, and lets client threads send events (each with its own
// Idempotency-Key, retried with the SAME key on another node after a connection error, 503 or 504)
// while a chaos thread SIGKILLs a random node every 2-5 s (seeded) and restarts it. Every kill's
// failover time is measured: from the kill until `GET /cluster` shows every partition owned by a
// live incarnation. At the end every machine is read back and compared with what the clients had
// acknowledged: a lost or duplicated effect fails the run (exit 1).
//
// Readiness is awaited by polling `GET /readyz`; nothing else waits on a fixed sleep (the 2-5 s
// between kills is the seeded pace of the fault injection, not a wait for something).
//
// Load only: `--kills 0` runs no chaos thread (and allows `--nodes 1`); `--duration-s S` sends for
// S seconds; `--mix counters` sends `inc` only (one event = one macrostep = one stored write). The
// summary then also says what the event phase cost: Redis' `INFO commandstats` and `INFO cpu`
// deltas per acknowledged event, and the CPU time of the nodes, the driver and the whole machine
// (scripts/throughput.sh compares 1 and 3 nodes with it).
#include "faults.hpp"  // --redis-cluster, --migrate-slots, --redis-restarts
#include "redis_server.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#ifndef XSN_CHAOS_DOCUMENTS
#define XSN_CHAOS_DOCUMENTS "tests/chaos/documents"
#endif

namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using clock_type = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr int ring_size = 100;  // fixed in documents/ring.scxml
constexpr milliseconds timer_delay{300};  // `arm` -> `fire`, documents/*.scxml

std::atomic<bool> interrupted{false};  // SIGINT/SIGTERM to the driver: stop and clean up

long long ms_between(clock_type::time_point a, clock_type::time_point b) {
  return std::chrono::duration_cast<milliseconds>(b - a).count();
}

// ---- options ----
struct options {
  std::string xsn;
  std::string documents = XSN_CHAOS_DOCUMENTS;
  std::string json_summary;
  std::uint64_t seed = 1;
  double minutes = 0;  // > 0: kill for this long (the clients keep sending until then)
  int kills = 1;       // without --minutes: this many kills; 0: load only, no chaos thread
  double duration_s = 0;  // > 0: the clients send for this long (and until the chaos is done)
  double idle_s = 0;      // > 0: after the events, measure the cost of idle nodes for this long
  std::string mix = "chaos";         // chaos: inc/arm/ring passes; counters: inc only
  std::string appendfsync = "always";  // Redis' appendfsync (appendonly is always on)
  int nodes = 3, machines = 1000, events = 20000, clients = 2, lease_ms = 2000, partitions = 64;
  bool keep = false;   // keep the temporary folder (logs) even after a passing run
  chaos_faults::fault_options faults;  // Redis faults (faults.hpp)
  bool load_only() const { return kills == 0 && minutes <= 0; }
};

[[noreturn]] void usage(const std::string& why) {
  std::cerr << "xsn_chaos: " << why << "\n"
            << "usage: xsn_chaos --xsn PATH [--seed N] (--minutes M | --kills K) [--nodes 3] [--machines 1000]\n"
               "                 [--events 20000 | --duration-s S] [--clients 2] [--lease-ms 2000] [--partitions 64]\n"
               "                 [--mix chaos|counters] [--appendfsync always|everysec|no] [--idle-s S]\n"
               "                 [--documents DIR] [--json-summary FILE] [--keep]\n"
            << chaos_faults::usage_text
            << "       --kills 0: load only (no node is killed; --nodes 1 allowed)\n";
  std::exit(2);
}

options parse_options(int argc, char** argv) {
  options o;
  auto number = [&](int& i, const char* name) -> long long {
    if (i + 1 >= argc) usage(std::string(name) + " needs a value");
    char* end = nullptr;
    const long long v = std::strtoll(argv[++i], &end, 10);
    if (*end || v < 0) usage(std::string(name) + ": not a number: " + argv[i]);
    return v;
  };
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--xsn" && i + 1 < argc) o.xsn = argv[++i];
    else if (a == "--documents" && i + 1 < argc) o.documents = argv[++i];
    else if (a == "--json-summary" && i + 1 < argc) o.json_summary = argv[++i];
    else if (a == "--minutes" && i + 1 < argc) o.minutes = std::atof(argv[++i]);
    else if (a == "--duration-s" && i + 1 < argc) o.duration_s = std::atof(argv[++i]);
    else if (a == "--idle-s" && i + 1 < argc) o.idle_s = std::atof(argv[++i]);
    else if (a == "--mix" && i + 1 < argc) o.mix = argv[++i];
    else if (a == "--appendfsync" && i + 1 < argc) o.appendfsync = argv[++i];
    else if (a == "--seed") o.seed = static_cast<std::uint64_t>(number(i, "--seed"));
    else if (a == "--kills") o.kills = static_cast<int>(number(i, "--kills"));
    else if (a == "--nodes") o.nodes = static_cast<int>(number(i, "--nodes"));
    else if (a == "--machines") o.machines = static_cast<int>(number(i, "--machines"));
    else if (a == "--events") o.events = static_cast<int>(number(i, "--events"));
    else if (a == "--clients") o.clients = static_cast<int>(number(i, "--clients"));
    else if (a == "--lease-ms") o.lease_ms = static_cast<int>(number(i, "--lease-ms"));
    else if (a == "--partitions") o.partitions = static_cast<int>(number(i, "--partitions"));
    else if (a == "--keep") o.keep = true;
    else if (chaos_faults::parse_option(o.faults, argc, argv, i, usage)) continue;
    else usage("unknown or incomplete argument '" + a + "'");
  }
  if (o.xsn.empty()) usage("--xsn PATH is required");
  if (o.kills == 0 && o.minutes > 0) usage("--minutes is a chaos duration; with --kills 0 use --duration-s");
  if (o.nodes < (o.load_only() ? 1 : 2)) usage("--nodes must be at least 2 (one is killed at a time), 1 with --kills 0");
  if (o.mix != "chaos" && o.mix != "counters") usage("--mix is chaos or counters");
  if (o.appendfsync != "always" && o.appendfsync != "everysec" && o.appendfsync != "no")
    usage("--appendfsync is always, everysec or no");
  if (o.machines <= ring_size) usage("--machines must be more than the ring (" + std::to_string(ring_size) + ")");
  if (o.clients < 1 || o.partitions < 1 || o.lease_ms < 100) usage("--clients, --partitions or --lease-ms too small");
  if (auto why = chaos_faults::check(o.faults, o.appendfsync, o.partitions); !why.empty()) usage(why);
  o.documents = fs::absolute(o.documents).string();
  return o;
}

// ---- violations: everything that fails the run, printed at the end ----
class violations {
 public:
  void add(std::string what) {
    std::lock_guard lock(mutex_);
    std::cerr << "VIOLATION: " << what << std::endl;
    list_.push_back(std::move(what));
  }
  std::size_t size() const {
    std::lock_guard lock(mutex_);
    return list_.size();
  }
  std::vector<std::string> list() const {
    std::lock_guard lock(mutex_);
    return list_;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<std::string> list_;
};

// ---- a synchronous HTTP/1.1 client with keep-alive and a timeout on every call ----
struct response {
  int status = 0;  // 0: connection error or timeout
  json::value body;
};

class http_client {
 public:
  explicit http_client(std::uint16_t port) : endpoint_(net::ip::make_address("127.0.0.1"), port), stream_(ioc_) {}

  /// One request; a kept-alive connection the server closed meanwhile is retried once on a fresh
  /// connection (safe here: events carry an Idempotency-Key, creations answer 409 when repeated).
  response call(http::verb verb, const std::string& target, const std::string& body = {},
                const std::string& key = {}, milliseconds timeout = milliseconds(10000)) {
    http::request<http::string_body> req{verb, target, 11};
    req.set(http::field::host, "127.0.0.1:" + std::to_string(endpoint_.port()));
    req.keep_alive(true);
    if (!key.empty()) req.set("Idempotency-Key", key);
    if (!body.empty()) {
      req.set(http::field::content_type, "application/json");
      req.body() = body;
    }
    req.prepare_payload();
    for (int attempt = 0;; ++attempt) {
      const bool reused = connected_;
      auto r = exchange(req, timeout);
      if (r || !reused || attempt > 0) return r ? std::move(*r) : response{};
    }
  }

 private:
  std::optional<response> exchange(http::request<http::string_body>& req, milliseconds timeout) {
    beast::error_code failed;
    http::response<http::string_body> res;
    buffer_.clear();
    auto read = [&] {
      http::async_read(stream_, buffer_, res, [&](beast::error_code ec, std::size_t) { failed = ec; });
    };
    auto write = [&] {
      http::async_write(stream_, req, [&](beast::error_code ec, std::size_t) {
        if (ec) failed = ec;
        else read();
      });
    };
    ioc_.restart();
    stream_.expires_after(timeout);
    if (connected_) {
      write();
    } else {
      stream_.async_connect(endpoint_, [&](beast::error_code ec) {
        if (ec) return void(failed = ec);
        connected_ = true;
        write();
      });
    }
    ioc_.run();
    if (failed) {
      close();
      return std::nullopt;
    }
    if (!res.keep_alive()) close();
    response out;
    out.status = static_cast<int>(res.result_int());
    boost::system::error_code jec;
    out.body = json::parse(res.body(), jec);
    if (jec) out.body = json::string(res.body());
    return out;
  }

  void close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
    connected_ = false;
  }

  tcp::endpoint endpoint_;
  net::io_context ioc_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  bool connected_ = false;
};

// ---- the nodes: child processes, restarted with the same id and port ----
std::uint16_t free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    if (fd >= 0) ::close(fd);
    throw std::runtime_error("cannot find a free port");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

class fleet {
 public:
  struct node {
    std::string id;
    std::uint16_t port = 0;
    fs::path log;
    pid_t pid = -1;
    int incarnation = 0;
    std::uintmax_t log_offset = 0;  // where this incarnation's log starts
    std::string owner;              // "<id>#<incarnation>" as the node names itself
  };

  fleet(std::string xsn, fs::path config, fs::path dir, int n) : xsn_(std::move(xsn)), config_(std::move(config)) {
    std::set<std::uint16_t> taken;
    for (int i = 0; i < n; ++i) {
      node nd;
      nd.id = "n" + std::to_string(i);
      do nd.port = free_port();
      while (!taken.insert(nd.port).second);
      nd.log = dir / (nd.id + ".log");
      nodes_.push_back(std::move(nd));
    }
  }
  /// Every child is killed and reaped, whatever path left the campaign.
  ~fleet() {
    for (std::size_t i = 0; i < nodes_.size(); ++i) kill(i);
  }
  fleet(const fleet&) = delete;
  fleet& operator=(const fleet&) = delete;

  std::size_t size() const { return nodes_.size(); }
  std::uint16_t port(std::size_t i) const { return nodes_[i].port; }  // fixed for the whole run
  const std::string& id(std::size_t i) const { return nodes_[i].id; }
  const fs::path& log(std::size_t i) const { return nodes_[i].log; }

  void spawn(std::size_t i) {
    std::lock_guard lock(mutex_);
    auto& nd = nodes_[i];
    if (nd.pid > 0) throw std::logic_error("spawn of a running node");
    std::error_code ec;
    nd.log_offset = fs::exists(nd.log) ? fs::file_size(nd.log, ec) : 0;
    nd.owner.clear();
    ++nd.incarnation;
    // Everything the child needs is prepared before fork: it only calls dup2, close_range, execv.
    std::vector<std::string> args{xsn_, "serve", config_.string(), "--node-id", nd.id,
                                  "--http", "127.0.0.1:" + std::to_string(nd.port)};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int fd = ::open(nd.log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) throw std::runtime_error("cannot open " + nd.log.string());
    const pid_t pid = ::fork();
    if (pid < 0) {
      ::close(fd);
      throw std::runtime_error("fork failed");
    }
    if (pid == 0) {
      ::dup2(fd, STDOUT_FILENO);
      ::dup2(fd, STDERR_FILENO);
      ::close_range(3, ~0U, 0);  // no sockets of the driver leak into the node
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(fd);
    nd.pid = pid;
  }

  /// SIGKILL and reap; no-op when the node is not running.
  void kill(std::size_t i) { signal_and_reap(i, SIGKILL); }

  pid_t pid(std::size_t i) const {
    std::lock_guard lock(mutex_);
    return nodes_[i].pid;
  }
  std::string owner(std::size_t i) const {
    std::lock_guard lock(mutex_);
    return nodes_[i].owner;
  }

  /// True when the node exited (it is then reaped and its status printed).
  bool exited(std::size_t i) {
    std::lock_guard lock(mutex_);
    auto& nd = nodes_[i];
    if (nd.pid <= 0) return true;
    int status = 0;
    if (::waitpid(nd.pid, &status, WNOHANG) != nd.pid) return false;
    std::cerr << "node " << nd.id << " exited unexpectedly: " << describe(status) << "\n";
    nd.pid = -1;
    return true;
  }

  /// After the node answered /readyz: its owner name from its log ("node starting owner=...").
  bool learn_owner(std::size_t i) {
    std::lock_guard lock(mutex_);
    auto& nd = nodes_[i];
    std::ifstream in(nd.log);
    in.seekg(static_cast<std::streamoff>(nd.log_offset));
    std::string line;
    while (std::getline(in, line)) {
      const auto at = line.find("node starting owner=");
      if (at == std::string::npos) continue;
      const auto from = at + std::string_view("node starting owner=").size();
      nd.owner = line.substr(from, line.find(' ', from) - from);
      return true;
    }
    return false;
  }

  /// SIGTERM to every node, then each must exit 0 before the deadline; stragglers are killed.
  /// Returns the problems found.
  std::vector<std::string> stop_all(milliseconds grace) {
    std::vector<std::string> problems;
    std::lock_guard lock(mutex_);
    for (auto& nd : nodes_)
      if (nd.pid > 0) ::kill(nd.pid, SIGTERM);
    const auto deadline = clock_type::now() + grace;
    for (;;) {
      bool running = false;
      for (auto& nd : nodes_) {
        if (nd.pid <= 0) continue;
        int status = 0;
        if (::waitpid(nd.pid, &status, WNOHANG) == nd.pid) {
          nd.pid = -1;
          if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            problems.push_back("node " + nd.id + " did not exit 0 on SIGTERM: " + describe(status));
        } else {
          running = true;
        }
      }
      if (!running) break;
      if (clock_type::now() >= deadline) {
        for (auto& nd : nodes_) {
          if (nd.pid <= 0) continue;
          problems.push_back("node " + nd.id + " still running " + std::to_string(grace.count()) +
                             " ms after SIGTERM: killed");
          ::kill(nd.pid, SIGKILL);
          ::waitpid(nd.pid, nullptr, 0);
          nd.pid = -1;
        }
        break;
      }
      std::this_thread::sleep_for(milliseconds(20));  // shutdown: reaping at a deadline, not a test wait
    }
    return problems;
  }

 private:
  static std::string describe(int status) {
    if (WIFEXITED(status)) return "exit " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return "signal " + std::to_string(WTERMSIG(status));
    return "status " + std::to_string(status);
  }
  void signal_and_reap(std::size_t i, int sig) {
    std::lock_guard lock(mutex_);
    auto& nd = nodes_[i];
    if (nd.pid <= 0) return;
    ::kill(nd.pid, sig);
    ::waitpid(nd.pid, nullptr, 0);
    nd.pid = -1;
  }

  std::string xsn_;
  fs::path config_;
  mutable std::mutex mutex_;
  std::vector<node> nodes_;
};

/// Polls `GET /readyz` with a short backoff until 200; false when the node exited or at the deadline.
bool await_ready(fleet& f, std::size_t i, clock_type::time_point deadline) {
  http_client c(f.port(i));
  auto step = milliseconds(5);
  while (clock_type::now() < deadline && !interrupted) {
    if (c.call(http::verb::get, "/readyz", {}, {}, milliseconds(2000)).status == 200) return f.learn_owner(i);
    if (f.exited(i)) return false;
    std::this_thread::sleep_for(step);
    step = std::min(step * 2, milliseconds(100));
  }
  return false;
}

std::string tail_of(const fs::path& log, std::size_t lines) {
  std::ifstream in(log);
  std::vector<std::string> all;
  for (std::string l; std::getline(in, l);) all.push_back(std::move(l));
  std::string out;
  for (std::size_t k = all.size() > lines ? all.size() - lines : 0; k < all.size(); ++k) out += "    " + all[k] + "\n";
  return out;
}

// ---- what the event phase cost: CPU time of the processes, Redis' own counters ----
/// utime + stime of a process, from /proc/<pid>/stat (fields 14 and 15); 0 when it is gone.
double cpu_seconds_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  const std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto paren = all.rfind(')');  // the command name may hold spaces and parentheses
  if (paren == std::string::npos) return 0;
  std::istringstream fields(all.substr(paren + 1));
  std::vector<std::string> v;
  for (std::string f; fields >> f;) v.push_back(f);
  if (v.size() < 13) return 0;  // v[0] is field 3 (state)
  return (std::stod(v[11]) + std::stod(v[12])) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

struct cost_sample {
  double redis_cpu = 0;    // INFO cpu: used_cpu_user + used_cpu_sys (every Redis thread)
  double nodes_cpu = 0;    // the running nodes
  double driver_cpu = 0;   // this process (the HTTP clients)
  double machine_busy = 0, machine_total = 0;  // /proc/stat, every core
  std::map<std::string, std::pair<long long, long long>> commands;  // INFO commandstats: calls, usec
};

/// Commands that `xsn serve` only calls from its Lua scripts (src/distributed/scripts.hpp): Redis
/// counts them in `INFO commandstats` too, and their time is inside the EVALSHA's.
bool called_in_scripts(const std::string& name) {
  static const std::set<std::string> in_scripts{"del",  "get",  "hdel", "hget",  "hmget", "hset",   "incr",
                                                "hincrby", "pexpire", "set", "time", "xack", "xadd", "xdel",
                                                "xlen", "zadd", "zrange", "zrangebylex", "zrangebyscore",
                                                "zrem", "zremrangebyscore"};
  return in_scripts.count(name) > 0;
}

cost_sample take_sample(const xsn_test::redis_server& redis, const fleet& f) {
  cost_sample s;
  const auto info = [&](const char* section) {
    std::map<std::string, std::string> out;
    std::istringstream in(redis.command({"INFO", section}).str);
    for (std::string line; std::getline(in, line);) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      const auto colon = line.find(':');
      if (colon != std::string::npos && line[0] != '#') out[line.substr(0, colon)] = line.substr(colon + 1);
    }
    return out;
  };
  const auto cpu = info("cpu");
  for (const char* k : {"used_cpu_user", "used_cpu_sys"})
    if (auto it = cpu.find(k); it != cpu.end()) s.redis_cpu += std::atof(it->second.c_str());
  for (const auto& [name, stats] : info("commandstats")) {  // cmdstat_xadd:calls=3,usec=12,...
    if (name.rfind("cmdstat_", 0) != 0) continue;
    auto field = [&](const std::string& key) -> long long {
      const auto at = stats.find(key + "=");
      return at == std::string::npos ? 0 : std::atoll(stats.c_str() + at + key.size() + 1);
    };
    s.commands[name.substr(8)] = {field("calls"), field("usec")};
  }
  for (std::size_t i = 0; i < f.size(); ++i)
    if (const auto pid = f.pid(i); pid > 0) s.nodes_cpu += cpu_seconds_of(pid);
  rusage self{};
  ::getrusage(RUSAGE_SELF, &self);
  s.driver_cpu = static_cast<double>(self.ru_utime.tv_sec + self.ru_stime.tv_sec) +
                 static_cast<double>(self.ru_utime.tv_usec + self.ru_stime.tv_usec) / 1e6;
  std::ifstream stat("/proc/stat");
  std::string cpu_label;
  stat >> cpu_label;
  std::vector<double> jiffies;
  for (int k = 0; k < 8; ++k) {  // user nice system idle iowait irq softirq steal (guest is in user)
    double j = 0;
    stat >> j;
    jiffies.push_back(j);
  }
  const double tick = static_cast<double>(::sysconf(_SC_CLK_TCK));
  for (double j : jiffies) s.machine_total += j / tick;
  s.machine_busy = s.machine_total - (jiffies[3] + jiffies[4]) / tick;
  return s;
}

// ---- what the clients had acknowledged ----
struct expected {
  explicit expected(std::size_t counters) : inc(counters), arm(counters) {}
  std::vector<std::atomic<long long>> inc, arm;  // per counter c-<k>
  std::atomic<long long> passes{0};              // over the whole ring
  std::atomic<long long> acked{0}, duplicate_replies{0}, first_try_duplicates{0}, retries{0};
  std::atomic<long long> last_arm_ms{0};         // steady clock, ms since start
};

std::string counter_id(std::size_t k) { return "c-" + std::to_string(k); }
std::string ring_id(std::size_t k) { return "ring-" + std::to_string(k); }

long long number_of(const json::value* v) {
  if (!v) return -1;
  if (v->is_int64()) return v->as_int64();
  if (v->is_uint64()) return static_cast<long long>(v->as_uint64());
  if (v->is_double()) return static_cast<long long>(v->as_double());
  return -1;
}

// ---- the campaign ----
class campaign {
 public:
  campaign(const options& o, fleet& f, violations& v, const xsn_test::redis_server& redis)
      : opts_(o), fleet_(f), bad_(v), redis_(redis), counters_(static_cast<std::size_t>(o.machines - ring_size)),
        exp_(counters_) {}

  bool start_nodes() {
    for (std::size_t i = 0; i < fleet_.size(); ++i) fleet_.spawn(i);
    for (std::size_t i = 0; i < fleet_.size(); ++i) {
      if (!await_ready(fleet_, i, clock_type::now() + std::chrono::seconds(30))) {
        bad_.add("node " + fleet_.id(i) + " never became ready; its log ends with:\n" + tail_of(fleet_.log(i), 20));
        return false;
      }
    }
    return true;
  }

  /// The machines, created by the client threads, each its slice, spread over the nodes.
  bool create_machines() {
    run_clients([this](std::size_t c, std::deque<http_client>& nodes) {
      std::size_t turn = c;
      for (std::size_t m = c; m < static_cast<std::size_t>(opts_.machines) && !stopping(); m += opts_.clients) {
        const bool ring = m < ring_size;
        const auto id = ring ? ring_id(m) : counter_id(m - ring_size);
        const auto body = json::serialize(json::object{{"document", ring ? "ring" : "counter"}});
        deliver(nodes, turn, http::verb::put, "/machines/" + id, body, {}, [&](const response& r, int) {
          // 409: an earlier try did it, or the owner that did died before it answered (the next
          // owner ran the entry again); verify() reads every machine anyway.
          if (r.status == 201 || r.status == 409) return true;
          bad_.add("PUT /machines/" + id + " answered " + std::to_string(r.status) + " " + json::serialize(r.body));
          return true;
        });
      }
    });
    return !stopping();
  }

  /// Clients and chaos together; the clients stop once the minimum of events is acknowledged and
  /// the chaos thread is done.
  void run_events() {
    cost_before_ = take_sample(redis_, fleet_);
    events_started_ = clock_type::now();
    if (faults_) faults_->start(events_started_, [this](std::string why) { bad_.add(std::move(why)); });
    send_until_ = events_started_ + std::chrono::duration_cast<clock_type::duration>(
                                        std::chrono::duration<double>(opts_.duration_s));
    std::thread chaos;
    if (opts_.load_only()) {
      chaos_done_ = true;
    } else {
      chaos = std::thread([this] {
        try {
          chaos_loop();
        } catch (const std::exception& e) {
          bad_.add(std::string("chaos thread: ") + e.what());
        }
        chaos_done_ = true;
        wake_.notify_all();
      });
    }
    run_clients([this](std::size_t c, std::deque<http_client>& nodes) { send_events(c, nodes); });
    abort_ = abort_ || bad_.size() > 0;  // a failed client stops the chaos early
    wake_.notify_all();
    if (chaos.joinable()) chaos.join();
    if (faults_) faults_->stop();  // done already, unless the run was aborted
    events_ended_ = clock_type::now();
    cost_after_ = take_sample(redis_, fleet_);
    // After the events, when the partitions have long settled: the nodes' fixed cost (lease
    // renewals, heartbeats, blocked reads), which a deployment pays whatever its load.
    if (opts_.idle_s > 0 && !stopping()) {
      idle_before_ = take_sample(redis_, fleet_);
      std::this_thread::sleep_for(std::chrono::duration<double>(opts_.idle_s));  // the measured window
      idle_after_ = take_sample(redis_, fleet_);
    }
  }

  /// Streams empty, nothing pending, every partition owned by a live incarnation; then the timers.
  bool await_quiescence() {
    http_client c(fleet_.port(0));
    const auto deadline = clock_type::now() + std::chrono::seconds(60) + 10 * milliseconds(opts_.lease_ms);
    std::string last;
    while (clock_type::now() < deadline && !interrupted) {
      auto r = c.call(http::verb::get, "/cluster");
      if (r.status == 200) {
        const auto s = cluster_state(r.body);
        if (s.owned && s.stream == 0 && s.pending == 0) {
          const auto due = start_ + milliseconds(exp_.last_arm_ms.load()) + timer_delay + milliseconds(opts_.lease_ms);
          std::this_thread::sleep_until(due);  // the last timer's due time, as specified: not a readiness wait
          return true;
        }
        last = "owned=" + std::to_string(s.owned) + " stream_length=" + std::to_string(s.stream) +
               " pending=" + std::to_string(s.pending);
      }
      std::this_thread::sleep_for(milliseconds(100));
    }
    bad_.add("the cluster did not settle (streams empty, nothing pending, all owned): " + last);
    return false;
  }

  /// Reads every machine back; retried until it matches or a bounded settle time passed (timers and
  /// messages between partitions may still be on their way right after quiescence).
  void verify() {
    http_client c(fleet_.port(0));
    const auto deadline = clock_type::now() + std::chrono::seconds(5) + 3 * milliseconds(opts_.lease_ms);
    for (;;) {
      std::vector<std::string> diffs;
      lost_ = duplicated_ = 0;
      auto compare = [&](const std::string& what, long long want, long long got) {
        if (want == got) return;
        diffs.push_back(what + ": expected " + std::to_string(want) + ", got " + std::to_string(got));
        (got < want ? lost_ : duplicated_) += std::llabs(want - got);
      };
      long long passes = 0;
      for (std::size_t m = 0; m < static_cast<std::size_t>(opts_.machines); ++m) {
        const bool ring = m < ring_size;
        const auto id = ring ? ring_id(m) : counter_id(m - ring_size);
        auto r = c.call(http::verb::get, "/machines/" + id);
        const auto* dm = r.status == 200 && r.body.is_object() ? r.body.as_object().if_contains("datamodel") : nullptr;
        if (!dm || !dm->is_object()) {
          diffs.push_back(id + ": GET answered " + std::to_string(r.status) + " " + json::serialize(r.body));
          continue;
        }
        const auto& d = dm->as_object();
        if (ring) {
          passes += number_of(d.if_contains("passes"));
          continue;
        }
        const auto k = m - ring_size;
        compare(id + " count", exp_.inc[k], number_of(d.if_contains("count")));
        compare(id + " armed", exp_.arm[k], number_of(d.if_contains("armed")));
        compare(id + " fired", exp_.arm[k], number_of(d.if_contains("fired")));
      }
      compare("ring passes (sum)", exp_.passes, passes);
      if (diffs.empty() || clock_type::now() >= deadline || interrupted) {
        for (auto& d : diffs) bad_.add(d);
        return;
      }
      std::this_thread::sleep_for(milliseconds(200));
    }
  }

  void print_summary(const std::vector<std::string>& problems, bool passed) const {
    auto fo = failover_;
    std::sort(fo.begin(), fo.end());
    auto pct = [&](double p) -> long long {
      if (fo.empty()) return 0;
      const auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(fo.size())));
      return fo[std::clamp<std::size_t>(rank, 1, fo.size()) - 1];
    };
    const double secs = std::max(1e-3, std::chrono::duration<double>(events_ended_ - events_started_).count());
    const double rate = static_cast<double>(exp_.acked) / secs;
    char line[512];
    std::snprintf(line, sizeof line,
                  "xsn_chaos seed=%llu nodes=%d machines=%d events=%lld in %.1f s: events/s=%.0f "
                  "failover_ms p50=%lld p99=%lld max=%lld kills=%zu lost=%lld duplicated=%lld "
                  "(retries=%lld duplicate_replies=%lld first_try_duplicates=%lld) %s",
                  static_cast<unsigned long long>(opts_.seed), opts_.nodes, opts_.machines, exp_.acked.load(), secs,
                  rate, pct(0.5), pct(0.99), fo.empty() ? 0 : fo.back(), fo.size(), lost_, duplicated_,
                  exp_.retries.load(), exp_.duplicate_replies.load(), exp_.first_try_duplicates.load(), passed ? "PASSED" : "FAILED");
    std::cout << line << std::endl;
    long long incs = 0, arms = 0;
    for (std::size_t k = 0; k < counters_; ++k) {
      incs += exp_.inc[k];
      arms += exp_.arm[k];
    }
    std::cout << "xsn_chaos: acknowledged inc=" << incs << " arm=" << arms << " ring passes=" << exp_.passes
              << std::endl;
    const auto cost = cost_json();
    if (opts_.idle_s > 0) {
      std::cout << "xsn_chaos: idle nodes, per second (not per event):" << std::endl;
      print_cost(cost_json(true));
    }
    print_cost(cost);
    if (opts_.json_summary.empty()) return;
    json::array all(fo.begin(), fo.end());
    json::array probs(problems.begin(), problems.end());
    json::object s{{"seed", opts_.seed},
                   {"nodes", opts_.nodes},
                   {"machines", opts_.machines},
                   {"events", exp_.acked.load()},
                   {"seconds", secs},
                   {"events_per_s", rate},
                   {"kills", fo.size()},
                   {"failover_ms", json::object{{"p50", pct(0.5)}, {"p99", pct(0.99)},
                                                {"max", fo.empty() ? 0 : fo.back()}, {"all", std::move(all)}}},
                   {"lost", lost_},
                   {"duplicated", duplicated_},
                   {"retries", exp_.retries.load()},
                   {"duplicate_replies", exp_.duplicate_replies.load()},
                   {"first_try_duplicates", exp_.first_try_duplicates.load()},
                   {"mix", opts_.mix},
                   {"appendfsync", opts_.appendfsync},
                   {"clients", opts_.clients},
                   {"cost", cost},
                   {"idle_cost_per_s", opts_.idle_s > 0 ? json::value(cost_json(true)) : json::value(nullptr)},
                   {"violations", std::move(probs)},
                   {"passed", passed}};
    std::ofstream(opts_.json_summary) << json::serialize(s) << "\n";
  }

  /// The event phase's cost per acknowledged event: Redis (CPU, commands), nodes, driver, machine.
  /// With `idle`, the idle window's cost per second instead (the `_per_event` names then mean per s).
  json::object cost_json(bool idle = false) const {
    const auto& a = idle ? idle_before_ : cost_before_;
    const auto& b = idle ? idle_after_ : cost_after_;
    const double events =
        idle ? opts_.idle_s : std::max<double>(1, static_cast<double>(exp_.acked.load()));
    const double us = 1e6 / events;
    long long calls = 0, usec = 0, nested = 0;
    json::object commands;
    for (const auto& [name, after] : b.commands) {
      if (name == "info") continue;  // the driver's own samples
      std::pair<long long, long long> before{0, 0};
      if (auto it = a.commands.find(name); it != a.commands.end()) before = it->second;
      const long long c = after.first - before.first, u = after.second - before.second;
      if (c <= 0) continue;
      const bool in_script = called_in_scripts(name);
      (in_script ? nested : calls) += c;
      if (!in_script) usec += u;
      commands[name] = json::object{{"calls", c}, {"usec", u}, {"calls_per_event", c / events},
                                    {"usec_per_event", static_cast<double>(u) / events}, {"in_script", in_script}};
    }
    json::object o{{"redis_cpu_us_per_event", (b.redis_cpu - a.redis_cpu) * us},
                   {"redis_command_us_per_event", static_cast<double>(usec) / events},
                   {"redis_commands_per_event", static_cast<double>(calls) / events},
                   {"redis_script_calls_per_event", static_cast<double>(nested) / events},
                   {"driver_cpu_us_per_event", (b.driver_cpu - a.driver_cpu) * us},
                   {"machine_busy_fraction",
                    (b.machine_busy - a.machine_busy) / std::max(1e-9, b.machine_total - a.machine_total)},
                   {"redis_cpu_s", b.redis_cpu - a.redis_cpu},
                   {"nodes_cpu_s", b.nodes_cpu - a.nodes_cpu},
                   {"driver_cpu_s", b.driver_cpu - a.driver_cpu},
                   {"machine_busy_s", b.machine_busy - a.machine_busy},
                   {"commands", std::move(commands)}};
    // A killed node's CPU time goes with it: the nodes' figure means something without kills only.
    if (opts_.load_only()) o["nodes_cpu_us_per_event"] = (b.nodes_cpu - a.nodes_cpu) * us;
    return o;
  }

  static void print_cost(const json::object& c) {
    auto num = [&](const char* k) { return c.contains(k) ? c.at(k).to_number<double>() : -1.0; };
    char line[512];
    std::snprintf(line, sizeof line,
                  "xsn_chaos: cost per event: redis_cpu_us=%.1f redis_command_us=%.1f redis_commands=%.2f "
                  "(+%.2f in scripts) nodes_cpu_us=%.1f driver_cpu_us=%.1f; cpu seconds redis=%.1f nodes=%.1f "
                  "driver=%.1f machine_busy=%.0f%%",
                  num("redis_cpu_us_per_event"), num("redis_command_us_per_event"), num("redis_commands_per_event"),
                  num("redis_script_calls_per_event"),
                  num("nodes_cpu_us_per_event"), num("driver_cpu_us_per_event"), num("redis_cpu_s"),
                  num("nodes_cpu_s"), num("driver_cpu_s"), 100 * num("machine_busy_fraction"));
    std::cout << line << std::endl;
    for (const auto& [name, v] : c.at("commands").as_object()) {
      const auto& o = v.as_object();
      std::snprintf(line, sizeof line, "xsn_chaos:   %-16s calls/event=%.3f us/event=%.2f%s", std::string(name).c_str(),
                    o.at("calls_per_event").to_number<double>(), o.at("usec_per_event").to_number<double>(),
                    o.at("in_script").as_bool() ? " (in scripts)" : "");
      std::cout << line << std::endl;
    }
  }

 private:
  bool stopping() const { return abort_ || interrupted; }

  /// `--clients` owned threads, each with a keep-alive connection per node; joined before returning.
  template <typename Body>
  void run_clients(Body body) {
    std::vector<std::thread> threads;
    for (std::size_t c = 0; c < static_cast<std::size_t>(opts_.clients); ++c) {
      threads.emplace_back([this, c, &body] {
        try {
          std::deque<http_client> nodes;  // not movable: one io_context each
          for (std::size_t i = 0; i < fleet_.size(); ++i) nodes.emplace_back(fleet_.port(i));
          body(c, nodes);
        } catch (const std::exception& e) {
          bad_.add("client " + std::to_string(c) + ": " + e.what());
          abort_ = true;
        }
      });
    }
    for (auto& t : threads) t.join();
  }

  /// Sends one logical request until a final answer: after a connection error, 503 or 504 the SAME
  /// request goes to the next node (a short backoff once every node was tried). `final(r, attempt)`
  /// judges every other answer. False when no final answer came in time (the run is aborted).
  template <typename Final>
  bool deliver(std::deque<http_client>& nodes, std::size_t& turn, http::verb verb, const std::string& target,
               const std::string& body, const std::string& key, Final final) {
    const auto patience = std::chrono::seconds(60) + 10 * milliseconds(opts_.lease_ms);
    const auto deadline = clock_type::now() + patience;
    auto backoff = milliseconds(10);
    for (int attempt = 0;; ++attempt) {
      auto& node = nodes[turn % nodes.size()];
      auto r = node.call(verb, target, body, key);
      if (r.status != 0 && r.status != 503 && r.status != 504) return final(r, attempt);
      ++exp_.retries;
      ++turn;
      if (stopping()) return false;
      if (clock_type::now() >= deadline) {
        bad_.add(std::string(http::to_string(verb)) + " " + target + " key=" + key + ": no final answer within " +
                 std::to_string(std::chrono::duration_cast<milliseconds>(patience).count()) +
                 " ms (last status " + std::to_string(r.status) + ")");
        abort_ = true;
        return false;
      }
      if (turn % nodes.size() == 0) {  // every node tried once: back off a little
        std::this_thread::sleep_for(backoff);
        backoff = std::min(backoff * 2, milliseconds(200));
      }
    }
  }

  void send_events(std::size_t c, std::deque<http_client>& nodes) {
    std::mt19937_64 rng(opts_.seed * 1000003u + c + 1);
    std::uniform_int_distribution<std::size_t> pick_counter(0, counters_ - 1), pick_ring(0, ring_size - 1);
    std::uniform_int_distribution<int> pick_kind(0, 99), pick_hops(0, 5);
    std::size_t turn = c;
    for (long long n = 0; !stopping(); ++n) {
      const bool enough = opts_.duration_s > 0 ? clock_type::now() >= send_until_ : exp_.acked >= opts_.events;
      if (enough && chaos_done_ && (!faults_ || faults_->done())) break;
      const int kind = opts_.mix == "counters" ? 99 : pick_kind(rng);  // 99: inc
      std::string id, type;
      int hops = 0;
      std::size_t k = 0;
      if (kind < 20) {
        k = pick_ring(rng);
        id = ring_id(k);
        type = "pass";
        hops = pick_hops(rng);
      } else {
        k = pick_counter(rng);
        id = counter_id(k);
        type = kind < 35 ? "arm" : "inc";
      }
      json::object ev{{"type", type}};
      if (type == "pass") ev["hops"] = hops;
      const auto key = "chaos-" + std::to_string(opts_.seed) + "-" + std::to_string(c) + "-" + std::to_string(n);
      const auto target = "/machines/" + id + "/events";
      deliver(nodes, turn, http::verb::post, target, json::serialize(ev), key, [&](const response& r, int attempt) {
        if (r.status != 200) {
          bad_.add("POST " + target + " key=" + key + " answered " + std::to_string(r.status) + " " +
                   json::serialize(r.body));
          return false;
        }
        const auto* dup = r.body.is_object() ? r.body.as_object().if_contains("duplicate") : nullptr;
        // `duplicate` on a first try is no fault: the owner that applied the entry died before it
        // answered, the next owner found the key applied (or a stale keep-alive was retried).
        if (dup && dup->is_bool() && dup->as_bool()) ++(attempt == 0 ? exp_.first_try_duplicates : exp_.duplicate_replies);
        if (type == "inc") ++exp_.inc[k];
        else if (type == "arm") {
          ++exp_.arm[k];
          const long long now = ms_between(start_, clock_type::now());
          for (auto was = exp_.last_arm_ms.load(); was < now && !exp_.last_arm_ms.compare_exchange_weak(was, now);) {
          }
        } else exp_.passes += hops + 1;
        ++exp_.acked;
        return true;
      });
      ++turn;  // spread over the nodes
    }
  }

  struct cluster_summary {
    bool owned = false;  // every partition owned by a live incarnation
    long long stream = 0, pending = 0;
    std::size_t partitions = 0;
  };
  cluster_summary cluster_state(const json::value& body) const {
    cluster_summary s;
    const auto* parts = body.is_object() ? body.as_object().if_contains("partitions") : nullptr;
    if (!parts || !parts->is_array()) return s;
    std::lock_guard lock(dead_mutex_);
    s.owned = true;
    for (const auto& pv : parts->as_array()) {
      const auto& p = pv.as_object();
      const auto& owner = p.at("owner");
      if (!owner.is_string() || dead_.count(std::string(owner.as_string()))) s.owned = false;
      s.stream += number_of(p.if_contains("stream_length"));
      s.pending += number_of(p.if_contains("pending"));
      ++s.partitions;
    }
    if (s.partitions != static_cast<std::size_t>(opts_.partitions)) s.owned = false;
    return s;
  }

  void chaos_loop() {
    std::mt19937_64 rng(opts_.seed);
    std::uniform_int_distribution<int> pace(2000, 5000);
    std::uniform_int_distribution<std::size_t> pick(0, fleet_.size() - 1);
    const auto until = events_started_ + std::chrono::duration_cast<clock_type::duration>(
                                    std::chrono::duration<double>(opts_.minutes * 60.0));
    const bool timed = opts_.minutes > 0;
    for (int kill = 0; timed || kill < opts_.kills; ++kill) {
      {
        std::unique_lock lock(wake_mutex_);
        wake_.wait_for(lock, milliseconds(pace(rng)), [this] { return stopping(); });  // the seeded pace
      }
      if (stopping() || (timed && clock_type::now() >= until)) return;
      const auto victim = pick(rng);
      {
        std::lock_guard lock(dead_mutex_);
        dead_.insert(fleet_.owner(victim));
      }
      const auto killed_at = clock_type::now();
      fleet_.kill(victim);
      std::cout << "chaos: killed " << fleet_.id(victim) << " (" << fleet_.owner(victim) << ") at "
                << ms_between(start_, killed_at) << " ms" << std::endl;
      fleet_.spawn(victim);
      measure_failover(victim, killed_at);
    }
  }

  /// Polls `/cluster` (of a live node) every ~50 ms until every partition is owned by a live
  /// incarnation (that is the measurement) and the restarted node's `/readyz` until 200.
  void measure_failover(std::size_t victim, clock_type::time_point killed_at) {
    http_client observer(fleet_.port((victim + 1) % fleet_.size()));
    http_client restarted(fleet_.port(victim));
    const auto deadline = killed_at + std::chrono::seconds(60) + 10 * milliseconds(opts_.lease_ms);
    std::optional<long long> failover;
    bool ready = false;
    while (!stopping()) {
      const auto now = clock_type::now();
      if (!failover) {
        auto r = observer.call(http::verb::get, "/cluster", {}, {}, milliseconds(2000));
        if (r.status == 200 && cluster_state(r.body).owned) failover = ms_between(killed_at, clock_type::now());
      }
      if (!ready && restarted.call(http::verb::get, "/readyz", {}, {}, milliseconds(2000)).status == 200) {
        ready = fleet_.learn_owner(victim);
        if (!ready) throw std::runtime_error("node " + fleet_.id(victim) + " ready but no owner in its log");
      }
      if (failover && ready) break;
      if (fleet_.exited(victim)) throw std::runtime_error("restarted node " + fleet_.id(victim) + " exited:\n" +
                                                          tail_of(fleet_.log(victim), 20));
      if (now >= deadline)
        throw std::runtime_error("after killing " + fleet_.id(victim) + ": " +
                                 (failover ? "the restarted node never became ready" : "no failover") + " within " +
                                 std::to_string(ms_between(killed_at, deadline)) + " ms");
      std::this_thread::sleep_until(now + milliseconds(50));  // the measurement's poll step
    }
    if (!failover) return;
    failover_.push_back(*failover);
    std::cout << "chaos: failover of " << fleet_.id(victim) << " took " << *failover << " ms; restarted as "
              << fleet_.owner(victim) << std::endl;
  }

  const options& opts_;
  fleet& fleet_;
  violations& bad_;
  const xsn_test::redis_server& redis_;
  cost_sample cost_before_, cost_after_, idle_before_, idle_after_;
  clock_type::time_point send_until_;
  const std::size_t counters_;
  expected exp_;
  const clock_type::time_point start_ = clock_type::now();
  clock_type::time_point events_started_ = start_, events_ended_ = start_;
  std::atomic<bool> abort_{false}, chaos_done_{false};
  std::mutex wake_mutex_;
  std::condition_variable wake_;
  mutable std::mutex dead_mutex_;
  std::set<std::string> dead_;  // owner names of killed incarnations
  std::vector<long long> failover_;  // written by the chaos thread, read after its join

 public:
  /// The Redis faults to inject during the event phase (faults.hpp).
  void attach(chaos_faults::injector& f) { faults_ = &f; }

 private:
  chaos_faults::injector* faults_ = nullptr;
  long long lost_ = 0, duplicated_ = 0;
};

void write_config(const fs::path& file, const options& o, const chaos_faults::redis_backend& redis) {
  json::object cfg{{"redis", redis.config("chaos:")},
                   {"partitions", o.partitions},
                   {"lease_ms", o.lease_ms},
                   {"documents", o.documents}};  // each node's HTTP address comes with --http
  std::ofstream(file) << json::serialize(cfg) << "\n";
}

int run(const options& o) {
  const auto dir = fs::temp_directory_path() / ("xsn-chaos-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  violations bad;
  bool passed = false;
  {
    chaos_faults::redis_backend redis(o.faults, o.appendfsync);  // one redis-server, or a cluster
    write_config(dir / "config.json", o, redis);
    fleet nodes(o.xsn, dir / "config.json", dir, o.nodes);
    campaign c(o, nodes, bad, redis.primary());
    chaos_faults::injector faults(o.faults, o.seed, redis, "chaos:", o.partitions);
    c.attach(faults);
    std::cout << "xsn_chaos: " << redis.describe() << std::endl;
    std::cout << "xsn_chaos: seed " << o.seed << ", " << o.nodes << " nodes, " << o.clients << " clients, mix "
              << o.mix << ", appendfsync " << o.appendfsync << (o.load_only() ? ", load only" : "") << ", logs in "
              << dir.string() << std::endl;
    if (c.start_nodes() && c.create_machines()) {
      std::cout << "xsn_chaos: " << o.machines << " machines created" << std::endl;
      c.run_events();
      if (bad.size() == 0 && !interrupted && c.await_quiescence()) c.verify();
    }
    for (auto& p : nodes.stop_all(milliseconds(10000) + 2 * milliseconds(o.lease_ms))) bad.add(p);
    if (interrupted) bad.add("interrupted");
    passed = bad.size() == 0;
    c.print_summary(bad.list(), passed);
    if (o.faults.any()) std::cout << "xsn_chaos: redis faults injected=" << faults.injected() << std::endl;
  }  // every node and the redis-server are reaped here, on every path
  if (passed && !o.keep) fs::remove_all(dir);
  else std::cout << "xsn_chaos: logs kept in " << dir.string() << std::endl;
  return passed ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  const auto o = parse_options(argc, argv);
  struct sigaction sa{};
  sa.sa_handler = [](int) { interrupted = true; };
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::cerr << "xsn_chaos: " << e.what() << std::endl;
    return 1;
  }
}
