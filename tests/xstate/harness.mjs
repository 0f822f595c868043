// The XState side of the differential tests: loads the pinned xstate package, turns a JSON machine
// config into an XState machine with the test fixtures of `xsn trace --test-fixtures`, runs it
// under XState's SimulatedClock and returns the same JSON Lines records as `xsn trace`.
//
// Used by run_xstate.mjs (one machine from the command line), compare.mjs (the ctest driver) and
// generate.mjs (which keeps only generated machines that XState runs to a stable state).

import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';

/** The xstate version the corpus is checked against (tests/xstate/CMakeLists.txt fetches it). */
export const XSTATE_VERSION = '5.33.3';

/** An error in the input (a case file, a machine, steps): reported without a stack trace. */
export class InputError extends Error {}

/**
 * Loads the xstate package from `dir` (an extracted package folder with package.json), or from
 * $XSN_XSTATE_DIR. Refuses any version other than XSTATE_VERSION.
 */
export function loadXState(dir = process.env.XSN_XSTATE_DIR) {
  if (!dir) {
    throw new InputError('no xstate package: pass --xstate DIR or set XSN_XSTATE_DIR ' +
      `(an extracted xstate@${XSTATE_VERSION} package folder; CMake fetches it into ` +
      '<build>/_deps/xstate/package)');
  }
  const manifest = path.resolve(dir, 'package.json');
  if (!fs.existsSync(manifest)) {
    throw new InputError(`no xstate package in ${dir} (${manifest} is missing)`);
  }
  const { name, version } = JSON.parse(fs.readFileSync(manifest, 'utf8'));
  if (name !== 'xstate' || version !== XSTATE_VERSION) {
    throw new InputError(`${dir} holds ${name}@${version}, expected xstate@${XSTATE_VERSION}`);
  }
  const require = createRequire(manifest);
  return require(path.resolve(dir));
}

// ---- guards: JSON shapes -> XState guards ----
//
// XState's guard combinators are functions (`and([...])`, `stateIn('#id')`); a JSON machine names
// them by type, as xsn's loader does (include/xsn/parse/xstate.hpp): {"type": "and"|"or",
// "guards": [g, ...]}, {"type": "not", "guard": g} (or "guards": [g]), {"type": "stateIn",
// "state": V} (or "stateValue": V, or either inside "params"), V being "#id", a path "a.b" or a
// state value object. `xstate.and` etc. are accepted as aliases. Anything else is a named guard.

function translateGuard(X, guard, where) {
  if (typeof guard === 'string' || guard === undefined) {
    return guard;
  }
  if (guard === null || typeof guard !== 'object' || Array.isArray(guard)) {
    throw new InputError(`${where}: a guard is a string or an object with "type"`);
  }
  const type = String(guard.type ?? '').replace(/^xstate\./, '');
  const list = (key) => {
    const gs = guard[key];
    if (!Array.isArray(gs) || gs.length === 0) {
      throw new InputError(`${where}: guard "${type}" needs a non-empty array "${key}"`);
    }
    return gs.map((g, i) => translateGuard(X, g, `${where}/${key}/${i}`));
  };
  switch (type) {
    case 'and': return X.and(list('guards'));
    case 'or': return X.or(list('guards'));
    case 'not': {
      if (guard.guard !== undefined) return X.not(translateGuard(X, guard.guard, `${where}/guard`));
      const gs = list('guards');
      if (gs.length !== 1) throw new InputError(`${where}: guard "not" takes one guard`);
      return X.not(gs[0]);
    }
    case 'stateIn': {
      const params = guard.params !== null && typeof guard.params === 'object' ? guard.params : {};
      const value = guard.state ?? guard.stateValue ?? params.state ?? params.stateValue;
      if (value === undefined) throw new InputError(`${where}: guard "stateIn" needs "stateValue"`);
      return X.stateIn(value);
    }
    default: return guard;
  }
}

// ---- actors: xsn's JSON actor actions -> XState's action creators ----
//
// xsn writes sendTo/sendParent/forwardTo/stopChild/spawnChild as action objects (see
// docs/components.md, "Actors"); XState has them as functions. `to` names a child, else an actor
// by systemId (what xsn does), else stays the id so that XState throws as xsn fails.

function actorTarget(to) {
  return ({ self, system }) => self.getSnapshot().children[to] ?? system.get(to) ?? to;
}

function eventOf(e) {
  return typeof e === 'string' ? { type: e } : e;
}

