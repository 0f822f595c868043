// Part of xsn_advanced: `state_store` on Redis (see redis_state_store.hpp for the guarantees).
#include <xsn/advanced/redis_state_store.hpp>
#include <xsn/store/detail/watch_delivery.hpp>

#include "store/redis_connection.hpp"
#include "store/redis_scripts.hpp"

#include <hiredis/hiredis.h>

#include <boost/asio/append.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <functional>
#include <limits>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <utility>
#include <vector>

namespace xsn::inline v0::advanced {

namespace {

using detail::redis_command;
using detail::redis_link;
using detail::steady;
using xsn::detail::delivery_hub;
using xsn::detail::end_watch;
using xsn::detail::watch_record;

// ---- encodings ----

/// A short decimal text in place (no allocation), as script arguments are.
struct digits {
  std::array<char, 24> buf{};
  std::size_t size = 0;
  operator std::string_view() const noexcept { return {buf.data(), size}; }  // NOLINT: implicit
};

template <typename Int>
digits decimal(Int v) {
  digits d;
  const auto [end, ec] = std::to_chars(d.buf.data(), d.buf.data() + d.buf.size(), v);
  (void)ec;  // 24 characters hold any 64-bit integer
  d.size = static_cast<std::size_t>(end - d.buf.data());
  return d;
}

/// A time point as 20 digits: nanoseconds + 2^63, so that string order is time order.
digits encode_time(clock::time_point t) {
  auto u = static_cast<std::uint64_t>(t.time_since_epoch().count()) ^ (std::uint64_t{1} << 63);
  digits d;
  d.size = 20;
  for (std::size_t i = 20; i-- > 0; u /= 10) d.buf[i] = static_cast<char>('0' + u % 10);
  return d;
}

std::optional<clock::time_point> decode_time(std::string_view s) {
  std::uint64_t u = 0;
  if (s.size() != 20) return std::nullopt;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), u);
  if (ec != std::errc{} || p != s.data() + s.size()) return std::nullopt;
  const auto ns = static_cast<std::int64_t>(u ^ (std::uint64_t{1} << 63));
  return clock::time_point(clock::duration(ns));
}

/// Milliseconds, rounded down (the expiry index only needs to be no later than the time).
digits to_ms(clock::time_point t) {
  const auto ns = t.time_since_epoch().count();
  auto ms = ns / 1'000'000;
  if (ns % 1'000'000 != 0 && ns < 0) --ms;
  return decimal(ms);
}

std::optional<std::uint64_t> to_u64(std::string_view s) {
  std::uint64_t v = 0;
  if (s.empty()) return std::nullopt;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || p != s.data() + s.size()) return std::nullopt;
  return v;
}

/// The smallest string greater than every string starting with `prefix`, as a ZRANGEBYLEX max.
std::string lex_max(std::string prefix) {
  while (!prefix.empty() && static_cast<unsigned char>(prefix.back()) == 0xff) prefix.pop_back();
  if (prefix.empty()) return "+";
  prefix.back() = static_cast<char>(static_cast<unsigned char>(prefix.back()) + 1);
  return "(" + prefix;
}

// ---- replies ----

std::string_view str(const redisReply* r) {
  if (!r || !r->str) return {};
  return {r->str, r->len};
}
bool is_string(const redisReply* r) {
  return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);
}
bool is_array(const redisReply* r, std::size_t n) {
  return r && r->type == REDIS_REPLY_ARRAY && r->elements == n;
}
std::optional<std::size_t> to_size(const redisReply* r) {
  if (!r || r->type != REDIS_REPLY_INTEGER || r->integer < 0) return std::nullopt;
  return static_cast<std::size_t>(r->integer);
}

std::error_code bad_message() { return std::make_error_code(std::errc::bad_message); }

}  // namespace

struct redis_state_store::impl : std::enable_shared_from_this<impl> {
  impl(executor_type ex, xsn::clock& c, redis_store_options o)
      : executor(std::move(ex)), strand(boost::asio::make_strand(executor)), clk(c),
        opts(std::move(o)), hub(std::make_shared<delivery_hub>()),
        channel(opts.key_prefix + "w"), max_entries_arg(std::to_string(opts.max_entries)),
        max_bytes_arg(std::to_string(opts.max_bytes)) {
    std::random_device rd;
    instance = std::to_string(rd()) + "-" + std::to_string(rd());
  }

  executor_type executor;
  detail::strand_type strand;
  xsn::clock& clk;
  const redis_store_options opts;
  const std::shared_ptr<delivery_hub> hub;
  const std::string channel;
  const std::string max_entries_arg;  ///< The limits as the write script receives them.
  const std::string max_bytes_arg;
  std::string instance;  ///< Tells this store's flush messages from other processes'.
  std::atomic<std::size_t> pending{0};

  // Strand only.
  std::shared_ptr<redis_link> cmd;
  std::shared_ptr<redis_link> sub;
  std::vector<done_handler> connect_waiters;
  struct flush_wait {
    done_handler handler;
    bool replied = false;
    bool seen = false;
  };
  std::map<std::uint64_t, flush_wait> flushes;
  std::uint64_t next_flush = 0;
  std::vector<done_handler> flushes_after_subscribe;
  bool holding = false;

