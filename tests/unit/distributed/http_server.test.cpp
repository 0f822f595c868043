#include "distributed/http_server.hpp"

#include "catch.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <future>
#include <optional>
#include <stdexcept>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

// The HTTP API against a fake service: routes, every error status, limits, keep-alive, replies
// that arrive late, and stop() with clients connected. The server runs on an io_context thread
// owned by the test; clients are blocking sockets on the test's thread.

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using xsn::distributed::http_limits;
using xsn::distributed::http_server;
using xsn::distributed::reply;
using xsn::distributed::reply_handler;

namespace {

/// Records each call; answers at once with `answer`, or keeps the handler when `hold` is set.
struct fake_service final : xsn::distributed::machine_service {
  struct call {
    std::string op, id, document, key;
    json::value payload;  // input or event
  };
  std::mutex mutex;
  std::vector<call> calls;
  std::vector<reply_handler> held;
  bool hold = false;
  std::promise<void> called;  // set at the first held call
  reply answer{200, json::object{{"ok", true}}};
  bool is_ready = true;
  bool throws = false;  // get() throws

  void record(call c, reply_handler h) {
    std::unique_lock lock(mutex);
    calls.push_back(std::move(c));
    if (hold) {
      held.push_back(std::move(h));
      if (held.size() == 1) called.set_value();
      return;
    }
    auto r = answer;
    lock.unlock();
    h(std::move(r));
  }
  void create(std::string id, std::string document, json::value input, reply_handler h) override {
    record({"create", std::move(id), std::move(document), {}, std::move(input)}, std::move(h));
  }
  void send(std::string id, json::object event, std::string key, reply_handler h) override {
    record({"send", std::move(id), {}, std::move(key), std::move(event)}, std::move(h));
  }
  void get(std::string id, reply_handler h) override {
    if (throws) throw std::runtime_error("boom");
    record({"get", std::move(id), {}, {}, {}}, std::move(h));
  }
  void erase(std::string id, reply_handler h) override { record({"erase", std::move(id), {}, {}, {}}, std::move(h)); }
  void cluster(reply_handler h) override { record({"cluster", {}, {}, {}, {}}, std::move(h)); }
  bool ready(std::string& why) const override {
    if (!is_ready) why = "no Redis connection";
    return is_ready;
  }
  std::string metrics() const override { return "# TYPE xsn_up gauge\nxsn_up 1\n"; }

  call last() {
    std::lock_guard lock(mutex);
    REQUIRE_FALSE(calls.empty());
    return calls.back();
  }
  std::size_t count() {
    std::lock_guard lock(mutex);
    return calls.size();
  }
};

/// A server on loopback, port 0, on its own io_context thread. The destructor stops it and joins:
/// the thread's run() returns only once nothing of the server is pending.
struct fixture {
  fake_service svc;
  asio::io_context ioc;
  http_server server;
  std::thread thread;
  explicit fixture(http_limits limits = {}) : server(ioc.get_executor(), svc, limits) {
    REQUIRE_FALSE(server.listen("127.0.0.1", 0));
    server.start();
    thread = std::thread([this] { ioc.run(); });
  }
  ~fixture() {
    server.stop();
    thread.join();
  }
};

using response = http::response<http::string_body>;

/// A blocking HTTP client on one connection.
struct client {
  asio::io_context ioc;
  beast::tcp_stream stream{ioc};
  beast::flat_buffer buffer;
  explicit client(const fixture& f) { stream.connect(f.server.local_endpoint()); }

  response request(http::verb method, const std::string& target, const std::string& body = "",
                   const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    http::request<http::string_body> req{method, target, 11};
    req.set(http::field::host, "localhost");
    for (const auto& [k, v] : headers) req.set(k, v);
    if (!body.empty() || method == http::verb::put || method == http::verb::post) {
      req.set(http::field::content_type, "application/json");
      req.body() = body;
    }
    req.prepare_payload();
    http::write(stream, req);
    return read();
  }
  void raw(const std::string& bytes) { asio::write(stream, asio::buffer(bytes)); }
  response read() {
    response res;
    http::read(stream, buffer, res);
    return res;
  }
  /// True when the server closed the connection (the read ends with EOF or a reset).
  bool closed_by_server() {
    char c;
    beast::error_code ec;
    stream.socket().read_some(asio::buffer(&c, 1), ec);
    return ec == asio::error::eof || ec == asio::error::connection_reset;
  }
};

json::value body_of(const response& r) { return json::parse(r.body()); }
std::string error_of(const response& r) { return std::string(body_of(r).at("error").as_string()); }
bool json_typed(const response& r) { return r[http::field::content_type] == "application/json"; }

}  // namespace

