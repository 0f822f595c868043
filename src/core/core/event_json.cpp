#include "core/event_json.hpp"

#include <boost/json/object.hpp>

#include <string>

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

bool event_from_json(const value& v, event& ev) {
  const auto* o = v.if_object();
  if (!o || !o->contains("name") || !o->at("name").is_string()) return false;
  ev = event(std::string(o->at("name").as_string()));
  auto str = [&](const char* k, std::string& out) {
    if (auto* f = o->if_contains(k)) {
      if (!f->is_string()) return false;
      out = std::string(f->as_string());
    }
    return true;
  };
  std::string type = "external";
  if (!str("type", type) || !str("sendid", ev.sendid) || !str("origin", ev.origin) ||
      !str("origintype", ev.origintype) || !str("invokeid", ev.invokeid))
    return false;
  if (type == "platform") ev.type = event_type::platform;
  else if (type == "internal") ev.type = event_type::internal;
  else if (type == "external") ev.type = event_type::external;
  else return false;
  if (auto* d = o->if_contains("data")) ev.data = *d;
  return true;
}

}  // namespace xsn::inline v0::detail
