#!/usr/bin/env node
// Adds up the "Tests" lines every vitest run printed in a log and prints one closing line,
// "vitest: N passed, N failed, N skipped", so CI reads one total for the whole workspace.
import { readFileSync } from 'node:fs';

const ESC = String.fromCharCode(27);
const text = readFileSync(process.argv[2], 'utf8')
  .split(ESC)
  .map((part, i) => (i === 0 ? part : part.replace(/^\[[0-9;]*m/, '')))
  .join('');
const total = { passed: 0, failed: 0, skipped: 0 };
let runs = 0;
for (const line of text.split('\n')) {
  const m = /^\s*(?:\S+:\s+)?Tests\s+(.*\(\d+\))\s*$/.exec(line);
  if (!m) continue;
  runs++;
  for (const [, n, what] of m[1].matchAll(/(\d+) (passed|failed|skipped|todo)/g)) {
    if (what === 'todo') total.skipped += Number(n);
    else total[what] += Number(n);
  }
}
if (runs === 0) {
  console.log('vitest: no test run found in the log');
  process.exit(1);
}
console.log(`vitest: ${total.passed} passed, ${total.failed} failed, ${total.skipped} skipped`);