TEST_CASE("http_server: each route reaches the service") {
  fixture f;
  client c(f);
  f.svc.answer = {201, json::object{{"id", "m1"}}};
  auto r = c.request(http::verb::put, "/machines/m1", R"({"document": "orders", "input": {"n": 1}})");
  CHECK(r.result_int() == 201);
  CHECK(json_typed(r));
  CHECK(body_of(r) == json::parse(R"({"id": "m1"})"));
  auto call = f.svc.last();
  CHECK(call.op == "create");
  CHECK(call.id == "m1");
  CHECK(call.document == "orders");
  CHECK(call.payload == json::parse(R"({"n": 1})"));

  f.svc.answer = {200, json::object{{"state", "open"}}};
  r = c.request(http::verb::put, "/machines/A.b_c:d@e-9", R"({"document": "orders"})");
  CHECK(r.result_int() == 200);
  CHECK(f.svc.last().id == "A.b_c:d@e-9");
  CHECK(f.svc.last().payload == json::object());  // input defaults to {}

  r = c.request(http::verb::post, "/machines/m1/events", R"({"type": "pay", "amount": 3})",
                {{"Idempotency-Key", "k-1 2"}});
  CHECK(r.result_int() == 200);
  call = f.svc.last();
  CHECK(call.op == "send");
  CHECK(call.id == "m1");
  CHECK(call.key == "k-1 2");
  CHECK(call.payload == json::parse(R"({"type": "pay", "amount": 3})"));
  r = c.request(http::verb::post, "/machines/m1/events", R"({"type": "pay"})");
  CHECK(f.svc.last().key.empty());

  r = c.request(http::verb::get, "/machines/m1");
  CHECK(r.result_int() == 200);
  CHECK(f.svc.last().op == "get");
  r = c.request(http::verb::delete_, "/machines/m1");
  CHECK(f.svc.last().op == "erase");
  CHECK(f.svc.last().id == "m1");
  r = c.request(http::verb::get, "/cluster");
  CHECK(f.svc.last().op == "cluster");

  f.svc.answer = {204, nullptr};
  r = c.request(http::verb::delete_, "/machines/m1");
  CHECK(r.result_int() == 204);
  CHECK(r.body().empty());
  CHECK(f.svc.count() == 8);
}

TEST_CASE("http_server: healthz, readyz and metrics") {
  fixture f;
  client c(f);
  auto r = c.request(http::verb::get, "/healthz");
  CHECK(r.result_int() == 200);
  CHECK(body_of(r) == json::parse(R"({"status": "alive"})"));
  r = c.request(http::verb::get, "/readyz");
  CHECK(r.result_int() == 200);
  CHECK(body_of(r) == json::parse(R"({"ready": true})"));
  f.svc.is_ready = false;  // the server thread reads it only while this thread waits for the answer
  r = c.request(http::verb::get, "/readyz?verbose");
  CHECK(r.result_int() == 503);
  CHECK(body_of(r) == json::parse(R"({"ready": false, "reason": "no Redis connection"})"));
  r = c.request(http::verb::get, "/metrics");
  CHECK(r.result_int() == 200);
  CHECK(r[http::field::content_type] == "text/plain; version=0.0.4");
  CHECK(r.body() == "# TYPE xsn_up gauge\nxsn_up 1\n");
  CHECK(f.svc.count() == 0);
}

