#pragma once
/// \file The seam between the HTTP API (http_server) and the node that owns the machines.

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <functional>
#include <string>

namespace xsn::inline v0::distributed {

/// An answer to one API call: an HTTP status and a JSON body (errors: {"error": "message"}).
struct reply {
  unsigned status = 200;
  boost::json::value body;
};

/// Called exactly once, from any thread.
using reply_handler = std::function<void(reply)>;

/// What the HTTP API calls; implemented by the node (and by fakes in tests).
class machine_service {
 public:
  virtual ~machine_service() = default;
  /// PUT /machines/{id}: 201 once persisted, 409 if it exists, 400 unknown document.
  virtual void create(std::string id, std::string document, boost::json::value input, reply_handler h) = 0;
  /// POST /machines/{id}/events: `event` is the body object, with a string "type".
  /// `idempotency_key` empty when the header was absent.
  virtual void send(std::string id, boost::json::object event, std::string idempotency_key, reply_handler h) = 0;
  /// GET /machines/{id}
  virtual void get(std::string id, reply_handler h) = 0;
  /// DELETE /machines/{id}
  virtual void erase(std::string id, reply_handler h) = 0;
  /// GET /cluster
  virtual void cluster(reply_handler h) = 0;
  /// GET /readyz: true when ready; otherwise `why` says what is missing.
  virtual bool ready(std::string& why) const = 0;
  /// GET /metrics: Prometheus text exposition format (version 0.0.4).
  virtual std::string metrics() const = 0;
};

}  // namespace xsn::inline v0::distributed
