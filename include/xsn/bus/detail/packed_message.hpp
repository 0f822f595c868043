#pragma once
/// \file `bus_message` as the buses' rings store it: the fields every message uses first, the
/// usually empty strings only when set (shared by `channel_event_bus` and `numa_event_bus`).
#include <xsn/bus/event_bus.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>

namespace xsn::inline v0::detail {

/**
 * A `bus_message` as a subscription's ring holds it. What every message uses (address, name,
 * data, the scalars) comes first and, with a ring slot's 8-byte stamp, fills two cache lines; the
 * six strings that are usually empty (`sendid`, `origin`, `origintype`, `invokeid`, `reply_to`,
 * `sender`)
 * are constructed only when set. A typical message therefore writes, and moves from the
 * publisher's core to the consumer's, two cache lines instead of five.
 */
class packed_message {
 public:
  /// Takes every field of `m` (its usually empty strings only when set).
  explicit packed_message(bus_message&& m) noexcept
      : correlation_id_(m.correlation_id), sequence_(m.sequence), resolved_by_(m.event.resolved_by),
        name_id_(m.event.name_id), type_(m.event.type), address_(std::move(m.address)),
        name_(std::move(m.event.name)), data_(std::move(m.event.data)) {
    if (m.event.sendid.empty() && m.event.origin.empty() && m.event.origintype.empty() &&
        m.event.invokeid.empty() && m.reply_to.empty() && m.sender.empty()) [[likely]] {
      return;  // the usual message: no rare field to pack
    }
    for (unsigned i = 0; i < rare_count; ++i) {
      std::string& field = rare(m, i);
      if (field.empty()) continue;
      std::construct_at(&rare_[i].s, std::move(field));
      present_ |= static_cast<std::uint8_t>(1u << i);
    }
  }
  ~packed_message() {
    if (present_ == 0) return;
    for (unsigned i = 0; i < rare_count; ++i)
      if (present_ & (1u << i)) std::destroy_at(&rare_[i].s);
  }
  packed_message(const packed_message&) = delete;
  packed_message& operator=(const packed_message&) = delete;

  /// Moves the message into `out`, replacing what it held.
  void unpack(bus_message& out) noexcept {
    out.address = std::move(address_);
    out.event.name = std::move(name_);
    out.event.type = type_;
    out.event.name_id = name_id_;
    out.event.resolved_by = resolved_by_;
    out.correlation_id = correlation_id_;
    out.sequence = sequence_;
    // Replaced, not assigned: the data keeps its memory resource, as a move would.
    std::destroy_at(&out.event.data);
    std::construct_at(&out.event.data, std::move(data_));
    if (present_ == 0) [[likely]] {  // the usual message: only clear what `out` had set
      clear(out.event.sendid);
      clear(out.event.origin);
      clear(out.event.origintype);
      clear(out.event.invokeid);
      clear(out.reply_to);
      clear(out.sender);
      return;
    }
    for (unsigned i = 0; i < rare_count; ++i) {
      std::string& field = rare(out, i);
      if (present_ & (1u << i)) {
        field = std::move(rare_[i].s);
      } else {
        field.clear();
      }
    }
  }

 private:
  static constexpr unsigned rare_count = 6;
  static std::string& rare(bus_message& m, unsigned i) noexcept {
    switch (i) {
      case 0: return m.event.sendid;
      case 1: return m.event.origin;
      case 2: return m.event.origintype;
      case 3: return m.event.invokeid;
      case 4: return m.reply_to;
      default: return m.sender;
    }
  }
  static void clear(std::string& s) noexcept {
    if (!s.empty()) s.clear();
  }
  union rare_string {
    rare_string() noexcept {}
    ~rare_string() {}
    std::string s;
  };

  std::uint64_t correlation_id_;
  std::uint64_t sequence_;
  const void* resolved_by_;
  std::uint32_t name_id_;
  event_type type_;
  std::uint8_t present_ = 0;  // bit i: rare_[i] is constructed
  std::string address_;
  std::string name_;
  value data_;
  rare_string rare_[rare_count];
};

}  // namespace xsn::inline v0::detail