  // Guarded by `mutex`.
  mutable std::mutex mutex;
  bool closed = false;
  bool reachable = false;
  std::size_t entries = 0;
  std::size_t bytes = 0;
  std::string last_error;
  std::vector<std::shared_ptr<watch_record>> watches;
  bool subscribing = false;
  std::optional<clock::timer_id> timer;
  clock::time_point timer_due{};
  std::uint64_t timer_generation = 0;

  /// Completes `h(args...)` on the executor (never inline), without needing the store object.
  /// Replies complete this way too: user code never runs inside the store's strand (a handler
  /// that blocks there would stall every reply and watch; running it inline would save about 850
  /// instructions a put, measured, not worth that).
  template <typename Handler, typename... Args>
  void complete(Handler h, Args&&... args) {
    boost::asio::post(executor, boost::asio::append(std::move(h), std::forward<Args>(args)...));
  }

  /// Completes an `async_connect` or `async_flush`, which count in `pending` like operations.
  void done(done_handler h, std::error_code ec) {
    pending.fetch_sub(1, std::memory_order_relaxed);
    complete(std::move(h), ec);
  }

  void set_error(std::string why) {
    std::lock_guard lock(mutex);
    last_error = std::move(why);
  }

  void set_counts(std::size_t n, std::size_t b) {
    std::lock_guard lock(mutex);
    entries = n;
    bytes = b;
  }

  /// Maps an error reply; records its text.
  std::error_code error_of(const redisReply* r) {
    const auto text = std::string(str(r));
    set_error("Redis: " + text);
    if (text.starts_with("OOM")) return make_error_code(errc::store_full);
    return bad_message();
  }

  // ---- links ----

  std::vector<std::vector<std::string>> auth() const {
    if (opts.password.empty()) return {};
    if (!opts.username.empty()) return {{"AUTH", opts.username, opts.password}};
    return {{"AUTH", opts.password}};
  }

  detail::redis_link_settings base_settings() const {
    detail::redis_link_settings s;
    s.host = opts.host;
    s.port = opts.port;
    s.connect_timeout = opts.connect_timeout;
    s.reconnect_initial = opts.reconnect_initial;
    s.reconnect_max = opts.reconnect_max;
    s.max_reply_bytes = opts.max_reply_bytes;
    return s;
  }

  void start() {
    std::weak_ptr<impl> weak = weak_from_this();
    auto s = base_settings();
    s.handshake = [weak] {
      auto self = weak.lock();
      if (!self) return std::vector<std::vector<std::string>>{};
      auto cmds = self->auth();
      if (self->opts.database != 0) cmds.push_back({"SELECT", std::to_string(self->opts.database)});
      cmds.push_back({"SCRIPT", "LOAD", detail::redis_script_text()});
      return cmds;
    };
    s.handshake_done = [weak](const std::vector<const redisReply*>& replies) -> std::string {
      auto self = weak.lock();
      if (!self) return "store destroyed";
      return self->on_handshake(replies);
    };
    s.script_text = detail::redis_script_text();
    s.on_state = [weak](bool up, const std::string& why) {
      if (auto self = weak.lock()) self->on_command_link(up, why);
    };
    cmd = std::make_shared<redis_link>(strand, std::move(s));
    cmd->start();
  }

  std::string on_handshake(const std::vector<const redisReply*>& replies) {
    const auto n_auth = auth().size() + (opts.database != 0 ? 1 : 0);
    if (replies.size() != n_auth + 1) return "unexpected handshake";
    for (std::size_t i = 0; i < n_auth; ++i) {
      if (replies[i]->type == REDIS_REPLY_ERROR) {
        return (i == 0 && !opts.password.empty() ? "AUTH failed: " : "SELECT failed: ") +
               std::string(str(replies[i]));
      }
    }
    const auto* r = replies[n_auth];
    if (!is_string(r)) return "SCRIPT LOAD failed: " + std::string(str(r));
    cmd->set_script_sha(std::string(str(r)));
    return {};
  }

  void on_command_link(bool up, const std::string& why) {
    {
      std::lock_guard lock(mutex);
      reachable = up;
      if (!up) last_error = why;
    }
    auto waiters = std::move(connect_waiters);
    connect_waiters.clear();
    const auto ec = up ? std::error_code{} : make_error_code(errc::store_unavailable);
    for (auto& w : waiters) done(std::move(w), ec);
    if (up) sweep();  // learns the counters and the earliest expiry
  }

  void start_subscriber() {
    std::weak_ptr<impl> weak = weak_from_this();
    auto s = base_settings();
    s.handshake = [weak] {
      auto self = weak.lock();
      if (!self) return std::vector<std::vector<std::string>>{};
      auto cmds = self->auth();
      cmds.push_back({"SUBSCRIBE", self->channel});
      return cmds;
    };
    s.handshake_done = [weak](const std::vector<const redisReply*>& replies) -> std::string {
      if (replies.empty()) return "unexpected handshake";
      for (const auto* r : replies) {
        if (r->type == REDIS_REPLY_ERROR) return "subscriber: " + std::string(str(r));
      }
      const auto* last = replies.back();
      if (!is_array(last, 3) || str(last->element[0]) != "subscribe") return "SUBSCRIBE failed";
      (void)weak;
      return {};
    };
    s.on_push = [weak](const redisReply* r) {
      if (auto self = weak.lock()) self->on_message(r);
    };
    s.on_state = [weak](bool up, const std::string& why) {
      if (auto self = weak.lock()) self->on_subscriber(up, why);
    };
    sub = std::make_shared<redis_link>(strand, std::move(s));
    holding = true;
    cmd->hold(true);  // later writes wait for the subscription (see the class comment)
    sub->start();
  }

