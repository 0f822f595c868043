#include "distributed/serve_config.hpp"

#include "catch.hpp"

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>

// `xsn serve`'s config file: the values it reads, and every error at its exact line and column.

namespace fs = std::filesystem;
using xsn::distributed::parse_host_port;
using xsn::distributed::parse_serve_config;

namespace {

/// A scratch folder of its own, removed at the end.
struct scratch {
  fs::path dir;
  scratch() {
    static std::atomic<int> n{0};
    dir = fs::temp_directory_path() / ("xsn_serve_config_" + std::to_string(::getpid()) + "_" + std::to_string(n++));
    fs::create_directories(dir);
  }
  ~scratch() {
    std::error_code ignored;
    fs::remove_all(dir, ignored);
  }
  std::string write(const std::string& name, const std::string& text) const {
    const auto p = dir / name;
    std::ofstream(p, std::ios::binary) << text;
    return p.string();
  }
};

/// The error of parsing `text`, without the file name: "LINE:COL: message".
std::string error_of(const std::string& text) {
  scratch s;
  const auto path = s.write("c.json", text);
  const auto r = parse_serve_config(path);
  REQUIRE_FALSE(r);
  REQUIRE(r.error.rfind(path + ":", 0) == 0);
  return r.error.substr(path.size() + 1);
}

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

}  // namespace

TEST_CASE("serve_config: a full file, single Redis server") {
  scratch s;
  const auto path = s.write("xsn.json", R"({
  "redis": {"host": "redis.local", "port": 6380, "username": "u", "password": "p", "prefix": "app:"},
  "partitions": 128,
  "lease_ms": 5000,
  "documents": "/srv/charts",
  "http": {"listen": "0.0.0.0:9000"}
})");
  const auto r = parse_serve_config(path);
  INFO(r.error);
  REQUIRE(r);
  const auto& c = *r.config;
  CHECK(c.redis_host == "redis.local");
  CHECK(c.redis_port == 6380);
  CHECK(c.username == "u");
  CHECK(c.password == "p");
  CHECK(c.prefix == "app:");
  CHECK(c.cluster.empty());
  CHECK(c.partitions == 128);
  CHECK(c.lease == std::chrono::milliseconds(5000));
  CHECK(c.documents == "/srv/charts");
  CHECK(c.http_host == "0.0.0.0");
  CHECK(c.http_port == 9000);
}

TEST_CASE("serve_config: defaults, and documents relative to the file's folder") {
  scratch s;
  fs::create_directories(s.dir / "conf");
  const auto path = s.write("conf/xsn.json", R"({"documents": "../charts"})");
  const auto r = parse_serve_config(path);
  INFO(r.error);
  REQUIRE(r);
  const auto& c = *r.config;
  CHECK(c.documents == fs::absolute(s.dir / "charts").lexically_normal().string());
  const xsn::distributed::serve_config defaults;
  CHECK(c.redis_host == defaults.redis_host);
  CHECK(c.redis_port == 6379);
  CHECK(c.prefix == "xsn:");
  CHECK(c.partitions == 64);
  CHECK(c.lease == std::chrono::milliseconds(2000));
  CHECK(c.http_host == "127.0.0.1");
  CHECK(c.http_port == 8080);
}

TEST_CASE("serve_config: the cluster form") {
  scratch s;
  const auto path = s.write("xsn.json", R"({"redis": {"cluster": ["10.0.0.1:7000", "[::1]:7001", "node-c:7002"],
  "password": "secret"}, "documents": "d"})");
  const auto r = parse_serve_config(path);
  INFO(r.error);
  REQUIRE(r);
  using hp = std::pair<std::string, std::uint16_t>;
  CHECK(r.config->cluster == std::vector<hp>{{"10.0.0.1", 7000}, {"::1", 7001}, {"node-c", 7002}});
  CHECK(r.config->password == "secret");
}

TEST_CASE("serve_config: syntax errors at the failing byte") {
  CHECK(error_of("{\n  \"documents\": \"d\",\n  \"partitions\": x\n}") == "3:17: invalid JSON: syntax error");
  CHECK(starts_with(error_of("{\"documents\": \"d\"\n"), "2:1: invalid JSON: "));  // incomplete
  CHECK(starts_with(error_of(""), "1:1: invalid JSON: "));
  CHECK(starts_with(error_of("{\"documents\": \"d\"} {}"), "1:20: invalid JSON: "));  // extra data
  CHECK(starts_with(error_of("{\"documents\": \"d\",}"), "1:19: invalid JSON: "));    // trailing comma
}

