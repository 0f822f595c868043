#include <xsn/core/clock.hpp>

namespace xsn::inline v0 {

clock::~clock() = default;

clock::timer_id manual_clock::schedule(time_point due, callback fn) {
  auto id = next_id_++;
  timers_.emplace(std::pair{due, id}, std::move(fn));
  due_of_.emplace(id, due);
  return id;
}

bool manual_clock::cancel(timer_id id) {
  auto it = due_of_.find(id);
  if (it == due_of_.end()) return false;
  timers_.erase(std::pair{it->second, id});
  due_of_.erase(it);
  return true;
}

std::optional<clock::time_point> manual_clock::next_due() const {
  if (timers_.empty()) return std::nullopt;
  return timers_.begin()->first.first;
}

bool manual_clock::fire_next(time_point limit) {
  if (timers_.empty() || timers_.begin()->first.first > limit) return false;
  auto node = timers_.extract(timers_.begin());
  due_of_.erase(node.key().second);
  if (node.key().first > now_) now_ = node.key().first;
  node.mapped()();
  return true;
}

void manual_clock::advance_to(time_point t) {
  while (fire_next(t)) {
  }
  if (t > now_) now_ = t;
}

}  // namespace xsn::inline v0
