// The `xsn serve` node: partitions under fenced leases, inbox streams, membership, answers.
//
// Life of an outside event (POST /machines/X/events on any node):
//   1. the receiving node adds {op: event, to: X, event, key, reply} to X's partition stream
//      (the node script's `xadd`, refused when the stream is at capacity) and waits;
//   2. the partition's owner reads it (XREADGROUP, consumer group `xsn`), applies it through its
//      orchestrator with the idempotency key (a key seen before is not applied again),
//      persists the machine with a write fenced by the lease epoch, then
//   3. acknowledges and deletes the entry (XACK + XDEL) and publishes the answer on the
//      receiving node's reply channel.
// A crash between 2 and 3 leaves the entry pending: the next owner claims it (XAUTOCLAIM)
// and the stored key makes its effect happen once. Machine-to-machine messages go the same way
// with (sender, sequence) instead of a key (orchestrator_options::remote).
#include "node.hpp"

#include "fenced_store.hpp"
#include "keys.hpp"
#include "metrics.hpp"
#include "wall_clock.hpp"

#include <xsn/bus/channel_event_bus.hpp>
#include <xsn/orchestrator/orchestrator.hpp>
#include <xsn/resilience/simple_circuit_breaker.hpp>
#include <xsn/store/memory_state_store.hpp>
#include "core/logging_detail.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/json.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <optional>
#include <random>
#include <unordered_map>
#include <unordered_set>
#include <utility>

namespace xsn::inline v0::distributed {

namespace json = boost::json;
using steady = std::chrono::steady_clock;
using strand_type = advanced::detail::strand_type;

namespace {

std::string random_hex(std::size_t n) {
  static const char* digits = "0123456789abcdef";
  std::random_device rd;
  std::string s;
  for (std::size_t i = 0; i < n; ++i) s += digits[rd() % 16];
  return s;
}

/// One stream entry: its id and fields.
struct stream_entry {
  std::string id;
  std::unordered_map<std::string, std::string> fields;
  const std::string& operator[](const std::string& k) const {
    static const std::string none;
    auto it = fields.find(k);
    return it == fields.end() ? none : it->second;
  }
};

/// Reads `[[id, [field, value, ...]], ...]`.
void read_entries(const redisReply* list, std::vector<stream_entry>& out) {
  if (!is_array(list)) return;
  for (std::size_t i = 0; i < list->elements; ++i) {
    const auto* e = list->element[i];
    if (!is_array(e) || e->elements != 2) continue;
    stream_entry se;
    se.id = std::string(str(e->element[0]));
    const auto* f = e->element[1];
    if (is_array(f))
      for (std::size_t j = 0; j + 1 < f->elements; j += 2)
        se.fields.emplace(std::string(str(f->element[j])), std::string(str(f->element[j + 1])));
    out.push_back(std::move(se));
  }
}

/// Reads an XREADGROUP reply, `[[stream, [[id, [field, value, ...]], ...]], ...]`.
void read_streams(const redisReply* r, std::vector<stream_entry>& out) {
  if (!is_array(r)) return;
  for (std::size_t i = 0; i < r->elements; ++i)
    if (is_array(r->element[i]) && r->element[i]->elements == 2) read_entries(r->element[i]->element[1], out);
}

json::value error_body(std::string_view message) { return json::object{{"error", message}}; }

/// The event of an "event" or "msg" entry, `{"name": string, "data"?: any}`; false when malformed.
bool event_of(const stream_entry& e, event& ev) {
  boost::system::error_code jec;
  auto ej = json::parse(e["event"], jec);
  if (jec || !ej.is_object() || !ej.as_object().if_contains("name") || !ej.at("name").is_string()) return false;
  ev.name = std::string(ej.at("name").as_string());
  if (const auto* d = ej.as_object().if_contains("data")) ev.data = *d;
  return true;
}

/// A member's entry in the cluster view: its owner id and the fields of its info, when that is a
/// JSON object.
json::object member_entry(std::string_view owner, std::string_view info_text) {
  boost::system::error_code jec;
  auto info = json::parse(info_text, jec);
  json::object n{{"owner", owner}};
  if (!jec && info.is_object())
    for (auto& [k, v] : info.as_object()) n[k] = v;
  return n;
}

/// A partition's owner and epoch in the cluster view, from its lease "<owner> <epoch>" (a string
/// reply; anything else leaves them).
void read_lease(json::object& o, const redisReply* r) {
  if (!r || r->type != REDIS_REPLY_STRING) return;
  auto s = std::string(str(r));
  auto sp = s.rfind(' ');
  o["owner"] = s.substr(0, sp);
  if (sp != std::string::npos) o["epoch"] = std::strtoull(s.c_str() + sp + 1, nullptr, 10);
}

/// The reply to an event applied to machine `id`.
json::value sent_body(const std::string& id, const send_result& r) {
  json::array states;
  for (auto& s : r.states) states.emplace_back(s);
  return json::object{{"id", id}, {"status", to_string(r.status)}, {"configuration", std::move(states)},
                      {"transitioned", r.transitioned}, {"duplicate", r.duplicate}};
}

// A copy of o[name], or `fallback` when there is no o or no such field.
json::value field_or(const json::object* o, std::string_view name, json::value fallback) {
  if (o == nullptr) return fallback;
  if (const auto* v = o->if_contains(name)) return *v;
  return fallback;
}

}  // namespace

struct node::impl : std::enable_shared_from_this<impl> {
  /// A partition this node holds (or is taking or giving up).
  struct partition {
    unsigned index = 0;
    std::uint64_t epoch = 0;
    std::string fence;  // "<owner> <epoch>"
    enum class phase { starting, running, leaving } ph = phase::starting;
    bool alive = true;  // false once dropped or handed over: late callbacks do nothing
    steady::time_point valid_until;
    std::shared_ptr<fenced_store> store;  // before `orch`: outlives it
    std::unique_ptr<orchestrator> orch;
    std::shared_ptr<redis_client> reader;  // blocking reads of the stream
    bool reading = false;
    bool claiming = false;     // taking earlier owners' pending entries: new ones wait (order)
    std::string claim_cursor;  // where claiming resumes once fewer entries are in flight
    std::size_t inflight = 0;
    std::unordered_set<std::string> applying;  // ids of the entries in flight
    unsigned ticks = 0;                        // since taken: sweeps run every third
    std::vector<std::string> acks;  // entries to acknowledge and delete
    std::vector<std::shared_ptr<boost::asio::steady_timer>> pauses;  // `later`'s, cancelled on stop
    bool ack_posted = false;
  };
  using partition_ptr = std::shared_ptr<partition>;

