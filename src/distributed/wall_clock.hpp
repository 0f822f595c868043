#pragma once
// Part of xsn_distributed (private): the clock every node shares. `now()` is the wall time
// (system_clock, nanoseconds since 1970) on the `xsn::clock` time base, so a delayed event's
// due time in a snapshot means the same instant on every node; timers run on Asio.
#include <xsn/core/asio_clock.hpp>
#include <xsn/core/clock.hpp>

namespace xsn::inline v0::distributed {

class wall_clock final : public clock {
 public:
  explicit wall_clock(boost::asio::any_io_executor ex) : timers_(std::move(ex)) {}
  time_point now() const override;
  timer_id schedule(time_point due, callback fn) override;
  bool cancel(timer_id id) override { return timers_.cancel(id); }

 private:
  asio_clock timers_;
};

}  // namespace xsn::inline v0::distributed
