#pragma once
/// \file Internal: how state stores deliver watch callbacks (shared by the memory and Redis stores).
#include <xsn/store/state_store.hpp>

#include <boost/asio/post.hpp>

#include <algorithm>
#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace xsn::inline v0::detail {

/// One watch. `active` is guarded by `delivery_hub::mutex`.
struct watch_record {
  std::string prefix;  ///< Keys it reports.
  watch_callback fn;   ///< The user's callback.
  bool active = true;  ///< False once the watch ended.
};

/// Serialises watch callbacks against the end of a watch: a callback runs holding `mutex`, and
/// ending a watch takes it (unless the ending thread is the one running a callback), so once a
/// watch has ended its callback is neither running nor able to start. Shared by the store, its
/// watch handles and the queued notifications, so each may outlive the others.
struct delivery_hub {
  std::mutex mutex;                        ///< Held while a callback runs.
  std::atomic<std::thread::id> running{};  ///< Thread inside a callback, if any.
};

/// True when `key` starts with `prefix`.
inline bool key_has_prefix(const std::string& key, const std::string& prefix) noexcept {
  return key.size() >= prefix.size() && key.compare(0, prefix.size(), prefix) == 0;
}

/// Marks `rec` ended, waiting for a callback that runs on another thread to return.
inline void end_watch(delivery_hub& hub, watch_record& rec) noexcept {
  if (hub.running.load(std::memory_order_acquire) == std::this_thread::get_id()) {
    rec.active = false;  // Inside a callback of this store: this thread holds the mutex.
    return;
  }
  std::lock_guard lock(hub.mutex);
  rec.active = false;
}

/// Posts `ev` to `rec`'s callback on `ex`; it runs unless the watch ended first.
template <class Executor>
void post_watch_event(const Executor& ex, std::shared_ptr<delivery_hub> hub, std::shared_ptr<watch_record> rec,
                      watch_event ev) {
  boost::asio::post(ex, [hub = std::move(hub), rec = std::move(rec), ev = std::move(ev)] {
    std::lock_guard lock(hub->mutex);
    if (!rec->active) return;
    hub->running.store(std::this_thread::get_id(), std::memory_order_release);
    struct clear_running {
      delivery_hub& h;
      ~clear_running() { h.running.store(std::thread::id{}, std::memory_order_release); }
    } guard{*hub};
    rec->fn(ev);  // `rec` keeps `fn` alive even if the callback ends its own watch.
  });
}

/// A store's watch as held by a `watch_handle`: cancelling removes `rec` from the store's
/// `watches` (under its `mutex`) if the store still exists, then ends the watch.
template <class Store>
class store_watch final : public watch_handle::subscription {
 public:
  /// A watch of `store` delivering through `hub`.
  store_watch(const std::shared_ptr<Store>& store, std::shared_ptr<delivery_hub> hub, std::shared_ptr<watch_record> rec)
      : store_(store), hub_(std::move(hub)), rec_(std::move(rec)) {}

  void cancel() noexcept override {
    if (!rec_) return;
    if (auto s = store_.lock()) {
      std::lock_guard lock(s->mutex);
      std::erase_if(s->watches, [r = rec_.get()](const auto& w) { return w.get() == r; });
    }
    end_watch(*hub_, *rec_);
    rec_.reset();
  }

 private:
  std::weak_ptr<Store> store_;
  std::shared_ptr<delivery_hub> hub_;
  std::shared_ptr<watch_record> rec_;
};

}  // namespace xsn::inline v0::detail
