// Part of xsn_advanced: the NUMA topology from libnuma, and node-local memory for the rings.
#include <xsn/advanced/detail/numa_ring.hpp>
#include <xsn/advanced/numa_event_bus.hpp>

#include <numa.h>

#include <algorithm>
#include <new>
#include <set>
#include <thread>

namespace xsn::inline v0::advanced {

namespace {

/// True when libnuma can place memory on `node` of this machine.
bool machine_has_node(int node) noexcept {
  static const bool available = numa_available() >= 0;
  return available && node >= 0 && node <= numa_max_node() && numa_node_size64(node, nullptr) > 0;
}

/// The fallback: one node holding every CPU the process may know of.
numa_topology single_node() {
  numa_topology t;
  numa_node n;
  const unsigned count = std::max(1u, std::thread::hardware_concurrency());
  for (unsigned c = 0; c < count; ++c) n.cpus.push_back(static_cast<int>(c));
  t.nodes.push_back(std::move(n));
  return t;
}

/// The CPUs of `node`: none when it is not in use or libnuma cannot tell. `mask` is scratch space.
std::vector<int> node_cpus(int node, struct bitmask* mask, int possible_cpus) {
  std::vector<int> out;
  if (numa_bitmask_isbitset(numa_all_nodes_ptr, static_cast<unsigned>(node)) == 0) return out;
  if (numa_node_to_cpus(node, mask) != 0) return out;
  for (int c = 0; c < possible_cpus; ++c) {
    if (numa_bitmask_isbitset(mask, static_cast<unsigned>(c)) != 0) out.push_back(c);
  }
  return out;
}

}  // namespace

numa_topology numa_topology::detect() {
  if (numa_available() < 0) return single_node();
  numa_topology t;
  struct bitmask* cpus = numa_allocate_cpumask();
  if (cpus == nullptr) return single_node();
  const int possible_cpus = numa_num_possible_cpus();
  for (int node = 0; node <= numa_max_node(); ++node) {
    numa_node n{node, node_cpus(node, cpus, possible_cpus)};
    if (!n.cpus.empty()) t.nodes.push_back(std::move(n));  // memory-only nodes get no shard
  }
  numa_free_cpumask(cpus);
  if (t.nodes.empty()) return single_node();
  return t;
}

std::error_code numa_topology::validate() const {
  if (nodes.empty()) return errc::invalid_argument;
  std::set<int> ids, all_cpus;
  for (const auto& n : nodes) {
    if (n.id < 0 || !ids.insert(n.id).second) return errc::invalid_argument;
    for (const int c : n.cpus) {
      if (c < 0 || !all_cpus.insert(c).second) return errc::invalid_argument;
    }
  }
  return {};
}

int numa_topology::index_of_cpu(int cpu) const noexcept {
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    if (std::find(nodes[i].cpus.begin(), nodes[i].cpus.end(), cpu) != nodes[i].cpus.end()) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

int numa_topology::index_of_node(int node) const noexcept {
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    if (nodes[i].id == node) return static_cast<int>(i);
  }
  return -1;
}

namespace detail {

// The size tells which allocator it came from: libnuma's pages are only worth it for at least a
// page, and `free_on_node` must not depend on a topology that may have changed since.
namespace {
constexpr std::size_t numa_minimum = 4096;
struct alignas(cache_line) header {
  bool from_numa = false;
};
}  // namespace

void* allocate_on_node(std::size_t bytes, int node) {
  // One cache line in front of the slots records where the block came from.
  const std::size_t total = bytes + sizeof(header);
  void* block = nullptr;
  bool from_numa = false;
  if (total >= numa_minimum && machine_has_node(node)) {
    block = numa_alloc_onnode(total, node);
    from_numa = block != nullptr;
  }
  if (block == nullptr) block = ::operator new(total, std::align_val_t{cache_line});
  auto* h = ::new (block) header{from_numa};
  return h + 1;
}

void free_on_node(void* p, std::size_t bytes) noexcept {
  if (p == nullptr) return;
  auto* h = static_cast<header*>(p) - 1;
  const bool from_numa = h->from_numa;
  const std::size_t total = bytes + sizeof(header);
  if (from_numa) {
    numa_free(h, total);
  } else {
    ::operator delete(h, std::align_val_t{cache_line});
  }
}

}  // namespace detail

}  // namespace xsn::inline v0::advanced
