// The W3C SCXML interpreter (Appendix D of the recommendation), over a compiled statechart.
// Function names follow the recommendation's pseudo-code so the two can be read side by side.
#include <xsn/runtime/session.hpp>

#include <xsn/detail/bitset.hpp>
#include <xsn/detail/css_time.hpp>
#include <xsn/detail/fixed_vector.hpp>
#include <xsn/detail/ring_queue.hpp>
#include <xsn/parse/scxml.hpp>
#include <xsn/parse/xstate.hpp>
#include <xsn/runtime/implementations.hpp>

#include "null_datamodel.hpp"
#include "event_json.hpp"
#include "session_ext.hpp"
#include "state_set.hpp"
#include "xstate_actors.hpp"
#include "xstate_semantics.hpp"

#include <boost/asio/post.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <atomic>
#include <map>
#include <variant>
#include <unordered_set>

namespace xsn {

namespace {

constexpr std::string_view scxml_processor = "http://www.w3.org/TR/scxml/#SCXMLEventProcessor";

std::string next_session_id() {
  static std::atomic<std::uint64_t> counter{0};
  return "xsn-" + std::to_string(++counter);
}

bool is_scxml_type(std::string_view t) {
  return t.empty() || t == scxml_processor || t == "scxml" || t == "http://www.w3.org/TR/scxml/" ||
         t == "http://www.w3.org/TR/scxml";
}

/// A value as text for `<log>` and invoke content: strings and XML markup as they are, else JSON.
std::string value_text(const value& v) {
  if (v.is_string()) return std::string(v.as_string());
  if (const boost::json::string* markup = xml_markup(v)) return std::string(*markup);
  return boost::json::serialize(v);
}

/// Sessions of one tree (a root and its invoked children), by id, for `#_scxml_<id>` targets.
struct registry {
  std::unordered_map<std::string, session::impl*> sessions;
  /// XState actors by `systemId`: the session owning each as a child, and its id there.
  std::unordered_map<std::string, std::pair<session::impl*, std::string>> system;
};

}  // namespace

struct session::impl final : datamodel_host, detail::actor_host {
  impl(session& self, std::shared_ptr<const statechart> chart, boost::asio::any_io_executor ex,
       xsn::clock& clk, std::shared_ptr<const session_options> opts, std::string given_id = {})
      : self_(self), chart_(std::move(chart)), c_(*chart_), ex_(std::move(ex)), clock_(clk),
        opts_holder_(std::move(opts)), opts_(*opts_holder_), config_(c_.states.size()), atomic_mask_(c_.atomic_mask) {
    // Only what every macrostep needs is allocated here; the rest when a chart uses it (history,
    // late binding, invokes) or on the first microstep that needs the general algorithm.
    fixed_id_ = !given_id.empty() || !opts_.session_id.empty();
    id_ = !given_id.empty() ? std::move(given_id) : opts_.session_id.empty() ? next_session_id() : opts_.session_id;
    has_histories_ = c_.has_histories;
    big_ = c_.states.size() > 256;  // below, a walk of every word costs a few instructions
    if (big_) big_config_.ensure(c_.states.size());
    if (has_histories_) {
      cold().history_.resize(c_.states.size());
      cold().has_history_.assign(c_.states.size(), false);
    }
    if (c_.binding == binding_mode::late) cold().entered_once_.assign(c_.states.size(), false);
    if (!c_.invokes.empty()) cold().to_invoke_.ensure(c_.states.size());
    for (auto* v : {&enabled_, &domains_, &order_}) *v = detail::fixed_vector<std::uint32_t>(c_.states.size());
    natives_.resize(c_.native_actions.size());
    for (std::size_t i = 0; i < c_.native_actions.size(); ++i)
      if (auto it = opts_.actions.find(c_.native_actions[i]); it != opts_.actions.end()) natives_[i] = it->second;
    dm_ = opts_.make_datamodel ? opts_.make_datamodel() : make_datamodel(c_.datamodel, opts_.limits);
    if (!dm_) dm_ = make_null_datamodel();
    xstate_ = c_.semantics == chart_semantics::xstate;
    track_order_ = xstate_ && c_.has_eventless;
    inspect_ = static_cast<bool>(opts_.inspect);
    dm_reads_event_ = !detail::is_null_datamodel(*dm_);
    borrows_event_ = xstate_context(*dm_) != nullptr;
    quick_rtc_ = !c_.has_eventless && c_.invokes.empty() && opts_.microstep_budget > 0;
    has_invokes_ = !c_.invokes.empty();
    bookkeeping_ = has_histories_ || has_invokes_;
    xstate_walk_ = xstate_ && c_.states.size() > 1 &&
                   std::none_of(c_.hot_states.begin(), c_.hot_states.end(), [](const hot_state& h) { return h.flags & hot_state::childless; });
    if (xstate_walk_) region_found_ = detail::bitset(c_.states.size());
  }
  ~impl() override { shutdown_resources(); }

  // ---- datamodel_host ----
  bool raise_internal(event ev) override {
    if (!in_macrostep_ || internal_.size() >= opts_.internal_queue_capacity) return false;
    raise(std::move(ev));
    return true;
  }
  bool in_state(std::string_view id) const override {
    auto s = c_.find_state(id);
    return s != npos && config_.test(s);
  }
  const std::string& session_id() const override { return id_; }
  const std::string& session_name() const override { return c_.name; }
  value io_processors() const override {
    boost::json::object loc{{"location", "#_scxml_" + id_}};
    return boost::json::object{{std::string(scxml_processor), loc}, {"scxml", loc}};
  }

  // ---- lifecycle ----
  std::error_code start();
  std::error_code send(event ev);
  std::error_code process(const event& ev);
  void drain();
  void stop();
  void post_drain();

  // ---- the algorithm ----
  void process_external(const event& ev);
  /// Datamodels may keep a reference to the event they are given: when a macrostep ends (and its
  /// external event with it), an empty event stands in until the next one.
  void release_event();
  std::uint32_t resolve(const event& ev) const noexcept {
    if (ev.resolved_by == &c_) return ev.name_id;
    return ev.name_id < c_.names.size() && c_.names[ev.name_id] == ev.name ? ev.name_id : c_.find_name(ev.name);
  }
  void run_to_completion();
  bool select_transitions(const event* ev, std::uint32_t name_id);
  /// Calls `f(ti)` in document order for the transitions of indexed state `s` that can match `ev`
  /// (eventless ones when `ev` is null), until `f` returns true: a merge of the event index's
  /// entries under each descriptor the event matches, not a scan of all the state's transitions.
  template <class F>
  void for_each_indexed(state_index s, const event* ev, std::uint32_t name_id, F&& f);
  struct index_run {
    const indexed_transition* at;
    const indexed_transition* end;
  };
  std::vector<index_run> index_runs_;        // for_each_indexed's scratch
  std::vector<std::uint32_t> event_keys_;    // the descriptors the current event matches
  const event* event_keys_for_ = nullptr;    // reset per selection
  void remove_conflicts();
  void microstep();
  bool disjoint_domains() const;
  void exit_states();
  void record_history(state_index s);
  void exit_one(state_index s) __attribute__((always_inline));
  void enter_states();
  void enter_one(state_index s, bool by_default) __attribute__((always_inline));
  void enter_content(state_index s, bool by_default);  // enter_one's executable content, done events
  void add_descendants(state_index s);
  void add_ancestors(state_index s, state_index anc);
  void effective_targets(const transition_node& t, std::vector<state_index>& out) const;
  /// W3C getTransitionDomain; precomputed unless a target is a history state.
  state_index domain_of(const transition_node& t) const { return t.history_target ? dynamic_domain(t) : t.domain; }
  state_index dynamic_domain(const transition_node& t) const;
  /// W3C isInFinalState; with `final_itself` (XState) a final state also counts as in a final state.
  bool in_final(state_index s, bool final_itself = false) const;
  void exit_interpreter(bool reached_final);
  void initialize_data(const data_decl& d, state_index where);

  // ---- diagnostics (session_diagnostics.cpp holds what needs spdlog) ----
  /// Hands `d` to `on_diagnostic`, else to the `xsn.session` logger; and to the inspector.
  void report(const runtime_diagnostic& d);
  void report(diagnostic_kind kind, std::string_view event, state_index where, std::string_view message);
  /// True when an ignored event would be seen by anyone (hook, inspector, logger at `debug`).
  bool ignored_wanted();
  /// Reports that `ev` took no transition, with the reason.
  void report_ignored(const event& ev, std::uint32_t name_id);
  /// Some active state has a transition whose event descriptor matches `ev` (guards aside).
  bool has_transition_for(const event& ev, std::uint32_t name_id) const;
  /// The state whose content (or transition, or invoke) holds action `a`; `npos` when none.
  state_index state_of(const action* a) const;
  std::shared_ptr<spdlog::logger> log_;  // `xsn.session`, taken when first needed
  bool guard_failed_ = false;            // a guard failed while selecting for the current external event

  // ---- executable content ----
  bool execute(const action_block& block);
  bool exec(const action& a);
  bool exec_send(const send_action& s, source_location loc);
  bool exec_cancel(const cancel_action& c);
  bool exec_log(const log_action& l);
  bool exec_assign(const assign_action& a);
  bool exec_foreach(const foreach_action& f);
  result<value> content_data(const content& c);
  result<value> params_data(const std::vector<param>& params, const std::vector<expr_index>& namelist,
                            const std::vector<std::string>& names);
  value done_data(state_index final_state);
  /// `where` of `raise_error`: the state of the action being executed (`acting_`), if any.
  static constexpr state_index acting_state = npos - 1;
  /// Raises `name` (SCXML) or fails the machine (XState), and reports it as a diagnostic of
  /// `kind` (the caller raising `error.communication` passes `communication_error`) at state
  /// `where` (`npos`: unknown).
  void raise_error(std::string name, std::string message, std::string sendid = {},
                   diagnostic_kind kind = diagnostic_kind::execution_error, state_index where = acting_state);
  void raise(event ev);
  void deliver(event ev, std::string target);
  void schedule_send(std::string sendid, event ev, std::string target, clock::time_point due);
  void fire_send(std::uint64_t key);
  bool enqueue_external(event ev);
  /// An event one of our own delayed sends put on our external queue (origin us, with a sendid).
  bool own_timer_event(const event& ev) const noexcept {
    constexpr std::string_view prefix = "#_scxml_";
    return !ev.sendid.empty() && ev.origin.size() == prefix.size() + id_.size() &&
           std::string_view(ev.origin).substr(0, prefix.size()) == prefix &&
           std::string_view(ev.origin).substr(prefix.size()) == id_;
  }
  void withdraw_timer_events(const std::string& sendid);
  /// Removes the queued external events `drop(ev)` selects, telling `async_send` waiters their
  /// positions; returns how many.
  template <class Pred>
  std::size_t drop_queued(Pred drop) {
    std::vector<std::size_t> dropped;
    std::size_t pos = 0;
    external_.remove_if([&](const event& e) {
      const bool d = drop(e);
      if (d) dropped.push_back(pos);
      ++pos;
      return d;
    });
    if (!dropped.empty() && cold_ && cold_->ext_) cold_->ext_->waiters.removed(ex_, dropped);
    return dropped.size();
  }

  // ---- invoke ----
  void start_invokes();
  void invoke(const invoke_decl& inv, std::uint32_t index);
  void cancel_invokes(state_index s);
  session& make_child(const std::string& invokeid, std::shared_ptr<const statechart> chart, std::uint32_t decl,
                      datamodel_factory dm = {});
  std::shared_ptr<const statechart> child_chart(std::uint32_t decl, std::string& error);

  // ---- XState actors (see xstate_actors.hpp) ----
  void actor_send_to(const std::string& to, event ev) override;
  void actor_send_parent(event ev) override;
  std::string actor_spawn(std::shared_ptr<const bound_actor> logic, spawn_options opts) override;
  void actor_stop_child(const std::string& id) override;
  void actor_from_child(const std::string& id, event ev, bool final) override;
  void invoke_xstate(std::uint32_t index);
  std::string start_actor(std::shared_ptr<const bound_actor> logic, const std::string& id, const std::string& system_id,
                          const value& input, std::uint32_t decl, const value* restore_from, bool defer = false);
  void start_spawned();
  void remove_child(const std::string& id);
  bool deliver_to_child(const std::string& id, event ev);
  registry& ensure_registry();
  /// The top-level session of this session's tree (the one the embedding created).
  session& root_session() noexcept {
    impl* r = this;
    while (r->cold_ && r->cold_->parent_) r = r->cold_->parent_;
    return r->self_;
  }

  // ---- snapshots ----
  value snapshot();
  std::error_code restore(const value& snap);
  value state_value(state_index s) const;
  void handle_child_event(const event& ev);

  void shutdown_resources();

  // ---- XState semantics (the rules themselves are in xstate_semantics.cpp) ----
  bool select_xstate(const event& ev, std::uint32_t name_id);
  bool xstate_select_in(state_index s, const event& ev, std::uint32_t name_id);
  void xstate_select_walk(const event& ev, std::uint32_t name_id);
  /// The state's own transitions (XState: true when one was enabled, or the session failed).
  bool xstate_select_own(state_index s, const event& ev, std::uint32_t name_id) __attribute__((always_inline));
  bool xstate_take(transition_index ti, state_index s) __attribute__((always_inline));
  [[gnu::noinline]] bool xstate_select_indexed(state_index s, const event& ev, std::uint32_t name_id);
  void xstate_enter_general();
  void xstate_final_entered(state_index s);
  bool xstate_eventless_microstep();
  void xstate_begin_microstep();
  value xstate_output() const {  // XState getMachineOutput: the root's static `output` once done
    const bool done = c_.semantics == chart_semantics::xstate && ended_ && !cancelled_ && !errored_ && c_.xstate;
    return done ? c_.xstate->output : value();
  }
  void xstate_end_microstep();
  std::vector<state_index> xstate_before_;  // xstate_order_ before the current microstep
  bool xstate_same_nodes_ = false;          // the last microstep left the node set and history as they were
  std::vector<state_index> xstate_order_;   // active states in the order they were entered
  bool history_changed_ = false;
  void xstate_fail(const std::string& message, diagnostic_kind kind = diagnostic_kind::execution_error,
                   state_index where = acting_state, std::string_view event_name = "error.execution");
  /// Where the action being executed stands, e.g. ` in state 'm.idle' (entry)`; empty when unknown.
  /// For error messages only: it searches the chart.
  std::string action_site() const;
  const action* acting_ = nullptr;  // the action being executed (null outside actions), for action_site()
  bool errored_ = false;  // XState: an action or guard failed; the session ended with status error

