#pragma once
/// \file A private `redis-server` for a test or benchmark: a free loopback port, a temporary
/// directory, killed and reaped by the destructor. Needs `redis-server` (Debian: redis-server),
/// found at `$XSN_REDIS_SERVER` or /usr/bin/redis-server; without it the constructor throws a
/// `std::runtime_error` that says so.
#include <hiredis/hiredis.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
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
#include <string_view>
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

/// `r` copied into a `redis_reply` (empty for null).
inline redis_reply flatten(const redisReply* r) {
  redis_reply out;
  if (!r) return out;
  out.type = r->type;
  if (r->str) out.str.assign(r->str, r->len);
  out.integer = r->integer;
  for (std::size_t i = 0; i < r->elements; ++i) out.elements.push_back(flatten(r->element[i]));
  return out;
}

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
  /// Readiness is awaited, not polled: the server runs `--supervised systemd` and sends
  /// `READY=1` to a notify socket of ours; its exit is seen through a pidfd. Returns false when
  /// the server exited or was not ready within 10 s.
  bool start() {
    if (pid_ > 0) return true;
    const std::string notify_path = (dir_ / "notify.sock").string();
    const int notify = open_notify_socket(notify_path);
    std::vector<std::string> args{binary_,
                                  "--port", std::to_string(port_),
                                  "--bind", "127.0.0.1",
                                  "--dir", dir_.string(),
                                  "--logfile", (dir_ / "redis.log").string(),
                                  "--save", "",
                                  "--daemonize", "no",
                                  "--supervised", "systemd",
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
    // The environment is built before fork: the child only calls execve.
    std::vector<std::string> env_strings{"NOTIFY_SOCKET=" + notify_path};
    for (char** e = environ; *e; ++e) {
      if (std::string_view(*e).rfind("NOTIFY_SOCKET=", 0) != 0) env_strings.emplace_back(*e);
    }
    std::vector<char*> envp;
    for (auto& e : env_strings) envp.push_back(e.data());
    envp.push_back(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) {
      ::close(notify);
      throw std::runtime_error("fork failed");
    }
    if (pid == 0) {
      ::execve(binary_.c_str(), argv.data(), envp.data());
      ::_exit(127);
    }
    pid_ = pid;
    const bool ready = wait_ready(notify);
    ::close(notify);
    if (!ready && pid_ > 0) kill();
    return ready;
  }

  /// Runs one command on a fresh blocking connection (authenticated with `requirepass`).
  redis_reply command(const std::vector<std::string>& args) const {
    auto c = connect();
    if (!c) throw std::runtime_error("cannot connect to the test redis-server");
    if (!cfg_.requirepass.empty()) run(c.get(), {"AUTH", cfg_.requirepass});
    return run(c.get(), args);
  }

 private:
  /// A datagram socket bound at `path` for the server's sd_notify messages.
  static int open_notify_socket(const std::string& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path) throw std::runtime_error("notify socket path too long: " + path);
    path.copy(addr.sun_path, path.size());
    ::unlink(path.c_str());
    const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      if (fd >= 0) ::close(fd);
      throw std::runtime_error("cannot bind the notify socket " + path);
    }
    return fd;
  }

  /// Blocks until the server sends READY=1 (true), exits or 10 s pass (false; pid_ = -1 if it exited).
  bool wait_ready(int notify) {
    // Without pidfds (valgrind, kernels before 5.3) an exiting server is seen at the deadline.
    const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    bool ready = false;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      pollfd fds[2] = {{notify, POLLIN, 0}, {pidfd, POLLIN, 0}};
      const nfds_t n_fds = pidfd >= 0 ? 2 : 1;
      if (left.count() <= 0 || ::poll(fds, n_fds, static_cast<int>(left.count())) <= 0) break;  // timed out
      if (n_fds == 2 && (fds[1].revents & POLLIN)) {  // exited: port taken, bad option...
        int status = 0;
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
        break;
      }
      char buf[512];
      const auto n = ::recv(notify, buf, sizeof buf - 1, 0);
      if (n > 0 && std::string_view(buf, static_cast<std::size_t>(n)).find("READY=1") != std::string_view::npos) {
        ready = true;
        break;
      }
    }
    if (pidfd >= 0) ::close(pidfd);
    if (!ready && pid_ > 0 && ::waitpid(pid_, nullptr, WNOHANG) == pid_) pid_ = -1;
    return ready;
  }

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
