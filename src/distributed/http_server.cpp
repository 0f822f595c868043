#include "http_server.hpp"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/stream_parser.hpp>

#include <algorithm>
#include <array>
#include <exception>
#include <mutex>
#include <optional>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace xsn::inline v0::distributed {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;

namespace {

constexpr std::string_view json_type = "application/json";
constexpr std::string_view metrics_type = "text/plain; version=0.0.4";
constexpr std::size_t max_drain_bytes = 64 * 1024;  // read and dropped before closing

reply error_reply(unsigned status, std::string message) {
  return {status, json::object{{"error", std::move(message)}}};
}

// A character of an id: an ASCII letter or digit, or one of . _ : @ -
bool id_char(char c) {
  const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  return alnum || std::string_view("._:@-").find(c) != std::string_view::npos;
}

bool valid_id(std::string_view id, std::size_t max) {
  if (id.empty() || id.size() > max) return false;
  return std::all_of(id.begin(), id.end(), id_char);
}

bool valid_key(std::string_view key, std::size_t max) {
  if (key.empty() || key.size() > max) return false;
  for (char c : key)
    if (c < 0x20 || c > 0x7e) return false;
  return true;
}

// At most 200 characters of `text`, anything but printable ASCII as '?': safe to echo in JSON.
std::string printable(std::string_view text) {
  std::string out(text.substr(0, 200));
  for (char& c : out)
    if (c < 0x20 || c > 0x7e) c = '?';
  return text.size() > out.size() ? out + "..." : out;
}

// The routes: what a path names, before its method is looked at.
enum class resource { none, healthz, readyz, metrics, cluster, machine, events };

struct route {
  resource what = resource::none;
  std::string_view id;
  std::string_view allow;  // the methods it answers, for 405's `Allow`
};

route find_route(std::string_view target) {
  const auto path = target.substr(0, target.find('?'));  // a query string is ignored
  if (path == "/healthz") return {resource::healthz, {}, "GET"};
  if (path == "/readyz") return {resource::readyz, {}, "GET"};
  if (path == "/metrics") return {resource::metrics, {}, "GET"};
  if (path == "/cluster") return {resource::cluster, {}, "GET"};
  constexpr std::string_view machines = "/machines/";
  if (path.substr(0, machines.size()) != machines) return {};
  const auto rest = path.substr(machines.size());
  const auto slash = rest.find('/');
  if (slash == std::string_view::npos) return {resource::machine, rest, "GET, PUT, DELETE"};
  if (rest.substr(slash) == "/events") return {resource::events, rest.substr(0, slash), "POST"};
  return {};
}

bool allowed(resource what, http::verb method) {
  switch (what) {
    case resource::machine:
      return method == http::verb::get || method == http::verb::put || method == http::verb::delete_;
    case resource::events: return method == http::verb::post;
    case resource::none: return false;
    default: return method == http::verb::get;
  }
}

// The body as a JSON object, or the 400 saying what is wrong with it.
std::optional<reply> parse_object(std::string_view body, json::object& out) {
  json::stream_parser p;
  boost::system::error_code ec;
  const auto n = p.write(body.data(), body.size(), ec);  // on an error: where it is
  if (!ec) p.finish(ec);
  if (ec) return error_reply(400, "malformed JSON at byte " + std::to_string(n) + ": " + ec.message());
  auto v = p.release();
  if (!v.is_object()) return error_reply(400, "the request body must be a JSON object");
  out = std::move(v.get_object());
  return std::nullopt;
}

}  // namespace

struct http_server::impl : std::enable_shared_from_this<impl> {
  class connection;

  impl(asio::any_io_executor ex, machine_service& svc, http_limits limits)
      : ex(ex), svc(svc), limits(limits), acceptor(asio::make_strand(ex)), retry(acceptor.get_executor()) {}

  void accept();
  void on_accept(boost::system::error_code ec, tcp::socket socket);
  void stop();
  void remove(std::uint64_t id, bool served);
  bool stopped() {
    std::lock_guard lock(mutex);
    return stopped_;
  }

  asio::any_io_executor ex;
  machine_service& svc;
  const http_limits limits;
  tcp::acceptor acceptor;  // on its own strand
  asio::steady_timer retry;  // accepting again after an error such as EMFILE

  std::mutex mutex;  // guards what follows
  bool stopped_ = false;
  std::uint64_t next_id = 0;
  std::size_t served = 0;  // connections not refused
  std::unordered_map<std::uint64_t, std::shared_ptr<connection>> connections;
};

