// The W3C SCXML interpreter's macrostep (Appendix D of the recommendation) over a compiled
// statechart, and XState's transition selection. Function names follow the recommendation's
// pseudo-code so the two can be read side by side. Everything an event runs through is in this
// one translation unit, so that the compiler inlines across it (the perf gate counts the cost).
#include "session_impl.hpp"

namespace xsn::inline v0 {

namespace {
// A success copied, not made: `std::error_code{}` calls std::system_category() (through the PLT)
// on every event.
const std::error_code no_error{};
}  // namespace

// The entry of an event. Behind a queue the event waits its turn (out of line in
// session_lifecycle.cpp: inlined here, the copy into the queue made the direct path save four more
// registers, 10 instructions per event).
std::error_code session::impl::process(const event& ev) {
  if (mode_.in_macrostep) return errc::not_on_executor;
  if (!mode_.running) return errc::not_running;
  if (!external_.empty()) return process_queued(ev);
  // (the direct step here too: one call less per event)
  if (const auto name_id = resolve(ev); !(mode_.direct && name_id != npos && try_direct(ev, name_id))) process_general(ev, name_id);
  if (!external_.empty()) drain();
  return no_error;
}

void session::impl::process_external(const event& ev) {
  const auto name_id = resolve(ev);
  if (mode_.direct && name_id != npos && try_direct(ev, name_id)) return;
  process_general(ev, name_id);
}

void session::impl::process_general(const event& ev, std::uint32_t name_id) {
  mode_.in_macrostep = true;
  microsteps_ = 0;
  if (mode_.dm_reads_event) dm_->set_event(ev);
  if (mode_.inspect) [[unlikely]] inspect_received(ev);
  if (cold_ && !cold_->children_.empty()) handle_child_event(ev);
  mode_.guard_failed = false;
  if (select_transitions(&ev, name_id)) microstep();
  else if (mode_.running && !mode_.errored && ignored_wanted()) [[unlikely]] report_ignored(ev, name_id);
  end_macrostep(ev);
}

inline void session::impl::end_macrostep(const event& ev) {
  // Without eventless transitions and invokes, an empty internal queue leaves run_to_completion
  // nothing to do (but start what the macrostep spawned).
  if (!mode_.quick_rtc || !internal_.empty()) {
    run_to_completion();
  } else if (cold_ && !cold_->spawned_.empty() && mode_.running) [[unlikely]] {
    start_spawned();
    if (!internal_.empty()) run_to_completion();  // a child that failed at once raised an error
  }
  mode_.in_macrostep = false;
  if (opts_.on_macrostep) opts_.on_macrostep(self_);
  if (!mode_.running) exit_interpreter(!mode_.cancelled);
  if (cold_ && cold_->ext_) [[unlikely]] after_macrostep(ev);
  if (mode_.borrows_event) release_event();
}

void session::impl::release_event() {
  static const event none;
  dm_->set_event(none);
}

void session::impl::run_to_completion() {
  bool eventless = true;  // XState: false after an eventless microstep that changed nothing
  for (;;) {
    while (mode_.running) {
      if (++microsteps_ > opts_.microstep_budget) {
        raise_error("error.execution", "microstep budget of " + std::to_string(opts_.microstep_budget) +
                                           " exhausted: the macrostep was ended (endless eventless loop?)",
                    {}, diagnostic_kind::execution_error, npos);
        if (opts_.on_log) opts_.on_log("error", "microstep budget exhausted in session " + id_);
        return;
      }
      if (c_.has_eventless && eventless && select_transitions(nullptr, npos)) {
        if (mode_.xstate) eventless = xstate_eventless_microstep();
        else microstep();
        continue;
      }
      if (internal_.empty()) break;
      internal_event_ = std::move(internal_.front());  // a member: the datamodel may keep a reference
      internal_.pop_front();
      const auto& ev = internal_event_;
      if (mode_.dm_reads_event) dm_->set_event(ev);
      if (mode_.inspect) [[unlikely]] ext().current = ev;
      if (select_transitions(&ev, resolve(ev))) microstep();
      eventless = true;
    }
    if (!mode_.running) return;
    if (!c_.invokes.empty()) start_invokes();
    if (cold_ && !cold_->spawned_.empty()) start_spawned();
    if (internal_.empty()) return;
  }
}

// A matching transition `ti` of state `s`: true when it is enabled (its guard holds).
inline bool session::impl::take_transition(transition_index ti, state_index s) {
  const auto& h = c_.hot_transitions[ti];
  if (h.cond != npos && eval_guard(h.cond, s) != guard_outcome::holds) return false;
  if (std::find(enabled_.begin(), enabled_.end(), ti) == enabled_.end()) add_enabled(ti, h);
  return true;
}

inline session::impl::guard_outcome session::impl::eval_guard(expr_index cond, state_index s) {
  if (cond == npos) return guard_outcome::holds;
  auto r = dm_->eval_bool(cond);
  if (!r) {
    mode_.guard_failed = true;
    raise_error("error.execution", r.error().message, {}, diagnostic_kind::guard_error, s);
    return guard_outcome::failed;
  }
  return *r ? guard_outcome::holds : guard_outcome::fails;
}

inline void session::impl::add_enabled(transition_index ti, const hot_transition& h) {
  enabled_.push_back(ti);
  domains_.push_back(h.flags & hot_transition::history_target ? dynamic_domain(c_.transitions[ti]) : h.domain);
}

// Transition `ti` answers `ev` (eventless ones answer `nullptr`); `exact_only`: `name_id` is no other
// name's token prefix, so it can only match its own single descriptor.
inline bool session::impl::transition_matches(transition_index ti, const event* ev, std::uint32_t name_id,
                                              bool exact_only) const {
  const auto& h = c_.hot_transitions[ti];
  if (!ev) return h.event == hot_transition::eventless_marker;
  if (h.event == name_id) return true;
  if (h.event == hot_transition::eventless_marker) return false;
  if (exact_only && h.event != hot_transition::multi_marker) return false;
  return c_.matches_slow(c_.transitions[ti], ev->name, name_id);
}

inline bool session::impl::take_indexed(state_index s, const event* ev, std::uint32_t name_id) {
  bool taken = false;
  for_each_indexed(s, ev, name_id, [&](transition_index ti) { return taken = take_transition(ti, s); });
  return taken;
}

// The first enabled transition of atomic state `atomic` or, failing that, of its nearest ancestor.
inline void session::impl::select_from(state_index atomic, const event* ev, std::uint32_t name_id, bool exact_only) {
  const auto* hs = c_.hot_states.data();
  if (!ev && !(hs[atomic].flags & hot_state::eventless_in_chain)) return;
  for (auto s = atomic; s != npos; s = hs[s].parent) {
    if (hs[s].flags & hot_state::indexed) [[unlikely]] {
      if (take_indexed(s, ev, name_id)) return;
      continue;
    }
    const auto first = hs[s].first_transition, last = first + hs[s].transition_count;
    for (auto ti = first; ti != last; ++ti)
      if (transition_matches(ti, ev, name_id, exact_only) && take_transition(ti, s)) return;
  }
}

inline state_index session::impl::chain_atomic() noexcept {
  if (!(config_.test(chain_atomic_) && atomic_mask_.test(chain_atomic_))) [[unlikely]] {
    const auto found = [&](state_index a) { chain_atomic_ = a; };
    if (mode_.big) big_config_.for_each_and(atomic_mask_, found);
    else config_.for_each_and(atomic_mask_, found);
  }
  return chain_atomic_;
}

bool session::impl::direct_step(const event& ev, std::uint32_t name_id) {
  if (watched()) return false;
  const auto source = chain_atomic();
  const auto ti = c_.chain_step(source, name_id);
  if (ti == statechart::chain_none || ti == statechart::chain_guarded) return false;  // the usual way
  const auto& h = c_.hot_transitions[ti];
  if (!(h.flags & hot_transition::direct)) [[unlikely]] {
    if (!(h.flags & hot_transition::own_exit)) return false;
    enabled_.clear();
    enabled_.push_back(ti);
    config_.reset(source);
    if (mode_.big) [[unlikely]] big_config_.reset(source);
    take_direct_with_work(ev);
    return true;
  }
  ++transitions_taken_;
  mode_.guard_failed = false;
  config_.reset(source);
  if (mode_.big) [[unlikely]] big_config_.reset(source);
  for (auto k = h.entry_begin; k != h.entry_end; ++k) {
    const auto s = c_.hot_entry[k] & ~hot_transition::by_default_bit;
    config_.set(s);
    if (mode_.big) [[unlikely]] big_config_.set(s);
    if (!(c_.hot_states[s].flags & (hot_state::compound | hot_state::parallel))) chain_atomic_ = s;
  }
  if (opts_.on_macrostep) opts_.on_macrostep(self_);
  return true;
}

bool session::impl::direct_parallel_step(const event& ev, std::uint32_t name_id) {
  if (watched()) return false;
  bool work = false;
  if (!select_direct(name_id, work)) return false;
  take_direct(ev, work, false);
  return true;
}

inline bool session::impl::select_direct(std::uint32_t name_id, bool& work) {
  enabled_.clear();
  bool declined = false;
  // Each active atomic state's own transition (an own_exit one's source is atomic, so the lookup
  // found it in the state itself). Their domains, the sources' compound parents, are then disjoint
  // subtrees: no two conflict, and the entry sets are in document order when taken in this order.
  // XState asks each region before the parallel state (W3C: each atomic state, then its
  // ancestors); both agree when every answer comes from the atomic state itself.
  // A source is exited as soon as its transition is found (nothing runs when it exits; the walk
  // reads a copy of each word), and entered again when some state declines.
  const auto visit = [&](state_index a) {
    const auto ti = c_.chain_step(a, name_id);
    if (ti == statechart::chain_none || declined) return;
    const auto flags = ti == statechart::chain_guarded ? 0 : c_.hot_transitions[ti].flags;
    if (!(flags & hot_transition::own_exit)) {
      declined = true;
      return;
    }
    work |= !(flags & hot_transition::direct);
    enabled_.push_back(ti);
    config_.reset(a);
    if (mode_.big) [[unlikely]] big_config_.reset(a);
  };
  if (mode_.big) [[unlikely]] big_config_.for_each_and(atomic_mask_, visit);
  else config_.for_each_and(atomic_mask_, visit);
  if (declined) [[unlikely]] undo_direct_exits();
  return !declined && !enabled_.empty();
}

void session::impl::undo_direct_exits() {
  for (auto ti : enabled_) {
    config_.set(c_.transitions[ti].source);
    if (mode_.big) big_config_.set(c_.transitions[ti].source);
  }
}

void session::impl::take_direct_with_work(const event& ev) { take_direct(ev, true, true); }

inline void session::impl::take_direct(const event& ev, bool work, bool track_chain) {
  const auto* ht = c_.hot_transitions.data();
  const auto* entry = c_.hot_entry.data();
  transitions_taken_ += enabled_.size();
  mode_.guard_failed = false;  // (the sources were exited when selected)
  if (!work) {
    for (auto ti : enabled_)
      for (auto k = ht[ti].entry_begin; k != ht[ti].entry_end; ++k) {
        const auto s = entry[k] & ~hot_transition::by_default_bit;
        config_.set(s);
        if (mode_.big) [[unlikely]] big_config_.set(s);
      }
    if (opts_.on_macrostep) opts_.on_macrostep(self_);
    return;
  }
  mode_.in_macrostep = true;
  microsteps_ = 0;
  if (mode_.dm_reads_event) dm_->set_event(ev);
  enter_direct(track_chain);
  end_macrostep(ev);
}

inline void session::impl::enter_direct(bool track_chain) {
  const auto* ht = c_.hot_transitions.data();
  const auto* entry = c_.hot_entry.data();
  // enter_one for what a direct step allows (no XState order kept, no invokes, static entry sets so
  // no history content); the modes in locals, since the stores to the configuration might alias them.
  const auto* hs = c_.hot_states.data();
  const bool big = mode_.big, calls = mode_.quick_calls;
  for (std::size_t i = 0, n = enabled_.size(); i < n; ++i) {  // (entry content cannot reach enabled_)
    const auto& h = ht[enabled_[i]];
    for (auto k = h.entry_begin; k != h.entry_end; ++k) {
      const auto s = entry[k] & ~hot_transition::by_default_bit;
      config_.set(s);
      if (big) [[unlikely]] big_config_.set(s);
      const auto flags = hs[s].flags;
      if (track_chain && !(flags & (hot_state::compound | hot_state::parallel))) chain_atomic_ = s;
      if (!(flags & entry_work)) continue;
      if (calls && only_calls(flags)) enter_calls(s);
      else enter_content(s, (entry[k] & hot_transition::by_default_bit) != 0);
    }
  }
}

inline bool session::impl::select_by_chain(std::uint32_t name_id, bool& selected) {
  const auto ti = c_.chain_step(chain_atomic(), name_id);
  if (ti == statechart::chain_guarded) return false;
  mode_.disjoint = true;
  selected = ti != statechart::chain_none;
  if (selected) add_enabled(ti, c_.hot_transitions[ti]);
  return true;
}

bool session::impl::select_transitions(const event* ev, std::uint32_t name_id) {
  enabled_.clear();
  domains_.clear();
  event_keys_for_ = nullptr;
  // Charts with one active atomic state: an event the chart names selects by lookup.
  if (bool selected = false; mode_.chain && ev && name_id != npos && select_by_chain(name_id, selected)) return selected;
  if (ev && mode_.xstate) return select_xstate(*ev, name_id);
  // A name that is no other name's token prefix can only match its own single descriptor.
  const bool exact_only = name_id != npos && c_.name_prefixes[name_id].size() == 1;
  const auto visit = [&](state_index atomic) __attribute__((always_inline)) { select_from(atomic, ev, name_id, exact_only); };
  if (mode_.xstate) {
    // XState visits the atomic states in the order they became active (its `_nodes` set).
    for (auto a : xstate_order_)
      if (atomic_mask_.test(a)) visit(a);
  } else {
    if (mode_.big) [[unlikely]] big_config_.for_each_and(atomic_mask_, visit);
    else config_.for_each_and(atomic_mask_, visit);
  }
  mode_.disjoint = enabled_.size() <= 1 || disjoint_domains();
  if (!mode_.disjoint) remove_conflicts();
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
  mode_.fast = mode_.disjoint;
  if (mode_.fast && enabled_.size() == 1) {
    order_.clear();
    if (domains_[0] != npos) order_.push_back(0);
    mode_.fast = domains_[0] == npos || (ht[enabled_[0]].flags & hot_transition::static_entry);
  } else if (mode_.fast) {
    order_.clear();
    for (std::size_t i = 0; i < enabled_.size(); ++i) {
      if (domains_[i] == npos) continue;
      if (!(ht[enabled_[i]].flags & hot_transition::static_entry)) mode_.fast = false;
      order_.push_back(static_cast<std::uint32_t>(i));
    }
    std::sort(order_.begin(), order_.end(), [&](std::uint32_t a, std::uint32_t b) { return domains_[a] < domains_[b]; });
  }
  // Only eventless microsteps read what these record (see mode_.track_order).
  if (mode_.track_order) xstate_begin_microstep();
  exit_states();
  for (auto ti : enabled_)
    if (ht[ti].flags & hot_transition::body) execute(c_.transitions[ti].body);
  enter_states();
  if (mode_.track_order) xstate_end_microstep();
  if (mode_.inspect) [[unlikely]] inspect_step();
}

void session::impl::record_history(state_index s) {
  if (!c_.invokes.empty()) cold().to_invoke_.reset(s);
  if (!mode_.has_histories) return;
  for (auto h : c_.states[s].histories) {
    mode_.history_changed = true;
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
  if (mode_.big) [[unlikely]] big_config_.reset(s);
  if (mode_.track_order) std::erase(xstate_order_, s);
}

void session::impl::exit_states() {
  const bool bookkeeping = mode_.bookkeeping;
  if (mode_.fast) {  // disjoint ranges of the configuration
    const auto* hs = c_.hot_states.data();
    if (bookkeeping)
      for (auto i : order_)
        config_.for_each_in(domains_[i] + 1, hs[domains_[i]].subtree_end, [&](state_index s) { record_history(s); });
    for (auto k = order_.size(); k-- > 0;) {
      auto d = domains_[order_[k]];
      if (mode_.big) [[unlikely]] big_config_.for_each_reverse_in(d + 1, hs[d].subtree_end, [&](state_index s) { exit_one(s); });
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
  if (mode_.fast) {
    const auto* ht = c_.hot_transitions.data();
    const auto* entry = c_.hot_entry.data();
    for (auto i : order_) {
      const auto& h = ht[enabled_[i]];
      for (auto k = h.entry_begin; k != h.entry_end; ++k)
        enter_one(entry[k] & ~hot_transition::by_default_bit, (entry[k] & hot_transition::by_default_bit) != 0);
    }
    return;
  }
  if (mode_.xstate) return xstate_enter_general();
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

inline bool session::impl::call_script(const script_action& sa) {
  if (!mode_.borrows_event) return exec_script(sa);  // (only untyped XState charts borrow the event)
  if (!xcalls_) [[unlikely]] xcalls_.emplace(detail::xstate_calls(*dm_));
  const auto& calls = *xcalls_;
  if (sa.script >= calls.by_expr.size() || !calls.by_expr[sa.script].fn) return exec_script(sa);
  const auto& c = calls.by_expr[sa.script];
  try {
    (*c.fn)(*calls.context, **calls.current, *c.params, *calls.scope);
    return true;
  } catch (const std::exception& ex) {
    raise_error("error.execution", detail::xstate_action_threw(*dm_, sa.script, ex.what()));
  } catch (...) {
    raise_error("error.execution", detail::xstate_action_threw(*dm_, sa.script, nullptr));
  }
  return false;
}

inline void session::impl::enter_calls(state_index s) {
  const action* outer = acting_;
  const auto* calls = entry_calls_.data();
  for (auto i = entry_calls_at_[s], end = entry_calls_at_[s + 1]; i != end;) {
    const auto& c = calls[i];
    acting_ = c.a;
    // (hot_state::entry_calls: each action is a native_action or a script_action)
    const auto* script = c.fn ? nullptr : std::get_if<script_action>(&c.a->op);
    const bool ok = c.fn ? call_bound(*c.fn, *c.a) : script ? call_script(*script) : call_unbound(*c.a);
    i = ok ? i + 1 : c.block_end;  // a failed call ends its block
  }
  acting_ = outer;
}

// call_native's call, for a handler resolved ahead: it takes the action, not the native_action,
// so that the hot path reads the variant only when the handler throws (passing the native_action
// cost the parallel benchmark 6-14 instructions per event).
inline bool session::impl::call_bound(const native_action_fn& fn, const action& a) {
  try {
    fn(self_);
    return true;
  } catch (const std::exception& e) {
    native_threw(std::get<native_action>(a.op), e.what());
  }
  return false;
}

bool session::impl::call_unbound(const action& a) { return call_native(std::get<native_action>(a.op)); }

inline void session::impl::enter_one(state_index s, bool by_default) {
  // XState may enter an active state again (a history default back to the source): `_nodes` is a set.
  if (mode_.track_order && !config_.test(s)) xstate_order_.push_back(s);
  config_.set(s);
  if (mode_.big) [[unlikely]] big_config_.set(s);
  if (mode_.has_invokes) cold().to_invoke_.set(s);
  const auto flags = c_.hot_states[s].flags;
  if (!(flags & (hot_state::compound | hot_state::parallel))) chain_atomic_ = s;
  const bool history_content = cold_ && !cold_->default_history_content_.empty();
  if (!(flags & entry_work) && !history_content) return;
  if (mode_.quick_calls && only_calls(flags) && !history_content) return enter_calls(s);
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
  if (mode_.xstate) return xstate_final_entered(s);
  auto parent = st.parent;
  if (parent == 0) {
    mode_.running = false;
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
  if (mode_.ended) return;
  mode_.ended = true;
  mode_.running = false;
  mode_.in_macrostep = true;
  value donedata;
  // A session that reached a top-level final state keeps reporting its final configuration.
  config_.for_each_reverse([&](state_index s) { exit_on_end(s, reached_final, donedata); });
  // XState: a machine that stops, finishes or fails stops all its children, spawned ones too.
  if (c_.semantics == chart_semantics::xstate && cold_)
    while (!cold_->children_.empty()) remove_child(cold_->children_.begin()->first);
  mode_.in_macrostep = false;
  drop_pending();
  tell_parent_done(reached_final, donedata);
  if (opts_.on_done) opts_.on_done(self_, donedata);
}

void session::impl::exit_on_end(state_index s, bool reached_final, value& donedata) {
  if (mode_.errored) return;  // XState: a failed machine keeps its configuration, runs no exit actions
  if (!reached_final && c_.semantics == chart_semantics::xstate) return;  // so does a stopped one (actor.stop())
  for (const auto& block : c_.states[s].onexit) execute(block);
  if (!c_.states[s].invokes.empty()) cancel_invokes(s);
  if (!reached_final) {
    config_.reset(s);
    if (mode_.big) big_config_.reset(s);
  }
  if (reached_final && c_.states[s].kind == state_kind::final_state && c_.states[s].parent == 0)
    donedata = done_data(s);
}

void session::impl::drop_pending() {
  if (cold_) {
    for (auto& [key, p] : cold_->delayed_) clock_.cancel(p.timer);
    cold_->delayed_.clear();
  }
  internal_.clear();
  external_.clear();
  queued_timer_events_ = 0;
  if (cold_ && cold_->ext_) cold_->ext_->waiters.fail_queued(ex_, errc::not_running);
}

void session::impl::tell_parent_done(bool reached_final, const value& donedata) {
  if (!cold_ || !cold_->parent_) return;
  if (c_.semantics == chart_semantics::xstate) {
    if (reached_final) cold().parent_->enqueue_external(detail::actor_done_event(cold().invokeid_, c_.xstate->output));
    else if (mode_.errored) cold().parent_->enqueue_external(detail::actor_error_event(cold().invokeid_, value(cold().error_)));
  } else if (reached_final) {
    event done("done.invoke." + cold().invokeid_, donedata);
    done.type = event_type::external;
    done.invokeid = cold().invokeid_;
    done.origintype = std::string(scxml_processor);
    done.origin = "#_scxml_" + id_;
    cold().parent_->enqueue_external(std::move(done));
  }
}

// ---- XState semantics (the rules themselves are in xstate_semantics.cpp) ----

bool session::impl::select_xstate(const event& ev, std::uint32_t name_id) {
  if (mode_.xstate_walk) xstate_select_walk(ev, name_id);
  else if (c_.states.size() > 1) xstate_select_in(1, ev, name_id);
  if (mode_.errored) {
    enabled_.clear();
    domains_.clear();
    return false;
  }
  mode_.disjoint = enabled_.size() <= 1 || disjoint_domains();
  if (!mode_.disjoint) remove_conflicts();
  return !enabled_.empty();
}

// A matching transition `ti` of state `s`: true when it is enabled, or when the session failed
// (stop looking).
inline bool session::impl::xstate_take(transition_index ti, state_index s) {
  const auto& h = c_.hot_transitions[ti];
  if (h.cond != npos) {
    const auto g = eval_guard(h.cond, s);
    if (g == guard_outcome::failed || mode_.errored) return true;
    if (g == guard_outcome::fails) return false;
  }
  // Each state is asked once per event, so no transition is enabled twice.
  add_enabled(ti, h);
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
  if (mode_.big) [[unlikely]] big_config_.for_each_and(atomic_mask_, visit);
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
    if (!mode_.has_histories || !cold().has_history_[h]) return false;
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
  return !mode_.xstate_same_nodes || (context && *context != context_before);
}

void session::impl::xstate_begin_microstep() {
  xstate_before_ = xstate_order_;
  mode_.history_changed = false;
}

void session::impl::xstate_end_microstep() {
  // XState microstep: a node set equal to the previous one (and no history recorded) keeps the old
  // snapshot, so its `_nodes` keep their old order even when states were exited and re-entered.
  mode_.xstate_same_nodes = !mode_.history_changed && xstate_order_.size() == xstate_before_.size() &&
                       std::all_of(xstate_before_.begin(), xstate_before_.end(), [&](state_index s) { return config_.test(s); });
  if (mode_.xstate_same_nodes) xstate_order_.swap(xstate_before_);
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
    mode_.running = false;
    return;
  }
  auto marker = c_.states[parent].kind == state_kind::parallel ? parent : c_.states[parent].parent;
  if (c_.states[parent].kind == state_kind::compound) done_of(parent, done_data(s));
  while (marker != 0 && marker != npos && c_.states[marker].kind == state_kind::parallel && in_final(marker, true)) {
    done_of(marker, nullptr);
    marker = c_.states[marker].parent;
  }
  if (marker == 0 || marker == npos) mode_.running = false;
}

}  // namespace xsn::inline v0
