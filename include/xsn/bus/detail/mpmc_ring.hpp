#pragma once
/// \file A bounded lock-free FIFO for many producers and consumers, with a drop-oldest push.
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <thread>
#include <type_traits>
#include <utility>

#if defined(__x86_64__) || defined(__i386__)
#  include <immintrin.h>
#endif

namespace xsn::inline v0::detail {

/// Spins with growing pauses, then yields: for the short windows in which another thread holds
/// a slot it has claimed but not yet published.
class backoff {
 public:
  /// After a lost race: pause a little.
  void spin() noexcept {
    for (unsigned i = 0; i < (1u << (step_ < 6 ? step_ : 6)); ++i) pause();
    if (step_ <= 6) ++step_;
  }
  /// While waiting for another thread to finish: pause, then give the core away.
  void snooze() noexcept {
    if (step_ <= 6) {
      for (unsigned i = 0; i < (1u << step_); ++i) pause();
    } else {
      std::this_thread::yield();
    }
    if (step_ <= 10) ++step_;
  }

 private:
  static void pause() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    _mm_pause();
#endif
  }
  unsigned step_ = 0;
};

/// Where an `mpmc_ring` keeps its slots by default: ordinary memory, aligned to a cache line.
struct heap_ring_memory {
  /// `bytes` aligned to `align`; throws `std::bad_alloc`.
  void* allocate(std::size_t bytes, std::size_t align) { return ::operator new(bytes, std::align_val_t{align}); }
  /// Frees what `allocate` returned. The unsized aligned delete: Clang leaves sized deallocation
  /// off by default (-fsized-deallocation), and the size adds nothing the allocator needs here.
  void deallocate(void* p, [[maybe_unused]] std::size_t bytes, std::size_t align) noexcept {
    ::operator delete(p, std::align_val_t{align});
  }
};

/**
 * Bounded FIFO of exactly `capacity` elements (any capacity >= 1), safe for any number of
 * producers and consumers. The design is crossbeam's `ArrayQueue` (after Dmitry Vyukov's bounded
 * MPMC queue): `head` and `tail` pack a lap and an index; each slot's stamp says whether it waits
 * for the producer or the consumer of a given lap, so a push or pop is one CAS plus one release
 * store. `force_push` discards the oldest element when full (drop-oldest).
 *
 * A thread preempted between claiming a slot and publishing it makes the threads that need that
 * slot spin, then yield, until it resumes; otherwise no operation waits.
 *
 * `Memory` allocates the slots (`allocate(bytes, align)`, `deallocate(p, bytes, align)`), e.g. on
 * a NUMA node (`xsn::advanced::detail::numa_ring`).
 *
 * Memory ordering, and why it suffices:
 * - Hand-over of a payload: a slot's `stamp` is its only flag. A producer constructs the element
 *   after its CAS on `tail` claimed position `p`, then stores `stamp = p + 1` (release); a consumer
 *   reads the element only after an acquire load saw `p + 1`. Reuse mirrors it: the consumer
 *   destroys the element, then stores `stamp = p + one_lap` (release), and the next lap's producer
 *   writes only after an acquire load saw that. No element is read before it is written or
 *   overwritten before it is read.
 * - Ownership: each position is claimed by exactly one successful CAS, on `tail` (to write) or on
 *   `head` (to read, or in `force_push` to discard). Both only grow (laps never repeat), so no CAS
 *   succeeds on a stale value (no ABA), and the stamps a batch counted before its CAS on `head`
 *   still hold after it (only the claimer of a position changes its stamp): nothing is lost or
 *   taken twice. `force_push` may store `tail` plainly: its CAS on `head` succeeds only on a full
 *   ring, where `tail` is at the slot it reclaims, which no other producer sees as free, so no
 *   other thread moves `tail` before this store.
 * - Full, empty and wake-ups: the CASes on `head` and `tail`, `force_push`'s store of `tail` and
 *   the loads of the other index in the full check (`try_push`) and the empty checks
 *   (`consume_batch`, `empty`, `size`) are sequentially consistent, so they are in one total order
 *   with the buses' seq_cst flags. A consumer sets `consumer_waiting` then checks `empty()`, a
 *   publisher CASes `tail` then reads that flag; a publisher waiting for room counts itself in
 *   then checks `head`, a consumer CASes `head` then reads that count. In each pair one side sees
 *   the other (Dekker), so no wake-up is lost. (crossbeam uses `fence(SeqCst)` and a relaxed load;
 *   only these seq_cst accesses take part in the argument, and ThreadSanitizer models them, not
 *   fences.) The relaxed loads of `head` and `tail` are starting guesses: a stale one fails its
 *   CAS or reads a stamp that sends the loop round again.
 * - During a `force_push` on a full ring `head` has moved on before `tail` does, so with capacity 1
 *   `empty()` is briefly true while the new element is written; its publisher moves `tail` before
 *   it looks for a waiting consumer, so a consumer that waits on that `empty()` is woken.
 */
