// The orchestrator: machines on one strand, the bus for routing, the store for persistence.
//
// Writes: a machine that changed is queued once ("dirty list"); a flush posted to the strand
// gathers every queued machine into one store batch (bounded in entries and bytes, a few batches
// in flight), so a burst of events costs one round trip, not one per machine. Every machine has
// at most one write in flight; events that arrive meanwhile are acknowledged by the next write,
// which includes their effect ("write coalescing").
//
// Messages (transactional outbox, idempotent inbox): what a machine sends to another machine or a
// bus address is appended to its outbox with the next sequence number of the sender, written with
// its snapshot, and delivered only once that write succeeded. A receiver applies a message only
// when its sequence is above the highest it applied from that sender (kept in its snapshot), and
// once the receiver's write that carries the effect succeeded, the sender drops the message from
// its outbox. A crash anywhere leaves either the message in the sender's stored outbox (restore
// delivers it again; the receiver drops it if it had applied it) or nothing sent at all.
#include <xsn/orchestrator/orchestrator.hpp>

#include <xsn/resilience/circuit_breaker.hpp>

#include "core/event_json.hpp"
#include "core/logging_detail.hpp"
#include "runtime/session_ext.hpp"

#include <boost/asio/append.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <deque>
#include <mutex>
#include <unordered_map>
#include <unordered_set>
#include <variant>

namespace xsn::inline v0 {

namespace {

using done_handler = boost::asio::any_completion_handler<orchestrator::done_signature>;
using send_handler = boost::asio::any_completion_handler<orchestrator::send_signature>;
namespace json = boost::json;

constexpr std::string_view machine_scheme = "xsn:";
constexpr std::string_view bus_scheme = "bus:";

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

std::optional<std::uint64_t> sequence_of(const value& v) {
  if (v.is_uint64()) return v.as_uint64();
  if (v.is_int64() && v.as_int64() >= 0) return static_cast<std::uint64_t>(v.as_int64());
  return std::nullopt;
}

}  // namespace

struct orchestrator::impl : std::enable_shared_from_this<impl> {
  /// A message sent by a machine, waiting in its outbox.
  struct outbound {
    std::uint64_t seq = 0;
    std::string target;  // "xsn:ID" or "bus:ADDRESS"
    event ev;
  };
  /// Someone waiting for a machine's write: an `async_send` or an internal completion.
  struct ack {
    std::variant<send_handler, done_handler> h;
    send_result result;  // the machine right after the event's macrostep
  };
  struct document {
    std::shared_ptr<const statechart> chart;
    std::shared_ptr<const session_options> session;  // with the orchestrator's hooks
  };
  struct machine : std::enable_shared_from_this<machine> {
    std::string id;
    std::string document;
    std::unique_ptr<session> s;
    store_version version = 0;  // of the last persisted snapshot; 0: not stored yet
    bool creating = false;      // the first write (create-only) is pending
    bool writing = false;       // a store write is in flight
    bool dirty = false;         // changed since the last write started
    bool queued = false;        // in the dirty list
    bool gone = false;          // stopped or shut down: no more work
    bool retry = false;         // writing, and queued again after a compare-and-set conflict
    bool remote_busy = false;   // an outbox message is with `options.remote`
    int attempt = 0;            // compare-and-set attempts of the current write
    std::vector<ack> acks_writing, acks_next;
    // Outbox: messages in sequence order; those up to `durable_seq` are in the store, those up
    // to `sent_upto` were delivered (or published) and wait for the receiver's confirmation.
    std::uint64_t next_seq = 1;
    std::deque<outbound> outbox;
    std::uint64_t durable_seq = 0, writing_seq = 0, sent_upto = 0;
    // Inbox: the highest sequence applied per sender; those applied since the last write began
    // (`to_confirm`) and those carried by the write in flight (`confirming`) tell the senders,
    // once written, that they may drop the messages.
    std::unordered_map<std::string, std::uint64_t> applied, to_confirm, confirming;
    // The most recent idempotency keys of outside sends, oldest first.
    std::deque<std::string> keys;
    std::unordered_set<std::string> key_set;
  };
  using machine_ptr = std::shared_ptr<machine>;
  struct change_watch {
    std::recursive_mutex mutex;  // held while the callback runs; `cancel` takes it
    std::function<void(const machine_change&)> fn;
    bool cancelled = false;
  };

  impl(boost::asio::any_io_executor ex, xsn::clock& c, event_bus& b, state_store& st, orchestrator_options o)
      : strand(boost::asio::make_strand(std::move(ex))), clk(c), bus(b), store(st), opts(std::move(o)),
        log(detail::component_logger("xsn.orchestrator")) {}

  // ---- documents ----
  result<void> add(std::string name, std::shared_ptr<const statechart> chart, session_options so,
                   bool has_bindings);
  std::shared_ptr<const session_options> hooked(session_options so);
  void persist_macrostep(session& s);
  void forward_diagnostic(session& root, const runtime_diagnostic& d, bool user_hooked);

  // ---- machines ----
  std::error_code add_machine(const std::string& id, const std::string& document, const json::object* record,
                              store_version version, machine_ptr& out, const value* input = nullptr);
  std::error_code read_record(machine& m, const json::object& record);
  static std::error_code read_seq(machine& m, const json::object& record);
  std::error_code read_lists(machine& m, const json::object& record);
  static std::optional<outbound> outbound_of(const json::value& entry);
  static std::error_code read_outbox(machine& m, const json::value& outbox);
  static std::error_code read_inbox(machine& m, const json::value& inbox);
  std::error_code read_keys(machine& m, const json::value& keys);
  std::error_code open_inbox();
  void watch_inbox();
  void on_inbox_ready();
  void deliver(bus_message& msg);
  void note_unroutable(std::string_view address, std::string_view event_name);
  bool process(const machine_ptr& m, const event& ev);
  void remove(const machine_ptr& m);
  void refresh_status(const machine& m);
  void sync_outbox(const machine& m);
  send_result result_of(const machine& m, bool transitioned, bool duplicate) const;
  bool remember_key(machine& m, const std::string& key);

  // ---- messages ----
  bool route(session& root, const std::string& target, event ev);
  bool routable(const std::string& target) const;
  void deliver_outbox(const machine_ptr& m);
  enum class sent { done, blocked, pending };
  sent send_one(const machine_ptr& m, const outbound& out);
  void send_remote(const machine_ptr& m, const outbound& out, std::uint64_t before);
  void on_remote_done(const machine_ptr& m, std::uint64_t seq, std::uint64_t before, std::error_code ec);
  void erase_sent(machine& m, std::uint64_t seq);
  void apply_remote(const machine_ptr& m, const send_options& o, const event& ev, ack a);
  void ack_duplicate(const machine_ptr& m, ack a);
  void apply_message(const machine_ptr& to, const std::string& sender, std::uint64_t seq, const event& ev);
  void confirm(const std::string& sender, const std::string& receiver, std::uint64_t seq);
  void schedule_publish_retry();

  // ---- persistence ----
  void persist(const machine_ptr& m, std::optional<ack> a);
  void mark_dirty(const machine_ptr& m);
  void schedule_flush();
  void flush();
  void count_write(const machine& m, std::error_code ec, const std::string& why);
  bool on_write_result(const machine_ptr& m, const batch_result& r);
  void fail_queued_writes();
  void gather_batch(std::vector<batch_write>& writes, std::vector<machine_ptr>& ms);
  void begin_write(machine& m);
  void on_batch(std::vector<machine_ptr> ms, std::error_code ec, std::vector<batch_result> results);
  void finish_write(const machine_ptr& m, std::error_code ec);
  std::string write_error_text(std::error_code ec) const;
  void write_failed(machine& m, std::error_code ec, const std::string& why);
  void write_succeeded(machine& m);
  void finish_acks(std::vector<ack> acks, std::error_code ec);
  void notify_change(const machine& m);
  std::string stored_text(machine& m);
  std::string key(const std::string& id) const { return opts.key_prefix + id; }