  /// An HTTP call waiting for the owner's answer.
  struct request {
    reply_handler h;
    std::unique_ptr<boost::asio::steady_timer> timer;
    steady::time_point started;
  };

  impl(boost::asio::io_context& io, node_options o)
      : io(io), strand(boost::asio::make_strand(io.get_executor())), clk(io.get_executor()), opts(std::move(o)),
        ks{opts.prefix}, bus(io.get_executor(), clk), breaker(clk, breaker_options()),
        log(detail::component_logger("xsn.node")) {
    if (opts.node_id.empty()) opts.node_id = "node-" + random_hex(6);
    owner = opts.node_id + "#" + random_hex(8);
    slots.resize(opts.partitions);
    m_events = &registry.add_counter("xsn_events_total", "Events applied by this node's partitions.");
    m_acks = &registry.add_counter("xsn_acknowledgements_total", "Stream entries applied, persisted and acknowledged.");
    m_ack_latency = &registry.add_histogram("xsn_ack_latency_seconds",
                                            "From an HTTP call to the owner's answer (persisted), seconds.");
    m_partitions = &registry.add_gauge("xsn_partitions_held", "Partitions this node runs.");
    m_lag = &registry.add_gauge("xsn_stream_lag", "Entries waiting in the streams of the partitions held.");
    m_store_errors = &registry.add_counter("xsn_store_errors_total", "Store writes that failed (not fenced).");
    m_fenced = &registry.add_counter("xsn_fenced_writes_total", "Writes refused because the lease moved on.");
    m_breaker = &registry.add_gauge("xsn_store_breaker_open", "1 while the store circuit breaker is not closed.");
    m_timeouts = &registry.add_counter("xsn_request_timeouts_total", "HTTP calls answered 504.");
    m_failovers = &registry.add_counter("xsn_partitions_taken_total", "Partitions this node took over.");
    m_dropped = &registry.add_counter("xsn_partitions_dropped_total", "Partitions stopped because the lease was lost.");
  }

  static simple_breaker_options breaker_options() {
    simple_breaker_options b;
    b.failure_threshold = 5;
    b.open_duration = std::chrono::seconds(1);
    b.name = "store";
    return b;
  }

  boost::asio::io_context& io;
  strand_type strand;
  wall_clock clk;
  node_options opts;
  keyspace ks;
  std::string owner;
  channel_event_bus bus;
  simple_circuit_breaker breaker;
  std::shared_ptr<spdlog::logger> log;
  std::map<std::string, std::shared_ptr<const statechart>> documents;

  std::shared_ptr<redis_client> cmd, sub;
  boost::asio::steady_timer tick_timer{strand};
  boost::asio::steady_timer expiry_timer{strand};  // the next other member's heartbeat expiry
  bool started = false, stopping = false, joined = false, redis_up = false, sub_up = false;
  bool config_ok = false;  // the deployment's partition count is ours
  std::string fatal;       // why this node cannot join (then it never does)
  std::vector<std::string> members;  // live owners, sorted
  std::vector<partition_ptr> slots;  // by partition index; null: not held
  std::vector<bool> acquiring;
  std::uint64_t next_request = 1;
  std::unordered_map<std::uint64_t, request> requests;
  std::function<void()> stop_done;
  std::size_t leaving = 0;

  metrics_registry registry;
  counter *m_events, *m_acks, *m_store_errors, *m_fenced, *m_timeouts, *m_failovers, *m_dropped;
  histogram* m_ack_latency;
  gauge *m_partitions, *m_lag, *m_breaker;

  // ---- lifecycle ----
  void start();
  void tick();
  void drop_expired_leases();
  void renew_leases();
  void sweep_running();
  void schedule_tick();
  void heartbeat();
  void check_config();
  bool ready(std::string& why) const;
  void measure_lag();
  void sweep(const partition_ptr& p);
  void on_members(const redisReply* r);
  void rebalance();
  void renew(const partition_ptr& p);
  void acquire(unsigned index);
  void take(unsigned index, std::uint64_t epoch);
  void begin_reading(const partition_ptr& p);
  void claim(const partition_ptr& p, std::string cursor);
  void read(const partition_ptr& p);
  void later(const partition_ptr& p, std::function<void()> fn);
  void handover(const partition_ptr& p, std::function<void()> then = {});
  void drop(partition_ptr p, std::string_view why);  // by value: callers pass slots[i], which it clears
  void stop(std::function<void()> done);
  void finish_stop();

  // ---- entries ----
  struct entry_done;
  void apply(const partition_ptr& p, stream_entry e);
  void apply_event(const partition_ptr& p, const stream_entry& e, const entry_done& finish);
  void apply_create(const partition_ptr& p, const stream_entry& e, const entry_done& finish);
  void apply_delete(const partition_ptr& p, const stream_entry& e, const entry_done& finish);
  void finish_entry(const partition_ptr& p, const stream_entry& e, bool acknowledge, unsigned status, json::value body);
  void flush_acks(const partition_ptr& p);
  void answer(const std::string& reply_to, unsigned status, json::value body);
  bool store_trouble(const partition_ptr& p, std::error_code ec);
  json::object stored_view(const std::string& id, const json::object& record) const;

  // ---- requests ----
  void submit(unsigned partition, std::vector<std::string> fields, reply_handler h);
  void on_reply(std::string_view payload);
  void remote(remote_message msg, remote_done done);

