#pragma once
/// \file A bounded lock-free FIFO whose slots live on one NUMA node: many producers, one consumer
/// (the consumer's head is moved by CAS only so that a drop-oldest producer can take the oldest
/// element), batch dequeue, cache-line padded.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <thread>
#include <type_traits>
#include <utility>

namespace xsn::advanced::detail {

/// The unit of false sharing. `std::hardware_destructive_interference_size` is not used: g++ warns
/// that its value varies with `-mtune`, which would make it part of the ABI. 64 bytes is the line
/// of every x86-64 and most ARMv8 cores.
inline constexpr std::size_t cache_line = 64;
/// Two lines: x86 prefetches the adjacent line too, so indices written by different threads keep
/// 128 bytes apart.
inline constexpr std::size_t index_padding = 2 * cache_line;

/// Allocates `bytes` (page-granular when NUMA is used) on `node` with libnuma when the machine
/// has that node, else ordinary memory aligned to a cache line. Never null (throws `bad_alloc`).
void* allocate_on_node(std::size_t bytes, int node);
/// Frees memory from `allocate_on_node` (same `bytes`).
void free_on_node(void* p, std::size_t bytes) noexcept;

/// Pauses between checks of a slot another thread is about to write; yields after a while.
class ring_backoff {
 public:
  /// One wait step.
  void wait() noexcept {
    if (step_ < 7) {
      for (unsigned i = 0; i < (1u << step_); ++i) pause();
      ++step_;
    } else {
      std::this_thread::yield();
    }
  }
  /// One CPU pause hint.
  static void pause() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
  }

 private:
  unsigned step_ = 0;
};

/**
 * Bounded FIFO of exactly `capacity` elements. Positions are 64-bit counters that never wrap in
 * practice; slot `pos % capacity` carries a stamp saying whose turn it is: `2 * pos` (free for
 * the producer of `pos`), `2 * pos + 1` (written, for the consumer), `2 * (pos + capacity)` (free
 * for the next lap). Written stamps are odd and free ones even, so even a one-slot ring cannot
 * mistake a written slot for a free one. A push is one CAS of `tail` plus a release store; a batch pop is one CAS of
 * `head` for all the ready elements plus a release store per slot.
 *
 * Slots are whole cache lines, and `head`, `tail` and the read-only fields each sit on their own
 * 128 bytes, so producers and the consumer touch different lines except for the slot they hand
 * over. A producer preempted between claiming and writing its slot delays only the consumer of
 * that slot, who spins and then yields.
 */
template <class T>
class numa_ring {
  static_assert(std::is_nothrow_move_constructible_v<T> && std::is_nothrow_destructible_v<T>);

 public:
  /// A ring of `capacity` (>= 1) slots allocated on `node` (see `allocate_on_node`).
  numa_ring(std::size_t capacity, int node) : cap_(capacity < 1 ? 1 : capacity), node_(node) {
    void* mem = allocate_on_node(bytes(), node_);
    slots_ = static_cast<slot*>(mem);
    for (std::size_t i = 0; i < cap_; ++i) ::new (static_cast<void*>(slots_ + i)) slot(free_stamp(i));
  }
  ~numa_ring() {
    const std::uint64_t t = tail_.load(std::memory_order_relaxed);
    for (std::uint64_t h = head_.load(std::memory_order_relaxed); h != t; ++h) std::destroy_at(at(h).get());
    for (std::size_t i = 0; i < cap_; ++i) std::destroy_at(slots_ + i);
    free_on_node(slots_, bytes());
  }
  numa_ring(const numa_ring&) = delete;
  numa_ring& operator=(const numa_ring&) = delete;

  /// Most elements held at once.
  std::size_t capacity() const noexcept { return cap_; }
  /// The node asked for at construction.
  int node() const noexcept { return node_; }

  /// Moves `v` in unless the ring is full; on false `v` is untouched.
  bool try_push(T& v) noexcept {
    ring_backoff b;
    std::uint64_t pos = tail_.load(std::memory_order_relaxed);
    for (;;) {
      slot& s = at(pos);
      const std::uint64_t seq = s.seq.load(std::memory_order_acquire);
      if (seq == free_stamp(pos)) {
        if (tail_.compare_exchange_weak(pos, pos + 1, std::memory_order_seq_cst, std::memory_order_relaxed)) {
          return publish(s, pos, v), true;
        }
      } else if (pos >= cap_ && seq == written_stamp(pos - cap_)) {  // holds the last lap's element
        // Sequentially consistent (not a fence, which ThreadSanitizer does not model): pairs with
        // the consumer's CAS of the head and its check for waiting publishers.
        if (head_.load(std::memory_order_seq_cst) + cap_ <= pos) return false;  // full
        b.wait();  // the consumer has taken it and is about to free the slot
        pos = tail_.load(std::memory_order_relaxed);
      } else {
        b.wait();  // another producer moved on
        pos = tail_.load(std::memory_order_relaxed);
      }
    }
  }