  void on_subscriber(bool up, const std::string& why) {
    if (!up) set_error("subscriber: " + why);
    if (holding) {
      holding = false;
      cmd->hold(false);
      auto waiting = std::move(flushes_after_subscribe);
      flushes_after_subscribe.clear();
      for (auto& h : waiting) flush(std::move(h));
    }
    if (!up) {
      // Flush markers will not arrive on a broken subscription.
      auto waits = std::move(flushes);
      flushes.clear();
      for (auto& [id, w] : waits) done(std::move(w.handler), make_error_code(errc::store_unavailable));
    }
  }

  void on_message(const redisReply* r) {
    if (!is_array(r, 3) || str(r->element[0]) != "message") return;  // (un)subscribe replies
    const auto payload = str(r->element[2]);
    if (payload.size() < 2 || payload[1] != ' ') return set_error("junk on the watch channel");
    const char kind = payload[0];
    const auto rest = payload.substr(2);
    if (kind == 's') return on_flush_marker(rest);
    const auto ev = watch_event_of(kind, rest);
    if (!ev) return set_error("junk on the watch channel");
    publish_watch_event(*ev);
  }

  /// A "<kind> <version> <key>" message (kind p, e or x) as an event; none when malformed.
  static std::optional<watch_event> watch_event_of(char kind, std::string_view rest) {
    const auto space = rest.find(' ');
    const auto version = to_u64(rest.substr(0, space));
    if (space == std::string_view::npos || !version || (kind != 'p' && kind != 'e' && kind != 'x')) {
      return std::nullopt;
    }
    return watch_event{std::string(rest.substr(space + 1)),
                       kind == 'p' ? watch_kind::put : kind == 'e' ? watch_kind::erase : watch_kind::expire,
                       *version};
  }

  /// Posts `ev` to each watch whose prefix its key has.
  void publish_watch_event(const watch_event& ev) {
    std::vector<std::shared_ptr<watch_record>> matching;
    {
      std::lock_guard lock(mutex);
      for (const auto& w : watches) {
        if (xsn::detail::key_has_prefix(ev.key, w->prefix)) matching.push_back(w);
      }
    }
    for (auto& rec : matching) {
      xsn::detail::post_watch_event(strand, hub, rec, ev);
    }
  }

  // ---- flush ----

  void flush(done_handler h) {
    if (sub && holding) {
      // The first subscription is under way: the barrier has to include its messages.
      flushes_after_subscribe.push_back(std::move(h));
      return;
    }
    if (!sub || !sub->ready()) {
      // No subscription to wait for: a round trip on the command connection is the barrier.
      submit_plain({"PING"}, [weak = weak_from_this(), h = std::move(h)](
                                 std::error_code ec, const redisReply*) mutable {
        const auto self = weak.lock();
        if (!self) return;  // the store and its links are gone
        self->complete_on_strand(std::move(h), ec);
      });
      return;
    }
    const auto id = next_flush++;
    flushes.emplace(id, flush_wait{std::move(h)});
    submit_plain({"PUBLISH", channel, "s " + instance + ":" + std::to_string(id)},
                 [weak = weak_from_this(), id](std::error_code ec, const redisReply* r) {
                   const auto self = weak.lock();
                   if (!self) return;  // the store and its links are gone
                   self->on_flush_published(id, ec, r);
                 });
  }

  /// The reply to flush `id`'s PUBLISH: failed, or half of the barrier (the marker is the other).
  void on_flush_published(std::uint64_t id, std::error_code ec, const redisReply* r) {
    auto it = flushes.find(id);
    if (it == flushes.end()) return;
    if (ec || !r || r->type == REDIS_REPLY_ERROR) {
      auto handler = std::move(it->second.handler);
      flushes.erase(it);
      return done(std::move(handler), ec ? ec : bad_message());
    }
    it->second.replied = true;
    finish_flush(it);
  }

  void on_flush_marker(std::string_view rest) {
    const auto colon = rest.rfind(':');
    if (colon == std::string_view::npos || rest.substr(0, colon) != instance) return;
    const auto id = to_u64(rest.substr(colon + 1));
    if (!id) return;
    auto it = flushes.find(*id);
    if (it == flushes.end()) return;
    it->second.seen = true;
    finish_flush(it);
  }

  void finish_flush(std::map<std::uint64_t, flush_wait>::iterator it) {
    if (!it->second.replied || !it->second.seen) return;
    auto h = std::move(it->second.handler);
    flushes.erase(it);
    complete_on_strand(std::move(h), std::error_code{});
  }

  /// Completes after the watch deliveries already posted to the strand.
  void complete_on_strand(done_handler h, std::error_code ec) {
    boost::asio::post(strand, [self = shared_from_this(), h = std::move(h), ec]() mutable {
      self->done(std::move(h), ec);
    });
  }

