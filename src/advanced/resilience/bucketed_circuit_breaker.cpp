// Part of xsn_advanced: the sliding-window circuit breaker and its sharing through a state store.
#include <xsn/advanced/bucketed_circuit_breaker.hpp>

#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <cmath>
#include <cstdio>
#include <limits>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <utility>

namespace xsn::inline v0::advanced {

namespace {

constexpr std::uint32_t max_count_window = std::uint32_t{1} << 20;
constexpr std::uint32_t max_time_buckets = 1024;
constexpr std::uint32_t max_attempts = 64;  // backoff exponent cap (the duration is capped anyway)
constexpr int write_retries = 3;            // compare-and-set conflicts before giving up

std::shared_ptr<spdlog::logger> component_logger() {
  if (auto l = spdlog::get("xsn.breaker")) return l;
  return std::make_shared<spdlog::logger>("xsn.breaker", std::make_shared<spdlog::sinks::null_sink_mt>());
}

[[noreturn]] void invalid(const char* what) {
  throw std::invalid_argument(std::string("bucketed_circuit_breaker: ") + what);
}

void check_count_window_size(const bucketed_breaker_options& o) {
  if (o.window_size > max_count_window) invalid("window_size of a count-based window must be at most 2^20");
}

// The buckets of a time-based window: how many, and how wide.
void check_time_buckets(const bucketed_breaker_options& o) {
  if (o.window_size > max_time_buckets) invalid("window_size of a time-based window must be at most 1024");
  if (o.bucket_duration <= clock::duration::zero()) invalid("bucket_duration must be positive");
}

// The window: its kind, size and bucket width, and the calls it needs before it judges.
void check_window(const bucketed_breaker_options& o) {
  const bool count = o.window == window_kind::count_based;
  if (o.window != window_kind::count_based && o.window != window_kind::time_based) invalid("unknown window kind");
  if (o.window_size == 0) invalid("window_size must be at least 1");
  if (count) check_count_window_size(o);
  else check_time_buckets(o);
  if (o.minimum_calls == 0) invalid("minimum_calls must be at least 1");
  if (count && o.minimum_calls > o.window_size) {
    invalid("minimum_calls must not exceed window_size of a count-based window");
  }
}

// The thresholds that open the breaker. Written so that NaN fails too.
void check_thresholds(const bucketed_breaker_options& o) {
  if (!(o.failure_rate_threshold > 0.0 && o.failure_rate_threshold <= 100.0)) {
    invalid("failure_rate_threshold must be in (0, 100]");
  }
  if (!(o.slow_call_rate_threshold > 0.0 && o.slow_call_rate_threshold <= 100.0)) {
    invalid("slow_call_rate_threshold must be in (0, 100]");
  }
  if (o.slow_call_duration <= clock::duration::zero()) invalid("slow_call_duration must be positive");
}

// Half-open trials and how long the breaker stays open.
void check_recovery(const bucketed_breaker_options& o) {
  if (o.half_open_permitted_calls == 0) invalid("half_open_permitted_calls must be at least 1");
  if (o.half_open_successes_to_close > o.half_open_permitted_calls) {
    invalid("half_open_successes_to_close must not exceed half_open_permitted_calls");
  }
  if (o.open_duration < clock::duration::zero()) invalid("open_duration must not be negative");
  if (!(o.backoff_multiplier >= 1.0) || !std::isfinite(o.backoff_multiplier)) {
    invalid("backoff_multiplier must be finite and at least 1");
  }
  if (o.max_open_duration < o.open_duration) invalid("max_open_duration must be at least open_duration");
  if (!(o.jitter >= 0.0 && o.jitter < 1.0)) invalid("jitter must be in [0, 1)");
}

// Sharing through a store: a key exactly when there is a store.
void check_sharing(const bucketed_breaker_options& o) {
  if (o.store) {
    if (o.store_key.empty() || o.store_key.size() > state_store::max_key_size) {
      invalid("store_key must be 1 to state_store::max_key_size bytes");
    }
  } else if (!o.store_key.empty()) {
    invalid("store_key given without a store");
  }
}

// Throws std::invalid_argument naming the first option out of range, in declaration order.
bucketed_breaker_options checked(bucketed_breaker_options o) {
  check_window(o);
  check_thresholds(o);
  check_recovery(o);
  check_sharing(o);
  return o;
}

/// `a mod d` for a 32-bit `a` by multiplication (Lemire's "faster remainder"): the ring index of
/// every count-based call without a division.
__extension__ using uint128 = unsigned __int128;
struct fast_mod {
  explicit fast_mod(std::uint32_t d) : d_(d), m_(~std::uint64_t{0} / d + 1) {}
  std::uint32_t operator()(std::uint32_t a) const noexcept {
    const std::uint64_t low = m_ * a;
    return static_cast<std::uint32_t>((static_cast<uint128>(low) * d_) >> 64);
  }
  std::uint64_t d_, m_;
};

bool over(double part, double calls, double percent) noexcept { return part * 100.0 >= percent * calls; }

// The breaker that is delivering its own events from a store completion (see `deliver`).
thread_local const void* internal_release = nullptr;

}  // namespace

// ---- the window ----

struct bucketed_circuit_breaker::window_state {
  struct bucket {
    std::atomic<std::int64_t> epoch{-1};  // bucket number it holds; -1: empty
    std::atomic<std::uint64_t> calls{0};
    std::atomic<std::uint64_t> failures{0};
    std::atomic<std::uint64_t> slow{0};
  };
  static constexpr std::uint8_t failed_bit = 1;
  static constexpr std::uint8_t slow_bit = 2;

