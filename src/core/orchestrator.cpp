// The orchestrator: machines on one strand, the bus for routing, the store for persistence.
// Every machine has at most one store write in flight; events that arrive meanwhile are
// acknowledged by the next write, which includes their effect ("write coalescing").
#include <xsn/orchestrator/orchestrator.hpp>

#include <xsn/resilience/circuit_breaker.hpp>

#include "logging_detail.hpp"

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
#include <mutex>
#include <unordered_map>

namespace xsn {

namespace {

using done_handler = boost::asio::any_completion_handler<orchestrator::done_signature>;

}  // namespace

struct orchestrator::impl : std::enable_shared_from_this<impl> {
  struct machine {
    std::string id;
    std::string document;
    std::unique_ptr<session> s;
    store_version version = 0;        // of the last persisted snapshot; 0: not stored yet
    bool writing = false;             // a store write is in flight
    bool dirty = false;               // changed since the last write started
    bool gone = false;                // stopped or shut down: no more work
    bool flush_posted = false;        // a persist of a timer-driven macrostep is queued
    std::vector<done_handler> acks_writing, acks_next;
  };
  using machine_ptr = std::shared_ptr<machine>;

  impl(boost::asio::any_io_executor ex, xsn::clock& c, event_bus& b, state_store& st, orchestrator_options o)
      : strand(boost::asio::make_strand(std::move(ex))), clk(c), bus(b), store(st), opts(std::move(o)),
        log(detail::component_logger("xsn.orchestrator")) {}

  // ---- machines ----
  std::error_code add_machine(const std::string& id, const std::string& document, const value* snapshot,
                              store_version version, machine_ptr& out);
  std::error_code open_inbox();
  std::shared_ptr<const session_options> make_session_options();
  void watch_inbox();
  void on_inbox_ready();
  void deliver(bus_message& msg);
  void note_unroutable(const bus_message& msg);
  void process(const machine_ptr& m, const event& ev);
  void remove(const machine_ptr& m);
  void refresh_status(const machine& m);

  // ---- persistence ----
  void persist(const machine_ptr& m, done_handler ack);
  void start_write(const machine_ptr& m, int attempt);
  void finish_write(const machine_ptr& m, std::error_code ec);
  std::string stored_text(machine& m);
  std::string key(const std::string& id) const { return opts.key_prefix + id; }

  // ---- restore and shutdown ----
  void restore_page(std::string start_after, std::size_t restored,
                    boost::asio::any_completion_handler<orchestrator::restore_signature> h);
  void finish_shutdown();

  /// Completes `h` with `args`, never inline: on the handler's associated executor.
  template <class Handler, class... Args>
  void complete(Handler h, Args... args) {
    boost::asio::post(strand, boost::asio::append(std::move(h), std::move(args)...));
  }

  boost::asio::strand<boost::asio::any_io_executor> strand;
  xsn::clock& clk;
  event_bus& bus;
  state_store& store;
  orchestrator_options opts;
  std::shared_ptr<spdlog::logger> log;
  std::unordered_map<std::string, machine_ptr> machines;  // strand only
  std::unique_ptr<subscription> inbox;                     // `address_prefix*`: every machine's messages
  std::shared_ptr<const session_options> session_opts;     // one copy for all machines
  std::atomic<std::uint64_t> inbox_id{0};                  // for health(), from any thread
  std::atomic<bool> accepting{true};                       // written on the strand only

  // What list/query/health read from any thread, updated on the strand.
  mutable std::mutex status_mutex;
  std::unordered_map<std::string, machine_status> status;
  std::unordered_map<std::string, std::shared_ptr<const statechart>> documents;
  orchestrator_health counters;

