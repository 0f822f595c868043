// The `xstate` datamodel: an XState chart's context, guards (combinators evaluated natively,
// without allocating), action uses and named delays, through the implementations bound once.
#include <xsn/runtime/implementations.hpp>

#include <xsn/parse/xstate.hpp>

#include <boost/json/parse.hpp>

#include <optional>
#include <stdexcept>

namespace xsn {

action_scope::~action_scope() = default;

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
std::optional<eval_error> resolve(const std::vector<std::string>& names, std::vector<Fn>& out, const char* what, Find find) {
  out.reserve(names.size());
  for (const auto& n : names) {
    const Fn* f = find(n);
    if (!f) return eval_error{std::string(what) + " '" + n + "' is not provided"};
    out.push_back(*f);
  }
  return std::nullopt;
}

std::optional<eval_error> first_unbound(const xstate_program& p) {
  if (!p.action_names.empty()) return eval_error{"action '" + p.action_names.front() + "' is not provided"};
  if (!p.guard_names.empty()) return eval_error{"guard '" + p.guard_names.front() + "' is not provided"};
  if (!p.delay_names.empty()) return eval_error{"delay '" + p.delay_names.front() + "' is not provided"};
  return std::nullopt;
}

class xstate_dm final : public datamodel, public action_scope {
 public:
  explicit xstate_dm(std::shared_ptr<const bound_implementations> b) : b_(std::move(b)) {}

  std::string_view name() const noexcept override { return "xstate"; }
  result<void> setup(const statechart& chart, datamodel_host& host) override {
    c_ = &chart;
    host_ = &host;
    p_ = chart.xstate.get();
    event_ = event("xstate.init");
    if (!p_) return eval_error{"the xstate datamodel runs XState charts only"};
    context_ = p_->context;
    if (b_ && b_->program != p_) return eval_error{"implementations were bound to another chart"};
    if (!b_) {
      if (auto e = first_unbound(*p_)) return *e;
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
      auto ms = b_->delays[r.index](context_, event_);
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
    if (r.kind != xstate_program::expr_kind::action) return eval_error{"not an action: " + c_->expressions[e].text};
    const auto& site = p_->actions[r.index];
    try {
      b_->actions[site.name](context_, event_, site.params, *this);
    } catch (const std::exception& ex) {
      return eval_error{"action '" + p_->action_names[site.name] + "' threw: " + ex.what()};
    } catch (...) {
      return eval_error{"action '" + p_->action_names[site.name] + "' threw"};
    }
    return {};
  }
  result<void> foreach(expr_index, expr_index, expr_index, const std::function<bool()>&) override {
    return eval_error{"foreach is not part of XState charts"};
  }
  void set_event(const event& ev) override { event_ = ev; }
  value content_value(std::string_view text) override {
    boost::system::error_code ec;
    auto v = boost::json::parse(text, ec);
    return ec ? value(std::string(text)) : v;
  }
  value save() override { return context_; }
  result<void> restore(const value& saved) override {
    context_ = saved;
    return {};
  }
  void raise(event ev) override {
    if (!host_ || !host_->raise_internal(std::move(ev))) throw std::runtime_error("raise: the session cannot take the event");
  }
  value& context() noexcept { return context_; }

 private:
  result<bool> guard(std::uint32_t n) {
    using op = xstate_program::guard_node::op;
    const auto& g = p_->guards[n];
    switch (g.kind) {
      case op::call:
        try {
          return b_->guards[g.name](context_, event_, g.params);
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

  static eval_error not_ready() { return eval_error{"the xstate datamodel is not set up (see the setup error)"}; }

  std::shared_ptr<const bound_implementations> b_;
  bool ready_ = false;
  const statechart* c_ = nullptr;
  const xstate_program* p_ = nullptr;
  datamodel_host* host_ = nullptr;
  value context_;
  event event_;
};

}  // namespace

result<std::shared_ptr<const bound_implementations>> bind(const statechart& chart, const implementations& impl) {
  if (!chart.xstate) return eval_error{"not an XState chart: implementations bind only to charts from parse_xstate"};
  auto b = std::make_shared<bound_implementations>();
  b->program = chart.xstate.get();
  const auto& p = *chart.xstate;
  if (auto e = resolve(p.action_names, b->actions, "action", [&](const std::string& n) { return impl.find_action(n); })) return *e;
  if (auto e = resolve(p.guard_names, b->guards, "guard", [&](const std::string& n) { return impl.find_guard(n); })) return *e;
  if (auto e = resolve(p.delay_names, b->delays, "delay", [&](const std::string& n) { return impl.find_delay(n); })) return *e;
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
  return x ? &x->context() : nullptr;
}

}  // namespace xsn