/**
 * One client: reads a request, has it answered, writes the answer, and again while the client
 * keeps the connection alive. Everything runs on the socket's strand; the server owns it (its map
 * of connections) until it closes, a pending operation or reply keeps it alive until it completes.
 */
class http_server::impl::connection : public std::enable_shared_from_this<connection> {
 public:
  connection(std::weak_ptr<impl> server, std::uint64_t id, bool refused, tcp::socket socket, http_limits limits)
      : server_(std::move(server)), id_(id), refused_(refused), limits_(limits),
        strand_(socket.get_executor()), stream_(std::move(socket)) {}

  const asio::any_io_executor& strand() const { return strand_; }

  void start() {
    if (refused_) {
      keep_alive_ = false;
      return respond(error_reply(503, "too many connections: try again later"));
    }
    read_request();
  }

  void close() {
    if (!open_) return;
    open_ = false;
    stream_.close();  // cancels the pending operation and the timer
    if (auto s = server_.lock()) s->remove(id_, !refused_);
  }

 private:
  void read_request() {
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(limits_.max_header_bytes));
    parser_->body_limit(limits_.max_body_bytes);
    stream_.expires_after(limits_.read_timeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_header(ec); });
  }

  void on_header(beast::error_code ec) {
    if (ec) return on_read_error(ec);
    const auto& req = parser_->get();
    keep_alive_ = req.keep_alive();
    route_ = find_route(req.target());
    auto problem = check(req);
    const bool expects_continue = beast::iequals(req[http::field::expect], "100-continue");
    if (problem && expects_continue) {  // the client waits to send the body: it never will
      keep_alive_ = false;
      return respond(std::move(*problem));
    }
    if (problem) problem_ = std::move(problem);
    if (parser_->is_done()) return on_body({});
    if (expects_continue) {
      continue_.emplace(http::status::continue_, req.version());
      return http::async_write(stream_, *continue_, [self = shared_from_this()](beast::error_code e, std::size_t) {
        if (e) return self->close();
        self->read_body();
      });
    }
    read_body();
  }

  void read_body() {
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_body(ec); });
  }

  // What is wrong with the request line and headers, if anything.
  std::optional<reply> check(const http::request<http::string_body>& req) const {
    if (route_.what == resource::none) return error_reply(404, "no such path: " + printable(req.target()));
    if (!allowed(route_.what, req.method()))
      return error_reply(405, "method " + std::string(req.method_string()) + " not allowed here (allowed: " +
                                  std::string(route_.allow) + ")");
    if ((route_.what == resource::machine || route_.what == resource::events) &&
        !valid_id(route_.id, limits_.max_id_bytes))
      return error_reply(400, "invalid machine id: 1 to " + std::to_string(limits_.max_id_bytes) +
                                  " characters of A-Z a-z 0-9 . _ : @ -");
    if (route_.what == resource::events) {
      const auto key = req.find("Idempotency-Key");
      if (key != req.end() && !valid_key(key->value(), limits_.max_key_bytes))
        return error_reply(400, "invalid Idempotency-Key: 1 to " + std::to_string(limits_.max_key_bytes) +
                                    " printable ASCII characters");
    }
    return std::nullopt;
  }

  void on_read_error(beast::error_code ec) {
    if (ec == http::error::header_limit) {
      keep_alive_ = false;
      return respond(error_reply(431, "request header larger than " + std::to_string(limits_.max_header_bytes) +
                                          " bytes"));
    }
    if (ec == http::error::body_limit) {
      keep_alive_ = false;
      return respond(error_reply(413, "request body larger than " + std::to_string(limits_.max_body_bytes) +
                                          " bytes"));
    }
    // End of stream, a timeout, a reset, a cancellation, or a message cut short: nobody to answer.
    if (ec.category() != http::make_error_code(http::error::end_of_stream).category() ||
        ec == http::error::end_of_stream || ec == http::error::partial_message)
      return close();
    keep_alive_ = false;
    respond(error_reply(400, "malformed HTTP request: " + ec.message()));
  }

  void on_body(beast::error_code ec) {
    if (ec) return on_read_error(ec);
    if (problem_) return respond(*std::exchange(problem_, std::nullopt));
    auto s = server_.lock();
    if (!s || s->stopped()) return close();  // the service may be gone
    try {
      serve(*s);
    } catch (const std::exception& e) {  // from the service: answered here, not thrown into run()
      if (writing_) return close();
      awaiting_ = 0;  // a reply that still comes is dropped
      keep_alive_ = false;
      respond(error_reply(500, std::string("internal error: ") + e.what()));
    }
  }

  void serve(impl& s) {
    auto& req = parser_->get();
    const std::string id(route_.id);
    switch (route_.what) {
      case resource::healthz: return respond({200, json::object{{"status", "alive"}}});
      case resource::readyz: {
        std::string why;
        if (s.svc.ready(why)) return respond({200, json::object{{"ready", true}}});
        return respond({503, json::object{{"ready", false}, {"reason", why}}});
      }
      case resource::metrics: return respond_text(200, s.svc.metrics(), metrics_type);
      case resource::cluster: return s.svc.cluster(await_reply());
      case resource::machine:
        if (req.method() == http::verb::get) return s.svc.get(id, await_reply());
        if (req.method() == http::verb::delete_) return s.svc.erase(id, await_reply());
        return create(s, id, req.body());
      case resource::events: return send(s, id, req.body(), std::string(req["Idempotency-Key"]));
      case resource::none: break;
    }
  }

  void create(impl& s, const std::string& id, std::string_view body) {
    json::object o;
    if (auto bad = parse_object(body, o)) return respond(std::move(*bad));
    json::value input = json::object();
    std::string document;
    for (auto& [k, v] : o) {
      if (k == "document" && v.is_string() && !v.get_string().empty()) {
        document = v.get_string();
      } else if (k == "document") {
        return respond(error_reply(400, "\"document\" must be a non-empty string"));
      } else if (k == "input" && v.is_object()) {
        input = std::move(v);
      } else if (k == "input") {
        return respond(error_reply(400, "\"input\" must be an object"));
      } else {
        return respond(error_reply(400, "unknown field \"" + std::string(k) + "\" (expected document, input)"));
      }
    }
    if (document.empty()) return respond(error_reply(400, "missing \"document\": the name of the statechart"));
    s.svc.create(id, std::move(document), std::move(input), await_reply());
  }

  void send(impl& s, const std::string& id, std::string_view body, std::string key) {
    json::object event;
    if (auto bad = parse_object(body, event)) return respond(std::move(*bad));
    const auto type = event.if_contains("type");
    if (!type || !type->is_string() || type->get_string().empty())
      return respond(error_reply(400, "the event needs a non-empty string \"type\""));
    s.svc.send(id, std::move(event), std::move(key), await_reply());
  }

  // A handler for the service: the reply comes back to this strand, if the connection is still
  // there and still waiting for it.
  reply_handler await_reply() {
    stream_.expires_never();  // the service takes the time it needs
    const auto seq = awaiting_ = ++requests_;
    return [weak = weak_from_this(), seq](reply r) {
      auto self = weak.lock();
      if (!self) return;
      asio::post(self->strand_, [self, seq, r = std::move(r)]() mutable {
        if (!self->open_ || self->awaiting_ != seq) return;
        self->awaiting_ = 0;
        if (r.status < 200 || r.status > 599) r = error_reply(500, "invalid status from the service");
        self->respond(std::move(r));
      });
    };
  }

  void respond(reply r) {
    const bool no_body = r.status == 204 || r.status == 304;
    respond_text(r.status, no_body ? std::string() : json::serialize(r.body), json_type);
  }

  void respond_text(unsigned status, std::string body, std::string_view type) {
    res_ = {};
    res_.version(11);
    res_.result(status);
    res_.set(http::field::server, "xsn");
    if (status == 405) res_.set(http::field::allow, route_.allow);
    if (!body.empty()) res_.set(http::field::content_type, type);
    res_.body() = std::move(body);
    res_.keep_alive(keep_alive_);
    res_.prepare_payload();
    stream_.expires_after(limits_.read_timeout);
    writing_ = true;
    http::async_write(stream_, res_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      self->writing_ = false;
      if (ec) return self->close();
      if (self->keep_alive_) return self->read_request();
      self->linger();
    });
  }

  // Closes after the client has read the answer: sends FIN, then drops what the client still
  // sends until it closes too, so that unread input does not turn the close into a reset.
  void linger() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.expires_after(limits_.read_timeout);
    drain();
  }

  void drain() {
    stream_.async_read_some(asio::buffer(drain_), [self = shared_from_this()](beast::error_code ec, std::size_t n) {
      self->drained_ += n;
      if (ec || self->drained_ > max_drain_bytes) return self->close();
      self->drain();
    });
  }

  const std::weak_ptr<impl> server_;
  const std::uint64_t id_;
  const bool refused_;  // over max_connections: answered 503 and closed
  const http_limits limits_;
  const asio::any_io_executor strand_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<http::response<http::empty_body>> continue_;
  http::response<http::string_body> res_;
  route route_;
  std::optional<reply> problem_;  // found in the header, answered once the body is read
  bool keep_alive_ = true;
  bool open_ = true;
  bool writing_ = false;  // a response is being written
  std::uint64_t requests_ = 0;
  std::uint64_t awaiting_ = 0;  // the request whose reply is awaited, 0: none
  std::size_t drained_ = 0;
  std::array<char, 4096> drain_;
};

