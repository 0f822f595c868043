#!/usr/bin/env node
// The differential test driver: runs cases in XState (in this process) and in xsn (`xsn trace
// MACHINE STEPS --test-fixtures`, one process per case) and requires the same `value` and
// `status` after start and after every step. Other keys xsn prints are ignored.
//
//   node compare.mjs --xstate DIR --xsn PATH --work DIR CASE.json...
//   node compare.mjs --xstate DIR --xsn PATH --work DIR --generated FIRST COUNT
//
// A case file is {"machine": {...}, "steps": [...]}; --generated runs the cases of seeds
// FIRST..FIRST+COUNT-1 (generate.mjs). Each case's machine and steps are written to
// WORK/<case>/ for xsn; they are kept only when the case fails, with the commands that rerun it.
// Exit code 0 when every case agrees, 1 otherwise; the last line is "N passed, N failed".

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { InputError, firstDifference, loadXState, runXState } from './harness.mjs';
import { generateCase } from './generate.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const XSN_TIMEOUT_MS = 60000;
// XSN_XSTATE_ADVANCE=realtime: advance XState's clock one due time after another, as a real clock
// would, instead of SimulatedClock.increment (diagnosis only: `xsn trace` increments).
const REALTIME = process.env.XSN_XSTATE_ADVANCE === 'realtime';

function parseArgs(argv) {
  const a = { files: [] };
  for (let i = 0; i < argv.length; i++) {
    switch (argv[i]) {
      case '--xstate': a.xstate = argv[++i]; break;
      case '--xsn': a.xsn = argv[++i]; break;
      case '--work': a.work = argv[++i]; break;
      case '--generated': a.first = Number(argv[++i]); a.count = Number(argv[++i]); break;
      default:
        if (argv[i].startsWith('-')) throw new InputError(`unknown option ${argv[i]}`);
        a.files.push(argv[i]);
    }
  }
  if (!a.xsn || !a.work) throw new InputError('--xsn PATH and --work DIR are required');
  const generated = a.first !== undefined;
  if (generated && !(Number.isInteger(a.first) && a.first >= 0 && Number.isInteger(a.count) && a.count > 0)) {
    throw new InputError('--generated FIRST COUNT: integers, FIRST >= 0, COUNT >= 1');
  }
  if (generated === (a.files.length > 0)) throw new InputError('case files or --generated, one of them');
  return a;
}

function readCase(file) {
  let c;
  try {
    c = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new InputError(`${file}: ${e.code ?? e.message}`);
  }
  if (c === null || typeof c !== 'object' || !('machine' in c) || !Array.isArray(c.steps)) {
    throw new InputError(`${file}: a case is {"machine": {...}, "steps": [...]}`);
  }
  return { name: path.basename(file, '.json'), ...c };
}

/** Runs xsn on the case; returns {records} or {failure: text}. */
function runXsn(xsn, dir, c) {
  const machine = path.join(dir, 'machine.json');
  const steps = path.join(dir, 'steps.json');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(machine, `${JSON.stringify(c.machine, null, 1)}\n`);
  fs.writeFileSync(steps, `${JSON.stringify(c.steps)}\n`);
  const run = spawnSync(xsn, ['trace', machine, steps, '--test-fixtures'],
    { encoding: 'utf8', timeout: XSN_TIMEOUT_MS, maxBuffer: 64 << 20 });
  if (run.error) return { failure: `xsn trace could not run: ${run.error.message}` };
  if (run.status !== 0) {
    return { failure: `xsn trace exited with ${run.status ?? run.signal}:\n${run.stderr.trim()}` };
  }
  const records = [];
  for (const [i, line] of run.stdout.split('\n').entries()) {
    if (line.trim() === '') continue;
    try {
      records.push(JSON.parse(line));
    } catch (e) {
      return { failure: `xsn trace printed line ${i + 1} that is not JSON: ${line}` };
    }
  }
  return { records };
}

function describeStep(c, i) {
  return i === 0 ? 'start' : `step ${i} ${JSON.stringify(c.steps[i - 1])}`;
}

function show(r) {
  return r ? JSON.stringify({ value: r.value, status: r.status }) : '(no line)';
}

function runCase(X, args, c) {
  const dir = path.join(args.work, c.name);
  let expected;
  try {
    ({ records: expected } = runXState(X, c.machine, c.steps, { realtime: REALTIME }));
  } catch (e) {
    return `XState refuses the case: ${e.message}`;
  }
  const got = runXsn(args.xsn, dir, c);
  let failure = got.failure;
  if (!failure) {
    const i = firstDifference(expected, got.records);
    if (i < 0) {
      fs.rmSync(dir, { recursive: true, force: true });
      return undefined;
    }
    failure = [
      `first difference after ${describeStep(c, i)}`,
      i > 0 ? `  before it (both): ${show(expected[i - 1])}` : undefined,
      `  xstate: ${show(expected[i])}`,
      `  xsn:    ${show(got.records[i])}`,
      `  steps:  ${JSON.stringify(c.steps)}`,
    ].filter(Boolean).join('\n');
  }
  const machine = path.join(dir, 'machine.json');
  const steps = path.join(dir, 'steps.json');
  return `${failure}\n  machine: ${JSON.stringify(c.machine)}\n` +
    `  rerun: ${args.xsn} trace ${machine} ${steps} --test-fixtures\n` +
    `         node ${path.join(HERE, 'run_xstate.mjs')} --xstate ${args.xstate} ${machine} ${steps}`;
}

function main(argv) {
  let args;
  let X;
  try {
    args = parseArgs(argv);
    X = loadXState(args.xstate);
  } catch (e) {
    if (!(e instanceof InputError)) throw e;
    process.stderr.write(`compare: ${e.message}\n`);
    return 64;
  }
  let passed = 0;
  let failed = 0;
  const cases = args.files.length ? args.files.map((f) => () => readCase(f))
    : Array.from({ length: args.count }, (_, k) => () => generateCase(X, args.first + k));
  for (const next of cases) {
    let c;
    let failure;
    try {
      c = next();
      failure = runCase(X, args, c);
    } catch (e) {
      if (!(e instanceof InputError)) throw e;
      failure = e.message;
    }
    if (failure) {
      failed++;
      process.stdout.write(`FAIL ${c ? c.name : '(case)'}: ${failure}\n\n`);
    } else {
      passed++;
    }
  }
  process.stdout.write(`${passed} passed, ${failed} failed\n`);
  return failed ? 1 : 0;
}

process.exitCode = main(process.argv.slice(2));
