// The `xstate` datamodel: an XState chart's context, guards (combinators evaluated natively,
// without allocating), action uses and named delays, through the implementations bound once.
#include <xsn/runtime/implementations.hpp>

#include <xsn/parse/xstate.hpp>

#include "runtime/xstate_actors.hpp"

#include <boost/json/parse.hpp>

#include <optional>
#include <stdexcept>

namespace xsn::inline v0 {

action_scope::~action_scope() = default;
context_holder::~context_holder() = default;

implementations& implementations::action(std::string name, action_fn fn) {
  actions_[std::move(name)] = std::move(fn);
  return *this;
}
implementations& implementations::guard(std::string name, guard_fn fn) {
  guards_[std::move(name)] = std::move(fn);
  return *this;
}
implementations& implementations::delay(std::string name, delay_fn fn) {
  delays_[std::move(name)] = std::move(fn);
  return *this;
}
implementations& implementations::delay(std::string name, std::chrono::milliseconds ms) {
  return delay(std::move(name), delay_fn([ms](const value&, const event&) { return ms; }));
}
implementations& implementations::provide(const implementations& other) {
  for (const auto& [k, v] : other.actions_) actions_[k] = v;
  for (const auto& [k, v] : other.guards_) guards_[k] = v;
  for (const auto& [k, v] : other.delays_) delays_[k] = v;
  for (const auto& [k, v] : other.actors_) actors_[k] = v;
  return *this;
}
const action_fn* implementations::find_action(const std::string& name) const {
  auto it = actions_.find(name);
  return it == actions_.end() || !it->second ? nullptr : &it->second;
}
const guard_fn* implementations::find_guard(const std::string& name) const {
  auto it = guards_.find(name);
  return it == guards_.end() || !it->second ? nullptr : &it->second;
}
const delay_fn* implementations::find_delay(const std::string& name) const {
  auto it = delays_.find(name);
  return it == delays_.end() || !it->second ? nullptr : &it->second;
}

namespace {

template <class Fn, class Find>
void resolve(const std::vector<std::string>& names, std::vector<Fn>& out, const char* what, Find find,
             detail::bind_problems& problems) {
  out.reserve(names.size());
  for (const auto& n : names) {
    const Fn* f = find(n);
    if (!f) problems.add(std::string(what) + " '" + n + "' is not provided");
    else out.push_back(*f);
  }
}

class xstate_dm final : public datamodel, public action_scope {
 public:
  explicit xstate_dm(std::shared_ptr<const bound_implementations> b) : b_(std::move(b)) {}

