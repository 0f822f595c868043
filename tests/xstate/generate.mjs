#!/usr/bin/env node
// Seeded random XState machines and event sequences for the differential tests.
//
//   node generate.mjs --xstate DIR --seed N [--count K] [--out DIR]
//
// generateCase(X, seed) is a pure function of the seed (and of the pinned xstate): it draws
// machines with nested, parallel, history (shallow/deep, with and without a default target),
// final + onDone, always, after, reenter, wildcard (`*`, `x.*`), targetless, `#id`, `.child`,
// multi-target transitions, guards (yes/no/stateIn/and/or/not) and raise actions, `initial` objects
// with actions, `tags` and the machine's `output`, and a sequence of events and `advance` steps. Every target is valid. A draw that XState cannot run to a stable
// state (an `always`/raise cycle: more than MAX_MICROSTEPS microsteps in one macrostep, which
// XState reports through `options.maxIterations`; without that option XState loops forever) or
// that XState refuses is replaced by the next draw of the same seed, so every case terminates.
// Without --out the cases are printed as JSON Lines.

import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { loadXState, runXState } from './harness.mjs';

/** Microsteps one macrostep may take before a draw counts as an endless loop. */
export const MAX_MICROSTEPS = 500;

/** Deterministic 32-bit PRNG (mulberry32). */
function prng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    chance: (p) => next() < p,
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    pick: (xs) => xs[Math.floor(next() * xs.length)],
  };
}

const EVENTS = ['A', 'A', 'B', 'B', 'C', 'D', 'x', 'x.y', 'x.z', 'x.y.z'];
const DESCRIPTORS = ['A', 'A', 'B', 'B', 'C', 'x', 'x.y', 'x.z', 'x.*', 'x.y.*', '*'];
const DELAYS = [50, 100, 150, 200, 300];
const TAGS = ['busy', 'idle', 'red', 'green'];
const MAX_DEPTH = 3;
const MAX_STATES = 22;

// ---- the state tree ----

function buildTree(r) {
  let count = 0;
  const all = [];
  const make = (kind, parent) => {
    const node = { key: `s${count++}`, kind, parent, children: [], depth: parent ? parent.depth + 1 : 0 };
    if (!parent) node.key = 'g';
    if (parent && r.chance(0.25)) node.id = `i${node.key.slice(1)}`;
    node.path = parent ? [...parent.path, node.key] : [];
    all.push(node);
    if (parent) parent.children.push(node);
    return node;
  };
  const room = () => all.length < MAX_STATES;
  const grow = (node) => {
    if (node.kind === 'parallel') {
      const n = r.int(2, 3);
      for (let i = 0; i < n; i++) {
        const compound = node.depth < MAX_DEPTH && room() && r.chance(0.75);
        const region = make(compound ? 'compound' : 'atomic', node);
        if (compound) grow(region);
      }
      return;
    }
    // compound
    const n = r.int(2, 4);
    let shallow = false;
    let deep = false;
    for (let i = 0; i < n || node.children.filter((c) => c.kind !== 'history').length === 0; i++) {
      let kind = 'atomic';
      const x = r.int(0, 99);
      if (i > 0 && x < 12) kind = 'final';
      else if (i > 0 && x < 22 && node.parent) kind = 'history';
      else if (x < 42 && node.depth < MAX_DEPTH && room()) kind = 'compound';
      else if (x < 52 && node.depth < MAX_DEPTH && room()) kind = 'parallel';
      if (kind === 'history') {
        const deepKind = r.chance(0.5);
        if (deepKind ? deep : shallow) kind = 'atomic';
        else if (deepKind) deep = true;
        else shallow = true;
        if (kind === 'history') {
          const h = make('history', node);
          h.history = deepKind ? 'deep' : 'shallow';
          continue;
        }
      }
      const child = make(kind, node);
      if (kind === 'compound' || kind === 'parallel') grow(child);
    }
    const candidates = node.children.filter((c) => c.kind !== 'history');
    node.initial = r.chance(0.9) ? candidates.find((c) => c.kind !== 'final') ?? candidates[0]
      : r.pick(candidates);
  };
  const root = make(r.chance(0.85) ? 'compound' : 'parallel', null);
  grow(root);
  return { root, all };
}

function descendants(node) {
  return node.children.flatMap((c) => [c, ...descendants(c)]);
}

function isAncestor(a, b) { // a is a proper ancestor of b
  for (let p = b.parent; p; p = p.parent) if (p === a) return true;
  return false;
}

function stateId(node) {
  return node.id ?? ['g', ...node.path].join('.');
}

// ---- transitions ----

function targetString(r, source, target) {
  if (source && source.parent && target.parent === source.parent && r.chance(0.6)) return target.key;
  if (source && isAncestor(source, target) && r.chance(0.6)) {
    return `.${target.path.slice(source.path.length).join('.')}`;
  }
  return `#${stateId(target)}`;
}

