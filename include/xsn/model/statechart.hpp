#pragma once
/// \file The immutable compiled statechart that parsers produce and sessions share.
#include <xsn/detail/bitset.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

namespace xsn::inline v0 {

/// Index of a state in `statechart::states` (document order; 0 is the root).
using state_index = std::uint32_t;
/// Index of a transition in `statechart::transitions`.
using transition_index = std::uint32_t;
/// Index of an expression in `statechart::expressions`.
using expr_index = std::uint32_t;
/// "No index".
inline constexpr std::uint32_t npos = UINT32_MAX;

/// 1-based line and column of an element or attribute in its source document.
struct source_location {
  std::uint32_t line = 0;    ///< 1-based line, 0 when unknown.
  std::uint32_t column = 0;  ///< 1-based column, 0 when unknown.
};

/// An expression, location expression or script body, evaluated by the datamodel by index.
struct expression {
  std::string text;     ///< Source text.
  source_location loc;  ///< Where it stands in the document.
};

/// The kind of a state node.
enum class state_kind : std::uint8_t { atomic, compound, parallel, final_state, history };
/// The kind of a history pseudo-state.
enum class history_kind : std::uint8_t { none, shallow, deep };

struct action;
/// A block of executable content (an `onentry`, a transition body, ...).
using action_block = std::vector<action>;

/// `<param name expr|location>`.
struct param {
  std::string name;          ///< Key in the event data.
  expr_index expr = npos;    ///< Value expression, or
  expr_index location = npos;  ///< location expression.
};

/// `<content expr>` or inline `<content>...</content>`.
struct content {
  expr_index expr = npos;     ///< Value expression, when given.
  std::string text;           ///< Inline body (raw markup or text) when no `expr`.
  std::uint32_t chart = npos; ///< Index in `statechart::inline_charts` when the body is `<scxml>`.
};

/// `<raise event>`.
struct raise_action { std::string event; std::uint32_t name_id = npos; };
/// `<send>`.
struct send_action {
  std::string event; expr_index eventexpr = npos; std::uint32_t name_id = npos;
  std::string target; expr_index targetexpr = npos;
  std::string type; expr_index typeexpr = npos;
  std::string id; expr_index idlocation = npos;
  std::chrono::milliseconds delay{0}; expr_index delayexpr = npos;
  std::vector<expr_index> namelist;  ///< Location expressions.
  std::vector<std::string> namelist_names;  ///< Their source text, used as keys.
  std::vector<param> params;
  std::optional<content> body;
};
/// `<cancel sendid|sendidexpr>`.
struct cancel_action { std::string sendid; expr_index sendidexpr = npos; };
/// `<log label expr>`.
struct log_action { std::string label; expr_index expr = npos; };
/// `<assign location expr|content>`.
struct assign_action { expr_index location = npos; expr_index expr = npos; std::optional<content> body; };
/// `<script>` (inline or `src`, loaded at parse time).
struct script_action { expr_index script = npos; };
/// One `if`/`elseif`/`else` branch; `cond == npos` for `else`.
struct if_branch { expr_index cond = npos; action_block body; };
/// `<if>` with its `elseif` and `else` branches.
struct if_action { std::vector<if_branch> branches; };
/// `<foreach array item index>`.
struct foreach_action { expr_index array = npos; expr_index item = npos; expr_index index = npos; action_block body; };
/// An extension element bound to a native C++ handler by name (`<xsn:action name="..."/>`).
struct native_action { std::string name; std::uint32_t slot = npos; };

/// One executable content element.
struct action {
  std::variant<raise_action, send_action, cancel_action, log_action, assign_action, script_action,
               if_action, foreach_action, native_action>
      op;
  source_location loc;  ///< For error messages.
};

/// `<data id expr|src|content>`.
struct data_decl {
  std::string id;              ///< Variable name.
  expr_index expr = npos;      ///< Initial value expression.
  std::optional<std::string> text;  ///< Inline content or the loaded `src` text.
  std::string src_error;       ///< Non-empty when `src` could not be read.
  source_location loc;
};

/// `<donedata>`: either content or params.
struct donedata {
  std::optional<content> body;
  std::vector<param> params;
};

/// `<invoke>`.
struct invoke_decl {
  std::string type = "http://www.w3.org/TR/scxml/"; expr_index typeexpr = npos;
  std::string src; expr_index srcexpr = npos;
  std::string id; expr_index idlocation = npos;
  std::vector<expr_index> namelist;
  std::vector<std::string> namelist_names;
  std::vector<param> params;
  std::optional<content> body;
  bool autoforward = false;
  action_block finalize;
  state_index parent = npos;
  source_location loc;
};

/// A state node: `<scxml>` (index 0), `<state>`, `<parallel>`, `<final>` or `<history>`.
struct state_node {
  std::string id;                     ///< `id` attribute (generated when absent).
  std::string key;                    ///< XState state key (its name in the parent's `states`); empty for SCXML.
  state_kind kind = state_kind::atomic;
  history_kind history = history_kind::none;
  state_index parent = npos;          ///< npos for the root.
  state_index subtree_end = 0;        ///< One past the last descendant (preorder numbering).
  std::uint32_t depth = 0;            ///< 0 for the root.
  std::vector<state_index> children;  ///< Child states in document order, history excluded.
  std::vector<state_index> histories; ///< History children.
  transition_index initial = npos;    ///< Default-entry transition (compound states and root).
  std::vector<action_block> onentry;  ///< Each `<onentry>` is its own block.
  std::vector<action_block> onexit;
  std::vector<transition_index> transitions;  ///< Outgoing transitions in document order.
  std::vector<std::uint32_t> invokes;         ///< Indices in `statechart::invokes`.
  std::vector<std::uint32_t> data;            ///< Indices in `statechart::data` declared here.
  std::optional<donedata> done;       ///< `<donedata>` of a final state.
  std::string done_event;             ///< `done.state.<id>` raised when this state completes.
  std::uint32_t done_name_id = npos;  ///< Interned id of `done_event`, when a descriptor names it.
  source_location loc;
  bool explicit_id = false;           ///< False when the id was generated.
  bool eventless_in_chain = false;    ///< This state or an ancestor has an eventless transition.
  std::vector<std::string> tags;      ///< XState `tags` (empty for SCXML).
  std::string description;            ///< XState `description` (empty when none).
};

/// A transition (also the synthetic default-entry transitions of compound and history states).
struct transition_node {
  state_index source = npos;
  std::vector<std::uint32_t> events;  ///< Event descriptor name ids (see `statechart::names`).
  bool any_event = false;             ///< True for `*`.
  expr_index cond = npos;
  std::vector<state_index> targets;
  bool internal = false;              ///< `type="internal"`.
  bool reenter = false;               ///< XState v5 `reenter: true`.
  action_block body;
  source_location loc;
  /// Precomputed transition domain when no target is a history state; npos otherwise or when
  /// the transition is targetless.
  state_index domain = npos;
  bool history_target = false;        ///< Some target is a history state.
  /// When no history state is involved, the entry set is fixed: the states this transition
  /// enters, in entry order, each with "enter by default" (run its initial content).
  bool static_entry = false;
  std::vector<std::pair<state_index, bool>> entry;
  bool eventless() const noexcept { return events.empty() && !any_event; }
};

/// Hot-path view of a state: what the interpreter reads per event, packed (see `statechart`).
struct hot_state {
  enum : std::uint32_t {
    onentry = 1, onexit = 2, invokes = 4, data = 8, final = 16, eventless_in_chain = 32, initial_body = 64,
    compound = 128, parallel = 256,  ///< The state's kind, for selection without reading `state_node`.
    last_region = 512,               ///< The last child (history excluded) of a parallel state.
    childless = 1024,                ///< A compound or parallel state without children.
    indexed = 2048,                  ///< Its transitions are looked up by event (`statechart::event_index`).
    any_event = 4096,                ///< Indexed, and some transition of it has the descriptor `*`.
    entry_calls = 8192               ///< Its `onentry` only calls: native actions and scripts (XState's actions).
  };
  state_index parent = npos;
  state_index subtree_end = 0;
  transition_index first_transition = 0;  ///< The state's transitions are contiguous.
  std::uint32_t transition_count = 0;
  std::uint32_t flags = 0;
};

/// Hot-path view of a transition.
struct hot_transition {
  static constexpr std::uint32_t eventless_marker = npos - 1;  ///< `event` of eventless ones.
  static constexpr std::uint32_t multi_marker = npos - 2;      ///< Several descriptors or `*`.
  static constexpr std::uint32_t by_default_bit = 1u << 31;    ///< In `hot_entry`: default entry.
  /// `own_exit`: taking it exits only its source, an atomic state without `onexit` whose compound
  /// parent is the domain, runs no transition content and enters a static entry set.
  /// `direct`: `own_exit`, and no content, invoke or final state on the way in either.
  enum : std::uint32_t { static_entry = 1, history_target = 2, body = 4, direct = 8, own_exit = 16 };
  std::uint32_t event = 0;       ///< The single descriptor's name id, or a marker.
  expr_index cond = npos;
  state_index domain = npos;     ///< Precomputed domain (npos: targetless or history target).
  std::uint32_t entry_begin = 0, entry_end = 0;  ///< Static entry set in `hot_entry`.
  std::uint32_t flags = 0;
};

/// An entry of `statechart::event_index`: a transition of an indexed state under one of its keys.
struct indexed_transition {
  state_index source = npos;
  transition_index transition = npos;
};

/// Which specification's rules a chart runs by: W3C SCXML (documents from `parse_scxml`) or
/// XState v5 (JSON machine configs, C++-built machines). One interpreter, one model; the flag picks
/// the rules where the two differ (transition domains and `reenter`, event descriptor matching,
/// platform event names).
enum class chart_semantics : std::uint8_t { scxml, xstate };

struct xstate_program;  // <xsn/model/xstate_program.hpp>: guards, action sites, delays, context of an XState chart

/// The binding mode of `<scxml binding>`.
enum class binding_mode : std::uint8_t { early, late };

/**
 * A compiled statechart: states in document order with precomputed tables.
 *
 * Built once by a parser, immutable afterwards, and shared by any number of sessions
 * (`std::shared_ptr<const statechart>`). Sessions never see XML or JSON again.
 */
class statechart {
 public:
  std::string name;                     ///< `<scxml name>`.
  std::string datamodel = "null";       ///< `<scxml datamodel>`.
  binding_mode binding = binding_mode::early;
  chart_semantics semantics = chart_semantics::scxml;  ///< Whose rules this chart runs by.
  /// XState charts: named guards, action sites, delays and the initial context (null for SCXML).
  std::shared_ptr<const xstate_program> xstate;
  std::string source_name;              ///< File name or label of the document.
  std::string base_dir;                 ///< Folder against which relative `src` resolve.
  std::vector<state_node> states;
  std::vector<transition_node> transitions;
  std::vector<expression> expressions;
  std::vector<data_decl> data;          ///< All `<data>` in document order.
  std::vector<invoke_decl> invokes;
  action_block root_scripts;            ///< Top-level `<script>` elements, run at start.
  std::vector<std::shared_ptr<const statechart>> inline_charts;  ///< `<content><scxml>` children.
  std::vector<std::string> native_actions;  ///< Names used by `<xsn:action>`, slot order.
  bool has_eventless = false;           ///< Some state has an eventless transition.

