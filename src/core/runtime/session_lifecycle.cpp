// `session::impl`: construction, start, the external queue and its drain, stop.
#include "session_impl.hpp"

#include <boost/asio/post.hpp>
#include <boost/json/serialize.hpp>

#include <atomic>

namespace xsn::inline v0 {

namespace {

std::string next_session_id() {
  static std::atomic<std::uint64_t> counter{0};
  return "xsn-" + std::to_string(++counter);
}

}  // namespace

session::impl::impl(session& self, std::shared_ptr<const statechart> chart, boost::asio::any_io_executor ex,
                  xsn::clock& clk, std::shared_ptr<const session_options> opts, std::string given_id)
    : self_(self), chart_(std::move(chart)), c_(*chart_), ex_(std::move(ex)), clock_(clk),
      opts_holder_(std::move(opts)), opts_(*opts_holder_), config_(c_.states.size()), atomic_mask_(c_.atomic_mask) {
  // Only what every macrostep needs is allocated here; the rest when a chart uses it (history,
  // late binding, invokes) or on the first microstep that needs the general algorithm.
  mode_.fixed_id = !given_id.empty() || !opts_.session_id.empty();
  id_ = !given_id.empty() ? std::move(given_id) : opts_.session_id.empty() ? next_session_id() : opts_.session_id;
  mode_.has_histories = c_.has_histories;
  mode_.big = c_.states.size() > 256;  // below, a walk of every word costs a few instructions
  if (mode_.big) big_config_.ensure(c_.states.size());
  if (mode_.has_histories) {
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
  choose_modes();
  resolve_entry_calls();
}

std::uint32_t session::impl::resolve_by_name(const event& ev) const noexcept {
  return ev.name_id < c_.names.size() && c_.names[ev.name_id] == ev.name ? ev.name_id : c_.find_name(ev.name);
}

void session::impl::resolve_entry_calls() {
  const auto n = c_.states.size();
  const auto calls_only = [&](std::size_t s) { return only_calls(c_.hot_states[s].flags); };
  // Built when some state is calls-only, even if its `<onentry/>` holds no action: enter_calls
  // still runs for it.
  bool any = false;
  for (std::size_t s = 0; s < n && !any; ++s) any = calls_only(s);
  if (!mode_.quick_calls || !any) return;  // enter_calls never runs
  entry_calls_at_.resize(n + 1);
  for (std::size_t s = 0; s < n; ++s) {
    entry_calls_at_[s] = static_cast<std::uint32_t>(entry_calls_.size());
    if (!calls_only(s)) continue;
    for (const auto& block : c_.states[s].onentry) {
      const auto first = entry_calls_.size();
      for (const auto& a : block) {
        const auto* native = std::get_if<native_action>(&a.op);
        const bool bound = native && native->slot < natives_.size() && natives_[native->slot];
        entry_calls_.push_back({&a, bound ? &natives_[native->slot] : nullptr, 0});
      }
      for (auto i = first; i < entry_calls_.size(); ++i) entry_calls_[i].block_end = static_cast<std::uint32_t>(entry_calls_.size());
    }
  }
  entry_calls_at_[n] = static_cast<std::uint32_t>(entry_calls_.size());
}

void session::impl::choose_modes() {
  mode_.xstate = c_.semantics == chart_semantics::xstate;
  mode_.track_order = mode_.xstate && c_.has_eventless;
  mode_.inspect = static_cast<bool>(opts_.inspect);
  mode_.dm_reads_event = !detail::is_null_datamodel(*dm_);
  mode_.borrows_event = xstate_context(*dm_) != nullptr;
  mode_.quick_rtc = !c_.has_eventless && c_.invokes.empty() && opts_.microstep_budget > 0;
  mode_.has_invokes = !c_.invokes.empty();
  mode_.bookkeeping = mode_.has_histories || mode_.has_invokes;
  mode_.xstate_walk = mode_.xstate && c_.states.size() > 1 &&
                 std::none_of(c_.hot_states.begin(), c_.hot_states.end(), [](const hot_state& h) { return h.flags & hot_state::childless; });
  if (mode_.xstate_walk) region_found_ = detail::bitset(c_.states.size());
  choose_lookup_modes();
}

void session::impl::choose_lookup_modes() {
  mode_.chain = !c_.chain_next.empty() && !c_.chain_parallel;
  mode_.parallel_chain = !c_.chain_next.empty() && c_.chain_parallel;
  // A direct step with no entry content skips what content reads: the event given to the
  // datamodel (the xstate one lets go of it after each macrostep anyway; ECMAScript's `_event` stays
  // until the next event), the inspector's view of the steps, invokes and eventless transitions.
  mode_.quick_calls = !mode_.inspect && c_.binding != binding_mode::late;
  mode_.direct = !c_.chain_next.empty() && !mode_.inspect && mode_.quick_rtc && !mode_.has_invokes && !mode_.track_order &&
                 (!mode_.dm_reads_event || mode_.borrows_event);
}

std::error_code session::impl::start() {
  if (mode_.started) return {};
  mode_.started = true;
  if (cold_ && cold_->registry_) cold_->registry_->sessions[id_] = this;  // a child joins its parent's registry
  if (opts_.inspect) [[unlikely]] inspect_started();
  mode_.in_macrostep = true;
  const bool unbound = setup_datamodel();  // XState: the machine names implementations nobody bound
  report_unbound_natives();
  declare_data();
  mode_.running = !mode_.errored;
  execute(c_.root_scripts);
  enter_initial();
  if (opts_.inspect) [[unlikely]] inspect_step();
  run_to_completion();
  mode_.in_macrostep = false;
  if (opts_.on_macrostep) opts_.on_macrostep(self_);
  if (!mode_.running) exit_interpreter(!mode_.cancelled);
  else if (!external_.empty()) post_drain();
  if (opts_.inspect) [[unlikely]] after_macrostep(ext().current);
  if (mode_.errored) return unbound ? errc::not_bound : errc::start_failed;
  return {};
}

bool session::impl::setup_datamodel() {
  auto r = dm_->setup(c_, *this);
  if (r) return false;
  const bool unbound = mode_.xstate && c_.xstate && dm_->name() == "xstate" && !detail::xstate_bound(*dm_) &&
                       !detail::unbound_names(*c_.xstate).items.empty();
  raise_error("error.execution", r.error().message, {},
              unbound ? diagnostic_kind::unbound_action : diagnostic_kind::execution_error, npos);
  return unbound;
}

// SCXML: every `<xsn:action>` name without a handler, once, before any runs.
void session::impl::report_unbound_natives() {
  if (std::find(natives_.begin(), natives_.end(), nullptr) == natives_.end()) [[likely]] return;
  std::string names;
  for (std::size_t i = 0; i < natives_.size(); ++i)
    if (!natives_[i]) names += (names.empty() ? "'" : ", '") + c_.native_actions[i] + "'";
  report(diagnostic_kind::unbound_action, {}, npos,
         "no native action bound to " + names + " (session_options::actions); each use raises error.execution");
}

void session::impl::declare_data() {
  if (c_.binding == binding_mode::early) {
    for (const auto& d : c_.data) initialize_data(d, npos);
    return;
  }
  for (const auto& d : c_.data)
    if (auto r = dm_->declare(d); !r) raise_error("error.execution", r.error().message, {}, diagnostic_kind::execution_error, npos);
  for (auto d : c_.states[0].data) initialize_data(c_.data[d], npos);
}

void session::impl::enter_initial() {
  enabled_.assign(1, c_.states[0].initial);
  microsteps_ = 0;
  domains_.assign(1, 0);
  order_.assign(1, 0);
  mode_.fast = c_.transitions[enabled_[0]].static_entry;
  enter_states();
  mode_.fast = false;
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
  if (!mode_.running) return errc::not_running;
  if (!enqueue_external(std::move(ev))) return errc::queue_full;
  return {};
}

bool session::impl::enqueue_external(event ev) {
  if (!mode_.running || external_.size() >= opts_.queue_capacity) return false;
  external_.push_back(std::move(ev));
  post_drain();
  return true;
}

void session::impl::post_drain() {
  if (mode_.drain_posted || mode_.in_macrostep) return;
  mode_.drain_posted = true;
  boost::asio::post(ex_, [this, alive = std::weak_ptr<int>(life_)] {
    if (alive.expired()) return;
    mode_.drain_posted = false;
    drain();
  });
}

std::error_code session::impl::process_queued(const event& ev) {
  if (external_.size() >= opts_.queue_capacity) return errc::queue_full;
  external_.push_back(ev);
  drain();
  return {};
}

void session::impl::drain() {
  if (mode_.in_macrostep) return;
  // A bounded batch per handler keeps sessions sharing an executor fair.
  for (int batch = 0; batch < 64 && mode_.running && !external_.empty(); ++batch) {
    event ev = std::move(external_.front());
    external_.pop_front();
    if (queued_timer_events_ != 0 && own_timer_event(ev)) [[unlikely]] --queued_timer_events_;
    if (cold_ && cold_->ext_) [[unlikely]] cold_->ext_->waiters.popped();
    process_external(ev);
  }
  if (mode_.running && !external_.empty()) {
    post_drain();
  } else if (external_.empty()) {
    external_.clear();  // an idle session holds no queue storage
    queued_timer_events_ = 0;
  }
}

void session::impl::stop() {
  if (!mode_.running || mode_.in_macrostep) {  // inside a macrostep: it ends the session when it returns
    if (mode_.running) mode_.cancelled = true;
    mode_.running = false;
    return;
  }
  mode_.running = false;
  mode_.cancelled = true;  // status `stopped`, not `done`
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

}  // namespace xsn::inline v0