function pickTargets(r, tree, source) {
  const parallels = tree.all.filter((n) => n.kind === 'parallel');
  if (parallels.length && r.chance(0.12)) {
    const p = r.pick(parallels);
    const regions = [...p.children];
    const a = regions.splice(r.int(0, regions.length - 1), 1)[0];
    const b = r.pick(regions);
    const inside = (reg) => r.pick([reg, ...descendants(reg)].filter((n) => n.kind !== 'history'));
    return [inside(a), inside(b)].map((t) => `#${stateId(t)}`);
  }
  const targets = tree.all.filter((n) => n !== tree.root);
  // favour nearby states: siblings and descendants
  const near = targets.filter((n) => (source && n.parent === source.parent) || isAncestor(source, n));
  const t = near.length && r.chance(0.6) ? r.pick(near) : r.pick(targets);
  return targetString(r, source, t);
}

function stateValueOf(node) { // the StateValue that `matches` node
  let value = node.path[node.path.length - 1];
  for (let i = node.path.length - 2; i >= 0; i--) value = { [node.path[i]]: value };
  return value;
}

function pickGuard(r, tree, depth = 0) {
  const x = r.int(0, 99);
  const states = tree.all.filter((n) => n !== tree.root && n.kind !== 'history');
  if (x < 20) return 'yes';
  if (x < 40) return 'no';
  if (x < 70 || depth > 1) {
    const s = r.pick(states);
    const value = r.chance(0.8) ? `#${stateId(s)}` : stateValueOf(s);
    return { type: 'stateIn', stateValue: value };
  }
  if (x < 80) return { type: 'not', guards: [pickGuard(r, tree, depth + 1)] };
  return { type: r.pick(['and', 'or']), guards: [pickGuard(r, tree, depth + 1), pickGuard(r, tree, depth + 1)] };
}

function pickActions(r) {
  return r.chance(0.7) ? [{ type: 'raise', params: { type: r.pick(EVENTS) } }] : ['noop'];
}

function makeTransition(r, tree, source, { allowShorthand = true, mustTarget = false } = {}) {
  const t = {};
  if (mustTarget || r.chance(0.85)) t.target = pickTargets(r, tree, source);
  if (r.chance(0.3)) t.guard = pickGuard(r, tree);
  if (r.chance(t.target === undefined ? 0.7 : 0.2)) t.actions = pickActions(r);
  if (t.target !== undefined) {
    const x = r.int(0, 99);
    if (x < 25) t.reenter = true;
    else if (x < 35) t.reenter = false;
  }
  if (allowShorthand && typeof t.target === 'string' && Object.keys(t).length === 1 && r.chance(0.5)) {
    return t.target;
  }
  return t;
}

function transitionsFor(r, tree, source, options) {
  if (r.chance(0.3)) {
    const first = makeTransition(r, tree, source, { ...options, allowShorthand: false });
    if (typeof first === 'object' && !first.guard) first.guard = pickGuard(r, tree);
    return [first, makeTransition(r, tree, source, { ...options, allowShorthand: false })];
  }
  return makeTransition(r, tree, source, options);
}

function hasFinal(node) {
  if (node.kind === 'compound') return node.children.some((c) => c.kind === 'final');
  if (node.kind === 'parallel') return node.children.every((c) => c.kind === 'compound' && hasFinal(c));
  return false;
}

// ---- JSON ----

function emit(r, tree, node) {
  const out = {};
  if (!node.parent) out.id = 'g';
  else if (node.id) out.id = node.id;
  if (node.kind === 'history') {
    out.type = 'history';
    if (node.history === 'deep' || r.chance(0.5)) out.history = node.history;
    if (r.chance(0.5)) {
      const options = descendants(node.parent).filter((n) => n.kind !== 'history' &&
        (node.history === 'deep' || n.parent === node.parent));
      const t = r.pick(options);
      out.target = r.chance(0.8) ? t.path.slice(node.parent.path.length).join('.') : `#${stateId(t)}`;
    }
    return out;
  }
  if (node.kind === 'final') {
    out.type = 'final';
  } else if (node.kind === 'parallel') {
    out.type = 'parallel';
  } else if (node.kind === 'compound') {
    out.initial = node.initial.key;
  }
  if (r.chance(0.15)) out.entry = pickActions(r);
  if (r.chance(0.1)) out.exit = pickActions(r);
  if (node.kind !== 'final') {
    const n = r.int(node.parent ? 1 : 0, 3);
    const descriptors = [...new Set(Array.from({ length: n }, () => r.pick(DESCRIPTORS)))];
    if (descriptors.length) {
      out.on = {};
      for (const d of descriptors) out.on[d] = transitionsFor(r, tree, node);
    }
    if (r.chance(0.15)) {
      const t = makeTransition(r, tree, node, { allowShorthand: false, mustTarget: r.chance(0.8) });
      if (typeof t === 'object' && !t.guard && r.chance(0.8)) t.guard = pickGuard(r, tree);
      out.always = r.chance(0.5) ? [t] : t;
    }
    if (r.chance(0.18)) {
      out.after = {};
      const k = r.int(1, 2);
      for (let i = 0; i < k; i++) out.after[r.pick(DELAYS)] = transitionsFor(r, tree, node, { mustTarget: true });
    }
    if (node.parent && hasFinal(node) && r.chance(0.6)) {
      out.onDone = makeTransition(r, tree, node, { mustTarget: r.chance(0.9) });
    }
  }
  if (node.children.length) {
    out.states = {};
    for (const c of node.children) out.states[c.key] = emit(r, tree, c);
  }
  return out;
}