  // Shutdown bookkeeping.
  std::size_t shutdown_writes = 0;
  std::optional<done_handler> shutdown_handler;
};

// ============================ machines ============================

std::error_code orchestrator::impl::add_machine(const std::string& id, const std::string& document,
                                                const value* snapshot, store_version version, machine_ptr& out) {
  std::shared_ptr<const statechart> chart;
  {
    std::lock_guard lock(status_mutex);
    auto it = documents.find(document);
    if (it == documents.end()) return errc::unknown_document;
    chart = it->second;
  }
  if (machines.count(id)) return errc::already_exists;
  auto m = std::make_shared<machine>();
  m->id = id;
  m->document = document;
  m->version = version;
  if (auto ec = open_inbox()) return ec;
  if (!session_opts) session_opts = make_session_options();
  m->s = std::make_unique<session>(std::move(chart), strand, clk, session_opts);
  m->s->set_user_data(m.get());
  if (snapshot) {
    const auto* o = snapshot->if_object();
    if (!o || !o->contains("snapshot")) return errc::bad_snapshot;
    if (auto rec = m->s->restore(o->at("snapshot"))) return rec;
  } else {
    m->s->start();
  }
  machines.emplace(id, m);
  refresh_status(*m);
  out = std::move(m);
  return {};
}

std::shared_ptr<const session_options> orchestrator::impl::make_session_options() {
  auto so = std::make_shared<session_options>(opts.session);
  so->session_id.clear();
  // Every macrostep, whatever caused it (an event, a timer, a child), is persisted: directly when
  // an acknowledged send caused it, else by a flush posted to the strand.
  so->on_macrostep = [this](session& s) {
    auto* mp = static_cast<machine*>(s.user_data());
    if (!mp) return;
    mp->dirty = true;
    if (mp->flush_posted || mp->gone) return;
    mp->flush_posted = true;
    boost::asio::post(strand, [self = shared_from_this(), id = mp->id] {
      auto it = self->machines.find(id);
      if (it == self->machines.end()) return;
      auto& m = it->second;
      m->flush_posted = false;
      if (m->s) self->refresh_status(*m);
      if (m->dirty && !m->writing && !m->gone && self->accepting) self->persist(m, {});
    });
  };
  so->route = [this](session&, const std::string& target, event ev) {
    std::string address;
    if (target.rfind("xsn:", 0) == 0) address = opts.address_prefix + target.substr(4);
    else if (target.rfind("bus:", 0) == 0) address = target.substr(4);
    else return false;
    ev.name_id = npos;
    ev.resolved_by = nullptr;
    return !bus.publish(bus_message(std::move(address), std::move(ev)));
  };
  return so;
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
    if (ec || !self->inbox) return;  // cancelled: shutdown or destruction
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
    note_unroutable(msg);
    if (!msg.reply_to.empty()) (void)bus.reply(msg, event("xsn.error.unknown_machine"));
    return;
  }
  auto& m = it->second;
  if (accepting) process(m, msg.event);  // its macrostep is persisted by the posted flush
  if (!msg.reply_to.empty()) {
    boost::json::array states;
    for (auto& st : m->s->active_atomic_states()) states.emplace_back(st);
    (void)bus.reply(msg, event("xsn.reply", value(std::move(states))));
  }
}

// Counted in health; logged at warn for the 1st, 2nd, 4th, 8th... so a sender that keeps
// addressing a missing machine cannot flood the log, and at debug for every one.
void orchestrator::impl::note_unroutable(const bus_message& msg) {
  std::uint64_t n;
  {
    std::lock_guard lock(status_mutex);
    n = ++counters.unroutable;
  }
  const bool power_of_two = (n & (n - 1)) == 0;
  const auto level = power_of_two ? spdlog::level::warn : spdlog::level::debug;
  if (log->should_log(level))
    log->log(level, "unroutable address={} event={} count={}", detail::field(msg.address),
             detail::field(msg.event.name), n);
}

void orchestrator::impl::process(const machine_ptr& m, const event& ev) {
  if (!m->s->running()) return;
  if (log->should_log(spdlog::level::debug))
    log->debug("event machine={} session={} event={}", detail::field(m->id), detail::field(m->s->id()),
               detail::field(ev.name));
  (void)m->s->process(ev);
  std::lock_guard lock(status_mutex);
  ++counters.events;
  // The status cache is refreshed by the flush that on_macrostep posts: once per burst of events.
}

void orchestrator::impl::refresh_status(const machine& m) {
  machine_status st;
  st.id = m.id;
  st.document = m.document;
  st.running = m.s->running();
  st.states = m.s->active_atomic_states();
  st.version = m.version;
  std::lock_guard lock(status_mutex);
  status[m.id] = std::move(st);
}

void orchestrator::impl::remove(const machine_ptr& m) {
  m->gone = true;
  machines.erase(m->id);
  std::lock_guard lock(status_mutex);
  status.erase(m->id);
}

// ============================ persistence ============================

