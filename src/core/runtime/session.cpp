// The public `session`: each member forwards to `session::impl` (session_impl.hpp).
#include "session_impl.hpp"

#include <boost/asio/post.hpp>
#include <boost/json/parse.hpp>

namespace xsn::inline v0 {

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
bool session::running() const noexcept { return impl_->mode_.running; }
session_status session::status() const noexcept { return impl_->status(); }
std::uint64_t session::transitions_taken() const noexcept { return impl_->transitions_taken_; }
value session::error() const {
  if (!impl_->mode_.errored) return nullptr;
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

}  // namespace xsn::inline v0
