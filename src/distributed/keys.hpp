#pragma once
// Part of xsn_distributed (private): where a machine lives in Redis. Every key of a partition
// carries the hash tag `{<prefix><partition>}`, so one script touches one Redis Cluster slot.
//
//   {P<n>}:lease   "<owner> <epoch>" with a TTL: who runs partition n (fencing token)
//   {P<n>}:epoch   the partition's epoch counter (only grows)
//   {P<n>}:in      the partition's inbox stream (consumer group `xsn`)
//   {P<n>}:ver     the partition's store version counter
//   {P<n>}:ids     the ids of its stored machines (sorted set, for restore)
//   {P<n>}:m:<id>  a machine's record: hash {v: orchestrator record (JSON), ver: version}
//   {P}:nodes      the members: sorted set owner -> heartbeat expiry (Redis time, ms)
//   {P}:nodeinfo   owner -> JSON {node, http}
//   {P}:config     the deployment's partition count (set by the first node)
//   P reply:<who>  pub/sub channel of the answers to <who>'s requests (not a key)
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace xsn::inline v0::distributed {

/// The partition of machine `id`: FNV-1a (64 bit) of its bytes, modulo `partitions`. Stable
/// across processes, builds and platforms (a deployment's partition count is fixed).
inline unsigned partition_of(std::string_view id, unsigned partitions) noexcept {
  std::uint64_t h = 14695981039346656037ull;
  for (unsigned char c : id) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return static_cast<unsigned>(h % partitions);
}

/// Which member runs each partition: `members` (live lease owners, sorted) each get P/N
/// partitions, the first P%N of them one more; a partition goes to the member that ranks it
/// highest (rendezvous hashing of member and partition) among those with room, partitions taken
/// in order. Every node computes the same answer from the same members; when one joins or
/// leaves, mostly the partitions it had (or gets) move. Returns an index into `members` per
/// partition; empty when there are no members.
std::vector<std::size_t> assign_partitions(unsigned partitions, const std::vector<std::string>& members);

/// Key names under one prefix.
struct keyspace {
  std::string prefix = "xsn:";

  std::string tag(unsigned p) const { return "{" + prefix + std::to_string(p) + "}"; }
  std::string lease(unsigned p) const { return tag(p) + ":lease"; }
  std::string epoch(unsigned p) const { return tag(p) + ":epoch"; }
  std::string stream(unsigned p) const { return tag(p) + ":in"; }
  std::string version(unsigned p) const { return tag(p) + ":ver"; }
  std::string ids(unsigned p) const { return tag(p) + ":ids"; }
  std::string machine_prefix(unsigned p) const { return tag(p) + ":m:"; }
  std::string nodes() const { return "{" + prefix + "}:nodes"; }
  std::string nodeinfo() const { return "{" + prefix + "}:nodeinfo"; }
  std::string config() const { return "{" + prefix + "}:config"; }
  std::string reply_channel(std::string_view who) const { return prefix + "reply:" + std::string(who); }
};

/// The consumer group every node reads partition streams with.
inline constexpr std::string_view stream_group = "xsn";

}  // namespace xsn::inline v0::distributed