  // ---- commands ----

  void submit_plain(std::vector<std::string> args,
                    detail::reply_callback done) {
    redis_command c;
    c.args = std::move(args);
    c.deadline = steady::now() + opts.command_timeout;
    c.done = std::move(done);
    cmd->submit(std::move(c));
  }

  /// `EVALSHA <script> 0 P now now_ms`; the caller appends the operation's own arguments
  /// (`bytes` of them, roughly) with `redis_command::arg`, then `end_call`. No declared keys:
  /// see redis_scripts.hpp.
  redis_command script_call(clock::time_point now, std::size_t bytes) const {
    redis_command c;
    c.script = true;
    c.script_args.reserve(bytes + opts.key_prefix.size() + 128);
    c.arg("0");
    c.arg(opts.key_prefix);
    c.arg(encode_time(now));
    c.arg(to_ms(now));
    c.deadline = steady::now() + opts.command_timeout;
    return c;
  }

  /// Ends a script call with its operation, the script's last argument.
  static void end_call(redis_command& c, detail::redis_script op) {
    c.arg(detail::redis_op_code(op));
  }

  /// The Redis key of `key`'s record, `P d:<key>`, as one argument.
  void arg_record_name(redis_command& c, std::string_view key) const {
    c.arg({opts.key_prefix, "d:", key});
  }

  /// Counts an operation in; false (and nothing counted) when `max_pending` is reached.
  bool admit() {
    if (pending.fetch_add(1, std::memory_order_relaxed) >= opts.max_pending) {
      pending.fetch_sub(1, std::memory_order_relaxed);
      return false;
    }
    return true;
  }

  /// The reply callback of an operation counted by `admit`: the count goes down, then
  /// `f(self, ec, reply)` runs (on the strand) unless the store is gone.
  template <typename F>
  detail::reply_callback on_reply(F f) {
    return [weak = weak_from_this(), f = std::move(f)](std::error_code ec,
                                                        const redisReply* r) mutable {
      const auto self = weak.lock();
      if (!self) return;  // the store and its links are gone
      self->pending.fetch_sub(1, std::memory_order_relaxed);
      f(*self, ec, r);
    };
  }

  /// Sends `c` from the strand.
  void send(redis_command c) {
    boost::asio::post(strand, [self = shared_from_this(), c = std::move(c)]() mutable {
      self->cmd->submit(std::move(c));
    });
  }

  // ---- writes ----

  /// Parses `{status, version, entries, bytes}`, or the write fast path's `{'ok', version, byte
  /// delta}` and `{'conflict', version}`; notes the expiry of a successful write.
  void on_write_reply(std::error_code ec, const redisReply* r, write_handler h,
                      std::optional<clock::time_point> expires) {
    if (ec) return complete(std::move(h), ec, store_version{0});
    if (r->type == REDIS_REPLY_ERROR) return complete(std::move(h), error_of(r), store_version{0});
    const bool sized = r->type == REDIS_REPLY_ARRAY && r->elements >= 2 && r->elements <= 4;
    const auto version = sized ? to_u64(str(r->element[1])) : std::nullopt;
    const auto status = sized ? str(r->element[0]) : std::string_view{};
    if (!version || !counts_of(r, status)) {
      set_error("malformed reply to a write");
      return complete(std::move(h), bad_message(), store_version{0});
    }
    finish_write(std::move(h), status, *version, expires);
  }

  /// Completes a write from the status and version of its reply (counters taken already).
  void finish_write(write_handler h, std::string_view status, store_version version,
                    std::optional<clock::time_point> expires) {
    if (status == "ok") {
      if (expires) note_expiry(*expires);
      return complete(std::move(h), std::error_code{}, version);
    }
    if (status == "conflict") return complete(std::move(h), make_error_code(errc::version_conflict), version);
    if (status == "full") return complete(std::move(h), make_error_code(errc::store_full), store_version{0});
    set_error("malformed reply to a write");
    complete(std::move(h), bad_message(), store_version{0});
  }

  /// Takes the counters from a write reply: absolute (4 elements), a byte delta after an `ok`
  /// (3), or none after a `conflict` (2). False when they are malformed.
  bool counts_of(const redisReply* r, std::string_view status) {
    if (r->elements == 4) {
      const auto n = to_size(r->element[2]);
      const auto b = to_size(r->element[3]);
      if (!n || !b) return false;
      set_counts(*n, *b);
      return true;
    }
    if (r->elements == 3) {
      if (status != "ok" || r->element[2]->type != REDIS_REPLY_INTEGER) return false;
      // Relative to the counters this store last saw (another process's changes show in the
      // next reply that carries the counters themselves): never below zero.
      const long long delta = r->element[2]->integer;
      std::lock_guard lock(mutex);
      const auto drop = static_cast<std::size_t>(delta < 0 ? -delta : 0);
      bytes = delta >= 0 ? bytes + static_cast<std::size_t>(delta) : bytes - std::min(bytes, drop);
      return true;
    }
    return status == "conflict";
  }