  /// Packed copies of what the interpreter reads per event, built by `finalize`. Transitions are
  /// numbered so that each state's outgoing transitions are contiguous.
  std::vector<hot_state> hot_states;
  std::vector<hot_transition> hot_transitions;
  std::vector<std::uint32_t> hot_entry;  ///< Static entry sets: state | `by_default_bit`.
  detail::bitset atomic_mask;            ///< Atomic and final states (the root excluded).
  bool has_histories = false;            ///< Some state has a history child.

  /// States with more outgoing transitions than this are `hot_state::indexed`: an event looks up
  /// the few that can match it instead of scanning them all.
  static constexpr std::uint32_t index_threshold = 8;
  /// The transitions of the indexed states by key: a descriptor's name id, `any_key()` for `*`,
  /// `eventless_key()` for eventless ones. A key's entries are `[event_index_offsets[key],
  /// event_index_offsets[key + 1])`, sorted by source state, then by transition (document order).
  std::vector<indexed_transition> event_index;
  std::vector<std::uint32_t> event_index_offsets;  ///< `eventless_key() + 2` offsets.
  /// The key of `*` transitions in `event_index`.
  std::uint32_t any_key() const noexcept { return static_cast<std::uint32_t>(names.size()); }
  /// The key of eventless transitions in `event_index`.
  std::uint32_t eventless_key() const noexcept { return any_key() + 1; }
  /// The entries of indexed state `s` under `key`, in document order.
  std::pair<const indexed_transition*, const indexed_transition*> indexed(state_index s, std::uint32_t key) const noexcept;
  /// Appends to `out` the name ids of the descriptors that match the event `name` (`name_id`: its
  /// interned id, or npos): the keys to look it up under, besides `any_key()`.
  void descriptor_keys(std::string_view name, std::uint32_t name_id, std::vector<std::uint32_t>& out) const;