  window_state(const bucketed_breaker_options& o)
      : count_based(o.window == window_kind::count_based),
        size(o.window_size),
        ring(o.window_size),
        width(o.bucket_duration.count()) {
    if (count_based) {
      slots = std::make_unique<std::atomic<std::uint8_t>[]>(size);
    } else {
      buckets = std::make_unique<bucket[]>(size);
    }
  }

  const bool count_based;
  const std::uint32_t size;
  const fast_mod ring;
  const std::int64_t width;

  // Count-based: calls since the last reset, and one outcome per slot.
  alignas(64) std::atomic<std::uint64_t> seq{0};
  std::unique_ptr<std::atomic<std::uint8_t>[]> slots;
  // Failed and slow slots, adjusted by each slot exchange; may be off by the outcomes in flight
  // (even transiently negative), so a decision to open is confirmed by a recount.
  alignas(64) std::atomic<std::int64_t> failed_slots{0};
  std::atomic<std::int64_t> slow_slots{0};

  // Time-based.
  std::unique_ptr<bucket[]> buckets;
  std::atomic<std::int64_t> bad{0};          // failures + slow calls in live buckets
  std::atomic<bool> minimum_reached{false};  // since the last rotation
  std::mutex rotate_mutex;

  std::int64_t epoch_of(clock::time_point t) const noexcept {
    const auto ns = t.time_since_epoch().count();
    return ns >= 0 ? ns / width : -((-ns + width - 1) / width);
  }
  bucket& bucket_of(std::int64_t e) const noexcept {
    const auto n = static_cast<std::int64_t>(size);
    return buckets[static_cast<std::size_t>(((e % n) + n) % n)];
  }

  /// Count-based: records one outcome; returns the call's index since the reset.
  std::uint64_t record_count(std::uint8_t code) noexcept {
    const auto i = seq.fetch_add(1, std::memory_order_relaxed);
    const auto old = slots[ring(static_cast<std::uint32_t>(i))].exchange(code, std::memory_order_relaxed);
    if (old != code) [[unlikely]] {
      const int df = (code & failed_bit) - (old & failed_bit);
      const int ds = ((code & slow_bit) - (old & slow_bit)) / slow_bit;
      if (df != 0) failed_slots.fetch_add(df, std::memory_order_relaxed);
      if (ds != 0) slow_slots.fetch_add(ds, std::memory_order_relaxed);
    }
    return i;
  }

