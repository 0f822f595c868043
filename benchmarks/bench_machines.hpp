#pragma once
/// \file The machines and documents the benchmarks share, so that `xsn_bench` (wall time) and
/// `xsn_perf_gate` (instruction counts, benchmarks/perf_gate.cpp) measure the same work.
#include <string>
#include <string_view>
#include <type_traits>

namespace xsn_bench {

/// Two states, one `toggle` transition each; null datamodel.
inline constexpr std::string_view toggle_scxml = R"(<?xml version="1.0"?>
<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" datamodel="null" initial="off">
  <state id="off"><transition event="toggle" target="on"/></state>
  <state id="on"><transition event="toggle" target="off"/></state>
</scxml>
)";

/// Two regions of three states each; every `next` moves both regions on, and every state entered
/// runs the C++ action `count`.
inline constexpr std::string_view parallel_scxml = R"(<?xml version="1.0"?>
<scxml xmlns="http://www.w3.org/2005/07/scxml" xmlns:xsn="http://xsn.dev/scxml"
       version="1.0" datamodel="null" initial="p">
  <parallel id="p">
    <state id="a" initial="a1">
      <state id="a1"><onentry><xsn:action name="count"/></onentry><transition event="next" target="a2"/></state>
      <state id="a2"><onentry><xsn:action name="count"/></onentry><transition event="next" target="a3"/></state>
      <state id="a3"><onentry><xsn:action name="count"/></onentry><transition event="next" target="a1"/></state>
    </state>
    <state id="b" initial="b1">
      <state id="b1"><onentry><xsn:action name="count"/></onentry><transition event="next" target="b2"/></state>
      <state id="b2"><onentry><xsn:action name="count"/></onentry><transition event="next" target="b3"/></state>
      <state id="b3"><onentry><xsn:action name="count"/></onentry><transition event="next" target="b1"/></state>
    </state>
  </parallel>
</scxml>
)";

// The same two machines as XState v5 JSON (benchmarks/machines/*.json), with a C++ entry action.
inline constexpr std::string_view toggle_xstate = R"({"id": "toggle", "initial": "off", "states": {
  "off": {"on": {"toggle": "on"}}, "on": {"on": {"toggle": "off"}}}})";

inline constexpr std::string_view parallel_xstate = R"({"id": "parallel", "initial": "p", "states": {"p": {
  "type": "parallel", "states": {
    "a": {"initial": "a1", "states": {
      "a1": {"entry": ["count"], "on": {"next": "a2"}}, "a2": {"entry": ["count"], "on": {"next": "a3"}},
      "a3": {"entry": ["count"], "on": {"next": "a1"}}}},
    "b": {"initial": "b1", "states": {
      "b1": {"entry": ["count"], "on": {"next": "b2"}}, "b2": {"entry": ["count"], "on": {"next": "b3"}},
      "b3": {"entry": ["count"], "on": {"next": "b1"}}}}}}}})";

/// The toggle machine the orchestrator benchmarks run (the document's default datamodel).
inline constexpr std::string_view orchestrator_toggle_scxml =
    R"(<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" initial="off">
  <state id="off"><transition event="toggle" target="on"/></state>
  <state id="on"><transition event="toggle" target="off"/></state>
</scxml>)";

/**
 * A generated document with exactly 1,000 states, three levels deep: 10 groups `g<i>`, each with
 * 9 compound states `g<i>_h<j>`, each with 10 atomic leaves `g<i>_h<j>_s<k>` (10 + 90 + 900).
 * Every leaf has an event transition to the next leaf (crossing compound boundaries, so domains
 * have to be computed) and a targetless one; every compound state has an entry action (SCXML: a
 * `<raise>`; XState: the named action `entered` with the state's id as `params`) and a transition
 * to the next sibling compound state; groups go round on `reset`. The XState version gives every
 * state its SCXML id (`"id"`) and targets `#id`, so both texts describe the same chart.
 */
