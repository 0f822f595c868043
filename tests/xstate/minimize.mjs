#!/usr/bin/env node
// Shrinks a case on which xsn and XState disagree to a small one that still disagrees, for bug
// reports: removes steps, states, transitions, guards, actions and `reenter` flags one at a time
// (greedily, until nothing more can go) while XState still runs the case cleanly and `xsn trace`
// still runs it (exit 0) and still differs.
//
//   node minimize.mjs --xstate DIR --xsn PATH [--hang] CASE.json | --seed N
//
// --hang: shrink a case on which `xsn trace` does not finish within 3 s instead.
// Prints the minimal case as JSON and both traces.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { firstDifference, loadXState, runXState } from './harness.mjs';
import { generateCase, isLegalConfiguration } from './generate.mjs';

let HANG = false;

function xsnTrace(xsn, dir, c) {
  const m = path.join(dir, 'machine.json');
  const s = path.join(dir, 'steps.json');
  fs.writeFileSync(m, JSON.stringify(c.machine));
  fs.writeFileSync(s, JSON.stringify(c.steps));
  const r = spawnSync(xsn, ['trace', m, s, '--test-fixtures'],
    { encoding: 'utf8', timeout: HANG ? 3000 : 10000 });
  if (HANG) return r.error?.code === 'ETIMEDOUT' ? 'hang' : undefined;
  if (r.status !== 0) return undefined;
  try {
    return r.stdout.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
  } catch {
    return undefined;
  }
}

function disagrees(X, xsn, dir, c) {
  let expected;
  try {
    let legal = true;  // as generate.mjs: a shrink must not lead XState into an illegal configuration
    const inspect = (ev) => { if (ev.type === '@xstate.microstep') legal &&= isLegalConfiguration(ev.snapshot._nodes); };
    const r = runXState(X, c.machine, c.steps, { maxIterations: 500, inspect });
    if (!legal || r.error || r.records.some((x) => x.status === 'error')) return false;
    expected = r.records;
  } catch {
    return false;
  }
  const got = xsnTrace(xsn, dir, c);
  if (HANG) return got === 'hang';
  return got !== undefined && firstDifference(expected, got) >= 0;
}

/** Every candidate one simplification away from `c`. */
function* shrinks(c) {
  for (let i = c.steps.length - 1; i >= 0; i--) {
    yield { machine: c.machine, steps: c.steps.filter((_, k) => k !== i) };
  }
  const json = JSON.stringify(c.machine);
  const paths = [];
  const walk = (node, p) => {
    if (node === null || typeof node !== 'object') return;
    for (const key of Object.keys(node)) {
      paths.push([...p, key]);
      walk(node[key], [...p, key]);
    }
  };
  walk(c.machine, []);
  const removable = new Set(['on', 'after', 'always', 'onDone', 'entry', 'exit', 'guard', 'actions',
    'reenter', 'id', 'history', 'target']);
  for (const p of paths) {
    const parentKey = p[p.length - 2];
    const key = p[p.length - 1];
    const inMap = ['on', 'after', 'states'].includes(parentKey);
    const inArray = /^\d+$/.test(key);
    if (!(removable.has(key) || inMap || inArray)) continue;
    if (p.length === 1 && key === 'id') continue;
    if (parentKey === 'states') { // keep the initial child, and XState's leniency out of the way
      let owner = c.machine;
      for (const k of p.slice(0, -2)) owner = owner[k];
      if (owner.initial === key) continue;
    }
    const copy = JSON.parse(json);
    let parent = copy;
    for (const k of p.slice(0, -1)) parent = parent[k];
    if (Array.isArray(parent)) parent.splice(Number(key), 1);
    else delete parent[key];
    if (key === 'states') delete parent.initial;
    yield { machine: copy, steps: c.steps };
  }
}

function main(argv) {
  const a = {};
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--xstate') a.xstate = argv[++i];
    else if (argv[i] === '--xsn') a.xsn = argv[++i];
    else if (argv[i] === '--seed') a.seed = Number(argv[++i]);
    else if (argv[i] === '--hang') HANG = true;
    else a.file = argv[i];
  }
  if (!a.xsn || (a.file === undefined && a.seed === undefined)) {
    process.stderr.write('usage: node minimize.mjs --xstate DIR --xsn PATH CASE.json | --seed N\n');
    return 64;
  }
  const X = loadXState(a.xstate);
  let c = a.file ? JSON.parse(fs.readFileSync(a.file, 'utf8')) : generateCase(X, a.seed);
  c = { machine: c.machine, steps: c.steps };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xsn-minimize-'));
  try {
    if (!disagrees(X, a.xsn, dir, c)) {
      process.stderr.write('the case does not disagree (or XState/xsn cannot run it)\n');
      return 1;
    }
    for (let progress = true; progress;) {
      progress = false;
      for (const smaller of shrinks(c)) {
        if (disagrees(X, a.xsn, dir, smaller)) {
          c = smaller;
          progress = true;
          break;
        }
      }
    }
    const expected = runXState(X, c.machine, c.steps).records;
    process.stdout.write(`${JSON.stringify(c)}\n`);
    if (HANG) {
      process.stdout.write(`xsn trace does not finish; xstate: ${expected.map((r) => JSON.stringify({ value: r.value, status: r.status })).join(' ')}\n`);
      return 0;
    }
    const got = xsnTrace(a.xsn, dir, c);
    const i = firstDifference(expected, got);
    process.stdout.write(`first difference at record ${i} (${i === 0 ? 'start' : JSON.stringify(c.steps[i - 1])})\n`);
    process.stdout.write(`xstate: ${expected.map((r) => JSON.stringify({ value: r.value, status: r.status })).join(' ')}\n`);
    process.stdout.write(`xsn:    ${got.map((r) => JSON.stringify({ value: r.value, status: r.status })).join(' ')}\n`);
    return 0;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

process.exitCode = main(process.argv.slice(2));