void http_server::impl::accept() {
  acceptor.async_accept(asio::make_strand(ex), [self = shared_from_this()](boost::system::error_code ec,
                                                                           tcp::socket socket) {
    self->on_accept(ec, std::move(socket));
  });
}

void http_server::impl::on_accept(boost::system::error_code ec, tcp::socket socket) {
  if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
  std::shared_ptr<connection> c;
  {
    std::lock_guard lock(mutex);
    if (stopped_) return;
    if (ec) {  // e.g. out of file descriptors: try again a little later instead of spinning
      retry.expires_after(std::chrono::milliseconds(100));
      retry.async_wait([self = shared_from_this()](boost::system::error_code e) {
        if (!e && !self->stopped()) self->accept();
      });
      return;
    }
    const bool refused = served >= limits.max_connections;
    // Refusals are cheap but not free: beyond as many again, a client is just disconnected.
    if (refused && connections.size() >= 2 * limits.max_connections) {
      c = nullptr;
    } else {
      c = std::make_shared<connection>(weak_from_this(), ++next_id, refused, std::move(socket), limits);
      connections.emplace(next_id, c);
      if (!refused) ++served;
    }
  }
  if (c) asio::dispatch(c->strand(), [c] { c->start(); });
  accept();
}

void http_server::impl::remove(std::uint64_t id, bool was_served) {
  std::lock_guard lock(mutex);
  if (connections.erase(id) && was_served) --served;
}