  // ---- restore and shutdown ----
  void restore_page(std::string start_after, std::size_t restored,
                    boost::asio::any_completion_handler<orchestrator::restore_signature> h);
  bool restore_entry(const std::string& key, const stored_value& stored);
  void finish_restore(std::size_t restored, boost::asio::any_completion_handler<orchestrator::restore_signature> h);
  void maybe_finish_shutdown();
  void stop_io();
  void finish_shutdown();
  void abandon();

  /// Completes `h` with `args`, never inline: on the handler's associated executor.
  template <class Handler, class... Args>
  void complete(Handler h, Args... args) {
    boost::asio::post(strand, boost::asio::append(std::move(h), std::move(args)...));
  }
  void count(std::uint64_t orchestrator_health::*field, std::uint64_t n = 1) {
    std::lock_guard lock(status_mutex);
    counters.*field += n;
  }
  void set_error(std::string text) {
    std::lock_guard lock(status_mutex);
    counters.last_error = std::move(text);
  }

  boost::asio::strand<boost::asio::any_io_executor> strand;
  xsn::clock& clk;
  event_bus& bus;
  state_store& store;
  orchestrator_options opts;
  std::shared_ptr<spdlog::logger> log;
  std::unordered_map<std::string, machine_ptr> machines;  // strand only
  std::unique_ptr<subscription> inbox;                     // `address_prefix*`: every machine's messages
  std::atomic<std::uint64_t> inbox_id{0};                  // for health(), from any thread
  std::atomic<bool> accepting{true};                       // written on the strand only
  bool abandoned = false;                                  // destroyed without shutdown: do nothing more
  bool restoring = false;                                  // async_restore is reading pages

  // Batching (strand only).
  std::deque<machine_ptr> dirty_list;
  bool flush_posted = false;
  std::size_t batches_in_flight = 0;
  // Outbox messages to bus addresses whose subscriber was full: machines to try again.
  std::vector<std::string> publish_blocked;
  std::optional<clock::timer_id> publish_timer;

  // What list/query/health read from any thread, updated on the strand.
  mutable std::mutex status_mutex;
  std::unordered_map<std::string, machine_status> status;
  std::unordered_map<std::string, document> documents;
  orchestrator_health counters;
  std::size_t outbox_total = 0;  // strand only; copied into counters.outbox

  // Change watches (the list under its own mutex; each watch's callback under the watch's).
  std::mutex watches_mutex;
  std::vector<std::shared_ptr<change_watch>> watches;

