#include "redis.hpp"

#include "cluster_client.hpp"
#include "scripts.hpp"

#include <charconv>

namespace xsn::inline v0::distributed {

using advanced::detail::redis_command;
using advanced::detail::redis_link;
using advanced::detail::redis_link_settings;

namespace {

redis_link_settings settings_of(const redis_endpoint& ep) {
  redis_link_settings s;
  s.host = ep.host;
  s.port = ep.port;
  s.connect_timeout = ep.connect_timeout;
  s.reconnect_initial = ep.reconnect_initial;
  s.reconnect_max = ep.reconnect_max;
  return s;
}

std::vector<std::vector<std::string>> auth_of(const redis_endpoint& ep) {
  if (ep.password.empty()) return {};
  if (!ep.username.empty()) return {{"AUTH", ep.username, ep.password}};
  return {{"AUTH", ep.password}};
}

// The handshake's replies: an error in the AUTH part fails the connection with its text.
std::string check_auth(const std::vector<const redisReply*>& replies, std::size_t n_auth) {
  for (std::size_t i = 0; i < n_auth && i < replies.size(); ++i)
    if (is_error(replies[i])) return "AUTH failed: " + std::string(str(replies[i]));
  return {};
}

}  // namespace

std::optional<std::int64_t> to_int(const redisReply* r) noexcept {
  if (!r) return std::nullopt;
  if (r->type == REDIS_REPLY_INTEGER) return r->integer;
  if (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_STATUS) return std::nullopt;
  std::int64_t v = 0;
  auto s = str(r);
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || p != s.data() + s.size()) return std::nullopt;
  return v;
}

std::shared_ptr<node_link> node_link::commands(advanced::detail::strand_type strand, const redis_endpoint& ep,
                                               state_fn on_state) {
  auto self = std::make_shared<node_link>();
  self->ep_ = ep;
  auto s = settings_of(ep);
  const auto n_auth = auth_of(ep).size();
  s.handshake = [ep] {
    auto cmds = auth_of(ep);
    cmds.push_back({"SCRIPT", "LOAD", std::string(node_script)});
    return cmds;
  };
  std::weak_ptr<node_link> weak = self;
  s.handshake_done = [weak, n_auth](const std::vector<const redisReply*>& replies) -> std::string {
    if (replies.size() != n_auth + 1) return "unexpected handshake";
    if (auto why = check_auth(replies, n_auth); !why.empty()) return why;
    const auto* r = replies.back();
    if (!r || r->type != REDIS_REPLY_STRING) return "SCRIPT LOAD failed: " + std::string(str(r));
    if (auto me = weak.lock(); me && me->link_) me->link_->set_script_sha(std::string(str(r)));
    return {};
  };
  s.script_text = std::string(node_script);
  if (on_state) s.on_state = std::move(on_state);
  self->link_ = std::make_shared<redis_link>(std::move(strand), std::move(s));
  self->link_->start();
  return self;
}

std::shared_ptr<node_link> node_link::subscriber(advanced::detail::strand_type strand, const redis_endpoint& ep,
                                                 std::string channel, message_fn on_message, state_fn on_state) {
  auto self = std::make_shared<node_link>();
  self->ep_ = ep;
  auto s = settings_of(ep);
  const auto n_auth = auth_of(ep).size();
  s.handshake = [ep, channel] {
    auto cmds = auth_of(ep);
    cmds.push_back({"SUBSCRIBE", channel});
    return cmds;
  };
  s.handshake_done = [n_auth](const std::vector<const redisReply*>& replies) -> std::string {
    if (replies.size() != n_auth + 1) return "unexpected handshake";
    if (auto why = check_auth(replies, n_auth); !why.empty()) return why;
    const auto* r = replies.back();
    if (!is_array(r) || r->elements != 3 || str(r->element[0]) != "subscribe") return "SUBSCRIBE failed";
    return {};
  };
  s.on_push = [on_message = std::move(on_message)](const redisReply* r) {
    // ["message", channel, payload]
    if (is_array(r) && r->elements == 3 && str(r->element[0]) == "message") on_message(str(r->element[2]));
  };
  if (on_state) s.on_state = std::move(on_state);
  self->link_ = std::make_shared<redis_link>(std::move(strand), std::move(s));
  self->link_->start();
  return self;
}

void node_link::command(std::vector<std::string> args, redis_callback cb, std::chrono::milliseconds timeout) {
  redis_command c;
  c.args = std::move(args);
  c.deadline = advanced::detail::steady::now() + (timeout.count() > 0 ? timeout : ep_.command_timeout);
  c.done = [cb = std::move(cb)](std::error_code ec, const redisReply* r) { cb(ec, r); };
  link_->submit(std::move(c));
}

void node_link::script(const std::vector<std::string>& keys, const std::vector<std::string>& args, redis_callback cb) {
  redis_command c;
  c.script = true;
  c.arg(std::to_string(keys.size()));
  for (const auto& k : keys) c.arg(k);
  for (const auto& a : args) c.arg(a);
  c.deadline = advanced::detail::steady::now() + ep_.command_timeout;
  c.done = [cb = std::move(cb)](std::error_code ec, const redisReply* r) { cb(ec, r); };
  link_->submit(std::move(c));
}

void node_link::close() {
  if (link_) link_->close();
}

std::shared_ptr<redis_client> make_client(advanced::detail::strand_type strand, const redis_endpoint& ep,
                                          node_link::state_fn on_state) {
  if (!ep.cluster.empty()) return cluster_client::make(std::move(strand), ep, std::move(on_state));
  return node_link::commands(std::move(strand), ep, std::move(on_state));
}

}  // namespace xsn::inline v0::distributed