function translateAction(X, a) {
  if (a === null || typeof a !== 'object' || Array.isArray(a)) return a;
  switch (String(a.type ?? '').replace(/^xstate\./, '')) {
    case 'sendTo': return X.sendTo(actorTarget(a.to), eventOf(a.event));
    case 'sendParent': return X.sendParent(eventOf(a.event));
    case 'forwardTo': return X.forwardTo(actorTarget(a.to));
    case 'stopChild': return X.stopChild(a.id);
    case 'spawnChild': return X.spawnChild(a.src, { id: a.id, systemId: a.systemId, input: a.input });
    default: return a;
  }
}

function translateActions(X, actions) {
  if (Array.isArray(actions)) return actions.map((a) => translateAction(X, a));
  return translateAction(X, actions);
}

function translateTransition(X, t, where) {
  if (t === null || typeof t !== 'object' || Array.isArray(t)) return t;
  const out = 'guard' in t ? { ...t, guard: translateGuard(X, t.guard, `${where}/guard`) } : { ...t };
  if ('actions' in t) out.actions = translateActions(X, t.actions);
  return out;
}

function translateTransitions(X, value, where) {
  if (Array.isArray(value)) return value.map((t, i) => translateTransition(X, t, `${where}/${i}`));
  return translateTransition(X, value, where);
}

function translateMap(X, map, where) {
  if (map === null || typeof map !== 'object' || Array.isArray(map)) return map;
  const out = {};
  for (const [key, value] of Object.entries(map)) {
    out[key] = translateTransitions(X, value, `${where}/${escapePointer(key)}`);
  }
  return out;
}

function escapePointer(key) {
  return key.replace(/~/g, '~0').replace(/\//g, '~1');
}

/** A copy of the state config `node` with the guard combinators turned into XState's. */
function translateState(X, node, where) {
  if (node === null || typeof node !== 'object' || Array.isArray(node)) {
    throw new InputError(`${where}: a state config is an object`);
  }
  const out = { ...node };
  if ('on' in node) out.on = translateMap(X, node.on, `${where}/on`);
  if ('after' in node) out.after = translateMap(X, node.after, `${where}/after`);
  if ('always' in node) out.always = translateTransitions(X, node.always, `${where}/always`);
  if ('onDone' in node) out.onDone = translateTransitions(X, node.onDone, `${where}/onDone`);
  if ('entry' in node) out.entry = translateActions(X, node.entry);
  if ('exit' in node) out.exit = translateActions(X, node.exit);
  if (node.invoke && typeof node.invoke === 'object') {
    const one = (inv, at) => {
      if (inv === null || typeof inv !== 'object' || Array.isArray(inv)) return inv;
      const t = { ...inv };
      if ('onDone' in inv) t.onDone = translateTransitions(X, inv.onDone, `${at}/onDone`);
      if ('onError' in inv) t.onError = translateTransitions(X, inv.onError, `${at}/onError`);
      return t;
    };
    out.invoke = Array.isArray(node.invoke) ? node.invoke.map((inv, i) => one(inv, `${where}/invoke/${i}`)) : one(node.invoke, `${where}/invoke`);
  }
  if (node.states && typeof node.states === 'object') {
    out.states = {};
    for (const [key, child] of Object.entries(node.states)) {
      out.states[key] = translateState(X, child, `${where}/states/${escapePointer(key)}`);
    }
  }
  return out;
}

/**
 * The XState machine for a JSON config, with the fixtures of `xsn trace --test-fixtures`: guards
 * `yes`/`no`, actions `raise` (params.type: the event raised) and `noop`. `maxIterations` bounds
 * the microsteps of one macrostep (XState's own `options.maxIterations`; default: unbounded).
 */
export function createMachine(X, config, { maxIterations, fixtureActors, depth = 0 } = {}) {
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    throw new InputError('machine: a machine config is a JSON object');
  }
  // Child machines for `src` names: the root config's `fixtureActors` {name: machine config}
  // (as `xsn trace --test-fixtures` reads them), available to every machine of the tree.
  const named = fixtureActors ?? config.fixtureActors ?? {};
  const actors = {};
  if (depth < 4) {
    for (const [name, child] of Object.entries(named)) {
      actors[name] = createMachine(X, child, { fixtureActors: named, depth: depth + 1 });
    }
  }
  const { fixtureActors: _ignored, ...rest } = config;
  const translated = translateState(X, rest, '');
  if (maxIterations !== undefined) {
    translated.options = { ...(config.options ?? {}), maxIterations };
  }
  return X.setup({
    guards: { yes: () => true, no: () => false },
    actions: {
      raise: X.raise((_, params) => {
        if (!params || typeof params.type !== 'string') {
          throw new Error('action "raise" needs params.type (a string)');
        }
        return { type: params.type };
      }),
      noop: () => {},
    },
    actors,
  }).createMachine(translated);
}

