// `session::impl`: `<invoke>`d child sessions and XState actors.
#include "session_impl.hpp"

namespace xsn::inline v0 {

void session::impl::start_invokes() {
  cold().to_invoke_.for_each([&](state_index s) {
    for (auto i : c_.states[s].invokes)
      if (mode_.running) invoke(c_.invokes[i], i);
  });
  cold().to_invoke_.clear();
}

namespace {

// The type of `<invoke>` `inv` (its `typeexpr` evaluated), an error when it is not SCXML.
result<std::string> invoke_type(datamodel& dm, const invoke_decl& inv) {
  auto type = inv.typeexpr == npos ? result<std::string>(inv.type) : dm.eval_string(inv.typeexpr);
  if (type && !session::impl::is_scxml_type(*type)) return eval_error{"unsupported invoke type '" + *type + "'"};
  return type;
}

// Copies the members of an `<invoke>`'s `<param>`s and `namelist` into a child's data overrides.
void copy_overrides(std::unordered_map<std::string, value>& overrides, const boost::json::object& data) {
  for (auto& [k, v] : data) overrides[std::string(k)] = v;
}

}  // namespace

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
  if (auto type = invoke_type(*dm_, inv); !type) return fail(type.error().message);
  auto chart = invoke_chart(inv, invokeid);
  if (!chart) return fail(chart.error().message);
  auto data = params_data(inv.params, inv.namelist, inv.namelist_names);
  if (!data) return fail(data.error().message);
  auto& child = make_child(invokeid, std::move(*chart), index);
  if (data->is_object()) copy_overrides(child.impl_->cold().data_overrides_, data->as_object());
  child.start();
}

std::filesystem::path detail::invoke_path(std::string src, const std::string& base_dir) {
  if (src.rfind("file://", 0) == 0) src = src.substr(7);
  else if (src.rfind("file:", 0) == 0) src = src.substr(5);
  std::filesystem::path p(src);
  if (p.is_relative()) p = std::filesystem::path(base_dir) / p;
  return p;
}

result<std::shared_ptr<const statechart>> session::impl::invoke_chart(const invoke_decl& inv, const std::string& invokeid) {
  using chart_ptr = std::shared_ptr<const statechart>;
  if (inv.body && inv.body->chart != npos) return chart_ptr(c_.inline_charts[inv.body->chart]);
  parse_result pr;
  if (inv.body) {
    auto r = content_data(*inv.body);
    if (!r) return r.error();
    pr = parse_scxml(value_text(*r), c_.source_name + " (invoke content)", c_.base_dir);
  } else {
    auto src = inv.srcexpr == npos ? result<std::string>(inv.src) : dm_->eval_string(inv.srcexpr);
    if (!src) return src.error();
    pr = load_document(detail::invoke_path(std::move(*src), c_.base_dir));
  }
  if (!pr)
    return eval_error{"invoke '" + invokeid + "': " + (pr.errors.empty() ? "cannot load" : pr.errors.front().to_string())};
  return chart_ptr(pr.chart);
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
  if (running || mode_.xstate) {
    if (running && ch.s) ch.s->stop();
    drop_queued([&](const event& e) { return e.invokeid == id; });
  }
  if (!ch.system_id.empty() && cold().registry_) cold().registry_->system.erase(ch.system_id);
  cold().children_.erase(it);  // a native actor runs its cleanup, a promise is cancelled
}

namespace {

bool starts_with(std::string_view s, std::string_view prefix) { return s.rfind(prefix, 0) == 0; }

// True for XState's done and error events of an actor.
bool is_actor_end(std::string_view name) {
  return starts_with(name, "xstate.done.actor.") || starts_with(name, "xstate.error.actor.");
}

// True when `inv` autoforwards events to child `ch` and the child can take them.
bool forwards_to(const invoke_decl& inv, const session::impl::child& ch) {
  return inv.autoforward && ch.s && ch.s->running();
}

// True for a child session that has stopped.
bool session_stopped(const session::impl::child& ch) { return ch.s && !ch.s->running(); }

// True for a child that has stopped: its session is not running, its native actor is gone or finished.
bool child_stopped(const session::impl::child& ch) {
  return ch.s ? !ch.s->running() : !ch.actor || ch.actor->finished();
}

// Forgets the child that sent `ev` when `ev` ends it: SCXML's done.invoke erases a stopped child
// session; XState's done and error events remove a stopped actor (it leaves `children`).
void forget_ended_child(session::impl& self, const event& ev) {
  if (ev.invokeid.empty()) return;
  const bool done_invoke = starts_with(ev.name, "done.invoke.");
  if (!done_invoke && !is_actor_end(ev.name)) return;
  auto& children = self.cold().children_;
  auto it = children.find(ev.invokeid);
  if (it == children.end()) return;
  if (done_invoke) {
    if (session_stopped(it->second)) children.erase(it);
    return;
  }
  if (child_stopped(it->second)) self.remove_child(ev.invokeid);
}

}  // namespace

