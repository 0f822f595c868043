// libFuzzer target: what a Redis server answers, fed to a real redis_state_store over a local
// socket. The input is the server's replies, one per command it receives, separated by "\0|"
// (the first answers SCRIPT LOAD, the next the connect-time sweep, then the operations').
// The first byte picks the operations (get, put, list, compare-and-set, erase, batch, watch);
// each reply's bytes go through the store's hiredis reader (in the chunks TCP delivers) and then
// through the code that interprets them; the store's bound on a reply is set to its least, 4 KiB,
// and the server's copy of the client's reader applies it too. A reply the client cannot parse
// whole is followed by the next at once. Once the replies are used up, or the store opens a fifth
// connection, the server hangs up and the store is closed: every operation must complete, with a
// value or an error.
#include <xsn/advanced/redis_state_store.hpp>
#include <xsn/core/clock.hpp>

#include "store/redis_connection.hpp"  // the link's bounded reply reader

#include <hiredis/hiredis.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace asio = boost::asio;
using asio::ip::tcp;

using xsn::advanced::detail::reply_reader;

/// The store's bound on one reply: the smallest it accepts, so that short inputs reach it.
constexpr std::size_t max_reply_bytes = xsn::advanced::redis_store_options::min_reply_bytes;
/// The server's bound on what it reads: the client's commands, the 8 KB script load included.
constexpr std::size_t max_command_bytes = 1u << 20;

/// Feeds `bytes` to `r` and takes out the whole replies (or commands: RESP arrays too) it then
/// holds: how many, or nothing when they do not parse or one is over the bound (for the client's
/// copy: the client drops the link then).
std::optional<std::size_t> parse_whole(reply_reader& r, const char* bytes, std::size_t n) {
  using result = reply_reader::result;
  if (!r.feed(bytes, n)) return std::nullopt;
  for (std::size_t whole = 0;; ++whole) {
    redisReply* reply = nullptr;
    const auto found = r.next(reply);
    if (found == result::error) return std::nullopt;
    if (found == result::incomplete) return whole;
    freeReplyObject(reply);
  }
}

/// One accepted connection: the commands it sent, and a copy of the client's reader fed with the
/// replies written to it, which tells how many of them the client can parse.
struct fake_connection {
  explicit fake_connection(tcp::socket s) : sock(std::move(s)) {}
  tcp::socket sock;
  reply_reader commands{max_command_bytes};
  reply_reader mirror{max_reply_bytes};
  std::size_t received = 0;  ///< Commands read.
  std::size_t answered = 0;  ///< Commands with a whole reply written (as the client's reader sees it).
  bool broken = false;       ///< The replies written do not parse: the client drops the link.
  std::array<char, 4096> in{};
};

/// Answers each command a connection sends with the next reply. A reply that is cut short or empty
/// answers nothing, so the next one follows it at once, as one stream of bytes (a client waits for
/// a whole reply); after bytes that do not parse, the connection gets no more replies (the client
/// drops it). No input leaves the store waiting for its connect or command timeout. When the
/// replies are used up, the server hangs up.
struct fake_server {
  /// Connections one input may open; the next one is refused and the server hangs up. Without a
  /// cap, libFuzzer favours inputs that reconnect dozens of times (each count of a reconnect is a
  /// new feature): the average input of session 14's corpus opened 32 connections, so campaigns
  /// spent their time in TCP connects and backoff waits. Four still reach every reconnect path
  /// (a resend after a lost reply needs two).
  static constexpr std::size_t max_connections = 4;
  tcp::acceptor acceptor;
  std::vector<std::string> replies;
  std::size_t next = 0;
  std::size_t connections = 0;  ///< Accepted for this input.
  bool done = false;
  std::vector<std::shared_ptr<fake_connection>> open;

  explicit fake_server(asio::io_context& ioc) : acceptor(ioc, tcp::endpoint(asio::ip::address_v4::loopback(), 0)) {}

