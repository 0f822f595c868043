#pragma once
// Part of xsn_advanced (private): one Redis connection on an Asio strand. hiredis 0.14 encodes
// commands and parses replies (redisFormatCommandArgv, redisReader); Asio does the socket,
// the timeouts and the reconnects. hiredis' own async API is not used: in 0.14 it has no
// timeouts and frees its context by itself on errors, which fights Asio's ownership model.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <initializer_list>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

struct redisReply;
struct redisReader;

namespace xsn::inline v0::advanced::detail {

using steady = std::chrono::steady_clock;
using strand_type = boost::asio::strand<boost::asio::any_io_executor>;

/// A move-only `void(std::error_code, const redisReply*)` (std::function needs copies).
class reply_callback {
 public:
  reply_callback() = default;
  template <typename F>
  reply_callback(F f) : f_(std::make_unique<model<F>>(std::move(f))) {}  // NOLINT: implicit
  void operator()(std::error_code ec, const redisReply* r) { f_->call(ec, r); }
  explicit operator bool() const noexcept { return f_ != nullptr; }

 private:
  struct concept_ {
    virtual ~concept_() = default;
    virtual void call(std::error_code, const redisReply*) = 0;
  };
  template <typename F>
  struct model final : concept_ {
    explicit model(F fn) : f(std::move(fn)) {}
    void call(std::error_code ec, const redisReply* r) override { f(ec, r); }
    F f;
  };
  std::unique_ptr<concept_> f_;
};

/// Appends `s` to `out` as a RESP bulk string.
void append_bulk(std::string& out, std::string_view s);

/// Appends the concatenation of `parts` to `out` as one RESP bulk string.
void append_bulk(std::string& out, std::initializer_list<std::string_view> parts);

/// A command and what to do with its reply. `done` gets the reply (valid during the call) or
/// an error with a null reply; it runs on the strand and must not throw.
struct redis_command {
  std::vector<std::string> args;  ///< A plain command (when `script` is false).
  bool resend_if_lost = false;    ///< Idempotent: resent when the connection broke under it.
  /// A call of the link's script: `EVALSHA <its SHA1>` (or `EVAL <its text>` after a
  /// `NOSCRIPT`) followed by `script_args`, already in RESP (one buffer, no string per argument).
  bool script = false;
  bool script_as_text = false;  ///< Send the script's text (`EVAL`): Redis had lost it.
  std::string script_args;      ///< RESP bulk strings of the arguments after the script.
  std::size_t script_argc = 0;  ///< How many.
  steady::time_point deadline;
  reply_callback done;

  /// Appends one argument of a script call.
  void arg(std::string_view s) {
    append_bulk(script_args, s);
    ++script_argc;
  }
  /// Appends one argument of a script call made of `parts` (no temporary string).
  void arg(std::initializer_list<std::string_view> parts) {
    append_bulk(script_args, parts);
    ++script_argc;
  }
};

/// What one reply of a `reply_reader` may take, and has taken (hiredis' privdata).
struct reply_budget {
  std::size_t max = 0;
  std::size_t used = 0;  ///< By the objects of the reply being read.
  bool over = false;
};

/// hiredis' reply reader, with a bound on the memory one reply may take: the bytes of its
/// strings, 8 per array element and 64 per reply object, plus the bytes buffered of a reply not
/// yet whole. hiredis 0.14 allocates an array as soon as it reads its header, so without it
/// `*2000000000\r\n` from a broken or hostile server asks for 16 GB, and a bulk string's header
/// makes it buffer whatever length it announces.
class reply_reader {
 public:
  /// What `next` found.
  enum class result { reply, incomplete, error };

  explicit reply_reader(std::size_t max_reply_bytes);
  ~reply_reader();
  reply_reader(const reply_reader&) = delete;
  reply_reader& operator=(const reply_reader&) = delete;

  /// Adds bytes read from the connection; false on an error (see `error`). The bound is checked
  /// by `next`, once the whole replies are out of the buffer.
  bool feed(const char* data, std::size_t n);
  /// Takes the next whole reply out (`out`, owned by the caller: `freeReplyObject`).
  result next(redisReply*& out);
  /// True when the error was the bound (not a protocol error).
  bool too_large() const noexcept { return budget_.over; }
  /// What went wrong, after `feed` returned false or `next` returned `error`.
  std::string error() const;

 private:
  bool over_bound();