  /// Moves `v` in; when the ring is full, the oldest element is discarded first. True when one
  /// was discarded.
  bool force_push(T& v) noexcept {
    ring_backoff b;
    std::uint64_t pos = tail_.load(std::memory_order_relaxed);
    for (;;) {
      slot& s = at(pos);
      const std::uint64_t seq = s.seq.load(std::memory_order_acquire);
      if (seq == free_stamp(pos)) {
        if (tail_.compare_exchange_weak(pos, pos + 1, std::memory_order_seq_cst, std::memory_order_relaxed)) {
          return publish(s, pos, v), false;
        }
      } else if (pos >= cap_ && seq == written_stamp(pos - cap_)) {
        // Full (or the consumer is freeing it): take the oldest element away from the consumer by
        // moving the head past it; then no other producer can claim `pos` before we do.
        std::uint64_t oldest = pos - cap_;
        if (head_.compare_exchange_strong(oldest, oldest + 1, std::memory_order_seq_cst,
                                          std::memory_order_relaxed)) {
          tail_.store(pos + 1, std::memory_order_seq_cst);
          std::destroy_at(s.get());
          return publish(s, pos, v), true;
        }
        b.wait();
        pos = tail_.load(std::memory_order_relaxed);
      } else {
        b.wait();
        pos = tail_.load(std::memory_order_relaxed);
      }
    }
  }

  /**
   * Moves up to `max` (>= 1) of the oldest elements into `out[0..n)` (destroying and
   * move-constructing them in place), in order,
   * and returns `n`. With `wait_for_claimed`, 0 means empty: a slot a producer has claimed but
   * not yet written is waited for. Without it, 0 means "nothing written at the head", and the
   * producers' `tail` is not read.
   */
  std::size_t pop_batch(T* out, std::size_t max, bool wait_for_claimed) noexcept {
    ring_backoff b;
    std::uint64_t head = head_.load(std::memory_order_relaxed);
    for (;;) {
      std::size_t n = 0;
      while (n < max && at(head + n).seq.load(std::memory_order_acquire) == written_stamp(head + n)) ++n;
      if (n != 0) {
        if (head_.compare_exchange_strong(head, head + n, std::memory_order_seq_cst,
                                          std::memory_order_relaxed)) {
          for (std::size_t i = 0; i < n; ++i) {
            slot& s = at(head + i);
            T* p = s.get();
            std::destroy_at(out + i);  // construct, never assign: a move assignment may throw
            std::construct_at(out + i, std::move(*p));
            std::destroy_at(p);
            s.seq.store(free_stamp(head + i + cap_), std::memory_order_release);
          }
          return n;
        }
        continue;  // a drop-oldest producer moved the head: `head` holds the new one
      }
      if (!wait_for_claimed) return 0;
      if (tail_.load(std::memory_order_seq_cst) == head) return 0;  // empty
      b.wait();  // claimed, being written (or the head moved)
      head = head_.load(std::memory_order_relaxed);
    }
  }

  /// True when nothing is queued; a claimed but unwritten slot counts as queued. Sequentially
  /// consistent with the CAS of a push.
  bool empty() const noexcept {
    const std::uint64_t head = head_.load(std::memory_order_seq_cst);
    return tail_.load(std::memory_order_seq_cst) == head;
  }
  /// True when the oldest element is written and can be taken (reads only the head's lines).
  bool front_ready() const noexcept {
    const std::uint64_t head = head_.load(std::memory_order_relaxed);
    return at(head).seq.load(std::memory_order_acquire) == written_stamp(head);
  }
  /// As `front_ready`, but waits while the oldest slot is claimed and not yet written; false
  /// only when the ring is empty.
  bool wait_front_ready() const noexcept {
    ring_backoff b;
    for (;;) {
      if (front_ready()) return true;
      if (empty()) return false;
      b.wait();
    }
  }
  /// Elements ever pushed (claimed slots included).
  std::uint64_t pushed() const noexcept { return tail_.load(std::memory_order_acquire); }
  /// Elements ever taken out, received or discarded.
  std::uint64_t popped() const noexcept { return head_.load(std::memory_order_acquire); }
  /// Elements queued (a consistent snapshot).
  std::size_t size() const noexcept {
    for (;;) {
      const std::uint64_t tail = tail_.load(std::memory_order_seq_cst);
      const std::uint64_t head = head_.load(std::memory_order_seq_cst);
      if (tail_.load(std::memory_order_seq_cst) == tail) return static_cast<std::size_t>(tail - head);
    }
  }

 private:
  struct alignas(cache_line) slot {
    explicit slot(std::uint64_t s) noexcept : seq(s) {}
    std::atomic<std::uint64_t> seq;
    alignas(T) unsigned char storage[sizeof(T)];
    T* get() noexcept { return std::launder(reinterpret_cast<T*>(storage)); }
  };

  slot& at(std::uint64_t pos) const noexcept { return slots_[pos % cap_]; }
  std::size_t bytes() const noexcept { return cap_ * sizeof(slot); }
  static void publish(slot& s, std::uint64_t pos, T& v) noexcept {
    ::new (static_cast<void*>(s.storage)) T(std::move(v));
    s.seq.store(written_stamp(pos), std::memory_order_release);
  }
  static constexpr std::uint64_t free_stamp(std::uint64_t pos) noexcept { return 2 * pos; }
  static constexpr std::uint64_t written_stamp(std::uint64_t pos) noexcept { return 2 * pos + 1; }

  alignas(index_padding) std::atomic<std::uint64_t> head_{0};  // the consumer's (and drop-oldest's)
  alignas(index_padding) std::atomic<std::uint64_t> tail_{0};  // the producers'
  alignas(index_padding) const std::size_t cap_;                // read-only from here on
  const int node_;
  slot* slots_ = nullptr;
};

}  // namespace xsn::advanced::detail
