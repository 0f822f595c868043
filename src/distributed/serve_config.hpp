#pragma once
/// \file `xsn serve`'s configuration file (JSON) and the `HOST:PORT` syntax of its addresses.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace xsn::inline v0::distributed {

/// What one `xsn serve` node runs with; the defaults are those of a missing key.
struct serve_config {
  std::string redis_host = "127.0.0.1";  ///< A single Redis server (unless `cluster` is set).
  std::uint16_t redis_port = 6379;
  std::string username, password;  ///< Redis AUTH; empty: none.
  std::string prefix = "xsn:";     ///< Prefix of every Redis key.
  std::vector<std::pair<std::string, std::uint16_t>> cluster;  ///< Redis Cluster seed nodes.
  unsigned partitions = 64;                   ///< Machines are spread over this many partitions.
  std::chrono::milliseconds lease{2000};      ///< How long a node's claim on a partition lasts.
  std::string documents;                      ///< Folder of the documents, absolute.
  std::string http_host = "127.0.0.1";        ///< Where the HTTP API listens.
  std::uint16_t http_port = 8080;
};

/// A parsed config file, or why it could not be: `FILE:LINE:COL: message` (1-based).
struct serve_config_result {
  std::optional<serve_config> config;  ///< Set on success.
  std::string error;                   ///< Set on failure.
  explicit operator bool() const noexcept { return config.has_value(); }
};

/**
 * Reads the config file at `path`:
 * `{"redis": {"host", "port", "username", "password", "prefix"}` (or `"cluster": ["host:port",
 * ...]` instead of host and port), `"partitions": 1..16384, "lease_ms": 300..600000,
 * "documents": "DIR", "http": {"listen": "HOST:PORT"}}`. Only `documents` is required; it is
 * resolved against the file's folder. Unknown keys are errors, reported where they are.
 */
serve_config_result parse_serve_config(const std::string& path);

/// Splits `host:port` (`[v6 address]:port` for IPv6; port 1..65535). Returns nothing, and says
/// why in `error`, when `text` is not of that form.
std::optional<std::pair<std::string, std::uint16_t>> parse_host_port(std::string_view text, std::string& error);

}  // namespace xsn::inline v0::distributed
