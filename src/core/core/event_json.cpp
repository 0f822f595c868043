#include "core/event_json.hpp"

#include <boost/json/object.hpp>

#include <string>
#include <string_view>

namespace xsn::inline v0::detail {

value event_to_json(const event& ev) {
  boost::json::object o{{"name", ev.name}};
  o["type"] = ev.type == event_type::platform ? "platform" : ev.type == event_type::internal ? "internal" : "external";
  if (!ev.sendid.empty()) o["sendid"] = ev.sendid;
  if (!ev.origin.empty()) o["origin"] = ev.origin;
  if (!ev.origintype.empty()) o["origintype"] = ev.origintype;
  if (!ev.invokeid.empty()) o["invokeid"] = ev.invokeid;
  if (!ev.data.is_null()) o["data"] = ev.data;
  return o;
}

namespace {

// Copies the string member `key` of `o` into `out` when present; false when it is not a string.
bool optional_string(const boost::json::object& o, const char* key, std::string& out) {
  const auto* f = o.if_contains(key);
  if (!f) return true;
  if (!f->is_string()) return false;
  out = std::string(f->as_string());
  return true;
}

// Maps the "type" member's spelling to an event_type; false for an unknown spelling.
bool parse_event_type(std::string_view type, event_type& out) {
  if (type == "platform") out = event_type::platform;
  else if (type == "internal") out = event_type::internal;
  else if (type == "external") out = event_type::external;
  else return false;
  return true;
}

// Reads the optional string members of an event (`type` into `type`); false when one is not a string.
bool read_string_members(const boost::json::object& o, event& ev, std::string& type) {
  return optional_string(o, "type", type) && optional_string(o, "sendid", ev.sendid) &&
         optional_string(o, "origin", ev.origin) && optional_string(o, "origintype", ev.origintype) &&
         optional_string(o, "invokeid", ev.invokeid);
}

}  // namespace

bool event_from_json(const value& v, event& ev) {
  const auto* o = v.if_object();
  if (!o || !o->contains("name") || !o->at("name").is_string()) return false;
  ev = event(std::string(o->at("name").as_string()));
  std::string type = "external";
  if (!read_string_members(*o, ev, type)) return false;
  if (!parse_event_type(type, ev.type)) return false;
  if (auto* d = o->if_contains("data")) ev.data = *d;
  return true;
}

}  // namespace xsn::inline v0::detail