  /// The expiry of a write made at `now` with `o`, and Redis' backstop for it in ms (0: none).
  std::pair<std::optional<clock::time_point>, std::int64_t> expiry_of(const put_options& o,
                                                                      clock::time_point now) const {
    if (!o.ttl) return {std::nullopt, 0};
    std::int64_t backstop = 0;
    if (opts.expiry_backstop) {
      const auto ttl_ms = std::chrono::ceil<std::chrono::milliseconds>(*o.ttl).count();
      const auto extra = opts.expiry_backstop->count();
      const auto cap = std::numeric_limits<std::int64_t>::max() / 4;
      backstop = std::min(cap, ttl_ms) + std::min(cap, extra);
    }
    return {saturating_add(now, *o.ttl), backstop};
  }

  /// Appends a write's expiry, expiry ms and backstop arguments.
  static void arg_expiry(redis_command& c, const std::optional<clock::time_point>& expires,
                         std::int64_t backstop) {
    if (expires) {
      c.arg(encode_time(*expires));
      c.arg(to_ms(*expires));
    } else {
      c.arg("-");
      c.arg("0");
    }
    c.arg(decimal(backstop));
  }

  void write(std::string key, std::string value, put_options o, std::optional<store_version> expected,
             write_handler h) {
    if (!admit()) return complete(std::move(h), make_error_code(errc::queue_full), store_version{0});
    const auto now = clk.now();
    const auto [expires, backstop] = expiry_of(o, now);
    auto c = script_call(now, 2 * key.size() + value.size());
    c.arg(key);
    c.arg(value);
    arg_expiry(c, expires, backstop);
    c.arg(max_entries_arg);
    c.arg(max_bytes_arg);
    c.arg(expected ? std::string_view(decimal(*expected)) : std::string_view{});
    arg_record_name(c, key);
    end_call(c, detail::script_write);
    c.done = on_reply([h = std::move(h), expires = expires](impl& self, std::error_code ec,
                                                            const redisReply* r) mutable {
      self.on_write_reply(ec, r, std::move(h), expires);
    });
    send(std::move(c));
  }

  // ---- batches ----

  /// Most entries, and roughly most argument bytes, of one script call of a batch. A larger batch
  /// is split into several calls, sent together (pipelined): each stays far below Redis' limits
  /// on one command (`proto-max-bulk-len`, `client-query-buffer-limit`; a batch of 1 MiB values
  /// could be 1 GiB) and holds Redis' single thread for a bounded time (a few ms).
  static constexpr std::size_t batch_chunk_entries = 256;
  static constexpr std::size_t batch_chunk_bytes = std::size_t{4} << 20;

  /// A batch under way: its results fill in as the replies of its calls arrive (on the strand).
  struct batch_state {
    batch_state(batch_handler h, std::size_t n) : handler(std::move(h)), results(n), expires(n) {}
    batch_handler handler;
    std::vector<batch_result> results;
    std::vector<std::optional<clock::time_point>> expires;  ///< Per entry, for the sweep timer.
    std::size_t calls_left = 0;
  };

  void write_batch(std::vector<batch_write> writes, batch_handler h) {
    if (!admit()) {
      // Refused for lack of room, each entry alone (the batch's own error is only for bad input).
      std::vector<batch_result> results(writes.size(),
                                        batch_result{make_error_code(errc::queue_full), 0});
      return complete(std::move(h), std::error_code{}, std::move(results));
    }
    const auto now = clk.now();
    auto st = std::make_shared<batch_state>(std::move(h), writes.size());
    std::vector<redis_command> calls;
    for (std::size_t first = 0; first < writes.size();) {
      std::size_t end = first;
      std::size_t bytes = 0;
      while (end < writes.size() && end - first < batch_chunk_entries) {
        const auto b = writes[end].key.size() + writes[end].value.size() + 128;
        if (end > first && bytes + b > batch_chunk_bytes) break;
        bytes += b;
        ++end;
      }
      auto c = script_call(now, bytes + 64);
      c.arg(max_entries_arg);
      c.arg(max_bytes_arg);
      for (std::size_t i = first; i < end; ++i) {
        const auto& w = writes[i];
        const auto [expires, backstop] = expiry_of(w.opts, now);
        st->expires[i] = expires;
        c.arg(w.key);
        c.arg(w.value);
        arg_expiry(c, expires, backstop);
        c.arg(w.expected ? std::string_view(decimal(*w.expected)) : std::string_view{});
      }
      end_call(c, detail::script_batch);
      c.done = [weak = weak_from_this(), st, first, count = end - first](std::error_code ec,
                                                                          const redisReply* r) {
        const auto self = weak.lock();
        if (!self) return;  // the store and its links are gone
        self->on_batch_reply(*st, first, count, ec, r);
      };
      calls.push_back(std::move(c));
      first = end;
    }
    st->calls_left = calls.size();
    boost::asio::post(strand, [self = shared_from_this(), calls = std::move(calls)]() mutable {
      self->cmd->submit(std::move(calls));
    });
  }

