// `session::impl`: executable content, `<send>` and its delivery, errors raised by actions.
#include "session_impl.hpp"

#include "detail/css_time.hpp"

#include <boost/json/serialize.hpp>

namespace xsn::inline v0 {

bool session::impl::is_scxml_type(std::string_view t) {
  return t.empty() || t == scxml_processor || t == "scxml" || t == "http://www.w3.org/TR/scxml/" ||
         t == "http://www.w3.org/TR/scxml";
}

std::string session::impl::value_text(const value& v) {
  if (v.is_string()) return std::string(v.as_string());
  if (const boost::json::string* markup = xml_markup(v)) return std::string(*markup);
  return boost::json::serialize(v);
}

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
  if (mode_.inspect) [[unlikely]] detail::inspect_action(opts_.inspect, inspection_base(), a);
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
    bool operator()(const script_action& s) const { return self.exec_script(s); }
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
    bool operator()(const native_action& n) const { return self.exec_native(n); }
  };
  const bool ok = std::visit(visitor{*this, a.loc}, a.op);
  acting_ = outer;
  return ok;
}

bool session::impl::exec_script(const script_action& s) {
  auto r = dm_->run_script(s.script);
  if (!r) [[unlikely]] raise_error("error.execution", r.error().message);
  return static_cast<bool>(r);
}

bool session::impl::exec_native(const native_action& n) { return call_native(n); }

bool session::impl::native_unbound(const native_action& n) {
  raise_error("error.execution", "no native action bound to '" + n.name + "'", {}, diagnostic_kind::unbound_action);
  return false;
}

void session::impl::native_threw(const native_action& n, const char* what) {
  raise_error("error.execution", "native action '" + n.name + "' threw: " + what);
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
  if (mode_.xstate && queued_timer_events_ != 0) withdraw_timer_events(id);
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

namespace {

// `expr`'s string when the `<send>` gives one, else the attribute's `literal`.
result<std::string> send_string(datamodel& dm, const std::string& literal, expr_index expr) {
  if (expr == npos) return literal;
  return dm.eval_string(expr);
}

}  // namespace

struct session::impl::outgoing_send {
  event ev;
  std::string target;
  std::string type;
  std::string sendid;
  bool generated = false;  // `sendid` made here, not the `id` attribute
  std::chrono::milliseconds delay{0};
};

bool session::impl::exec_send(const send_action& s, source_location) {
  outgoing_send out;
  if (auto r = eval_send(s, out); !r) {
    raise_error("error.execution", r.error().message);
    return false;
  }
  return dispatch_send(s, std::move(out));
}

// The fields in document order (event, target, type, id, delay, data): each may have side effects.
result<void> session::impl::eval_send(const send_action& s, outgoing_send& out) {
  if (auto r = send_names(s, out); !r) return r;
  if (auto r = send_id(s, out); !r) return r;
  out.delay = s.delay;
  if (s.delayexpr != npos) {
    auto r = dm_->eval_string(s.delayexpr);
    if (!r) return r.error();
    std::string text = *r;
    if (!detail::parse_css_time(text, out.delay)) return eval_error{"invalid delayexpr value '" + text + "'"};
  }
  auto data = s.body ? content_data(*s.body) : params_data(s.params, s.namelist, s.namelist_names);
  if (!data) return data.error();
  out.ev.data = std::move(*data);
  return {};
}

result<void> session::impl::send_names(const send_action& s, outgoing_send& out) {
  auto name = send_string(*dm_, s.event, s.eventexpr);
  if (!name) return name.error();
  out.ev.name = std::move(*name);
  out.ev.name_id = s.eventexpr == npos ? s.name_id : npos;
  auto target = send_string(*dm_, s.target, s.targetexpr);
  if (!target) return target.error();
  out.target = std::move(*target);
  auto type = send_string(*dm_, s.type, s.typeexpr);
  if (!type) return type.error();
  out.type = std::move(*type);
  return {};
}

result<void> session::impl::send_id(const send_action& s, outgoing_send& out) {
  out.sendid = s.id;
  if (s.idlocation != npos || out.sendid.empty()) {
    out.sendid = id_ + ".send." + std::to_string(++send_counter_);
    out.generated = true;
  }
  if (s.idlocation != npos) return dm_->assign_value(s.idlocation, value(out.sendid));
  return {};
}

bool session::impl::dispatch_send(const send_action& s, outgoing_send out) {
  event& ev = out.ev;
  const bool anonymous = out.generated && s.idlocation == npos;  // no sendid shown to the chart
  if (!is_scxml_type(out.type)) {
    raise_error("error.execution", "unsupported send type '" + out.type + "'", anonymous ? "" : out.sendid);
    return false;
  }
  ev.sendid = anonymous ? std::string() : out.sendid;
  ev.origin = "#_scxml_" + id_;
  ev.origintype = std::string(scxml_processor);
  if (out.target == "#_internal") {
    ev.type = event_type::internal;
    ev.origin.clear();
    ev.origintype.clear();
    raise(std::move(ev));
    return true;
  }
  if (!out.target.empty() && out.target.rfind("#_", 0) != 0 && !opts_.route) {
    raise_error("error.execution", "unsupported send target '" + out.target + "'", ev.sendid);
    return false;
  }
  if (out.delay.count() > 0 || c_.semantics == chart_semantics::xstate) {  // XState: `after: {0: ...}` waits for the clock too
    schedule_send(out.sendid, std::move(ev), std::move(out.target),
                  clock_.now() + std::chrono::duration_cast<clock::duration>(out.delay));
    return true;
  }
  deliver(std::move(ev), std::move(out.target));
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
  const bool to_self = mode_.xstate && p.target.empty() && !p.ev.sendid.empty();
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

void session::impl::xstate_fail(const std::string& message, diagnostic_kind kind, state_index where,
                                std::string_view event_name) {
  if (mode_.errored) return;
  report(kind, event_name, where, message);
  cold().error_ = message;
  mode_.errored = true;
  mode_.running = false;
  mode_.cancelled = true;
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

}  // namespace xsn::inline v0
