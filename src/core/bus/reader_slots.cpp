// The reader side of the bus routers' lock (detail::striped_shared_mutex): a reader slot per live
// thread, and the asymmetric fence (Linux `membarrier`, or two full fences).
#include <xsn/bus/detail/bus_router.hpp>

#include <atomic>
#include <bitset>
#include <cstdlib>
#include <mutex>

#if defined(__linux__)
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

// Under ThreadSanitizer, which does not know `membarrier`, the fences are full ones.
#if defined(__SANITIZE_THREAD__)
#define XSN_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define XSN_TSAN 1
#endif
#endif

namespace xsn::inline v0::detail {

namespace {

#if defined(__linux__)
long membarrier(int cmd) noexcept { return ::syscall(__NR_membarrier, cmd, 0u, 0); }
#endif

/// The slots of live threads; a thread takes the lowest free one on its first read lock.
class slot_pool {
 public:
  std::size_t take() {
    std::lock_guard lock(m_);
    for (std::size_t i = 0; i < reader_slots; ++i)
      if (!used_[i]) {
        used_[i] = true;
        return i;
      }
    return reader_slots;  // all taken: the shared, counted slot
  }
  void give_back(std::size_t i) {
    if (i == reader_slots) return;
    std::lock_guard lock(m_);
    used_[i] = false;
  }

 private:
  std::mutex m_;
  std::bitset<reader_slots> used_;
};

slot_pool& pool() {
  static slot_pool& p = *new slot_pool;  // never destroyed: threads may exit after static destruction
  return p;
}

}  // namespace

bool asymmetric_fence::register_membarrier() noexcept {
#if defined(__linux__) && !defined(XSN_TSAN)
  const long supported = membarrier(MEMBARRIER_CMD_QUERY);
  if (supported < 0 || !(supported & MEMBARRIER_CMD_PRIVATE_EXPEDITED)) return false;
  return membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0;
#else
  return false;
#endif
}

void asymmetric_fence::heavy() noexcept {
#if defined(__linux__)
  // After a successful registration this cannot fail (EINVAL and EPERM are decided there). If it
  // did, the readers' compiler barriers would order nothing: abort rather than run unordered.
  if (membarrier_available()) {
    if (membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0) std::abort();
    return;
  }
#endif
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

thread_reader_slot::thread_reader_slot() noexcept : index(pool().take()) {}

thread_reader_slot::~thread_reader_slot() { pool().give_back(index); }

}  // namespace xsn::inline v0::detail
