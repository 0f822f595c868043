// Part of xsn_distributed: a Redis Cluster client on the node's links (see cluster_client.hpp).
#include "cluster_client.hpp"

#include <xsn/core/errors.hpp>

#include <boost/asio/error.hpp>

#include <algorithm>
#include <charconv>
#include <utility>

namespace xsn::inline v0::distributed {

using advanced::detail::steady;

namespace {

// CRC16-XMODEM (polynomial 0x1021, initial 0), as Redis Cluster hashes keys.
constexpr std::array<std::uint16_t, 256> crc16_table = [] {
  std::array<std::uint16_t, 256> t{};
  for (unsigned i = 0; i < 256; ++i) {
    auto crc = static_cast<std::uint16_t>(i << 8);
    for (int b = 0; b < 8; ++b) crc = static_cast<std::uint16_t>(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
    t[i] = crc;
  }
  return t;
}();

std::uint16_t crc16(std::string_view s) noexcept {
  std::uint16_t crc = 0;
  for (unsigned char c : s) crc = static_cast<std::uint16_t>((crc << 8) ^ crc16_table[((crc >> 8) ^ c) & 0xff]);
  return crc;
}

bool iequals(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return (x >= 'a' && x <= 'z' ? x - 32 : x) == (y >= 'a' && y <= 'z' ? y - 32 : y);
         });
}

/// "host:port" -> (host, port); the host may be empty (the node's own, in a redirection).
std::optional<std::pair<std::string, std::uint16_t>> split_address(std::string_view a) {
  const auto colon = a.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  std::uint16_t port = 0;
  const auto p = a.substr(colon + 1);
  auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), port);
  if (ec != std::errc{} || end != p.data() + p.size() || port == 0) return std::nullopt;
  return std::pair{std::string(a.substr(0, colon)), port};
}

/// The host part of "host:port".
std::string host_of(std::string_view address) {
  auto hp = split_address(address);
  return hp ? hp->first : std::string{};
}

std::string address_of(std::string_view host, std::int64_t port) { return std::string(host) + ":" + std::to_string(port); }

/// A field of a RESP2 map (an array of names and values).
const redisReply* field(const redisReply* map, std::string_view name) noexcept {
  for (std::size_t i = 0; i + 1 < map->elements; i += 2)
    if (str(map->element[i]) == name) return map->element[i + 1];
  return nullptr;
}

bool known_host(std::string_view h) noexcept { return !h.empty() && h != "?"; }

/// Appends `first`..`last` to `out` when they are slots.
bool add_range(std::vector<slot_range>& out, std::optional<std::int64_t> first, std::optional<std::int64_t> last,
               std::string owner) {
  if (!first || !last || *first < 0 || *first > *last || *last >= static_cast<std::int64_t>(cluster_slots)) return false;
  out.push_back({static_cast<std::uint16_t>(*first), static_cast<std::uint16_t>(*last), std::move(owner)});
  return true;
}

// The host of a CLUSTER SHARDS node: its endpoint, else its ip, else the host that was asked.
std::string_view shard_node_host(const redisReply* node, std::string_view asked_host) {
  auto host = str(field(node, "endpoint"));
  if (!known_host(host)) host = str(field(node, "ip"));
  if (!known_host(host)) host = asked_host;
  return host;
}

// The "host:port" of a shard's primary, "" when it has none; nullopt when a node is malformed.
std::optional<std::string> shard_primary(const redisReply* nodes, std::string_view asked_host) {
  for (std::size_t n = 0; n < nodes->elements; ++n) {
    const auto* node = nodes->element[n];
    if (!is_array(node)) return std::nullopt;
    if (str(field(node, "role")) != "master") continue;
    auto port = to_int(field(node, "port"));
    if (!port) port = to_int(field(node, "tls-port"));
    if (!port) return std::nullopt;
    return address_of(shard_node_host(node, asked_host), *port);
  }
  return std::string();
}

