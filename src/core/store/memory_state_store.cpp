#include <xsn/store/memory_state_store.hpp>
#include <xsn/store/detail/watch_delivery.hpp>

#include "core/logging_detail.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <utility>
#include <vector>

namespace xsn::inline v0 {

namespace {

using detail::delivery_hub;
using detail::end_watch;
using detail::watch_record;

}  // namespace

struct memory_state_store::impl : std::enable_shared_from_this<impl> {
  struct value_slot {
    std::string value;
    store_version version = 0;
    std::optional<clock::time_point> expires_at;
  };
  using entry_map = std::map<std::string, value_slot, std::less<>>;
  /// A result computed under the lock, completed (and logged) after it.
  struct write_result {
    std::error_code ec;
    store_version version = 0;  // the new one; on a conflict, the current one
    std::size_t entries = 0;    // the store's size, when it was full
    std::size_t bytes = 0;
  };

  impl(executor_type ex, xsn::clock& c, memory_store_options o)
      : executor(std::move(ex)), strand(boost::asio::make_strand(executor)), clk(c), opts(o),
        hub(std::make_shared<delivery_hub>()), log(detail::component_logger("xsn.store")) {}

  executor_type executor;
  boost::asio::strand<executor_type> strand;  // Watch callbacks, in order, one at a time.
  xsn::clock& clk;
  const memory_store_options opts;
  const std::shared_ptr<delivery_hub> hub;
  const std::shared_ptr<spdlog::logger> log;  // `xsn.store`

  // Everything below is guarded by `mutex`.
  mutable std::mutex mutex;
  bool closed = false;
  entry_map entries;
  /// Entries with a TTL by expiry time; the key pointer is the map node's (stable) key.
  std::set<std::pair<clock::time_point, const std::string*>> expiry;
  std::size_t bytes = 0;
  store_version last_version = 0;
  std::vector<std::shared_ptr<watch_record>> watches;
  std::optional<clock::timer_id> timer;  ///< The armed expiry timer.
  clock::time_point timer_due{};
  std::uint64_t timer_generation = 0;    ///< Identifies the armed timer's callback.
  bool rearm_posted = false;

  static std::size_t size_of(const std::string& key, const std::string& value) noexcept {
    return key.size() + value.size();
  }

  static bool expired(const value_slot& v, clock::time_point now) noexcept {
    return v.expires_at && *v.expires_at <= now;
  }

  // ---- watch notifications (under the lock, so the strand gets them in version order) ----

  void notify(const std::string& key, watch_kind kind, store_version version) {
    for (const auto& rec : watches) {
      if (!detail::key_has_prefix(key, rec->prefix)) continue;
      detail::post_watch_event(strand, hub, rec, watch_event{key, kind, version});
    }
  }

  // ---- entries ----

  /// Removes the entry at `it`, reporting `kind`; returns the next one.
  entry_map::iterator remove(entry_map::iterator it, watch_kind kind) {
    const auto version = it->second.version;
    if (kind == watch_kind::expire && log->should_log(spdlog::level::debug)) {
      log->debug("expired key={} version={}", detail::field(it->first), version);
    }
    if (it->second.expires_at) expiry.erase({*it->second.expires_at, &it->first});
    bytes -= size_of(it->first, it->second.value);
    if (!watches.empty()) notify(it->first, kind, version);
    return entries.erase(it);
  }

  /// `find`, dropping the entry if it has expired.
  entry_map::iterator find_live(const std::string& key, clock::time_point now) {
    auto it = entries.find(key);
    if (it != entries.end() && expired(it->second, now)) {
      remove(it, watch_kind::expire);
      return entries.end();
    }
    return it;
  }

  /// Drops every expired entry.
  void sweep(clock::time_point now) {
    while (!expiry.empty() && expiry.begin()->first <= now) {
      auto it = entries.find(*expiry.begin()->second);
      remove(it, watch_kind::expire);
    }
  }