  void tell(unsigned index, std::string_view what) {
    if (opts.on_partition) opts.on_partition(index, what);
  }
  partition_ptr held(unsigned i) const { return i < slots.size() ? slots[i] : nullptr; }
  std::size_t held_count() const {
    return static_cast<std::size_t>(std::count_if(slots.begin(), slots.end(), [](const partition_ptr& p) { return p != nullptr; }));
  }
};

// ============================ lifecycle ============================

void node::impl::start() {
  started = true;
  acquiring.assign(opts.partitions, false);
  std::weak_ptr<impl> weak = weak_from_this();
  cmd = make_client(strand, opts.redis, [weak](bool up, const std::string& why) {
    auto self = weak.lock();
    if (!self) return;
    self->redis_up = up;
    if (!up) self->log->warn("redis unreachable: {}", why);
    else if (self->opts.redis.cluster.empty()) self->log->info("redis connected {}:{}", self->opts.redis.host, self->opts.redis.port);
    else self->log->info("redis cluster connected seeds={}", self->opts.redis.cluster.size());
  });
  auto sub_ep = opts.redis;  // pub/sub: any node of a cluster delivers every channel's messages
  if (!sub_ep.cluster.empty()) {
    sub_ep.host = sub_ep.cluster.front().first;
    sub_ep.port = sub_ep.cluster.front().second;
    sub_ep.cluster.clear();
  }
  sub = node_link::subscriber(
      strand, sub_ep, ks.reply_channel(owner),
      [weak](std::string_view payload) {
        if (auto self = weak.lock()) self->on_reply(payload);
      },
      [weak](bool up, const std::string&) {
        if (auto self = weak.lock()) self->sub_up = up;
      });
  log->info("node starting owner={} partitions={} lease_ms={}", owner, opts.partitions, opts.lease.count());
  tick();
}

// Every third of the lease: membership heartbeat, lease renewals, rebalancing, expiry check.
void node::impl::tick() {
  if (stopping) return;
  drop_expired_leases();
  if (config_ok) heartbeat();
  else if (fatal.empty()) check_config();
  renew_leases();
  measure_lag();
  sweep_running();
  schedule_tick();
  m_breaker->set(breaker.state() == breaker_state::closed ? 0 : 1);
}

// Not renewed in time (Redis unreachable): stop before another node may take it.
void node::impl::drop_expired_leases() {
  const auto now = steady::now();
  for (auto& p : slots) {
    if (p && p->ph != partition::phase::leaving && now + opts.lease / 3 >= p->valid_until) drop(p, "lease not renewed in time");
  }
}

void node::impl::renew_leases() {
  for (auto& p : slots)
    if (p && p->ph != partition::phase::leaving) renew(p);
}

// Every third tick of a running partition that is not claiming.
void node::impl::sweep_running() {
  for (auto& p : slots)
    if (p && p->ph == partition::phase::running && !p->claiming && ++p->ticks % 3 == 0) sweep(p);
}

void node::impl::schedule_tick() {
  tick_timer.expires_after(opts.lease / 3);
  tick_timer.async_wait([w = weak_from_this()](boost::system::error_code ec) {
    if (ec) return;
    if (auto self = w.lock()) self->tick();
  });
}

// The partition count is fixed for a deployment: the first node records it; a node configured
// with another count would send machines to other partitions' streams, so it never joins.
void node::impl::check_config() {
  cmd->command({"SET", ks.config(), std::to_string(opts.partitions), "NX"}, [](std::error_code, const redisReply*) {});
  cmd->command({"GET", ks.config()}, [self = shared_from_this()](std::error_code ec, const redisReply* r) {
    if (self->config_ok || !self->fatal.empty() || ec || !r || r->type != REDIS_REPLY_STRING) return;
    if (str(r) == std::to_string(self->opts.partitions)) {
      self->config_ok = true;
      return self->heartbeat();
    }
    self->fatal = "partition count mismatch: this node is configured with " + std::to_string(self->opts.partitions) +
                  ", the deployment under prefix '" + self->opts.prefix + "' has " + std::string(str(r));
    self->log->error("{}", self->fatal);
    if (self->opts.on_fatal) self->opts.on_fatal(self->fatal);
  });
}

// Entries delivered and never acknowledged, idle for long: an earlier owner's blocked read can
// take an entry after the new owner's claim (its connection was closing), leaving it in a
// consumer nobody reads for. Claimed here and applied (once: keys and sequences).
void node::impl::sweep(const partition_ptr& p) {
  const auto idle = std::max<std::int64_t>(5000, 2 * opts.lease.count());
  cmd->command({"XAUTOCLAIM", ks.stream(p->index), std::string(stream_group), owner, std::to_string(idle), "0-0",
                "COUNT", std::to_string(opts.read_batch)},
               [self = shared_from_this(), p](std::error_code ec, const redisReply* r) {
                 if (ec || !p->alive || p->ph != partition::phase::running || !is_array(r) || r->elements < 2) return;
                 std::vector<stream_entry> entries;
                 read_entries(r->element[1], entries);
                 if (!entries.empty())
                   self->log->warn("stale entries claimed partition={} count={}", p->index, entries.size());
                 for (auto& e : entries) self->apply(p, std::move(e));
               });
}

// xsn_stream_lag: the entries not yet applied in the streams of the partitions held (XLEN: the
// applied ones are deleted), summed once all have answered.
void node::impl::measure_lag() {
  auto st = std::make_shared<std::pair<std::size_t, std::int64_t>>(0, 0);  // answers left, sum
  for (auto& p : slots)
    if (p && p->ph == partition::phase::running) ++st->first;
  if (st->first == 0) return m_lag->set(0);
  for (auto& p : slots) {
    if (!p || p->ph != partition::phase::running) continue;
    cmd->command({"XLEN", ks.stream(p->index)}, [self = shared_from_this(), st](std::error_code ec, const redisReply* r) {
      if (!ec) st->second += to_int(r).value_or(0);
      if (--st->first == 0) self->m_lag->set(static_cast<double>(st->second));
    });
  }
}

// Membership: this node's heartbeat; the answer lists the live members.
void node::impl::heartbeat() {
  json::object info{{"node", opts.node_id}, {"http", opts.http_address}};
  cmd->script({ks.nodes(), ks.nodeinfo()},
              {"members", owner, std::to_string(opts.lease.count()), json::serialize(info)},
              [self = shared_from_this()](std::error_code ec, const redisReply* r) {
                if (self->stopping) return;
                if (ec || is_error(r) || !is_array(r)) {
                  if (self->joined) self->log->warn("membership heartbeat failed: {}", ec ? ec.message() : std::string(str(r)));
                  self->joined = false;
                  return;
                }
                self->on_members(r);
              });
}

void node::impl::on_members(const redisReply* r) {
  // {now, owner, expiry, owner, expiry, ...} in Redis time (ms)
  std::vector<std::string> live;
  const auto now = to_int(r->element[0]).value_or(0);
  std::optional<std::int64_t> next_expiry;
  for (std::size_t i = 1; i + 1 < r->elements; i += 2) {
    live.emplace_back(str(r->element[i]));
    const auto expiry = to_int(r->element[i + 1]).value_or(0);
    if (live.back() != owner && (!next_expiry || expiry < *next_expiry)) next_expiry = expiry;
  }
  std::sort(live.begin(), live.end());
  // A member that stops beating is noticed when its entry expires, not up to a tick later.
  if (next_expiry && *next_expiry >= now) {
    expiry_timer.expires_after(std::chrono::milliseconds(*next_expiry - now + 20));
    expiry_timer.async_wait([w = weak_from_this()](boost::system::error_code ec) {
      if (ec) return;
      if (auto self = w.lock(); self && !self->stopping) self->heartbeat();
    });
  }
  if (!joined) log->info("joined membership nodes={}", live.size());
  if (live != members) log->info("membership changed nodes={}", live.size());
  joined = true;
  members = std::move(live);
  rebalance();
}

// Each member holds P/N partitions, plus or minus one (assign_partitions).
void node::impl::rebalance() {
  if (members.empty() || stopping) return;
  const auto target = assign_partitions(opts.partitions, members);
  for (unsigned i = 0; i < opts.partitions; ++i) {
    const bool mine = members[target[i]] == owner;
    auto p = slots[i];
    if (mine && !p && !acquiring[i]) acquire(i);
    if (!mine && p && p->ph == partition::phase::running) handover(p);
  }
}

void node::impl::renew(const partition_ptr& p) {
  const auto sent = steady::now();
  cmd->script({ks.lease(p->index)}, {"renew", p->fence, std::to_string(opts.lease.count())},
              [self = shared_from_this(), p, sent](std::error_code ec, const redisReply* r) {
                if (!p->alive || ec || is_error(r)) return;  // not renewed: the expiry check decides
                if (to_int(r).value_or(0) == 1) {
                  p->valid_until = sent + self->opts.lease;
                } else {
                  self->drop(p, "lease lost");
                }
              });
}

void node::impl::acquire(unsigned index) {
  acquiring[index] = true;
  const auto sent = steady::now();
  cmd->script({ks.lease(index), ks.epoch(index)}, {"acquire", owner, std::to_string(opts.lease.count())},
              [self = shared_from_this(), index, sent](std::error_code ec, const redisReply* r) {
                self->acquiring[index] = false;
                if (self->stopping || ec || !is_array(r) || r->elements < 2) return;
                if (to_int(r->element[0]).value_or(0) != 1) return;  // held by another: later
                const auto epoch = static_cast<std::uint64_t>(to_int(r->element[1]).value_or(0));
                self->take(index, epoch);
                if (auto p = self->held(index)) p->valid_until = sent + self->opts.lease;
              });
}

// The lease is ours with `epoch`: restore the partition's machines, then read its stream.
void node::impl::take(unsigned index, std::uint64_t epoch) {
  auto p = std::make_shared<partition>();
  p->index = index;
  p->epoch = epoch;
  p->fence = owner + " " + std::to_string(epoch);
  std::weak_ptr<impl> weak = weak_from_this();
  std::weak_ptr<partition> wp = p;
  p->store = std::make_shared<fenced_store>(strand, cmd, ks, index, p->fence, [weak, wp] {
    auto self = weak.lock();
    if (!self) return;
    self->m_fenced->inc();
    boost::asio::post(self->strand, [self, wp] {
      if (auto lost = wp.lock(); lost && lost->alive) self->drop(lost, "fenced: the lease moved on");
    });
  });
  orchestrator_options oo;
  oo.key_prefix = ks.machine_prefix(index);
  oo.address_prefix = "p" + std::to_string(index) + "/";
  oo.store_breaker = &breaker;
  oo.remote = [weak](remote_message msg, remote_done done) {
    auto self = weak.lock();
    if (!self) return done(make_error_code(std::errc::operation_canceled));
    self->remote(std::move(msg), std::move(done));
  };
  // A failed write leaves a machine ahead of what is stored (a timer's step, an applied entry):
  // the partition starts again from Redis, where its pending entries and timers are.
  oo.on_write_error = [weak, wp](const std::string& machine, std::error_code ec) {
    auto self = weak.lock();
    if (!self) return;
    boost::asio::post(self->strand, [self, wp, machine, ec] {
      auto failed = wp.lock();
      if (!failed || !failed->alive) return;
      if (ec != errc::fenced) self->m_store_errors->inc();
      self->drop(failed, "write of " + machine + " failed: " + ec.message());
    });
  };
  p->orch = std::make_unique<orchestrator>(strand, clk, bus, *p->store, std::move(oo));
  for (const auto& [name, chart] : documents) (void)p->orch->add_document(name, chart);
  slots[index] = p;
  m_failovers->inc();
  m_partitions->set(static_cast<double>(held_count()));
  log->info("partition taken partition={} epoch={}", index, epoch);
  tell(index, "taken");
  // The group reads from the stream's start, so nothing added before it existed is missed.
  cmd->command({"XGROUP", "CREATE", ks.stream(index), std::string(stream_group), "0", "MKSTREAM"},
               [](std::error_code, const redisReply*) {});  // BUSYGROUP: it exists
  p->orch->async_restore([self = shared_from_this(), p](std::error_code ec, std::size_t n) {
    boost::asio::post(self->strand, [self, p, ec, n] {
      if (!p->alive) return;
      if (ec) return self->drop(p, "restore failed: " + ec.message());
      self->log->info("partition restored partition={} machines={}", p->index, n);
      p->ph = partition::phase::running;
      self->tell(p->index, "running");
      self->begin_reading(p);
    });
  });
}

// Entries of earlier owners still pending (taken, perhaps applied, not acknowledged) first.
void node::impl::begin_reading(const partition_ptr& p) {
  p->reader = make_client(strand, opts.redis);
  p->claiming = true;
  claim(p, "0-0");
}

// Runs `fn` after a pause (Redis away, or an error reply that would otherwise spin).
void node::impl::later(const partition_ptr& p, std::function<void()> fn) {
  auto t = std::make_shared<boost::asio::steady_timer>(strand, std::chrono::milliseconds(100));
  std::erase_if(p->pauses, [](const auto& x) { return x->expiry() <= boost::asio::steady_timer::clock_type::now(); });
  p->pauses.push_back(t);
  t->async_wait([p, t, fn = std::move(fn)](boost::system::error_code ec) {
    if (!ec && p->alive && p->ph == partition::phase::running) fn();
  });
}

void node::impl::claim(const partition_ptr& p, std::string cursor) {
  cmd->command({"XAUTOCLAIM", ks.stream(p->index), std::string(stream_group), owner, "0", cursor, "COUNT",
                std::to_string(opts.read_batch)},
               [self = shared_from_this(), p](std::error_code ec, const redisReply* r) {
                 if (!p->alive || p->ph != partition::phase::running) return;
                 if (ec || !is_array(r) || r->elements < 2) {
                   // The group may not exist yet (Redis restarted empty) or Redis is away: try again.
                   return self->later(p, [self, p] {
                     self->cmd->command({"XGROUP", "CREATE", self->ks.stream(p->index), std::string(stream_group),
                                         "0", "MKSTREAM"},
                                        [self, p](std::error_code, const redisReply*) { self->claim(p, "0-0"); });
                   });
                 }
                 std::vector<stream_entry> entries;
                 read_entries(r->element[1], entries);
                 const std::string next(str(r->element[0]));
                 for (auto& e : entries) self->apply(p, std::move(e));
                 if (next == "0-0") {
                   p->claiming = false;
                   return self->read(p);
                 }
                 if (p->inflight >= self->opts.max_inflight) {
                   p->claim_cursor = next;  // resumed as entries finish
                   return;
                 }
                 self->claim(p, next);
               });
}

// New entries: a blocking read on the partition's own connection, one at a time.
void node::impl::read(const partition_ptr& p) {
  if (!p->alive || p->ph != partition::phase::running || p->reading) return;
  if (p->inflight >= opts.max_inflight) return;  // resumed as entries finish
  if (p->claiming) {
    if (!p->claim_cursor.empty()) claim(p, std::exchange(p->claim_cursor, {}));
    return;
  }
  p->reading = true;
  const auto block = std::max<std::int64_t>(100, opts.lease.count() / 2);
  p->reader->command(
      {"XREADGROUP", "GROUP", std::string(stream_group), owner, "COUNT", std::to_string(opts.read_batch), "BLOCK",
       std::to_string(block), "STREAMS", ks.stream(p->index), ">"},
      [self = shared_from_this(), p](std::error_code ec, const redisReply* r) {
        p->reading = false;
        if (!p->alive || p->ph != partition::phase::running) return;
        if (ec || is_error(r)) {
          // NOGROUP after a Redis restart without data, or a broken connection: claim again
          // (it recreates the group), after a pause so a down Redis is not hammered.
          return self->later(p, [self, p] {
            p->claiming = true;
            self->claim(p, "0-0");
          });
        }
        std::vector<stream_entry> entries;
        read_streams(r, entries);
        for (auto& e : entries) self->apply(p, std::move(e));
        self->read(p);
      },
      std::chrono::milliseconds(block) + opts.redis.command_timeout);
}

// Flushes the partition (its orchestrator persists every machine), then releases the lease so the
// next owner takes it at once instead of after the TTL.
void node::impl::handover(const partition_ptr& p, std::function<void()> then) {
  p->ph = partition::phase::leaving;
  log->info("partition handover partition={}", p->index);
  if (p->reader) p->reader->close();
  for (auto& t : p->pauses) t->cancel();
  p->orch->async_shutdown(std::chrono::seconds(1), [self = shared_from_this(), p, then = std::move(then)](std::error_code) mutable {
    boost::asio::post(self->strand, [self, p, then = std::move(then)]() mutable {
      self->flush_acks(p);
      self->cmd->script({self->ks.lease(p->index)}, {"release", p->fence},
                        [self, p, then = std::move(then)](std::error_code, const redisReply*) {
                          p->alive = false;
                          if (self->slots[p->index] == p) self->slots[p->index] = nullptr;
                          self->m_partitions->set(static_cast<double>(self->held_count()));
                          self->log->info("partition released partition={}", p->index);
                          self->tell(p->index, "released");
                          if (then) then();
                        });
    });
  });
}

// The lease is lost (fenced, not renewed in time, a failed write): stop at once, write nothing.
void node::impl::drop(partition_ptr p, std::string_view why) {
  if (!p->alive) return;
  p->alive = false;
  if (slots[p->index] == p) slots[p->index] = nullptr;
  if (p->reader) p->reader->close();
  for (auto& t : p->pauses) t->cancel();
  log->warn("partition dropped partition={} epoch={} reason={}", p->index, p->epoch, why);
  tell(p->index, "dropped");
  m_dropped->inc();
  m_partitions->set(static_cast<double>(held_count()));
  // Destroyed from a handler of its own: after this one returns.
  boost::asio::post(strand, [p] { p->orch.reset(); });
}

void node::impl::stop(std::function<void()> done) {
  if (stopping) return;
  stopping = true;
  stop_done = std::move(done);
  tick_timer.cancel();
  expiry_timer.cancel();
  log->info("node stopping: handing over {} partitions", held_count());
  leaving = 1;
  for (auto& p : slots) {
    if (!p) continue;
    if (p->ph == partition::phase::leaving) continue;
    ++leaving;
    handover(p, [self = shared_from_this()] {
      if (--self->leaving == 0) self->finish_stop();
    });
  }
  if (--leaving == 0) finish_stop();
}

void node::impl::finish_stop() {
  cmd->script({ks.nodes(), ks.nodeinfo()}, {"leave", owner}, [self = shared_from_this()](std::error_code, const redisReply*) {
    for (auto& [id, rq] : self->requests) {
      rq.timer->cancel();
      rq.h(reply{503, error_body("node shutting down")});
    }
    self->requests.clear();
    for (auto& p : self->slots)
      if (p) self->drop(p, "node stopped");
    self->cmd->close();
    self->sub->close();
    self->log->info("node stopped");
    if (self->stop_done) boost::asio::post(self->strand, std::move(self->stop_done));
  });
}

// ============================ entries ============================

bool node::impl::store_trouble(const partition_ptr& p, std::error_code ec) {
  if (ec == errc::fenced) {  // counted by the store's callback
    drop(p, "fenced");
    return true;
  }
  if (ec == errc::store_unavailable || ec == std::errc::timed_out || ec == errc::circuit_open ||
      ec == errc::version_conflict || ec == errc::store_full) {
    // The machine may be ahead of what is stored: start the partition again from Redis (its
    // entries stay pending; their keys and sequences keep their effect to one).
    m_store_errors->inc();
    drop(p, "store write failed: " + ec.message());
    return true;
  }
  return false;
}

/// Ends an entry in flight, on the strand: acknowledged with a reply, or left pending (`retry`).
struct node::impl::entry_done {
  std::shared_ptr<impl> self;
  partition_ptr p;
  stream_entry e;
  void operator()(bool ack, unsigned status, json::value body) const {
    boost::asio::post(self->strand, [self = self, p = p, e = e, ack, status, body = std::move(body)]() mutable {
      --p->inflight;
      p->applying.erase(e.id);
      self->finish_entry(p, e, ack, status, std::move(body));
      self->read(p);
    });
  }
  /// Pending after a store error: the next run of the partition applies it.
  void retry(std::error_code ec) const {
    (*this)(false, 0, {});
    boost::asio::post(self->strand, [self = self, p = p, ec] { self->store_trouble(p, ec); });
  }
};

void node::impl::apply(const partition_ptr& p, stream_entry e) {
  if (!p->applying.insert(e.id).second) return;  // already being applied (a sweep found it)
  ++p->inflight;
  const auto op = e["op"];
  const entry_done finish{shared_from_this(), p, e};
  if (op == "event" || op == "msg") return apply_event(p, e, finish);
  if (op == "create") return apply_create(p, e, finish);
  if (op == "delete") return apply_delete(p, e, finish);
  finish(true, 400, error_body("unknown operation '" + op + "' in stream entry " + e.id));
}

void node::impl::apply_event(const partition_ptr& p, const stream_entry& e, const entry_done& finish) {
  const auto to = e["to"];
  event ev;
  if (!event_of(e, ev)) return finish(true, 400, error_body("malformed event in stream entry " + e.id));
  send_options so;
  if (e["op"] == "msg") {
    so.sender = e["sender"];
    so.sequence = std::strtoull(e["seq"].c_str(), nullptr, 10);
    if (so.sender.empty() || so.sequence == 0) return finish(true, 400, error_body("malformed message " + e.id));
  } else {
    so.idempotency_key = e["key"];
  }
  m_events->inc();
  p->orch->async_send(to, std::move(ev), std::move(so), [p, finish, to](std::error_code ec, send_result r) {
    if (!ec) return finish(true, 200, sent_body(to, r));
    if (ec == errc::unknown_machine) return finish(true, 404, error_body("unknown machine " + to));
    if (ec == errc::not_running && p->alive && p->ph == partition::phase::running)
      return finish(true, 409, error_body("machine " + to + " is not running"));
    finish.retry(ec);
  });
}

void node::impl::apply_create(const partition_ptr& p, const stream_entry& e, const entry_done& finish) {
  const auto to = e["to"];
  value input;
  if (!e["input"].empty()) {
    boost::system::error_code jec;
    input = json::parse(e["input"], jec);
    if (jec || !input.is_object()) return finish(true, 400, error_body("malformed input in stream entry " + e.id));
  }
  p->orch->async_create(to, e["document"], std::move(input), [finish, to, doc = e["document"]](std::error_code ec) {
    if (!ec) return finish(true, 201, json::object{{"id", to}, {"document", doc}});
    if (ec == errc::already_exists) return finish(true, 409, error_body("machine " + to + " exists"));
    if (ec == errc::unknown_document) return finish(true, 400, error_body("unknown document " + doc));
    if (ec == errc::invalid_argument) return finish(true, 400, error_body("invalid machine id"));
    finish.retry(ec);
  });
}

void node::impl::apply_delete(const partition_ptr& p, const stream_entry& e, const entry_done& finish) {
  const auto to = e["to"];
  p->orch->async_stop(to, true, [finish, to](std::error_code ec) {
    if (!ec) return finish(true, 200, json::object{{"id", to}, {"deleted", true}});
    if (ec == errc::unknown_machine) return finish(true, 404, error_body("unknown machine " + to));
    finish.retry(ec);
  });
}

void node::impl::finish_entry(const partition_ptr& p, const stream_entry& e, bool acknowledge, unsigned status,
                              json::value body) {
  if (!acknowledge) return;
  m_acks->inc();
  if (!e["reply"].empty()) answer(e["reply"], status, std::move(body));
  if (!p->alive) return;  // the next owner acknowledges it (its effect is stored once)
  p->acks.push_back(e.id);
  if (!p->ack_posted) {
    p->ack_posted = true;
    boost::asio::post(strand, [self = shared_from_this(), p] { self->flush_acks(p); });
  }
}

void node::impl::flush_acks(const partition_ptr& p) {
  p->ack_posted = false;
  if (p->acks.empty()) return;
  std::vector<std::string> args{"ack", std::string(stream_group)};
  for (auto& id : p->acks) args.push_back(std::move(id));
  p->acks.clear();
  // A failed acknowledgement (Redis away, a slot moving) is tried again: an entry left pending
  // would wait for the next takeover.
  cmd->script({ks.stream(p->index)}, args, [self = shared_from_this(), p, args](std::error_code ec, const redisReply* r) {
    if (!ec && !is_error(r)) return;
    if (!p->alive) return;  // the next run of the partition claims and acknowledges them
    self->later(p, [self, p, args] {
      for (std::size_t i = 2; i < args.size(); ++i) p->acks.push_back(args[i]);
      self->flush_acks(p);
    });
  });
}

// "<channel owner>|<request number>"
void node::impl::answer(const std::string& reply_to, unsigned status, json::value body) {
  const auto bar = reply_to.rfind('|');
  if (bar == std::string::npos) return;
  json::object msg{{"req", reply_to.substr(bar + 1)}, {"status", status}, {"body", std::move(body)}};
  cmd->command({"PUBLISH", ks.reply_channel(reply_to.substr(0, bar)), json::serialize(msg)},
               [](std::error_code, const redisReply*) {});
}

// ============================ requests ============================

void node::impl::submit(unsigned partition, std::vector<std::string> fields, reply_handler h) {
  if (requests.size() >= opts.max_requests) return h(reply{503, error_body("too many requests waiting")});
  const auto n = next_request++;
  fields.push_back("reply");
  fields.push_back(owner + "|" + std::to_string(n));
  request rq;
  rq.h = std::move(h);
  rq.started = steady::now();
  rq.timer = std::make_unique<boost::asio::steady_timer>(strand, opts.request_timeout);
  rq.timer->async_wait([self = shared_from_this(), n](boost::system::error_code ec) {
    if (ec) return;
    auto it = self->requests.find(n);
    if (it == self->requests.end()) return;
    auto waiting = std::move(it->second.h);
    self->requests.erase(it);
    self->m_timeouts->inc();
    waiting(reply{504, error_body("the owner did not answer in time; the call may still take effect, once")});
  });
  requests.emplace(n, std::move(rq));
  std::vector<std::string> args{"xadd", std::to_string(opts.stream_capacity)};
  for (auto& f : fields) args.push_back(std::move(f));
  cmd->script({ks.stream(partition)}, args, [self = shared_from_this(), n](std::error_code ec, const redisReply* r) {
    if (!ec && !is_error(r)) return;  // added: the owner answers
    auto it = self->requests.find(n);
    if (it == self->requests.end()) return;
    auto waiting = std::move(it->second.h);
    it->second.timer->cancel();
    self->requests.erase(it);
    if (!ec && str(r).starts_with("FULL")) return waiting(reply{503, error_body("the machine's partition inbox is full")});
    waiting(reply{503, error_body("store unavailable: " + (ec ? ec.message() : std::string(str(r))))});
  });
}

void node::impl::on_reply(std::string_view payload) {
  boost::system::error_code ec;
  auto v = json::parse(payload, ec);
  if (ec || !v.is_object()) return;
  const auto* req = v.as_object().if_contains("req");
  const auto* status = v.as_object().if_contains("status");
  if (!req || !req->is_string() || !status || !status->is_int64()) return;
  const auto n = std::strtoull(req->as_string().c_str(), nullptr, 10);
  auto it = requests.find(n);
  if (it == requests.end()) return;  // answered already (timeout)
  auto rq = std::move(it->second);
  requests.erase(it);
  rq.timer->cancel();
  m_ack_latency->observe(steady::now() - rq.started);
  const auto* body = v.as_object().if_contains("body");
  rq.h(reply{static_cast<unsigned>(status->as_int64()), body ? *body : json::value(json::object{})});
}

// A machine's message to a machine of another partition: into that partition's stream.
void node::impl::remote(remote_message msg, remote_done done) {
  const auto p = partition_of(msg.to, opts.partitions);
  json::object ev{{"name", msg.ev.name}};
  if (!msg.ev.data.is_null()) ev["data"] = msg.ev.data;
  cmd->script({ks.stream(p)},
              {"xadd", std::to_string(opts.stream_capacity), "op", "msg", "to", msg.to, "sender", msg.sender, "seq",
               std::to_string(msg.sequence), "event", json::serialize(ev)},
              [done = std::move(done)](std::error_code ec, const redisReply* r) {
                if (!ec && is_error(r)) ec = errc::queue_full;
                done(ec);
              });
}

// ============================ assignment ============================

namespace {
std::uint64_t rank_of(const std::string& member, unsigned partition) {
  std::uint64_t h = 14695981039346656037ull;
  auto mix = [&](unsigned char c) {
    h ^= c;
    h *= 1099511628211ull;
  };
  for (unsigned char c : member) mix(c);
  mix(0);
  for (int i = 0; i < 4; ++i) mix(static_cast<unsigned char>(partition >> (8 * i)));
  // splitmix64's finaliser: FNV alone ranks similar names alike
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  return h ^ (h >> 31);
}
}  // namespace

std::vector<std::size_t> assign_partitions(unsigned partitions, const std::vector<std::string>& members) {
  const auto n = members.size();
  if (n == 0) return {};
  std::vector<std::size_t> room(n, partitions / n), out(partitions, 0);
  for (std::size_t i = 0; i < partitions % n; ++i) ++room[i];
  std::vector<std::size_t> order(n);
  for (unsigned p = 0; p < partitions; ++p) {
    for (std::size_t i = 0; i < n; ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      const auto ra = rank_of(members[a], p), rb = rank_of(members[b], p);
      return ra != rb ? ra > rb : a < b;
    });
    for (auto i : order) {
      if (room[i] == 0) continue;
      --room[i];
      out[p] = i;
      break;
    }
  }
  return out;
}

