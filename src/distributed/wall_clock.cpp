#include "wall_clock.hpp"

#include <chrono>

namespace xsn::inline v0::distributed {

clock::time_point wall_clock::now() const {
  return time_point(std::chrono::duration_cast<duration>(std::chrono::system_clock::now().time_since_epoch()));
}

clock::timer_id wall_clock::schedule(time_point due, callback fn) {
  // The steady timer fires after the wall time left (a wall clock step moves no armed timer).
  return timers_.schedule(timers_.now() + (due - now()), std::move(fn));
}

}  // namespace xsn::inline v0::distributed