template <class T, class Memory = heap_ring_memory>
class mpmc_ring {
  // Elements are only ever constructed in place by a non-throwing constructor (never assigned),
  // so a claimed slot cannot be left half-written by an exception.
  static_assert(std::is_nothrow_destructible_v<T>);

 public:
  /// A ring for `capacity` (>= 1) elements, allocated at once from `memory`.
  explicit mpmc_ring(std::size_t capacity, Memory memory = {})
      : cap_(capacity < 1 ? 1 : capacity), one_lap_(std::bit_ceil(cap_ + 1)), memory_(std::move(memory)) {
    slots_ = static_cast<slot*>(memory_.allocate(cap_ * sizeof(slot), alignof(slot)));
    for (std::size_t i = 0; i < cap_; ++i) ::new (static_cast<void*>(slots_ + i)) slot(i);
  }
  ~mpmc_ring() {
    std::size_t h = head_.load(std::memory_order_relaxed);
    const std::size_t t = tail_.load(std::memory_order_relaxed);
    while (h != t) {
      const std::size_t index = h & (one_lap_ - 1);
      slots_[index].get()->~T();
      h = index + 1 < cap_ ? h + 1 : (h & ~(one_lap_ - 1)) + one_lap_;
    }
    std::destroy_n(slots_, cap_);
    memory_.deallocate(slots_, cap_ * sizeof(slot), alignof(slot));
  }
  mpmc_ring(const mpmc_ring&) = delete;
  mpmc_ring& operator=(const mpmc_ring&) = delete;

  /// Most elements held at once.
  std::size_t capacity() const noexcept { return cap_; }

  /// Moves `v` in (as `T(std::move(v))`) unless the ring is full; on false `v` is untouched.
  template <class U>
  bool try_push(U& v) noexcept {
    static_assert(std::is_nothrow_constructible_v<T, U&&>);
    backoff b;
    std::size_t tail = tail_.load(std::memory_order_relaxed);
    for (;;) {
      const std::size_t index = tail & (one_lap_ - 1);
      const std::size_t new_tail = next(tail);
      slot& s = slots_[index];
      const std::size_t stamp = s.stamp.load(std::memory_order_acquire);
      if (tail == stamp) {
        if (tail_.compare_exchange_weak(tail, new_tail, std::memory_order_seq_cst,
                                        std::memory_order_relaxed)) {
          ::new (static_cast<void*>(s.storage)) T(std::move(v));
          s.stamp.store(tail + 1, std::memory_order_release);
          return true;
        }
        b.spin();
      } else if (stamp + one_lap_ == tail + 1) {
        // Sequentially consistent (not a fence, which ThreadSanitizer does not model): pairs with
        // a consumer's CAS of the head followed by its check for waiting publishers.
        if (head_.load(std::memory_order_seq_cst) + one_lap_ == tail) return false;  // full
        b.spin();
        tail = tail_.load(std::memory_order_relaxed);
      } else {
        b.snooze();
        tail = tail_.load(std::memory_order_relaxed);
      }
    }
  }