  /// Time-based: records one outcome at `now`.
  void record_time(clock::time_point now, bool failed, bool slow) {
    const auto e = epoch_of(now);
    auto& b = bucket_of(e);
    if (b.epoch.load(std::memory_order_acquire) < e) [[unlikely]]
      rotate(e);
    b.calls.fetch_add(1, std::memory_order_relaxed);
    if (failed) b.failures.fetch_add(1, std::memory_order_relaxed);
    if (slow) b.slow.fetch_add(1, std::memory_order_relaxed);
    if (failed || slow) bad.fetch_add(int{failed} + int{slow}, std::memory_order_relaxed);
  }

  /// Empties the buckets that fell out of the window ending at bucket `e`, and makes `e`'s current.
  void rotate(std::int64_t e) {
    std::lock_guard lk(rotate_mutex);
    const auto n = static_cast<std::int64_t>(size);
    for (std::uint32_t i = 0; i < size; ++i) {
      auto& b = buckets[i];
      const auto tag = b.epoch.load(std::memory_order_relaxed);
      if (tag == -1 || tag > e - n) continue;  // empty, or still in the window
      evict(b);
      b.epoch.store(-1, std::memory_order_relaxed);
    }
    auto& cur = bucket_of(e);
    if (cur.epoch.load(std::memory_order_relaxed) < e) {
      evict(cur);
      cur.epoch.store(e, std::memory_order_release);
    }
    minimum_reached.store(false, std::memory_order_relaxed);
  }

  void evict(bucket& b) noexcept {
    const auto f = b.failures.exchange(0, std::memory_order_relaxed);
    const auto s = b.slow.exchange(0, std::memory_order_relaxed);
    b.calls.store(0, std::memory_order_relaxed);
    if (f + s != 0) bad.fetch_sub(static_cast<std::int64_t>(f + s), std::memory_order_relaxed);
  }

  /// The window's content; time-based: the window ending at `now`.
  bucketed_breaker_window snapshot(clock::time_point now) const {
    bucketed_breaker_window w;
    if (count_based) {
      w.calls = std::min<std::uint64_t>(seq.load(std::memory_order_relaxed), size);
      w.failures = static_cast<std::uint64_t>(std::max<std::int64_t>(0, failed_slots.load(std::memory_order_relaxed)));
      w.slow_calls = static_cast<std::uint64_t>(std::max<std::int64_t>(0, slow_slots.load(std::memory_order_relaxed)));
      return w;
    }
    const auto e = epoch_of(now);
    const auto n = static_cast<std::int64_t>(size);
    for (std::uint32_t i = 0; i < size; ++i) {
      const auto& b = buckets[i];
      const auto tag = b.epoch.load(std::memory_order_acquire);
      if (tag <= e - n) continue;  // empty (-1) or out of the window
      w.calls += b.calls.load(std::memory_order_relaxed);
      w.failures += b.failures.load(std::memory_order_relaxed);
      w.slow_calls += b.slow.load(std::memory_order_relaxed);
    }
    return w;
  }

  /// Count-based: the failed and slow slots counted one by one.
  bucketed_breaker_window recount() const {
    bucketed_breaker_window w;
    w.calls = std::min<std::uint64_t>(seq.load(std::memory_order_relaxed), size);
    for (std::uint32_t i = 0; i < size; ++i) {
      const auto code = slots[i].load(std::memory_order_relaxed);
      w.failures += (code & failed_bit) != 0;
      w.slow_calls += (code & slow_bit) != 0;
    }
    return w;
  }