function makeSteps(r) {
  const n = r.int(4, 12);
  const steps = [];
  for (let i = 0; i < n; i++) {
    if (r.chance(0.25)) steps.push({ advance: r.int(1, 12) * 25 });
    else steps.push({ type: r.pick(EVENTS) });
  }
  return steps;
}

/**
 * Decorations drawn from a second PRNG, so that they leave the rest of a seed's draw as it was:
 * `initial: {target, actions}` objects, `tags` on states and the machine's `output`.
 */
function decorate(r, machine) {
  const walk = (node) => {
    if (node.type === 'history') return;
    if (typeof node.initial === 'string' && r.chance(0.15)) node.initial = { target: node.initial, actions: pickActions(r) };
    if (r.chance(0.15)) node.tags = r.chance(0.3) ? r.pick(TAGS) : [...new Set([r.pick(TAGS), r.pick(TAGS)])];
    for (const child of Object.values(node.states ?? {})) walk(child);
  };
  walk(machine);
  if (r.chance(0.3)) machine.output = r.chance(0.5) ? { n: r.int(0, 9) } : r.pick(TAGS);
  return machine;
}

function draw(seed) {
  const r = prng(seed);
  const tree = buildTree(r);
  const c = { machine: emit(r, tree, tree.root), steps: makeSteps(r) };
  decorate(prng(seed ^ 0x5bd1e995), c.machine);
  return c;
}

/**
 * True when every active state's parent is active too. XState 5.33 can leave a state active
 * without its parent after a microstep (KNOWN_DIFFERENCES.md, "Illegal configurations"); draws
 * where any microstep does so are replaced.
 */
export function isLegalConfiguration(nodes) {
  if (!nodes) return true;
  const active = new Set(nodes);
  return nodes.every((n) => !n.parent || active.has(n.parent));
}

/**
 * True when XState runs the case to the end, every macrostep stable, with no actor error, in
 * legal configurations.
 */
function runsCleanly(X, c) {
  try {
    let legal = true;
    const inspect = (ev) => { if (ev.type === '@xstate.microstep') legal &&= isLegalConfiguration(ev.snapshot._nodes); };
    const { records, error } = runXState(X, c.machine, c.steps, { maxIterations: MAX_MICROSTEPS, inspect });
    return legal && !error && records.every((rec) => rec.status !== 'error');
  } catch {
    return false;
  }
}

/** The generated case of `seed`: {name, seed, machine, steps}. */
export function generateCase(X, seed) {
  for (let attempt = 0; attempt < 1000; attempt++) {
    const c = draw(((seed * 7919) ^ (attempt * 104729)) + attempt);
    if (runsCleanly(X, c)) return { name: `generated-${seed}`, seed, ...c };
  }
  throw new Error(`generate: no draw of seed ${seed} runs cleanly in XState`);
}

function main(argv) {
  let dir;
  let seed;
  let count = 1;
  let out;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = argv[++i];
    if (a === '--xstate') dir = value;
    else if (a === '--seed') seed = Number(value);
    else if (a === '--count') count = Number(value);
    else if (a === '--out') out = value;
    else {
      process.stderr.write(`generate: unknown argument ${a}\n` +
        'usage: node generate.mjs --xstate DIR --seed N [--count K] [--out DIR]\n');
      return 64;
    }
  }
  if (!Number.isInteger(seed) || seed < 0 || !Number.isInteger(count) || count < 1) {
    process.stderr.write('generate: --seed N (an integer >= 0) and --count K (>= 1)\n');
    return 64;
  }
  const X = loadXState(dir);
  if (out) fs.mkdirSync(out, { recursive: true });
  for (let s = seed; s < seed + count; s++) {
    const c = generateCase(X, s);
    const text = JSON.stringify({ machine: c.machine, steps: c.steps });
    if (out) fs.writeFileSync(path.join(out, `${c.name}.json`), `${text}\n`);
    else process.stdout.write(`${text}\n`);
  }
  return 0;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  process.exitCode = main(process.argv.slice(2));
}
