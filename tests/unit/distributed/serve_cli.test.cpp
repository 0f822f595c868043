// The `xsn` tool's distributed commands as a user runs them: `xsn serve` (a bad config, a node
// that serves over HTTP and exits 0 on SIGTERM), `xsn send --wait` and `xsn cluster status`.
// Readiness: the node's "listening" line on its stderr, then GET /readyz.
#include "catch.hpp"
#include "process.hpp"
#include "redis_server.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;
namespace http = boost::beast::http;
namespace json = boost::json;

namespace {

constexpr const char* counter_scxml = R"XML(<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" datamodel="ecmascript" initial="active">
  <datamodel><data id="count" expr="0"/></datamodel>
  <state id="active"><transition event="inc" type="internal"><assign location="count" expr="count + 1"/></transition></state>
</scxml>)XML";

using xsn_test::run_command;

/// One `xsn serve` child; its stderr is read until the "listening" line.
struct serve_process {
  pid_t pid = -1;
  int err = -1;
  std::string log;
  std::uint16_t port = 0;

  explicit serve_process(const std::vector<std::string>& args) {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    std::vector<char*> argv;
    std::vector<std::string> copy = args;
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::dup2(fds[1], 2);
      ::close(fds[0]);
      ::close(fds[1]);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(fds[1]);
    err = fds[0];
    // "xsn serve: node ID listening on http://HOST:PORT with N documents"
    while (log.find(" documents\n") == std::string::npos) {
      char buf[512];
      const auto n = ::read(err, buf, sizeof buf);
      if (n <= 0) break;
      log.append(buf, static_cast<std::size_t>(n));
    }
    const auto at = log.find("listening on http://");
    REQUIRE(at != std::string::npos);
    const auto colon = log.find(':', at + 20);
    port = static_cast<std::uint16_t>(std::stoi(log.substr(colon + 1)));
  }
  ~serve_process() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    if (err >= 0) ::close(err);
  }
  /// SIGTERM, then the exit status (the node hands over and exits).
  int terminate() {
    ::kill(pid, SIGTERM);
    int status = 0;
    ::waitpid(pid, &status, 0);
    pid = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
};

/// One HTTP call on a fresh connection.
std::pair<unsigned, json::value> call(std::uint16_t port, http::verb verb, const std::string& target,
                                      const std::string& body = {}) {
  boost::asio::io_context io;
  boost::asio::ip::tcp::socket s(io);
  s.connect({boost::asio::ip::make_address("127.0.0.1"), port});
  http::request<http::string_body> req(verb, target, 11);
  req.set(http::field::host, "127.0.0.1");
  req.body() = body;
  req.prepare_payload();
  http::write(s, req);
  boost::beast::flat_buffer buf;
  http::response<http::string_body> res;
  http::read(s, buf, res);
  boost::system::error_code ec;
  auto v = json::parse(res.body(), ec);
  return {res.result_int(), ec ? json::value(res.body()) : v};
}

/// A temporary folder with a `docs` folder for the node's documents.
struct temp_dir : xsn_test::temp_dir {
  temp_dir() : xsn_test::temp_dir("xsn-serve-cli") { fs::create_directories(path / "docs"); }
};

}  // namespace

TEST_CASE("serve_cli: a bad config is refused with file:line:col and exit 2") {
  temp_dir dir;
  const auto cfg = (dir.path / "serve.json").string();
  std::ofstream(cfg) << "{\n  \"partitions\": \"many\",\n  \"documents\": \"docs\"\n}\n";
  auto [code, out] = run_command({XSN_BINARY, "serve", cfg});
  CHECK(code == 2);
  CHECK(out.find(cfg + ":2:") != std::string::npos);
}

TEST_CASE("serve_cli: a node serves machines and xsn send and xsn cluster status reach them") {
  xsn_test::redis_server redis;
  temp_dir dir;
  std::ofstream(dir.path / "docs" / "counter.scxml") << counter_scxml;
  const auto cfg = (dir.path / "serve.json").string();
  std::ofstream(cfg) << "{\"redis\": {\"host\": \"127.0.0.1\", \"port\": " << redis.port()
                     << ", \"prefix\": \"cli:\"}, \"partitions\": 4, \"lease_ms\": 900, \"documents\": \"docs\"}";
  serve_process node({XSN_BINARY, "serve", cfg, "--node-id", "n1", "--http", "127.0.0.1:0", "--log-format", "json"});
  // Ready: connected and joined (the partitions follow within a tick).
  for (int i = 0; call(node.port, http::verb::get, "/readyz").first != 200; ++i) REQUIRE(i < 200);
  auto [created, body] = call(node.port, http::verb::put, "/machines/m1", R"({"document": "counter"})");
  REQUIRE(created == 201);
  CHECK(call(node.port, http::verb::put, "/machines/m2", R"({"document": "nope"})").first == 400);

  const auto redis_at = "127.0.0.1:" + std::to_string(redis.port());
  auto [sent, answer] = run_command({XSN_BINARY, "send", "--redis", redis_at, "--prefix", "cli:", "m1", "inc", "{}", "--wait"});
  CHECK(sent == 0);
  CHECK(answer.find("\"status\":\"active\"") != std::string::npos);
  auto [got, machine] = call(node.port, http::verb::get, "/machines/m1");
  REQUIRE(got == 200);
  CHECK(machine.at("datamodel").at("count") == 1);
  CHECK(run_command({XSN_BINARY, "send", "--redis", redis_at, "--prefix", "cli:", "nope", "inc", "--wait"}).first == 1);
  CHECK(run_command({XSN_BINARY, "send", "--redis", redis_at, "m1"}).first == 64);

  auto [st, status] = run_command({XSN_BINARY, "cluster", "status", "--config", cfg, "--json"});
  REQUIRE(st == 0);
  auto cl = json::parse(status);
  CHECK(cl.at("nodes").as_array().size() == 1);
  CHECK(cl.at("partitions").as_array().size() == 4);
  CHECK(run_command({XSN_BINARY, "cluster", "status", "--redis", redis_at, "--prefix", "other:"}).first == 1);

  // A node configured with another partition count never joins: it says why and exits 2.
  const auto other = (dir.path / "other.json").string();
  std::ofstream(other) << "{\"redis\": {\"host\": \"127.0.0.1\", \"port\": " << redis.port()
                       << ", \"prefix\": \"cli:\"}, \"partitions\": 8, \"lease_ms\": 900, \"documents\": \"docs\"}";
  auto [mismatch, why] = run_command({XSN_BINARY, "serve", other, "--http", "127.0.0.1:0"});
  CHECK(mismatch == 2);
  CHECK(why.find("partition count mismatch") != std::string::npos);

  CHECK(node.terminate() == 0);
}
