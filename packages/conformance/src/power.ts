/**
 * The kit's power (mutation score and speed): for each bug variant of a driver, which scenarios
 * catch it, and for the best of them the median runs and time to the first failure over many
 * seeds, and the length of the shrunk schedule and trace.
 */
import type { KitBudget } from './budget.js';
import type { DriverModel } from './contract.js';
import { runScenario } from './runner.js';
import { type Scenario, skipReason } from './scenario.js';
import { scenarios as defaultLibrary } from './scenarios/library.js';

export interface PowerOptions {
  /** Seeds 0..seeds-1 (default 20). */
  seeds?: number;
  /** Seeds tried before a scenario that caught nothing is abandoned (default 3). */
  probeSeeds?: number;
  budget?: Partial<KitBudget>;
  library?: readonly Scenario[];
  /** Variant names (default: all). */
  variants?: readonly string[];
  onProgress?: (variant: string, scenario: string) => void;
}

/** Per-scenario statistics over the seeds. */
export interface PowerCell {
  scenario: string;
  seeds: number;
  caught: number;
  medianRuns: number | null;
  medianMs: number | null;
  /** Median shrunk schedule length (choices) and trace length (steps). */
  medianChoices: number | null;
  medianSteps: number | null;
  kinds: string[];
}

export interface PowerRow {
  driver: string;
  variant: string;
  expect: string[];
  caught: boolean;
  /** The scenario that catches it most reliably, then fastest. */
  best: PowerCell | null;
  cells: PowerCell[];
}

function median(xs: number[]): number | null {
  if (!xs.length) return null;
  const s = xs.slice().sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Measures how well the scenario library catches each variant of `driver`. */
export function measurePower(driver: DriverModel, options: PowerOptions = {}): PowerRow[] {
  const seeds = options.seeds ?? 20;
  const probe = Math.min(options.probeSeeds ?? 3, seeds);
  const library = (options.library ?? defaultLibrary).filter((s) => !skipReason(s, driver.supports));
  const rows: PowerRow[] = [];
  for (const v of driver.variants) {
    if (options.variants && !options.variants.includes(v.name)) continue;
    const cells: PowerCell[] = [];
    for (const s of library) {
      options.onProgress?.(v.name, s.id);
      const runs: number[] = [];
      const ms: number[] = [];
      const choices: number[] = [];
      const steps: number[] = [];
      const kinds = new Set<string>();
      let tried = 0;
      for (let seed = 0; seed < seeds; seed++) {
        if (seed === probe && runs.length === 0) break;
        tried++;
        const r = runScenario(driver, v.name, s, {
          seed,
          ...(options.budget ? { budget: options.budget } : {}),
        });
        const f = r.failure;
        if (f && r.catches) {
          runs.push(f.runsToFailure);
          ms.push(f.timeToFailureMs);
          choices.push(f.shrink.toChoices);
          steps.push(f.shrink.toSteps);
          kinds.add(f.kind);
        }
      }
      cells.push({
        scenario: s.id,
        seeds: tried,
        caught: runs.length,
        medianRuns: median(runs),
        medianMs: median(ms),
        medianChoices: median(choices),
        medianSteps: median(steps),
        kinds: [...kinds],
      });
    }
    const catching = cells.filter((c) => c.caught > 0);
    catching.sort(
      (a, b) =>
        b.caught / b.seeds - a.caught / a.seeds || a.medianRuns! - b.medianRuns! || a.medianMs! - b.medianMs!,
    );
    rows.push({
      driver: driver.name,
      variant: v.name,
      expect: [...v.expect],
      caught: catching.length > 0,
      best: catching[0] ?? null,
      cells,
    });
  }
  return rows;
}

/** The power table as Markdown. */
export function formatPowerTable(rows: readonly PowerRow[]): string {
  const out = [
    '| driver | variant | caught by (best) | seeds caught | median runs | median time | shrunk choices | shrunk steps | also caught by |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const r of rows) {
    const b = r.best;
    const also = r.cells
      .filter((c) => c.caught > 0 && c.scenario !== b?.scenario)
      .map((c) => c.scenario)
      .join(', ');
    out.push(
      b
        ? `| ${r.driver} | ${r.variant} | ${b.scenario} (${b.kinds.join(', ')}) | ${b.caught}/${b.seeds} | ${b.medianRuns} | ${b.medianMs!.toFixed(1)} ms | ${b.medianChoices} | ${b.medianSteps} | ${also || '-'} |`
        : `| ${r.driver} | ${r.variant} | NOT CAUGHT | - | - | - | - | - | - |`,
    );
  }
  return `${out.join('\n')}\n`;
}