// ============================ node ============================

node::node(boost::asio::io_context& io, node_options opts) : impl_(std::make_shared<impl>(io, std::move(opts))) {}

node::~node() {
  if (impl_->cmd) impl_->cmd->close();
  if (impl_->sub) impl_->sub->close();
  for (auto& p : impl_->slots)
    if (p) {
      p->alive = false;
      if (p->reader) p->reader->close();
      for (auto& t : p->pauses) t->cancel();
    }
  impl_->tick_timer.cancel();
  impl_->expiry_timer.cancel();
}

result<void> node::add_document(std::string name, std::shared_ptr<const statechart> chart) {
  // Checked once by a scratch orchestrator, so a document no partition could run fails here.
  boost::asio::io_context scratch(1);
  manual_clock mc;
  memory_state_store store(scratch.get_executor(), mc);
  channel_event_bus b(scratch.get_executor(), mc);
  orchestrator o(scratch.get_executor(), mc, b, store);
  if (auto r = o.add_document(name, chart); !r) return r;
  impl_->documents[std::move(name)] = std::move(chart);
  return {};
}

void node::start() {
  boost::asio::post(impl_->strand, [self = impl_] { self->start(); });
}

void node::async_stop(std::function<void()> done) {
  boost::asio::post(impl_->strand, [self = impl_, done = std::move(done)]() mutable {
    if (!self->started) {
      if (done) done();
      return;
    }
    self->stop(std::move(done));
  });
}