// The pairs [first, last, first, last, ...] of a shard's "slots", all owned by `owner`.
bool add_ranges(std::vector<slot_range>& out, const redisReply* slots, const std::string& owner) {
  for (std::size_t i = 0; i < slots->elements; i += 2)
    if (!add_range(out, to_int(slots->element[i]), to_int(slots->element[i + 1]), owner)) return false;
  return true;
}

// CLUSTER SHARDS: [{slots: [a, b, ...], nodes: [{id, port, ip, endpoint, role, ...}, ...]}, ...]
bool parse_shards(const redisReply* r, std::string_view asked_host, std::vector<slot_range>& out) {
  for (std::size_t s = 0; s < r->elements; ++s) {
    const auto* shard = r->element[s];
    if (!is_array(shard)) return false;
    const auto* slots = field(shard, "slots");
    const auto* nodes = field(shard, "nodes");
    if (!is_array(slots) || !is_array(nodes) || slots->elements % 2 != 0) return false;
    const auto owner = shard_primary(nodes, asked_host);
    if (!owner) return false;
    if (owner->empty()) continue;  // no primary (failing over): its slots wait for a later map
    if (!add_ranges(out, slots, *owner)) return false;
  }
  return true;
}

// CLUSTER SLOTS: [[first, last, [host, port, id, ...], replicas...], ...]
bool parse_slots(const redisReply* r, std::string_view asked_host, std::vector<slot_range>& out) {
  for (std::size_t s = 0; s < r->elements; ++s) {
    const auto* e = r->element[s];
    if (!is_array(e) || e->elements < 3 || !is_array(e->element[2]) || e->element[2]->elements < 2) return false;
    auto host = str(e->element[2]->element[0]);
    if (!known_host(host)) host = asked_host;
    const auto port = to_int(e->element[2]->element[1]);
    if (!port) return false;
    if (!add_range(out, to_int(e->element[0]), to_int(e->element[1]), address_of(host, *port))) return false;
  }
  return true;
}

// The slot of a MOVED or ASK error, when `text` is one.
std::optional<std::uint16_t> redirect_slot(std::string_view text) {
  std::uint16_t slot = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), slot);
  if (ec != std::errc{} || end != text.data() + text.size() || slot >= cluster_slots) return std::nullopt;
  return slot;
}

// Why a CLUSTER SHARDS/SLOTS reply gave no map: no slot in it, or not parsed.
std::string map_problem(bool parsed, bool shards) {
  if (parsed) return "no slot is served";
  return std::string("malformed CLUSTER ") + (shards ? "SHARDS" : "SLOTS") + " reply";
}

std::error_code aborted() { return make_error_code(boost::asio::error::operation_aborted); }

}  // namespace

std::uint16_t key_slot(std::string_view key) noexcept {
  if (const auto open = key.find('{'); open != std::string_view::npos) {
    const auto close = key.find('}', open + 1);
    if (close != std::string_view::npos && close > open + 1) key = key.substr(open + 1, close - open - 1);
  }
  return static_cast<std::uint16_t>(crc16(key) % cluster_slots);
}

std::optional<std::string_view> routing_key(const std::vector<std::string>& args) noexcept {
  if (args.size() < 2 || iequals(args[0], "PUBLISH")) return std::nullopt;
  if (iequals(args[0], "XGROUP")) return args.size() > 2 ? std::optional<std::string_view>(args[2]) : std::nullopt;
  if (iequals(args[0], "XREADGROUP") || iequals(args[0], "XREAD")) {
    for (std::size_t i = 1; i + 1 < args.size(); ++i)
      if (iequals(args[i], "STREAMS")) return args[i + 1];
    return std::nullopt;
  }
  return args[1];
}

std::optional<std::vector<slot_range>> parse_slot_map(const redisReply* reply, bool shards, std::string_view asked_host) {
  if (!is_array(reply)) return std::nullopt;
  std::vector<slot_range> out;
  if (!(shards ? parse_shards(reply, asked_host, out) : parse_slots(reply, asked_host, out))) return std::nullopt;
  return out;
}