  /// The reply to the call of entries [first, first + count): per entry {status, version} or
  /// {'err', text}, then the counters. A call that failed as a whole (connection lost, timed
  /// out, an error reply) fails each of its entries with that error; the other calls' entries
  /// keep their own results.
  void on_batch_reply(batch_state& st, std::size_t first, std::size_t count, std::error_code ec,
                      const redisReply* r) {
    const auto fail_all = [&](std::error_code e) {
      for (std::size_t i = 0; i < count; ++i) st.results[first + i] = batch_result{e, 0};
    };
    if (ec) {
      fail_all(ec);
    } else if (r->type == REDIS_REPLY_ERROR) {
      fail_all(error_of(r));
    } else if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 * count + 2) {
      set_error("malformed reply to a batch");
      fail_all(bad_message());
    } else {
      read_batch_reply(st, first, count, r);
    }
    if (--st.calls_left > 0) return;
    pending.fetch_sub(1, std::memory_order_relaxed);
    complete(std::move(st.handler), std::error_code{}, std::move(st.results));
  }

  /// A well-formed batch reply: each entry's result, then the counters.
  void read_batch_reply(batch_state& st, std::size_t first, std::size_t count, const redisReply* r) {
    for (std::size_t i = 0; i < count; ++i) {
      st.results[first + i] = batch_entry(st, first + i, str(r->element[2 * i]), r->element[2 * i + 1]);
    }
    const auto n = to_size(r->element[2 * count]);
    const auto b = to_size(r->element[2 * count + 1]);
    if (n && b) set_counts(*n, *b);
  }

  /// Entry `at`'s result from its status ("ok", "conflict", "full" or "err") and value.
  batch_result batch_entry(batch_state& st, std::size_t at, std::string_view status, const redisReply* value) {
    if (status == "err") return batch_result{error_of(value), 0};
    const auto version = is_string(value) ? to_u64(str(value)) : std::nullopt;
    if (!version) return malformed_batch_entry();
    if (status == "ok") {
      if (const auto& due = st.expires[at]) note_expiry(*due);
      return batch_result{{}, *version};
    }
    if (status == "conflict") return batch_result{make_error_code(errc::version_conflict), *version};
    if (status == "full") return batch_result{make_error_code(errc::store_full), 0};
    return malformed_batch_entry();
  }

  batch_result malformed_batch_entry() {
    set_error("malformed reply to a batch");
    return batch_result{bad_message(), 0};
  }

  void erase(std::string key, std::optional<store_version> expected, write_handler h) {
    if (!admit()) return complete(std::move(h), make_error_code(errc::queue_full), store_version{0});
    auto c = script_call(clk.now(), key.size());
    c.arg(key);
    c.arg(expected ? std::string_view(decimal(*expected)) : std::string_view{});
    end_call(c, detail::script_erase);
    c.done = on_reply([h = std::move(h)](impl& self, std::error_code ec,
                                         const redisReply* r) mutable {
      self.on_write_reply(ec, r, std::move(h), std::nullopt);
    });
    send(std::move(c));
  }

  // ---- reads ----

  /// A stored value from `version`, `expiry`, `value` replies; none when malformed.
  static std::optional<stored_value> value_of(const redisReply* v, const redisReply* e,
                                              const redisReply* d) {
    const auto version = to_u64(str(v));
    if (!version || !is_string(e) || !d || d->type != REDIS_REPLY_STRING) return std::nullopt;
    stored_value out{std::string(str(d)), *version, std::nullopt};
    if (str(e) != "-") {
      out.expires_at = decode_time(str(e));
      if (!out.expires_at) return std::nullopt;
    }
    return out;
  }

  void get(std::string key, get_handler h) {
    if (!admit()) return complete(std::move(h), make_error_code(errc::queue_full), std::optional<stored_value>{});
    auto c = script_call(clk.now(), 2 * key.size());
    c.arg(key);
    arg_record_name(c, key);
    end_call(c, detail::script_get);
    c.resend_if_lost = true;
    c.done = on_reply([h = std::move(h)](impl& self, std::error_code ec,
                                         const redisReply* r) mutable {
      self.on_get_reply(ec, r, std::move(h));
    });
    send(std::move(c));
  }

  void on_get_reply(std::error_code ec, const redisReply* r, get_handler h) {
    std::optional<stored_value> none;
    if (ec) return complete(std::move(h), ec, none);
    if (r->type == REDIS_REPLY_ERROR) return complete(std::move(h), error_of(r), none);
    if (is_array(r, 3) && str(r->element[0]) == "none") {
      const auto n = to_size(r->element[1]);
      const auto b = to_size(r->element[2]);
      if (n && b) set_counts(*n, *b);
      return complete(std::move(h), std::error_code{}, none);
    }
    std::optional<stored_value> v;
    if (is_array(r, 4) && str(r->element[0]) == "ok") {
      v = value_of(r->element[1], r->element[2], r->element[3]);
    }
    if (!v) {
      set_error("malformed reply to a get");
      return complete(std::move(h), bad_message(), none);
    }
    complete(std::move(h), std::error_code{}, std::move(v));
  }

  void list(std::string prefix, list_options o, list_handler h) {
    if (!admit()) return complete(std::move(h), make_error_code(errc::queue_full), std::vector<entry>{});
    std::string min = !o.start_after.empty() && o.start_after >= prefix ? "(" + o.start_after
                      : prefix.empty()                                  ? "-"
                                                                        : "[" + prefix;
    auto c = script_call(clk.now(), 2 * min.size());
    c.arg(min);
    c.arg(lex_max(prefix));
    c.arg(decimal(o.limit));
    end_call(c, detail::script_list);
    c.resend_if_lost = true;
    c.done = on_reply([h = std::move(h)](impl& self, std::error_code ec,
                                         const redisReply* r) mutable {
      self.on_list_reply(ec, r, std::move(h));
    });
    send(std::move(c));
  }

  void on_list_reply(std::error_code ec, const redisReply* r, list_handler h) {
    std::vector<entry> out;
    if (ec) return complete(std::move(h), ec, std::move(out));
    if (r->type == REDIS_REPLY_ERROR) return complete(std::move(h), error_of(r), std::move(out));
    if (r->type != REDIS_REPLY_ARRAY || r->elements % 4 != 0) {
      set_error("malformed reply to a list");
      return complete(std::move(h), bad_message(), std::move(out));
    }
    out.reserve(r->elements / 4);
    for (std::size_t i = 0; i < r->elements; i += 4) {
      auto v = value_of(r->element[i + 1], r->element[i + 2], r->element[i + 3]);
      if (!v || r->element[i]->type != REDIS_REPLY_STRING) {
        set_error("malformed reply to a list");
        return complete(std::move(h), bad_message(), std::vector<entry>{});
      }
      out.emplace_back(std::string(str(r->element[i])), std::move(*v));
    }
    complete(std::move(h), std::error_code{}, std::move(out));
  }

  // ---- expiry: a timer on the store's clock, then a sweep script ----

  /// Arms the timer for `due` unless it is armed earlier already (on the strand).
  void note_expiry(clock::time_point due) {
    std::lock_guard lock(mutex);
    if (closed || (timer && timer_due <= due)) return;
    if (timer) clk.cancel(*timer);
    const auto generation = ++timer_generation;
    timer_due = due;
    timer = clk.schedule(due, [weak = weak_from_this(), generation] {
      auto self = weak.lock();
      if (!self) return;
      boost::asio::post(self->strand, [self, generation] {
        {
          std::lock_guard guard(self->mutex);
          if (self->closed) return;
          if (generation == self->timer_generation) self->timer.reset();
        }
        self->sweep();
      });
    });
  }

  /// Sweeps expired entries (reporting them) and re-arms for the next expiry (on the strand).
  void sweep() {
    {
      std::lock_guard lock(mutex);
      if (closed) return;
    }
    const auto now = clk.now();
    auto c = script_call(now, 0);
    c.arg("1000");
    end_call(c, detail::script_sweep);
    c.done = [weak = weak_from_this(), now](std::error_code ec, const redisReply* r) {
      const auto self = weak.lock();
      if (!self) return;  // the store and its links are gone
      self->on_sweep_reply(now, ec, r);
    };
    cmd->submit(std::move(c));
  }

  /// The reply to a sweep started at `now`: {entries, bytes, next expiry or "-"}.
  void on_sweep_reply(clock::time_point now, std::error_code ec, const redisReply* r) {
    if (ec) return;  // the next write, connect or timer tries again
    if (r->type == REDIS_REPLY_ERROR) return (void)error_of(r);
    if (!is_array(r, 3)) return set_error("malformed reply to a sweep");
    const auto n = to_size(r->element[0]);
    const auto b = to_size(r->element[1]);
    if (!n || !b || !is_string(r->element[2])) return set_error("malformed reply to a sweep");
    set_counts(*n, *b);
    arm_after_sweep(now, str(r->element[2]));
  }

  /// After a sweep: sweeps again when the next expiry is due already, else arms the timer for it.
  void arm_after_sweep(clock::time_point now, std::string_view next_expiry) {
    if (next_expiry == "-") return;  // nothing left that expires
    const auto next = decode_time(next_expiry);
    if (!next) return set_error("malformed expiry in Redis");
    if (*next <= now) return sweep();  // more than one batch was due
    note_expiry(*next);
  }

  // ---- shutdown ----

  /// Ends every watch and the expiry timer (any thread); again after a watch started meanwhile.
  void end_watches_and_timer() {
    std::vector<std::shared_ptr<watch_record>> ended;
    {
      std::lock_guard lock(mutex);
      closed = true;
      if (timer) clk.cancel(*timer);
      timer.reset();
      ended.swap(watches);
    }
    for (auto& rec : ended) end_watch(*hub, *rec);
  }

  /// Closes both links and fails what waits on them (on the strand; idempotent).
  void close_links() {
    if (cmd) cmd->close();
    if (sub) sub->close();
    auto waiters = std::move(connect_waiters);
    connect_waiters.clear();
    for (auto& w : waiters) done(std::move(w), make_error_code(boost::asio::error::operation_aborted));
    auto waits = std::move(flushes);
    flushes.clear();
    for (auto& [id, w] : waits) {
      done(std::move(w.handler), make_error_code(boost::asio::error::operation_aborted));
    }
    auto waiting = std::move(flushes_after_subscribe);
    flushes_after_subscribe.clear();
    for (auto& h : waiting) done(std::move(h), make_error_code(boost::asio::error::operation_aborted));
  }
};