  // ---- inspection and async_send (session_ext.hpp, session_inspect.cpp, session_async.cpp) ----
  detail::session_ext& ext() {
    auto& e = cold().ext_;
    if (!e) e = std::make_unique<detail::session_ext>();
    return *e;
  }
  session_status status() const noexcept {
    return errored_ ? session_status::error
           : running_ ? session_status::active
           : ended_ && !cancelled_ ? session_status::done
           : started_ ? session_status::stopped
                      : session_status::created;
  }
  std::string_view status_text() const noexcept { return to_string(status()); }
  inspection_event inspection_base();
  value inspection_state() {
    return boost::json::object{{"status", status_text()}, {"value", state_value(0)}, {"context", dm_->save()}};
  }
  void inspect_started();
  void inspect_received(const event& ev);
  void inspect_step();
  void after_macrostep(const event& ev);
  void async_send(event ev, detail::macrostep_handler h);

  session& self_;
  std::shared_ptr<const statechart> chart_;
  const statechart& c_;
  boost::asio::any_io_executor ex_;
  xsn::clock& clock_;
  std::shared_ptr<const session_options> opts_holder_;  // shared by sessions made alike
  const session_options& opts_;
  void* user_data_ = nullptr;
  std::unique_ptr<xsn::datamodel> dm_;
  std::string id_;
  bool fixed_id_ = false;  // the id was given (constructor or options): a restore keeps it
  std::vector<native_action_fn> natives_;
  std::shared_ptr<int> life_ = std::make_shared<int>(0);

  detail::bitset config_;
  // Charts of more than 256 states: the configuration again, with a summary of its
  // non-empty words, for the walks of each event (selection, exit), which then cost the active
  // states, not the chart (10,000 idle siblings of the active state made them 8x the event).
  detail::state_set big_config_;
  bool big_ = false;
  const detail::bitset& atomic_mask_;  // the chart's
  bool has_histories_ = false;
  // Scratch lists of the algorithm, sized once: at most one enabled transition per atomic state.
  detail::fixed_vector<transition_index> enabled_;
  detail::fixed_vector<state_index> domains_;  // domains_[i]: of enabled_[i]
  detail::fixed_vector<std::uint32_t> order_;  // indices of enabled_ with a domain, by domain
  bool fast_ = false;
  // Fixed for the session's life (chart and options are immutable): the per-state loops of a
  // macrostep test these members instead of the chart's semantics or the options.
  bool xstate_ = false;          // the chart runs by XState's rules
  bool track_order_ = false;     // XState with eventless transitions: keep xstate_order_ (only they read it)
  bool inspect_ = false;         // opts_.inspect is set
  bool dm_reads_event_ = true;   // false for the null datamodel, whose set_event does nothing
  bool borrows_event_ = false;   // the datamodel keeps a reference to the event (the xstate one)
  bool quick_rtc_ = false;       // no eventless transitions, no invokes: an empty internal queue ends the macrostep
  bool has_invokes_ = false;     // the chart has <invoke>s
  bool bookkeeping_ = false;     // exits record history or invokes
  event internal_event_;         // the internal event being processed (datamodels may keep a reference to it)
  bool xstate_walk_ = false;     // XState selection bottom-up from the atomic states (no childless compound/parallel)
  detail::bitset region_found_;  // xstate_select_walk: parallel states some region of which enabled a transition
  bool cancelled_ = false;  // stop() was called inside a macrostep
  bool disjoint_ = true;  // enabled_ has pairwise disjoint domains (set by select_transitions)
  detail::ring_queue<event> external_, internal_;  // bounded by opts_ capacities
  bool running_ = false, started_ = false, ended_ = false, in_macrostep_ = false, drain_posted_ = false;
  std::uint32_t microsteps_ = 0;
  std::uint64_t transitions_taken_ = 0;  // since created or restored (the initial entry is none)
  std::uint64_t send_counter_ = 0;
  // XState: events of our own fired timers waiting on external_ (at most that many), so that a
  // cancel looks through the queue only when one may be there.
  std::size_t queued_timer_events_ = 0;

