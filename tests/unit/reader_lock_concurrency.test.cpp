// The buses' routing lock (detail::striped_shared_mutex) under real threads: readers enter with
// plain stores and an asymmetric fence (Linux `membarrier` where the kernel allows it), each on
// its own slot; threads beyond the slots share a counted one. Threads are owned `std::jthread`s,
// started together through latches and joined before the checks. CI also runs this file under
// ThreadSanitizer (where the fences are full ones).
#include <xsn/bus/detail/bus_router.hpp>

#include "catch.hpp"

#include <atomic>
#include <cstddef>
#include <latch>
#include <set>
#include <thread>
#include <vector>

using xsn::detail::reader_slots;
using xsn::detail::shared_guard;
using xsn::detail::striped_shared_mutex;

namespace {

/// What the writer changes in two steps; a reader must see both or neither.
struct guarded_pair {
  striped_shared_mutex m;
  long a = 0;  // guarded by m
  long b = 0;  // guarded by m
};

/// `readers` threads (all alive at once, so more than `reader_slots` of them share the counted
/// slot) each read the pair `reads` times while one writer changes it `writes` times; returns how
/// many reads saw a half-done change.
long torn_reads(std::size_t readers, int reads, int writes) {
  guarded_pair p;
  std::atomic<long> torn{0};
  std::latch all_alive(static_cast<std::ptrdiff_t>(readers) + 1);
  {
    std::vector<std::jthread> threads;
    for (std::size_t r = 0; r < readers; ++r) {
      threads.emplace_back([&] {
        { shared_guard first(p.m); }  // takes this thread's slot before the others start
        all_alive.arrive_and_wait();
        for (int i = 0; i < reads; ++i) {
          shared_guard lock(p.m);
          if (p.a != p.b) torn.fetch_add(1, std::memory_order_relaxed);
        }
      });
    }
    threads.emplace_back([&] {
      all_alive.arrive_and_wait();
      for (int i = 1; i <= writes; ++i) {
        std::unique_lock lock(p.m);
        p.a = i;
        for (int k = 0; k < 64; ++k) xsn::detail::cpu_pause();  // a window a reader would fall into
        p.b = i;
      }
    });
  }  // joined
  CHECK(p.a == writes);
  CHECK(p.b == writes);
  return torn.load();
}

}  // namespace

TEST_CASE("reader_lock_concurrency: readers on their own slots never see a writer's half-done change") {
  CHECK(torn_reads(4, 20'000, 2'000) == 0);
}

TEST_CASE("reader_lock_concurrency: readers beyond the slots share a counted one and stay excluded too") {
  CHECK(torn_reads(reader_slots + 6, 300, 300) == 0);
}

TEST_CASE("reader_lock_concurrency: a thread's slot is its own while it lives and given back when it exits") {
  // One after the other: each thread finds a slot free (the previous one gave its slot back).
  for (int i = 0; i < 3 * static_cast<int>(reader_slots); ++i) {
    std::size_t slot = reader_slots;
    std::jthread([&slot] { slot = xsn::detail::this_thread_reader_slot(); }).join();
    REQUIRE(slot < reader_slots);
  }
  // All alive at once: no two share a slot of their own; the rest get the counted one.
  const std::size_t n = reader_slots + 3;
  std::vector<std::size_t> slots(n);
  std::latch taken(static_cast<std::ptrdiff_t>(n));
  {
    std::vector<std::jthread> threads;
    for (std::size_t t = 0; t < n; ++t)
      threads.emplace_back([&, t] {
        slots[t] = xsn::detail::this_thread_reader_slot();
        taken.arrive_and_wait();  // nobody exits (and gives a slot back) before all took one
      });
  }
  std::set<std::size_t> own;
  std::size_t shared = 0;
  for (auto s : slots) {
    if (s == reader_slots) ++shared;
    else CHECK(own.insert(s).second);
  }
  CHECK(own.size() == reader_slots);
  CHECK(shared == n - reader_slots);
}