  void reset() {
    if (count_based) {
      for (std::uint32_t i = 0; i < size; ++i) slots[i].store(0, std::memory_order_relaxed);
      failed_slots.store(0, std::memory_order_relaxed);
      slow_slots.store(0, std::memory_order_relaxed);
      seq.store(0, std::memory_order_relaxed);
      return;
    }
    std::lock_guard lk(rotate_mutex);
    for (std::uint32_t i = 0; i < size; ++i) {
      evict(buckets[i]);
      buckets[i].epoch.store(-1, std::memory_order_relaxed);
    }
    bad.store(0, std::memory_order_relaxed);
    minimum_reached.store(false, std::memory_order_relaxed);
  }
};

// ---- the shared record ----

std::string bucketed_circuit_breaker::record::to_json() const {
  char writer_hex[17];
  std::snprintf(writer_hex, sizeof writer_hex, "%016llx", static_cast<unsigned long long>(writer));
  boost::json::object o;
  o["xsn"] = "bucketed_circuit_breaker";
  o["v"] = 1;
  o["state"] = state == breaker_state::open ? "open" : "closed";
  o["attempt"] = attempt;
  o["open_for_ns"] = open_for.count();
  o["at_ns"] = at.time_since_epoch().count();
  o["writer"] = writer_hex;
  return boost::json::serialize(o);
}

namespace {

/// Field `name` of a stored record when it is a non-negative integer, else nullptr.
const boost::json::value* stored_count(const boost::json::object& o, const char* name) {
  const auto* v = o.if_contains(name);
  return v != nullptr && v->is_int64() && v->as_int64() >= 0 ? v : nullptr;
}

/// The state a stored record names: "open" or "closed".
std::optional<breaker_state> stored_state(std::string_view name) {
  if (name == "open") return breaker_state::open;
  if (name == "closed") return breaker_state::closed;
  return std::nullopt;
}

/// True when `v` is a stored record's writer: a string of 16 characters (hexadecimal).
bool is_writer(const boost::json::value* v) { return v != nullptr && v->is_string() && v->as_string().size() == 16; }

/// The object of a stored record of version 1; nullptr (with the error) when it is not one.
const boost::json::object* record_object(const boost::json::value& v, std::string& error) {
  const auto* o = v.if_object();
  if (o == nullptr) {
    error = "not a JSON object";
    return nullptr;
  }
  const auto* version = o->if_contains("v");
  if (version == nullptr || !version->is_int64() || version->as_int64() != 1) {
    error = "missing or unsupported \"v\"";
    return nullptr;
  }
  return o;
}

/// The "state" of a stored record; none (with the error) when missing or unknown.
std::optional<breaker_state> state_field(const boost::json::object& o, std::string& error) {
  const auto* state = o.if_contains("state");
  if (state == nullptr || !state->is_string()) {
    error = "missing \"state\"";
    return std::nullopt;
  }
  const auto named = stored_state(state->as_string());
  if (!named) error = "unknown \"state\"";
  return named;
}

}  // namespace

std::optional<bucketed_circuit_breaker::record> bucketed_circuit_breaker::record::parse(const std::string& text,
                                                                                        std::string& error) {
  boost::system::error_code ec;
  const auto v = boost::json::parse(text, ec);
  if (ec) {
    error = "not JSON: " + ec.message();
    return std::nullopt;
  }
  const auto* o = record_object(v, error);
  if (o == nullptr) return std::nullopt;
  record r;
  const auto named = state_field(*o, error);
  if (!named) return std::nullopt;
  r.state = *named;
  const auto* attempt = stored_count(*o, "attempt");
  if (attempt == nullptr) {
    error = "missing or negative \"attempt\"";
    return std::nullopt;
  }
  r.attempt = static_cast<std::uint32_t>(std::min<std::int64_t>(attempt->as_int64(), max_attempts));
  const auto* open_for = stored_count(*o, "open_for_ns");
  if (open_for == nullptr) {
    error = "missing or negative \"open_for_ns\"";
    return std::nullopt;
  }
  r.open_for = clock::duration(open_for->as_int64());
  if (const auto* at = o->if_contains("at_ns"); at != nullptr && at->is_int64()) {
    r.at = clock::time_point(clock::duration(at->as_int64()));
  }
  const auto* writer = o->if_contains("writer");
  if (!is_writer(writer)) {
    error = "missing \"writer\"";
    return std::nullopt;
  }
  r.writer = std::strtoull(std::string(writer->as_string()).c_str(), nullptr, 16);
  return r;
}

// ---- sharing through the store ----

struct bucketed_circuit_breaker::shared_state : std::enable_shared_from_this<shared_state> {
  shared_state(std::shared_ptr<state_store> s, std::string k, bucketed_circuit_breaker* b)
      : store(std::move(s)), key(std::move(k)), owner(b), log(component_logger()) {
    std::random_device rd;
    writer = (std::uint64_t{rd()} << 32) ^ rd();
  }

