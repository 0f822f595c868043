#include <xsn/testing.hpp>

#include <stdexcept>
#include <string>
#include <utility>

namespace xsn::inline v0::testing {

driver::driver() : own_(std::make_unique<boost::asio::io_context>()), io_(own_.get()) {}

driver::driver(boost::asio::io_context& io) : io_(&io) {}

driver::~driver() = default;

std::size_t driver::settle() {
  // A poll that found nothing stops the io_context; without restart() the next poll runs nothing.
  io_->restart();
  std::size_t ran = 0;
  while (io_->poll_one() != 0) {
    if (++ran > max_handlers)
      throw std::runtime_error("xsn::testing::driver::settle: still busy after " + std::to_string(max_handlers) +
                               " handlers (work that re-posts itself forever?)");
  }
  return ran;
}

std::size_t driver::advance(xsn::clock::duration d) {
  settle();
  const auto target = clock_.now() + d;
  std::size_t fired = 0;
  while (clock_.fire_next(target)) {
    ++fired;
    settle();
  }
  clock_.advance_to(target);
  return fired;
}

bool driver::run_until(const std::function<bool()>& pred, xsn::clock::duration within) {
  settle();
  const auto target = clock_.now() + within;
  while (!pred()) {
    if (!clock_.fire_next(target)) {
      clock_.advance_to(target);
      return pred();
    }
    settle();
  }
  return true;
}

std::unique_ptr<session> driver::make_session(std::shared_ptr<const statechart> chart, session_options opts) {
  return std::make_unique<session>(std::move(chart), io_->get_executor(), clock_, std::move(opts));
}

result<std::unique_ptr<session>> driver::make_session(std::shared_ptr<const statechart> chart, const implementations& impl,
                                                      session_options opts) {
  auto bound = xsn::bind(*chart, impl);
  if (!bound) return bound.error();
  opts.make_datamodel = xstate_datamodel(*bound);
  return make_session(std::move(chart), std::move(opts));
}

std::error_code driver::start(session& s) {
  auto ec = s.start();
  settle();
  return ec;
}

std::error_code driver::send(session& s, event ev) {
  auto ec = s.send(std::move(ev));
  if (!ec) settle();
  return ec;
}

}  // namespace xsn::inline v0::testing