redis_state_store::redis_state_store(executor_type ex, xsn::clock& clk, redis_store_options opts)
    : state_store(ex), impl_(std::make_shared<impl>(std::move(ex), clk, std::move(opts))) {
  const auto& o = impl_->opts;
  if (o.key_prefix.empty() || o.max_pending == 0 || o.max_reply_bytes < redis_store_options::min_reply_bytes) {
    throw std::system_error(make_error_code(errc::invalid_argument),
                            "redis_state_store: empty key_prefix, max_pending 0 or max_reply_bytes under 4096");
  }
  boost::asio::post(impl_->strand, [self = impl_] { self->start(); });
}

std::shared_ptr<redis_state_store> redis_state_store::create(executor_type ex, xsn::clock& clk,
                                                             redis_store_options opts) {
  return std::make_shared<redis_state_store>(std::move(ex), clk, std::move(opts));
}

redis_state_store::~redis_state_store() {
  impl_->end_watches_and_timer();
  boost::asio::post(impl_->strand, [self = impl_] { self->close_links(); });
}

void redis_state_store::do_close(close_handler handler) {
  impl_->end_watches_and_timer();
  // On the strand after every operation initiated before: those are failed by `close_links`,
  // and their completions are posted before this one.
  boost::asio::post(impl_->strand, [self = impl_, h = std::move(handler)]() mutable {
    self->close_links();
    self->complete(std::move(h), std::error_code{});
  });
}