const std::string& node::owner() const noexcept { return impl_->owner; }

std::vector<unsigned> node::held() const {
  std::vector<unsigned> out;
  for (auto& p : impl_->slots)
    if (p) out.push_back(p->index);
  return out;
}

bool node::ready(std::string& why) const { return impl_->ready(why); }

// /readyz, and what an API call needs before it is taken (its answer comes over the reply channel).
bool node::impl::ready(std::string& why) const {
  if (!fatal.empty()) why = fatal;
  else if (!redis_up) why = "redis unreachable";
  else if (!joined) why = "membership not joined";
  else if (!sub_up) why = "reply channel not subscribed";
  else if (stopping) why = "shutting down";
  else return true;
  return false;
}

std::string node::metrics() const { return impl_->registry.render(); }

namespace {

json::value event_text(const json::object& body, std::string& name) {
  json::object data;
  for (const auto& [k, v] : body) {
    if (k == "type") name = v.is_string() ? std::string(v.as_string()) : std::string{};
    else data[k] = v;
  }
  json::object ev{{"name", name}};
  if (!data.empty()) ev["data"] = std::move(data);
  return ev;
}

}  // namespace

void node::create(std::string id, std::string document, json::value input, reply_handler h) {
  boost::asio::post(impl_->strand, [self = impl_, id = std::move(id), document = std::move(document),
                                    input = std::move(input), h = std::move(h)]() mutable {
    std::string why;
    if (!self->ready(why)) return h(reply{503, error_body("not ready: " + why)});
    if (!self->documents.count(document)) return h(reply{400, error_body("unknown document '" + document + "'")});
    if (!input.is_null() && !input.is_object()) return h(reply{400, error_body("`input` must be an object")});
    const auto p = partition_of(id, self->opts.partitions);
    std::vector<std::string> fields{"op", "create", "to", id, "document", document};
    if (input.is_object() && !input.as_object().empty()) {
      fields.push_back("input");
      fields.push_back(json::serialize(input));
    }
    self->submit(p, std::move(fields), std::move(h));
  });
}