struct generated_doc {
  enum class format { scxml, xstate };
  static constexpr int groups = 10;
  static constexpr int middles = 9;   // per group
  static constexpr int leaves = 10;   // per middle
  static constexpr int states = groups * (1 + middles * (1 + leaves));
  static_assert(states == 1000);

  std::string text;

  explicit generated_doc(format f = format::scxml) : xstate_(f == format::xstate) {
    text.reserve(256 * 1024);
    if (xstate_) {
      text += "{\"id\": \"gen\", \"initial\": \"g0\", \"states\": {\n";
    } else {
      text += "<?xml version=\"1.0\"?>\n"
              "<scxml xmlns=\"http://www.w3.org/2005/07/scxml\" version=\"1.0\" datamodel=\"null\" "
              "initial=\"g0\">\n";
    }
    for (int g = 0; g < groups; ++g) group(g);
    text += xstate_ ? "}}\n" : "</scxml>\n";
  }

 private:
  void group(int g) {
    if (xstate_) {
      put(g == 0 ? "  \"" : ", \"", g, "\": {\"id\": \"", g, "\", \"initial\": \"", g, 0,
          "\", \"entry\": [{\"type\": \"entered\", \"params\": \"", g, "\"}],\n");
      put("    \"on\": {\"reset\": \"#", (g + 1) % groups, "\"}, \"states\": {\n");
    } else {
      put("  <state id=\"", g, "\" initial=\"", g, 0, "\">\n");
      put("    <onentry><raise event=\"entered.", g, "\"/></onentry>\n");
    }
    for (int h = 0; h < middles; ++h) middle(g, h);
    if (xstate_) {
      text += "    }}\n";
    } else {
      put("    <transition event=\"reset\" target=\"", (g + 1) % groups, "\"/>\n");
      put("  </state>\n");
    }
  }

  void middle(int g, int h) {
    if (xstate_) {
      put(h == 0 ? "    \"" : "    , \"", g, h, "\": {\"id\": \"", g, h, "\", \"initial\": \"", g, h, 0,
          "\", \"entry\": [{\"type\": \"entered\", \"params\": \"", g, h, "\"}],\n");
      put("      \"on\": {\"skip\": \"#", g, (h + 1) % middles, "\"}, \"states\": {\n");
    } else {
      put("    <state id=\"", g, h, "\">\n");
      put("      <onentry><raise event=\"entered.", g, h, "\"/></onentry>\n");
    }
    for (int s = 0; s < leaves; ++s) {
      // The next leaf in document order, wrapping round to the very first one.
      int ng = g, nh = h, ns = s + 1;
      if (ns == leaves) { ns = 0; ++nh; }
      if (nh == middles) { nh = 0; ++ng; }
      if (ng == groups) ng = 0;
      if (xstate_) {
        put(s == 0 ? "      \"" : "      , \"", g, h, s, "\": {\"id\": \"", g, h, s,
            "\", \"on\": {\"step\": \"#", ng, nh, ns, "\", \"ping.*\": {}}}\n");
      } else {
        put("      <state id=\"", g, h, s, "\"><transition event=\"step\" target=\"", ng, nh, ns,
            "\"/><transition event=\"ping.*\"/></state>\n");
      }
    }
    if (xstate_) {
      text += "    }}\n";
    } else {
      put("      <transition event=\"skip\" target=\"", g, (h + 1) % middles, "\"/>\n");
      put("    </state>\n");
    }
  }

  /// Appends markup pieces; a run of integers `g[, h[, s]]` becomes the id `g<g>_h<h>_s<s>`.
  template <class... Pieces>
  void put(const Pieces&... pieces) {
    int level = 0;
    auto one = [&](const auto& p) {
      if constexpr (std::is_same_v<std::decay_t<decltype(p)>, int>) {
        text += level == 0 ? "g" : level == 1 ? "_h" : "_s";
        text += std::to_string(p);
        ++level;
      } else {
        text += p;
        level = 0;
      }
    };
    (one(pieces), ...);
  }

  bool xstate_;
};

}  // namespace xsn_bench
