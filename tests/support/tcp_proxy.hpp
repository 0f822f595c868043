#pragma once
/// \file A loopback TCP proxy on the test's io_context, to cut a client off from a server:
/// `pause()` stops forwarding in both directions (bytes wait in the kernel's buffers, as on a
/// partitioned network), `resume()` forwards them late, `cut()` closes every connection. Owned by
/// the test; `close()` (or the destructor) cancels everything it started.
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

namespace xsn_test {

class tcp_proxy {
 public:
  tcp_proxy(boost::asio::io_context& io, std::uint16_t upstream_port)
      : io_(io), acceptor_(io, {boost::asio::ip::make_address("127.0.0.1"), 0}), upstream_(upstream_port) {
    accept();
  }
  ~tcp_proxy() { close(); }
  tcp_proxy(const tcp_proxy&) = delete;
  tcp_proxy& operator=(const tcp_proxy&) = delete;

  std::uint16_t port() const { return acceptor_.local_endpoint().port(); }

  /// Stops forwarding (pending reads complete into a buffer that is held, not written).
  void pause() { paused_ = true; }
  /// Forwards again, what was held first.
  void resume() {
    paused_ = false;
    auto held = std::move(held_);
    held_.clear();
    for (auto& f : held) f();
  }
  /// Closes every connection (new ones are still accepted).
  void cut() {
    for (auto& w : links_)
      if (auto l = w.lock()) l->shut();
    links_.clear();
    held_.clear();
  }
  void close() {
    boost::system::error_code ec;
    acceptor_.close(ec);
    cut();
  }

 private:
  struct link : std::enable_shared_from_this<link> {
    explicit link(boost::asio::io_context& io) : a(io), b(io) {}
    boost::asio::ip::tcp::socket a, b;  // client side, server side
    std::array<char, 16384> ab{}, ba{};
    void shut() {
      boost::system::error_code ec;
      a.close(ec);
      b.close(ec);
    }
  };

  void accept() {
    acceptor_.async_accept([this](boost::system::error_code ec, boost::asio::ip::tcp::socket s) {
      if (ec) return;
      auto l = std::make_shared<link>(io_);
      l->a = std::move(s);
      links_.push_back(l);
      l->b.async_connect({boost::asio::ip::make_address("127.0.0.1"), upstream_}, [this, l](boost::system::error_code e) {
        if (e) return l->shut();
        pump(l, l->a, l->b, l->ab);
        pump(l, l->b, l->a, l->ba);
      });
      accept();
    });
  }

  void pump(std::shared_ptr<link> l, boost::asio::ip::tcp::socket& from, boost::asio::ip::tcp::socket& to,
            std::array<char, 16384>& buf) {
    from.async_read_some(boost::asio::buffer(buf), [this, l, &from, &to, &buf](boost::system::error_code ec, std::size_t n) {
      if (ec) return l->shut();
      auto forward = [this, l, &from, &to, &buf, n] {
        boost::asio::async_write(to, boost::asio::buffer(buf.data(), n), [this, l, &from, &to, &buf](boost::system::error_code e, std::size_t) {
          if (e) return l->shut();
          pump(l, from, to, buf);
        });
      };
      if (paused_) held_.push_back(forward);
      else forward();
    });
  }

  boost::asio::io_context& io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::uint16_t upstream_;
  bool paused_ = false;
  std::vector<std::weak_ptr<link>> links_;
  std::vector<std::function<void()>> held_;
};

}  // namespace xsn_test