std::string orchestrator::impl::stored_text(machine& m) {
  boost::json::object o{{"document", m.document}, {"snapshot", m.s->snapshot()}};
  return boost::json::serialize(o);
}

void orchestrator::impl::persist(const machine_ptr& m, done_handler ack) {
  if (!opts.persist) {
    m->dirty = false;
    if (ack) complete(std::move(ack), std::error_code{});
    return;
  }
  if (ack) m->acks_next.push_back(std::move(ack));
  m->dirty = true;
  if (!m->writing) start_write(m, 1);
}

void orchestrator::impl::start_write(const machine_ptr& m, int attempt) {
  if (attempt == 1) {
    m->writing = true;
    for (auto& a : m->acks_next) m->acks_writing.push_back(std::move(a));
    m->acks_next.clear();
    std::lock_guard lock(status_mutex);
    ++counters.writes_in_flight;
  }
  m->dirty = false;
  if (opts.store_breaker && !opts.store_breaker->try_acquire()) return finish_write(m, errc::circuit_open);
  store.async_compare_and_set(
      key(m->id), m->version, stored_text(*m),
      boost::asio::bind_executor(strand, [self = shared_from_this(), m, attempt](std::error_code ec, store_version v) {
        if (self->opts.store_breaker) {
          if (ec && ec != errc::version_conflict) self->opts.store_breaker->record_failure();
          else self->opts.store_breaker->record_success();
        }
        if (!ec) {
          m->version = v;
          return self->finish_write(m, {});
        }
        if (ec != errc::version_conflict || attempt >= self->opts.max_write_attempts) return self->finish_write(m, ec);
        {
          std::lock_guard lock(self->status_mutex);
          ++self->counters.write_conflicts;
        }
        self->log->warn("write conflict machine={} version={} attempt={}", detail::field(m->id), m->version, attempt);
        // Someone else wrote this key: this process runs the machine, so its state wins; learn
        // the current version and write again.
        self->store.async_get(self->key(m->id),
                              boost::asio::bind_executor(self->strand, [self, m, attempt](std::error_code gec,
                                                                                          std::optional<stored_value> cur) {
                                if (gec) return self->finish_write(m, gec);
                                m->version = cur ? cur->version : 0;
                                self->start_write(m, attempt + 1);
                              }));
      }));
}

void orchestrator::impl::finish_write(const machine_ptr& m, std::error_code ec) {
  auto acks = std::move(m->acks_writing);
  m->acks_writing.clear();
  m->writing = false;
  {
    std::lock_guard lock(status_mutex);
    --counters.writes_in_flight;
    if (ec) {
      ++counters.write_failures;
      counters.last_error = "write of machine " + m->id + " failed: " + ec.message();
    } else {
      ++counters.writes;
    }
    if (auto it = status.find(m->id); it != status.end()) it->second.version = m->version;
  }
  if (ec) {
    log->error("write failed machine={} error={}", detail::field(m->id), detail::field(ec.message()));
    m->dirty = true;  // the state is still unsaved: the next event or shutdown writes it again
  }
  for (auto& a : acks) complete(std::move(a), ec);
  if (!m->acks_next.empty() && !m->gone) start_write(m, 1);
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
        if (ec) return self->complete(std::move(h), ec, restored);
        for (auto& [k, stored] : page) {
          auto id = k.substr(self->opts.key_prefix.size());
          if (self->machines.count(id)) continue;
          boost::system::error_code jec;
          auto doc = boost::json::parse(stored.value, jec);
          const auto* o = doc.if_object();
          std::string document;
          if (!jec && o && o->contains("document") && o->at("document").is_string())
            document = std::string(o->at("document").as_string());
          machine_ptr m;
          auto rec = jec || !o ? std::error_code(errc::bad_snapshot)
                               : self->add_machine(id, document, &doc, stored.version, m);
          if (rec) {
            self->log->error("restore failed machine={} error={}", detail::field(id), detail::field(rec.message()));
            std::lock_guard lock(self->status_mutex);
            self->counters.last_error = "restore of machine " + id + " failed: " + rec.message();
            continue;
          }
          ++restored;
        }
        if (page.size() < limit) return self->complete(std::move(h), std::error_code{}, restored);
        self->restore_page(page.back().first, restored, std::move(h));
      }));
}

