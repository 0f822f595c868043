#pragma once
/// \file `xsn serve`'s HTTP/1.1 API in front of a `machine_service`.

#include "service.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <system_error>

namespace xsn::inline v0::distributed {

/// Bounds of what one client may make the server hold.
struct http_limits {
  std::size_t max_header_bytes = 8 * 1024;   ///< Request line and headers; beyond: 431.
  std::size_t max_body_bytes = 1024 * 1024;  ///< Beyond: 413.
  std::size_t max_connections = 256;  ///< Served at once; the ones beyond get a 503 and are closed.
  std::chrono::milliseconds read_timeout{10000};  ///< An idle or slow client is closed after this.
  std::size_t max_id_bytes = 256;   ///< Longest machine id.
  std::size_t max_key_bytes = 256;  ///< Longest `Idempotency-Key`.
};

/**
 * The HTTP API: `PUT|GET|DELETE /machines/{id}`, `POST /machines/{id}/events`, `GET /cluster`,
 * `/healthz`, `/readyz`, `/metrics`. Requests are checked here (paths, methods, ids, JSON bodies)
 * and handed to the service; every answer is JSON (`/metrics`: Prometheus text).
 *
 * Each connection runs on its own strand of the executor, so the io_context may have several
 * threads. The service's reply handlers may be called from any thread, even after the client left
 * or the server stopped (the reply is then dropped). `listen` and `start` are called once, in this
 * order; `stop` from any thread. After `stop` (or the destructor) the service is no longer called,
 * and once the executor has run the cancellations nothing of the server remains pending.
 */
class http_server {
 public:
  /// A server on `ex` calling `svc`, which must outlive it.
  http_server(boost::asio::any_io_executor ex, machine_service& svc, http_limits limits = {});
  /// Stops.
  ~http_server();
  http_server(const http_server&) = delete;
  http_server& operator=(const http_server&) = delete;

  /// Binds to `host` (an address or a name) and `port` (0: any free port).
  std::error_code listen(const std::string& host, std::uint16_t port);
  /// Where it listens (after `listen`): the port chosen for port 0.
  boost::asio::ip::tcp::endpoint local_endpoint() const;
  /// Begins accepting connections.
  void start();
  /// Closes the listening socket and every connection; replies still to come are dropped.
  void stop();

 private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

}  // namespace xsn::inline v0::distributed