TEST_CASE("http_server: keep-alive serves several requests on one connection") {
  fixture f;
  client c(f);
  for (int i = 0; i < 3; ++i) {
    auto r = c.request(http::verb::get, "/machines/m" + std::to_string(i));
    CHECK(r.result_int() == 200);
    CHECK(r.keep_alive());
    CHECK(f.svc.last().id == "m" + std::to_string(i));
  }
  // A request asking to close is answered, then the connection closes.
  auto r = c.request(http::verb::get, "/healthz", "", {{"Connection", "close"}});
  CHECK(r.result_int() == 200);
  CHECK_FALSE(r.keep_alive());
  CHECK(c.closed_by_server());
}

TEST_CASE("http_server: 404 unknown path, 405 wrong method with Allow") {
  fixture f;
  client c(f);
  for (const char* path : {"/", "/machines", "/machines/a/b", "/machines/a/events/x", "/healthz/x", "/v1/machines/a"}) {
    INFO(path);
    auto r = c.request(http::verb::get, path);
    CHECK(r.result_int() == 404);
    CHECK(json_typed(r));
    CHECK(error_of(r) == std::string("no such path: ") + path);
  }
  auto r = c.request(http::verb::post, "/machines/m1", "{}");
  CHECK(r.result_int() == 405);
  CHECK(r[http::field::allow] == "GET, PUT, DELETE");
  CHECK(error_of(r) == "method POST not allowed here (allowed: GET, PUT, DELETE)");
  r = c.request(http::verb::get, "/machines/m1/events");
  CHECK(r.result_int() == 405);
  CHECK(r[http::field::allow] == "POST");
  r = c.request(http::verb::delete_, "/healthz");
  CHECK(r.result_int() == 405);
  CHECK(r[http::field::allow] == "GET");
  r = c.request(http::verb::get, "/x\xc3\xa9" + std::string(300, 'y'));  // echoed safely, and short
  CHECK(r.result_int() == 404);
  CHECK(error_of(r) == "no such path: /x??" + std::string(196, 'y') + "...");
  r = c.request(http::verb::get, "/healthz");  // the connection is still good
  CHECK(r.result_int() == 200);
  CHECK(f.svc.count() == 0);
}

TEST_CASE("http_server: 400 for bad ids, keys and bodies") {
  fixture f;
  client c(f);
  const std::string id_error = "invalid machine id: 1 to 256 characters of A-Z a-z 0-9 . _ : @ -";
  for (const std::string& path : std::vector<std::string>{"/machines/", "/machines/a%20b", "/machines/caf\xc3\xa9", "/machines/a+b",
                                 "/machines/" + std::string(257, 'x'), "/machines//events"}) {
    INFO(path);
    auto r = c.request(path.find("events") != std::string::npos ? http::verb::post : http::verb::get, path,
                       path.find("events") != std::string::npos ? R"({"type": "t"})" : "");
    CHECK(r.result_int() == 400);
    CHECK(error_of(r) == id_error);
    CHECK(r.keep_alive());
  }
  auto r = c.request(http::verb::get, "/machines/" + std::string(256, 'x'));
  CHECK(r.result_int() == 200);

  const std::string key_error = "invalid Idempotency-Key: 1 to 256 printable ASCII characters";
  for (const std::string& key : {std::string(), std::string(257, 'k'), std::string("caf\xc3\xa9"), std::string("a\tb")}) {
    r = c.request(http::verb::post, "/machines/m/events", R"({"type": "t"})", {{"Idempotency-Key", key}});
    CHECK(r.result_int() == 400);
    CHECK(error_of(r) == key_error);
  }
  r = c.request(http::verb::post, "/machines/m/events", R"({"type": "t"})", {{"Idempotency-Key", std::string(256, 'k')}});
  CHECK(r.result_int() == 200);

  struct bad_body {
    http::verb method;
    std::string target, body, error;
  };
  for (const auto& b : std::vector<bad_body>{
           {http::verb::put, "/machines/m", "{\"document\": ", "malformed JSON at byte 13: incomplete JSON"},
           {http::verb::put, "/machines/m", "{\"document\" \"x\"}", "malformed JSON at byte 12: syntax error"},
           {http::verb::put, "/machines/m", "", "malformed JSON at byte 0: incomplete JSON"},
           {http::verb::put, "/machines/m", "[1]", "the request body must be a JSON object"},
           {http::verb::put, "/machines/m", "{}", "missing \"document\": the name of the statechart"},
           {http::verb::put, "/machines/m", R"({"document": 3})", "\"document\" must be a non-empty string"},
           {http::verb::put, "/machines/m", R"({"document": ""})", "\"document\" must be a non-empty string"},
           {http::verb::put, "/machines/m", R"({"document": "d", "input": [1]})", "\"input\" must be an object"},
           {http::verb::put, "/machines/m", R"({"document": "d", "inputs": {}})",
            "unknown field \"inputs\" (expected document, input)"},
           {http::verb::post, "/machines/m/events", "\"pay\"", "the request body must be a JSON object"},
           {http::verb::post, "/machines/m/events", "{}", "the event needs a non-empty string \"type\""},
           {http::verb::post, "/machines/m/events", R"({"type": ""})", "the event needs a non-empty string \"type\""},
           {http::verb::post, "/machines/m/events", R"({"type": 1})", "the event needs a non-empty string \"type\""},
           {http::verb::post, "/machines/m/events", R"({"type": "a"} x)", "malformed JSON at byte 14: extra data"},
       }) {
    INFO(b.body);
    r = c.request(b.method, b.target, b.body);
    CHECK(r.result_int() == 400);
    CHECK(json_typed(r));
    CHECK(error_of(r) == b.error);
    CHECK(r.keep_alive());
  }
  CHECK(f.svc.count() == 2);  // the two good requests only
}

