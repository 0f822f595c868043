#!/usr/bin/env node
// Runs a JSON machine config with STEPS in XState (SimulatedClock) and prints what `xsn trace
// MACHINE STEPS --test-fixtures` prints: one JSON line after start, one per step,
// {"value": <StateValue>, "status": "active"|"done"|"error"}.
//
//   node run_xstate.mjs [--xstate DIR] MACHINE.json STEPS.json
//   node run_xstate.mjs [--xstate DIR] CASE.json          ({"machine": ..., "steps": [...]})
//
// DIR is an extracted xstate package (default $XSN_XSTATE_DIR; CMake fetches it into
// <build>/_deps/xstate/package). Exit codes as `xsn trace`: 0 ran, 2 the machine or steps cannot
// be loaded, 64 usage.

import fs from 'node:fs';
import { InputError, loadXState, runXState } from './harness.mjs';

const USAGE = 'usage: node run_xstate.mjs [--xstate DIR] MACHINE.json STEPS.json\n' +
  '       node run_xstate.mjs [--xstate DIR] CASE.json';

function readJson(file) {
  let text;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new InputError(`${file}: cannot read (${e.code ?? e.message})`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new InputError(`${file}: not JSON (${e.message})`);
  }
}

function main(argv) {
  const files = [];
  let dir;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--xstate') {
      dir = argv[++i];
      if (!dir) return usage('--xstate needs a folder');
    } else if (argv[i].startsWith('-')) {
      return usage(`unknown option ${argv[i]}`);
    } else {
      files.push(argv[i]);
    }
  }
  if (files.length < 1 || files.length > 2) return usage('one case file or a machine and steps');
  try {
    const X = loadXState(dir);
    let machine;
    let steps;
    if (files.length === 2) {
      machine = readJson(files[0]);
      steps = readJson(files[1]);
    } else {
      const c = readJson(files[0]);
      if (c === null || typeof c !== 'object' || !('machine' in c) || !('steps' in c)) {
        throw new InputError(`${files[0]}: a case is {"machine": {...}, "steps": [...]}`);
      }
      ({ machine, steps } = c);
    }
    let result;
    try {
      result = runXState(X, machine, steps);
    } catch (e) {
      if (e instanceof InputError) throw e;
      throw new InputError(`${files[0]}: XState refuses the machine: ${e.message}`);
    }
    for (const r of result.records) process.stdout.write(`${JSON.stringify(r)}\n`);
    if (result.error) process.stderr.write(`actor error: ${result.error.message ?? result.error}\n`);
    return 0;
  } catch (e) {
    if (!(e instanceof InputError)) throw e;
    process.stderr.write(`${e.message}\n`);
    return 2;
  }
}

function usage(why) {
  process.stderr.write(`run_xstate: ${why}\n${USAGE}\n`);
  return 64;
}

process.exitCode = main(process.argv.slice(2));