  const std::shared_ptr<state_store> store;
  const std::string key;
  std::uint64_t writer = 0;

  std::mutex life;                  // held while a completion uses `owner`
  bucketed_circuit_breaker* owner;  // guarded by life; null once the breaker is gone

  mutable std::mutex mutex;  // guards everything below
  watch_handle watch;
  store_version known = 0;        // latest version of the key seen or written
  bool in_flight = false;         // a write (or its conflict resolution) is in progress
  std::optional<record> pending;  // the latest transition waiting for the write in flight
  bool reread = false;            // a record arrived while writing: read the key again after
  bucketed_breaker_sharing stats = enabled_stats();

  static bucketed_breaker_sharing enabled_stats() {
    bucketed_breaker_sharing s;
    s.enabled = true;
    return s;
  }
  std::shared_ptr<spdlog::logger> log;

  void start() {
    std::weak_ptr<shared_state> weak = shared_from_this();
    auto w = store->watch(key, [weak](const watch_event& ev) {
      if (auto self = weak.lock()) self->on_watch(ev);
    });
    {
      std::lock_guard lk(mutex);
      watch = std::move(w);
    }
    read();
  }

  void stop() {
    watch_handle w;
    {
      std::lock_guard lk(mutex);
      w = std::move(watch);
    }
    w.reset();  // waits for a running watch callback (outside our mutex: it takes it)
    std::lock_guard lk(life);
    owner = nullptr;
  }

  void error(const std::string& what, bool malformed) {
    {
      std::lock_guard lk(mutex);
      (malformed ? stats.malformed : stats.store_errors)++;
      stats.last_error = what;
    }
    log->error("bucketed_circuit_breaker '{}': {}", key, what);
  }

  // -- reading other breakers' transitions --

  void on_watch(const watch_event& ev) {
    if (ev.kind != watch_kind::put) return;  // an open record expiring: each breaker has its deadline
    {
      std::lock_guard lk(mutex);
      if (ev.version <= known) return;  // ours, or seen already
    }
    read();
  }

  void read() {
    store->async_get(key, [weak = weak_from_this()](std::error_code ec, std::optional<stored_value> v) {
      if (auto self = weak.lock()) self->on_read(ec, std::move(v));
    });
  }

  void on_read(std::error_code ec, std::optional<stored_value> v) {
    if (ec) return error("reading the shared state failed: " + ec.message(), false);
    if (!v) return;
    {
      std::lock_guard lk(mutex);
      if (v->version <= known) return;
      if (in_flight) {
        // Our own write is being resolved against the same key: read again once it is done
        // (an older record read now must not undo the transition we are writing).
        reread = true;
        return;
      }
      known = v->version;
    }
    std::string why;
    const auto r = record::parse(v->value, why);
    if (!r) return error("ignored a malformed shared state (version " + std::to_string(v->version) + "): " + why, true);
    if (r->writer == writer) return;  // our own write, seen before its completion
    apply(*r);
  }

  void apply(const record& r) {
    std::lock_guard lk(life);
    if (owner == nullptr) return;
    owner->apply_remote(r);
    std::lock_guard slk(mutex);
    ++stats.applied;
  }

  // -- writing our transitions --

  void publish(record r) {
    store_version expected = 0;
    {
      std::lock_guard lk(mutex);
      if (in_flight) {
        pending = std::move(r);  // coalesce: only the latest transition matters
        return;
      }
      in_flight = true;
      expected = known;
    }
    write(std::move(r), expected, write_retries);
  }

  void write(record r, store_version expected, int retries) {
    put_options po;
    if (r.state == breaker_state::open && r.open_for > clock::duration::zero()) po.ttl = r.open_for;
    auto text = r.to_json();
    store->async_compare_and_set(key, expected, std::move(text), po,
                                 [weak = weak_from_this(), r, retries](std::error_code ec, store_version v) {
                                   if (auto self = weak.lock()) self->on_written(ec, v, r, retries);
                                 });
  }