  // Shutdown bookkeeping.
  bool shutting_down = false;
  std::optional<done_handler> shutdown_handler;
};

// ============================ documents ============================

namespace {

// Why session options `so` cannot serve an orchestrator's machines, else empty.
std::string options_conflict(const session_options& so) {
  if (so.route) return "session options set `route`; the orchestrator routes its machines' messages";
  if (!so.session_id.empty()) return "session options set `session_id`; each session is named after its machine";
  return {};
}

// Why the datamodel `so` makes cannot run `chart`, else empty. An XState chart without one gets
// its datamodel bound to no implementations.
std::string settle_datamodel(const statechart& chart, session_options& so, bool xstate) {
  if (!so.make_datamodel) {
    if (!xstate) return {};
    auto bound = bind(chart, implementations{});
    if (!bound) return bound.error().message + " (add the document with its implementations)";
    so.make_datamodel = xstate_datamodel(std::move(*bound));
    return {};
  }
  auto probe = so.make_datamodel();
  const std::string got = probe ? std::string(probe->name()) : std::string("none");
  if (got == chart.datamodel) return {};
  return "the document's datamodel is '" + chart.datamodel + "' but its sessions would run on '" + got + "'" +
         (xstate ? " (bind the machine's implementations instead)" : "");
}

}  // namespace

result<void> orchestrator::impl::add(std::string name, std::shared_ptr<const statechart> chart, session_options so,
                                     bool has_bindings) {
  auto refuse = [&](const std::string& why) { return eval_error{"document '" + name + "': " + why}; };
  if (!chart) return refuse("no chart");
  if (name.empty()) return eval_error{"a document needs a name"};
  if (auto why = options_conflict(so); !why.empty()) return refuse(why);
  const bool xstate = chart->semantics == chart_semantics::xstate;
  if (has_bindings && !xstate)
    return refuse("C++ implementations bind XState machines, and this is an SCXML document (datamodel '" +
                  chart->datamodel + "')");
  if (auto why = settle_datamodel(*chart, so, xstate); !why.empty()) return refuse(why);
  auto hooks = hooked(std::move(so));
  std::lock_guard lock(status_mutex);
  documents[std::move(name)] = document{std::move(chart), std::move(hooks)};
  return {};
}

std::shared_ptr<const session_options> orchestrator::impl::hooked(session_options so) {
  // Every macrostep, whatever caused it (an event, a timer, a child), is persisted: the machine
  // joins the dirty list, and the next flush writes it. The caller's own hook runs after ours.
  so.on_macrostep = [this, user = std::move(so.on_macrostep)](session& s) {
    persist_macrostep(s);
    if (user) user(s);
  };
  so.route = [this](session& root, const std::string& target, event ev) { return route(root, target, std::move(ev)); };
  // Diagnostics name the machine (the root session is named after it). Nobody listening (no hook,
  // the orchestrator's log silent at `warn`): no wrapper, so a session builds nothing for an
  // ignored event, and one logs through `xsn.session` if that logger is enabled later.
  if (!so.on_diagnostic && !opts.on_diagnostic && !log->should_log(spdlog::level::warn))
    return std::make_shared<const session_options>(std::move(so));
  so.on_diagnostic = [this, user = std::move(so.on_diagnostic)](session& root, const runtime_diagnostic& d) {
    if (user) user(root, d);
    forward_diagnostic(root, d, static_cast<bool>(user));
  };
  return std::make_shared<const session_options>(std::move(so));
}

// A machine's macrostep: the machine joins the dirty list. During shutdown, after the final writes
// began, a timer's macrostep is not written: the stored snapshot still holds that timer, so a
// restore runs it again.
void orchestrator::impl::persist_macrostep(session& s) {
  if (auto* mp = static_cast<machine*>(s.user_data()); mp && !mp->gone && !abandoned && !shutting_down)
    mark_dirty(mp->shared_from_this());
}

// A diagnostic, after the session options' own hook: to the orchestrator's hook, else (when the
// session's hook did not take it) to the log.
void orchestrator::impl::forward_diagnostic(session& root, const runtime_diagnostic& d, bool user_hooked) {
  if (opts.on_diagnostic) opts.on_diagnostic(root.id(), d);
  else if (!user_hooked) detail::log_diagnostic(*log, d, root.id());
}

// ============================ machines ============================

std::error_code orchestrator::impl::add_machine(const std::string& id, const std::string& document,
                                                const json::object* record, store_version version, machine_ptr& out,
                                                const value* input) {
  std::shared_ptr<const statechart> chart;
  std::shared_ptr<const session_options> so;
  {
    std::lock_guard lock(status_mutex);
    auto it = documents.find(document);
    if (it == documents.end()) return errc::unknown_document;
    chart = it->second.chart;
    so = it->second.session;
  }
  if (machines.count(id)) return errc::already_exists;
  auto m = std::make_shared<machine>();
  m->id = id;
  m->document = document;
  m->version = version;
  if (auto ec = open_inbox()) return ec;
  m->s = std::make_unique<session>(std::move(chart), strand, clk, std::move(so), id);
  m->s->set_user_data(m.get());
  // Registered before the session runs anything: its first macrostep may already send.
  machines.emplace(id, m);
  std::error_code ec;
  if (record) {
    ec = read_record(*m, *record);
  } else {
    if (input && !input->is_null()) m->s->set_input(*input);
    m->s->start();
  }
  if (ec) {
    machines.erase(id);
    m->gone = true;
    return ec;
  }
  refresh_status(*m);
  out = std::move(m);
  return {};
}

// The stored record: {document, snapshot, seq, outbox: [{seq, to, event}], inbox: {sender: seq},
// keys: [...]}; everything but `document` and `snapshot` is left out when empty.
std::error_code orchestrator::impl::read_record(machine& m, const json::object& o) {
  auto* snap = o.if_contains("snapshot");
  if (!snap) return errc::bad_snapshot;
  if (auto ec = read_seq(m, o)) return ec;
  if (auto ec = read_lists(m, o)) return ec;
  if (auto ec = m.s->restore(*snap)) return ec;
  // Everything read from the store is durable; nothing of it has been delivered by this process.
  m.durable_seq = m.outbox.empty() ? 0 : m.outbox.back().seq;
  m.sent_upto = 0;
  outbox_total += m.outbox.size();
  return {};
}

// The record's `seq` (the next sequence to send), when present: not 0.
std::error_code orchestrator::impl::read_seq(machine& m, const json::object& o) {
  auto* seq = o.if_contains("seq");
  if (!seq) return {};
  auto n = sequence_of(*seq);
  if (!n || *n == 0) return errc::bad_snapshot;
  m.next_seq = *n;
  return {};
}

// The record's `outbox`, `inbox` and `keys`, those present.
std::error_code orchestrator::impl::read_lists(machine& m, const json::object& o) {
  if (auto* ob = o.if_contains("outbox"))
    if (auto ec = read_outbox(m, *ob)) return ec;
  if (auto* in = o.if_contains("inbox"))
    if (auto ec = read_inbox(m, *in)) return ec;
  if (auto* ks = o.if_contains("keys"))
    if (auto ec = read_keys(m, *ks)) return ec;
  return {};
}

// One stored outbox message {seq, to, event}: a sequence, an event with a name and a target of
// either scheme; nullopt when anything is missing or malformed.
std::optional<orchestrator::impl::outbound> orchestrator::impl::outbound_of(const json::value& e) {
  const auto* eo = e.if_object();
  if (!eo || !eo->contains("seq") || !eo->contains("to") || !eo->at("to").is_string() || !eo->contains("event"))
    return std::nullopt;
  auto seq = sequence_of(eo->at("seq"));
  event ev;
  const bool ev_ok = detail::event_from_json(eo->at("event"), ev) && !ev.name.empty();
  std::string target(eo->at("to").as_string());
  if (!seq || !ev_ok || (!starts_with(target, machine_scheme) && !starts_with(target, bus_scheme))) return std::nullopt;
  return outbound{*seq, std::move(target), std::move(ev)};
}

// The outbox: its sequences rising, each below the machine's next one.
std::error_code orchestrator::impl::read_outbox(machine& m, const json::value& ob) {
  if (!ob.is_array()) return errc::bad_snapshot;
  for (const auto& e : ob.as_array()) {
    auto out = outbound_of(e);
    if (!out || out->seq >= m.next_seq || (!m.outbox.empty() && out->seq <= m.outbox.back().seq))
      return errc::bad_snapshot;
    m.outbox.push_back(std::move(*out));
  }
  return {};
}

// The inbox: the highest sequence applied per sender.
std::error_code orchestrator::impl::read_inbox(machine& m, const json::value& in) {
  if (!in.is_object()) return errc::bad_snapshot;
  for (const auto& [sender, v] : in.as_object()) {
    auto n = sequence_of(v);
    if (!n) return errc::bad_snapshot;
    m.applied.emplace(std::string(sender), *n);
  }
  return {};
}

// The idempotency keys, oldest first.
std::error_code orchestrator::impl::read_keys(machine& m, const json::value& ks) {
  if (!ks.is_array()) return errc::bad_snapshot;
  for (const auto& k : ks.as_array()) {
    if (!k.is_string()) return errc::bad_snapshot;
    remember_key(m, std::string(k.as_string()));
  }
  return {};
}

std::error_code orchestrator::impl::open_inbox() {
  if (inbox) return {};
  std::error_code ec;
  inbox = bus.subscribe(opts.address_prefix + "*", opts.subscription, ec);
  if (ec) return ec;
  inbox_id = inbox->id();
  watch_inbox();
  return {};
}

void orchestrator::impl::watch_inbox() {
  inbox->async_wait(boost::asio::bind_executor(strand, [self = shared_from_this()](std::error_code ec) {
    if (ec || !self->inbox || self->abandoned) return;  // cancelled: shutdown or destruction
    self->on_inbox_ready();
  }));
}

void orchestrator::impl::on_inbox_ready() {
  std::array<bus_message, 64> batch;
  auto n = inbox->try_receive_batch(batch);
  for (std::size_t i = 0; i < n; ++i) deliver(batch[i]);
  if (inbox) watch_inbox();
}

void orchestrator::impl::deliver(bus_message& msg) {
  auto id = std::string_view(msg.address).substr(opts.address_prefix.size());
  auto it = machines.find(std::string(id));
  if (it == machines.end()) {
    note_unroutable(msg.address, msg.event.name);
    if (!msg.reply_to.empty()) (void)bus.reply(msg, event("xsn.error.unknown_machine"));
    return;
  }
  auto m = it->second;
  if (accepting) {
    msg.event.name_id = npos;
    msg.event.resolved_by = nullptr;
    if (!msg.sender.empty() && msg.sequence != 0) {
      apply_message(m, msg.sender, msg.sequence, msg.event);
    } else if (process(m, msg.event)) {
      mark_dirty(m);
    }
  }
  if (!msg.reply_to.empty()) {
    json::array states;
    for (auto& st : m->s->active_atomic_states()) states.emplace_back(st);
    (void)bus.reply(msg, event("xsn.reply", value(std::move(states))));
  }
}

// Counted in health; logged at warn for the 1st, 2nd, 4th, 8th... so a sender that keeps
// addressing a missing machine cannot flood the log, and at debug for every one.
void orchestrator::impl::note_unroutable(std::string_view address, std::string_view event_name) {
  std::uint64_t n;
  {
    std::lock_guard lock(status_mutex);
    n = ++counters.unroutable;
  }
  const bool power_of_two = (n & (n - 1)) == 0;
  const auto level = power_of_two ? spdlog::level::warn : spdlog::level::debug;
  if (log->should_log(level))
    log->log(level, "unroutable address={} event={} count={}", detail::field(address), detail::field(event_name), n);
}

/// Runs `ev` through the machine; true when some transition took it.
bool orchestrator::impl::process(const machine_ptr& m, const event& ev) {
  if (!m->s->running()) return false;
  if (log->should_log(spdlog::level::debug))
    log->debug("event machine={} event={}", detail::field(m->id), detail::field(ev.name));
  const auto before = m->s->transitions_taken();
  (void)m->s->process(ev);
  count(&orchestrator_health::events);
  return m->s->transitions_taken() != before;
}

void orchestrator::impl::refresh_status(const machine& m) {
  machine_status st;
  st.id = m.id;
  st.document = m.document;
  st.running = m.s->running();
  st.status = m.s->status();
  st.states = m.s->active_atomic_states();
  st.version = m.version;
  st.outbox = m.outbox.size();
  std::lock_guard lock(status_mutex);
  status[m.id] = std::move(st);
  counters.outbox = outbox_total;
}

/// The status cache's outbox sizes after messages left an outbox.
void orchestrator::impl::sync_outbox(const machine& m) {
  std::lock_guard lock(status_mutex);
  if (auto it = status.find(m.id); it != status.end()) it->second.outbox = m.outbox.size();
  counters.outbox = outbox_total;
}

send_result orchestrator::impl::result_of(const machine& m, bool transitioned, bool duplicate) const {
  send_result r;
  r.transitioned = transitioned;
  r.duplicate = duplicate;
  if (m.s) {
    r.status = m.s->status();
    r.states = m.s->active_atomic_states();
  }
  return r;
}

/// Adds `key` to the machine's recent keys; false when it was there already.
bool orchestrator::impl::remember_key(machine& m, const std::string& key) {
  if (opts.idempotency_keys == 0) return true;
  if (!m.key_set.insert(key).second) return false;
  m.keys.push_back(key);
  while (m.keys.size() > opts.idempotency_keys) {
    m.key_set.erase(m.keys.front());
    m.keys.pop_front();
  }
  return true;
}

void orchestrator::impl::remove(const machine_ptr& m) {
  m->gone = true;
  // Sends waiting for a write that will never start fail; those of a write in flight complete
  // with it.
  auto waiting = std::move(m->acks_next);
  m->acks_next.clear();
  finish_acks(std::move(waiting), errc::not_running);
  outbox_total -= m->outbox.size();
  machines.erase(m->id);
  std::lock_guard lock(status_mutex);
  status.erase(m->id);
  counters.outbox = outbox_total;
}

// ============================ messages ============================

// A machine (or a child actor of it) sends outside itself: into its outbox, delivered after the
// write that persists it. False (the session raises `error.communication`) when the outbox is
// full or the target cannot exist.
bool orchestrator::impl::route(session& root, const std::string& target, event ev) {
  auto* mp = static_cast<machine*>(root.user_data());
  if (!mp || mp->gone || abandoned) return false;
  if (!routable(target)) return false;
  if (mp->outbox.size() >= opts.outbox_capacity) {
    log->warn("outbox full machine={} target={} event={}", detail::field(mp->id), detail::field(target),
              detail::field(ev.name));
    return false;
  }
  ev.name_id = npos;
  ev.resolved_by = nullptr;
  mp->outbox.push_back(outbound{mp->next_seq++, target, std::move(ev)});
  ++outbox_total;
  // A timer's send runs outside a macrostep: make sure the machine is written all the same.
  mark_dirty(mp->shared_from_this());
  return true;
}

// True for a target a machine may send to: a machine that exists (or may: while restoring, or
// remote machines), or a bus address.
bool orchestrator::impl::routable(const std::string& target) const {
  if (starts_with(target, machine_scheme)) {
    auto to = std::string_view(target).substr(machine_scheme.size());
    return !to.empty() && (restoring || opts.remote || machines.count(std::string(to)));
  }
  return starts_with(target, bus_scheme) && target.size() != bus_scheme.size();
}

// Delivers, in order, what is durable in the machine's outbox and not yet delivered.
void orchestrator::impl::deliver_outbox(const machine_ptr& m) {
  if (abandoned || shutting_down || m->remote_busy) return;
  // By sequence, not by iterator: a receiver's macrostep may append to this outbox, or confirm
  // (erase) entries of it.
  while (!m->gone) {
    auto it = std::upper_bound(m->outbox.begin(), m->outbox.end(), m->sent_upto,
                               [](std::uint64_t seq, const outbound& o) { return seq < o.seq; });
    if (it == m->outbox.end() || it->seq > m->durable_seq) return;
    const auto out = *it;  // a copy: delivery may change the outbox
    const auto before = m->sent_upto;
    m->sent_upto = out.seq;  // before delivery: a receiver may confirm it at once
    switch (send_one(m, out)) {
      case sent::done: break;
      case sent::blocked:  // tried again later, in order
        m->sent_upto = before;
        return;
      case sent::pending:  // with `options.remote`: the rest waits for its answer
        send_remote(m, out, before);
        return;
    }
  }
}

// One outbox message: `blocked` when it must wait (a full bus subscriber), `pending` when it is
// for `options.remote`.
orchestrator::impl::sent orchestrator::impl::send_one(const machine_ptr& m, const outbound& out) {
  if (starts_with(out.target, machine_scheme)) {
    const auto to = out.target.substr(machine_scheme.size());
    auto it = machines.find(to);
    if (it == machines.end()) {
      if (opts.remote) return sent::pending;
      note_unroutable(out.target, out.ev.name);
      confirm(m->id, to, out.seq);  // nobody to apply it: drop it
      return sent::done;
    }
    apply_message(it->second, m->id, out.seq, out.ev);
    return sent::done;
  }
  bus_message msg(out.target.substr(bus_scheme.size()), out.ev);
  msg.sender = m->id;
  msg.sequence = out.seq;
  auto ec = bus.publish(std::move(msg));
  if (ec == errc::queue_full) {
    if (std::find(publish_blocked.begin(), publish_blocked.end(), m->id) == publish_blocked.end())
      publish_blocked.push_back(m->id);
    schedule_publish_retry();
    return sent::blocked;
  }
  if (ec) {
    {
      std::lock_guard lock(status_mutex);
      ++counters.undeliverable;
      counters.last_error = "message of machine " + m->id + " to " + out.target + " dropped: " + ec.message();
    }
    log->warn("undeliverable machine={} target={} event={} error={}", detail::field(m->id), detail::field(out.target),
              detail::field(out.ev.name), detail::field(ec.message()));
  }
  // Published (or never will be): the bus has it now. A crash before the sender's next write
  // publishes it again, with the same (sender, sequence), for the consumer to drop.
  erase_sent(*m, out.seq);
  return sent::done;
}

void orchestrator::impl::erase_sent(machine& m, std::uint64_t seq) {
  auto pos = std::find_if(m.outbox.begin(), m.outbox.end(), [&](const outbound& o) { return o.seq == seq; });
  if (pos != m.outbox.end()) {
    m.outbox.erase(pos);
    --outbox_total;
    sync_outbox(m);
  }
}

// Hands one message to `options.remote`; the sender's later messages wait for its answer.
void orchestrator::impl::send_remote(const machine_ptr& m, const outbound& out, std::uint64_t before) {
  m->remote_busy = true;
  remote_message msg{m->id, out.seq, out.target.substr(machine_scheme.size()), out.ev};
  auto done = [w = weak_from_this(), m, seq = out.seq, before](std::error_code ec) {
    auto self = w.lock();
    if (!self) return;
    boost::asio::post(self->strand, [self, m, seq, before, ec] { self->on_remote_done(m, seq, before, ec); });
  };
  opts.remote(std::move(msg), std::move(done));
}

void orchestrator::impl::on_remote_done(const machine_ptr& m, std::uint64_t seq, std::uint64_t before,
                                        std::error_code ec) {
  m->remote_busy = false;
  if (m->gone || abandoned) return;
  if (ec) {  // still in the outbox (and stored): tried again after `publish_retry`, in order
    m->sent_upto = before;
    log->debug("remote send failed machine={} seq={} error={}", detail::field(m->id), seq, detail::field(ec.message()));
    if (std::find(publish_blocked.begin(), publish_blocked.end(), m->id) == publish_blocked.end())
      publish_blocked.push_back(m->id);
    schedule_publish_retry();
    return;
  }
  // The receiving side has it durably and applies it once: the sender may drop it. Not written
  // now: until the sender's next write a restore sends it again, and the receiver drops it.
  erase_sent(*m, seq);
  deliver_outbox(m);
}

void orchestrator::impl::apply_message(const machine_ptr& to, const std::string& sender, std::uint64_t seq,
                                       const event& ev) {
  auto& last = to->applied[sender];
  if (seq <= last || !to->s->running()) {
    if (seq <= last) count(&orchestrator_health::duplicates);
    // Already applied and written (or the receiver ended): the sender may drop it. A duplicate
    // whose first copy is still being written is confirmed by that write.
    if (!to->to_confirm.count(sender) && !to->confirming.count(sender)) confirm(sender, to->id, seq);
    return;
  }
  last = seq;
  to->to_confirm[sender] = seq;
  (void)process(to, ev);
  mark_dirty(to);
}

// The receiver's write carrying the sender's messages up to `seq` succeeded: drop them.
void orchestrator::impl::confirm(const std::string& sender, const std::string& receiver, std::uint64_t seq) {
  auto it = machines.find(sender);
  if (it == machines.end()) return;
  auto& m = *it->second;
  const auto n = m.outbox.size();
  std::erase_if(m.outbox, [&](const outbound& o) {
    return o.seq <= seq && o.seq <= m.sent_upto && starts_with(o.target, machine_scheme) &&
           std::string_view(o.target).substr(machine_scheme.size()) == receiver;
  });
  if (n != m.outbox.size()) {
    outbox_total -= n - m.outbox.size();
    sync_outbox(m);
  }
  // Not written now: the smaller outbox goes with the sender's next write, and until then a
  // restore delivers the dropped messages again, which the receiver drops.
}

void orchestrator::impl::schedule_publish_retry() {
  if (publish_timer) return;
  publish_timer = clk.schedule(clk.now() + opts.publish_retry, [w = weak_from_this()] {
    auto self = w.lock();
    if (!self) return;
    boost::asio::post(self->strand, [self] {
      self->publish_timer.reset();
      if (self->abandoned || self->shutting_down) return;
      auto ids = std::move(self->publish_blocked);
      self->publish_blocked.clear();
      for (const auto& id : ids)
        if (auto it = self->machines.find(id); it != self->machines.end()) self->deliver_outbox(it->second);
    });
  });
}

// ============================ persistence ============================

std::string orchestrator::impl::stored_text(machine& m) {
  json::object o{{"document", m.document}, {"snapshot", m.s->snapshot()}};
  {  // the active atomic states, for readers that do not load the document (xsn serve's GET)
    json::array states;
    for (auto& st : m.s->active_atomic_states()) states.emplace_back(st);
    o["states"] = std::move(states);
  }
  if (m.next_seq > 1) o["seq"] = m.next_seq;
  if (!m.outbox.empty()) {
    json::array ob;
    ob.reserve(m.outbox.size());
    for (const auto& e : m.outbox) ob.push_back(json::object{{"seq", e.seq}, {"to", e.target}, {"event", detail::event_to_json(e.ev)}});
    o["outbox"] = std::move(ob);
  }
  if (!m.applied.empty()) {
    json::object in;
    for (const auto& [s, n] : m.applied) in[s] = n;
    o["inbox"] = std::move(in);
  }
  if (!m.keys.empty()) {
    json::array ks;
    for (const auto& k : m.keys) ks.emplace_back(k);
    o["keys"] = std::move(ks);
  }
  return json::serialize(o);
}

void orchestrator::impl::persist(const machine_ptr& m, std::optional<ack> a) {
  if (!opts.persist) {
    m->dirty = false;
    refresh_status(*m);
    if (a) {
      std::vector<ack> one;
      one.push_back(std::move(*a));
      finish_acks(std::move(one), {});
    }
    // Nothing is written: what the outbox holds is delivered at once.
    m->durable_seq = m->next_seq - 1;
    deliver_outbox(m);
    return;
  }
  if (a) m->acks_next.push_back(std::move(*a));
  mark_dirty(m);
}

void orchestrator::impl::mark_dirty(const machine_ptr& m) {
  if (!opts.persist) {
    // No store: deliver what the machine sent once its macrostep is over.
    boost::asio::post(strand, [self = shared_from_this(), m] {
      if (m->gone || self->abandoned) return;
      self->refresh_status(*m);
      m->durable_seq = m->next_seq - 1;
      self->deliver_outbox(m);
    });
    return;
  }
  m->dirty = true;
  if (m->queued || m->writing || m->gone) return;
  m->queued = true;
  dirty_list.push_back(m);
  schedule_flush();
}

void orchestrator::impl::schedule_flush() {
  if (flush_posted || dirty_list.empty() || batches_in_flight >= std::max<std::size_t>(opts.batches_in_flight, 1)) return;
  flush_posted = true;
  boost::asio::post(strand, [self = shared_from_this()] {
    self->flush_posted = false;
    self->flush();
  });
}

// Gathers queued machines into store batches, as many batches as may be in flight.
void orchestrator::impl::flush() {
  if (abandoned) return;
  const auto max_batches = std::max<std::size_t>(opts.batches_in_flight, 1);
  while (batches_in_flight < max_batches && !dirty_list.empty()) {
    if (opts.store_breaker && !opts.store_breaker->try_acquire()) return fail_queued_writes();
    std::vector<batch_write> writes;
    std::vector<machine_ptr> ms;
    gather_batch(writes, ms);
    if (writes.empty()) {
      if (opts.store_breaker) opts.store_breaker->release();  // admitted, never made
      break;
    }
    ++batches_in_flight;
    store.async_write_batch(std::move(writes),
                            boost::asio::bind_executor(strand, [self = shared_from_this(), ms = std::move(ms)](
                                                                   std::error_code ec, std::vector<batch_result> r) mutable {
                              self->on_batch(std::move(ms), ec, std::move(r));
                            }));
  }
}

// The store is failing: fails the queued writes at once instead of waiting for it.
void orchestrator::impl::fail_queued_writes() {
  auto pending = std::move(dirty_list);
  dirty_list.clear();
  for (auto& m : pending) {
    m->queued = false;
    if (m->gone || m->writing || !m->dirty) continue;
    begin_write(*m);
    finish_write(m, errc::circuit_open);
  }
}

// Takes queued machines off the dirty list into one batch, up to batch_entries and batch_bytes
// (a first write larger than batch_bytes goes alone); those with nothing to write leave the list.
void orchestrator::impl::gather_batch(std::vector<batch_write>& writes, std::vector<machine_ptr>& ms) {
  std::size_t bytes = 0;
  while (!dirty_list.empty() && writes.size() < std::max<std::size_t>(opts.batch_entries, 1)) {
    auto m = dirty_list.front();
    if (m->gone || (m->writing && !m->retry) || !m->dirty) {
      m->queued = false;
      dirty_list.pop_front();
      continue;
    }
    auto text = stored_text(*m);
    const auto size = text.size() + opts.key_prefix.size() + m->id.size();
    if (!writes.empty() && bytes + size > opts.batch_bytes) break;
    dirty_list.pop_front();
    m->queued = false;
    bytes += size;
    begin_write(*m);
    batch_write w{key(m->id), std::move(text), m->creating ? store_version{0} : m->version, {}};
    writes.push_back(std::move(w));
    ms.push_back(std::move(m));
  }
}

void orchestrator::impl::begin_write(machine& m) {
  if (!m.writing) {
    m.writing = true;
    for (auto& a : m.acks_next) m.acks_writing.push_back(std::move(a));
    m.acks_next.clear();
    std::lock_guard lock(status_mutex);
    ++counters.writes_in_flight;
  }
  ++m.attempt;
  m.retry = false;
  m.dirty = false;
  m.writing_seq = m.next_seq - 1;
  for (auto& [s, n] : m.to_confirm) m.confirming[s] = std::max(m.confirming[s], n);
  m.to_confirm.clear();
  refresh_status(m);
}

void orchestrator::impl::on_batch(std::vector<machine_ptr> ms, std::error_code ec, std::vector<batch_result> results) {
  --batches_in_flight;
  if (abandoned) {
    if (opts.store_breaker) opts.store_breaker->release();  // its outcome no longer matters here
    return;
  }
  count(&orchestrator_health::batches);
  // A fenced write says the lease moved on, not that the store fails.
  bool failed = ec && ec != errc::fenced;
  for (std::size_t i = 0; i < ms.size(); ++i) {
    auto& m = ms[i];
    const batch_result r = i < results.size() ? results[i] : batch_result{ec ? ec : errc::store_unavailable, 0};
    if (on_write_result(m, r)) failed = true;
  }
  if (opts.store_breaker) {
    if (failed) opts.store_breaker->record_failure();
    else opts.store_breaker->record_success();
  }
  schedule_flush();
  maybe_finish_shutdown();
}

// One machine's write in a batch: done, refused, or queued again after a version conflict.
// True when the result tells of a failing store (neither a conflict nor fenced).
bool orchestrator::impl::on_write_result(const machine_ptr& m, const batch_result& r) {
  if (!r.ec) {
    m->version = r.version;
    m->creating = false;
    finish_write(m, {});
    return false;
  }
  const bool store_failed = r.ec != errc::version_conflict && r.ec != errc::fenced;
  if (r.ec == errc::version_conflict && m->creating) {
    finish_write(m, errc::already_exists);
    return store_failed;
  }
  if (r.ec != errc::version_conflict || m->attempt >= opts.max_write_attempts || m->gone) {
    finish_write(m, r.ec);
    return store_failed;
  }
  // Someone else wrote this key: this process runs the machine, so its state wins; the
  // conflict told the current version, write again with it (in the next batch).
  count(&orchestrator_health::write_conflicts);
  log->warn("write conflict machine={} version={} current={} attempt={}", detail::field(m->id), m->version,
            r.version, m->attempt);
  m->version = r.version;
  m->dirty = true;
  m->retry = true;
  m->queued = true;
  dirty_list.push_back(m);
  return store_failed;
}

void orchestrator::impl::finish_write(const machine_ptr& m, std::error_code ec) {
  // The store's cause (host, port, reason), asked now, while it is the latest.
  const auto why = write_error_text(ec);
  auto acks = std::move(m->acks_writing);
  m->acks_writing.clear();
  m->writing = false;
  m->attempt = 0;
  count_write(*m, ec, why);
  if (ec) write_failed(*m, ec, why);
  else write_succeeded(*m);
  finish_acks(std::move(acks), ec);
  if (!ec) deliver_outbox(m);
  if (m->gone) return;
  if (m->dirty && (!ec || !m->acks_next.empty())) mark_dirty(m);
}

// The store's cause of `ec` (host, port, reason), asked at once, while it is the latest; empty
// for a success.
std::string orchestrator::impl::write_error_text(std::error_code ec) const {
  if (!ec) return {};
  if (ec == errc::already_exists) return ec.message();
  return store.error_message(ec);
}

// A failed write: the caller's hook (not for `already_exists`), the log, and the machine stays
// dirty, its confirmations waiting for the next write.
void orchestrator::impl::write_failed(machine& m, std::error_code ec, const std::string& why) {
  if (ec != errc::already_exists && opts.on_write_error) opts.on_write_error(m.id, store_error(ec, why));
  log->error("write failed machine={} error={}", detail::field(m.id), detail::field(why));
  m.dirty = true;  // the state is still unsaved: the next event or shutdown writes it again
  for (auto& [s, n] : m.confirming) m.to_confirm[s] = std::max(m.to_confirm[s], n);
  m.confirming.clear();
}

// A successful write: what it made durable, the senders it confirms, the change watches.
void orchestrator::impl::write_succeeded(machine& m) {
  m.durable_seq = std::max(m.durable_seq, m.writing_seq);
  auto confirmed = std::move(m.confirming);
  m.confirming.clear();
  for (const auto& [sender, seq] : confirmed) confirm(sender, m.id, seq);
  notify_change(m);
}

// A write's outcome in the health counters, and the version in the machine's status.
void orchestrator::impl::count_write(const machine& m, std::error_code ec, const std::string& why) {
  std::lock_guard lock(status_mutex);
  --counters.writes_in_flight;
  if (ec) {
    ++counters.write_failures;
    counters.last_error = "write of machine " + m.id + " failed: " + why;
  } else {
    ++counters.writes;
  }
  if (auto it = status.find(m.id); it != status.end()) it->second.version = m.version;
}

void orchestrator::impl::finish_acks(std::vector<ack> acks, std::error_code ec) {
  for (auto& a : acks) {
    if (auto* sh = std::get_if<send_handler>(&a.h)) {
      complete(std::move(*sh), ec, ec ? send_result{} : std::move(a.result));
    } else {
      complete(std::move(std::get<done_handler>(a.h)), ec);
    }
  }
}

void orchestrator::impl::notify_change(const machine& m) {
  std::vector<std::shared_ptr<change_watch>> ws;
  {
    std::lock_guard lock(watches_mutex);
    if (watches.empty()) return;
    ws = watches;
  }
  machine_change c{m.id, m.s ? m.s->status() : session_status::stopped, m.version,
                   m.s ? m.s->active_atomic_states() : std::vector<std::string>{}};
  for (auto& w : ws) {
    std::lock_guard lock(w->mutex);
    if (!w->cancelled) w->fn(c);
  }
}

// ============================ restore and shutdown ============================

void orchestrator::impl::restore_page(std::string start_after, std::size_t restored,
                                      boost::asio::any_completion_handler<orchestrator::restore_signature> h) {
  list_options lo;
  lo.start_after = std::move(start_after);
  store.async_list(
      opts.key_prefix, lo,
      boost::asio::bind_executor(strand, [self = shared_from_this(), restored, limit = lo.limit, h = std::move(h)](
                                             std::error_code ec, std::vector<state_store::entry> page) mutable {
        if (self->abandoned) return self->complete(std::move(h), make_error_code(std::errc::operation_canceled), restored);
        if (ec) {
          self->restoring = false;
          const auto why = self->store.error_message(ec);
          self->log->error("restore failed error={}", detail::field(why));
          self->set_error("restore failed: " + why);
          return self->complete(std::move(h), ec, restored);
        }
        for (auto& [k, stored] : page)
          if (self->restore_entry(k, stored)) ++restored;
        if (page.size() < limit) return self->finish_restore(restored, std::move(h));
        self->restore_page(page.back().first, restored, std::move(h));
      }));
}

namespace {

// The `document` of a stored record, empty when it has none (or the record is not an object).
std::string document_of(const json::object* o) {
  if (!o || !o->contains("document") || !o->at("document").is_string()) return {};
  return std::string(o->at("document").as_string());
}

}  // namespace

// Restores the machine stored at `key`, unless it is already here; false when it was not
// restored (a failure is logged and kept as the last error).
bool orchestrator::impl::restore_entry(const std::string& key, const stored_value& stored) {
  auto id = key.substr(opts.key_prefix.size());
  if (machines.count(id)) return false;
  json::error_code jec;
  auto doc = json::parse(stored.value, jec);
  const auto* o = jec ? nullptr : doc.if_object();
  machine_ptr m;
  auto rec = !o ? std::error_code(errc::bad_snapshot) : add_machine(id, document_of(o), o, stored.version, m);
  if (!rec) return true;
  log->error("restore failed machine={} error={}", detail::field(id), detail::field(rec.message()));
  set_error("restore of machine " + id + " failed: " + rec.message());
  return false;
}

// Every machine is back: deliver again what their outboxes hold, in each sender's order.
void orchestrator::impl::finish_restore(std::size_t restored,
                                        boost::asio::any_completion_handler<orchestrator::restore_signature> h) {
  restoring = false;
  std::vector<machine_ptr> senders;
  for (auto& [id, m] : machines)
    if (!m->outbox.empty() && m->sent_upto < m->durable_seq) senders.push_back(m);
  std::sort(senders.begin(), senders.end(), [](const machine_ptr& a, const machine_ptr& b) { return a->id < b->id; });
  for (auto& m : senders) deliver_outbox(m);
  {
    std::lock_guard lock(status_mutex);
    counters.outbox = outbox_total;
  }
  complete(std::move(h), std::error_code{}, restored);
}

void orchestrator::impl::maybe_finish_shutdown() {
  if (!shutting_down || !shutdown_handler || batches_in_flight != 0) return;
  for (auto& [id, m] : machines)
    if (m->writing || m->queued) return;
  finish_shutdown();
}

// The bus subscription and the publish retry timer end (shutdown and abandonment alike).
void orchestrator::impl::stop_io() {
  if (inbox) {
    inbox->cancel();
    inbox.reset();
  }
  if (publish_timer) {
    clk.cancel(*publish_timer);
    publish_timer.reset();
  }
}

void orchestrator::impl::finish_shutdown() {
  stop_io();
  for (auto& [id, m] : machines) {
    m->gone = true;
    m->s.reset();  // cancels its timers and children
  }
  machines.clear();
  dirty_list.clear();
  {
    std::lock_guard lock(status_mutex);
    status.clear();
  }
  auto h = std::move(*shutdown_handler);
  shutdown_handler.reset();
  std::error_code ec;
  {
    std::lock_guard lock(status_mutex);
    if (counters.write_failures) ec = errc::store_unavailable;
  }
  complete(std::move(h), ec);
}

// Destroyed without shutdown, as a crash would leave it: nothing more is written or delivered;
// whoever waits for a write is told it was cancelled.
void orchestrator::impl::abandon() {
  abandoned = true;
  accepting = false;
  stop_io();
  for (auto& [id, m] : machines) {
    m->gone = true;
    auto acks = std::move(m->acks_writing);
    for (auto& a : m->acks_next) acks.push_back(std::move(a));
    m->acks_writing.clear();
    m->acks_next.clear();
    finish_acks(std::move(acks), make_error_code(std::errc::operation_canceled));
    m->s.reset();  // its timers and children end now
  }
  dirty_list.clear();
}

// ============================ public ============================

orchestrator::orchestrator(boost::asio::any_io_executor ex, xsn::clock& clk, event_bus& bus, state_store& store,
                           orchestrator_options options)
    : impl_(std::make_shared<impl>(std::move(ex), clk, bus, store, std::move(options))) {}

orchestrator::orchestrator(std::size_t threads, xsn::clock& clk, event_bus& bus, state_store& store,
                           orchestrator_options options)
    : pool_(std::make_unique<boost::asio::thread_pool>(threads ? threads : 1)),
      impl_(std::make_shared<impl>(pool_->get_executor(), clk, bus, store, std::move(options))) {}

orchestrator::~orchestrator() {
  // Without a completed shutdown, abandon what is left on the strand: subscriptions end their
  // waits, timers are cancelled, no write is started any more. An owned pool then finishes its
  // handlers and is joined.
  boost::asio::post(impl_->strand, [self = impl_] { self->abandon(); });
  impl_.reset();
  if (pool_) pool_->join();
}

result<void> orchestrator::add_document(std::string name, std::shared_ptr<const statechart> chart) {
  return impl_->add(std::move(name), std::move(chart), impl_->opts.session, false);
}

result<void> orchestrator::add_document(std::string name, std::shared_ptr<const statechart> chart,
                                        document_options options) {
  return impl_->add(std::move(name), std::move(chart), std::move(options.session), false);
}

result<void> orchestrator::add_document(std::string name, std::shared_ptr<const statechart> chart,
                                        std::shared_ptr<const bound_implementations> bound, document_options options) {
  if (!bound) return eval_error{"document '" + name + "': no bindings"};
  if (options.session.make_datamodel)
    return eval_error{"document '" + name + "': give either bindings or a datamodel factory, not both"};
  if (chart && chart->semantics != chart_semantics::xstate)
    return impl_->add(std::move(name), std::move(chart), std::move(options.session), true);
  options.session.make_datamodel = xstate_datamodel(std::move(bound));
  return impl_->add(std::move(name), std::move(chart), std::move(options.session), true);
}

result<void> orchestrator::add_document(std::string name, std::shared_ptr<const statechart> chart,
                                        const implementations& impl, document_options options) {
  if (!chart) return eval_error{"document '" + name + "': no chart"};
  if (chart->semantics != chart_semantics::xstate)
    return impl_->add(std::move(name), std::move(chart), std::move(options.session), true);
  auto bound = bind(*chart, impl);
  if (!bound) return eval_error{"document '" + name + "': " + bound.error().message};
  return add_document(std::move(name), std::move(chart), std::move(*bound), std::move(options));
}

void orchestrator::do_create(std::string id, std::string document, value input,
                             boost::asio::any_completion_handler<done_signature> h) {
  boost::asio::post(impl_->strand, [self = impl_, id = std::move(id), document = std::move(document),
                                    input = std::move(input), h = std::move(h)]() mutable {
    if (!self->accepting) return self->complete(std::move(h), std::error_code(errc::not_running));
    if (id.empty() || id.size() + self->opts.key_prefix.size() > state_store::max_key_size)
      return self->complete(std::move(h), std::error_code(errc::invalid_argument));
    impl::machine_ptr m;
    if (auto ec = self->add_machine(id, document, nullptr, 0, m, &input)) return self->complete(std::move(h), ec);
    self->log->info("created machine={} document={}", detail::field(id), detail::field(document));
    if (!self->opts.persist) {
      self->persist(m, std::nullopt);
      return self->complete(std::move(h), std::error_code{});
    }
    // First write: create-only, so an id that is already stored is refused rather than overwritten.
    m->creating = true;
    auto done = boost::asio::bind_executor(self->strand, [self, m, h = std::move(h)](std::error_code ec) mutable {
      if (ec == errc::already_exists || (ec && m->creating)) self->remove(m);
      self->complete(std::move(h), ec);
    });
    self->persist(m, impl::ack{done_handler(std::move(done)), {}});
  });
}

// A repeat: acknowledged once what the first one did is written, and never applied again.
void orchestrator::impl::ack_duplicate(const machine_ptr& m, ack a) {
  a.result = result_of(*m, false, true);
  count(&orchestrator_health::duplicates);
  if (m->writing || m->dirty) {
    m->acks_next.push_back(std::move(a));
    if (!m->writing) mark_dirty(m);
  } else {
    std::vector<ack> one;
    one.push_back(std::move(a));
    finish_acks(std::move(one), {});
  }
}

// A machine message from another orchestrator: applied once per (sender, sequence), remembered in
// the receiver's stored inbox, acknowledged once the write carrying it succeeded.
void orchestrator::impl::apply_remote(const machine_ptr& m, const send_options& o, const event& ev, ack a) {
  auto& last = m->applied[o.sender];
  if (o.sequence <= last) return ack_duplicate(m, std::move(a));
  if (!m->s->running()) {
    return complete(std::move(std::get<send_handler>(a.h)), std::error_code(errc::not_running), send_result{});
  }
  last = o.sequence;
  const bool transitioned = process(m, ev);
  a.result = result_of(*m, transitioned, false);
  persist(m, std::move(a));
}

void orchestrator::do_send(std::string id, event ev, send_options opts,
                           boost::asio::any_completion_handler<send_signature> h) {
  boost::asio::post(impl_->strand, [self = impl_, id = std::move(id), ev = std::move(ev), opts = std::move(opts),
                                    h = std::move(h)]() mutable {
    if (!self->accepting) return self->complete(std::move(h), std::error_code(errc::not_running), send_result{});
    auto it = self->machines.find(id);
    if (it == self->machines.end())
      return self->complete(std::move(h), std::error_code(errc::unknown_machine), send_result{});
    auto m = it->second;
    impl::ack a{send_handler(std::move(h)), {}};
    if (!opts.sender.empty() && opts.sequence != 0) return self->apply_remote(m, opts, ev, std::move(a));
    if (!opts.idempotency_key.empty() && self->opts.idempotency_keys > 0 && m->key_set.count(opts.idempotency_key))
      return self->ack_duplicate(m, std::move(a));
    if (!m->s->running()) {
      return self->complete(std::move(std::get<send_handler>(a.h)), std::error_code(errc::not_running), send_result{});
    }
    if (!opts.idempotency_key.empty()) self->remember_key(*m, opts.idempotency_key);
    const bool transitioned = self->process(m, ev);
    a.result = self->result_of(*m, transitioned, false);
    self->persist(m, std::move(a));
  });
}

void orchestrator::do_stop(std::string id, bool erase, boost::asio::any_completion_handler<done_signature> h) {
  boost::asio::post(impl_->strand, [self = impl_, id = std::move(id), erase, h = std::move(h)]() mutable {
    auto it = self->machines.find(id);
    if (it == self->machines.end()) return self->complete(std::move(h), std::error_code(errc::unknown_machine));
    auto m = it->second;
    m->s->stop();
    self->remove(m);
    if (!erase) return self->complete(std::move(h), std::error_code{});
    self->store.async_erase(self->key(id), boost::asio::bind_executor(self->strand, [self, h = std::move(h)](
                                                                                        std::error_code ec, store_version) mutable {
      self->complete(std::move(h), ec);
    }));
  });
}

void orchestrator::do_restore(boost::asio::any_completion_handler<restore_signature> h) {
  boost::asio::post(impl_->strand, [self = impl_, h = std::move(h)]() mutable {
    if (!self->accepting) return self->complete(std::move(h), std::error_code(errc::not_running), std::size_t{0});
    self->restoring = true;
    self->restore_page({}, 0, std::move(h));
  });
}

void orchestrator::do_snapshot(std::string id, boost::asio::any_completion_handler<snapshot_signature> h) {
  boost::asio::post(impl_->strand, [self = impl_, id = std::move(id), h = std::move(h)]() mutable {
    auto it = self->machines.find(id);
    if (it == self->machines.end() || !it->second->s)
      return self->complete(std::move(h), std::error_code(errc::unknown_machine), value());
    auto& m = *it->second;
    json::array states;
    for (auto& st : m.s->active_atomic_states()) states.emplace_back(st);
    json::object o{{"id", m.id},
                   {"document", m.document},
                   {"version", m.version},
                   {"status", to_string(m.s->status())},
                   {"states", std::move(states)},
                   {"outbox", m.outbox.size()},
                   {"snapshot", m.s->snapshot()}};
    self->complete(std::move(h), std::error_code{}, value(std::move(o)));
  });
}

void orchestrator::do_shutdown(clock::duration deadline, boost::asio::any_completion_handler<done_signature> h) {
  boost::asio::post(impl_->strand, [self = impl_, deadline, h = std::move(h)]() mutable {
    if (!self->accepting) return self->complete(std::move(h), std::error_code(errc::not_running));
    const auto until = self->clk.now() + deadline;
    // Process what the bus already accepted for the machines, within the deadline.
    if (self->inbox) {
      std::array<bus_message, 64> batch;
      while (self->clk.now() <= until) {
        auto n = self->inbox->try_receive_batch(batch);
        if (n == 0) break;
        for (std::size_t i = 0; i < n; ++i) self->deliver(batch[i]);
      }
    }
    self->accepting = false;
    self->shutting_down = true;
    self->shutdown_handler = std::move(h);
    // One final write of every machine that changed since its last one; outboxes stay stored.
    for (auto& [id, m] : self->machines)
      if (m->dirty && !m->writing && !m->gone) self->mark_dirty(m);
    if (!self->opts.persist) return self->finish_shutdown();
    self->maybe_finish_shutdown();
  });
}

watch_handle orchestrator::watch_changes(std::function<void(const machine_change&)> fn) {
  if (!fn) throw std::system_error(make_error_code(errc::invalid_argument), "watch_changes: empty callback");
  auto w = std::make_shared<impl::change_watch>();
  w->fn = std::move(fn);
  {
    std::lock_guard lock(impl_->watches_mutex);
    impl_->watches.push_back(w);
  }
  struct sub final : watch_handle::subscription {
    std::weak_ptr<impl> owner;
    std::shared_ptr<impl::change_watch> w;
    void cancel() noexcept override {
      {
        std::lock_guard lock(w->mutex);  // waits for a callback running on another thread
        w->cancelled = true;
      }
      if (auto o = owner.lock()) {
        std::lock_guard lock(o->watches_mutex);
        std::erase(o->watches, w);
      }
    }
  };
  auto s = std::make_unique<sub>();
  s->owner = impl_;
  s->w = std::move(w);
  return watch_handle(std::move(s));
}

std::vector<std::string> orchestrator::list() const {
  std::lock_guard lock(impl_->status_mutex);
  std::vector<std::string> out;
  out.reserve(impl_->status.size());
  for (auto& [id, st] : impl_->status) out.push_back(id);
  std::sort(out.begin(), out.end());
  return out;
}

std::optional<machine_status> orchestrator::query(std::string_view id) const {
  std::lock_guard lock(impl_->status_mutex);
  auto it = impl_->status.find(std::string(id));
  if (it == impl_->status.end()) return std::nullopt;
  return it->second;
}

orchestrator_health orchestrator::health() const {
  std::lock_guard lock(impl_->status_mutex);
  auto h = impl_->counters;
  h.machines = impl_->status.size();
  h.running = 0;
  for (auto& [id, st] : impl_->status) h.running += st.running ? 1 : 0;
  h.accepting = impl_->accepting.load();
  if (auto id = impl_->inbox_id.load())
    for (const auto& sub : impl_->bus.health().subscriptions)
      if (sub.id == id) h.bus_backlog = sub.backlog;
  h.store_reachable = impl_->store.health().reachable;
  if (impl_->opts.store_breaker) h.store_breaker = std::string(to_string(impl_->opts.store_breaker->state()));
  return h;
}

boost::asio::any_io_executor orchestrator::get_executor() const noexcept { return impl_->strand; }

}  // namespace xsn::inline v0