  std::string_view name() const noexcept override { return "xstate"; }
  result<void> setup(const statechart& chart, datamodel_host& host) override {
    c_ = &chart;
    host_ = &host;
    p_ = chart.xstate.get();
    init_event_ = event("xstate.init");
    event_ = &init_event_;
    if (!p_) return eval_error{"the xstate datamodel runs XState charts only"};
    context_ = p_->context;
    actors_ = dynamic_cast<detail::actor_host*>(&host);
    if (has_input_) {
      init_event_.data = boost::json::object{{"input", input_}};
      if (context_fn_) {
        try {
          context_ = context_fn_(input_);
        } catch (const std::exception& ex) {
          return eval_error{std::string("the context from input threw: ") + ex.what()};
        }
      }
    }
    if (b_ && b_->program != p_) return eval_error{"implementations were bound to another chart"};
    if (b_ && b_->make_context && !(typed_ = b_->make_context())) return eval_error{"the typed context could not be made"};
    if (!b_) {
      if (auto e = detail::unbound_names(*p_).error()) return *e;
    }
    ready_ = true;
    return {};
  }
  result<void> declare(const data_decl&) override { return {}; }
  result<void> initialize(const data_decl&) override { return {}; }
  result<bool> eval_bool(expr_index e) override {
    if (!ready_) return not_ready();
    const auto& r = p_->exprs[e];
    if (r.kind != xstate_program::expr_kind::guard) return eval_error{"not a guard: " + c_->expressions[e].text};
    return guard(r.index);
  }
  result<value> eval(expr_index e) override {
    if (!ready_) return not_ready();
    const auto& r = p_->exprs[e];
    if (r.kind != xstate_program::expr_kind::output) return eval_error{"not a value: " + c_->expressions[e].text};
    return p_->outputs[r.index];
  }
  result<std::string> eval_string(expr_index e) override {
    if (!ready_) return not_ready();
    const auto& r = p_->exprs[e];
    if (r.kind != xstate_program::expr_kind::delay) return eval_error{"not a delay: " + c_->expressions[e].text};
    try {
      auto ms = typed_ ? b_->typed_delays[r.index](typed_->get(), *event_) : b_->delays[r.index](context_, *event_);
      if (ms.count() < 0) return eval_error{"delay '" + p_->delay_names[r.index] + "' is negative"};
      return std::to_string(ms.count()) + "ms";
    } catch (const std::exception& ex) {
      return eval_error{"delay '" + p_->delay_names[r.index] + "' threw: " + ex.what()};
    }
  }
  result<void> assign(expr_index, expr_index) override { return eval_error{"assign is not part of XState charts"}; }
  result<void> assign_value(expr_index, const value&) override { return eval_error{"assign is not part of XState charts"}; }
  result<void> run_script(expr_index e) override {
    if (!ready_) return not_ready();
    const auto& r = p_->exprs[e];
    if (r.kind == xstate_program::expr_kind::actor_action) return actor_action(p_->actor_actions[r.index], e);
    if (r.kind != xstate_program::expr_kind::action) return eval_error{"not an action: " + c_->expressions[e].text};
    const auto& site = p_->actions[r.index];
    try {
      if (typed_) b_->typed_actions[site.name](typed_->get(), *event_, site.params, *this);
      else b_->actions[site.name](context_, *event_, site.params, *this);
    } catch (const std::exception& ex) {
      return eval_error{action_threw(e, ex.what())};
    } catch (...) {
      return eval_error{action_threw(e, nullptr)};
    }
    return {};
  }
  /// `detail::xstate_action_threw`.
  std::string action_threw(expr_index e, const char* what) const {
    const auto& r = p_->exprs[e];
    std::string name = r.kind == xstate_program::expr_kind::action ? p_->action_names[p_->actions[r.index].name] : c_->expressions[e].text;
    return "action '" + name + "' threw" + (what ? std::string(": ") + what : std::string());
  }
  /// `detail::xstate_calls`.
  detail::xstate_direct_calls direct_calls() {
    detail::xstate_direct_calls out;
    if (!ready_ || typed_ || !b_) return out;
    out.by_expr.resize(p_->exprs.size());
    for (expr_index e = 0; e < p_->exprs.size(); ++e) {
      const auto& r = p_->exprs[e];
      if (r.kind != xstate_program::expr_kind::action) continue;
      const auto& site = p_->actions[r.index];
      if (site.name < b_->actions.size() && b_->actions[site.name]) out.by_expr[e] = {&b_->actions[site.name], &site.params};
    }
    out.context = &context_;
    out.scope = this;
    out.current = &event_;
    return out;
  }
  result<void> foreach(expr_index, expr_index, expr_index, const std::function<bool()>&) override {
    return eval_error{"foreach is not part of XState charts"};
  }
  // Keeps a reference, not a copy (copying every event cost a quarter of an XState macrostep):
  // the session keeps `ev` alive until its next `set_event`, and passes an empty event when the
  // macrostep ends (`session::impl::release_event`).
  void set_event(const event& ev) override { event_ = &ev; }
  value content_value(std::string_view text) override {
    boost::system::error_code ec;
    auto v = boost::json::parse(text, ec);
    return ec ? value(std::string(text)) : v;
  }
  value save() override { return typed_ ? typed_->save() : context_; }
  result<void> restore(const value& saved) override {
    if (typed_) return typed_->restore(saved);
    context_ = saved;
    return {};
  }
  void raise(event ev) override {
    if (!host_ || !host_->raise_internal(std::move(ev))) throw std::runtime_error("raise: the session cannot take the event");
  }
  value& context() noexcept { return context_; }
  const bound_implementations* bound() const noexcept { return b_.get(); }
  void set_input(value input, context_from_input_fn f) {
    has_input_ = true;
    input_ = std::move(input);
    context_fn_ = std::move(f);
  }

  // ---- actors (action_scope) ----
  void send_to(const std::string& to, event ev) override { host_actors().actor_send_to(to, std::move(ev)); }
  void send_parent(event ev) override { host_actors().actor_send_parent(std::move(ev)); }
  std::string spawn(const std::string& src, spawn_options opts) override {
    auto logic = b_ ? detail::find_bound_actor(*b_, src) : nullptr;
    if (!logic) throw std::runtime_error("spawn: actor '" + src + "' is not provided");
    return host_actors().actor_spawn(std::move(logic), std::move(opts));
  }
  void stop_child(const std::string& id) override { host_actors().actor_stop_child(id); }
  context_holder* typed() noexcept { return typed_.get(); }

 private:
  result<bool> guard(std::uint32_t n) {
    using op = xstate_program::guard_node::op;
    const auto& g = p_->guards[n];
    switch (g.kind) {
      case op::call:
        try {
          return typed_ ? b_->typed_guards[g.name](typed_->get(), *event_, g.params) : b_->guards[g.name](context_, *event_, g.params);
        } catch (const std::exception& ex) {
          return eval_error{"guard '" + p_->guard_names[g.name] + "' threw: " + ex.what()};
        }
      case op::all:
      case op::any:
        for (auto ch : g.children) {
          auto r = guard(ch);
          if (!r) return r;
          if (*r != (g.kind == op::all)) return !(g.kind == op::all);
        }
        return g.kind == op::all;
      case op::negate: {
        auto r = guard(g.children.front());
        if (!r) return r;
        return !*r;
      }
      case op::state_in:
        for (auto s : g.states)
          if (!host_->in_state(c_->states[s].id)) return false;
        return true;
    }
    return false;
  }

