// Part of xsn_advanced: one Redis connection on an Asio strand (see redis_connection.hpp).
#include "store/redis_connection.hpp"

#include <xsn/core/errors.hpp>

#include <hiredis/hiredis.h>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdlib>
#include <optional>
#include <string_view>
#include <utility>

namespace xsn::inline v0::advanced::detail {

namespace {

constexpr std::size_t read_chunk = 64 * 1024;

std::error_code aborted() { return make_error_code(boost::asio::error::operation_aborted); }

// A NOSCRIPT error: the script is not cached in Redis (flushed), so nothing ran.
bool is_noscript(const redisReply* reply) {
  return reply->type == REDIS_REPLY_ERROR && reply->str &&
         std::string_view(reply->str, reply->len).starts_with("NOSCRIPT");
}

// ---- the bounded reader ----

constexpr std::size_t object_cost = 64;  // a redisReply and its allocation, roughly

// hiredis' own functions, which build the `redisReply` tree that `freeReplyObject` frees; they
// are static in hiredis.c, so they are taken from a reader made with the defaults.
const redisReplyObjectFunctions& hiredis_functions() {
  static const redisReplyObjectFunctions fns = [] {
    redisReader* r = redisReaderCreate();
    if (r == nullptr) throw std::bad_alloc();
    const redisReplyObjectFunctions copy = *r->fn;
    redisReaderFree(r);
    return copy;
  }();
  return fns;
}

// Counts `bytes` against the reply's budget (the task's privdata); false when over it. A null
// object from a create function makes hiredis stop with an error and free the partial reply.
bool charge(const redisReadTask* task, std::size_t bytes) {
  auto* b = static_cast<reply_budget*>(task->privdata);
  if (b->over || bytes > b->max || b->used > b->max - bytes) {
    b->over = true;
    return false;
  }
  b->used += bytes;
  return true;
}

void* create_string(const redisReadTask* task, char* str, std::size_t len) {
  return charge(task, object_cost + len) ? hiredis_functions().createString(task, str, len) : nullptr;
}

void* create_array(const redisReadTask* task, int elements) {
  const auto n = static_cast<std::size_t>(std::max(elements, 0));
  return charge(task, object_cost + n * sizeof(void*)) ? hiredis_functions().createArray(task, elements)
                                                       : nullptr;
}

void* create_integer(const redisReadTask* task, long long value) {
  return charge(task, object_cost) ? hiredis_functions().createInteger(task, value) : nullptr;
}

void* create_nil(const redisReadTask* task) {
  return charge(task, object_cost) ? hiredis_functions().createNil(task) : nullptr;
}

redisReplyObjectFunctions bounded_functions{create_string, create_array, create_integer, create_nil,
                                            freeReplyObject};

}  // namespace

reply_reader::reply_reader(std::size_t max_reply_bytes)
    : reader_(redisReaderCreateWithFunctions(&bounded_functions)) {
  if (reader_ == nullptr) throw std::bad_alloc();
  budget_.max = max_reply_bytes;
  reader_->privdata = &budget_;
}

reply_reader::~reply_reader() { redisReaderFree(reader_); }

bool reply_reader::feed(const char* data, std::size_t n) {
  return redisReaderFeed(reader_, data, n) == REDIS_OK;
}

reply_reader::result reply_reader::next(redisReply*& out) {
  void* raw = nullptr;
  out = nullptr;
  if (redisReaderGetReply(reader_, &raw) != REDIS_OK) return result::error;
  if (raw == nullptr) return over_bound() ? result::error : result::incomplete;
  budget_.used = 0;
  out = static_cast<redisReply*>(raw);
  return result::reply;
}

// The buffered bytes of the reply not yet whole count too: a bulk string is kept in the buffer
// until all of it is there.
bool reply_reader::over_bound() {
  const std::size_t buffered = reader_->len - reader_->pos;
  if (!budget_.over && budget_.used + buffered > budget_.max) budget_.over = true;
  return budget_.over;
}

std::string reply_reader::error() const {
  if (budget_.over) return "reply larger than max_reply_bytes (" + std::to_string(budget_.max) + ")";
  return std::string("protocol error: ") + reader_->errstr;
}

redis_link::redis_link(strand_type strand, redis_link_settings settings)
    : strand_(std::move(strand)), settings_(std::move(settings)), resolver_(strand_),
      socket_(strand_), connect_timer_(strand_), deadline_timer_(strand_),
      backoff_timer_(strand_), reader_(std::make_unique<reply_reader>(settings_.max_reply_bytes)),
      rng_(std::random_device{}()), in_(read_chunk) {}

redis_link::~redis_link() {
  for (auto* r : handshake_replies_) freeReplyObject(r);
}

void redis_link::start() {
  if (started_ || state_ == state::closed) return;
  started_ = true;
  connect();
}

void redis_link::submit(redis_command cmd) {
  if (state_ == state::closed) {
    cmd.done(aborted(), nullptr);
    return;
  }
  queue_.push_back(std::move(cmd));
  arm_deadline();
  write();
}

void redis_link::submit(std::vector<redis_command> cmds) {
  if (state_ == state::closed) {
    for (auto& c : cmds) c.done(aborted(), nullptr);
    return;
  }
  for (auto& c : cmds) queue_.push_back(std::move(c));
  arm_deadline();
  write();
}

void redis_link::hold(bool on) {
  held_ = on;
  if (!on) write();
}

void redis_link::close() {
  if (state_ == state::closed) return;
  state_ = state::closed;
  ++gen_;
  boost::system::error_code ignored;
  resolver_.cancel();
  socket_.close(ignored);
  connect_timer_.cancel();
  deadline_timer_.cancel();
  backoff_timer_.cancel();
  auto inflight = std::move(inflight_);
  auto queue = std::move(queue_);
  inflight_.clear();
  queue_.clear();
  for (auto& c : inflight) c.done(aborted(), nullptr);
  for (auto& c : queue) c.done(aborted(), nullptr);
}

// ---- connecting ----

void redis_link::connect() {
  state_ = state::connecting;
  const auto gen = ++gen_;
  auto self = shared_from_this();
  connect_timer_.expires_after(settings_.connect_timeout);
  connect_timer_.async_wait([self, gen](boost::system::error_code ec) {
    if (!ec && gen == self->gen_ && self->state_ == state::connecting) {
      self->connect_failed(gen, "connect timed out");
    }
  });
  // An address needs no resolver: connecting to it directly saves a round trip through the
  // resolver's thread on every (re)connect.
  boost::system::error_code not_an_address;
  const auto address = boost::asio::ip::make_address(settings_.host, not_an_address);
  if (!not_an_address) {
    socket_.async_connect({address, settings_.port},
                          [self, gen](boost::system::error_code ec) { self->on_connect(gen, ec); });
    return;
  }
  resolver_.async_resolve(
      settings_.host, std::to_string(settings_.port),
      [self, gen](boost::system::error_code ec, boost::asio::ip::tcp::resolver::results_type eps) {
        if (gen != self->gen_) return;
        if (ec) return self->connect_failed(gen, "cannot resolve " + self->settings_.host + ": " +
                                                     ec.message());
        boost::asio::async_connect(
            self->socket_, eps,
            [self, gen](boost::system::error_code ec2, const boost::asio::ip::tcp::endpoint&) {
              self->on_connect(gen, ec2);
            });
      });
}

void redis_link::on_connect(std::uint64_t gen, boost::system::error_code ec) {
  if (gen != gen_) return;
  if (ec) return connect_failed(gen, "cannot connect: " + ec.message());
  on_connected(gen);
}

void redis_link::on_connected(std::uint64_t gen) {
  boost::system::error_code ignored;
  socket_.set_option(boost::asio::ip::tcp::no_delay(true), ignored);
  socket_.non_blocking(true, ignored);  // `write_now` tries without waiting
  try {
    reader_ = std::make_unique<reply_reader>(settings_.max_reply_bytes);
  } catch (const std::bad_alloc&) {
    return connect_failed(gen, "out of memory");
  }
  out_.clear();
  const auto commands = settings_.handshake ? settings_.handshake()
                                            : std::vector<std::vector<std::string>>{};
  handshake_left_ = commands.size();
  for (const auto& c : commands) append(c);
  read();
  if (handshake_left_ == 0) {
    handshake_replies_.clear();
    connect_timer_.cancel();
    state_ = state::ready;
    failures_ = 0;
    if (settings_.on_state) settings_.on_state(true, {});
    write();
    return;
  }
  writing_ = true;
  auto self = shared_from_this();
  boost::asio::async_write(socket_, boost::asio::buffer(out_),
                           [self, gen](boost::system::error_code ec, std::size_t) {
                             if (gen != self->gen_) return;
                             self->writing_ = false;
                             if (ec) return self->connect_failed(gen, "write: " + ec.message());
                             self->write();
                           });
}

void redis_link::connect_failed(std::uint64_t gen, const std::string& why) {
  if (gen != gen_ || state_ != state::connecting) return;
  ++gen_;
  boost::system::error_code ignored;
  resolver_.cancel();
  socket_.close(ignored);
  connect_timer_.cancel();
  writing_ = false;
  for (auto* r : handshake_replies_) freeReplyObject(r);
  handshake_replies_.clear();
  ++failures_;
  // Told first, so that the reason is known (`last_error`) when the failed requests' handlers run.
  if (settings_.on_state) settings_.on_state(false, why);
  // Requests waiting for this attempt fail now: a clear error instead of a wait.
  fail_queue(make_error_code(errc::store_unavailable));
  schedule_reconnect();
}

void redis_link::drop(const std::string& why) {
  if (state_ != state::ready) return;
  ++gen_;
  boost::system::error_code ignored;
  socket_.close(ignored);
  writing_ = false;
  const auto now = steady::now();
  // Reads still in time are resent; writes may have happened: their outcome is unknown.
  auto inflight = std::move(inflight_);
  inflight_.clear();
  std::vector<redis_command> failed;
  for (auto it = inflight.rbegin(); it != inflight.rend(); ++it) {
    if (it->resend_if_lost && it->deadline > now) {
      queue_.push_front(std::move(*it));
    } else {
      failed.push_back(std::move(*it));
    }
  }
  state_ = state::backoff;
  if (settings_.on_state) settings_.on_state(false, why);
  for (auto it = failed.rbegin(); it != failed.rend(); ++it) {
    const auto ec = it->deadline <= now ? std::make_error_code(std::errc::timed_out)
                                        : make_error_code(errc::store_unavailable);
    it->done(ec, nullptr);
  }
  schedule_reconnect();
}

void redis_link::schedule_reconnect() {
  if (state_ == state::closed) return;
  state_ = state::backoff;
  // Full jitter: uniform in [0, min(max, initial * 2^failures)].
  const auto initial = std::max<std::int64_t>(settings_.reconnect_initial.count(), 1);
  const auto cap = std::max<std::int64_t>(settings_.reconnect_max.count(), initial);
  std::int64_t ceiling = initial;
  for (unsigned i = 0; i < failures_ && ceiling < cap; ++i) ceiling *= 2;
  ceiling = std::min(ceiling, cap);
  const auto delay = std::uniform_int_distribution<std::int64_t>(0, ceiling)(rng_);
  backoff_timer_.expires_after(std::chrono::milliseconds(delay));
  auto self = shared_from_this();
  const auto gen = gen_;
  backoff_timer_.async_wait([self, gen](boost::system::error_code ec) {
    if (!ec && gen == self->gen_ && self->state_ == state::backoff) self->connect();
  });
  arm_deadline();
}

// ---- reading ----

void redis_link::read() {
  auto self = shared_from_this();
  const auto gen = gen_;
  socket_.async_read_some(boost::asio::buffer(in_),
                          [self, gen](boost::system::error_code ec, std::size_t n) {
                            if (gen != self->gen_) return;
                            if (ec) {
                              const auto why = ec == boost::asio::error::eof
                                                   ? std::string("connection closed by Redis")
                                                   : "read: " + ec.message();
                              if (self->state_ == state::connecting) {
                                return self->connect_failed(gen, why);
                              }
                              return self->drop(why);
                            }
                            self->on_read(n);
                          });
}

void redis_link::on_read(std::size_t n) {
  const auto gen = gen_;
  if (!reader_->feed(in_.data(), n)) return read_failed(reader_->error());
  for (;;) {
    redisReply* reply = nullptr;
    const auto found = reader_->next(reply);
    if (found == reply_reader::result::error) return read_failed(reader_->error());
    if (found == reply_reader::result::incomplete) break;
    dispatch(reply);
    if (gen != gen_) return;  // the reply broke or closed the connection
  }
  read();
}

// The rest of the stream cannot be trusted: the connection is dropped. A reply over the bound
// belongs to the first command in flight, which fails with `value_too_large` instead of being
// resent (it would get the same reply again).
void redis_link::read_failed(const std::string& why) {
  if (state_ == state::connecting) return connect_failed(gen_, why);
  if (!reader_->too_large() || inflight_.empty()) return drop(why);
  auto cmd = std::move(inflight_.front());
  inflight_.pop_front();
  drop(why);
  cmd.done(std::make_error_code(std::errc::value_too_large), nullptr);
}

void redis_link::dispatch(redisReply* reply) {
  if (state_ == state::connecting && handshake_left_ > 0) return on_handshake_reply(reply);
  std::unique_ptr<redisReply, void (*)(void*)> owned(reply, &freeReplyObject);
  if (!inflight_.empty()) {
    auto cmd = std::move(inflight_.front());
    inflight_.pop_front();
    if (cmd.script && !cmd.script_as_text && is_noscript(reply)) {
      // The script was flushed from Redis; nothing ran. Resend it with its text.
      cmd.script_as_text = true;
      queue_.push_front(std::move(cmd));
      write();
      return;
    }
    arm_deadline();
    cmd.done({}, reply);
    return;
  }
  if (settings_.on_push) return settings_.on_push(reply);
  drop("unexpected reply");
}

// A reply to the handshake commands: once all are in, the link is ready, or failed.
void redis_link::on_handshake_reply(redisReply* reply) {
  handshake_replies_.push_back(reply);
  if (--handshake_left_ > 0) return;
  std::vector<const redisReply*> replies(handshake_replies_.begin(), handshake_replies_.end());
  std::string why = settings_.handshake_done ? settings_.handshake_done(replies) : std::string{};
  for (auto* r : handshake_replies_) freeReplyObject(r);
  handshake_replies_.clear();
  if (!why.empty()) return connect_failed(gen_, why);
  connect_timer_.cancel();
  state_ = state::ready;
  failures_ = 0;
  if (settings_.on_state) settings_.on_state(true, {});
  write();
}

// ---- writing ----

// RESP, as redisFormatCommandArgv writes it, without its sprintf per argument (a third of the
// client's instructions per put, measured with callgrind).
namespace {

void append_header(std::string& out, char tag, std::size_t n) {
  std::array<char, 24> buf{};
  buf[0] = tag;
  const auto [end, ec] = std::to_chars(buf.data() + 1, buf.data() + buf.size() - 2, n);
  (void)ec;  // 20 digits always fit
  end[0] = '\r';
  end[1] = '\n';
  out.append(buf.data(), static_cast<std::size_t>(end + 2 - buf.data()));
}

}  // namespace

void append_bulk(std::string& out, std::string_view s) {
  append_header(out, '$', s.size());
  out += s;
  out += "\r\n";
}

void append_bulk(std::string& out, std::initializer_list<std::string_view> parts) {
  std::size_t size = 0;
  for (auto p : parts) size += p.size();
  append_header(out, '$', size);
  for (auto p : parts) out += p;
  out += "\r\n";
}

void redis_link::append(const std::vector<std::string>& args) {
  std::size_t size = 16;
  for (const auto& a : args) size += a.size() + 16;
  out_.reserve(out_.size() + size);
  append_header(out_, '*', args.size());
  for (const auto& a : args) append_bulk(out_, a);
}

void redis_link::append_script(const redis_command& cmd) {
  const bool text = cmd.script_as_text || script_sha_.empty();
  const std::string_view body = text ? std::string_view(settings_.script_text) : script_sha_;
  out_.reserve(out_.size() + body.size() + cmd.script_args.size() + 64);
  append_header(out_, '*', 2 + cmd.script_argc);
  append_bulk(out_, text ? "EVAL" : "EVALSHA");
  append_bulk(out_, body);
  out_ += cmd.script_args;
}

void redis_link::write() {
  if (writing_ || state_ != state::ready || held_ || queue_.empty()) return;
  out_.clear();
  // Pipelining: everything queued goes out in one write.
  while (!queue_.empty()) {
    auto& cmd = queue_.front();
    if (cmd.script) {
      append_script(cmd);
    } else {
      append(cmd.args);
    }
    inflight_.push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
  if (write_now()) return;
  if (state_ != state::ready) return;  // dropped
  writing_ = true;
  auto self = shared_from_this();
  const auto gen = gen_;
  boost::asio::async_write(socket_, boost::asio::buffer(out_),
                           [self, gen](boost::system::error_code ec, std::size_t) {
                             if (gen != self->gen_) return;
                             self->writing_ = false;
                             if (ec) return self->drop("write: " + ec.message());
                             self->write();
                           });
}

/// Writes what it can of `out_` without waiting (the socket is non-blocking) and keeps the rest
/// in `out_`; true when all of it went. A request usually fits the socket's buffer: no
/// asynchronous write, and no completion to run, in the common case.
bool redis_link::write_now() {
  boost::system::error_code ec;
  const auto n = socket_.write_some(boost::asio::buffer(out_), ec);
  if (ec == boost::asio::error::would_block || ec == boost::asio::error::try_again) {
    return false;
  }
  if (ec) {
    drop("write: " + ec.message());
    return false;
  }
  if (n == out_.size()) return true;
  out_.erase(0, n);
  return false;
}

// ---- deadlines ----

void redis_link::arm_deadline() {
  if (state_ == state::closed) return;
  std::optional<steady::time_point> next;
  if (!inflight_.empty()) next = inflight_.front().deadline;
  if (!queue_.empty()) next = next ? std::min(*next, queue_.front().deadline) : queue_.front().deadline;
  if (!next) return;  // an armed timer finds nothing to do and stops
  if (deadline_armed_ && deadline_at_ <= *next) return;
  deadline_armed_ = true;
  deadline_at_ = *next;
  deadline_timer_.expires_at(*next);
  auto self = shared_from_this();
  deadline_timer_.async_wait([self](boost::system::error_code ec) {
    if (ec == boost::asio::error::operation_aborted) return;
    self->deadline_armed_ = false;
    self->on_deadline();
  });
}

void redis_link::on_deadline() {
  if (state_ == state::closed) return;
  const auto now = steady::now();
  if (!inflight_.empty() && inflight_.front().deadline <= now) {
    // The reply is late: the connection is unhealthy, and later replies could not be matched
    // once this one is given up. Drop it (reads in time are resent).
    drop("command timed out");
  }
  // Unsent commands past their deadline were never written: nothing happened.
  auto queue = std::move(queue_);
  queue_.clear();
  std::vector<redis_command> late;
  for (auto& c : queue) {
    if (c.deadline <= now) {
      late.push_back(std::move(c));
    } else {
      queue_.push_back(std::move(c));
    }
  }
  for (auto& c : late) c.done(make_error_code(errc::store_unavailable), nullptr);
  arm_deadline();
}

void redis_link::fail_queue(std::error_code ec) {
  auto queue = std::move(queue_);
  queue_.clear();
  for (auto& c : queue) c.done(ec, nullptr);
}

}  // namespace xsn::inline v0::advanced::detail