  void on_written(std::error_code ec, store_version v, const record& r, int retries) {
    if (!ec) {
      {
        std::lock_guard lk(mutex);
        known = std::max(known, v);
        ++stats.published;
      }
      return next();
    }
    if (ec == errc::version_conflict) {
      if (retries == 0) {
        error("gave up writing a transition after repeated conflicts", false);
        return next();
      }
      // Someone else wrote since we last looked: read it and resolve.
      store->async_get(key,
                       [weak = weak_from_this(), r, retries](std::error_code gec, std::optional<stored_value> cur) {
                         if (auto self = weak.lock()) self->resolve(gec, std::move(cur), r, retries);
                       });
      return;
    }
    error("writing the shared state failed: " + ec.message(), false);
    next();
  }

  /// A conflicting record `cur` against ours, `r`: an opening wins over a closing.
  void resolve(std::error_code ec, std::optional<stored_value> cur, const record& r, int retries) {
    if (ec) {
      error("reading the shared state failed: " + ec.message(), false);
      return next();
    }
    if (!cur) return write(r, 0, retries - 1);  // erased or expired meanwhile
    bool is_new = false;
    {
      std::lock_guard lk(mutex);
      is_new = cur->version > known;
      known = std::max(known, cur->version);
    }
    std::string why;
    const auto theirs = record::parse(cur->value, why);
    if (!theirs) {
      if (is_new) error("overwriting a malformed shared state: " + why, true);
      return write(r, cur->version, retries - 1);
    }
    if (r.state == breaker_state::open && theirs->state == breaker_state::closed) {
      return write(r, cur->version, retries - 1);
    }
    if (is_new && theirs->writer != writer) apply(*theirs);  // theirs stands: adopt it
    next();
  }