  /// The transition an event selects from one active atomic state (the first that matches in it
  /// or its nearest ancestor), by atomic state and event name id, when no guard takes part. In a
  /// chart without parallel states that is the event's whole selection; with parallel states
  /// (`chain_parallel`) it is one atomic state's part of it. Entry
  /// `chain_slot[atomic] + name_id` is a transition, `chain_none` (none matches:
  /// the event is ignored) or `chain_guarded` (a guard decides: select the usual way). Empty for
  /// XState charts with a compound state without children, when the table would have more than
  /// `chain_table_limit` entries, and when building it would take more than 4x that many
  /// (state, name) answers (deep charts of `*`).
  std::vector<transition_index> chain_next;
  bool chain_parallel = false;  ///< `chain_next` is built and the chart has a parallel state.
  /// Per state: where its row starts in `chain_next` (row number times `names.size()`; the table's
  /// limit keeps it in 32 bits), npos if not atomic.
  std::vector<std::uint32_t> chain_slot;
  static constexpr transition_index chain_none = npos;
  static constexpr transition_index chain_guarded = npos - 1;
  static constexpr std::size_t chain_table_limit = std::size_t{1} << 18;  ///< 1 MB of entries.
  /// The `chain_next` entry of atomic state `atomic` for name id `name_id` (the table is not empty).
  transition_index chain_step(state_index atomic, std::uint32_t name_id) const noexcept {
    return chain_next[std::size_t{chain_slot[atomic]} + name_id];
  }