  /// Moves `v` in (as `T(std::move(v))`); when the ring is full, the oldest element is discarded
  /// first. Returns true when an element was discarded.
  template <class U>
  bool force_push(U& v) noexcept {
    static_assert(std::is_nothrow_constructible_v<T, U&&>);
    backoff b;
    std::size_t tail = tail_.load(std::memory_order_relaxed);
    for (;;) {
      const std::size_t index = tail & (one_lap_ - 1);
      const std::size_t new_tail = next(tail);
      slot& s = slots_[index];
      const std::size_t stamp = s.stamp.load(std::memory_order_acquire);
      if (tail == stamp) {
        if (tail_.compare_exchange_weak(tail, new_tail, std::memory_order_seq_cst,
                                        std::memory_order_relaxed)) {
          ::new (static_cast<void*>(s.storage)) T(std::move(v));
          s.stamp.store(tail + 1, std::memory_order_release);
          return false;
        }
        b.spin();
      } else if (stamp + one_lap_ == tail + 1) {
        // Full: the slot holds the oldest element. Take it from the consumers by moving the head
        // past it, then reuse the slot for `v`.
        std::size_t head = tail - one_lap_;
        if (head_.compare_exchange_weak(head, new_tail - one_lap_, std::memory_order_seq_cst,
                                        std::memory_order_relaxed)) {
          tail_.store(new_tail, std::memory_order_seq_cst);
          std::destroy_at(s.get());
          ::new (static_cast<void*>(s.storage)) T(std::move(v));
          s.stamp.store(tail + 1, std::memory_order_release);
          return true;
        }
        b.spin();
        tail = tail_.load(std::memory_order_relaxed);
      } else {
        b.snooze();
        tail = tail_.load(std::memory_order_relaxed);
      }
    }
  }

  /// Moves the oldest element into `out` (destroying `out` and move-constructing it in place);
  /// false, and `out` untouched, when the ring is empty.
  bool try_pop(T& out) noexcept { return pop_batch(std::addressof(out), 1, true) == 1; }

  /**
   * Moves up to `max` (>= 1) of the oldest elements into `out[0..n)`, in order, and returns `n`.
   * The ready elements are claimed with one CAS of the head, so a batch costs one contended
   * operation, not one per element.
   *
   * With `wait_for_claimed`, 0 means empty: an element whose slot a producer has claimed but not
   * yet written is waited for. Without it, 0 means "nothing published at the head" and the call
   * never reads the producers' `tail` (a consumer that keeps finding the ring empty would
   * otherwise take that cache line from the producers on every push).
   */
  std::size_t pop_batch(T* out, std::size_t max, bool wait_for_claimed) noexcept {
    static_assert(std::is_nothrow_move_constructible_v<T>);
    return consume_batch(max, wait_for_claimed, [out](T& v, std::size_t i) noexcept {
      std::destroy_at(out + i);
      std::construct_at(out + i, std::move(v));
    });
  }

  /// As `pop_batch`, but hands the `i`-th element to `take(T& element, std::size_t i)`, which
  /// must not throw and may move from it; the ring destroys it afterwards.
  template <class F>
  std::size_t consume_batch(std::size_t max, bool wait_for_claimed, F&& take) noexcept {
    backoff b;
    std::size_t head = head_.load(std::memory_order_relaxed);
    for (;;) {
      // Count the consecutive published slots from the head.
      std::size_t n = 0;
      std::size_t pos = head;
      std::size_t stamp = 0;
      while (n < max) {
        stamp = slots_[pos & (one_lap_ - 1)].stamp.load(std::memory_order_acquire);
        if (stamp != pos + 1) break;
        ++n;
        pos = next(pos);
      }
      if (n != 0) {
        if (head_.compare_exchange_weak(head, pos, std::memory_order_seq_cst,
                                        std::memory_order_relaxed)) {
          pos = head;
          for (std::size_t i = 0; i < n; ++i) {
            slot& s = slots_[pos & (one_lap_ - 1)];
            T* p = s.get();
            take(*p, i);
            std::destroy_at(p);
            s.stamp.store(pos + one_lap_, std::memory_order_release);
            pos = next(pos);
          }
          return n;
        }
        b.spin();  // another consumer (or a drop-oldest producer) moved the head
      } else if (stamp == head) {
        if (!wait_for_claimed) return 0;
        if (tail_.load(std::memory_order_seq_cst) == head) return 0;  // empty
        b.spin();  // a producer has claimed the slot and is writing it
        head = head_.load(std::memory_order_relaxed);
      } else {
        b.snooze();
        head = head_.load(std::memory_order_relaxed);
      }
    }
  }

