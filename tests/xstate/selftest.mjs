#!/usr/bin/env node
// Checks of the differential harness itself (ctest `xstate.harness`): malformed input gets a clear
// error, the comparator ignores key order and unknown keys, the generator is deterministic, and
// `advance` is SimulatedClock.increment.
//
//   node selftest.mjs --xstate DIR

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkSteps, firstDifference, InputError, loadXState, runXState } from './harness.mjs';
import { generateCase } from './generate.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const dirArg = process.argv.indexOf('--xstate');
const XDIR = dirArg > 0 ? process.argv[dirArg + 1] : process.env.XSN_XSTATE_DIR;
const X = loadXState(XDIR);
const checks = [];
const check = (name, fn) => checks.push([name, fn]);

const toggle = { id: 't', initial: 'a', states: { a: { on: { T: 'b' } }, b: { on: { T: 'a' } } } };

check('malformed steps are refused with the step\'s pointer', () => {
  const bad = [
    [{}, /steps: a JSON array/],
    [[null], /steps\/0: a step is/],
    [[{ advance: -1 }], /steps\/0: "advance" takes/],
    [[{ advance: 'x' }], /steps\/0: "advance" takes/],
    [[{ type: 'A' }, { type: '' }], /steps\/1: an event needs/],
    [[{ type: 3 }], /steps\/0: an event needs/],
  ];
  for (const [steps, message] of bad) assert.throws(() => checkSteps(steps), (e) => e instanceof InputError && message.test(e.message));
});

check('malformed machines and guards are refused', () => {
  assert.throws(() => runXState(X, [], []), /a machine config is a JSON object/);
  assert.throws(() => runXState(X, { initial: 'a', states: { a: 3 } }, []), /\/states\/a: a state config is an object/);
  const guarded = (guard) => ({ initial: 'a', states: { a: { on: { E: { target: 'a', guard } } } } });
  assert.throws(() => runXState(X, guarded({ type: 'and' }), []), /\/states\/a\/on\/E\/guard: guard "and" needs/);
  assert.throws(() => runXState(X, guarded({ type: 'not', guards: ['yes', 'no'] }), []), /"not" takes one guard/);
  assert.throws(() => runXState(X, guarded({ type: 'stateIn' }), []), /"stateIn" needs/);
  assert.throws(() => runXState(X, guarded(7), []), /a guard is a string or an object/);
});

check('run_xstate.mjs: exit 2 with a message for bad files, 64 for usage', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'xsn-xstate-'));
  try {
    const run = (...args) => spawnSync(process.execPath, [path.join(HERE, 'run_xstate.mjs'), '--xstate', XDIR, ...args], { encoding: 'utf8' });
    const notJson = path.join(tmp, 'bad.json');
    fs.writeFileSync(notJson, '{"machine": ');
    let r = run(notJson);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /bad\.json: not JSON/);
    const noSteps = path.join(tmp, 'nosteps.json');
    fs.writeFileSync(noSteps, JSON.stringify({ machine: toggle }));
    r = run(noSteps);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /a case is/);
    const badTarget = path.join(tmp, 'target.json');
    fs.writeFileSync(badTarget, JSON.stringify({ machine: { initial: 'a', states: { a: { on: { E: 'nowhere' } } } }, steps: [{ type: 'E' }] }));
    r = run(badTarget);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /XState refuses the machine/);
    r = run(path.join(tmp, 'missing.json'));
    assert.equal(r.status, 2);
    assert.match(r.stderr, /cannot read/);
    assert.equal(run().status, 64);
    assert.equal(run('--bogus', noSteps).status, 64);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

check('comparator: key order and unknown keys do not matter, values and length do', () => {
  const x = [{ value: { p: 'a', q: 'b' }, status: 'active' }];
  assert.equal(firstDifference(x, [{ status: 'active', value: { q: 'b', p: 'a' }, context: 1 }]), -1);
  assert.equal(firstDifference(x, [{ value: { p: 'a', q: 'c' }, status: 'active' }]), 0);
  assert.equal(firstDifference(x, [{ value: { p: 'a', q: 'b' }, status: 'done' }]), 0);
  assert.equal(firstDifference(x, [...x, ...x]), 1);
  assert.equal(firstDifference([...x, ...x], x), 1);
});

check('generator: deterministic, and every case runs in XState', () => {
  for (const seed of [0, 1, 77, 1199]) {
    const a = generateCase(X, seed);
    assert.deepEqual(generateCase(X, seed), a);
    assert.ok(a.steps.length >= 4);
    assert.ok(runXState(X, a.machine, a.steps).records.every((r) => r.status !== 'error'));
  }
  assert.notDeepEqual(generateCase(X, 1).machine, generateCase(X, 2).machine);
});

check('advance is SimulatedClock.increment; realtime steps through due times', () => {
  const chain = { initial: 'a', states: { a: { after: { 100: 'b' } }, b: { after: { 100: 'c' } }, c: {} } };
  const values = (options) => runXState(X, chain, [{ advance: 250 }, { advance: 99 }, { advance: 1 }], options)
    .records.map((r) => r.value);
  // b's timer is set while the clock is already at 250: due at 350
  assert.deepEqual(values({}), ['a', 'b', 'b', 'c']);
  assert.deepEqual(values({ realtime: true }), ['a', 'c', 'c', 'c']);
  const cut = runXState(X, chain, [{ advance: 199 }, { advance: 1 }]).records.map((r) => r.value);
  assert.deepEqual(cut, ['a', 'b', 'b']);
});

let failed = 0;
for (const [name, fn] of checks) {
  try {
    fn();
  } catch (e) {
    failed++;
    process.stdout.write(`FAIL ${name}: ${e.message}\n`);
  }
}
process.stdout.write(`${checks.length - failed} passed, ${failed} failed\n`);
process.exitCode = failed ? 1 : 0;