TEST_CASE("serve_config: semantic errors where the value or key is") {
  // Wrong types and ranges: at the value.
  CHECK(error_of("{\"documents\": \"d\",\n \"partitions\": 0}") ==
        "2:16: \"partitions\" must be an integer from 1 to 16384");
  CHECK(error_of("{\"documents\": \"d\", \"partitions\": 16385}") ==
        "1:34: \"partitions\" must be an integer from 1 to 16384");
  CHECK(error_of("{\"documents\": \"d\", \"partitions\": \"8\"}") ==
        "1:34: \"partitions\" must be an integer from 1 to 16384");
  CHECK(error_of("{\"documents\": \"d\", \"lease_ms\": 299}") == "1:32: \"lease_ms\" must be an integer from 300 to 600000");
  CHECK(error_of("{\"documents\": \"d\", \"lease_ms\": 600001}") ==
        "1:32: \"lease_ms\" must be an integer from 300 to 600000");
  CHECK(error_of("{\"documents\": \"d\", \"lease_ms\": 2000.5}") ==
        "1:32: \"lease_ms\" must be an integer from 300 to 600000");
  CHECK(error_of("{\"documents\": 5}") == "1:15: \"documents\" must be a string");
  CHECK(error_of("{\"documents\": \"\"}") == "1:15: \"documents\" must not be empty");
  CHECK(error_of("[1]") == "1:1: the configuration must be a JSON object");
  CHECK(error_of("{\"documents\": \"d\", \"redis\": []}") == "1:29: \"redis\" must be an object");
  // Nested: the value inside "redis", on its own line.
  CHECK(error_of("{\n  \"documents\": \"d\",\n  \"redis\": {\n    \"host\": \"h\",\n    \"port\": 70000\n  }\n}") ==
        "5:13: \"port\" must be an integer from 1 to 65535");
  CHECK(error_of("{\"documents\": \"d\", \"redis\": {\"port\": 0}}") == "1:38: \"port\" must be an integer from 1 to 65535");
  CHECK(error_of("{\"documents\": \"d\", \"redis\": {\"host\": \"\"}}") == "1:38: \"host\" must not be empty");
  CHECK(error_of("{\"documents\": \"d\", \"redis\": {\"prefix\": 1}}") == "1:40: \"prefix\" must be a string");
  CHECK(error_of("{\"documents\": \"d\",\n\"http\": {\"listen\": \"127.0.0.1\"}}") ==
        "2:20: \"listen\": expected HOST:PORT, got '127.0.0.1'");
  CHECK(error_of("{\"documents\": \"d\", \"http\": {\"listen\": \"h:0\"}}") ==
        "1:39: \"listen\": the port must be a number from 1 to 65535, got '0'");
  // Cluster entries: at the entry.
  CHECK(error_of("{\"documents\": \"d\", \"redis\": {\"cluster\": [\"a:1\",\n  \"b\"]}}") ==
        "2:3: \"cluster\": expected HOST:PORT, got 'b'");
  CHECK(error_of("{\"documents\": \"d\", \"redis\": {\"cluster\": []}}") ==
        "1:41: \"cluster\" must be a non-empty array of \"host:port\" strings");
  CHECK(error_of("{\"documents\": \"d\", \"redis\": {\"cluster\": [7]}}") == "1:42: \"cluster\" must be a string");
}

TEST_CASE("serve_config: unknown, duplicate, conflicting and missing keys") {
  CHECK(error_of("{\"documents\": \"d\",\n  \"partition\": 4}") ==
        "2:3: unknown key \"partition\" (expected redis, partitions, lease_ms, documents or http)");
  CHECK(error_of("{\"documents\": \"d\", \"redis\": {\n  \"host\": \"h\",\n  \"pasword\": \"x\"}}") ==
        "3:3: unknown key \"pasword\" in \"redis\" (expected host, port, cluster, username, password or prefix)");
  CHECK(error_of("{\"documents\": \"d\", \"http\": {\"port\": 1}}") ==
        "1:29: unknown key \"port\" in \"http\" (expected listen)");
  CHECK(error_of("{\"documents\": \"d\", \"documents\": \"e\"}") == "1:20: duplicate key \"documents\"");
  // Both forms of "redis": at the second one.
  CHECK(error_of("{\"documents\": \"d\", \"redis\": {\"host\": \"h\",\n \"cluster\": [\"a:1\"]}}") ==
        "2:2: \"cluster\" and \"host\" exclude each other (a single server, or a cluster)");
  CHECK(error_of("{\"documents\": \"d\", \"redis\": {\"cluster\": [\"a:1\"], \"port\": 1}}") ==
        "1:50: \"port\" and \"cluster\" exclude each other (a single server, or a cluster)");
  CHECK(error_of("\n  {\"partitions\": 4}") ==
        "2:3: missing \"documents\" (the folder of the statechart documents)");
  // Escaped keys are compared decoded.
  CHECK(error_of("{\"documents\": \"d\", \"\\u0068ttp\": 1}") == "1:33: \"http\" must be an object");
}

TEST_CASE("serve_config: an unreadable file") {
  const auto r = parse_serve_config("/nonexistent/xsn.json");
  REQUIRE_FALSE(r);
  CHECK(starts_with(r.error, "/nonexistent/xsn.json: cannot read: "));
}

TEST_CASE("serve_config: parse_host_port") {
  std::string why;
  using hp = std::pair<std::string, std::uint16_t>;
  CHECK(parse_host_port("127.0.0.1:8080", why) == hp{"127.0.0.1", 8080});
  CHECK(parse_host_port("localhost:1", why) == hp{"localhost", 1});
  CHECK(parse_host_port("[::1]:65535", why) == hp{"::1", 65535});
  CHECK(parse_host_port("[fe80::1%eth0]:80", why) == hp{"fe80::1%eth0", 80});
  for (const char* bad : {"", "host", ":80", "host:", "host:0", "host:65536", "host:+80", "host:8x", "host:-1",
                          "::1:80", "[::1]", "[::1]80", "[host]:80", "[]:80", "[::1:80", "a b:80"}) {
    INFO(bad);
    why.clear();
    CHECK_FALSE(parse_host_port(bad, why));
    CHECK_FALSE(why.empty());
  }
  CHECK_FALSE(parse_host_port("::1:8080", why));
  CHECK(why == "an IPv6 address needs brackets: [::1]:8080");
}