  /// Interned event descriptors and names (descriptor `foo.*` is stored as `foo`).
  std::vector<std::string> names;
  /// For each name id, the name ids that are token prefixes of it (itself included).
  std::vector<std::vector<std::uint32_t>> name_prefixes;

  /// The state with id `id`, or npos.
  state_index find_state(std::string_view id) const noexcept;
  /// The interned id of an event name, or npos when no descriptor names it exactly.
  std::uint32_t find_name(std::string_view n) const noexcept;
  /// Resolves `ev` against this chart once, so sessions of it match it without string work.
  /// Change `ev.name` afterwards and the event must be resolved again.
  template <class Event>
  void resolve(Event& ev) const noexcept {
    ev.name_id = find_name(ev.name);
    ev.resolved_by = this;
  }
  /// True when `d` is a proper or improper descendant... see `is_descendant`.
  bool is_descendant(state_index s, state_index anc) const noexcept {
    return s > anc && s < states[anc].subtree_end;
  }
  /// True for atomic and final states.
  bool is_atomic(state_index s) const noexcept {
    auto k = states[s].kind;
    return k == state_kind::atomic || k == state_kind::final_state;
  }
  /// True when transition `t` matches the event with `name` and interned `name_id`.
  bool matches(const transition_node& t, std::string_view name, std::uint32_t name_id) const noexcept {
    if (t.events.size() == 1 && t.events[0] == name_id) return true;
    return matches_slow(t, name, name_id);
  }
  /// `matches` without the single-descriptor fast path.
  bool matches_slow(const transition_node& t, std::string_view name, std::uint32_t name_id) const noexcept;

  /// Builds the lookup tables and precomputed domains; parsers call it once at the end.
  void finalize();

 private:
  void build_hot_tables();
  void build_event_index();
  void build_chain_table();
  /// Hash that lets the maps below be searched with a `std::string_view` without allocating.
  struct string_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, state_index, string_hash, std::equal_to<>> state_ids_;
  std::unordered_map<std::string, std::uint32_t, string_hash, std::equal_to<>> name_ids_;
};

/// True when descriptor `desc` (no `.*` suffix) matches event `name` by whole tokens.
bool descriptor_matches(std::string_view desc, std::string_view name) noexcept;

}  // namespace xsn::inline v0
