// Actor logic of XState charts: the bindings (`implementations::actor`, resolved by `bind`), the
// promise handle, and the promise and callback actors a session owns as children.
#include "runtime/xstate_actors.hpp"

#include <xsn/parse/xstate.hpp>

#include <boost/asio/post.hpp>

#include <algorithm>
#include <optional>
#include <stdexcept>

namespace xsn::inline v0 {

// ---- bindings ----

actor_logic actor_logic::machine(std::shared_ptr<const statechart> chart, implementations impl, context_from_input_fn context) {
  return actor_logic{machine_logic{std::move(chart), std::make_shared<const implementations>(std::move(impl)), std::move(context)}};
}
actor_logic actor_logic::promise(promise_fn fn) { return actor_logic{std::move(fn)}; }
actor_logic actor_logic::callback(callback_fn fn) { return actor_logic{std::move(fn)}; }

implementations& implementations::actor(std::string name, actor_logic logic) {
  actors_[std::move(name)] = std::make_shared<const actor_logic>(std::move(logic));
  return *this;
}
std::vector<std::string> implementations::actor_names() const {
  std::vector<std::string> out;
  for (const auto& [name, logic] : actors_) out.push_back(name);
  std::sort(out.begin(), out.end());
  return out;
}
const actor_logic* implementations::find_actor(const std::string& name) const {
  auto it = actors_.find(name);
  return it == actors_.end() ? nullptr : it->second.get();
}

namespace detail {

namespace {
thread_local int bind_depth = 0;  // child machines providing machines: refuse endless nesting
constexpr int max_bind_depth = 16;

result<std::shared_ptr<const bound_actor>> bind_one(const std::string& name, const actor_logic& logic) {
  auto b = std::make_shared<bound_actor>();
  b->name = name;
  b->logic = logic;
  if (const auto* m = std::get_if<actor_logic::machine_logic>(&logic.kind)) {
    if (!m->chart || !m->chart->xstate) return eval_error{"actor '" + name + "' is not an XState chart (use parse_xstate)"};
    if (bind_depth >= max_bind_depth) return eval_error{"actor '" + name + "': machines nested deeper than 16 levels"};
    ++bind_depth;
    auto r = bind(*m->chart, m->impl ? *m->impl : implementations{});
    --bind_depth;
    if (!r) return eval_error{"actor '" + name + "': " + r.error().message};
    b->bound = *r;
  } else if (const auto* p = std::get_if<promise_fn>(&logic.kind); p && !*p) {
    return eval_error{"actor '" + name + "' has an empty promise function"};
  } else if (const auto* c = std::get_if<callback_fn>(&logic.kind); c && !*c) {
    return eval_error{"actor '" + name + "' has an empty callback function"};
  }
  return std::shared_ptr<const bound_actor>(std::move(b));
}
}  // namespace

std::optional<eval_error> bind_problems::error() const {
  if (items.empty()) return std::nullopt;
  if (items.size() == 1) return eval_error{items.front()};
  std::string all = std::to_string(items.size()) + " implementations are missing or do not fit: ";
  for (std::size_t i = 0; i < items.size(); ++i) all += (i ? "; " : "") + items[i];
  return eval_error{std::move(all)};
}

bind_problems unbound_names(const xstate_program& p) {
  bind_problems out;
  for (const auto& [what, names] : {std::pair{"action", &p.action_names}, std::pair{"guard", &p.guard_names},
                                    std::pair{"delay", &p.delay_names}, std::pair{"actor", &p.actor_names}})
    for (const auto& n : *names) out.add(std::string(what) + " '" + n + "' is not provided");
  return out;
}

void bind_actors(const xstate_program& p, const implementations& impl, bound_implementations& out,
                 bind_problems& problems) {
  const auto provided = impl.actor_names();
  for (const auto& name : p.actor_names) {
    const auto* logic = impl.find_actor(name);
    if (!logic) {
      problems.add("actor '" + name + "' is not provided");
      out.actors.emplace_back();  // keeps the slots in order while the rest is checked
      continue;
    }
    auto r = bind_one(name, *logic);
    if (!r) problems.add(r.error().message);
    out.actors.push_back(r ? *r : nullptr);
  }
  // Names the chart does not use stay available to `action_scope::spawn`.
  for (const auto& name : provided) {
    if (std::find(p.actor_names.begin(), p.actor_names.end(), name) != p.actor_names.end()) continue;
    auto r = bind_one(name, *impl.find_actor(name));
    if (!r) problems.add(r.error().message);
    else out.actors.push_back(*r);
  }
}

std::shared_ptr<const bound_actor> find_bound_actor(const bound_implementations& b, std::string_view name) {
  for (const auto& a : b.actors)
    if (a && a->name == name) return a;
  return nullptr;
}

event actor_done_event(const std::string& id, value output) {
  event ev("xstate.done.actor." + id, boost::json::object{{"output", std::move(output)}, {"actorId", id}});
  ev.invokeid = id;
  return ev;
}
event actor_error_event(const std::string& id, value error) {
  event ev("xstate.error.actor." + id, boost::json::object{{"error", std::move(error)}, {"actorId", id}});
  ev.invokeid = id;
  return ev;
}

actor_host::~actor_host() = default;
native_actor::~native_actor() = default;

native_actor::native_actor(boost::asio::any_io_executor ex, actor_host& parent, std::string id, value input)
    : ex_(std::move(ex)), link_(std::make_shared<actor_link>()), input_(std::move(input)) {
  link_->parent = &parent;
  link_->id = std::move(id);
  link_->self = this;
}

namespace {

/// Delivers `ev` from the actor behind `link` to its parent, on the executor; nothing once the
/// actor is gone.
void post_to_parent(const boost::asio::any_io_executor& ex, std::weak_ptr<actor_link> link, event ev, bool final) {
  boost::asio::post(ex, [link = std::move(link), ev = std::move(ev), final]() mutable {
    auto l = link.lock();
    if (!l || l->self->finished()) return;
    if (final) l->self->set_finished();
    l->parent->actor_from_child(l->id, std::move(ev), final);
  });
}

class promise_actor final : public native_actor {
 public:
  promise_actor(promise_fn fn, boost::asio::any_io_executor ex, actor_host& parent, std::string id, value input)
      : native_actor(std::move(ex), parent, std::move(id), std::move(input)), fn_(std::move(fn)) {}
  ~promise_actor() override { state_->cancelled.store(true, std::memory_order_release); }
  void start() override {
    state_->ex = ex_;
    state_->link = link_;
    try {
      fn_(input_, promise_handle(state_));
    } catch (const std::exception& e) {
      promise_handle(state_).reject(value(e.what()));
    } catch (...) {
      promise_handle(state_).reject(value("the promise function threw"));
    }
  }
  void receive(const event&) override {}  // XState: a promise actor ignores events