  struct pending_send {
    clock::timer_id timer = 0;
    std::string sendid;
    clock::time_point due;
    event ev;
    std::string target;
  };
  struct child {
    std::unique_ptr<session> s;
    std::uint32_t decl = npos;                    // npos: spawned (XState), not invoked
    std::unique_ptr<detail::native_actor> actor;  // XState promise and callback actors
    std::shared_ptr<const bound_actor> logic;     // XState actors: what was started (snapshots)
    std::string system_id;                        // XState: registered under this systemId
    // XState: spawned, to start at the end of the macrostep (`start_spawned`); what it is sent
    // before that waits here (at most the queue capacity), and a native actor's input.
    bool deferred = false;
    std::vector<event> early;
    value input;
  };
  /// What a simple machine never needs (history, late binding, invokes, delayed sends, conflict
  /// resolution, the general entry algorithm): allocated on first use, so that thousands of
  /// simple sessions stay small.
  struct cold_state {
    detail::state_set exit_set_, entry_set_, default_entry_;  // sized on first use
    detail::bitset to_invoke_;
    std::vector<std::vector<state_index>> history_;
    std::vector<bool> has_history_;
    std::vector<bool> entered_once_;
    std::vector<std::pair<state_index, transition_index>> default_history_content_;
    detail::fixed_vector<transition_index> filtered_;
    detail::fixed_vector<state_index> filtered_domains_;
    detail::fixed_vector<std::uint32_t> to_remove_;
    std::vector<state_index> scratch_targets_;
    std::map<std::uint64_t, pending_send> delayed_;  // delayed sends, in the order they were sent
    std::uint64_t delayed_counter_ = 0;
    std::map<std::string, child> children_;
    std::vector<std::string> spawned_;  // XState: spawned this macrostep, to start at its end
    impl* parent_ = nullptr;
    std::string invokeid_;  // our id in the parent
    std::string error_;     // XState: why the session failed (for `xstate.error.actor.<id>`)
    std::shared_ptr<registry> registry_;
    std::unordered_map<std::string, value> data_overrides_;
    std::unique_ptr<detail::session_ext> ext_;  // inspection scratch, async_send waiters
  };
  mutable std::unique_ptr<cold_state> cold_;
  cold_state& cold() const {
    if (!cold_) cold_ = std::make_unique<cold_state>();
    return *cold_;
  }
};

// ============================ lifecycle ============================

std::error_code session::impl::start() {
  if (started_) return {};
  started_ = true;
  if (cold_ && cold_->registry_) cold_->registry_->sessions[id_] = this;  // a child joins its parent's registry
  if (opts_.inspect) [[unlikely]] inspect_started();
  in_macrostep_ = true;
  bool unbound = false;  // XState: the machine names implementations nobody bound
  if (auto r = dm_->setup(c_, *this); !r) {
    unbound = xstate_ && c_.xstate && dm_->name() == "xstate" && !detail::xstate_bound(*dm_) &&
              !detail::unbound_names(*c_.xstate).items.empty();
    raise_error("error.execution", r.error().message, {},
                unbound ? diagnostic_kind::unbound_action : diagnostic_kind::execution_error, npos);
  }
  // SCXML: every `<xsn:action>` name without a handler, once, before any runs.
  if (std::find(natives_.begin(), natives_.end(), nullptr) != natives_.end()) [[unlikely]] {
    std::string names;
    for (std::size_t i = 0; i < natives_.size(); ++i)
      if (!natives_[i]) names += (names.empty() ? "'" : ", '") + c_.native_actions[i] + "'";
    report(diagnostic_kind::unbound_action, {}, npos,
           "no native action bound to " + names + " (session_options::actions); each use raises error.execution");
  }
  if (c_.binding == binding_mode::early) {
    for (const auto& d : c_.data) initialize_data(d, npos);
  } else {
    for (const auto& d : c_.data)
      if (auto r = dm_->declare(d); !r) raise_error("error.execution", r.error().message, {}, diagnostic_kind::execution_error, npos);
    for (auto d : c_.states[0].data) initialize_data(c_.data[d], npos);
  }
  running_ = !errored_;
  execute(c_.root_scripts);
  enabled_.assign(1, c_.states[0].initial);
  microsteps_ = 0;
  domains_.assign(1, 0);
  order_.assign(1, 0);
  fast_ = c_.transitions[enabled_[0]].static_entry;
  enter_states();
  fast_ = false;
  if (opts_.inspect) [[unlikely]] inspect_step();
  run_to_completion();
  in_macrostep_ = false;
  if (opts_.on_macrostep) opts_.on_macrostep(self_);
  if (!running_) exit_interpreter(!cancelled_);
  else if (!external_.empty()) post_drain();
  if (opts_.inspect) [[unlikely]] after_macrostep(ext().current);
  if (errored_) return unbound ? errc::not_bound : errc::start_failed;
  return {};
}

void session::impl::initialize_data(const data_decl& d, state_index where) {
  result<void> r;
  if (auto it = cold_ ? cold_->data_overrides_.find(d.id) : decltype(cold_->data_overrides_)::iterator{};
      cold_ && it != cold_->data_overrides_.end()) {
    data_decl o = d;
    o.expr = npos;
    o.src_error.clear();
    o.text = boost::json::serialize(it->second);
    r = dm_->initialize(o);
  } else {
    r = dm_->initialize(d);
  }
  if (!r) raise_error("error.execution", r.error().message, {}, diagnostic_kind::execution_error, where);
}

std::error_code session::impl::send(event ev) {
  if (!running_) return errc::not_running;
  if (!enqueue_external(std::move(ev))) return errc::queue_full;
  return {};
}

bool session::impl::enqueue_external(event ev) {
  if (!running_ || external_.size() >= opts_.queue_capacity) return false;
  external_.push_back(std::move(ev));
  post_drain();
  return true;
}

void session::impl::post_drain() {
  if (drain_posted_ || in_macrostep_) return;
  drain_posted_ = true;
  boost::asio::post(ex_, [this, alive = std::weak_ptr<int>(life_)] {
    if (alive.expired()) return;
    drain_posted_ = false;
    drain();
  });
}

std::error_code session::impl::process(const event& ev) {
  if (in_macrostep_) return errc::not_on_executor;
  if (!running_) return errc::not_running;
  if (external_.empty()) {
    process_external(ev);
    if (!external_.empty()) drain();
    return {};
  }
  if (external_.size() >= opts_.queue_capacity) return errc::queue_full;
  external_.push_back(ev);
  drain();
  return {};
}

void session::impl::drain() {
  if (in_macrostep_) return;
  // A bounded batch per handler keeps sessions sharing an executor fair.
  for (int batch = 0; batch < 64 && running_ && !external_.empty(); ++batch) {
    event ev = std::move(external_.front());
    external_.pop_front();
    if (queued_timer_events_ != 0 && own_timer_event(ev)) [[unlikely]] --queued_timer_events_;
    if (cold_ && cold_->ext_) [[unlikely]] cold_->ext_->waiters.popped();
    process_external(ev);
  }
  if (running_ && !external_.empty()) {
    post_drain();
  } else if (external_.empty()) {
    external_.clear();  // an idle session holds no queue storage
    queued_timer_events_ = 0;
  }
}

void session::impl::stop() {
  if (!running_ || in_macrostep_) {  // inside a macrostep: it ends the session when it returns
    if (running_) cancelled_ = true;
    running_ = false;
    return;
  }
  running_ = false;
  cancelled_ = true;  // status `stopped`, not `done`
  exit_interpreter(false);
  if (opts_.inspect) [[unlikely]] after_macrostep(event("xstate.stop"));
}

void session::impl::shutdown_resources() {
  if (!cold_) return;
  if (cold_->ext_) cold_->ext_->waiters.fail_all(ex_, std::make_error_code(std::errc::operation_canceled));
  for (auto& [key, p] : cold_->delayed_) clock_.cancel(p.timer);
  cold_->delayed_.clear();
  for (auto& [cid, ch] : cold_->children_)
    if (!ch.system_id.empty() && cold_->registry_) cold_->registry_->system.erase(ch.system_id);
  cold_->children_.clear();
  if (cold_->registry_) cold_->registry_->sessions.erase(id_);
}

// ============================ macrostep ============================

void session::impl::process_external(const event& ev) {
  const auto name_id = resolve(ev);
  in_macrostep_ = true;
  microsteps_ = 0;
  if (dm_reads_event_) dm_->set_event(ev);
  if (inspect_) [[unlikely]] inspect_received(ev);
  if (cold_ && !cold_->children_.empty()) handle_child_event(ev);
  guard_failed_ = false;
  if (select_transitions(&ev, name_id)) microstep();
  else if (running_ && !errored_ && ignored_wanted()) [[unlikely]] report_ignored(ev, name_id);
  // Without eventless transitions and invokes, an empty internal queue leaves run_to_completion
  // nothing to do (but start what the macrostep spawned).
  if (!quick_rtc_ || !internal_.empty()) {
    run_to_completion();
  } else if (cold_ && !cold_->spawned_.empty() && running_) [[unlikely]] {
    start_spawned();
    if (!internal_.empty()) run_to_completion();  // a child that failed at once raised an error
  }
  in_macrostep_ = false;
  if (opts_.on_macrostep) opts_.on_macrostep(self_);
  if (!running_) exit_interpreter(!cancelled_);
  if (cold_ && cold_->ext_) [[unlikely]] after_macrostep(ev);
  if (borrows_event_) release_event();
}

void session::impl::release_event() {
  static const event none;
  dm_->set_event(none);
}

void session::impl::handle_child_event(const event& ev) {
  static std::map<std::string, child> no_children;  // never modified: stands for an absent cold_
  for (auto& [invokeid, ch] : cold_ ? cold_->children_ : no_children) {
    if (ch.decl == npos) continue;  // spawned
    const auto& inv = c_.invokes[ch.decl];
    if (!config_.test(inv.parent)) continue;
    if (invokeid == ev.invokeid) execute(inv.finalize);
    if (inv.autoforward && ch.s && ch.s->running()) {
      event copy = ev;
      copy.name_id = npos;
      ch.s->impl_->enqueue_external(std::move(copy));
    }
  }
  if (ev.name.rfind("done.invoke.", 0) == 0 && !ev.invokeid.empty()) {
    auto it = cold().children_.find(ev.invokeid);
    if (it != cold().children_.end() && it->second.s && !it->second.s->running()) cold().children_.erase(it);
  } else if (!ev.invokeid.empty() && (ev.name.rfind("xstate.done.actor.", 0) == 0 || ev.name.rfind("xstate.error.actor.", 0) == 0)) {
    auto it = cold().children_.find(ev.invokeid);  // XState: a finished actor leaves `children`
    if (it != cold().children_.end() && (it->second.s ? !it->second.s->running() : !it->second.actor || it->second.actor->finished()))
      remove_child(ev.invokeid);
  }
}

void session::impl::run_to_completion() {
  bool eventless = true;  // XState: false after an eventless microstep that changed nothing
  for (;;) {
    while (running_) {
      if (++microsteps_ > opts_.microstep_budget) {
        raise_error("error.execution", "microstep budget of " + std::to_string(opts_.microstep_budget) +
                                           " exhausted: the macrostep was ended (endless eventless loop?)",
                    {}, diagnostic_kind::execution_error, npos);
        if (opts_.on_log) opts_.on_log("error", "microstep budget exhausted in session " + id_);
        return;
      }
      if (c_.has_eventless && eventless && select_transitions(nullptr, npos)) {
        if (xstate_) eventless = xstate_eventless_microstep();
        else microstep();
        continue;
      }
      if (internal_.empty()) break;
      internal_event_ = std::move(internal_.front());  // a member: the datamodel may keep a reference
      internal_.pop_front();
      const auto& ev = internal_event_;
      if (dm_reads_event_) dm_->set_event(ev);
      if (inspect_) [[unlikely]] ext().current = ev;
      if (select_transitions(&ev, resolve(ev))) microstep();
      eventless = true;
    }
    if (!running_) return;
    if (!c_.invokes.empty()) start_invokes();
    if (cold_ && !cold_->spawned_.empty()) start_spawned();
    if (internal_.empty()) return;
  }
}

bool session::impl::select_transitions(const event* ev, std::uint32_t name_id) {
  enabled_.clear();
  domains_.clear();
  event_keys_for_ = nullptr;
  if (ev && xstate_) return select_xstate(*ev, name_id);
  const auto* hs = c_.hot_states.data();
  const auto* ht = c_.hot_transitions.data();
  // A name that is no other name's token prefix can only match its own single descriptor.
  const bool exact_only = name_id != npos && c_.name_prefixes[name_id].size() == 1;
  // Inlined into both loops below (called out of line, it cost SCXML charts 10% per event).
  // A matching transition `ti` of state `s`: true when it is enabled (its guard holds).
  const auto take = [&](transition_index ti, state_index s) __attribute__((always_inline)) {
    const auto& h = ht[ti];
    if (h.cond != npos) {
      auto r = dm_->eval_bool(h.cond);
      if (!r) {
        guard_failed_ = true;
        raise_error("error.execution", r.error().message, {}, diagnostic_kind::guard_error, s);
        return false;
      }
      if (!*r) return false;
    }
    if (std::find(enabled_.begin(), enabled_.end(), ti) == enabled_.end()) {
      enabled_.push_back(ti);
      domains_.push_back(h.flags & hot_transition::history_target ? dynamic_domain(c_.transitions[ti]) : h.domain);
    }
    return true;
  };
  const auto visit = [&](state_index atomic) __attribute__((always_inline)) {
    if (!ev && !(hs[atomic].flags & hot_state::eventless_in_chain)) return;
    for (auto s = atomic; s != npos; s = hs[s].parent) {
      if (hs[s].flags & hot_state::indexed) [[unlikely]] {
        bool taken = false;
        for_each_indexed(s, ev, name_id, [&](transition_index ti) { return taken = take(ti, s); });
        if (taken) return;
        continue;
      }
      const auto first = hs[s].first_transition, last = first + hs[s].transition_count;
      for (auto ti = first; ti != last; ++ti) {
        const auto& h = ht[ti];
        if (!ev) {
          if (h.event != hot_transition::eventless_marker) continue;
        } else if (h.event != name_id) {
          if (h.event == hot_transition::eventless_marker) continue;
          if (exact_only && h.event != hot_transition::multi_marker) continue;
          if (!c_.matches_slow(c_.transitions[ti], ev->name, name_id)) continue;
        }
        if (take(ti, s)) return;
      }
    }
  };
  if (xstate_) {
    // XState visits the atomic states in the order they became active (its `_nodes` set).
    for (auto a : xstate_order_)
      if (atomic_mask_.test(a)) visit(a);
  } else {
    if (big_) [[unlikely]] big_config_.for_each_and(atomic_mask_, visit);
    else config_.for_each_and(atomic_mask_, visit);
  }
  disjoint_ = enabled_.size() <= 1 || disjoint_domains();
  if (!disjoint_) remove_conflicts();
  return !enabled_.empty();
}

template <class F>
void session::impl::for_each_indexed(state_index s, const event* ev, std::uint32_t name_id, F&& f) {
  index_runs_.clear();
  const auto add = [&](std::uint32_t key) {
    auto [first, last] = c_.indexed(s, key);
    if (first != last) index_runs_.push_back({first, last});
  };
  if (!ev) {
    add(c_.eventless_key());
  } else {
    if (name_id != npos) {
      for (auto key : c_.name_prefixes[name_id]) add(key);
    } else {
      if (event_keys_for_ != ev) {  // a name no descriptor names: its keys once per event
        event_keys_.clear();
        c_.descriptor_keys(ev->name, name_id, event_keys_);
        event_keys_for_ = ev;
      }
      for (auto key : event_keys_) add(key);
    }
    if (c_.hot_states[s].flags & hot_state::any_event) add(c_.any_key());
  }
  auto previous = npos;  // a transition listed twice under a key ("a a") or under two keys comes out once
  if (index_runs_.size() == 1) {
    for (auto [at, end] = index_runs_.front(); at != end; ++at)
      if (at->transition != std::exchange(previous, at->transition) && f(at->transition)) return;
    return;
  }
  // Merge the runs, each in document order.
  for (;;) {
    index_run* next = nullptr;
    for (auto& r : index_runs_)
      if (r.at != r.end && (!next || r.at->transition < next->at->transition)) next = &r;
    if (!next) return;
    const auto ti = next->at++->transition;
    if (ti == previous) continue;
    previous = ti;
    if (f(ti)) return;
  }
}

state_index session::impl::dynamic_domain(const transition_node& t) const {
  std::vector<state_index> targets;
  effective_targets(t, targets);
  if (c_.semantics == chart_semantics::xstate) return detail::xstate_domain(c_, t, targets);
  if (targets.empty()) return npos;
  const auto src = t.source;
  if (t.internal && c_.states[src].kind == state_kind::compound &&
      std::all_of(targets.begin(), targets.end(), [&](state_index s) { return c_.is_descendant(s, src); }))
    return src;
  for (auto anc = c_.states[src].parent; anc != npos; anc = c_.states[anc].parent) {
    if (anc != 0 && c_.states[anc].kind != state_kind::compound) continue;
    if (std::all_of(targets.begin(), targets.end(), [&](state_index s) { return c_.is_descendant(s, anc); }))
      return anc;
  }
  return 0;
}

void session::impl::effective_targets(const transition_node& t, std::vector<state_index>& out) const {
  for (auto s : t.targets) {
    if (c_.states[s].kind != state_kind::history) {
      if (std::find(out.begin(), out.end(), s) == out.end()) out.push_back(s);
    } else if (cold().has_history_[s]) {
      for (auto h : cold().history_[s])
        if (std::find(out.begin(), out.end(), h) == out.end()) out.push_back(h);
    } else {
      effective_targets(c_.transitions[c_.states[s].initial], out);
    }
  }
}

void session::impl::remove_conflicts() {
  if (!cold().filtered_.capacity())
    for (auto* v : {&cold().filtered_, &cold().filtered_domains_, &cold().to_remove_}) *v = detail::fixed_vector<std::uint32_t>(c_.states.size());
  cold().filtered_.clear();
  cold().filtered_domains_.clear();
  for (auto t1 : enabled_) {
    bool preempted = false;
    const auto d1 = domain_of(c_.transitions[t1]);  // (recomputed: domains_ is rebuilt below)
    cold().to_remove_.clear();
    for (std::size_t j = 0; j < cold().filtered_.size(); ++j) {
      const auto t2 = cold().filtered_[j];
      const auto d2 = cold().filtered_domains_[j];
      if (d1 == npos || d2 == npos) continue;
      // Exit sets are the active states inside the domains' subtrees; subtrees nest or are disjoint.
      state_index inner = npos;
      if (d1 == d2 || c_.is_descendant(d2, d1)) inner = d2;
      else if (c_.is_descendant(d1, d2)) inner = d1;
      if (inner == npos || !config_.any_in(inner + 1, c_.states[inner].subtree_end)) continue;
      if (c_.is_descendant(c_.transitions[t1].source, c_.transitions[t2].source)) {
        cold().to_remove_.push_back(static_cast<std::uint32_t>(j));
      } else {
        preempted = true;
        break;
      }
    }
    if (preempted) continue;
    for (auto k = cold().to_remove_.size(); k-- > 0;) {
      cold().filtered_.erase_at(cold().to_remove_[k]);
      cold().filtered_domains_.erase_at(cold().to_remove_[k]);
    }
    cold().filtered_.push_back(t1);
    cold().filtered_domains_.push_back(d1);
  }
  enabled_.swap(cold().filtered_);
  domains_.swap(cold().filtered_domains_);
}

bool session::impl::disjoint_domains() const {
  for (std::size_t i = 0; i < domains_.size(); ++i) {
    if (domains_[i] == npos) continue;
    for (std::size_t j = i + 1; j < domains_.size(); ++j) {
      auto a = domains_[i], b = domains_[j];
      if (b != npos && (a == b || c_.is_descendant(a, b) || c_.is_descendant(b, a))) return false;
    }
  }
  return true;
}

void session::impl::microstep() {
  transitions_taken_ += enabled_.size();
  // Transitions whose domains are disjoint subtrees (parallel regions) have disjoint exit and entry
  // sets: each can use its own precomputed range and entry list, in document order of domains.
  const auto* ht = c_.hot_transitions.data();
  fast_ = disjoint_;
  if (fast_ && enabled_.size() == 1) {
    order_.clear();
    if (domains_[0] != npos) order_.push_back(0);
    fast_ = domains_[0] == npos || (ht[enabled_[0]].flags & hot_transition::static_entry);
  } else if (fast_) {
    order_.clear();
    for (std::size_t i = 0; i < enabled_.size(); ++i) {
      if (domains_[i] == npos) continue;
      if (!(ht[enabled_[i]].flags & hot_transition::static_entry)) fast_ = false;
      order_.push_back(static_cast<std::uint32_t>(i));
    }
    std::sort(order_.begin(), order_.end(), [&](std::uint32_t a, std::uint32_t b) { return domains_[a] < domains_[b]; });
  }
  // Only eventless microsteps read what these record (see track_order_).
  if (track_order_) xstate_begin_microstep();
  exit_states();
  for (auto ti : enabled_)
    if (ht[ti].flags & hot_transition::body) execute(c_.transitions[ti].body);
  enter_states();
  if (track_order_) xstate_end_microstep();
  if (inspect_) [[unlikely]] inspect_step();
}

void session::impl::record_history(state_index s) {
  if (!c_.invokes.empty()) cold().to_invoke_.reset(s);
  if (!has_histories_) return;
  for (auto h : c_.states[s].histories) {
    history_changed_ = true;
    auto& v = cold().history_[h];
    v.clear();
    if (c_.states[h].history == history_kind::deep) {
      config_.for_each_in(s + 1, c_.states[s].subtree_end, [&](state_index a) {
        if (atomic_mask_.test(a)) v.push_back(a);
      });
    } else {
      for (auto ch : c_.states[s].children)
        if (config_.test(ch)) v.push_back(ch);
    }
    cold().has_history_[h] = true;
  }
}

inline void session::impl::exit_one(state_index s) {
  const auto flags = c_.hot_states[s].flags;
  if (flags & (hot_state::onexit | hot_state::invokes)) {
    for (const auto& block : c_.states[s].onexit) execute(block);
    if (flags & hot_state::invokes) cancel_invokes(s);
  }
  config_.reset(s);
  if (big_) [[unlikely]] big_config_.reset(s);
  if (track_order_) std::erase(xstate_order_, s);
}

void session::impl::exit_states() {
  const bool bookkeeping = bookkeeping_;
  if (fast_) {  // disjoint ranges of the configuration
    const auto* hs = c_.hot_states.data();
    if (bookkeeping)
      for (auto i : order_)
        config_.for_each_in(domains_[i] + 1, hs[domains_[i]].subtree_end, [&](state_index s) { record_history(s); });
    for (auto k = order_.size(); k-- > 0;) {
      auto d = domains_[order_[k]];
      if (big_) [[unlikely]] big_config_.for_each_reverse_in(d + 1, hs[d].subtree_end, [&](state_index s) { exit_one(s); });
      else config_.for_each_reverse_in(d + 1, hs[d].subtree_end, [&](state_index s) { exit_one(s); });
    }
    return;
  }
  cold().exit_set_.ensure(c_.states.size());
  cold().exit_set_.clear();
  for (auto d : domains_)
    if (d != npos) config_.for_each_in(d + 1, c_.states[d].subtree_end, [&](state_index s) { cold().exit_set_.set(s); });
  if (bookkeeping) cold().exit_set_.for_each([&](state_index s) { record_history(s); });
  cold().exit_set_.for_each_reverse([&](state_index s) { exit_one(s); });
}

void session::impl::enter_states() {
  if (fast_) {
    const auto* ht = c_.hot_transitions.data();
    const auto* entry = c_.hot_entry.data();
    for (auto i : order_) {
      const auto& h = ht[enabled_[i]];
      for (auto k = h.entry_begin; k != h.entry_end; ++k)
        enter_one(entry[k] & ~hot_transition::by_default_bit, (entry[k] & hot_transition::by_default_bit) != 0);
    }
    return;
  }
  if (xstate_) return xstate_enter_general();
  cold().entry_set_.ensure(c_.states.size());
  cold().default_entry_.ensure(c_.states.size());
  cold().entry_set_.clear();
  cold().default_entry_.clear();
  cold().default_history_content_.clear();
  for (auto ti : enabled_) {
    const auto& t = c_.transitions[ti];
    for (auto s : t.targets) add_descendants(s);
    auto anc = domain_of(t);
    if (!t.history_target) {
      for (auto s : t.targets) add_ancestors(s, anc);
    } else {
      cold().scratch_targets_.clear();
      effective_targets(t, cold().scratch_targets_);
      auto targets = cold().scratch_targets_;
      for (auto s : targets) add_ancestors(s, anc);
    }
  }
  cold().entry_set_.for_each([&](state_index s) { enter_one(s, cold().default_entry_.test(s)); });
  cold().default_history_content_.clear();
}

inline void session::impl::enter_one(state_index s, bool by_default) {
  // XState may enter an active state again (a history default back to the source): `_nodes` is a set.
  if (track_order_ && !config_.test(s)) xstate_order_.push_back(s);
  config_.set(s);
  if (big_) [[unlikely]] big_config_.set(s);
  if (has_invokes_) cold().to_invoke_.set(s);
  constexpr auto work = hot_state::onentry | hot_state::data | hot_state::final | hot_state::initial_body;
  if (!(c_.hot_states[s].flags & work) && (!cold_ || cold_->default_history_content_.empty())) return;
  enter_content(s, by_default);
}

void session::impl::enter_content(state_index s, bool by_default) {
  const auto& st = c_.states[s];
  if (c_.binding == binding_mode::late && !cold().entered_once_[s]) {
    cold().entered_once_[s] = true;
    for (auto d : st.data) initialize_data(c_.data[d], s);
  }
  for (const auto& block : st.onentry) execute(block);
  if (by_default) execute(c_.transitions[st.initial].body);
  for (auto& [state, ti] : cold().default_history_content_)
    if (state == s) execute(c_.transitions[ti].body);
  if (st.kind != state_kind::final_state) return;
  if (xstate_) return xstate_final_entered(s);
  auto parent = st.parent;
  if (parent == 0) {
    running_ = false;
    return;
  }
  event done(c_.states[parent].done_event, done_data(s));
  done.type = event_type::platform;
  done.name_id = c_.states[parent].done_name_id;
  raise(std::move(done));
  auto gp = c_.states[parent].parent;
  if (gp != npos && c_.states[gp].kind == state_kind::parallel) {
    bool all = std::all_of(c_.states[gp].children.begin(), c_.states[gp].children.end(),
                           [&](state_index ch) { return in_final(ch); });
    if (all) {
      event gdone(c_.states[gp].done_event);
      gdone.type = event_type::platform;
      gdone.name_id = c_.states[gp].done_name_id;
      raise(std::move(gdone));
    }
  }
}

void session::impl::add_descendants(state_index s) {
  const auto& st = c_.states[s];
  if (st.kind == state_kind::history) {
    if (cold().has_history_[s]) {
      auto stored = cold().history_[s];
      for (auto h : stored) add_descendants(h);
      for (auto h : stored) add_ancestors(h, st.parent);
    } else {
      const auto& def = c_.transitions[st.initial];
      cold().default_history_content_.emplace_back(st.parent, st.initial);
      for (auto t : def.targets) add_descendants(t);
      for (auto t : def.targets) add_ancestors(t, st.parent);
    }
    return;
  }
  cold().entry_set_.set(s);
  if (st.kind == state_kind::compound) {
    cold().default_entry_.set(s);
    const auto& init = c_.transitions[st.initial];
    for (auto t : init.targets) add_descendants(t);
    for (auto t : init.targets) add_ancestors(t, s);
  } else if (st.kind == state_kind::parallel) {
    for (auto ch : st.children)
      if (!cold().entry_set_.any_in(ch + 1, c_.states[ch].subtree_end) && !cold().entry_set_.test(ch)) add_descendants(ch);
  }
}

void session::impl::add_ancestors(state_index s, state_index anc) {
  for (auto a = c_.states[s].parent; a != npos && a != anc; a = c_.states[a].parent) {
    if (a == 0) break;
    cold().entry_set_.set(a);
    if (c_.states[a].kind == state_kind::parallel) {
      for (auto ch : c_.states[a].children)
        if (!cold().entry_set_.any_in(ch + 1, c_.states[ch].subtree_end) && !cold().entry_set_.test(ch)) add_descendants(ch);
    }
  }
}

bool session::impl::in_final(state_index s, bool final_itself) const {
  const auto& st = c_.states[s];
  if (st.kind == state_kind::compound) {
    for (auto ch : st.children)
      if (c_.states[ch].kind == state_kind::final_state && config_.test(ch)) return true;
    return false;
  }
  if (st.kind == state_kind::parallel)
    return std::all_of(st.children.begin(), st.children.end(),
                       [&](state_index ch) { return in_final(ch, final_itself); });
  return final_itself && st.kind == state_kind::final_state;
}

void session::impl::exit_interpreter(bool reached_final) {
  if (ended_) return;
  ended_ = true;
  running_ = false;
  in_macrostep_ = true;
  value donedata;
  // A session that reached a top-level final state keeps reporting its final configuration.
  config_.for_each_reverse([&](state_index s) {
    if (errored_) return;  // XState: a failed machine keeps its configuration, runs no exit actions
    if (!reached_final && c_.semantics == chart_semantics::xstate) return;  // so does a stopped one (actor.stop())
    for (const auto& block : c_.states[s].onexit) execute(block);
    if (!c_.states[s].invokes.empty()) cancel_invokes(s);
    if (!reached_final) {
      config_.reset(s);
      if (big_) big_config_.reset(s);
    }
    if (reached_final && c_.states[s].kind == state_kind::final_state && c_.states[s].parent == 0)
      donedata = done_data(s);
  });
  // XState: a machine that stops, finishes or fails stops all its children, spawned ones too.
  if (c_.semantics == chart_semantics::xstate && cold_)
    while (!cold_->children_.empty()) remove_child(cold_->children_.begin()->first);
  in_macrostep_ = false;
  if (cold_) {
    for (auto& [key, p] : cold_->delayed_) clock_.cancel(p.timer);
    cold_->delayed_.clear();
  }
  internal_.clear();
  external_.clear();
  queued_timer_events_ = 0;
  if (cold_ && cold_->ext_) cold_->ext_->waiters.fail_queued(ex_, errc::not_running);
  if (c_.semantics == chart_semantics::xstate && cold_ && cold_->parent_) {
    if (reached_final) cold().parent_->enqueue_external(detail::actor_done_event(cold().invokeid_, c_.xstate->output));
    else if (errored_) cold().parent_->enqueue_external(detail::actor_error_event(cold().invokeid_, value(cold().error_)));
  } else if (reached_final && cold_ && cold_->parent_) {
    event done("done.invoke." + cold().invokeid_, donedata);
    done.type = event_type::external;
    done.invokeid = cold().invokeid_;
    done.origintype = std::string(scxml_processor);
    done.origin = "#_scxml_" + id_;
    cold().parent_->enqueue_external(std::move(done));
  }
  if (opts_.on_done) opts_.on_done(self_, donedata);
}

// ============================ diagnostics ============================

void session::impl::report(const runtime_diagnostic& d) {
  if (opts_.on_diagnostic) {
    opts_.on_diagnostic(root_session(), d);
  } else {
    if (!log_) log_ = detail::session_logger();
    detail::log_diagnostic(*log_, d);
  }
  if (inspect_) detail::inspect_diagnostic(opts_.inspect, inspection_base(), d);
}

void session::impl::report(diagnostic_kind kind, std::string_view event, state_index where, std::string_view message) {
  if (!opts_.on_diagnostic && !inspect_) {  // nobody but the log: find the state only if it writes
    if (!log_) log_ = detail::session_logger();
    if (!detail::warn_enabled(*log_)) return;
  }
  runtime_diagnostic d;
  d.kind = kind;
  d.session_id = id_;
  d.event = event;
  if (where == acting_state) where = state_of(acting_);
  if (where != npos && where < c_.states.size()) d.state = c_.states[where].id;
  d.message = message;
  report(d);
}

bool session::impl::ignored_wanted() {
  if (opts_.on_diagnostic || inspect_) return true;
  if (!log_) log_ = detail::session_logger();
  return detail::debug_enabled(*log_);
}

void session::impl::report_ignored(const event& ev, std::uint32_t name_id) {
  runtime_diagnostic d;
  d.kind = diagnostic_kind::event_ignored;
  d.session_id = id_;
  d.event = ev.name;
  d.reason = guard_failed_                       ? ignore_reason::guard_failed
             : has_transition_for(ev, name_id) ? ignore_reason::guards_false
                                               : ignore_reason::no_transition;
  switch (d.reason) {
    case ignore_reason::guard_failed: d.message = "a guard of its transitions failed (reported before)"; break;
    case ignore_reason::guards_false: d.message = "the guards of its transitions in the active states were all false"; break;
    default: d.message = "no active state has a transition for it"; break;
  }
  report(d);
}

bool session::impl::has_transition_for(const event& ev, std::uint32_t name_id) const {
  bool found = false;
  const auto* ht = c_.hot_transitions.data();
  config_.for_each([&](state_index s) {
    const auto& hs = c_.hot_states[s];
    for (auto ti = hs.first_transition, last = ti + hs.transition_count; ti != last && !found; ++ti)
      found = ht[ti].event != hot_transition::eventless_marker &&
              (ht[ti].event == name_id || c_.matches_slow(c_.transitions[ti], ev.name, name_id));
  });
  return found;
}

state_index session::impl::state_of(const action* a) const {
  if (!a) return npos;
  const auto holds = [a](const action_block& b, const auto& self) -> bool {
    for (const auto& x : b) {
      if (&x == a) return true;
      if (const auto* i = std::get_if<if_action>(&x.op))
        for (const auto& br : i->branches)
          if (self(br.body, self)) return true;
      if (const auto* f = std::get_if<foreach_action>(&x.op); f && self(f->body, self)) return true;
    }
    return false;
  };
  for (state_index si = 0; si < c_.states.size(); ++si) {
    for (const auto* blocks : {&c_.states[si].onentry, &c_.states[si].onexit})
      for (const auto& b : *blocks)
        if (holds(b, holds)) return si;
  }
  for (const auto& t : c_.transitions)
    if (t.source != npos && holds(t.body, holds)) return t.source;
  for (const auto& inv : c_.invokes)
    if (holds(inv.finalize, holds)) return inv.parent;
  return npos;
}

// ============================ executable content ============================

void session::impl::raise(event ev) {
  if (internal_.size() >= opts_.internal_queue_capacity) {
    if (opts_.on_log) opts_.on_log("error", "internal queue full: dropped event " + ev.name);
    report(diagnostic_kind::execution_error, ev.name, npos,
           "internal queue full (" + std::to_string(opts_.internal_queue_capacity) + " events): dropped event '" + ev.name + "'");
    return;
  }
  internal_.push_back(std::move(ev));
}

void session::impl::raise_error(std::string name, std::string message, std::string sendid, diagnostic_kind kind,
                                state_index where) {
  if (c_.semantics == chart_semantics::xstate) return xstate_fail(name + ": " + message, kind, where, name);
  report(kind, name, where, message);
  event ev(std::move(name), value(boost::json::object{{"message", message}}));
  ev.type = event_type::platform;
  ev.sendid = std::move(sendid);
  raise(std::move(ev));
}

bool session::impl::execute(const action_block& block) {
  for (const auto& a : block)
    if (!exec(a)) return false;
  return true;
}

bool session::impl::exec(const action& a) {
  const action* outer = acting_;  // restored below: outside actions acting_ is null
  acting_ = &a;
  if (inspect_) [[unlikely]] detail::inspect_action(opts_.inspect, inspection_base(), a);
  struct visitor {
    impl& self;
    source_location loc;
    bool operator()(const raise_action& r) const {
      event ev(r.event);
      ev.type = event_type::internal;
      ev.name_id = r.name_id;
      self.raise(std::move(ev));
      return true;
    }
    bool operator()(const send_action& s) const { return self.exec_send(s, loc); }
    bool operator()(const cancel_action& c) const { return self.exec_cancel(c); }
    bool operator()(const log_action& l) const { return self.exec_log(l); }
    bool operator()(const assign_action& as) const { return self.exec_assign(as); }
    bool operator()(const script_action& s) const {
      auto r = self.dm_->run_script(s.script);
      if (!r) self.raise_error("error.execution", r.error().message);
      return static_cast<bool>(r);
    }
    bool operator()(const if_action& i) const {
      for (const auto& b : i.branches) {
        if (b.cond != npos) {
          auto r = self.dm_->eval_bool(b.cond);
          if (!r) {
            self.raise_error("error.execution", r.error().message);
            return false;
          }
          if (!*r) continue;
        }
        return self.execute(b.body);
      }
      return true;
    }
    bool operator()(const foreach_action& f) const { return self.exec_foreach(f); }
    bool operator()(const native_action& n) const {
      if (n.slot >= self.natives_.size() || !self.natives_[n.slot]) {
        self.raise_error("error.execution", "no native action bound to '" + n.name + "'", {},
                         diagnostic_kind::unbound_action);
        return false;
      }
      try {
        self.natives_[n.slot](self.self_);
      } catch (const std::exception& e) {
        self.raise_error("error.execution", "native action '" + n.name + "' threw: " + e.what());
        return false;
      }
      return true;
    }
  };
  const bool ok = std::visit(visitor{*this, a.loc}, a.op);
  acting_ = outer;
  return ok;
}

bool session::impl::exec_log(const log_action& l) {
  std::string msg;
  if (l.expr != npos) {
    auto r = dm_->eval(l.expr);
    if (!r) {
      raise_error("error.execution", r.error().message);
      return false;
    }
    msg = value_text(*r);
  }
  if (opts_.on_log) opts_.on_log(l.label, msg);
  return true;
}

bool session::impl::exec_assign(const assign_action& a) {
  result<void> r;
  if (a.body) {
    auto v = content_data(*a.body);
    if (!v) r = v.error();
    else r = dm_->assign_value(a.location, *v);
  } else {
    r = dm_->assign(a.location, a.expr);
  }
  if (!r) raise_error("error.execution", r.error().message);
  return static_cast<bool>(r);
}

bool session::impl::exec_foreach(const foreach_action& f) {
  bool body_ok = true;
  auto r = dm_->foreach(f.array, f.item, f.index, [&] {
    body_ok = execute(f.body);
    return body_ok;
  });
  if (!r) raise_error("error.execution", r.error().message);
  return r && body_ok;
}

bool session::impl::exec_cancel(const cancel_action& c) {
  std::string id = c.sendid;
  if (c.sendidexpr != npos) {
    auto r = dm_->eval_string(c.sendidexpr);
    if (!r) {
      raise_error("error.execution", r.error().message);
      return false;
    }
    id = *r;
  }
  for (auto it = cold().delayed_.begin(); it != cold().delayed_.end();) {
    if (it->second.sendid == id) {
      clock_.cancel(it->second.timer);
      it = cold().delayed_.erase(it);
    } else {
      ++it;
    }
  }
  if (xstate_ && queued_timer_events_ != 0) withdraw_timer_events(id);
  return true;
}

// XState processes a fired timer's event at once, so leaving its state (or a `cancel`) can never
// meet it fired but unprocessed: it is cancelled before it fires, and its event never arrives.
// Here a fired timer queues its event; one still queued when its send is cancelled is withdrawn,
// or it would act on a later state, or fire the `after` of a later activation of its state early.
// (SCXML keeps it: per 6.3 `<cancel>` cannot withdraw an event already delivered.)
void session::impl::withdraw_timer_events(const std::string& sendid) {
  const auto n = drop_queued([&](const event& e) { return e.sendid == sendid && own_timer_event(e); });
  queued_timer_events_ -= std::min(queued_timer_events_, n);
}

result<value> session::impl::content_data(const content& c) {
  if (c.expr != npos) return dm_->eval(c.expr);
  return dm_->content_value(c.text);
}

result<value> session::impl::params_data(const std::vector<param>& params, const std::vector<expr_index>& namelist,
                                         const std::vector<std::string>& names) {
  if (params.empty() && namelist.empty()) return value(nullptr);
  boost::json::object obj;
  for (std::size_t i = 0; i < namelist.size(); ++i) {
    auto r = dm_->eval(namelist[i]);
    if (!r) return r.error();
    obj[names[i]] = std::move(*r);
  }
  for (const auto& p : params) {
    auto r = dm_->eval(p.expr != npos ? p.expr : p.location);
    if (!r) return r.error();
    obj[p.name] = std::move(*r);
  }
  return value(std::move(obj));
}

value session::impl::done_data(state_index s) {
  const auto& d = c_.states[s].done;
  if (!d) return nullptr;
  auto r = d->body ? content_data(*d->body) : params_data(d->params, {}, {});
  if (!r) {
    raise_error("error.execution", r.error().message, {}, diagnostic_kind::execution_error, s);
    return nullptr;
  }
  return std::move(*r);
}

bool session::impl::exec_send(const send_action& s, source_location) {
  auto fail = [&](const eval_error& e) {
    raise_error("error.execution", e.message);
    return false;
  };
  event ev;
  ev.name = s.event;
  ev.name_id = s.name_id;
  if (s.eventexpr != npos) {
    auto r = dm_->eval_string(s.eventexpr);
    if (!r) return fail(r.error());
    ev.name = std::move(*r);
    ev.name_id = npos;
  }
  std::string target = s.target;
  if (s.targetexpr != npos) {
    auto r = dm_->eval_string(s.targetexpr);
    if (!r) return fail(r.error());
    target = std::move(*r);
  }
  std::string type = s.type;
  if (s.typeexpr != npos) {
    auto r = dm_->eval_string(s.typeexpr);
    if (!r) return fail(r.error());
    type = std::move(*r);
  }
  std::string sendid = s.id;
  bool generated = false;
  if (s.idlocation != npos || sendid.empty()) {
    sendid = id_ + ".send." + std::to_string(++send_counter_);
    generated = true;
  }
  if (s.idlocation != npos) {
    if (auto r = dm_->assign_value(s.idlocation, value(sendid)); !r) return fail(r.error());
  }
  auto delay = s.delay;
  if (s.delayexpr != npos) {
    auto r = dm_->eval_string(s.delayexpr);
    if (!r) return fail(r.error());
    std::string text = *r;
    if (!detail::parse_css_time(text, delay)) return fail(eval_error{"invalid delayexpr value '" + text + "'"});
  }
  if (s.body) {
    auto r = content_data(*s.body);
    if (!r) return fail(r.error());
    ev.data = std::move(*r);
  } else {
    auto r = params_data(s.params, s.namelist, s.namelist_names);
    if (!r) return fail(r.error());
    ev.data = std::move(*r);
  }
  if (!is_scxml_type(type)) {
    raise_error("error.execution", "unsupported send type '" + type + "'", generated && s.idlocation == npos ? "" : sendid);
    return false;
  }
  ev.sendid = (generated && s.idlocation == npos) ? std::string() : sendid;
  ev.origin = "#_scxml_" + id_;
  ev.origintype = std::string(scxml_processor);
  if (target == "#_internal") {
    ev.type = event_type::internal;
    ev.origin.clear();
    ev.origintype.clear();
    raise(std::move(ev));
    return true;
  }
  if (!target.empty() && target.rfind("#_", 0) != 0 && !opts_.route) {
    raise_error("error.execution", "unsupported send target '" + target + "'", ev.sendid);
    return false;
  }
  if (delay.count() > 0 || c_.semantics == chart_semantics::xstate) {  // XState: `after: {0: ...}` waits for the clock too
    schedule_send(sendid, std::move(ev), std::move(target), clock_.now() + std::chrono::duration_cast<clock::duration>(delay));
    return true;
  }
  deliver(std::move(ev), std::move(target));
  return true;
}

void session::impl::schedule_send(std::string sendid, event ev, std::string target, clock::time_point due) {
  auto key = ++cold().delayed_counter_;
  auto timer = clock_.schedule(due, [this, alive = std::weak_ptr<int>(life_), key] {
    if (!alive.expired()) fire_send(key);
  });
  cold().delayed_.emplace(key, pending_send{timer, std::move(sendid), due, std::move(ev), std::move(target)});
}

void session::impl::fire_send(std::uint64_t key) {
  auto it = cold().delayed_.find(key);
  if (it == cold().delayed_.end()) return;
  auto p = std::move(it->second);
  cold().delayed_.erase(it);
  const bool to_self = xstate_ && p.target.empty() && !p.ev.sendid.empty();
  const auto queued = external_.size();
  deliver(std::move(p.ev), std::move(p.target));
  if (to_self && external_.size() > queued) ++queued_timer_events_;
}

void session::impl::deliver(event ev, std::string target) {
  ev.type = event_type::external;
  auto unreachable = [&] {
    auto sendid = ev.sendid;
    raise_error("error.communication", "cannot deliver event '" + ev.name + "' to '" + target + "'", sendid,
                diagnostic_kind::communication_error);
  };
  if (target.empty()) {
    if (!enqueue_external(std::move(ev))) unreachable();
    return;
  }
  if (target == "#_parent") {
    if (!cold().parent_) return unreachable();
    ev.invokeid = cold().invokeid_;
    if (!cold().parent_->enqueue_external(std::move(ev))) unreachable();
    return;
  }
  if (target.rfind("#_scxml_", 0) == 0) {
    auto sid = target.substr(8);
    if (!cold().registry_) {  // no invoked children: only this session is known
      if (sid != id_ || !enqueue_external(std::move(ev))) unreachable();
      return;
    }
    auto it = cold().registry_->sessions.find(sid);
    if (it == cold().registry_->sessions.end() || !it->second->enqueue_external(std::move(ev))) unreachable();
    return;
  }
  if (target.rfind("#_", 0) != 0) {  // not an SCXML processor address: the embedding routes it
    if (!opts_.route || !opts_.route(root_session(), target, std::move(ev))) unreachable();
    return;
  }
  auto it = cold().children_.find(target.substr(2));
  if (it == cold().children_.end() || !it->second.s || !it->second.s->impl_->enqueue_external(std::move(ev))) unreachable();
}

// ============================ invoke ============================

void session::impl::start_invokes() {
  cold().to_invoke_.for_each([&](state_index s) {
    for (auto i : c_.states[s].invokes)
      if (running_) invoke(c_.invokes[i], i);
  });
  cold().to_invoke_.clear();
}

void session::impl::invoke(const invoke_decl& inv, std::uint32_t index) {
  if (c_.semantics == chart_semantics::xstate) return invoke_xstate(index);
  auto fail = [&](std::string message) {
    raise_error("error.execution", std::move(message), {}, diagnostic_kind::execution_error, inv.parent);
  };
  std::string invokeid = inv.id;
  if (invokeid.empty()) invokeid = c_.states[inv.parent].id + "." + id_ + ".inv." + std::to_string(++send_counter_);
  if (inv.idlocation != npos) {
    if (auto r = dm_->assign_value(inv.idlocation, value(invokeid)); !r) return fail(r.error().message);
  }
  std::string type = inv.type;
  if (inv.typeexpr != npos) {
    auto r = dm_->eval_string(inv.typeexpr);
    if (!r) return fail(r.error().message);
    type = *r;
  }
  if (!is_scxml_type(type)) return fail("unsupported invoke type '" + type + "'");
  std::shared_ptr<const statechart> chart;
  if (inv.body && inv.body->chart != npos) {
    chart = c_.inline_charts[inv.body->chart];
  } else {
    parse_result pr;
    if (inv.body) {
      auto r = content_data(*inv.body);
      if (!r) return fail(r.error().message);
      pr = parse_scxml(value_text(*r), c_.source_name + " (invoke content)", c_.base_dir);
    } else {
      std::string src = inv.src;
      if (inv.srcexpr != npos) {
        auto r = dm_->eval_string(inv.srcexpr);
        if (!r) return fail(r.error().message);
        src = *r;
      }
      if (src.rfind("file://", 0) == 0) src = src.substr(7);
      else if (src.rfind("file:", 0) == 0) src = src.substr(5);
      std::filesystem::path p(src);
      if (p.is_relative()) p = std::filesystem::path(c_.base_dir) / p;
      pr = load_document(p);
    }
    if (!pr) {
      return fail("invoke '" + invokeid + "': " +
                                                (pr.errors.empty() ? "cannot load" : pr.errors.front().to_string()));
    }
    chart = pr.chart;
  }
  auto data = params_data(inv.params, inv.namelist, inv.namelist_names);
  if (!data) return fail(data.error().message);
  auto& child = make_child(invokeid, std::move(chart), index);
  if (data->is_object())
    for (auto& [k, v] : data->as_object()) child.impl_->cold().data_overrides_[std::string(k)] = v;
  child.start();
}

session& session::impl::make_child(const std::string& invokeid, std::shared_ptr<const statechart> chart,
                                   std::uint32_t decl, datamodel_factory dm) {
  session_options o;
  o.make_datamodel = std::move(dm);
  o.limits = opts_.limits;
  o.queue_capacity = opts_.queue_capacity;
  o.internal_queue_capacity = opts_.internal_queue_capacity;
  o.microstep_budget = opts_.microstep_budget;
  o.actions = opts_.actions;
  o.on_log = opts_.on_log;
  o.on_diagnostic = opts_.on_diagnostic;
  o.route = opts_.route;
  o.inspect = opts_.inspect;
  auto child_session = std::make_unique<session>(std::move(chart), ex_, clock_, std::move(o));
  if (!cold().registry_) {  // the first child: from now on the tree needs a registry for #_scxml_ targets
    cold().registry_ = std::make_shared<registry>();
    cold().registry_->sessions[id_] = this;
  }
  auto& ci = *child_session->impl_;
  ci.cold().parent_ = this;
  ci.cold().invokeid_ = invokeid;
  ci.cold().registry_ = cold().registry_;
  auto& slot = cold().children_[invokeid];
  slot.s = std::move(child_session);
  slot.decl = decl;
  return *slot.s;
}

void session::impl::cancel_invokes(state_index s) {
  for (auto i : c_.states[s].invokes) {
    for (auto it = cold().children_.begin(); it != cold().children_.end();) {
      if (it->second.decl != i) {
        ++it;
        continue;
      }
      const auto id = (it++)->first;
      remove_child(id);
    }
  }
}

void session::impl::remove_child(const std::string& id) {
  auto it = cold().children_.find(id);
  if (it == cold().children_.end()) return;
  auto& ch = it->second;
  // A running child is cancelled: whatever it sent us, before or while stopping, is dropped.
  // SCXML: a child that already finished has nothing to cancel, and its done.invoke stays queued.
  // XState: its done (or error) event is dropped too. XState processes it as soon as the child
  // finishes, so it cannot still be waiting when the invoking state is left; here it can, and it
  // would then fire the onDone of a later activation of that state (same invoke id).
  const bool running = ch.s ? ch.s->running() : ch.actor && !ch.actor->finished();
  if (running || xstate_) {
    if (running && ch.s) ch.s->stop();
    drop_queued([&](const event& e) { return e.invokeid == id; });
  }
  if (!ch.system_id.empty() && cold().registry_) cold().registry_->system.erase(ch.system_id);
  cold().children_.erase(it);  // a native actor runs its cleanup, a promise is cancelled
}

// ============================ XState actors ============================

registry& session::impl::ensure_registry() {
  if (!cold().registry_) {
    cold().registry_ = std::make_shared<registry>();
    cold().registry_->sessions[id_] = this;
  }
  return *cold().registry_;
}

void session::impl::invoke_xstate(std::uint32_t index) {
  const auto* b = detail::xstate_bound(*dm_);
  const auto& site = c_.xstate->invokes[index];
  if (!b || site.src >= b->actors.size() || !b->actors[site.src])
    return raise_error("error.execution", "invoke '" + site.id + "': actor '" + c_.xstate->actor_names[site.src] + "' is not provided",
                       {}, diagnostic_kind::unbound_action, c_.invokes[index].parent);
  auto err = start_actor(b->actors[site.src], site.id, site.system_id, site.input, index, nullptr);
  if (!err.empty()) raise_error("error.execution", "invoke '" + site.id + "': " + err, {}, diagnostic_kind::execution_error, c_.invokes[index].parent);
}

std::string session::impl::start_actor(std::shared_ptr<const bound_actor> logic, const std::string& id,
                                       const std::string& system_id, const value& input, std::uint32_t decl,
                                       const value* restore_from, bool defer) {
  if (cold().children_.count(id)) return "an actor with id '" + id + "' already exists";
  auto& reg = ensure_registry();
  if (!system_id.empty() && reg.system.count(system_id)) return "an actor with systemId '" + system_id + "' already exists";
  const auto* machine = std::get_if<actor_logic::machine_logic>(&logic->logic.kind);
  if (machine) {
    auto& child_session = make_child(id, machine->chart, decl, xstate_datamodel(logic->bound));
    if (!restore_from) detail::xstate_set_input(child_session.datamodel(), input, machine->context);
  } else {
    cold().children_[id].decl = decl;
  }
  auto& slot = cold().children_[id];
  slot.logic = logic;
  slot.system_id = system_id;
  if (!system_id.empty()) reg.system[system_id] = {this, id};
  if (machine && restore_from) {
    if (!slot.s->impl_->restore(*restore_from)) return {};
    remove_child(id);
    return "its snapshot does not fit";
  }
  if (defer) {  // XState starts a spawned actor once the macrostep that spawned it is done
    slot.deferred = true;
    if (!machine) slot.input = input;
    cold().spawned_.push_back(id);
    return {};
  }
  if (machine) {
    slot.s->start();
    return {};
  }
  slot.actor = detail::make_native_actor(logic->logic, ex_, *this, id, input);
  slot.actor->start();
  return {};
}

// The actors spawned during the macrostep that just ended, in order; one stopped meanwhile is
// gone from `children_` and never starts (as in XState). What they were sent meanwhile follows.
void session::impl::start_spawned() {
  auto ids = std::move(cold().spawned_);
  cold().spawned_.clear();
  for (const auto& id : ids) {
    auto it = cold().children_.find(id);
    if (it == cold().children_.end() || !it->second.deferred) continue;
    auto& ch = it->second;
    ch.deferred = false;
    auto early = std::move(ch.early);
    if (ch.s) {
      ch.s->start();
    } else {
      ch.actor = detail::make_native_actor(ch.logic->logic, ex_, *this, id, ch.input);
      ch.actor->start();
    }
    for (auto& ev : early) {
      if (!running_) return;
      deliver_to_child(id, std::move(ev));
    }
  }
}

bool session::impl::deliver_to_child(const std::string& id, event ev) {
  auto it = cold().children_.find(id);
  if (it == cold().children_.end()) return false;
  auto& ch = it->second;
  if (ch.deferred) {  // spawned, not started yet: it gets the event once started
    if (ch.early.size() >= opts_.queue_capacity) throw std::runtime_error("the queue of actor '" + id + "' is full");
    ch.early.push_back(std::move(ev));
    return true;
  }
  if (ch.s && ch.s->running() && !ch.s->impl_->enqueue_external(std::move(ev)))
    throw std::runtime_error("the queue of actor '" + id + "' is full");
  if (ch.actor && !ch.actor->finished()) ch.actor->receive(ev);
  return true;  // a child that has finished drops it, as in XState
}

void session::impl::actor_send_to(const std::string& to, event ev) {
  ev.type = event_type::external;
  ev.origin = "#_scxml_" + id_;
  if (cold().children_.count(to)) {
    deliver_to_child(to, std::move(ev));
    return;
  }
  if (cold().registry_) {
    auto it = cold().registry_->system.find(to);
    if (it != cold().registry_->system.end() && it->second.first->deliver_to_child(it->second.second, std::move(ev))) return;
  }
  // Not in the actor tree: the embedding may know it (another machine of an orchestrator).
  if (opts_.route) {
    const std::string target = "xsn:" + to;
    if (opts_.route(root_session(), target, std::move(ev))) return;
    throw std::runtime_error("no actor '" + to + "' (neither a child's id nor a systemId), and route cannot reach '" + target + "'");
  }
  throw std::runtime_error("no actor '" + to + "' (neither a child's id nor a systemId)");
}

void session::impl::actor_send_parent(event ev) {
  if (!cold().parent_) {
    // XState throws while resolving the action ("Unable to send event to actor '#_parent' from
    // machine ..."): the actor ends in status error. The session fails here with the located
    // message, before the datamodel wraps what is thrown in its own words.
    const std::string message = "sendParent" + action_site() + ": machine '" + c_.name + "' has no parent";
    xstate_fail(message);
    throw std::runtime_error(message);
  }
  ev.type = event_type::external;
  ev.origin = "#_scxml_" + id_;
  ev.invokeid = cold().invokeid_;
  auto* parent = cold().parent_;
  if (!parent->enqueue_external(std::move(ev)) && parent->running_)
    throw std::runtime_error("sendParent: the parent's queue is full");
}

std::string session::impl::actor_spawn(std::shared_ptr<const bound_actor> logic, spawn_options opts) {
  std::string id = opts.id.empty() ? id_ + ".spawn." + std::to_string(++send_counter_) : std::move(opts.id);
  auto err = start_actor(std::move(logic), id, opts.system_id, opts.input, npos, nullptr, true);
  if (!err.empty()) throw std::runtime_error("spawn: " + err);
  return id;
}

void session::impl::actor_stop_child(const std::string& id) {
  if (cold_) remove_child(id);
}

void session::impl::actor_from_child(const std::string& id, event ev, bool) {
  ev.type = event_type::external;
  ev.invokeid = id;
  enqueue_external(std::move(ev));  // dropped when the session has ended or its queue is full
}

// ============================ snapshots ============================

namespace {

using detail::event_from_json;
using detail::event_to_json;

/// Reads an array of strings; false when `v` is not one.
bool string_list(const value* v, std::vector<std::string>& out) {
  if (!v) return true;
  if (!v->is_array()) return false;
  for (const auto& x : v->as_array()) {
    if (!x.is_string()) return false;
    out.emplace_back(x.as_string());
  }
  return true;
}

/// Reads XState's `[{"id": ...}]` (or the plain strings older snapshots hold); false when malformed.
bool id_list(const value* v, std::vector<std::string>& out) {
  if (!v || !v->is_array()) return false;
  for (const auto& x : v->as_array()) {
    const auto* o = x.if_object();
    const auto* id = o ? o->if_contains("id") : &x;
    if (!id || !id->is_string()) return false;
    out.emplace_back(id->as_string());
  }
  return true;
}

}  // namespace

value session::impl::state_value(state_index s) const {
  if (s == 0 && c_.semantics == chart_semantics::xstate)
    return state_value_of(c_, [this](state_index x) { return config_.test(x); });
  // XState's state value: an atomic child is its id; a compound child maps its id to its value;
  // a parallel state maps each region to its value.
  const auto& st = c_.states[s];
  if (st.kind == state_kind::parallel) {
    boost::json::object o;
    for (auto ch : st.children) o[c_.states[ch].id] = c_.is_atomic(ch) ? value(c_.states[ch].id) : state_value(ch);
    return o;
  }
  for (auto ch : st.children) {
    if (!config_.test(ch)) continue;
    if (c_.is_atomic(ch)) return value(c_.states[ch].id);
    return boost::json::object{{c_.states[ch].id, state_value(ch)}};
  }
  return boost::json::object{};
}

value session::impl::snapshot() {
  boost::json::object o;
  o["status"] = status_text();
  if (errored_) o["error"] = cold().error_;  // XState's `error` (here its message)
  o["value"] = state_value(0);
  if (auto out = xstate_output(); !out.is_null()) o["output"] = std::move(out);
  boost::json::array configuration;
  config_.for_each([&](state_index s) { configuration.emplace_back(c_.states[s].id); });
  o["configuration"] = std::move(configuration);
  boost::json::object history;
  for (state_index h = 0; has_histories_ && h < c_.states.size(); ++h) {
    if (!cold().has_history_[h]) continue;
    boost::json::array ids;
    for (auto s : cold().history_[h]) ids.emplace_back(boost::json::object{{"id", c_.states[s].id}});  // as XState
    history[c_.states[h].id] = std::move(ids);
  }
  o["historyValue"] = std::move(history);
  o["context"] = dm_->save();
  o["sessionid"] = id_;
  if (c_.binding == binding_mode::late) {
    boost::json::array entered;
    for (state_index s = 0; s < c_.states.size(); ++s)
      if (cold().entered_once_[s]) entered.emplace_back(c_.states[s].id);
    if (!entered.empty()) o["entered"] = std::move(entered);
  }
  boost::json::array pending;
  const auto now = clock_.now();
  static const std::map<std::uint64_t, pending_send> no_pending;
  for (const auto& [key, p] : cold_ ? cold_->delayed_ : no_pending) {
    auto remaining = p.due > now ? p.due - now : clock::duration::zero();
    pending.push_back(boost::json::object{{"sendid", p.sendid},
                                          {"remaining_ns", std::chrono::nanoseconds(remaining).count()},
                                          {"due_ns", std::chrono::nanoseconds(p.due.time_since_epoch()).count()},
                                          {"target", p.target},
                                          {"event", event_to_json(p.ev)}});
  }
  // Empty parts are left out: a stored snapshot of an idle machine stays small.
  if (!pending.empty()) o["pending"] = std::move(pending);
  boost::json::array queue;
  external_.for_each([&](const event& ev) { queue.push_back(event_to_json(ev)); });
  if (!queue.empty()) o["queue"] = std::move(queue);
  if (send_counter_) o["sendCounter"] = send_counter_;
  boost::json::object children;
  static std::map<std::string, child> no_children;  // never modified: stands for an absent cold_
  for (auto& [invokeid, ch] : cold_ ? cold_->children_ : no_children) {
    if (ch.logic) {  // an XState actor: `snapshot`, `src`, `systemId`, and the invoke's index
      boost::json::object e{{"src", ch.logic->name}};
      if (ch.s) e["snapshot"] = ch.s->impl_->snapshot();
      else e["snapshot"] = boost::json::object{{"status", ch.actor && !ch.actor->finished() ? "active" : "done"},
                                               {"input", ch.actor ? ch.actor->input() : value()}};
      if (!ch.system_id.empty()) e["systemId"] = ch.system_id;
      if (ch.decl != npos) e["invoke"] = ch.decl;
      children[invokeid] = std::move(e);
      continue;
    }
    if (!ch.s) continue;
    // XState's entry (`snapshot`, `src`) plus the invoke declaration's index.
    const auto& inv = c_.invokes[ch.decl];
    children[invokeid] = boost::json::object{
        {"snapshot", ch.s->impl_->snapshot()}, {"src", inv.src.empty() ? "inline" : inv.src}, {"invoke", ch.decl}};
  }
  o["children"] = std::move(children);
  return o;
}

std::shared_ptr<const statechart> session::impl::child_chart(std::uint32_t decl, std::string& error) {
  const auto& inv = c_.invokes[decl];
  if (inv.body && inv.body->chart != npos) return c_.inline_charts[inv.body->chart];
  if (inv.body || inv.srcexpr != npos) {
    error = "a child invoked from an expression cannot be restored";
    return nullptr;
  }
  std::string src = inv.src;
  if (src.rfind("file://", 0) == 0) src = src.substr(7);
  else if (src.rfind("file:", 0) == 0) src = src.substr(5);
  std::filesystem::path path(src);
  if (path.is_relative()) path = std::filesystem::path(c_.base_dir) / path;
  auto pr = load_document(path);
  if (!pr) {
    error = pr.errors.empty() ? "cannot load " + path.string() : pr.errors.front().to_string();
    return nullptr;
  }
  return pr.chart;
}

std::error_code session::impl::restore(const value& snap) {
  if (started_) return errc::not_running;
  // Every refusal says why, through `on_log` (label `error`).
  auto bad = [this](const std::string& why) -> std::error_code {
    if (opts_.on_log) opts_.on_log("error", "snapshot refused: " + why);
    return errc::bad_snapshot;
  };
  const auto* o = snap.if_object();
  if (!o) return bad("not a JSON object");
  // Validate everything before changing anything.
  std::vector<std::string> ids;
  if (!string_list(o->if_contains("configuration"), ids)) return bad("`configuration` is not an array of state ids");
  detail::bitset config(c_.states.size());
  for (const auto& id : ids) {
    auto s = c_.find_state(id);
    if (s == npos || s == 0 || c_.states[s].kind == state_kind::history)
      return bad("`configuration`: '" + id + "' is no state of this chart, or a history state");
    config.set(s);
  }
  // A legal configuration: parents active, one child of a compound, every region of a parallel.
  for (state_index s = 1; s < c_.states.size(); ++s) {
    if (!config.test(s)) continue;
    auto p = c_.states[s].parent;
    if (p != 0 && !config.test(p)) return bad("`configuration`: '" + c_.states[s].id + "' is active without its parent");
  }
  for (state_index s = 0; s < c_.states.size(); ++s) {
    if (s != 0 && !config.test(s)) continue;
    const auto& st = c_.states[s];
    std::size_t active = 0;
    for (auto ch : st.children) active += config.test(ch) ? 1 : 0;
    if (st.kind == state_kind::compound && active != 1 && !(s == 0 && ids.empty()))
      return bad("`configuration`: compound state '" + st.id + "' needs exactly one active child");
    if (st.kind == state_kind::parallel && active != st.children.size())
      return bad("`configuration`: every region of parallel state '" + st.id + "' must be active");
  }
  std::vector<std::pair<state_index, std::vector<state_index>>> history;
  if (const auto* h = o->if_contains("historyValue")) {
    if (!h->is_object()) return bad("`historyValue` is not an object");
    for (const auto& [hid, list] : h->as_object()) {
      auto hs = c_.find_state(hid);
      std::vector<std::string> stored;
      if (hs == npos || c_.states[hs].kind != state_kind::history || !id_list(&list, stored))
        return bad("`historyValue`: '" + std::string(hid) + "' is no history state, or its entry is no list of states");
      std::vector<state_index> states;
      for (const auto& id : stored) {
        auto s = c_.find_state(id);
        if (s == npos || !c_.is_descendant(s, c_.states[hs].parent))
          return bad("`historyValue`: '" + std::string(hid) + "' cannot hold '" + id + "'");
        states.push_back(s);
      }
      history.emplace_back(hs, std::move(states));
    }
  }
  std::vector<std::string> entered;
  if (!string_list(o->if_contains("entered"), entered)) return bad("`entered` is not an array of state ids");
  struct pending_in { std::string sendid; clock::duration remaining; std::string target; event ev; };
  std::vector<pending_in> pending;
  if (const auto* p = o->if_contains("pending")) {
    if (!p->is_array()) return bad("`pending` is not an array");
    for (const auto& x : p->as_array()) {
      const auto* po = x.if_object();
      if (!po || !po->contains("event") || !po->contains("remaining_ns") || !po->at("remaining_ns").is_int64())
        return bad("`pending`: an entry needs `event` and an integer `remaining_ns`");
      pending_in in;
      if (!event_from_json(po->at("event"), in.ev)) return bad("`pending`: malformed event");
      // Times beyond ~73 years are refused: adding them to the clock's time could overflow.
      constexpr std::int64_t max_ns = std::int64_t(1) << 61;
      auto ns = po->at("remaining_ns").as_int64();
      if (ns < 0 || ns > max_ns) return bad("`pending`: `remaining_ns` out of range: " + std::to_string(ns));
      in.remaining = std::chrono::nanoseconds(ns);
      // With the due time on this clock's time base, the time that passed since the snapshot
      // counts (a restart on the same host); a due time further away than the remaining time
      // means another time base (another host, a reboot), and the remaining time is kept.
      if (const auto* due = po->if_contains("due_ns")) {
        if (!due->is_int64() || due->as_int64() < 0 || due->as_int64() > max_ns)
          return bad("`pending`: `due_ns` is not a time of a clock");
        auto left = clock::time_point(std::chrono::nanoseconds(due->as_int64())) - clock_.now();
        in.remaining = std::clamp(left, clock::duration::zero(), in.remaining);
      }
      if (const auto* sid = po->if_contains("sendid"); sid && sid->is_string()) in.sendid = std::string(sid->as_string());
      if (const auto* t = po->if_contains("target"); t && t->is_string()) in.target = std::string(t->as_string());
      pending.push_back(std::move(in));
    }
  }
  std::vector<event> queue;
  if (const auto* q = o->if_contains("queue")) {
    if (!q->is_array() || q->as_array().size() > opts_.queue_capacity)
      return bad("`queue` is not an array within the queue's capacity");
    for (const auto& x : q->as_array()) {
      event ev;
      if (!event_from_json(x, ev)) return bad("`queue`: malformed event");
      queue.push_back(std::move(ev));
    }
  }
  struct child_in { std::string invokeid; std::uint32_t decl; const value* snap; std::shared_ptr<const statechart> chart; };
  std::vector<child_in> kids;
  struct actor_in { std::string id; std::shared_ptr<const bound_actor> logic; std::uint32_t decl; const value* snap; std::string system_id; value input; };
  std::vector<actor_in> actors_in;
  if (const auto* ch = o->if_contains("children"); ch && c_.semantics == chart_semantics::xstate) {
    if (!ch->is_object()) return bad("`children` is not an object");
    const auto* b = detail::xstate_bound(*dm_);
    for (const auto& [key, entry] : ch->as_object()) {
      const std::string id(key);
      const auto* eo = entry.if_object();
      const auto* src = eo ? eo->if_contains("src") : nullptr;
      const auto* sn = eo ? eo->if_contains("snapshot") : nullptr;
      if (!src || !src->is_string() || !sn || !sn->is_object())
        return bad("`children`: '" + id + "' needs `src` (a string) and `snapshot` (an object)");
      auto logic = b ? detail::find_bound_actor(*b, src->as_string()) : nullptr;
      if (!logic) return bad("`children`: '" + id + "': actor '" + std::string(src->as_string()) + "' is not provided");
      actor_in in{id, logic, npos, sn, {}, nullptr};
      if (const auto* d = eo->if_contains("invoke")) {
        if (!d->is_int64() || d->as_int64() < 0 || static_cast<std::uint64_t>(d->as_int64()) >= c_.invokes.size() ||
            c_.invokes[static_cast<std::size_t>(d->as_int64())].src != src->as_string())
          return bad("`children`: `invoke` of '" + id + "' is no invoke of this chart with that `src`");
        in.decl = static_cast<std::uint32_t>(d->as_int64());
      }
      if (const auto* sid = eo->if_contains("systemId")) {
        if (!sid->is_string()) return bad("`children`: `systemId` of '" + id + "' is not a string");
        in.system_id = std::string(sid->as_string());
      }
      const auto* st = sn->as_object().if_contains("status");
      if (st && !st->is_string()) return bad("`children`: the `status` of '" + id + "' is not a string");
      const bool native = !std::holds_alternative<actor_logic::machine_logic>(logic->logic.kind);
      if (native && st && st->as_string() != "active") continue;  // finished: its done event is queued, if still due
      if (const auto* input = sn->as_object().if_contains("input")) in.input = *input;
      actors_in.push_back(std::move(in));
    }
  }
  if (const auto* ch = o->if_contains("children"); ch && c_.semantics != chart_semantics::xstate) {
    if (!ch->is_object()) return bad("`children` is not an object");
    for (const auto& [invokeid, entry] : ch->as_object()) {
      const auto* eo = entry.if_object();
      if (!eo || !eo->contains("snapshot")) return bad("`children`: '" + std::string(invokeid) + "' has no `snapshot`");
      // The declaration's index; XState's shape has none: then the `<invoke id>` it was made from.
      std::int64_t decl = -1;
      if (const auto* d = eo->if_contains("invoke")) {
        if (!d->is_int64()) return bad("`children`: `invoke` of '" + std::string(invokeid) + "' is not an integer");
        decl = d->as_int64();
      } else {
        for (std::size_t i = 0; i < c_.invokes.size(); ++i)
          if (c_.invokes[i].id == invokeid) decl = static_cast<std::int64_t>(i);
      }
      if (decl < 0 || static_cast<std::uint64_t>(decl) >= c_.invokes.size())
        return bad("`children`: '" + std::string(invokeid) + "' matches no <invoke> of this chart");
      std::string error;
      auto chart = child_chart(static_cast<std::uint32_t>(decl), error);
      if (!chart) return bad("`children`: '" + std::string(invokeid) + "': " + error);
      kids.push_back({std::string(invokeid), static_cast<std::uint32_t>(decl), &eo->at("snapshot"), std::move(chart)});
    }
  }
  std::string status = "active";
  if (const auto* st = o->if_contains("status")) {
    if (!st->is_string()) return bad("`status` is not a string");
    status = std::string(st->as_string());
    if (status != "active" && status != "done" && status != "stopped" && status != "error")
      return bad("unknown `status` '" + status + "'");
  }
  // Apply.
  if (auto r = dm_->setup(c_, *this); !r) return bad("the datamodel cannot be set up: " + r.error().message);
  if (const auto* ctx = o->if_contains("context")) {
    if (auto r = dm_->restore(*ctx); !r) return bad("`context`: " + r.error().message);
  }
  const std::string old_id = id_;
  const bool had_registry = cold_ && cold_->registry_;
  if (const auto* sid = o->if_contains("sessionid"); sid && sid->is_string() && !fixed_id_ &&
                                                      !(cold().registry_ && cold().registry_->sessions.count(std::string(sid->as_string()))))
    id_ = std::string(sid->as_string());
  if (cold_ && cold_->registry_) cold_->registry_->sessions[id_] = this;
  if (opts_.inspect) [[unlikely]]
    detail::inspect_actor(opts_.inspect, inspection_base(), cold_ && cold_->parent_ ? std::string_view(cold_->parent_->id_) : "");
  // Children first: a child whose snapshot does not fit fails the whole restore, undone here.
  for (auto& k : kids) {
    if (status != "active") break;
    auto& child = make_child(k.invokeid, std::move(k.chart), k.decl);
    if (!child.impl_->restore(*k.snap)) continue;
    cold().children_.clear();
    if (had_registry) cold().registry_->sessions.erase(id_);
    else cold().registry_.reset();
    id_ = old_id;
    if (had_registry) cold().registry_->sessions[id_] = this;
    return bad("child '" + k.invokeid + "' does not fit");
  }
  for (auto& k : actors_in) {  // XState actors: machines restored, promise and callback actors restarted
    if (status != "active") break;
    auto err = start_actor(k.logic, k.id, k.system_id, k.input, k.decl, k.snap);
    if (err.empty()) continue;
    for (auto& [cid, c] : cold().children_)
      if (!c.system_id.empty()) cold().registry_->system.erase(c.system_id);
    cold().children_.clear();
    if (had_registry) cold().registry_->sessions.erase(id_);
    else cold().registry_.reset();
    id_ = old_id;
    if (had_registry) cold().registry_->sessions[id_] = this;
    return bad("child '" + k.id + "': " + err);
  }
  started_ = true;
  if (const auto* sc = o->if_contains("sendCounter"); sc && sc->is_int64()) send_counter_ = static_cast<std::uint64_t>(sc->as_int64());
  config_ = config;
  if (big_) big_config_.assign(config);
  xstate_order_.clear();
  if (track_order_) config_.for_each([&](state_index x) { xstate_order_.push_back(x); });
  for (auto& [h, states] : history) {
    cold().history_[h] = std::move(states);
    cold().has_history_[h] = true;
  }
  for (const auto& id : entered) {
    auto s = c_.find_state(id);
    if (s != npos && !cold().entered_once_.empty()) cold().entered_once_[s] = true;
  }
  running_ = status == "active";
  ended_ = !running_;
  cancelled_ = status == "stopped" || status == "error";  // and stays so, not `done`
  errored_ = status == "error";  // (was reported as `stopped` once restored)
  if (const auto* e = o->if_contains("error"); errored_ && e && e->is_string()) cold().error_ = std::string(e->as_string());
  if (!running_) return {};
  // XState: timer events keep being ours (withdrawn on exit) when we restore under another id.
  if (const auto* sid = o->if_contains("sessionid"); xstate_ && sid && sid->is_string() && sid->as_string() != id_) {
    const std::string was = "#_scxml_" + std::string(sid->as_string());
    auto adopt = [&](event& ev) {
      if (!ev.sendid.empty() && ev.origin == was) ev.origin = "#_scxml_" + id_;
    };
    for (auto& p : pending) adopt(p.ev);
    for (auto& ev : queue) adopt(ev);
  }
  for (auto& p : pending) schedule_send(std::move(p.sendid), std::move(p.ev), std::move(p.target), clock_.now() + p.remaining);
  for (auto& ev : queue) {
    if (xstate_ && own_timer_event(ev)) ++queued_timer_events_;
    external_.push_back(std::move(ev));
  }
  if (!external_.empty() || !internal_.empty()) post_drain();
  return {};
}

// ============================ inspection and async_send ============================

inspection_event session::impl::inspection_base() {
  const impl* root = this;
  while (root->cold_ && root->cold_->parent_) root = root->cold_->parent_;
  inspection_event e;
  e.root_id = root->id_;
  e.actor = &self_;
  e.session_id = id_;
  e.chart = &c_;
  return e;
}

void session::impl::inspect_started() {
  ext().current = event("xstate.init");
  const auto* parent = cold_ ? cold_->parent_ : nullptr;
  detail::inspect_actor(opts_.inspect, inspection_base(), parent ? std::string_view(parent->id_) : std::string_view());
  event init = ext().current;
  if (parent) init.origin = "#_scxml_" + parent->id_;
  detail::inspect_event(opts_.inspect, inspection_base(), init);
}

void session::impl::inspect_received(const event& ev) {
  ext().current = ev;
  detail::inspect_event(opts_.inspect, inspection_base(), ev);
}

void session::impl::inspect_step() {
  detail::inspect_microstep(opts_.inspect, inspection_base(), &ext().current, inspection_state(),
                            std::span<const transition_index>(enabled_.begin(), enabled_.end()));
}

void session::impl::after_macrostep(const event& ev) {
  if (opts_.inspect) detail::inspect_snapshot(opts_.inspect, inspection_base(), ev, inspection_state());
  if (cold_ && cold_->ext_ && !cold_->ext_->waiters.empty())
    cold_->ext_->waiters.complete_processed(ex_, [&] { return self_.active_atomic_states(); });
}

void session::impl::async_send(event ev, detail::macrostep_handler h) {
  if (!running_) return detail::post_completion(ex_, std::move(h), errc::not_running);
  if (!enqueue_external(std::move(ev))) return detail::post_completion(ex_, std::move(h), errc::queue_full);
  ext().waiters.add(external_.size(), std::move(h));
}

// ============================ XState semantics ============================

bool session::impl::select_xstate(const event& ev, std::uint32_t name_id) {
  if (xstate_walk_) xstate_select_walk(ev, name_id);
  else if (c_.states.size() > 1) xstate_select_in(1, ev, name_id);
  if (errored_) {
    enabled_.clear();
    domains_.clear();
    return false;
  }
  disjoint_ = enabled_.size() <= 1 || disjoint_domains();
  if (!disjoint_) remove_conflicts();
  return !enabled_.empty();
}

// A matching transition `ti` of state `s`: true when it is enabled, or when the session failed
// (stop looking).
inline bool session::impl::xstate_take(transition_index ti, state_index s) {
  const auto& h = c_.hot_transitions[ti];
  if (h.cond != npos) {
    auto r = dm_->eval_bool(h.cond);
    if (!r) {
      guard_failed_ = true;
      raise_error("error.execution", r.error().message, {}, diagnostic_kind::guard_error, s);
    }
    if (!r || errored_) return true;
    if (!*r) return false;
  }
  // Each state is asked once per event, so no transition is enabled twice.
  enabled_.push_back(ti);
  domains_.push_back(h.flags & hot_transition::history_target ? dynamic_domain(c_.transitions[ti]) : h.domain);
  return true;
}

// An indexed state's own transitions (out of line: the scan below is the common case).
bool session::impl::xstate_select_indexed(state_index s, const event& ev, std::uint32_t name_id) {
  bool found = false;
  for_each_indexed(s, &ev, name_id, [&](transition_index ti) { return found = xstate_take(ti, s); });
  return found;
}

inline bool session::impl::xstate_select_own(state_index s, const event& ev, std::uint32_t name_id) {
  const auto& hs = c_.hot_states[s];
  const auto* ht = c_.hot_transitions.data();
  if (hs.flags & hot_state::indexed) [[unlikely]] return xstate_select_indexed(s, ev, name_id);
  for (auto ti = hs.first_transition, last = ti + hs.transition_count; ti != last; ++ti) {
    const auto& h = ht[ti];
    if (h.event != name_id &&
        (h.event == hot_transition::eventless_marker || !c_.matches_slow(c_.transitions[ti], ev.name, name_id)))
      continue;
    if (xstate_take(ti, s)) return true;
  }
  return false;
}

// XState's transition selection, StateNode.next over the active tree, read from the packed
// tables: a state's own transitions in document order after its children; a compound state is asked
// only when its active child found nothing, a parallel one only when none of its regions did.
bool session::impl::xstate_select_in(state_index s, const event& ev, std::uint32_t name_id) {
  const auto* hs = c_.hot_states.data();
  constexpr auto nested = hot_state::compound | hot_state::parallel;
  const auto flags = hs[s].flags;
  if (flags & nested) {
    // Children are consecutive subtrees; the active ones are those in the configuration (all the
    // regions of an active parallel state, one child of a compound one; never a history state).
    bool found = false;
    for (auto ch = s + 1, end = hs[s].subtree_end; ch < end; ch = hs[ch].subtree_end) {
      if (!config_.test(ch)) continue;
      const bool r = hs[ch].flags & nested ? xstate_select_in(ch, ev, name_id) : xstate_select_own(ch, ev, name_id);
      found = r || found;
      if (!(flags & hot_state::parallel)) break;
    }
    if (found) return true;
  }
  return xstate_select_own(s, ev, name_id);
}

// The same selection without recursion, when every active compound or parallel state has an active
// child: XState's depth-first recursion asks the states in post-order, which is the order of the
// active atomic states (document order), each followed by the ancestors it completes. A compound
// state is asked when its child found nothing; a parallel one when its last region is done and no
// region found anything.
void session::impl::xstate_select_walk(const event& ev, std::uint32_t name_id) {
  const auto* hs = c_.hot_states.data();
  const auto visit = [&](state_index a) __attribute__((always_inline)) {
    bool found = xstate_select_own(a, ev, name_id);
    for (auto n = a; n > 1; n = hs[n].parent) {  // up to the machine's root, state 1
      const auto p = hs[n].parent;
      if (hs[p].flags & hot_state::parallel) {
        if (found) region_found_.set(p);
        if (!(hs[n].flags & hot_state::last_region)) return;  // p's later regions come next
        found = region_found_.test(p);
        region_found_.reset(p);
      }
      if (!found) found = xstate_select_own(p, ev, name_id);
    }
  };
  if (big_) [[unlikely]] big_config_.for_each_and(atomic_mask_, visit);
  else config_.for_each_and(atomic_mask_, visit);
}

void session::impl::xstate_enter_general() {
  auto& entry = cold().entry_set_;
  auto& defaults = cold().default_entry_;
  entry.ensure(c_.states.size());
  entry.clear();
  defaults.ensure(c_.states.size());
  defaults.clear();
  const detail::history_lookup stored = [this](state_index h, std::vector<state_index>& out) {
    if (!has_histories_ || !cold().has_history_[h]) return false;
    out.insert(out.end(), cold().history_[h].begin(), cold().history_[h].end());
    return true;
  };
  std::vector<state_index> targets;
  for (auto ti : enabled_) {
    const auto& t = c_.transitions[ti];
    if (t.targets.empty()) continue;
    targets.clear();
    effective_targets(t, targets);
    detail::xstate_entry_set(c_, t, domain_of(t), targets, stored, entry, &defaults);
  }
  entry.for_each([&](state_index s) { enter_one(s, defaults.test(s)); });
}

bool session::impl::xstate_eventless_microstep() {
  // XState stops selecting eventless transitions after one that left the snapshot as it was
  // (same node set, no history recorded) until the next internal event.
  // Native actions change the context in place: a changed context counts as a new snapshot.
  value* context = xstate_context(*dm_);
  const value context_before = context ? *context : value();
  microstep();
  return !xstate_same_nodes_ || (context && *context != context_before);
}

void session::impl::xstate_begin_microstep() {
  xstate_before_ = xstate_order_;
  history_changed_ = false;
}

void session::impl::xstate_end_microstep() {
  // XState microstep: a node set equal to the previous one (and no history recorded) keeps the old
  // snapshot, so its `_nodes` keep their old order even when states were exited and re-entered.
  xstate_same_nodes_ = !history_changed_ && xstate_order_.size() == xstate_before_.size() &&
                       std::all_of(xstate_before_.begin(), xstate_before_.end(), [&](state_index s) { return config_.test(s); });
  if (xstate_same_nodes_) xstate_order_.swap(xstate_before_);
}

void session::impl::xstate_final_entered(state_index s) {
  // XState enterStates: `xstate.done.state.<parent>` with the final state's output, then done
  // events for each parallel ancestor now complete; the machine is done when none is left above.
  auto done_of = [this](state_index p, value data) {
    event done(c_.states[p].done_event, std::move(data));
    done.type = event_type::platform;
    done.name_id = c_.states[p].done_name_id;
    raise(std::move(done));
  };
  const auto parent = c_.states[s].parent;
  if (parent == 0) {
    running_ = false;
    return;
  }
  auto marker = c_.states[parent].kind == state_kind::parallel ? parent : c_.states[parent].parent;
  if (c_.states[parent].kind == state_kind::compound) done_of(parent, done_data(s));
  while (marker != 0 && marker != npos && c_.states[marker].kind == state_kind::parallel && in_final(marker, true)) {
    done_of(marker, nullptr);
    marker = c_.states[marker].parent;
  }
  if (marker == 0 || marker == npos) running_ = false;
}

void session::impl::xstate_fail(const std::string& message, diagnostic_kind kind, state_index where,
                                std::string_view event_name) {
  if (errored_) return;
  report(kind, event_name, where, message);
  cold().error_ = message;
  errored_ = true;
  running_ = false;
  cancelled_ = true;
  if (opts_.on_log) opts_.on_log("error", message);
}

std::string session::impl::action_site() const {
  if (!acting_) return {};
  auto holds = [this](const action_block& b) {
    return std::any_of(b.begin(), b.end(), [this](const action& x) { return &x == acting_; });
  };
  for (const auto& st : c_.states) {
    for (const auto& b : st.onentry)
      if (holds(b)) return " in state '" + st.id + "' (entry)";
    for (const auto& b : st.onexit)
      if (holds(b)) return " in state '" + st.id + "' (exit)";
  }
  for (transition_index ti = 0; ti < c_.transitions.size(); ++ti) {
    const auto& t = c_.transitions[ti];
    if (!holds(t.body) || t.source == npos) continue;
    const auto& src = c_.states[t.source];
    if (src.initial == ti) return " in state '" + src.id + "' (initial)";
    if (!t.events.empty()) return " in state '" + src.id + "' (transition on '" + c_.names[t.events.front()] + "')";
    return " in state '" + src.id + "' (" + (t.any_event ? "transition on '*'" : "eventless transition") + ")";
  }
  return {};
}

// ============================ public wrapper ============================

session::session(std::shared_ptr<const statechart> chart, boost::asio::any_io_executor ex, xsn::clock& clk,
                 session_options opts)
    : impl_(std::make_unique<impl>(*this, std::move(chart), std::move(ex), clk,
                                   std::make_shared<const session_options>(std::move(opts)))) {}
session::session(std::shared_ptr<const statechart> chart, boost::asio::any_io_executor ex, xsn::clock& clk,
                 std::shared_ptr<const session_options> shared)
    : impl_(std::make_unique<impl>(*this, std::move(chart), std::move(ex), clk,
                                   shared ? std::move(shared) : std::make_shared<const session_options>())) {}
session::session(std::shared_ptr<const statechart> chart, boost::asio::any_io_executor ex, xsn::clock& clk,
                 std::shared_ptr<const session_options> shared, std::string session_id)
    : impl_(std::make_unique<impl>(*this, std::move(chart), std::move(ex), clk,
                                   shared ? std::move(shared) : std::make_shared<const session_options>(),
                                   std::move(session_id))) {}
void session::set_user_data(void* p) noexcept { impl_->user_data_ = p; }
void* session::user_data() const noexcept { return impl_->user_data_; }
session::~session() = default;
std::error_code session::start() { return impl_->start(); }

void session::set_input(value input) {
  if (impl_->c_.datamodel == "xstate") return detail::xstate_set_input(datamodel(), std::move(input), nullptr);
  if (const auto* o = input.if_object())
    for (const auto& [k, v] : *o) impl_->cold().data_overrides_[std::string(k)] = v;
}
std::error_code session::send(event ev) { return impl_->send(std::move(ev)); }
std::error_code session::process(const event& ev) { return impl_->process(ev); }
void session::drain() { impl_->drain(); }
void session::stop() { impl_->stop(); }
bool session::running() const noexcept { return impl_->running_; }
session_status session::status() const noexcept { return impl_->status(); }
std::uint64_t session::transitions_taken() const noexcept { return impl_->transitions_taken_; }
value session::error() const {
  if (!impl_->errored_) return nullptr;
  return value(impl_->cold_ ? impl_->cold_->error_ : std::string());
}

std::string_view to_string(session_status s) noexcept {
  switch (s) {
    case session_status::created: return "created";
    case session_status::active: return "active";
    case session_status::done: return "done";
    case session_status::error: return "error";
    case session_status::stopped: return "stopped";
  }
  return "created";
}
const statechart& session::chart() const noexcept { return impl_->c_; }
const std::string& session::id() const noexcept { return impl_->id_; }
bool session::is_active(state_index s) const noexcept { return s < impl_->c_.states.size() && impl_->config_.test(s); }
std::size_t session::queued() const noexcept { return impl_->external_.size(); }
xsn::datamodel& session::datamodel() noexcept { return *impl_->dm_; }
value session::snapshot() { return impl_->snapshot(); }
std::error_code session::restore(const value& snap) { return impl_->restore(snap); }
std::error_code session::restore_json(std::string_view text) {
  boost::system::error_code ec;
  boost::json::parse_options depth;
  depth.max_depth = max_snapshot_depth;  // deeper is refused by the parser, before any recursion
  auto v = boost::json::parse(text, ec, {}, depth);
  if (ec) {
    if (impl_->opts_.on_log) impl_->opts_.on_log("error", "snapshot refused: not JSON: " + ec.message());
    return errc::bad_snapshot;
  }
  return impl_->restore(v);
}
void session::do_async_send(event ev, boost::asio::any_completion_handler<send_signature> h) {
  // Queued from the session's executor, so that a strand makes this safe from any thread.
  auto ex = impl_->ex_;
  auto op = [this, ex, alive = std::weak_ptr<int>(impl_->life_), ev = std::move(ev), h = std::move(h)]() mutable {
    if (!alive.expired()) return impl_->async_send(std::move(ev), std::move(h));
    detail::post_completion(ex, std::move(h), std::make_error_code(std::errc::operation_canceled));  // destroyed
  };
  boost::asio::post(ex, std::move(op));
}

std::vector<state_index> session::configuration() const {
  std::vector<state_index> out;
  impl_->config_.for_each([&](state_index s) { out.push_back(s); });
  return out;
}

std::vector<std::string> session::tags() const {
  std::vector<std::string> out;
  impl_->config_.for_each([&](state_index s) {
    for (const auto& t : impl_->c_.states[s].tags)
      if (std::find(out.begin(), out.end(), t) == out.end()) out.push_back(t);
  });
  return out;
}

bool session::has_tag(std::string_view tag) const {
  bool found = false;
  impl_->config_.for_each([&](state_index s) {
    const auto& tags = impl_->c_.states[s].tags;
    found = found || std::find(tags.begin(), tags.end(), tag) != tags.end();
  });
  return found;
}

value session::meta() const {
  boost::json::object out;
  const auto* p = impl_->c_.xstate.get();
  if (p)
    impl_->config_.for_each([&](state_index s) {
      if (s < p->meta.size() && !p->meta[s].is_null()) out[impl_->c_.states[s].id] = p->meta[s];
    });
  return out;
}

value session::output() const { return impl_->xstate_output(); }

std::vector<std::string> session::active_atomic_states() const {
  std::vector<std::string> out;
  impl_->config_.for_each_and(impl_->atomic_mask_, [&](state_index s) { out.push_back(impl_->c_.states[s].id); });
  return out;
}

}  // namespace xsn
