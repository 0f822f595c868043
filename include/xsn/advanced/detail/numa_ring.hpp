#pragma once
/// \file A bounded lock-free FIFO whose slots live on one NUMA node: `xsn::detail::mpmc_ring`
/// (the channel bus's ring: batch dequeue, drop-oldest push, cache-line padded) with its slots
/// allocated on the node.
#include <xsn/bus/detail/mpmc_ring.hpp>

#include <cstddef>

namespace xsn::inline v0::advanced::detail {

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

/// `mpmc_ring` memory on one node (`allocate_on_node`, whose blocks are cache-line aligned).
struct node_memory {
  int node = 0;  ///< Node id (as libnuma numbers it).
  /// `bytes` on `node`; `align` is at most a cache line.
  void* allocate(std::size_t bytes, std::size_t /*align*/) { return allocate_on_node(bytes, node); }
  /// Frees what `allocate` returned.
  void deallocate(void* p, std::size_t bytes, std::size_t /*align*/) noexcept { free_on_node(p, bytes); }
};

/**
 * Bounded FIFO of exactly `capacity` elements with its slots in node `node`'s memory: see
 * `xsn::detail::mpmc_ring` for the algorithm (one CAS per push, one CAS per batch pop,
 * `force_push` for drop-oldest). Slots are whole cache lines, and the head, the tail and the
 * read-only fields each sit on their own 128 bytes.
 */
template <class T>
class numa_ring : public xsn::detail::mpmc_ring<T, node_memory> {
  static_assert(alignof(T) <= cache_line);

 public:
  /// A ring of `capacity` (>= 1) slots allocated on `node` (see `allocate_on_node`).
  numa_ring(std::size_t capacity, int node)
      : xsn::detail::mpmc_ring<T, node_memory>(capacity, node_memory{node}), node_(node) {}

  /// The node asked for at construction.
  int node() const noexcept { return node_; }

 private:
  int node_;
};

}  // namespace xsn::inline v0::advanced::detail