// ---- the client ----

struct cluster_client::node {
  std::string address;
  std::shared_ptr<node_link> link;
};

struct cluster_client::request {
  std::vector<std::string> args;  ///< The command, or the script's arguments.
  std::vector<std::string> keys;  ///< The script's keys.
  bool script = false;
  int slot = -1;  ///< -1: any primary.
  steady::time_point deadline;
  redis_callback cb;
  unsigned redirects = 0;
  std::string last_error;  ///< The `TRYAGAIN`/`CLUSTERDOWN` answer being retried.
};

std::shared_ptr<cluster_client> cluster_client::make(advanced::detail::strand_type strand, const redis_endpoint& ep,
                                                     node_link::state_fn on_state, options opts) {
  auto self = std::make_shared<cluster_client>(std::move(strand), ep, std::move(on_state), opts);
  self->start();
  return self;
}

cluster_client::cluster_client(advanced::detail::strand_type strand, const redis_endpoint& ep,
                               node_link::state_fn on_state, options opts)
    : strand_(std::move(strand)), ep_(ep), on_state_(std::move(on_state)), opts_(opts), refresh_timer_(strand_),
      retry_timer_(strand_) {}

cluster_client::~cluster_client() { close(); }

void cluster_client::start() {
  if (ep_.cluster.empty()) {
    tell_state("no Redis Cluster seed node");
    return;
  }
  refresh();
}

cluster_client::node* cluster_client::node_at(const std::string& address) {
  if (auto it = nodes_.find(address); it != nodes_.end()) return it->second.get();
  auto hp = split_address(address);
  if (!hp || hp->first.empty()) return nullptr;
  auto nep = ep_;
  nep.host = hp->first;
  nep.port = hp->second;
  nep.cluster.clear();
  auto n = std::make_unique<node>();
  n->address = address;
  std::weak_ptr<cluster_client> weak = weak_from_this();
  n->link = node_link::commands(strand_, nep, [weak, address](bool up, const std::string& why) {
    if (auto self = weak.lock()) self->on_link_state(address, up, why);
  });
  return nodes_.emplace(address, std::move(n)).first->second.get();
}

void cluster_client::command(std::vector<std::string> args, redis_callback cb, std::chrono::milliseconds timeout) {
  auto r = std::make_shared<request>();
  r->args = std::move(args);
  r->cb = std::move(cb);
  r->deadline = steady::now() + (timeout.count() > 0 ? timeout : ep_.command_timeout);
  if (auto key = routing_key(r->args)) r->slot = key_slot(*key);
  route(r);
}

void cluster_client::script(const std::vector<std::string>& keys, const std::vector<std::string>& args,
                            redis_callback cb) {
  auto r = std::make_shared<request>();
  r->script = true;
  r->keys = keys;
  r->args = args;
  r->cb = std::move(cb);
  r->deadline = steady::now() + ep_.command_timeout;
  if (!keys.empty()) r->slot = key_slot(keys.front());
  route(r);
}

bool cluster_client::ready() const noexcept {
  if (closed_ || primaries_.empty()) return false;
  return std::all_of(primaries_.begin(), primaries_.end(), [](const node* n) { return n->link->ready(); });
}

std::size_t cluster_client::pending() const noexcept {
  std::size_t n = waiting_.size();
  for (const auto& [address, nd] : nodes_) n += nd->link->pending();
  return n;
}

std::string cluster_client::owner_of(std::uint16_t slot) const {
  return slot < slots_.size() && slots_[slot] ? slots_[slot]->address : std::string{};
}

void cluster_client::close() {
  if (closed_) return;
  closed_ = true;
  ++refresh_gen_;
  refresh_timer_.cancel();
  retry_timer_.cancel();
  auto waiting = std::move(waiting_);
  auto nodes = std::move(nodes_);
  waiting_.clear();
  nodes_.clear();
  slots_.clear();
  primaries_.clear();
  // Closing a link fails its commands (operation_aborted) through `on_reply`.
  for (auto& [address, n] : nodes) n->link->close();
  for (auto& r : waiting) finish(r, aborted(), nullptr);
}