TEST_CASE("http_server: 413 body too large, 431 header too large") {
  http_limits limits;
  limits.max_body_bytes = 100;
  fixture f(limits);
  {
    client c(f);  // declared too large: answered before the body is sent
    c.raw("PUT /machines/m HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n");
    auto r = c.read();
    CHECK(r.result_int() == 413);
    CHECK(error_of(r) == "request body larger than 100 bytes");
    CHECK_FALSE(r.keep_alive());
    CHECK(c.closed_by_server());
  }
  {
    client c(f);  // chunked, found too large while reading
    c.raw("POST /machines/m/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
          "c8\r\n" + std::string(200, ' ') + "\r\n0\r\n\r\n");
    auto r = c.read();
    CHECK(r.result_int() == 413);
    CHECK(c.closed_by_server());
  }
  {
    client c(f);
    auto r = c.request(http::verb::get, "/healthz", "", {{"X-Filler", std::string(9000, 'f')}});
    CHECK(r.result_int() == 431);
    CHECK(error_of(r) == "request header larger than 8192 bytes");
    CHECK(c.closed_by_server());
  }
  client c(f);
  auto r = c.request(http::verb::post, "/machines/m/events", R"({"type": "fits"})");
  CHECK(r.result_int() == 200);
  CHECK(f.svc.count() == 1);
}

TEST_CASE("http_server: garbage bytes get a 400 and a close, never a crash") {
  fixture f;
  for (const std::string& bytes :
       {std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11),  // a TLS ClientHello
        std::string("GET / HTTP/9.9\r\n\r\n"), std::string("GET /healthz HTTP/1.1\r\nBad Header\r\n\r\n"),
        std::string("\r\n\r\n\r\n"), std::string("POST /machines/m/events HTTP/1.1\r\nContent-Length: x\r\n\r\n"),
        std::string("GET\x00/ HTTP/1.1\r\n\r\n", 18)}) {
    INFO(bytes);
    client c(f);
    c.raw(bytes);
    auto r = c.read();
    CHECK(r.result_int() == 400);
    CHECK(error_of(r).rfind("malformed HTTP request: ", 0) == 0);
    CHECK(c.closed_by_server());
  }
  client c(f);  // still serving
  CHECK(c.request(http::verb::get, "/healthz").result_int() == 200);
  CHECK(f.svc.count() == 0);
}

TEST_CASE("http_server: Expect 100-continue") {
  fixture f;
  client c(f);
  c.raw("PUT /machines/m HTTP/1.1\r\nHost: x\r\nContent-Length: 19\r\nExpect: 100-continue\r\n\r\n");
  http::response<http::empty_body> interim;
  http::read(c.stream, c.buffer, interim);
  CHECK(interim.result_int() == 100);
  c.raw(R"({"document": "doc"})");
  CHECK(c.read().result_int() == 200);
  CHECK(f.svc.last().document == "doc");
  // A request that will fail is answered at once, and the body never read.
  c.raw("PUT /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: 19\r\nExpect: 100-continue\r\n\r\n");
  auto r = c.read();
  CHECK(r.result_int() == 404);
  CHECK(c.closed_by_server());
}

