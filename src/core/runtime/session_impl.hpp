#pragma once
// Private to xsn_core (Qt's `_p.h`): `session::impl`, the interpreter behind `xsn::session`.
// Its members are defined by seam, as uSCXML splits its interpreter:
//   session_lifecycle.cpp   construction, start, the event queues, stop
//   session_macrostep.cpp   the W3C Appendix D algorithm (select, exit, enter, microstep) and
//                           XState's selection: the hot path, in one translation unit so it inlines
//   session_content.cpp     executable content, sends and their delivery, errors
//   session_invoke.cpp      `<invoke>` children and XState actors
//   session_snapshot.cpp    snapshot and restore
//   session_diagnostics.cpp, session_inspect.cpp, session_async.cpp   reports, inspection, async_send
//   session.cpp             the public `session`, forwarding here
#include <xsn/runtime/session.hpp>

#include <xsn/detail/bitset.hpp>
#include <xsn/parse/scxml.hpp>
#include <xsn/parse/xstate.hpp>
#include <xsn/runtime/implementations.hpp>

#include "core/event_json.hpp"
#include "datamodel/null_datamodel.hpp"
#include "runtime/fixed_vector.hpp"
#include "runtime/ring_queue.hpp"
#include "session_ext.hpp"
#include "model/state_set.hpp"
#include "runtime/xstate_actors.hpp"
#include "model/xstate_semantics.hpp"

#include <boost/asio/any_io_executor.hpp>

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

namespace xsn::inline v0 {

namespace detail {
/// `<invoke src>` as a path: a `file:` URI's path; a relative one from the chart's folder `base_dir`.
std::filesystem::path invoke_path(std::string src, const std::string& base_dir);
}  // namespace detail

struct session::impl final : datamodel_host, detail::actor_host {
  /// Sessions of one tree (a root and its invoked children), by id, for `#_scxml_<id>` targets.
  struct registry {
    std::unordered_map<std::string, impl*> sessions;
    /// XState actors by `systemId`: the session owning each as a child, and its id there.
    std::unordered_map<std::string, std::pair<impl*, std::string>> system;
  };
  static constexpr std::string_view scxml_processor = "http://www.w3.org/TR/scxml/#SCXMLEventProcessor";
  /// True for the send and invoke types that name the SCXML processor (or none).
  static bool is_scxml_type(std::string_view t);
  /// A value as text for `<log>` and invoke content: strings and XML markup as they are, else JSON.
  static std::string value_text(const value& v);

  impl(session& self, std::shared_ptr<const statechart> chart, boost::asio::any_io_executor ex,
       xsn::clock& clk, std::shared_ptr<const session_options> opts, std::string given_id = {});
  ~impl() override { shutdown_resources(); }