void node::send(std::string id, json::object event, std::string key, reply_handler h) {
  boost::asio::post(impl_->strand, [self = impl_, id = std::move(id), event = std::move(event), key = std::move(key),
                                    h = std::move(h)]() mutable {
    std::string why;
    if (!self->ready(why)) return h(reply{503, error_body("not ready: " + why)});
    std::string name;
    auto ev = event_text(event, name);
    if (name.empty()) return h(reply{400, error_body("the event needs a non-empty string `type`")});
    // Without a key of the caller's, one of ours: a redelivered entry is still applied once.
    if (key.empty()) key = "auto:" + self->owner + ":" + std::to_string(self->next_request);
    const auto p = partition_of(id, self->opts.partitions);
    self->submit(p, {"op", "event", "to", id, "key", key, "event", json::serialize(ev)}, std::move(h));
  });
}

void node::erase(std::string id, reply_handler h) {
  boost::asio::post(impl_->strand, [self = impl_, id = std::move(id), h = std::move(h)]() mutable {
    std::string why;
    if (!self->ready(why)) return h(reply{503, error_body("not ready: " + why)});
    const auto p = partition_of(id, self->opts.partitions);
    self->submit(p, {"op", "delete", "to", id}, std::move(h));
  });
}

// Read from Redis: the persisted machine, the same from every node.
void node::get(std::string id, reply_handler h) {
  boost::asio::post(impl_->strand, [self = impl_, id = std::move(id), h = std::move(h)]() mutable {
    if (!self->redis_up) return h(reply{503, error_body("store unavailable")});
    const auto p = partition_of(id, self->opts.partitions);
    self->cmd->command({"HMGET", self->ks.machine_prefix(p) + id, "v", "ver"},
                       [self, id, h = std::move(h)](std::error_code ec, const redisReply* r) {
                         if (ec || is_error(r) || !is_array(r) || r->elements != 2)
                           return h(reply{503, error_body("store unavailable")});
                         if (r->element[0]->type != REDIS_REPLY_STRING) return h(reply{404, error_body("unknown machine " + id)});
                         boost::system::error_code jec;
                         auto rec = json::parse(str(r->element[0]), jec);
                         if (jec || !rec.is_object()) return h(reply{500, error_body("stored record is not JSON")});
                         auto out = self->stored_view(id, rec.as_object());
                         out["version"] = to_int(r->element[1]).value_or(0);
                         h(reply{200, std::move(out)});
                       });
  });
}