/** Checks a STEPS array (events `{"type": ...}` and `{"advance": MS}`); throws InputError. */
export function checkSteps(steps, where = 'steps') {
  if (!Array.isArray(steps)) throw new InputError(`${where}: a JSON array of steps`);
  steps.forEach((step, i) => {
    const at = `${where}/${i}`;
    if (step === null || typeof step !== 'object' || Array.isArray(step)) {
      throw new InputError(`${at}: a step is {"type": EVENT, ...} or {"advance": MS}`);
    }
    if ('advance' in step) {
      if (!Number.isFinite(step.advance) || step.advance < 0) {
        throw new InputError(`${at}: "advance" takes a number of milliseconds >= 0`);
      }
    } else if (typeof step.type !== 'string' || step.type === '') {
      throw new InputError(`${at}: an event needs a non-empty string "type"`);
    }
  });
}

/** One trace record of a snapshot, as `xsn trace` prints it. */
function record(snapshot) {
  const r = { value: snapshot.value, status: snapshot.status };
  // `tags` (a set: sorted) and the machine's `output`, only when there are any (as xsn trace).
  const tags = [...(snapshot.tags ?? [])].sort();
  if (tags.length && snapshot.status !== 'error') r.tags = tags;
  if (snapshot.output !== undefined && snapshot.output !== null) r.output = snapshot.output;
  return r;
}

/**
 * Advances `clock` by `ms` the way a real clock would: one due time after another, so a timeout
 * scheduled by a callback starts at the time its callback ran. Only for diagnosis (option
 * `realtime`); the tests use `SimulatedClock.increment(ms)`, under which a timeout scheduled during
 * the flush starts at the end of the window, as `xsn trace` does too.
 */
function advanceRealtime(clock, ms) {
  const end = clock.now() + ms;
  for (let rounds = 0; ; rounds++) {
    if (rounds > 1000000) throw new Error(`advance(${ms}): timeouts keep falling due`);
    let next = Infinity;
    for (const t of clock.timeouts.values()) next = Math.min(next, t.start + t.timeout);
    if (next > end) break;
    clock.set(Math.max(next, clock.now()));
  }
  clock.set(end);
}

/**
 * Runs `config` with `steps` in XState; returns the records (one after start, one per step).
 * A machine XState refuses throws (an Error from XState, not an InputError). Options:
 * `maxIterations` (see createMachine), `inspect` (XState's inspection callback), `realtime`
 * (advance one due time after another instead of `SimulatedClock.increment`; see README.md).
 */
export function runXState(X, config, steps, options = {}) {
  checkSteps(steps);
  const machine = createMachine(X, config, options);
  const clock = new X.SimulatedClock();
  const actor = X.createActor(machine, { clock, inspect: options.inspect });
  let error;
  // Without an error observer XState rethrows an actor's error asynchronously.
  const sub = actor.subscribe({ error: (e) => { error = e; } });
  actor.start();
  const records = [record(actor.getSnapshot())];
  for (const step of steps) {
    if ('advance' in step) {
      if (options.realtime) advanceRealtime(clock, step.advance);
      else clock.increment(step.advance);
    } else {
      actor.send(step);
    }
    records.push(record(actor.getSnapshot()));
  }
  sub.unsubscribe();
  actor.stop();
  return { records, error };
}

// ---- comparing traces ----

/** Deep equality of JSON values; object key order does not matter. */
export function jsonEqual(a, b) {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) return a.length === b.length && a.every((x, i) => jsonEqual(x, b[i]));
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && jsonEqual(a[k], b[k]));
}

/** The keys compared; `xsn trace` may print more (they are ignored). */
export const COMPARED_KEYS = ['value', 'status', 'tags', 'output'];

/**
 * The index of the first record where `expected` (XState) and `actual` (xsn) differ in a compared
 * key or in length, or -1 when they agree.
 */
export function firstDifference(expected, actual) {
  const n = Math.max(expected.length, actual.length);
  for (let i = 0; i < n; i++) {
    const e = expected[i];
    const a = actual[i];
    if (!e || !a) return i;
    if (!COMPARED_KEYS.every((k) => jsonEqual(e[k], a[k]))) return i;
  }
  return -1;
}