void orchestrator::impl::finish_shutdown() {
  if (inbox) {
    inbox->cancel();
    inbox.reset();
  }
  for (auto& [id, m] : machines) {
    m->gone = true;
    m->s.reset();  // cancels its timers and children
  }
  machines.clear();
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

// ============================ public ============================

orchestrator::orchestrator(boost::asio::any_io_executor ex, xsn::clock& clk, event_bus& bus, state_store& store,
                           orchestrator_options options)
    : impl_(std::make_shared<impl>(std::move(ex), clk, bus, store, std::move(options))) {}

orchestrator::orchestrator(std::size_t threads, xsn::clock& clk, event_bus& bus, state_store& store,
                           orchestrator_options options)
    : pool_(std::make_unique<boost::asio::thread_pool>(threads ? threads : 1)),
      impl_(std::make_shared<impl>(pool_->get_executor(), clk, bus, store, std::move(options))) {}

orchestrator::~orchestrator() {
  // Without a completed shutdown, cancel what is left on the strand: subscriptions end their
  // waits, no write is started any more. An owned pool then finishes its handlers and is joined.
  boost::asio::post(impl_->strand, [self = impl_] {
    self->accepting = false;
    for (auto& [id, m] : self->machines) m->gone = true;
    if (self->inbox) {
      self->inbox->cancel();
      self->inbox.reset();
    }
  });
  impl_.reset();
  if (pool_) pool_->join();
}

void orchestrator::add_document(std::string name, std::shared_ptr<const statechart> chart) {
  std::lock_guard lock(impl_->status_mutex);
  impl_->documents[std::move(name)] = std::move(chart);
}

void orchestrator::do_create(std::string id, std::string document, boost::asio::any_completion_handler<done_signature> h) {
  boost::asio::post(impl_->strand, [self = impl_, id = std::move(id), document = std::move(document), h = std::move(h)]() mutable {
    if (!self->accepting) return self->complete(std::move(h), std::error_code(errc::not_running));
    if (id.empty()) return self->complete(std::move(h), std::error_code(errc::invalid_argument));
    impl::machine_ptr m;
    if (auto ec = self->add_machine(id, document, nullptr, 0, m)) return self->complete(std::move(h), ec);
    self->log->info("created machine={} document={} session={}", detail::field(id), detail::field(document),
                    detail::field(m->s->id()));
    if (!self->opts.persist) return self->complete(std::move(h), std::error_code{});
    // First write: create-only, so an id that is already stored is refused rather than overwritten.
    auto text = self->stored_text(*m);
    m->writing = true;
    {
      std::lock_guard lock(self->status_mutex);
      ++self->counters.writes_in_flight;
    }
    self->store.async_compare_and_set(
        self->key(id), 0, std::move(text),
        boost::asio::bind_executor(self->strand, [self, m, h = std::move(h)](std::error_code ec, store_version v) mutable {
          if (ec == errc::version_conflict) ec = errc::already_exists;
          if (ec) {
            self->finish_write(m, ec);
            self->remove(m);
            return self->complete(std::move(h), ec);
          }
          m->version = v;
          self->finish_write(m, {});
          self->complete(std::move(h), std::error_code{});
        }));
  });
}

void orchestrator::do_send(std::string id, event ev, boost::asio::any_completion_handler<done_signature> h) {
  boost::asio::post(impl_->strand, [self = impl_, id = std::move(id), ev = std::move(ev), h = std::move(h)]() mutable {
    if (!self->accepting) return self->complete(std::move(h), std::error_code(errc::not_running));
    auto it = self->machines.find(id);
    if (it == self->machines.end()) return self->complete(std::move(h), std::error_code(errc::unknown_machine));
    auto m = it->second;
    if (!m->s->running()) return self->complete(std::move(h), std::error_code(errc::not_running));
    self->process(m, ev);
    self->persist(m, std::move(h));
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
    self->restore_page({}, 0, std::move(h));
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
    self->shutdown_handler = std::move(h);
    // One final write per machine (after any write in flight); a guard count of one until all
    // are started.
    self->shutdown_writes = 1;
    auto release = [self](std::error_code) {
      if (--self->shutdown_writes == 0) self->finish_shutdown();
    };
    for (auto& [id, m] : self->machines) {
      ++self->shutdown_writes;
      self->persist(m, boost::asio::bind_executor(self->strand, release));
    }
    release({});
  });
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

}  // namespace xsn