  /// True when nothing is queued. Sequentially consistent: a push whose slot is claimed but not
  /// yet written counts as queued (a pop then waits for it briefly).
  bool empty() const noexcept {
    const std::size_t head = head_.load(std::memory_order_seq_cst);
    return tail_.load(std::memory_order_seq_cst) == head;
  }
  /// True when the oldest element is published and can be popped. Reads only the head and its
  /// slot, never the producers' `tail` (which a spinning consumer would otherwise keep pulling
  /// away from them); false does not mean empty.
  bool front_ready() const noexcept {
    const std::size_t head = head_.load(std::memory_order_relaxed);
    return slots_[head & (one_lap_ - 1)].stamp.load(std::memory_order_acquire) == head + 1;
  }
  /// As `front_ready`, but waits while the oldest slot is claimed and not yet written; false only
  /// when the ring is empty.
  bool wait_front_ready() const noexcept {
    backoff b;
    for (;;) {
      if (front_ready()) return true;
      if (empty()) return false;
      b.snooze();
    }
  }
  /// Elements ever pushed (claimed slots included).
  std::uint64_t pushed() const noexcept { return count(tail_.load(std::memory_order_acquire)); }
  /// Elements ever taken out, popped or discarded.
  std::uint64_t popped() const noexcept { return count(head_.load(std::memory_order_acquire)); }
  /// Elements queued (a snapshot).
  std::size_t size() const noexcept {
    for (;;) {
      const std::size_t tail = tail_.load(std::memory_order_seq_cst);
      const std::size_t head = head_.load(std::memory_order_seq_cst);
      if (tail_.load(std::memory_order_seq_cst) == tail) {
        return static_cast<std::size_t>(count(tail) - count(head));
      }
    }
  }

 private:
  // Whole cache lines per slot: a producer writing one slot does not take the line a consumer is
  // reading the previous one from.
  struct alignas(64) slot {
    explicit slot(std::size_t s) noexcept : stamp(s) {}
    std::atomic<std::size_t> stamp;
    alignas(T) unsigned char storage[sizeof(T)];
    T* get() noexcept { return std::launder(reinterpret_cast<T*>(storage)); }
  };

  /// The position after `pos`: the next index, or index 0 of the next lap.
  std::size_t next(std::size_t pos) const noexcept {
    const std::size_t index = pos & (one_lap_ - 1);
    return index + 1 < cap_ ? pos + 1 : (pos & ~(one_lap_ - 1)) + one_lap_;
  }
  /// How many positions `pos` is past the start.
  std::uint64_t count(std::size_t pos) const noexcept {
    return static_cast<std::uint64_t>(pos / one_lap_) * cap_ + (pos & (one_lap_ - 1));
  }

  // Producers and the consumer each own a cache line (128: adjacent-line prefetch on x86).
  alignas(128) std::atomic<std::size_t> head_{0};
  alignas(128) std::atomic<std::size_t> tail_{0};
  alignas(128) const std::size_t cap_;
  const std::size_t one_lap_;
  [[no_unique_address]] Memory memory_;
  slot* slots_ = nullptr;
};

}  // namespace xsn::inline v0::detail
