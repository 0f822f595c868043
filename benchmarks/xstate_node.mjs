#!/usr/bin/env node
// XState itself on Node.js, on the machines of interpreter.bench.cpp written as XState JSON
// (benchmarks/machines/toggle.json, parallel.json), for docs/benchmarks.md to compare with xsn in
// the same run:
//
//   node benchmarks/xstate_node.mjs [--xstate DIR] [--events N] [--repetitions R]
//
// DIR is the extracted xstate package (default $XSN_XSTATE_DIR, else
// build/_deps/xstate/package, which configuring the tests fetches). Per benchmark: an actor
// started once, a warm-up of N events, then R timed runs of N `actor.send` calls; prints the
// medians of process CPU time (as Google Benchmark's "CPU" column; the process is one thread of
// JavaScript, GC helpers included) and of wall time per event. `count` (the parallel machine's entry action) is a plain function,
// like the C++ benchmark's native action. The same checks as bench_checks.hpp: toggle must end in
// `on` after an odd number of events, and every `next` must run two entry actions.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const VERSION = '5.33.3';

function parseArgs(argv) {
  const a = { events: 100_001, repetitions: 5 };
  for (let i = 0; i < argv.length; i++) {
    const value = argv[++i];
    if (argv[i - 1] === '--xstate') a.xstate = value;
    else if (argv[i - 1] === '--events') a.events = Number(value);
    else if (argv[i - 1] === '--repetitions') a.repetitions = Number(value);
    else throw new Error(`unknown argument ${argv[i - 1]}\n` +
      'usage: node xstate_node.mjs [--xstate DIR] [--events N] [--repetitions R]');
  }
  if (!Number.isInteger(a.events) || a.events < 1 || !Number.isInteger(a.repetitions) || a.repetitions < 1) {
    throw new Error('--events and --repetitions take integers >= 1');
  }
  a.events |= 1; // odd: toggle ends in `on`
  a.xstate ??= process.env.XSN_XSTATE_DIR ?? path.join(HERE, '..', 'build', '_deps', 'xstate', 'package');
  return a;
}

function loadXState(dir) {
  const manifest = path.resolve(dir, 'package.json');
  if (!fs.existsSync(manifest)) {
    throw new Error(`no xstate package in ${dir}: configure the tests once (they fetch ` +
      `xstate@${VERSION} into <build>/_deps/xstate/package) or pass --xstate DIR`);
  }
  const { version } = JSON.parse(fs.readFileSync(manifest, 'utf8'));
  if (version !== VERSION) throw new Error(`${dir} holds xstate ${version}, expected ${VERSION}`);
  return { X: createRequire(manifest)(path.resolve(dir)), version };
}

function machineJson(name) {
  return JSON.parse(fs.readFileSync(path.join(HERE, 'machines', `${name}.json`), 'utf8'));
}

function median(xs) {
  const s = [...xs].sort((p, q) => p - q);
  return s[Math.floor(s.length / 2)];
}

function bench(X, name, eventType, events, repetitions, check) {
  let count = 0;
  const machine = X.setup({ actions: { count: () => { count++; } } }).createMachine(machineJson(name));
  const actor = X.createActor(machine);
  actor.start();
  const event = { type: eventType };
  for (let i = 0; i < events; i++) actor.send(event); // warm-up (JIT)
  const cpu = [];
  const wall = [];
  for (let r = 0; r < repetitions; r++) {
    const before = count;
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < events; i++) actor.send(event);
    const ns = Number(process.hrtime.bigint() - t0);
    const c = process.cpuUsage(c0);
    wall.push(ns / events);
    cpu.push(((c.user + c.system) * 1000) / events);
    check(actor.getSnapshot(), count - before, r);
  }
  actor.stop();
  return { name: `xstate_node/${name}`, cpu: median(cpu), wall: median(wall) };
}

function main() {
  const args = parseArgs(process.argv.slice(2));
  const { X, version } = loadXState(args.xstate);
  const n = args.events;
  const results = [
    bench(X, 'toggle', 'toggle', n, args.repetitions, (snap, _, r) => {
      // warm-up + (r + 1) runs of an odd count: on after an odd total
      const expected = (r % 2 === 0) ? 'off' : 'on';
      if (snap.value !== expected) throw new Error(`toggle: in ${JSON.stringify(snap.value)}, expected ${expected}`);
    }),
    bench(X, 'parallel', 'next', n, args.repetitions, (_, entries) => {
      if (entries !== 2 * n) throw new Error(`parallel: ${entries} entry actions for ${n} events`);
    }),
  ];
  console.log(`xstate ${version} on Node.js ${process.version}, ${n} events x ${args.repetitions} runs`);
  console.log('benchmark'.padEnd(24) + 'CPU ns/event'.padStart(14) + 'wall ns/event'.padStart(15));
  for (const r of results) {
    console.log(r.name.padEnd(24) + r.cpu.toFixed(0).padStart(14) + r.wall.toFixed(0).padStart(15));
  }
}

try {
  main();
} catch (e) {
  process.stderr.write(`xstate_node: ${e.message}\n`);
  process.exitCode = 1;
}
