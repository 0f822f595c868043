#include "serve_config.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/stream_parser.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

namespace xsn::inline v0::distributed {

namespace {

// Boost.JSON keeps no positions, so the (already validated) text is scanned a second time into a
// tree that knows where each key and value starts; scalars are decoded by Boost.JSON itself.
struct jnode;
struct jmember;
struct jnode {
  std::size_t at = 0;       // offset of the value's first byte
  boost::json::value v;     // a scalar, or an empty object/array telling the kind
  std::vector<jmember> members;
  std::vector<jnode> items;
};
struct jmember {
  std::string key;
  std::size_t key_at = 0;  // offset of the key's opening quote
  jnode value;
};

class scanner {
 public:
  explicit scanner(std::string_view text) : s_(text) {}
  jnode value() {
    ws();
    jnode n;
    n.at = i_;
    const char c = s_[i_];
    if (c == '{') object(n);
    else if (c == '[') array(n);
    else if (c == '"') n.v = boost::json::parse(string_token());
    else n.v = boost::json::parse(bare_token());
    return n;
  }

 private:
  // The members of an object, from its '{' to past its '}'.
  void object(jnode& n) {
    n.v = boost::json::object();
    ++i_;
    ws();
    if (s_[i_] == '}') {
      ++i_;
      return;
    }
    for (;;) {
      ws();
      jmember m;
      m.key_at = i_;
      m.key = boost::json::parse(string_token()).as_string();
      ws();
      ++i_;  // ':'
      m.value = value();
      n.members.push_back(std::move(m));
      ws();
      if (s_[i_++] == '}') return;  // else ','
    }
  }
  // The items of an array, from its '[' to past its ']'.
  void array(jnode& n) {
    n.v = boost::json::array();
    ++i_;
    ws();
    if (s_[i_] == ']') {
      ++i_;
      return;
    }
    for (;;) {
      n.items.push_back(value());
      ws();
      if (s_[i_++] == ']') return;  // else ','
    }
  }
  // A number, true, false or null: up to the next space, ',', ']' or '}'.
  std::string_view bare_token() {
    const auto start = i_;
    while (i_ < s_.size() && !space(s_[i_]) && s_[i_] != ',' && s_[i_] != ']' && s_[i_] != '}') ++i_;
    return s_.substr(start, i_ - start);
  }
  static bool space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
  void ws() {
    while (i_ < s_.size() && space(s_[i_])) ++i_;
  }
  std::string_view string_token() {
    const auto start = i_++;
    while (s_[i_] != '"') i_ += s_[i_] == '\\' ? 2 : 1;
    ++i_;
    return s_.substr(start, i_ - start);
  }
  std::string_view s_;
  std::size_t i_ = 0;
};

struct config_error {
  std::size_t at;
  std::string message;
};

std::string where(const std::string& path, std::string_view text, std::size_t at) {
  std::size_t line = 1, col = 1;
  for (std::size_t i = 0; i < at && i < text.size(); ++i) {
    if (text[i] == '\n') ++line, col = 1;
    else ++col;
  }
  return path + ':' + std::to_string(line) + ':' + std::to_string(col);
}

std::string in_quotes(std::string_view key) { return '"' + std::string(key) + '"'; }

std::string string_of(const jnode& n, std::string_view name, bool non_empty) {
  if (!n.v.is_string()) throw config_error{n.at, in_quotes(name) + " must be a string"};
  std::string s(n.v.get_string());
  if (non_empty && s.empty()) throw config_error{n.at, in_quotes(name) + " must not be empty"};
  return s;
}

std::int64_t integer_of(const jnode& n, std::string_view name, std::int64_t lo, std::int64_t hi) {
  const auto range = in_quotes(name) + " must be an integer from " + std::to_string(lo) + " to " + std::to_string(hi);
  if (n.v.is_int64()) {
    const auto v = n.v.get_int64();
    if (v >= lo && v <= hi) return v;
  }
  throw config_error{n.at, range};
}

std::pair<std::string, std::uint16_t> address_of(const jnode& n, std::string_view name) {
  std::string why;
  auto hp = parse_host_port(string_of(n, name, true), why);
  if (!hp) throw config_error{n.at, in_quotes(name) + ": " + why};
  return *hp;
}

void expect_object(const jnode& n, std::string_view name) {
  if (!n.v.is_object()) throw config_error{n.at, in_quotes(name) + " must be an object"};
}

[[noreturn]] void unknown_key(const jmember& m, std::string_view in, std::string_view expected) {
  throw config_error{m.key_at, "unknown key " + in_quotes(m.key) + std::string(in) + " (expected " + std::string(expected) + ")"};
}

// Duplicate keys: Boost.JSON would keep the last silently; a config file means one of them.
void no_duplicates(const jnode& obj) {
  for (std::size_t i = 0; i < obj.members.size(); ++i)
    for (std::size_t j = 0; j < i; ++j)
      if (obj.members[i].key == obj.members[j].key)
        throw config_error{obj.members[i].key_at, "duplicate key " + in_quotes(obj.members[i].key)};
}

// Rejects m when a key of the other way to name the server came before it.
void exclusive(const jmember& m, const jmember* other) {
  if (other)
    throw config_error{m.key_at, in_quotes(m.key) + " and " + in_quotes(other->key) +
                                     " exclude each other (a single server, or a cluster)"};
}

// "host" or "port" of a single server.
void read_single(const jmember& m, serve_config& c) {
  if (m.key == "host") c.redis_host = string_of(m.value, "host", true);
  else c.redis_port = static_cast<std::uint16_t>(integer_of(m.value, "port", 1, 65535));
}

void read_cluster(const jmember& m, serve_config& c) {
  if (!m.value.v.is_array() || m.value.items.empty())
    throw config_error{m.value.at, "\"cluster\" must be a non-empty array of \"host:port\" strings"};
  for (const auto& item : m.value.items) c.cluster.push_back(address_of(item, "cluster"));
}

// "username", "password" or "prefix" (strings, may be empty); false for another key.
bool read_redis_string(const jmember& m, serve_config& c) {
  static constexpr std::pair<std::string_view, std::string serve_config::*> fields[] = {
      {"username", &serve_config::username}, {"password", &serve_config::password}, {"prefix", &serve_config::prefix}};
  for (const auto& [key, field] : fields) {
    if (m.key != key) continue;
    c.*field = string_of(m.value, key, false);
    return true;
  }
  return false;
}

void read_redis(const jnode& obj, serve_config& c) {
  expect_object(obj, "redis");
  no_duplicates(obj);
  const jmember* single = nullptr;  // the first of host/port
  const jmember* cluster = nullptr;
  for (const auto& m : obj.members) {
    if (m.key == "host" || m.key == "port") {
      exclusive(m, cluster);
      if (!single) single = &m;
      read_single(m, c);
    } else if (m.key == "cluster") {
      exclusive(m, single);
      cluster = &m;
      read_cluster(m, c);
    } else if (!read_redis_string(m, c)) {
      unknown_key(m, " in \"redis\"", "host, port, cluster, username, password or prefix");
    }
  }
}

void read_http(const jnode& obj, serve_config& c) {
  expect_object(obj, "http");
  no_duplicates(obj);
  for (const auto& m : obj.members) {
    if (m.key != "listen") unknown_key(m, " in \"http\"", "listen");
    std::tie(c.http_host, c.http_port) = address_of(m.value, "listen");
  }
}

// "documents", absolute; a relative folder is relative to the configuration file's.
std::string documents_dir(const jnode& n, const std::string& path) {
  namespace fs = std::filesystem;
  const fs::path dir = string_of(n, "documents", true);
  const fs::path base = fs::path(path).parent_path();
  return fs::absolute(dir.is_absolute() ? dir : base / dir).lexically_normal().string();
}

serve_config read_config(const jnode& root, const std::string& path) {
  if (!root.v.is_object()) throw config_error{root.at, "the configuration must be a JSON object"};
  no_duplicates(root);
  serve_config c;
  bool documents = false;
  for (const auto& m : root.members) {
    if (m.key == "redis") {
      read_redis(m.value, c);
    } else if (m.key == "partitions") {
      c.partitions = static_cast<unsigned>(integer_of(m.value, "partitions", 1, 16384));
    } else if (m.key == "lease_ms") {
      c.lease = std::chrono::milliseconds(integer_of(m.value, "lease_ms", 300, 600000));
    } else if (m.key == "documents") {
      c.documents = documents_dir(m.value, path);
      documents = true;
    } else if (m.key == "http") {
      read_http(m.value, c);
    } else {
      unknown_key(m, "", "redis, partitions, lease_ms, documents or http");
    }
  }
  if (!documents) throw config_error{root.at, "missing \"documents\" (the folder of the statechart documents)"};
  return c;
}

// "[IPv6]:PORT" into host and port; false (with the error) when malformed.
bool split_bracketed(std::string_view text, std::string_view& host, std::string_view& port, std::string& error) {
  const auto close = text.find(']');
  if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
    error = "expected [IPv6]:PORT, got '" + std::string(text) + "'";
    return false;
  }
  const auto inside = text.substr(1, close - 1);
  if (inside.find(':') == std::string_view::npos) {
    const std::string h(inside);  // in steps: "'" + std::string(inside) trips GCC 12's -Wrestrict
    error = "'" + h + "' in brackets is not an IPv6 address";
    return false;
  }
  host = inside;
  port = text.substr(close + 2);
  return true;
}

// "HOST:PORT" (no brackets) into host and port; false (with the error) when malformed.
bool split_plain(std::string_view text, std::string_view& host, std::string_view& port, std::string& error) {
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos) {
    error = "expected HOST:PORT, got '" + std::string(text) + "'";
    return false;
  }
  host = text.substr(0, colon);
  port = text.substr(colon + 1);
  if (host.find(':') != std::string_view::npos) {
    error = "an IPv6 address needs brackets: [" + std::string(host) + "]:" + std::string(port);
    return false;
  }
  return true;
}