  // ---- datamodel_host ----
  bool raise_internal(event ev) override {
    if (!mode_.in_macrostep || internal_.size() >= opts_.internal_queue_capacity) return false;
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
  /// `process` when events are queued: `ev` joins the queue, which is drained.
  std::error_code process_queued(const event& ev);
  void drain();
  void stop();
  void post_drain();

  // ---- the algorithm ----
  void process_external(const event& ev);
  /// The modes (`mode_`) the chart, the options and the datamodel choose, once.
  void choose_modes();
  /// Fills `entry_calls_` (after `natives_` and the modes).
  void resolve_entry_calls();
  /// choose_modes' part for selection by lookup and direct steps (after the others).
  void choose_lookup_modes();
  /// process_external once no direct step took the event (`name_id`: its resolved name id).
  void process_general(const event& ev, std::uint32_t name_id);
  /// Datamodels may keep a reference to the event they are given: when a macrostep ends (and its
  /// external event with it), an empty event stands in until the next one.
  void release_event();
  std::uint32_t resolve(const event& ev) const noexcept {
    if (ev.resolved_by == &c_) [[likely]] return ev.name_id;
    return resolve_by_name(ev);
  }
  /// resolve for an event not resolved against this chart: by its name id, if it is the chart's,
  /// else by its name (out of line: the callers of resolve then keep fewer registers).
  std::uint32_t resolve_by_name(const event& ev) const noexcept;
  void run_to_completion();
  bool select_transitions(const event* ev, std::uint32_t name_id);
  /// Selection by the chart's chain table (`mode_.chain`): false when a guard decides, so the usual
  /// selection must run; else `selected` says whether a transition was enabled.
  bool select_by_chain(std::uint32_t name_id, bool& selected) __attribute__((always_inline));
  /// The active atomic state of a chart with one at a time (`chain_atomic_`, checked).
  state_index chain_atomic() noexcept;
  /// The whole macrostep of an event whose transitions (one per active atomic state at most) are
  /// `hot_transition::own_exit`, found by lookup: the sources leave the configuration, the entry
  /// sets join it and, unless all are `direct` (the toggle's kind), their entry content runs.
  /// False, with nothing done, for any other event.
  bool direct_step(const event& ev, std::uint32_t name_id);
  /// direct_step in a chart with parallel states (`mode_.parallel_chain`).
  bool direct_parallel_step(const event& ev, std::uint32_t name_id);
  /// The direct steps a session takes (`mode_.direct`), by the chart's kind.
  bool try_direct(const event& ev, std::uint32_t name_id) __attribute__((always_inline)) {
    return mode_.parallel_chain ? direct_parallel_step(ev, name_id) : direct_step(ev, name_id);
  }
  /// Children, spawned actors or extensions watch events: no direct step.
  bool watched() const noexcept { return cold_ && (!cold_->children_.empty() || !cold_->spawned_.empty() || cold_->ext_); }
  /// The flags of a state whose entry runs something: `onentry`, `<data>`, final, initial content.
  static constexpr std::uint32_t entry_work =
      hot_state::onentry | hot_state::data | hot_state::final | hot_state::initial_body;
  /// A state whose entry content is only calls (enter_calls runs it): `onentry` of
  /// `hot_state::entry_calls` and no other `entry_work`.
  static constexpr bool only_calls(std::uint32_t flags) noexcept {
    return (flags & (entry_work | hot_state::entry_calls)) == (hot_state::onentry | hot_state::entry_calls);
  }
  /// direct_step's lookups in a chart with parallel states: into `enabled_` (in document order),
  /// their sources exited; false, with the configuration as it was, when one is not `own_exit` or
  /// a guard decides.
  bool select_direct(std::uint32_t name_id, bool& work) __attribute__((always_inline));
  /// select_direct declined after exiting some sources: enters them again.
  void undo_direct_exits();
  /// Takes the transitions select_direct found, whose sources it exited (`work`: some entry set
  /// has content; `track_chain`: keep `chain_atomic_`, which only charts without parallel states use).
  void take_direct(const event& ev, bool work, bool track_chain) __attribute__((always_inline));
  /// take_direct, out of line (a single-atomic chart's entry with content).
  void take_direct_with_work(const event& ev);
  /// take_direct's entries when some have content (`mode_.in_macrostep`, the event given).
  void enter_direct(bool track_chain) __attribute__((always_inline));
  /// The end of a macrostep once its external event's transitions were taken: what they raised,
  /// spawned or ended, `on_macrostep`, the event released.
  void end_macrostep(const event& ev) __attribute__((always_inline));
  /// select_transitions' steps, inlined into it (out of line they cost SCXML charts 10% per event):
  /// one atomic state and its ancestors, whether a transition matches the event, a transition taken
  /// when its guard holds, an indexed state's transitions.
  void select_from(state_index atomic, const event* ev, std::uint32_t name_id, bool exact_only) __attribute__((always_inline));
  bool transition_matches(transition_index ti, const event* ev, std::uint32_t name_id, bool exact_only) const
      __attribute__((always_inline));
  bool take_transition(transition_index ti, state_index s) __attribute__((always_inline));
  /// A transition's guard (`npos`: none, holds), evaluated; a failed one is reported at `s`.
  enum class guard_outcome { holds, fails, failed };
  guard_outcome eval_guard(expr_index cond, state_index s) __attribute__((always_inline));
  /// `ti` joins the enabled transitions, with its domain.
  void add_enabled(transition_index ti, const hot_transition& h) __attribute__((always_inline));
  bool take_indexed(state_index s, const event* ev, std::uint32_t name_id) __attribute__((always_inline));
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
  /// enter_one's content when it is only calls (`hot_state::entry_calls`, `mode_.quick_calls`).
  void enter_calls(state_index s) __attribute__((always_inline));
  /// An entry call's bound handler `fn` of native action `a`: false when it threw.
  bool call_bound(const native_action_fn& fn, const action& a) __attribute__((always_inline));
  /// An entry call of a native action without a handler: raises its error, false.
  bool call_unbound(const action& a);
  void add_descendants(state_index s);
  void add_ancestors(state_index s, state_index anc);
  void effective_targets(const transition_node& t, std::vector<state_index>& out) const;
  /// W3C getTransitionDomain; precomputed unless a target is a history state.
  state_index domain_of(const transition_node& t) const { return t.history_target ? dynamic_domain(t) : t.domain; }
  state_index dynamic_domain(const transition_node& t) const;
  /// W3C isInFinalState; with `final_itself` (XState) a final state also counts as in a final state.
  bool in_final(state_index s, bool final_itself = false) const;
  void exit_interpreter(bool reached_final);
  /// exit_interpreter's steps: one state's exit, the queues and timers dropped, the parent told.
  void exit_on_end(state_index s, bool reached_final, value& donedata);
  void drop_pending();
  void tell_parent_done(bool reached_final, const value& donedata);
  void initialize_data(const data_decl& d, state_index where);
  /// start's steps: the datamodel's setup (true when it failed for implementations nobody bound),
  /// the unbound `<xsn:action>` report, the data declarations, the initial configuration.
  bool setup_datamodel();
  void report_unbound_natives();
  void declare_data();
  void enter_initial();

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

  // ---- executable content ----
  bool execute(const action_block& block);
  bool exec(const action& a);
  /// `<xsn:action>`: the bound handler (an unbound one or one that throws raises error.execution).
  bool exec_native(const native_action& n);
  /// A bound handler called in place (exec_native's work; enter_calls calls it directly).
  bool call_native(const native_action& n) __attribute__((always_inline)) {
    if (n.slot >= natives_.size() || !natives_[n.slot]) [[unlikely]] return native_unbound(n);
    try {
      natives_[n.slot](self_);
      return true;
    } catch (const std::exception& e) {
      native_threw(n, e.what());
    }
    return false;
  }
  /// Raises error.execution for `n`, which has no handler; false.
  bool native_unbound(const native_action& n);
  /// Raises error.execution for handler `n` that threw `what`.
  void native_threw(const native_action& n, const char* what);
  /// `<script>` (XState: a named action), run by the datamodel.
  bool exec_script(const script_action& s);
  /// exec_script for enter_calls: a plain XState action straight through `xcalls_`.
  bool call_script(const script_action& s) __attribute__((always_inline));
  bool exec_send(const send_action& s, source_location loc);
  /// A `<send>`'s fields once evaluated (session_content.cpp).
  struct outgoing_send;
  result<void> eval_send(const send_action& s, outgoing_send& out);
  result<void> send_names(const send_action& s, outgoing_send& out);
  result<void> send_id(const send_action& s, outgoing_send& out);
  bool dispatch_send(const send_action& s, outgoing_send out);
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
  /// The chart an `<invoke>` starts: inline, its content parsed, or its `src` loaded.
  result<std::shared_ptr<const statechart>> invoke_chart(const invoke_decl& inv, const std::string& invokeid);
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
  /// Restores a session not yet started: every section of `snap` is read and checked first (a
  /// refused snapshot changes nothing), then applied; children whose snapshots do not fit undo it.
  std::error_code restore(const value& snap);
  struct snapshot_in;  // a snapshot read and checked (session_snapshot.cpp)
  /// Applies `in`; returns why it was refused, empty when applied. Refused here (by the datamodel,
  /// or a child's snapshot), the session stays unstarted, with no children and its old id.
  std::string apply_snapshot(snapshot_in& in);
  std::string restore_children(snapshot_in& in);
  /// Undoes `restore_children`: the children made, the registry entry, the id taken.
  void undo_children(const std::string& old_id, bool had_registry);
  void apply_state(snapshot_in& in);
  void resume_timers_and_queue(snapshot_in& in);
  void adopt_session_id(const snapshot_in& in);
  void adopt_timer_events(snapshot_in& in);
  void apply_status(const snapshot_in& in);
  void inspect_restored();
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
    const bool done = c_.semantics == chart_semantics::xstate && mode_.ended && !mode_.cancelled && !mode_.errored && c_.xstate;
    return done ? c_.xstate->output : value();
  }
  void xstate_end_microstep();
  std::vector<state_index> xstate_before_;  // xstate_order_ before the current microstep
  std::vector<state_index> xstate_order_;   // active states in the order they were entered
  void xstate_fail(const std::string& message, diagnostic_kind kind = diagnostic_kind::execution_error,
                   state_index where = acting_state, std::string_view event_name = "error.execution");
  /// Where the action being executed stands, e.g. ` in state 'm.idle' (entry)`; empty when unknown.
  /// For error messages only: it searches the chart.
  std::string action_site() const;
  const action* acting_ = nullptr;  // the action being executed (null outside actions), for action_site()