// ---- routing ----

void cluster_client::route(const request_ptr& r) {
  if (closed_) return finish(r, aborted(), nullptr);
  node* n = nullptr;
  if (!slots_.empty()) {
    if (r->slot >= 0) {
      n = slots_[static_cast<std::size_t>(r->slot)];
    } else if (!primaries_.empty()) {
      auto it = std::find_if(primaries_.begin(), primaries_.end(), [](const node* p) { return p->link->ready(); });
      n = it != primaries_.end() ? *it : primaries_.front();
    }
    if (!n) refresh_soon();  // a slot without owner: the map may be behind
  }
  if (!n) return park(r);
  send(*n, r, false);
}

void cluster_client::send(node& n, const request_ptr& r, bool asking) {
  const auto now = steady::now();
  if (r->deadline <= now) return expire(r);
  const auto left = std::max(std::chrono::ceil<std::chrono::milliseconds>(r->deadline - now), std::chrono::milliseconds(1));
  auto done = [self = shared_from_this(), r, from = n.address](std::error_code ec, const redisReply* reply) {
    self->on_reply(r, from, ec, reply);
  };
  // ASKING holds for the next command on the connection: the two go out back to back.
  if (asking) n.link->command({"ASKING"}, [](std::error_code, const redisReply*) {}, left);
  if (r->script) {
    n.link->script(r->keys, r->args, std::move(done));
  } else {
    n.link->command(r->args, std::move(done), left);
  }
}

void cluster_client::on_reply(const request_ptr& r, const std::string& from, std::error_code ec,
                              const redisReply* reply) {
  if (!ec && !closed_ && is_error(reply)) {
    const auto e = str(reply);
    if (e.starts_with("MOVED ") || e.starts_with("ASK ")) {
      if (redirect(r, from, e)) return;
    } else if (e.starts_with("TRYAGAIN") || e.starts_with("CLUSTERDOWN")) {
      if (steady::now() + opts_.retry_delay < r->deadline) {
        r->last_error = std::string(e);
        ++stats_.retried;
        return park(r);
      }
    }
  }
  finish(r, ec, reply);
}

// "MOVED <slot> <host>:<port>" or "ASK <slot> <host>:<port>"; false: not followed.
bool cluster_client::redirect(const request_ptr& r, const std::string& from, std::string_view e) {
  if (r->redirects >= opts_.max_redirects) return false;
  const bool moved = e.starts_with("MOVED ");
  e.remove_prefix(moved ? 6 : 4);
  const auto space = e.find(' ');
  if (space == std::string_view::npos) return false;
  const auto slot = redirect_slot(e.substr(0, space));
  if (!slot) return false;
  auto hp = split_address(e.substr(space + 1));
  if (!hp) return false;
  if (!known_host(hp->first)) hp->first = host_of(from);
  node* n = node_at(address_of(hp->first, hp->second));
  if (!n) return false;
  ++r->redirects;
  if (moved) note_moved(*slot, n);
  else ++stats_.asked;
  send(*n, r, !moved);
  return true;
}

// MOVED: the slot is n's now (when there is a map to correct); a new map is asked for soon.
void cluster_client::note_moved(std::uint16_t slot, node* n) {
  ++stats_.moved;
  if (!slots_.empty()) {
    slots_[slot] = n;
    if (std::find(primaries_.begin(), primaries_.end(), n) == primaries_.end()) primaries_.push_back(n);
  }
  refresh_soon();
}

void cluster_client::park(const request_ptr& r) {
  if (waiting_.size() >= opts_.max_waiting) return finish(r, make_error_code(errc::queue_full), nullptr);
  waiting_.push_back(r);
  if (retry_armed_) return;
  retry_armed_ = true;
  retry_timer_.expires_after(opts_.retry_delay);
  retry_timer_.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
    if (auto self = weak.lock(); self && !ec) self->on_retry_timer();
  });
}