 private:
  promise_fn fn_;
  std::shared_ptr<promise_handle::state> state_ = std::make_shared<promise_handle::state>();
};

class callback_actor final : public native_actor {
 public:
  callback_actor(callback_fn fn, boost::asio::any_io_executor ex, actor_host& parent, std::string id, value input)
      : native_actor(std::move(ex), parent, std::move(id), std::move(input)), fn_(std::move(fn)) {}
  ~callback_actor() override {
    link_.reset();  // nothing it sends from here on arrives
    if (!cleanup_) return;
    try {
      cleanup_();
    } catch (...) {  // a cleanup cannot fail a stopping actor
    }
  }
  void start() override {
    std::weak_ptr<actor_link> weak = link_;
    callback_args args;
    args.input = input_;
    args.send_back = [ex = ex_, weak, id = link_->id](event ev) {
      ev.invokeid = id;
      post_to_parent(ex, weak, std::move(ev), false);
    };
    args.receive = [weak](std::function<void(const event&)> h) {
      if (auto l = weak.lock(); l && h) static_cast<callback_actor*>(l->self)->listeners_.push_back(std::move(h));
    };
    try {
      cleanup_ = fn_(args);
    } catch (const std::exception& e) {
      fail(e.what());
    } catch (...) {
      fail("the callback threw");
    }
  }
  void receive(const event& ev) override {
    for (std::size_t i = 0; i < listeners_.size(); ++i) {  // a listener may register another
      try {
        listeners_[i](ev);
      } catch (const std::exception& e) {
        return fail(e.what());
      } catch (...) {
        return fail("a receive listener threw");
      }
    }
  }

 private:
  void fail(const std::string& why) { post_to_parent(ex_, link_, actor_error_event(link_->id, value(why)), true); }
  callback_fn fn_;
  std::function<void()> cleanup_;
  std::vector<std::function<void(const event&)>> listeners_;
};

}  // namespace

std::unique_ptr<native_actor> make_native_actor(const actor_logic& logic, boost::asio::any_io_executor ex,
                                                actor_host& parent, std::string id, value input) {
  if (const auto* p = std::get_if<promise_fn>(&logic.kind))
    return std::make_unique<promise_actor>(*p, std::move(ex), parent, std::move(id), std::move(input));
  if (const auto* c = std::get_if<callback_fn>(&logic.kind))
    return std::make_unique<callback_actor>(*c, std::move(ex), parent, std::move(id), std::move(input));
  return nullptr;
}

}  // namespace detail

// ---- promise_handle ----

void promise_handle::resolve(value output) const { settle(true, std::move(output)); }
void promise_handle::reject(value error) const { settle(false, std::move(error)); }

void promise_handle::settle(bool ok, value v) const {
  if (s_->settled.exchange(true, std::memory_order_acq_rel) || s_->cancelled.load(std::memory_order_acquire)) return;
  // The id is read on the executor, where the link lives.
  boost::asio::post(s_->ex, [link = s_->link, ok, v = std::move(v)]() mutable {
    auto l = link.lock();
    if (!l || l->self->finished()) return;
    l->self->set_finished();
    l->parent->actor_from_child(l->id, ok ? detail::actor_done_event(l->id, std::move(v)) : detail::actor_error_event(l->id, std::move(v)), true);
  });
}

}  // namespace xsn::inline v0

namespace xsn::inline v0 {

// Scopes without actors (the defaults) refuse actor operations; the `xstate` datamodel overrides them.
void action_scope::send_to(const std::string&, event) { throw std::runtime_error("send_to: no actors here"); }
void action_scope::send_parent(event) { throw std::runtime_error("send_parent: no actors here"); }
std::string action_scope::spawn(const std::string&, spawn_options) { throw std::runtime_error("spawn: no actors here"); }
void action_scope::stop_child(const std::string&) { throw std::runtime_error("stop_child: no actors here"); }

}  // namespace xsn::inline v0
