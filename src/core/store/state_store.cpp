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

void state_store::start_batch(std::vector<batch_write> writes, batch_handler handler) {
  if (closed()) {
    return complete(std::move(handler), make_error_code(errc::store_closed), std::vector<batch_result>{});
  }
  if (writes.size() > max_batch_size) {
    return complete(std::move(handler), make_error_code(errc::invalid_argument),
                    std::vector<batch_result>{});
  }
  const auto bad = std::count_if(writes.begin(), writes.end(),
                                 [](const batch_write& w) { return !valid(w); });
  if (writes.empty() || bad == 0) {
    if (writes.empty()) return complete(std::move(handler), std::error_code{}, std::vector<batch_result>{});
    return do_write_batch(std::move(writes), std::move(handler));
  }
  // Some entries are invalid: they fail here, the others go to the hook, and its results are
  // put back in place.
  std::vector<batch_result> results(writes.size());
  std::vector<batch_write> good;
  std::vector<std::size_t> where;
  good.reserve(writes.size() - static_cast<std::size_t>(bad));
  where.reserve(good.capacity());
  for (std::size_t i = 0; i < writes.size(); ++i) {
    if (valid(writes[i])) {
      good.push_back(std::move(writes[i]));
      where.push_back(i);
    } else {
      results[i].ec = make_error_code(errc::invalid_argument);
    }
  }
  if (good.empty()) return complete(std::move(handler), std::error_code{}, std::move(results));
  // The merge runs where the caller's handler runs, and calls it there directly.
  auto ex = boost::asio::get_associated_executor(handler, executor_);
  do_write_batch(
      std::move(good),
      boost::asio::bind_executor(
          std::move(ex), [h = std::move(handler), results = std::move(results),
                          where = std::move(where)](std::error_code ec,
                                                    std::vector<batch_result> got) mutable {
            if (ec || got.size() != where.size()) {
              return std::move(h)(ec ? ec : make_error_code(errc::invalid_argument),
                                  std::vector<batch_result>{});
            }
            for (std::size_t i = 0; i < where.size(); ++i) results[where[i]] = got[i];
            std::move(h)(std::error_code{}, std::move(results));
          }));
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
