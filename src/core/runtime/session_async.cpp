// `session::async_send`: waiters completed when the macrostep of their event has run.
#include "session_impl.hpp"

#include <boost/asio/append.hpp>
#include <boost/asio/post.hpp>

#include <algorithm>

namespace xsn::inline v0::detail {

void post_completion(const boost::asio::any_io_executor& ex, macrostep_handler h, std::error_code ec,
                     std::vector<std::string> states) {
  // post() runs the handler through its associated executor (ex by default), never inline.
  boost::asio::post(ex, boost::asio::append(std::move(h), ec, std::move(states)));
}

void macrostep_waiters::add(std::size_t queued, macrostep_handler h) {
  waiting_.push_back({popped_ + queued, std::move(h)});
}

void macrostep_waiters::complete_processed(const boost::asio::any_io_executor& ex,
                                           const std::function<std::vector<std::string>()>& states) {
  if (waiting_.empty() || waiting_.front().seq > popped_) return;
  auto now = states();
  while (!waiting_.empty() && waiting_.front().seq <= popped_) {
    post_completion(ex, std::move(waiting_.front().handler), {}, now);
    waiting_.pop_front();
  }
}

void macrostep_waiters::fail_queued(const boost::asio::any_io_executor& ex, std::error_code ec) {
  auto first = std::find_if(waiting_.begin(), waiting_.end(), [&](const waiter& w) { return w.seq > popped_; });
  for (auto it = first; it != waiting_.end(); ++it) post_completion(ex, std::move(it->handler), ec);
  waiting_.erase(first, waiting_.end());  // erasing at the end only destroys: no move-assignment
}

void macrostep_waiters::fail_all(const boost::asio::any_io_executor& ex, std::error_code ec) {
  while (!waiting_.empty()) {
    post_completion(ex, std::move(waiting_.front().handler), ec);
    waiting_.pop_front();
  }
}

void macrostep_waiters::removed(const boost::asio::any_io_executor& ex, const std::vector<std::size_t>& positions) {
  if (positions.empty()) return;
  std::deque<waiter> kept;
  for (auto& w : waiting_) {
    const auto pos = static_cast<std::size_t>(w.seq - popped_ - 1);
    auto before = std::lower_bound(positions.begin(), positions.end(), pos);
    if (before != positions.end() && *before == pos) {
      post_completion(ex, std::move(w.handler), std::make_error_code(std::errc::operation_canceled));
      continue;
    }
    w.seq -= static_cast<std::uint64_t>(before - positions.begin());
    kept.push_back(std::move(w));
  }
  waiting_.swap(kept);
}

}  // namespace xsn::inline v0::detail

namespace xsn::inline v0 {

void session::impl::async_send(event ev, detail::macrostep_handler h) {
  if (!mode_.running) return detail::post_completion(ex_, std::move(h), errc::not_running);
  if (!enqueue_external(std::move(ev))) return detail::post_completion(ex_, std::move(h), errc::queue_full);
  ext().waiters.add(external_.size(), std::move(h));
}

}  // namespace xsn::inline v0
