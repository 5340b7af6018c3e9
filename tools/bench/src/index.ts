/**
 * Shared harness for `pnpm bench`: each case is timed with tinybench, reported as operations per
 * second, and compared with a baseline case measured in the same run (never with a number from an
 * earlier run, which would compare two machines' moods).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Bench } from 'tinybench';

/** One measured workload. `fn` performs `ops` operations of the kind named by `unit`. */
export interface BenchCase {
  /** Row name, e.g. `hmmkit insert`. */
  name: string;
  /** Rows of one group are compared with the group's baseline. */
  group: string;
  /** How many operations one call of `fn` performs. */
  ops: number;
  /** What an operation is (`steps`, `inserts`, `pages`). */
  unit: string;
  /** Name of the case in the same group to divide by; omitted for the baseline itself. */
  baseline?: string;
  /** Called once before timing; not measured. */
  setup?: () => void;
  fn: () => void;
}

export interface BenchRow {
  group: string;
  name: string;
  unit: string;
  opsPerSecond: number;
  meanMs: number;
  samples: number;
  rme: number;
  /** This row's throughput divided by its baseline's, when it names one. */
  ratioToBaseline?: number;
  baseline?: string;
}

export interface SuiteOptions {
  /** Minimum measuring time per case in ms. */
  timeMs?: number;
  /** Extra facts stored beside the rows in the JSON file (targets, derived ratios). */
  notes?: Record<string, unknown>;
}

const here = dirname(fileURLToPath(import.meta.url));
/** `bench/results/` at the repository root. */
export const resultsDir = resolve(here, '../../../bench/results');

/** Runs every case, prints a table, writes `bench/results/<suite>.json`, and returns the rows. */
export async function runSuite(
  suite: string,
  cases: BenchCase[],
  options: SuiteOptions = {},
): Promise<BenchRow[]> {
  const timeMs = Number(process.env.HMMKIT_BENCH_TIME_MS ?? options.timeMs ?? 300);
  const rows: BenchRow[] = [];
  for (const c of cases) {
    c.setup?.();
    const bench = new Bench({ time: timeMs, warmupTime: Math.min(100, timeMs / 3) });
    bench.add(c.name, c.fn);
    await bench.run();
    const task = bench.tasks[0];
    const result = task?.result as
      | { latency?: { mean: number; rme: number; samples?: unknown[] }; throughput?: { mean: number } }
      | undefined;
    const meanMs = result?.latency?.mean ?? Number.NaN;
    const perSecond = meanMs > 0 ? (c.ops * 1000) / meanMs : Number.NaN;
    rows.push({
      group: c.group,
      name: c.name,
      unit: c.unit,
      opsPerSecond: perSecond,
      meanMs,
      samples: Array.isArray(result?.latency?.samples) ? result.latency.samples.length : 0,
      rme: result?.latency?.rme ?? Number.NaN,
      ...(c.baseline ? { baseline: c.baseline } : {}),
    });
  }
  for (const row of rows) {
    if (!row.baseline) continue;
    const base = rows.find((r) => r.group === row.group && r.name === row.baseline);
    if (base) row.ratioToBaseline = row.opsPerSecond / base.opsPerSecond;
  }
  printTable(suite, rows);
  mkdirSync(resultsDir, { recursive: true });
  const file = join(resultsDir, `${suite}.json`);
  writeFileSync(
    file,
    `${JSON.stringify({ suite, node: process.version, timeMs, notes: options.notes ?? {}, rows }, null, 2)}\n`,
  );
  console.log(`wrote ${file}`);
  return rows;
}

function fmt(n: number): string {
  if (!Number.isFinite(n)) return '-';
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return n.toFixed(1);
}

/** Prints rows as an aligned text table. */
export function printTable(title: string, rows: BenchRow[]): void {
  const header = ['group', 'case', 'ops/s', 'unit', 'mean ms', '±%', 'vs baseline'];
  const body = rows.map((r) => [
    r.group,
    r.name,
    fmt(r.opsPerSecond),
    r.unit,
    r.meanMs.toFixed(4),
    r.rme.toFixed(1),
    r.ratioToBaseline === undefined ? '' : `${r.ratioToBaseline.toFixed(2)}x ${r.baseline}`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => (b[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ');
  console.log(`\n== ${title} ==`);
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const b of body) console.log(line(b));
}