// Every `retry_delay` while commands wait: retries, and deadlines.
void cluster_client::on_retry_timer() {
  retry_armed_ = false;
  if (closed_) return;
  auto waiting = std::move(waiting_);
  waiting_.clear();
  for (auto& r : waiting) route(r);  // past its deadline, `send` expires it; without a route, parked again
}

void cluster_client::fail_waiting(std::error_code ec) {
  auto waiting = std::move(waiting_);
  waiting_.clear();
  for (auto& r : waiting) finish(r, ec, nullptr);
}

// The deadline passed: the last transient refusal is the answer, else the cluster was unreachable.
void cluster_client::expire(const request_ptr& r) {
  if (r->last_error.empty()) return finish(r, make_error_code(errc::store_unavailable), nullptr);
  redisReply reply{};
  reply.type = REDIS_REPLY_ERROR;
  reply.str = r->last_error.data();
  reply.len = r->last_error.size();
  finish(r, {}, &reply);
}

void cluster_client::finish(const request_ptr& r, std::error_code ec, const redisReply* reply) {
  auto cb = std::move(r->cb);
  r->cb = nullptr;
  if (cb) cb(ec, reply);
}

// ---- the slot map ----

void cluster_client::refresh_soon() {
  if (closed_) return;
  if (refreshing_) {
    refresh_again_ = true;
    return;
  }
  const auto since = steady::now() - last_refresh_;
  if (since >= opts_.min_refresh_gap) return refresh();
  schedule_refresh(std::chrono::ceil<std::chrono::milliseconds>(opts_.min_refresh_gap - since));
}

void cluster_client::schedule_refresh(std::chrono::milliseconds delay) {
  const auto gen = ++refresh_gen_;
  refresh_timer_.expires_after(delay);
  refresh_timer_.async_wait([weak = weak_from_this(), gen](boost::system::error_code ec) {
    auto self = weak.lock();
    if (self && !ec && gen == self->refresh_gen_) self->refresh();
  });
}

// Asks the primaries of the map, then the seeds, until one answers with a map.
void cluster_client::refresh() {
  if (closed_) return;
  if (refreshing_) {
    refresh_again_ = true;
    return;
  }
  refreshing_ = true;
  refresh_again_ = false;
  last_refresh_ = steady::now();
  std::vector<std::string> ready, others;
  auto add = [&](const std::string& a) {
    if (std::find(ready.begin(), ready.end(), a) != ready.end() || std::find(others.begin(), others.end(), a) != others.end()) return;
    auto it = nodes_.find(a);
    (it != nodes_.end() && it->second->link->ready() ? ready : others).push_back(a);
  };
  for (const auto* p : primaries_) add(p->address);
  for (const auto& [host, port] : ep_.cluster) add(address_of(host, port));
  // Rotate, so one node that answers badly does not answer every time.
  const auto turn = next_candidate_++;
  if (!ready.empty()) std::rotate(ready.begin(), ready.begin() + static_cast<std::ptrdiff_t>(turn % ready.size()), ready.end());
  ready.insert(ready.end(), others.begin(), others.end());
  ask_map(std::make_shared<const std::vector<std::string>>(std::move(ready)), 0, true, {});
}

void cluster_client::ask_map(std::shared_ptr<const std::vector<std::string>> candidates, std::size_t i, bool shards,
                             std::string why) {
  if (closed_) return;
  if (i >= candidates->size()) {
    refreshing_ = false;
    return map_failed(why.empty() ? "no Redis Cluster node to ask for the slot map" : why);
  }
  const auto& address = (*candidates)[i];
  node* n = node_at(address);
  if (!n) return ask_map(candidates, i + 1, true, address + ": not a host:port address");
  auto done = [self = shared_from_this(), candidates, i, shards](std::error_code ec, const redisReply* r) {
    if (!self->closed_) self->on_map_reply(candidates, i, shards, ec, r);
  };
  n->link->command({"CLUSTER", shards ? "SHARDS" : "SLOTS"}, std::move(done), ep_.connect_timeout + ep_.command_timeout);
}