void http_server::impl::stop() {
  decltype(connections) open;
  {
    std::lock_guard lock(mutex);
    stopped_ = true;
    open.swap(connections);
    served = 0;
  }
  asio::dispatch(acceptor.get_executor(), [self = shared_from_this()] {
    boost::system::error_code ignored;
    self->acceptor.close(ignored);
    self->retry.cancel();
  });
  for (auto& entry : open) {
    auto c = std::move(entry.second);
    asio::dispatch(c->strand(), [c] { c->close(); });
  }
}

http_server::http_server(asio::any_io_executor ex, machine_service& svc, http_limits limits)
    : impl_(std::make_shared<impl>(std::move(ex), svc, limits)) {}

http_server::~http_server() { stop(); }

std::error_code http_server::listen(const std::string& host, std::uint16_t port) {
  boost::system::error_code ec;
  auto address = asio::ip::make_address(host, ec);
  if (ec) {  // a name: its first address
    tcp::resolver resolver(impl_->ex);
    auto results = resolver.resolve(host, std::to_string(port), ec);
    if (ec) return ec;
    if (results.empty()) return std::make_error_code(std::errc::address_not_available);
    address = results.begin()->endpoint().address();
  }
  const tcp::endpoint ep(address, port);
  auto& a = impl_->acceptor;
  if (a.open(ep.protocol(), ec)) return ec;
  if (a.set_option(tcp::acceptor::reuse_address(true), ec)) return ec;
  if (a.bind(ep, ec) || a.listen(asio::socket_base::max_listen_connections, ec)) {
    boost::system::error_code ignored;
    a.close(ignored);
    return ec;
  }
  return {};
}

tcp::endpoint http_server::local_endpoint() const {
  boost::system::error_code ignored;
  return impl_->acceptor.local_endpoint(ignored);
}

void http_server::start() {
  asio::dispatch(impl_->acceptor.get_executor(), [self = impl_] {
    if (self->acceptor.is_open() && !self->stopped()) self->accept();
  });
}

void http_server::stop() { impl_->stop(); }

}  // namespace xsn::inline v0::distributed