  /// True when replacing `it` (or adding, at `end()`) by `key` = `value` stays within capacity.
  bool fits(entry_map::iterator it, const std::string& key, const std::string& value) const {
    const bool adds = it == entries.end();
    const std::size_t old_size = adds ? 0 : size_of(it->first, it->second.value);
    const std::size_t new_entries = entries.size() + (adds ? 1 : 0);
    const std::size_t new_bytes = bytes - old_size + size_of(key, value);
    return new_entries <= opts.max_entries && new_bytes <= opts.max_bytes;
  }

  /// Stores `value` at `key` (the entry at `it` if present), after the checks have passed.
  /// Fails with `store_full` when it does not fit even after a sweep.
  write_result store(entry_map::iterator it, std::string&& key, std::string&& value,
                     const put_options& o, clock::time_point now) {
    if (!fits(it, key, value)) {
      sweep(now);
      it = entries.find(key);
      if (!fits(it, key, value)) return {make_error_code(errc::store_full), 0, entries.size(), bytes};
    }
    if (it == entries.end()) {
      it = entries.emplace_hint(it, std::move(key), value_slot{});
    } else {
      bytes -= size_of(it->first, it->second.value);
      if (it->second.expires_at) expiry.erase({*it->second.expires_at, &it->first});
    }
    auto& slot = it->second;
    slot.value = std::move(value);
    slot.version = ++last_version;
    slot.expires_at.reset();
    bytes += size_of(it->first, slot.value);
    if (o.ttl) {
      slot.expires_at = saturating_add(now, *o.ttl);
      expiry.emplace(*slot.expires_at, &it->first);
      request_rearm();
    }
    if (!watches.empty()) notify(it->first, watch_kind::put, slot.version);
    return {{}, slot.version};
  }

  /// Applies write `w` of a batch (moving its key and value out): a compare-and-set when it has
  /// an expected version, else a put. Under the lock.
  write_result apply(batch_write& w, clock::time_point now) {
    auto it = find_live(w.key, now);
    const store_version current = it == entries.end() ? 0 : it->second.version;
    if (w.expected && current != *w.expected) return {make_error_code(errc::version_conflict), current};
    return store(it, std::move(w.key), std::move(w.value), w.opts, now);
  }

  /// Applies `writes` in order under one lock, each with its own version.
  std::vector<write_result> apply_batch(std::vector<batch_write>& writes) {
    std::vector<write_result> rs;
    rs.reserve(writes.size());
    std::lock_guard lock(mutex);
    const auto now = clk.now();
    for (auto& w : writes) rs.push_back(apply(w, now));
    return rs;
  }

  // ---- logging, outside the lock ----

  /// Logs the outcome of write `op` on `key`: a conflict (`info`), a full store (`warn`), or, at
  /// `trace`, the success. `expected` is the version a conditional write asked for.
  void log_write(std::string_view op, std::string_view key, const write_result& r,
                 std::optional<store_version> expected = std::nullopt) const {
    if (!r.ec) {
      if (log->should_log(spdlog::level::trace))
        log->trace("{} key={} version={}", op, detail::field(key), r.version);
    } else if (r.ec == errc::version_conflict) {
      if (log->should_log(spdlog::level::info))
        log->info("conflict op={} key={} expected={} current={}", op, detail::field(key),
                  expected.value_or(0), r.version);
    } else if (r.ec == errc::store_full) {
      if (log->should_log(spdlog::level::warn))
        log->warn("full op={} key={} entries={} bytes={} max_entries={} max_bytes={}", op,
                  detail::field(key), r.entries, r.bytes, opts.max_entries, opts.max_bytes);
    }
  }

  // ---- the expiry timer ----

  /// Has the timer re-armed on the executor when the earliest expiry is earlier than it.
  void request_rearm() {
    if (rearm_posted || expiry.empty()) return;
    if (timer && timer_due <= expiry.begin()->first) return;
    rearm_posted = true;
    boost::asio::post(executor, [weak = weak_from_this()] {
      auto self = weak.lock();
      if (!self) return;
      std::lock_guard lock(self->mutex);
      self->rearm_posted = false;
      if (!self->closed) self->arm();
    });
  }