  reply_budget budget_;
  redisReader* reader_;
};

/// Settings of one connection.
struct redis_link_settings {
  std::string host;
  std::uint16_t port = 6379;
  std::chrono::milliseconds connect_timeout{};
  std::chrono::milliseconds reconnect_initial{};
  std::chrono::milliseconds reconnect_max{};
  std::size_t max_reply_bytes = 64u << 20;  ///< Bound of one reply (`reply_reader`).
  /// Sent first on every connection (AUTH, SELECT, SCRIPT LOAD, SUBSCRIBE...).
  std::function<std::vector<std::vector<std::string>>()> handshake;
  /// Checks the handshake's replies; returns an error text, empty when the link may be used.
  std::function<std::string(const std::vector<const redisReply*>&)> handshake_done;
  /// The text of the script that `redis_command::script` calls (its SHA1 is learnt from the
  /// handshake, see `redis_link::set_script_sha`); empty when the link runs no script.
  std::string script_text;
  /// Replies nobody waits for (pub/sub messages). None: such a reply breaks the connection.
  std::function<void(const redisReply*)> on_push;
  /// Told when the link becomes ready (true) or stops being ready (false), with the reason.
  std::function<void(bool, const std::string&)> on_state;
};

/// One connection to Redis with a bounded set of commands in flight. Every member function must
/// be called on the strand. Owned through a `shared_ptr` (its handlers hold it).
class redis_link : public std::enable_shared_from_this<redis_link> {
 public:
  redis_link(strand_type strand, redis_link_settings settings);
  ~redis_link();
  redis_link(const redis_link&) = delete;
  redis_link& operator=(const redis_link&) = delete;

  /// Starts connecting (and reconnecting after failures) until `close`.
  void start();
  /// True once `start` was called.
  bool started() const noexcept { return started_; }
  /// Queues `cmd`; it is written as soon as the link is ready and not held.
  void submit(redis_command cmd);
  /// Queues every command of `cmds`, in order; they go out together (one write when they fit).
  void submit(std::vector<redis_command> cmds);
  /// While held, nothing new is written (replies are still read).
  void hold(bool on);
  /// True when connected and past the handshake.
  bool ready() const noexcept { return state_ == state::ready; }
  /// Fails everything with `operation_aborted` and closes for good.
  void close();
  /// The SHA1 under which the handshake loaded the script (`EVALSHA`; before it, `EVAL`).
  void set_script_sha(std::string sha) { script_sha_ = std::move(sha); }
  /// Commands queued or in flight.
  std::size_t pending() const noexcept { return queue_.size() + inflight_.size(); }

 private:
  enum class state { idle, backoff, connecting, ready, closed };

  void connect();
  void on_connect(std::uint64_t gen, boost::system::error_code ec);  ///< TCP connect done.
  void on_connected(std::uint64_t gen);
  void connect_failed(std::uint64_t gen, const std::string& why);
  void drop(const std::string& why);
  void schedule_reconnect();
  void read();
  void on_read(std::size_t n);
  void read_failed(const std::string& why);
  void dispatch(redisReply* reply);
  void on_handshake_reply(redisReply* reply);
  void write();
  void arm_deadline();
  void on_deadline();
  void fail_queue(std::error_code ec);
  void append(const std::vector<std::string>& args);
  void append_script(const redis_command& cmd);
  bool write_now();

  strand_type strand_;
  redis_link_settings settings_;
  boost::asio::ip::tcp::resolver resolver_;
  boost::asio::ip::tcp::socket socket_;
  boost::asio::steady_timer connect_timer_;
  boost::asio::steady_timer deadline_timer_;
  boost::asio::steady_timer backoff_timer_;
  std::unique_ptr<reply_reader> reader_;
  std::minstd_rand rng_;

  state state_ = state::idle;
  bool started_ = false;
  bool held_ = false;
  bool writing_ = false;
  bool deadline_armed_ = false;
  steady::time_point deadline_at_{};
  std::uint64_t gen_ = 0;        ///< Connection attempt; stale handlers compare it.
  unsigned failures_ = 0;        ///< Consecutive failed attempts, for the backoff.
  std::size_t handshake_left_ = 0;
  std::vector<redisReply*> handshake_replies_;
  std::deque<redis_command> queue_;     ///< Not yet written.
  std::deque<redis_command> inflight_;  ///< Written, waiting for replies in order.
  std::string script_sha_;              ///< Of `settings_.script_text`.
  std::string out_;                     ///< Being written.
  std::vector<char> in_;                ///< Read buffer.
};

}  // namespace xsn::inline v0::advanced::detail
