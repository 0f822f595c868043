#pragma once
/// \file The compiled XState part of a chart: guard trees, action sites, delays, actors, context.
#include <xsn/core/value.hpp>
#include <xsn/model/statechart.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace xsn::inline v0 {

/**
 * What an XState chart names and the interpreter cannot know by itself: guards (with their
 * `and`/`or`/`not`/`stateIn` combinators compiled to a tree), action uses with their `params`,
 * named delays and the initial `context`. Sessions evaluate these through the `xstate` datamodel
 * (see `<xsn/runtime/implementations.hpp>`), by the expression index the model stores.
 */
struct xstate_program {
  /// What an expression of the chart stands for.
  enum class expr_kind : std::uint8_t { guard, action, delay, output, actor_action };
  /// One expression: its kind and the index in `guards`, `actions`, `delays` or `outputs`.
  struct expr_ref {
    expr_kind kind = expr_kind::guard;
    std::uint32_t index = 0;
  };
  /// A node of a guard tree.
  struct guard_node {
    enum class op : std::uint8_t { call, all, any, negate, state_in };
    op kind = op::call;
    std::uint32_t name = npos;           ///< `call`: index in `guard_names`.
    value params;                        ///< `call`: the guard's `params` (null when none).
    std::vector<std::uint32_t> children; ///< `all`/`any`/`negate`: indices in `guards`.
    std::vector<state_index> states;     ///< `state_in`: every one must be active.
  };
  /// One use of a named action (an entry in `entry`, `exit` or `actions`).
  struct action_site {
    std::uint32_t name = npos;  ///< Index in `action_names`.
    value params;               ///< `params` (null when none).
  };

  /// An actor started by an `invoke` or a `spawnChild` action.
  struct actor_site {
    std::uint32_t src = npos;  ///< Index in `actor_names`.
    std::string id;            ///< The child's id (an invoke's default: `<index>.<stateId>`).
    std::string system_id;     ///< `systemId` (empty when none).
    value input;               ///< `input` (null when none).
  };
  /// A built-in actor action: `sendTo`, `sendParent`, `forwardTo`, `stopChild`, `spawnChild`.
  struct actor_action {
    enum class op : std::uint8_t { send_to, send_parent, forward_to, stop_child, spawn_child };
    op kind = op::send_to;
    std::string to;              ///< `sendTo`/`forwardTo`: the target; `stopChild`: the child id.
    std::string event;           ///< `sendTo`/`sendParent`: the event's `type`.
    value data;                  ///< The event's other keys (null when none).
    std::uint32_t site = npos;   ///< `spawnChild`: index in `spawns`.
  };

  value context;                          ///< The machine's initial `context` (null when none).
  value output;                           ///< The machine's `output` (null when none).
  std::vector<std::string> guard_names;   ///< Named guards, slot order.
  std::vector<std::string> action_names;  ///< Named actions, slot order.
  std::vector<std::string> delay_names;   ///< Named delays (non-numeric `after` keys), slot order.
  std::vector<guard_node> guards;         ///< Guard tree nodes.
  std::vector<action_site> actions;       ///< Action uses.
  std::vector<value> outputs;             ///< Static `output` of final states.
  std::vector<std::string> actor_names;   ///< Actor logic names (`src`), slot order.
  std::vector<actor_site> invokes;        ///< Parallel to `statechart::invokes`.
  std::vector<actor_site> spawns;         ///< `spawnChild` uses.
  std::vector<actor_action> actor_actions;  ///< Built-in actor actions.
  std::vector<expr_ref> exprs;            ///< Parallel to `statechart::expressions`.
  std::vector<value> meta;                ///< `meta` of each state (null when none), by state index.
};

}  // namespace xsn::inline v0
