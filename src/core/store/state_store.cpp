#include <xsn/store/state_store.hpp>

#include <boost/asio/append.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/post.hpp>

#include <algorithm>
#include <atomic>
#include <memory>
#include <system_error>

namespace xsn::inline v0 {

watch_handle::subscription::~subscription() = default;

state_store::~state_store() = default;

watch_handle state_store::watch(std::string prefix, watch_callback fn) {
  if (prefix.size() > max_key_size || !fn) {
    throw std::system_error(make_error_code(errc::invalid_argument), "state_store::watch");
  }
  if (closed()) throw std::system_error(make_error_code(errc::store_closed), "state_store::watch");
  return do_watch(std::move(prefix), std::move(fn));
}

void state_store::do_close(close_handler handler) { complete(std::move(handler), std::error_code{}); }

std::string state_store::do_error_message(std::error_code ec) const { return ec.message(); }

void state_store::fail(get_handler handler, errc e) const {
  complete(std::move(handler), make_error_code(e), std::optional<stored_value>{});
}

void state_store::fail(write_handler handler, errc e) const {
  complete(std::move(handler), make_error_code(e), store_version{0});
}

void state_store::fail(list_handler handler, errc e) const {
  complete(std::move(handler), make_error_code(e), std::vector<entry>{});
}

namespace {

// A batch with some invalid entries: those fail in `results`, the valid ones move to `good`,
// `where` holds each one's place in the batch.
struct split_batch {
  std::vector<batch_result> results;
  std::vector<batch_write> good;
  std::vector<std::size_t> where;
};

// Puts the hook's results for the valid entries back in place, then calls the caller's handler.
template <class Handler>
struct merge_into_place {
  Handler h;
  std::vector<batch_result> results;
  std::vector<std::size_t> where;

  void operator()(std::error_code ec, std::vector<batch_result> got) {
    if (ec || got.size() != where.size()) {
      return std::move(h)(ec ? ec : make_error_code(errc::invalid_argument), std::vector<batch_result>{});
    }
    for (std::size_t i = 0; i < where.size(); ++i) results[where[i]] = got[i];
    std::move(h)(std::error_code{}, std::move(results));
  }
};

// Splits `writes` (with `bad` invalid entries) into the failed ones and the ones to write.
split_batch split_invalid(std::vector<batch_write>& writes, std::size_t bad,
                                 bool (*is_valid)(const batch_write&)) {
  split_batch out;
  out.results.resize(writes.size());
  out.good.reserve(writes.size() - bad);
  out.where.reserve(out.good.capacity());
  for (std::size_t i = 0; i < writes.size(); ++i) {
    if (!is_valid(writes[i])) {
      out.results[i].ec = make_error_code(errc::invalid_argument);
      continue;
    }
    out.good.push_back(std::move(writes[i]));
    out.where.push_back(i);
  }
  return out;
}

}  // namespace

void state_store::start_batch(std::vector<batch_write> writes, batch_handler handler) {
  if (closed()) {
    return complete(std::move(handler), make_error_code(errc::store_closed), std::vector<batch_result>{});
  }
  if (writes.size() > max_batch_size) {
    return complete(std::move(handler), make_error_code(errc::invalid_argument),
                    std::vector<batch_result>{});
  }
  if (writes.empty()) return complete(std::move(handler), std::error_code{}, std::vector<batch_result>{});
  const auto bad = std::count_if(writes.begin(), writes.end(),
                                 [](const batch_write& w) { return !valid(w); });
  if (bad == 0) return do_write_batch(std::move(writes), std::move(handler));
  // Some entries are invalid: they fail here, the others go to the hook, and its results are
  // put back in place.
  auto split = split_invalid(writes, static_cast<std::size_t>(bad), [](const batch_write& w) { return valid(w); });
  if (split.good.empty()) return complete(std::move(handler), std::error_code{}, std::move(split.results));
  // The merge runs where the caller's handler runs, and calls it there directly.
  auto ex = boost::asio::get_associated_executor(handler, executor_);
  do_write_batch(std::move(split.good),
                 boost::asio::bind_executor(std::move(ex), merge_into_place<batch_handler>{std::move(handler), std::move(split.results),
                                                                            std::move(split.where)}));
}

void state_store::do_write_batch(std::vector<batch_write> writes, batch_handler handler) {
  struct shared_state {
    shared_state(batch_handler h, std::size_t n, executor_type e)
        : handler(std::move(h)), results(n), left(n), ex(std::move(e)) {}
    batch_handler handler;
    std::vector<batch_result> results;
    std::atomic<std::size_t> left;
    executor_type ex;
  };
  auto st = std::make_shared<shared_state>(std::move(handler), writes.size(), executor_);
  for (std::size_t i = 0; i < writes.size(); ++i) {
    auto& w = writes[i];
    // Each entry's handler runs on the store's executor (it has none of its own), possibly on
    // several threads at once: each fills its own slot, and the last one completes the batch.
    write_handler h([st, i](std::error_code ec, store_version v) {
      st->results[i] = batch_result{ec, v};
      if (st->left.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
      boost::asio::post(st->ex, boost::asio::append(std::move(st->handler), std::error_code{},
                                                    std::move(st->results)));
    });
    if (w.expected) {
      do_compare_and_set(std::move(w.key), *w.expected, std::move(w.value), w.opts, std::move(h));
    } else {
      do_put(std::move(w.key), std::move(w.value), w.opts, std::move(h));
    }
  }
}

}  // namespace xsn::inline v0