  detail::actor_host& host_actors() {
    if (!actors_) throw std::runtime_error("this session does not run actors");
    return *actors_;
  }
  [[gnu::noinline]] result<void> actor_action(const xstate_program::actor_action& a, expr_index e) {
    using op = xstate_program::actor_action::op;
    try {
      switch (a.kind) {
        case op::send_to: send_to(a.to, event(a.event, a.data)); break;
        case op::send_parent: send_parent(event(a.event, a.data)); break;
        case op::forward_to: {
          event copy(event_->name, event_->data);
          send_to(a.to, std::move(copy));
          break;
        }
        case op::stop_child: stop_child(a.to); break;
        case op::spawn_child: {
          const auto& site = p_->spawns[a.site];
          if (!b_ || site.src >= b_->actors.size() || !b_->actors[site.src])
            throw std::runtime_error("actor '" + p_->actor_names[site.src] + "' is not provided");
          host_actors().actor_spawn(b_->actors[site.src], spawn_options{site.id, site.system_id, site.input});
          break;
        }
      }
    } catch (const std::exception& ex) {
      return eval_error{c_->expressions[e].text + ": " + ex.what()};
    }
    return {};
  }

  static eval_error not_ready() { return eval_error{"the xstate datamodel is not set up (see the setup error)"}; }

  std::shared_ptr<const bound_implementations> b_;
  bool ready_ = false;
  const statechart* c_ = nullptr;
  const xstate_program* p_ = nullptr;
  datamodel_host* host_ = nullptr;
  value context_;
  detail::actor_host* actors_ = nullptr;  // the session, when it runs actors
  bool has_input_ = false;                // a child machine: `input_` given by its parent
  value input_;
  context_from_input_fn context_fn_;
  std::unique_ptr<context_holder> typed_;  // set for typed-context charts instead of `context_`
  event init_event_;                    // `xstate.init` (with the input of a child machine)
  const event* event_ = &init_event_;   // the current event (see `set_event`)
};

}  // namespace

result<std::shared_ptr<const bound_implementations>> bind(const statechart& chart, const implementations& impl) {
  if (!chart.xstate) return eval_error{"not an XState chart: implementations bind only to charts from parse_xstate"};
  auto b = std::make_shared<bound_implementations>();
  b->program = chart.xstate.get();
  const auto& p = *chart.xstate;
  detail::bind_problems problems;  // all of them, not the first: one round of fixes
  resolve(p.action_names, b->actions, "action", [&](const std::string& n) { return impl.find_action(n); }, problems);
  resolve(p.guard_names, b->guards, "guard", [&](const std::string& n) { return impl.find_guard(n); }, problems);
  resolve(p.delay_names, b->delays, "delay", [&](const std::string& n) { return impl.find_delay(n); }, problems);
  detail::bind_actors(p, impl, *b, problems);
  if (auto e = problems.error()) return *e;
  return std::shared_ptr<const bound_implementations>(std::move(b));
}

std::unique_ptr<datamodel> make_xstate_datamodel(std::shared_ptr<const bound_implementations> bound) {
  return std::make_unique<xstate_dm>(std::move(bound));
}

datamodel_factory xstate_datamodel(std::shared_ptr<const bound_implementations> bound) {
  return [bound = std::move(bound)] { return make_xstate_datamodel(bound); };
}

value* xstate_context(datamodel& dm) noexcept {
  auto* x = dynamic_cast<xstate_dm*>(&dm);
  return x && !x->typed() ? &x->context() : nullptr;
}

context_holder* xstate_typed_context(datamodel& dm) noexcept {
  auto* x = dynamic_cast<xstate_dm*>(&dm);
  return x ? x->typed() : nullptr;
}

}  // namespace xsn::inline v0

namespace xsn::inline v0::detail {

const bound_implementations* xstate_bound(datamodel& dm) noexcept {
  auto* x = dynamic_cast<xstate_dm*>(&dm);
  return x ? x->bound() : nullptr;
}

xstate_direct_calls xstate_calls(datamodel& dm) {
  auto* x = dynamic_cast<xstate_dm*>(&dm);
  return x ? x->direct_calls() : xstate_direct_calls{};
}

std::string xstate_action_threw(datamodel& dm, expr_index e, const char* what) {
  auto* x = dynamic_cast<xstate_dm*>(&dm);
  return x ? x->action_threw(e, what) : std::string("action threw");
}

void xstate_set_input(datamodel& dm, value input, context_from_input_fn context) {
  if (auto* x = dynamic_cast<xstate_dm*>(&dm)) x->set_input(std::move(input), std::move(context));
}

}  // namespace xsn::inline v0::detail