  /// Starts a new input: its replies, no connection yet.
  void reset(std::vector<std::string> r) {
    replies = std::move(r);
    next = 0;
    connections = 0;
    done = false;
  }
  /// Ends an input, once hung up and polled: frees what it allocated, so libFuzzer sees as many
  /// frees as mallocs and runs its (costly) leak check only when something did leak.
  void clear() {
    std::vector<std::string>().swap(replies);
    std::vector<std::shared_ptr<fake_connection>>().swap(open);
  }
  void accept() {
    acceptor.async_accept([this](boost::system::error_code ec, tcp::socket s) {
      if (ec) return;
      accept();
      if (done) return;  // hung up: this input's connections are refused
      if (++connections > max_connections) return hang_up();
      auto c = std::make_shared<fake_connection>(std::move(s));
      boost::system::error_code ignored;
      c->sock.set_option(tcp::no_delay(true), ignored);  // no 40 ms delayed-ACK stall per reply
      open.push_back(c);
      serve(c);
    });
  }
  void serve(const std::shared_ptr<fake_connection>& c) {
    c->sock.async_read_some(asio::buffer(c->in), [this, c](boost::system::error_code ec, std::size_t n) {
      if (ec || done) return;
      const auto commands = parse_whole(c->commands, c->in.data(), n);
      if (!commands) return hang_up();
      c->received += *commands;
      if (!answer(*c)) return hang_up();
      serve(c);
    });
  }
  /// Writes replies until each command received has a whole one; false when they ran out.
  bool answer(fake_connection& c) {
    auto out = std::make_shared<std::string>();
    while (!c.broken && c.answered < c.received) {
      if (next == replies.size()) return false;
      const std::string& reply = replies[next++];
      *out += reply;
      const auto whole = parse_whole(c.mirror, reply.data(), reply.size());
      // Whole replies beyond the commands waiting answer nothing (the client takes them as pushes,
      // or drops the link), so the next command still gets a reply.
      if (whole) c.answered = std::min(c.answered + *whole, c.received);
      c.broken = !whole;
    }
    if (!out->empty()) asio::async_write(c.sock, asio::buffer(*out), [out](boost::system::error_code, std::size_t) {});
    return true;
  }
  void hang_up() {
    done = true;
    boost::system::error_code ignored;
    for (auto& c : open) c->sock.close(ignored);
  }
};

std::vector<std::string> split_replies(std::string_view in) {
  std::vector<std::string> out;
  for (;;) {
    auto at = in.find(std::string_view("\0|", 2));
    out.emplace_back(in.substr(0, at));
    if (at == std::string_view::npos) return out;
    in.remove_prefix(at + 2);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const unsigned ops = data[0];
  // One io_context and listening socket for every input: a new io_context per input costs a
  // resolver thread, and a new port per input fills the table of closed connections.
  static asio::io_context ioc;
  static fake_server server(ioc);
  static const bool listening = (server.accept(), true);
  (void)listening;
  ioc.restart();
  xsn::manual_clock clk;  // never advanced: no timeout fires, the server's hang-up ends everything
  server.reset(split_replies(std::string_view(reinterpret_cast<const char*>(data) + 1, size - 1)));
  xsn::advanced::redis_store_options o;
  o.port = server.acceptor.local_endpoint().port();
  o.reconnect_initial = std::chrono::milliseconds(1);
  o.reconnect_max = std::chrono::milliseconds(1);
  o.max_reply_bytes = max_reply_bytes;
  auto store = std::make_unique<xsn::advanced::redis_state_store>(ioc.get_executor(), clk, o);
  int pending = 0;
  auto count = [&pending](auto&&...) { --pending; };
  xsn::watch_handle watch;
  if (ops & 1) watch = store->watch("k", [](const xsn::watch_event&) {});
  if (ops & 2) ++pending, store->async_get("k", count);
  if (ops & 4) ++pending, store->async_put("k", "value", count);
  if (ops & 8) ++pending, store->async_list("", count);
  if (ops & 16) ++pending, store->async_compare_and_set("k", xsn::store_version{3}, "v2", count);
  if (ops & 32) ++pending, store->async_erase("k", count);
  if (ops & 64) {
    std::vector<xsn::batch_write> batch(2);
    batch[0].key = "a", batch[0].value = "1";
    batch[1].key = "b", batch[1].value = "2", batch[1].expected = xsn::store_version{0};
    ++pending, store->async_write_batch(std::move(batch), count);
  }
  bool closing = false, closed = false;
  // Runs until the server has hung up, then closes the store and runs until everything ended.
  for (int round = 0; round < 100'000 && !closed; ++round) {
    if (ioc.run_one() == 0) break;
    if ((server.done || pending == 0) && !closing) {
      closing = true;
      watch = {};
      server.hang_up();
      store->async_close([&closed](std::error_code) { closed = true; });
    }
  }
  if (!closed || pending != 0) std::abort();  // an operation that never completes is a finding
  store.reset();
  server.hang_up();
  ioc.poll();  // what the store left behind; the listening socket's accept stays pending
  server.clear();
  return 0;
}
