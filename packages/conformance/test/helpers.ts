import type { KitBudget } from '../src/index.js';

/** A budget small enough for the suite, large enough to catch every fixture variant. */
export const quick: Partial<KitBudget> = { runs: 150, timeMs: 5_000, shrink: 60 };

/** Splits a printed replay command into its arguments after `pnpm hmmkit replay`. */
export function replayArgs(command: string): Record<string, string> {
  const parts = command.split(/\s+/);
  const out: Record<string, string> = {};
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i]!;
    if (p.startsWith('--')) out[p.slice(2)] = parts[++i]!;
  }
  return out;
}

/**
 * Diagrams with the names that come from module-global counters of the mm model (`anon_vma#N`)
 * normalised: those differ between two runs of the same schedule in one process (reported to the
 * mm owner; see the kit README, "Known limitations").
 */
export function normalizeNames(text: string): string {
  return text.replace(/anon_vma#\d+/g, 'anon_vma#N');
}