  /// Points the timer at the earliest expiry (on the executor or in the timer callback).
  void arm() {
    if (expiry.empty()) {
      if (timer) clk.cancel(*timer);
      timer.reset();
      return;
    }
    const auto due = expiry.begin()->first;
    if (timer && timer_due <= due) return;  // Fires early at worst, then re-arms.
    if (timer) clk.cancel(*timer);
    const auto generation = ++timer_generation;
    timer_due = due;
    timer = clk.schedule(due, [weak = weak_from_this(), generation] {
      if (auto self = weak.lock()) self->on_timer(generation);
    });
  }

  void on_timer(std::uint64_t generation) {
    std::lock_guard lock(mutex);
    if (closed) return;
    if (generation == timer_generation) timer.reset();
    sweep(clk.now());
    arm();
  }
};

memory_state_store::memory_state_store(executor_type ex, xsn::clock& clk,
                                       memory_store_options opts)
    : state_store(ex), impl_(std::make_shared<impl>(std::move(ex), clk, opts)) {}

memory_state_store::~memory_state_store() { shut("closed"); }

void memory_state_store::shut(const char* what) {
  bool first = false;
  std::vector<std::shared_ptr<watch_record>> watches;
  std::size_t entries = 0;
  std::size_t bytes = 0;
  {
    std::lock_guard lock(impl_->mutex);
    first = !impl_->closed;  // again: ends a watch started while `async_close` ran
    impl_->closed = true;
    if (impl_->timer) impl_->clk.cancel(*impl_->timer);
    impl_->timer.reset();
    watches.swap(impl_->watches);
    entries = impl_->entries.size();
    bytes = impl_->bytes;
  }
  for (auto& rec : watches) end_watch(*impl_->hub, *rec);
  if (first && impl_->log->should_log(spdlog::level::info)) {
    impl_->log->info("{} entries={} bytes={} watches={}", what, entries, bytes, watches.size());
  }
}

void memory_state_store::do_close(close_handler handler) {
  shut("closed by async_close");
  complete(std::move(handler), std::error_code{});
}

const memory_store_options& memory_state_store::options() const noexcept { return impl_->opts; }

void memory_state_store::do_get(std::string key, get_handler handler) {
  std::optional<stored_value> result;
  {
    auto& s = *impl_;
    std::lock_guard lock(s.mutex);
    auto it = s.find_live(key, s.clk.now());
    if (it != s.entries.end()) {
      result = stored_value{it->second.value, it->second.version, it->second.expires_at};
    }
  }
  if (impl_->log->should_log(spdlog::level::trace)) {
    impl_->log->trace("get key={} version={}", detail::field(key), result ? result->version : 0);
  }
  complete(std::move(handler), std::error_code{}, std::move(result));
}

void memory_state_store::do_put(std::string key, std::string value, put_options opts,
                                write_handler handler) {
  impl::write_result r;
  // `store` moves the key away on success; keep it for the trace record only when one is wanted.
  const std::string logged_key = impl_->log->should_log(spdlog::level::trace) ? key : std::string();
  {
    auto& s = *impl_;
    std::lock_guard lock(s.mutex);
    const auto now = s.clk.now();
    auto it = s.find_live(key, now);
    r = s.store(it, std::move(key), std::move(value), opts, now);
  }
  impl_->log_write("put", r.ec ? std::string_view(key) : std::string_view(logged_key), r);
  complete(std::move(handler), r.ec, r.version);
}

void memory_state_store::do_compare_and_set(std::string key, store_version expected,
                                            std::string value, put_options opts,
                                            write_handler handler) {
  impl::write_result r;
  const std::string logged_key = impl_->log->should_log(spdlog::level::trace) ? key : std::string();
  {
    auto& s = *impl_;
    std::lock_guard lock(s.mutex);
    const auto now = s.clk.now();
    auto it = s.find_live(key, now);
    const store_version current = it == s.entries.end() ? 0 : it->second.version;
    if (current != expected) {
      r = {make_error_code(errc::version_conflict), current};
    } else {
      r = s.store(it, std::move(key), std::move(value), opts, now);
    }
  }
  impl_->log_write("cas", r.ec ? std::string_view(key) : std::string_view(logged_key), r, expected);
  complete(std::move(handler), r.ec, r.version);
}

void memory_state_store::do_write_batch(std::vector<batch_write> writes, batch_handler handler) {
  // Under one lock: the entries take effect in order, each with its own version, and the watches
  // are told in that (version) order, as by one `do_put` / `do_compare_and_set` per entry.
  const bool trace = impl_->log->should_log(spdlog::level::trace);
  std::vector<std::string> logged_keys;
  if (trace) {
    logged_keys.reserve(writes.size());
    for (const auto& w : writes) logged_keys.push_back(w.key);
  }
  const auto rs = impl_->apply_batch(writes);
  std::vector<batch_result> results(writes.size());
  for (std::size_t i = 0; i < writes.size(); ++i) {
    const auto& w = writes[i];
    const auto& r = rs[i];
    results[i] = batch_result{r.ec, r.version};
    if (!r.ec && !trace) continue;
    impl_->log_write(w.expected ? "cas" : "put",
                     r.ec ? std::string_view(w.key) : std::string_view(logged_keys[i]), r, w.expected);
  }
  complete(std::move(handler), std::error_code{}, std::move(results));
}

void memory_state_store::do_erase(std::string key, std::optional<store_version> expected,
                                  write_handler handler) {
  impl::write_result r;
  {
    auto& s = *impl_;
    std::lock_guard lock(s.mutex);
    auto it = s.find_live(key, s.clk.now());
    const store_version current = it == s.entries.end() ? 0 : it->second.version;
    if (expected && *expected != current) {
      r = {make_error_code(errc::version_conflict), current};
    } else {
      if (current != 0) s.remove(it, watch_kind::erase);
      r = {{}, current};
    }
  }
  impl_->log_write("erase", key, r, expected);
  complete(std::move(handler), r.ec, r.version);
}

void memory_state_store::do_list(std::string prefix, list_options opts, list_handler handler) {
  std::vector<entry> result;
  {
    auto& s = *impl_;
    std::lock_guard lock(s.mutex);
    const auto now = s.clk.now();
    auto it = s.entries.lower_bound(prefix);
    if (!opts.start_after.empty() && opts.start_after >= prefix) {
      it = s.entries.upper_bound(opts.start_after);
    }
    result.reserve(std::min(opts.limit, s.entries.size()));
    while (it != s.entries.end() && result.size() < opts.limit && detail::key_has_prefix(it->first, prefix)) {
      if (impl::expired(it->second, now)) {
        it = s.remove(it, watch_kind::expire);
        continue;
      }
      result.emplace_back(it->first,
                          stored_value{it->second.value, it->second.version, it->second.expires_at});
      ++it;
    }
  }
  complete(std::move(handler), std::error_code{}, std::move(result));
}

watch_handle memory_state_store::do_watch(std::string prefix, watch_callback fn) {
  auto rec = std::make_shared<watch_record>(watch_record{std::move(prefix), std::move(fn), true});
  {
    std::lock_guard lock(impl_->mutex);
    impl_->watches.push_back(rec);
  }
  if (impl_->log->should_log(spdlog::level::debug)) {
    impl_->log->debug("watch prefix={}", detail::field(rec->prefix));
  }
  return watch_handle(std::make_unique<detail::store_watch<impl>>(impl_, impl_->hub, std::move(rec)));
}

store_health memory_state_store::do_health() const {
  std::lock_guard lock(impl_->mutex);
  return {true, impl_->entries.size(), impl_->bytes, impl_->opts.max_entries,
          impl_->opts.max_bytes};
}

}  // namespace xsn::inline v0