bool bad_host_char(char c) {
  return static_cast<unsigned char>(c) <= ' ' || c == '/' || c == '[' || c == ']' || c == 0x7f;
}

bool valid_host(std::string_view text, std::string_view host, std::string& error) {
  if (host.empty()) {
    error = "no host in '" + std::string(text) + "'";
    return false;
  }
  if (std::any_of(host.begin(), host.end(), bad_host_char)) {
    error = "invalid host '" + std::string(host) + "'";
    return false;
  }
  return true;
}

// A decimal port from 1 to 65535, nothing else (no sign, no trailing characters).
bool parse_port(std::string_view port, unsigned& value, std::string& error) {
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || port.front() == '+' || ec != std::errc() || end != port.data() + port.size() || value < 1 ||
      value > 65535) {
    error = "the port must be a number from 1 to 65535, got '" + std::string(port) + "'";
    return false;
  }
  return true;
}

}  // namespace

serve_config_result parse_serve_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {std::nullopt, path + ": cannot read: " + std::strerror(errno)};
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return {std::nullopt, path + ": cannot read: " + std::strerror(errno)};

  boost::json::stream_parser p;
  boost::system::error_code ec;
  const auto n = p.write(text.data(), text.size(), ec);  // on an error: where it is
  if (!ec) p.finish(ec);
  if (ec) return {std::nullopt, where(path, text, n) + ": invalid JSON: " + ec.message()};
  try {
    return {read_config(scanner(text).value(), path), {}};
  } catch (const config_error& e) {
    return {std::nullopt, where(path, text, e.at) + ": " + e.message};
  }
}

std::optional<std::pair<std::string, std::uint16_t>> parse_host_port(std::string_view text, std::string& error) {
  std::string_view host, port;
  const bool split = !text.empty() && text.front() == '[' ? split_bracketed(text, host, port, error)
                                                          : split_plain(text, host, port, error);
  unsigned value = 0;
  if (!split || !valid_host(text, host, error) || !parse_port(port, value, error)) return std::nullopt;
  return std::pair{std::string(host), static_cast<std::uint16_t>(value)};
}

}  // namespace xsn::inline v0::distributed