// The reply of `get` but its version, from a stored record {document, snapshot, states}: the
// context is "context" for an XState document and "datamodel" for others.
json::object node::impl::stored_view(const std::string& id, const json::object& o) const {
  json::object out{{"id", id}};
  const auto* document = o.if_contains("document");
  const std::string doc = document && document->is_string() ? std::string(document->as_string()) : std::string{};
  out["document"] = doc;
  const json::object* snap = o.if_contains("snapshot") ? o.at("snapshot").if_object() : nullptr;
  out["status"] = field_or(snap, "status", json::value("active"));
  out["configuration"] = field_or(&o, "states", json::value(json::array{}));
  out["value"] = field_or(snap, "value", json::value(nullptr));
  auto it = documents.find(doc);
  const bool xstate = it != documents.end() && it->second->datamodel == "xstate";
  if (snap && snap->if_contains("context")) out[xstate ? "context" : "datamodel"] = snap->at("context");
  return out;
}

void node::cluster(reply_handler h) {
  boost::asio::post(impl_->strand, [self = impl_, h = std::move(h)]() mutable {
    if (!self->redis_up) return h(reply{503, error_body("store unavailable")});
    query_cluster(self->cmd, self->ks, self->opts.partitions, std::move(h));
  });
}

namespace {

// The members in the reply to HGETALL of the node info, appended to `nodes`; false when it failed.
bool read_members(json::array& nodes, std::error_code ec, const redisReply* r) {
  if (ec || !is_array(r)) return false;
  for (std::size_t i = 0; i + 1 < r->elements; i += 2)
    nodes.push_back(member_entry(str(r->element[i]), str(r->element[i + 1])));
  return true;
}

// A partition's "pending", from the reply to XPENDING (summary form) when it has the count.
void read_pending(json::object& partition, const redisReply* r) {
  if (is_array(r) && r->elements >= 1) partition["pending"] = to_int(r->element[0]).value_or(0);
}

}  // namespace