  /// The write in flight is done: start the pending one, if any.
  void next() {
    std::optional<record> r;
    store_version expected = 0;
    {
      std::lock_guard lk(mutex);
      r = std::exchange(pending, std::nullopt);
      if (!r) {
        in_flight = false;
        if (!std::exchange(reread, false)) return;
      }
      expected = known;
    }
    if (!r) return read();
    write(std::move(*r), expected, write_retries);
  }
};

// ---- the breaker ----

bucketed_circuit_breaker::bucketed_circuit_breaker(xsn::clock& clk, bucketed_breaker_options opts)
    : circuit_breaker(clk, /*measures_calls=*/opts.slow_call_duration != clock::duration::max()),
      opts_(checked(std::move(opts))),
      successes_to_close_(opts_.half_open_successes_to_close != 0 ? opts_.half_open_successes_to_close
                                                                  : opts_.half_open_permitted_calls),
      window_(std::make_unique<window_state>(opts_)),
      random_(opts_.random) {
  if (!random_ && opts_.jitter > 0.0) {
    random_ = [gen = std::mt19937_64(std::random_device{}())]() mutable { return gen(); };
  }
  {
    auto lk = lock();
    track_successes(lk, true);  // a window counts every call
  }
  if (opts_.store) {
    shared_ = std::make_shared<shared_state>(opts_.store, opts_.store_key, this);
    shared_->start();
  }
}

bucketed_circuit_breaker::~bucketed_circuit_breaker() {
  if (shared_) shared_->stop();
}

bucketed_breaker_window bucketed_circuit_breaker::window() const { return window_->snapshot(clock().now()); }

std::uint32_t bucketed_circuit_breaker::open_attempts() const {
  auto lk = lock();
  return attempts_;
}

bucketed_breaker_sharing bucketed_circuit_breaker::sharing() const {
  if (!shared_) return {};
  std::lock_guard lk(shared_->mutex);
  auto s = shared_->stats;
  s.version = shared_->known;
  return s;
}

bool bucketed_circuit_breaker::do_try_acquire(ticket& t) {
  switch (ticket_state(t)) {
    case breaker_state::closed: return true;
    case breaker_state::open:
      // The common rejection: no lock.
      if (clock().now().time_since_epoch().count() < open_until_.load(std::memory_order_relaxed)) return false;
      break;
    case breaker_state::half_open: break;
  }
  auto lk = lock();
  switch (state(lk)) {
    case breaker_state::closed: t = current_ticket(lk); return true;
    case breaker_state::open:
      if (clock().now().time_since_epoch().count() < open_until_.load(std::memory_order_relaxed)) return false;
      transition(lk, breaker_state::half_open);
      trials_admitted_ = trials_succeeded_ = trials_failed_ = 0;
      [[fallthrough]];
    case breaker_state::half_open:
      if (trials_admitted_ >= opts_.half_open_permitted_calls) return false;
      ++trials_admitted_;
      t = current_ticket(lk);
      return true;
  }
  return false;
}

void bucketed_circuit_breaker::do_record_success(ticket t, clock::duration elapsed) {
  record_outcome(t, false, elapsed);
}

void bucketed_circuit_breaker::do_record_failure(ticket t, clock::duration elapsed) {
  record_outcome(t, true, elapsed);
}

void bucketed_circuit_breaker::record_outcome(ticket t, bool failed, clock::duration elapsed) {
  const bool slow = elapsed >= opts_.slow_call_duration;
  const auto count_consecutive = [this, failed] {
    if (failed) {
      consecutive_.fetch_add(1, std::memory_order_relaxed);
    } else if (consecutive_.load(std::memory_order_relaxed) != 0) {
      consecutive_.store(0, std::memory_order_relaxed);
    }
  };
  // Closed, and the call belongs to the closed state: lock-free.
  if ((t == untracked || ticket_state(t) == breaker_state::closed) && state() == breaker_state::closed) [[likely]] {
    count_consecutive();
    return record_closed(failed, slow);
  }
  auto lk = lock();
  if (!is_current(lk, t)) return;
  switch (state(lk)) {
    case breaker_state::closed:  // closed meanwhile
      lk.unlock();
      count_consecutive();
      return record_closed(failed, slow);
    case breaker_state::open: return;  // recorded by hand while open: nothing to learn
    case breaker_state::half_open: {
      count_consecutive();
      record_trial(lk, failed || slow);
      std::optional<record> out = std::exchange(outbox_, std::nullopt);
      lk.unlock();
      if (out && shared_) shared_->publish(std::move(*out));
      return;
    }
  }
}

void bucketed_circuit_breaker::record_closed(bool failed, bool slow) {
  auto& w = *window_;
  if (w.count_based) {
    const auto code =
        static_cast<std::uint8_t>((failed ? window_state::failed_bit : 0) | (slow ? window_state::slow_bit : 0));
    const auto i = w.record_count(code);
    if (failed || slow || i + 1 == opts_.minimum_calls) [[unlikely]]
      evaluate();
    return;
  }
  w.record_time(clock().now(), failed, slow);
  if (failed || slow ||
      (w.bad.load(std::memory_order_relaxed) > 0 && !w.minimum_reached.load(std::memory_order_relaxed))) {
    evaluate();
  }
}

void bucketed_circuit_breaker::evaluate() {
  auto& w = *window_;
  const auto trips = [this](const bucketed_breaker_window& s) {
    return s.calls >= opts_.minimum_calls &&
           (over(static_cast<double>(s.failures), static_cast<double>(s.calls), opts_.failure_rate_threshold) ||
            over(static_cast<double>(s.slow_calls), static_cast<double>(s.calls), opts_.slow_call_rate_threshold));
  };
  auto s = w.snapshot(clock().now());
  if (!w.count_based && s.calls >= opts_.minimum_calls) w.minimum_reached.store(true, std::memory_order_relaxed);
  if (!trips(s)) return;
  if (w.count_based && !trips(w.recount())) return;  // the running counts were off: trust the slots
  auto lk = lock();
  if (state(lk) != breaker_state::closed) return;
  open(lk);
  std::optional<record> out = std::exchange(outbox_, std::nullopt);
  lk.unlock();
  if (out && shared_) shared_->publish(std::move(*out));
}

void bucketed_circuit_breaker::record_trial(lock_type& lk, bool failed) {
  if (failed) {
    ++trials_failed_;
    if (trials_failed_ > opts_.half_open_permitted_calls - successes_to_close_) open(lk);
  } else if (++trials_succeeded_ >= successes_to_close_) {
    close(lk);
  }
}

clock::duration bucketed_circuit_breaker::next_open_duration() {
  const double base = static_cast<double>(opts_.open_duration.count());
  const double cap = static_cast<double>(opts_.max_open_duration.count());
  double d = attempts_ == 0 ? base : std::min(cap, base * std::pow(opts_.backoff_multiplier, attempts_));
  if (opts_.jitter > 0.0) {
    const double u = static_cast<double>(random_() >> 11) * 0x1.0p-53;  // [0, 1)
    d *= 1.0 - opts_.jitter + 2.0 * opts_.jitter * u;
  }
  if (attempts_ == 0 && opts_.jitter == 0.0) return opts_.open_duration;  // exact, whatever its size
  if (d >= static_cast<double>(std::numeric_limits<clock::duration::rep>::max())) return clock::duration::max();
  return clock::duration(std::max<clock::duration::rep>(0, std::llround(d)));
}

void bucketed_circuit_breaker::open(lock_type& lk) {
  const auto d = next_open_duration();
  const auto now = clock().now();
  // open_until_ first: a lock-free reader that sees the state open sees it too (release/acquire
  // through the gate).
  open_until_.store(saturating_add(now, d).time_since_epoch().count(), std::memory_order_relaxed);
  transition(lk, breaker_state::open);
  attempts_ = std::min(attempts_ + 1, max_attempts);
  trials_admitted_ = trials_succeeded_ = trials_failed_ = 0;
  if (shared_) outbox_ = record{breaker_state::open, attempts_, d, now, shared_->writer};
}

void bucketed_circuit_breaker::close(lock_type& lk) {
  transition(lk, breaker_state::closed);
  attempts_ = 0;
  trials_admitted_ = trials_succeeded_ = trials_failed_ = 0;
  consecutive_.store(0, std::memory_order_relaxed);
  window_->reset();
  if (shared_) outbox_ = record{breaker_state::closed, 0, {}, clock().now(), shared_->writer};
}

void bucketed_circuit_breaker::apply_remote(const record& r) {
  auto lk = lock();
  if (r.state == breaker_state::open) {
    // The remaining duration it published, from now: clocks need no common epoch. Bounded by our
    // own maximum, so a bad record cannot keep us open for ever.
    const auto remaining = std::min(r.open_for, opts_.max_open_duration);
    const auto until = saturating_add(clock().now(), remaining).time_since_epoch().count();
    attempts_ = std::max(attempts_, r.attempt);
    if (state(lk) == breaker_state::open) {
      if (until > open_until_.load(std::memory_order_relaxed)) open_until_.store(until, std::memory_order_relaxed);
    } else {
      open_until_.store(until, std::memory_order_relaxed);
      transition(lk, breaker_state::open);
      trials_admitted_ = trials_succeeded_ = trials_failed_ = 0;
    }
  } else if (state(lk) != breaker_state::closed) {
    transition(lk, breaker_state::closed);
    attempts_ = 0;
    trials_admitted_ = trials_succeeded_ = trials_failed_ = 0;
    consecutive_.store(0, std::memory_order_relaxed);
    window_->reset();
  }
  lk.unlock();
  deliver();
}

void bucketed_circuit_breaker::deliver() {
  // The base delivers queued events at the end of its public calls; `release` is one, and
  // `do_release` ignores it while `internal_release` names this breaker.
  internal_release = this;
  struct clear {
    ~clear() { internal_release = nullptr; }
  } guard;
  release();
}

void bucketed_circuit_breaker::do_release(ticket t) {
  if (internal_release == this) return;
  auto lk = lock();
  if (!is_current(lk, t)) return;
  if (state(lk) == breaker_state::half_open && trials_admitted_ > trials_succeeded_ + trials_failed_) {
    --trials_admitted_;
  }
}

breaker_health bucketed_circuit_breaker::do_health() const {
  auto lk = lock();
  return {state(lk), consecutive_.load(std::memory_order_relaxed), last_transition(lk)};
}

}  // namespace xsn::inline v0::advanced