// Candidate i's answer to CLUSTER SHARDS (or SLOTS): the map applied, or the next question asked.
void cluster_client::on_map_reply(const std::shared_ptr<const std::vector<std::string>>& candidates, std::size_t i,
                                  bool shards, std::error_code ec, const redisReply* r) {
  const auto& from = (*candidates)[i];
  if (ec) return ask_map(candidates, i + 1, true, from + ": " + ec.message());
  if (is_error(r)) {
    // Before Redis 7.0 there is no CLUSTER SHARDS: ask the same node for CLUSTER SLOTS.
    const auto e = str(r);
    if (shards && e.find("ubcommand") != std::string_view::npos) return ask_map(candidates, i, false, {});
    return ask_map(candidates, i + 1, true, from + ": " + std::string(e));
  }
  auto map = parse_slot_map(r, shards, host_of(from));
  if (!map || map->empty()) return ask_map(candidates, i + 1, true, from + ": " + map_problem(map.has_value(), shards));
  refreshing_ = false;
  apply_map(*map);
  if (refresh_again_) refresh_soon();
}

void cluster_client::map_failed(const std::string& why) {
  ++map_failures_;
  tell_state(why);
  if (!slots_.empty()) return schedule_refresh(opts_.refresh_interval);
  // No map at all: waiting commands fail now, as a single link's do when Redis is away.
  fail_waiting(make_error_code(errc::store_unavailable));
  auto delay = std::max(ep_.reconnect_initial, opts_.min_refresh_gap);
  for (unsigned k = 1; k < map_failures_ && delay < ep_.reconnect_max; ++k) delay *= 2;
  schedule_refresh(std::min(delay, std::max(ep_.reconnect_max, opts_.min_refresh_gap)));
}

void cluster_client::apply_map(const std::vector<slot_range>& ranges) {
  ++stats_.refreshes;
  map_failures_ = 0;
  std::vector<node*> slots(cluster_slots, nullptr);
  std::vector<node*> primaries;
  for (const auto& range : ranges) {
    node* n = node_at(range.owner);
    if (!n) continue;
    std::fill(slots.begin() + range.first, slots.begin() + range.last + 1, n);
    if (std::find(primaries.begin(), primaries.end(), n) == primaries.end()) primaries.push_back(n);
  }
  slots_ = std::move(slots);
  primaries_ = std::move(primaries);
  // Links nobody routes to any more (seeds under another name, former primaries) close when idle.
  for (auto it = nodes_.begin(); it != nodes_.end();) {
    auto* n = it->second.get();
    if (std::find(primaries_.begin(), primaries_.end(), n) == primaries_.end() && n->link->pending() == 0) {
      n->link->close();
      it = nodes_.erase(it);
    } else {
      ++it;
    }
  }
  schedule_refresh(opts_.refresh_interval);
  tell_state({});
  auto waiting = std::move(waiting_);
  waiting_.clear();
  for (auto& r : waiting) route(r);
}

void cluster_client::on_link_state(const std::string& address, bool up, const std::string& why) {
  if (closed_) return;
  if (!up) refresh_soon();  // the node may have failed over
  tell_state(up ? std::string{} : address + ": " + why);
}

// Tells `on_state_` when readiness changed, or a new reason why it is down.
void cluster_client::tell_state(const std::string& why) {
  if (!on_state_ || closed_) return;
  const bool up = ready();
  if (!up && why.empty()) return;  // links still connecting: nothing to say yet
  if (told_once_ && up == told_ && (up || why == told_why_)) return;
  told_once_ = true;
  told_ = up;
  told_why_ = up ? std::string{} : why;
  on_state_(up, told_why_);
}

}  // namespace xsn::inline v0::distributed