void session::impl::handle_child_event(const event& ev) {
  static std::map<std::string, child> no_children;  // never modified: stands for an absent cold_
  for (auto& [invokeid, ch] : cold_ ? cold_->children_ : no_children) {
    if (ch.decl == npos) continue;  // spawned
    const auto& inv = c_.invokes[ch.decl];
    if (!config_.test(inv.parent)) continue;
    if (invokeid == ev.invokeid) execute(inv.finalize);
    if (!forwards_to(inv, ch)) continue;
    event copy = ev;
    copy.name_id = npos;
    ch.s->impl_->enqueue_external(std::move(copy));
  }
  forget_ended_child(*this, ev);
}

// ---- XState actors (see xstate_actors.hpp) ----

session::impl::registry& session::impl::ensure_registry() {
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

namespace {

// Makes the slot of actor `id`: a child session for a machine (given `input` unless it is being
// restored), an empty slot for a native actor (made when it starts).
session::impl::child& make_actor_slot(session::impl& self, const actor_logic::machine_logic* machine,
                                      const bound_actor& logic, const std::string& id, std::uint32_t decl,
                                      const value& input, bool restoring) {
  auto& children = self.cold().children_;
  if (!machine) {
    children[id].decl = decl;
    return children[id];
  }
  auto& child_session = self.make_child(id, machine->chart, decl, xstate_datamodel(logic.bound));
  if (!restoring) detail::xstate_set_input(child_session.datamodel(), input, machine->context);
  return children[id];
}

// Marks `slot` to start once the macrostep is done; a native actor keeps its `input` until then.
void defer_start(session::impl::child& slot, const value& input) {
  slot.deferred = true;
  if (!slot.s) slot.input = input;
}

// Starts actor `id`: its child session, else a new native actor of its logic given `input`.
void start_child(session::impl& self, session::impl::child& slot, const std::string& id, const value& input) {
  if (slot.s) {
    slot.s->start();
    return;
  }
  slot.actor = detail::make_native_actor(slot.logic->logic, self.ex_, self, id, input);
  slot.actor->start();
}

}  // namespace

std::string session::impl::start_actor(std::shared_ptr<const bound_actor> logic, const std::string& id,
                                       const std::string& system_id, const value& input, std::uint32_t decl,
                                       const value* restore_from, bool defer) {
  if (cold().children_.count(id)) return "an actor with id '" + id + "' already exists";
  auto& reg = ensure_registry();
  if (!system_id.empty() && reg.system.count(system_id)) return "an actor with systemId '" + system_id + "' already exists";
  const auto* machine = std::get_if<actor_logic::machine_logic>(&logic->logic.kind);
  auto& slot = make_actor_slot(*this, machine, *logic, id, decl, input, restore_from != nullptr);
  slot.logic = logic;
  slot.system_id = system_id;
  if (!system_id.empty()) reg.system[system_id] = {this, id};
  if (machine && restore_from) {
    if (!slot.s->impl_->restore(*restore_from)) return {};
    remove_child(id);
    return "its snapshot does not fit";
  }
  if (defer) {  // XState starts a spawned actor once the macrostep that spawned it is done
    defer_start(slot, input);
    cold().spawned_.push_back(id);
    return {};
  }
  start_child(*this, slot, id, input);
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
    start_child(*this, ch, id, ch.input);
    for (auto& ev : early) {
      if (!mode_.running) return;
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
  if (!parent->enqueue_external(std::move(ev)) && parent->mode_.running)
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

}  // namespace xsn::inline v0
