#pragma once
/// \file A private `redis-server` for a test or benchmark: a free loopback port, a temporary
/// directory, killed and reaped by the destructor. Needs `redis-server` (Debian: redis-server),
/// found at `$XSN_REDIS_SERVER` or /usr/bin/redis-server; without it the constructor throws a
/// `std::runtime_error` that says so.
#include <hiredis/hiredis.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace xsn_test {

/// How to run the server.
struct redis_server_config {
  std::string requirepass;          ///< `requirepass` (the default user's password); empty: none.
  bool appendonly = false;          ///< `appendonly yes` with `appendfsync always`.
  std::vector<std::string> extra;   ///< More `--option value` arguments.
};

/// One reply of `redis_server::command`, flattened.
struct redis_reply {
  int type = 0;                    ///< REDIS_REPLY_*.
  std::string str;                 ///< String, status or error text.
  long long integer = 0;
  std::vector<redis_reply> elements;
  bool error() const { return type == REDIS_REPLY_ERROR; }
};

class redis_server {
 public:
  explicit redis_server(redis_server_config cfg = {}) : cfg_(std::move(cfg)) {
    const char* env = std::getenv("XSN_REDIS_SERVER");
    binary_ = env && *env ? env : "/usr/bin/redis-server";
    if (::access(binary_.c_str(), X_OK) != 0) {
      throw std::runtime_error("redis-server not found at " + binary_ +
                               ": install it (apt-get install redis-server) or set XSN_REDIS_SERVER");
    }
    static std::atomic<int> counter{0};
    dir_ = std::filesystem::temp_directory_path() /
           ("xsn-redis-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    for (int attempt = 0; attempt < 5; ++attempt) {
      port_ = free_port();
      if (start()) return;
    }
    throw std::runtime_error("redis-server did not start; see " + (dir_ / "redis.log").string());
  }
  ~redis_server() {
    kill();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  redis_server(const redis_server&) = delete;
  redis_server& operator=(const redis_server&) = delete;

  std::uint16_t port() const noexcept { return port_; }
  const std::filesystem::path& dir() const noexcept { return dir_; }
  bool running() const noexcept { return pid_ > 0; }

  /// Crashes the server (SIGKILL) and reaps it.
  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  /// (Re)starts on the same port and directory (so with `appendonly` it replays its file).
  /// Returns false when the server exited or did not answer within 10 s.
  bool start() {
    if (pid_ > 0) return true;
    std::vector<std::string> args{binary_,
                                  "--port", std::to_string(port_),
                                  "--bind", "127.0.0.1",
                                  "--dir", dir_.string(),
                                  "--logfile", (dir_ / "redis.log").string(),
                                  "--save", "",
                                  "--daemonize", "no",
                                  "--appendonly", cfg_.appendonly ? "yes" : "no",
                                  "--appendfsync", "always"};
    if (!cfg_.requirepass.empty()) {
      args.push_back("--requirepass");
      args.push_back(cfg_.requirepass);
    }
    for (const auto& e : cfg_.extra) args.push_back(e);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
      ::execv(binary_.c_str(), argv.data());
      ::_exit(127);
    }
    pid_ = pid;
    // Process startup: connect with retries until a deadline (not a test wait).
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {  // exited: port taken, bad option...
        pid_ = -1;
        return false;
      }
      if (ping()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    kill();
    return false;
  }

  /// Runs one command on a fresh blocking connection (authenticated with `requirepass`).
  redis_reply command(const std::vector<std::string>& args) const {
    auto c = connect();
    if (!c) throw std::runtime_error("cannot connect to the test redis-server");
    if (!cfg_.requirepass.empty()) run(c.get(), {"AUTH", cfg_.requirepass});
    return run(c.get(), args);
  }

 private:
  static std::uint16_t free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) throw std::runtime_error("socket failed");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof addr;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      ::close(fd);
      throw std::runtime_error("cannot find a free port");
    }
    ::close(fd);
    return ntohs(addr.sin_port);
  }

  std::shared_ptr<redisContext> connect() const {
    timeval tv{1, 0};
    redisContext* c = redisConnectWithTimeout("127.0.0.1", port_, tv);
    if (!c) return nullptr;
    if (c->err) {
      redisFree(c);
      return nullptr;
    }
    redisSetTimeout(c, timeval{5, 0});
    return std::shared_ptr<redisContext>(c, &redisFree);
  }

  static redis_reply flatten(const redisReply* r) {
    redis_reply out;
    if (!r) return out;
    out.type = r->type;
    if (r->str) out.str.assign(r->str, r->len);
    out.integer = r->integer;
    for (std::size_t i = 0; i < r->elements; ++i) out.elements.push_back(flatten(r->element[i]));
    return out;
  }

  static redis_reply run(redisContext* c, const std::vector<std::string>& args) {
    std::vector<const char*> argv;
    std::vector<std::size_t> lens;
    for (const auto& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    auto* r = static_cast<redisReply*>(
        redisCommandArgv(c, static_cast<int>(args.size()), argv.data(), lens.data()));
    if (!r) throw std::runtime_error(std::string("redis command failed: ") + c->errstr);
    auto out = flatten(r);
    freeReplyObject(r);
    return out;
  }

  bool ping() const {
    auto c = connect();
    if (!c) return false;
    auto* r = static_cast<redisReply*>(redisCommand(c.get(), "PING"));
    if (!r) return false;
    // NOAUTH also means the server is up and answering.
    const bool up = r->type == REDIS_REPLY_STATUS ||
                    (r->type == REDIS_REPLY_ERROR && std::string(r->str, r->len).starts_with("NOAUTH"));
    freeReplyObject(r);
    return up;
  }

  redis_server_config cfg_;
  std::string binary_;
  std::filesystem::path dir_;
  std::uint16_t port_ = 0;
  pid_t pid_ = -1;
};

/// One server per test process, started on first use (test listing starts none).
inline redis_server& shared_redis() {
  static redis_server server;
  return server;
}

/// A key prefix no other store of this process uses: tests sharing a server stay apart.
inline std::string unique_prefix(const std::string& tag = "t") {
  static std::atomic<int> n{0};
  return "xsn-test:" + tag + ":" + std::to_string(::getpid()) + ":" + std::to_string(n++) + ":";
}

}  // namespace xsn_test