void query_cluster(const std::shared_ptr<redis_client>& cmd, const keyspace& ks, unsigned partitions, reply_handler h) {
  {
    struct state {
      reply_handler h;
      json::array nodes;
      json::array partitions;
      std::size_t left = 0;
      bool failed = false;
    };
    auto st = std::make_shared<state>();
    st->h = std::move(h);
    const auto P = partitions;
    st->partitions.resize(P);
    st->left = 1 + 3 * static_cast<std::size_t>(P);
    auto done = [st] {
      if (--st->left != 0) return;
      if (st->failed) return st->h(reply{503, error_body("store unavailable")});
      st->h(reply{200, json::object{{"nodes", std::move(st->nodes)}, {"partitions", std::move(st->partitions)}}});
    };
    cmd->command({"HGETALL", ks.nodeinfo()}, [st, done](std::error_code ec, const redisReply* r) {
      if (!read_members(st->nodes, ec, r)) st->failed = true;
      done();
    });
    for (unsigned p = 0; p < P; ++p) {
      st->partitions[p] = json::object{{"partition", p}, {"owner", nullptr}, {"epoch", 0}, {"stream_length", 0}, {"pending", 0}};
      cmd->command({"GET", ks.lease(p)}, [st, p, done](std::error_code ec, const redisReply* r) {
        if (ec) st->failed = true;
        else read_lease(st->partitions[p].as_object(), r);
        done();
      });
      cmd->command({"XLEN", ks.stream(p)}, [st, p, done](std::error_code ec, const redisReply* r) {
        if (ec) st->failed = true;
        else st->partitions[p].as_object()["stream_length"] = to_int(r).value_or(0);
        done();
      });
      cmd->command({"XPENDING", ks.stream(p), std::string(stream_group)},
                         [st, p, done](std::error_code ec, const redisReply* r) {
                           if (ec) st->failed = true;
                           else read_pending(st->partitions[p].as_object(), r);
                           done();
                         });
    }
  }
}

}  // namespace xsn::inline v0::distributed