std::string redis_state_store::do_error_message(std::error_code ec) const {
  const auto& host = impl_->opts.host;
  auto where = "redis " + (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" +
               std::to_string(impl_->opts.port) + ": ";
  // The connection's reason (refused, timed out, AUTH failed, ...) or Redis' own error text
  // explains these; the others (conflict, bad argument, closed) say all there is.
  const bool from_redis = ec == errc::store_unavailable || ec == errc::store_full ||
                          ec == std::errc::timed_out || ec == std::errc::bad_message;
  auto why = from_redis ? last_error() : std::string{};
  return where + (why.empty() ? ec.message() : why);
}

const redis_store_options& redis_state_store::options() const noexcept { return impl_->opts; }

std::size_t redis_state_store::pending() const noexcept {
  return impl_->pending.load(std::memory_order_relaxed);
}

std::string redis_state_store::last_error() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->last_error;
}

void redis_state_store::do_connect(done_handler handler) {
  if (closed()) return impl_->complete(std::move(handler), make_error_code(errc::store_closed));
  if (!impl_->admit()) return impl_->complete(std::move(handler), make_error_code(errc::queue_full));
  boost::asio::post(impl_->strand, [self = impl_, h = std::move(handler)]() mutable {
    if (self->cmd->ready()) return self->done(std::move(h), std::error_code{});
    self->connect_waiters.push_back(std::move(h));
  });
}

void redis_state_store::do_flush(done_handler handler) {
  if (closed()) return impl_->complete(std::move(handler), make_error_code(errc::store_closed));
  if (!impl_->admit()) return impl_->complete(std::move(handler), make_error_code(errc::queue_full));
  boost::asio::post(impl_->strand,
                    [self = impl_, h = std::move(handler)]() mutable { self->flush(std::move(h)); });
}

void redis_state_store::do_get(std::string key, get_handler handler) {
  impl_->get(std::move(key), std::move(handler));
}

void redis_state_store::do_put(std::string key, std::string value, put_options opts,
                               write_handler handler) {
  impl_->write(std::move(key), std::move(value), opts, std::nullopt, std::move(handler));
}

void redis_state_store::do_compare_and_set(std::string key, store_version expected,
                                           std::string value, put_options opts,
                                           write_handler handler) {
  impl_->write(std::move(key), std::move(value), opts, expected, std::move(handler));
}

void redis_state_store::do_write_batch(std::vector<batch_write> writes, batch_handler handler) {
  impl_->write_batch(std::move(writes), std::move(handler));
}

void redis_state_store::do_erase(std::string key, std::optional<store_version> expected,
                                 write_handler handler) {
  impl_->erase(std::move(key), expected, std::move(handler));
}

void redis_state_store::do_list(std::string prefix, list_options opts, list_handler handler) {
  impl_->list(std::move(prefix), std::move(opts), std::move(handler));
}

watch_handle redis_state_store::do_watch(std::string prefix, watch_callback fn) {
  auto rec = std::make_shared<watch_record>(watch_record{std::move(prefix), std::move(fn), true});
  bool first = false;
  {
    std::lock_guard lock(impl_->mutex);
    impl_->watches.push_back(rec);
    first = !impl_->subscribing;
    impl_->subscribing = true;
  }
  // Posted before any write initiated after this returns, so those writes wait for it.
  if (first) boost::asio::post(impl_->strand, [self = impl_] { self->start_subscriber(); });
  return watch_handle(std::make_unique<xsn::detail::store_watch<impl>>(impl_, impl_->hub, std::move(rec)));
}

store_health redis_state_store::do_health() const {
  std::lock_guard lock(impl_->mutex);
  return {impl_->reachable, impl_->entries, impl_->bytes, impl_->opts.max_entries,
          impl_->opts.max_bytes};
}

}  // namespace xsn::inline v0::advanced
