#include "fenced_store.hpp"

#include <boost/asio/post.hpp>

namespace xsn::inline v0::distributed {

namespace {
constexpr std::size_t script_batch = 256;  // records per script call

void fail_all(std::vector<batch_result>& out, std::error_code ec) {
  for (auto& x : out) x.ec = ec;
}

// Each entry's answer to the write script, {"ok", version} or {<conflict>, version}, into `out`.
void read_write_results(const redisReply* r, std::vector<batch_result>& out) {
  for (std::size_t i = 0; i < out.size(); ++i) {
    const auto* e = r->element[i];
    const bool pair = is_array(e) && e->elements == 2;
    out[i].version = pair ? static_cast<store_version>(to_int(e->element[1]).value_or(0)) : 0;
    if (!pair || str(e->element[0]) != "ok") out[i].ec = errc::version_conflict;
  }
}
}  // namespace

fenced_store::fenced_store(boost::asio::any_io_executor ex, std::shared_ptr<redis_client> link, keyspace ks,
                           unsigned partition, std::string fence, std::function<void()> on_fenced)
    : state_store(std::move(ex)), link_(std::move(link)), ks_(std::move(ks)), partition_(partition),
      fence_(std::move(fence)), prefix_(ks_.machine_prefix(partition)), on_fenced_(std::move(on_fenced)) {}

std::error_code fenced_store::error_of(std::error_code ec, const redisReply* r) {
  if (!ec && !is_error(r)) return {};
  if (!ec && str(r).starts_with("FENCED")) {
    fenced_.fetch_add(1, std::memory_order_relaxed);
    if (on_fenced_) on_fenced_();
    return errc::fenced;
  }
  errors_.fetch_add(1, std::memory_order_relaxed);
  if (ec == std::errc::timed_out) return ec;
  return errc::store_unavailable;
}

void fenced_store::do_get(std::string key, get_handler handler) {
  link_->command({"HMGET", std::move(key), "v", "ver"},
                 [self = shared_from_this(), h = std::make_shared<get_handler>(std::move(handler))](
                     std::error_code ec, const redisReply* r) mutable {
                   if (auto e = self->error_of(ec, r)) return self->complete(std::move(*h), e, std::optional<stored_value>{});
                   if (!is_array(r) || r->elements != 2 || r->element[0]->type != REDIS_REPLY_STRING)
                     return self->complete(std::move(*h), std::error_code{}, std::optional<stored_value>{});
                   stored_value v;
                   v.value = std::string(str(r->element[0]));
                   v.version = static_cast<store_version>(to_int(r->element[1]).value_or(0));
                   self->complete(std::move(*h), std::error_code{}, std::optional<stored_value>(std::move(v)));
                 });
}

void fenced_store::write(std::vector<record_write> entries, std::function<void(std::error_code, std::vector<batch_result>)> done) {
  std::vector<std::string> keys{ks_.lease(partition_), ks_.version(partition_), ks_.ids(partition_)};
  std::vector<std::string> args{"write", fence_, std::to_string(entries.size())};
  keys.reserve(3 + entries.size());
  args.reserve(3 + 4 * entries.size());
  for (auto& e : entries) {
    if (e.key.size() <= prefix_.size() || e.key.compare(0, prefix_.size(), prefix_) != 0) {
      return boost::asio::post(get_executor(), [done = std::move(done), n = entries.size()] {
        done(errc::invalid_argument, std::vector<batch_result>(n, batch_result{errc::invalid_argument, 0}));
      });
    }
    args.push_back(e.key.substr(prefix_.size()));
    args.push_back(std::string(1, e.kind));
    args.push_back(std::to_string(e.expected));
    args.push_back(std::move(e.value));
    keys.push_back(std::move(e.key));
  }
  const auto n = entries.size();
  link_->script(keys, args, [self = shared_from_this(), n, done = std::move(done)](std::error_code ec, const redisReply* r) {
    std::vector<batch_result> out(n);
    if (auto e = self->error_of(ec, r)) {
      fail_all(out, e);
      return done(e, std::move(out));
    }
    if (!is_array(r) || r->elements != n) {
      self->errors_.fetch_add(1, std::memory_order_relaxed);
      fail_all(out, errc::store_unavailable);
      return done(errc::store_unavailable, std::move(out));
    }
    read_write_results(r, out);
    done({}, std::move(out));
  });
}

void fenced_store::write_one(record_write e, write_handler handler) {
  std::vector<record_write> one;
  one.push_back(std::move(e));
  write(std::move(one), [self = shared_from_this(), h = std::make_shared<write_handler>(std::move(handler))](
                            std::error_code ec, std::vector<batch_result> r) mutable {
    if (ec) return self->complete(std::move(*h), ec, store_version{0});
    self->complete(std::move(*h), r[0].ec, r[0].version);
  });
}

void fenced_store::do_put(std::string key, std::string value, put_options, write_handler handler) {
  write_one(record_write{std::move(key), 'p', 0, std::move(value)}, std::move(handler));
}

void fenced_store::do_compare_and_set(std::string key, store_version expected, std::string value, put_options,
                                      write_handler handler) {
  write_one(record_write{std::move(key), 'c', expected, std::move(value)}, std::move(handler));
}

void fenced_store::do_erase(std::string key, std::optional<store_version> expected, write_handler handler) {
  write_one(record_write{std::move(key), expected ? 'x' : 'e', expected.value_or(0), {}}, std::move(handler));
}

void fenced_store::do_write_batch(std::vector<batch_write> writes, batch_handler handler) {
  struct state {
    // Constructed, never assigned: Boost 1.81's any_completion_handler move assignment recurses.
    explicit state(batch_handler handler) : h(std::move(handler)) {}
    batch_handler h;
    std::vector<batch_result> results;
    std::size_t left = 0;
  };
  auto st = std::make_shared<state>(std::move(handler));
  st->results.resize(writes.size());
  st->left = (writes.size() + script_batch - 1) / script_batch;
  for (std::size_t begin = 0; begin < writes.size(); begin += script_batch) {
    std::vector<record_write> part;
    for (std::size_t i = begin; i < writes.size() && i < begin + script_batch; ++i) {
      auto& w = writes[i];
      part.push_back(record_write{std::move(w.key), w.expected ? 'c' : 'p', w.expected.value_or(0), std::move(w.value)});
    }
    write(std::move(part), [self = shared_from_this(), st, begin](std::error_code, std::vector<batch_result> r) {
      for (std::size_t i = 0; i < r.size(); ++i) st->results[begin + i] = r[i];
      if (--st->left == 0) self->complete(std::move(st->h), std::error_code{}, std::move(st->results));
    });
  }
}

void fenced_store::do_list(std::string prefix, list_options opts, list_handler handler) {
  auto h = std::make_shared<list_handler>(std::move(handler));
  if (prefix != prefix_) {  // only the partition's own machines are listed
    return complete(std::move(*h), std::error_code(errc::invalid_argument), std::vector<state_store::entry>{});
  }
  std::string after;
  if (opts.start_after.size() > prefix_.size() && opts.start_after.compare(0, prefix_.size(), prefix_) == 0)
    after = opts.start_after.substr(prefix_.size());
  link_->script({ks_.ids(partition_)}, {"list", after, std::to_string(opts.limit), prefix_},
                [self = shared_from_this(), h](std::error_code ec, const redisReply* r) mutable {
                  std::vector<state_store::entry> out;
                  if (auto e = self->error_of(ec, r)) return self->complete(std::move(*h), e, std::move(out));
                  if (!is_array(r) || r->elements % 3 != 0)
                    return self->complete(std::move(*h), std::error_code(errc::store_unavailable), std::move(out));
                  for (std::size_t i = 0; i + 2 < r->elements; i += 3) {
                    stored_value v;
                    v.value = std::string(str(r->element[i + 1]));
                    v.version = static_cast<store_version>(to_int(r->element[i + 2]).value_or(0));
                    out.emplace_back(self->prefix_ + std::string(str(r->element[i])), std::move(v));
                  }
                  self->complete(std::move(*h), std::error_code{}, std::move(out));
                });
}

watch_handle fenced_store::do_watch(std::string, watch_callback) { return {}; }

store_health fenced_store::do_health() const {
  store_health h;
  h.reachable = link_->ready();
  return h;
}

}  // namespace xsn::inline v0::distributed