  // ---- inspection and async_send (session_ext.hpp, session_inspect.cpp, session_async.cpp) ----
  detail::session_ext& ext() {
    auto& e = cold().ext_;
    if (!e) e = std::make_unique<detail::session_ext>();
    return *e;
  }
  session_status status() const noexcept {
    return mode_.errored ? session_status::error
           : mode_.running ? session_status::active
           : mode_.ended && !mode_.cancelled ? session_status::done
           : mode_.started ? session_status::stopped
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
  std::vector<native_action_fn> natives_;
  /// One action of a state whose entry content is only calls, resolved when the session is made:
  /// what enter_calls runs instead of walking the state's blocks, actions and variants.
  struct entry_call {
    const action* a;                 ///< The action (`acting_` while it runs).
    const native_action_fn* fn;      ///< Its bound handler; null: a script, or an unbound native action.
    std::uint32_t block_end;         ///< Past the last call of its block: where a failed call goes on.
  };
  std::vector<entry_call> entry_calls_;        ///< (`mode_.quick_calls` only) by state, in order.
  std::vector<std::uint32_t> entry_calls_at_;  ///< A state's first call in `entry_calls_`; one more at the end.
  std::shared_ptr<int> life_ = std::make_shared<int>(0);

  detail::bitset config_;
  // Charts of more than 256 states: the configuration again, with a summary of its
  // non-empty words, for the walks of each event (selection, exit), which then cost the active
  // states, not the chart (10,000 idle siblings of the active state made them 8x the event).
  detail::state_set big_config_;
  const detail::bitset& atomic_mask_;  // the chart's
  // Scratch lists of the algorithm, sized once: at most one enabled transition per atomic state.
  // XState (untyped): the datamodel's plain actions for call_script, made on the first call.
  std::optional<detail::xstate_direct_calls> xcalls_;
  detail::fixed_vector<transition_index> enabled_;
  detail::fixed_vector<state_index> domains_;  // domains_[i]: of enabled_[i]
  detail::fixed_vector<std::uint32_t> order_;  // indices of enabled_ with a domain, by domain
  // mode_.chain: the active atomic state when it was last entered, or a stale guess that
  // chain_atomic() replaces (a restore sets the configuration without entering states; 0, the
  // root, is never atomic, so the first use looks it up).
  state_index chain_atomic_ = 0;
  event internal_event_;         // the internal event being processed (datamodels may keep a reference to it)
  detail::bitset region_found_;  // xstate_select_walk: parallel states some region of which enabled a transition
  detail::ring_queue<event> external_, internal_;  // bounded by opts_ capacities

  /// The session's mode flags, in one place: how the algorithm runs for this chart and these
  /// options, where the session is in its life, and what the current step found.
  struct mode_flags {
    // Fixed for the session's life (chart and options are immutable): the per-state loops of a
    // macrostep test these instead of the chart's semantics or the options.
    bool xstate = false;          ///< The chart runs by XState's rules.
    bool track_order = false;     ///< XState with eventless transitions: keep `xstate_order_` (only they read it).
    bool xstate_walk = false;     ///< XState selection bottom-up from the atomic states (no childless compound/parallel).
    bool inspect = false;         ///< `opts_.inspect` is set.
    bool dm_reads_event = true;   ///< False for the null datamodel, whose `set_event` does nothing.
    bool borrows_event = false;   ///< The datamodel keeps a reference to the event (the xstate one).
    bool quick_rtc = false;       ///< No eventless transitions, no invokes: an empty internal queue ends the macrostep.
    bool has_invokes = false;     ///< The chart has `<invoke>`s.
    bool has_histories = false;   ///< The chart has history states.
    bool bookkeeping = false;     ///< Exits record history or invokes.
    bool big = false;             ///< Over 256 states: `big_config_` mirrors the configuration.
    bool chain = false;           ///< One atomic state at a time and a chain table: events select by lookup (see `chain_next`).
    bool parallel_chain = false;  ///< A chain table for a chart with parallel states (`chain_parallel`): direct steps look up each active atomic state.
    bool direct = false;          ///< A chain table, and nothing watches a macrostep inside: see `direct_step`.
    bool quick_calls = false;     ///< States whose entry content is only calls run it by `enter_calls` (no inspector, early binding).
    bool fixed_id = false;        ///< The id was given (constructor or options): a restore keeps it.
    // The session's life (`status()` reads them).
    bool started = false;         ///< `start` or a restore ran.
    bool running = false;         ///< Events are processed.
    bool in_macrostep = false;    ///< A macrostep is under way (no `process`, no nested drain).
    bool drain_posted = false;    ///< A drain is posted to the executor.
    bool ended = false;           ///< The interpreter was exited.
    bool cancelled = false;       ///< Stopped (not done); set by `stop` inside a macrostep too.
    bool errored = false;         ///< XState: an action or guard failed; the session ended with status error.
    // The current step.
    bool fast = false;            ///< The microstep uses the precomputed exit ranges and entry lists.
    bool disjoint = true;         ///< `enabled_` has pairwise disjoint domains (set by selection).
    bool guard_failed = false;    ///< A guard failed while selecting for the current external event.
    bool history_changed = false;     ///< XState: the microstep recorded history.
    bool xstate_same_nodes = false;   ///< XState: the last microstep left the node set and history as they were.
  } mode_;
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
  // snapshot()'s parts (session_snapshot.cpp); `child_json` is null for a child with nothing to keep.
  boost::json::object history_json() const;
  boost::json::array pending_json() const;
  value child_json(const child& ch);
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

}  // namespace xsn::inline v0