TEST_CASE("http_server: 503 beyond max_connections") {
  http_limits limits;
  limits.max_connections = 1;
  fixture f(limits);
  std::optional<client> first(f);
  CHECK(first->request(http::verb::get, "/healthz").result_int() == 200);  // accepted and counted
  {
    client second(f);
    auto r = second.read();  // answered without asking
    CHECK(r.result_int() == 503);
    CHECK(error_of(r) == "too many connections: try again later");
    CHECK_FALSE(r.keep_alive());
    CHECK(second.closed_by_server());
  }
  CHECK(first->request(http::verb::get, "/healthz").result_int() == 200);
  first.reset();  // its slot frees once the server sees the close: a new client may have to retry
  for (;;) {
    client next(f);
    auto r = next.request(http::verb::get, "/healthz");
    if (r.result_int() == 200) break;
    CHECK(r.result_int() == 503);
  }
}

TEST_CASE("http_server: an idle connection is closed after read_timeout") {
  http_limits limits;
  limits.read_timeout = std::chrono::milliseconds(50);
  fixture f(limits);
  client c(f);
  CHECK(c.request(http::verb::get, "/healthz").result_int() == 200);
  CHECK(c.closed_by_server());  // blocks until the server gives up on the next request
  client slow(f);
  slow.raw("GET /healthz HTTP/1.1\r\n");  // never finished
  CHECK(slow.closed_by_server());
}

TEST_CASE("http_server: a reply after the client left is dropped") {
  fixture f;
  f.svc.hold = true;
  auto called = f.svc.called.get_future();
  {
    client c(f);
    c.raw("GET /machines/m HTTP/1.1\r\nHost: x\r\n\r\n");
    called.wait();  // the service has the request
  }  // the client leaves
  reply_handler h;
  {
    std::lock_guard lock(f.svc.mutex);
    h = std::move(f.svc.held.front());
    f.svc.hold = false;
  }
  h({200, json::object{{"late", true}}});
  client c(f);  // the server carries on
  CHECK(c.request(http::verb::get, "/healthz").result_int() == 200);
  CHECK(c.request(http::verb::get, "/machines/m2").result_int() == 200);
}

TEST_CASE("http_server: stop() closes open connections and leaves nothing pending") {
  std::optional<fixture> f(std::in_place);
  f->svc.hold = true;
  auto called = f->svc.called.get_future();
  client idle(*f);
  client waiting(*f);
  CHECK(idle.request(http::verb::get, "/healthz").result_int() == 200);
  waiting.raw("GET /machines/m HTTP/1.1\r\nHost: x\r\n\r\n");
  called.wait();
  client half(*f);
  half.raw("PUT /machines/m HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{");
  f->server.stop();
  f->thread.join();  // run() returned: nothing of the server is pending
  CHECK(idle.closed_by_server());
  CHECK(waiting.closed_by_server());
  CHECK(half.closed_by_server());
  // The service answers after the stop, from another thread: dropped.
  reply_handler h;
  {
    std::lock_guard lock(f->svc.mutex);
    h = std::move(f->svc.held.front());
  }
  std::thread([&] { h({200, nullptr}); }).join();
  f->thread = std::thread([&] { f->ioc.restart(), f->ioc.run(); });  // runs what the reply posted
  f.reset();
}

TEST_CASE("http_server: a service that throws gets a 500, the server carries on") {
  fixture f;
  f.svc.throws = true;
  {
    client c(f);
    auto r = c.request(http::verb::get, "/machines/m");
    CHECK(r.result_int() == 500);
    CHECK(error_of(r) == "internal error: boom");
    CHECK(c.closed_by_server());
  }
  f.svc.throws = false;  // the server thread reads it only while a request is served
  client c(f);
  CHECK(c.request(http::verb::get, "/machines/m").result_int() == 200);
}
