import { describe, expect, it } from 'vitest';
import {
  dfs,
  type ExploreResult,
  explore,
  type Failure,
  pct,
  random,
  replay,
  replayRun,
  type StrategySpec,
} from '../src/index.js';
import { abbaDeadlock, catalogue, trylockLivelock } from './catalogue.js';

/**
 * Explores the buggy version; when the first failure is not of the expected kind (the ABBA program
 * fails lockdep before it deadlocks), explores again keeping every failure.
 */
function hunt(entry: (typeof catalogue)[number], strategy: StrategySpec, maxRuns: number): ExploreResult {
  const budgets = { maxRuns, ...entry.budgets };
  const first = explore(entry.buggy, { strategy, budgets });
  if (first.failures[0]?.violation.kind === entry.kind) return first;
  return explore(entry.buggy, { strategy, budgets, stopOnFailure: false, maxFailures: 10_000 });
}

function firstOfKind(r: ExploreResult, kind: string): Failure | undefined {
  return r.failures.find((f) => f.violation.kind === kind);
}

/** The failure replays from its schedule string to the same violation, step for step. */
function expectReplays(entry: (typeof catalogue)[number], f: Failure): void {
  expect(f.deterministic).toBe(true);
  const again = replayRun(entry.buggy, f.schedule, { maxSteps: entry.budgets?.maxSteps ?? 10_000 });
  expect(again.violation?.kind).toBe(f.violation.kind);
  expect(again.violation?.message).toBe(f.violation.message);
  expect(again.steps).toBe(f.steps);
  expect(again.hash).toBe(f.trace.hash);
}

describe('bug catalogue', () => {
  for (const entry of catalogue) {
    describe(entry.name, () => {
      it(`dfs finds the bug as '${entry.kind}' with a replayable schedule`, () => {
        const r = hunt(entry, dfs(), 20_000);
        const f = firstOfKind(r, entry.kind);
        expect(
          f,
          `kinds found: ${[...new Set(r.failures.map((x) => x.violation.kind))].join(', ')}`,
        ).toBeDefined();
        expectReplays(entry, f!);
        // Every failure of the buggy program is a real one: classified, deterministic.
        for (const other of r.failures) expect(other.deterministic).toBe(true);
      });

      for (const which of entry.foundBy) {
        it(`${which} finds it too`, () => {
          const strategy = which === 'pct' ? pct({ depth: 3, seed: 7 }) : random(7);
          const r = hunt(entry, strategy, entry.randomRuns ?? 2_000);
          const f = firstOfKind(r, entry.kind);
          expect(f).toBeDefined();
          expect(f!.seed).toBeTypeOf('number');
          expectReplays(entry, f!);
        });
      }

      it('the fixed version passes exhaustive dfs', () => {
        const r = explore(entry.fixed, { strategy: dfs(), budgets: { maxRuns: 50_000, ...entry.budgets } });
        expect(r.failures.map((f) => `${f.violation.kind}: ${f.violation.message}`)).toEqual([]);
        expect(r.endedBy).toBe('exhausted');
        expect(r.exhausted).toBe(true);
        expect(r.completedRuns).toBeGreaterThan(0);
      });
    });
  }

  it('the ABBA bug deadlocks in some schedules and is a lock-order violation in the others', () => {
    const r = explore(abbaDeadlock.buggy, { strategy: dfs(), stopOnFailure: false, maxFailures: 100 });
    expect(r.exhausted).toBe(true);
    const kinds = r.failures.map((f) => f.violation.kind).sort();
    // Three traces: CPU0's section first, CPU1's first (both: lockdep), or both first locks first.
    expect(kinds).toEqual(['deadlock', 'lock-order', 'lock-order']);
    const deadlock = firstOfKind(r, 'deadlock')!;
    expect(deadlock.violation.threads.sort()).toEqual(['CPU0', 'CPU1']);
    expect(deadlock.violation.details).toEqual([
      'CPU0 waits: mutex_lock(B), held by CPU1',
      'CPU1 waits: mutex_lock(A), held by CPU0',
    ]);
  });

  it('lockdep reports the ABBA cycle, with both chains, in a run where the sections do not overlap', () => {
    // The default schedule runs CPU0 to completion before CPU1 starts: no deadlock can happen.
    const r = explore(abbaDeadlock.buggy, { strategy: replay('s1:') });
    expect(r.failures).toHaveLength(1);
    const f = r.failures[0]!;
    const events = f.trace.events!;
    const lastCpu0 = Math.max(...events.filter((e) => e.tid === 0).map((e) => e.step));
    const firstCpu1 = Math.min(...events.filter((e) => e.tid === 1).map((e) => e.step));
    expect(lastCpu0).toBeLessThan(firstCpu1);
    expect(events.filter((e) => e.tid === 0).map((e) => e.op.kind)).toContain('mutex_unlock');
    const v = f.violation;
    expect(v.kind).toBe('lock-order');
    expect(v.threads).toEqual(['CPU1', 'CPU0']);
    expect(v.message).toBe(
      'possible circular locking dependency: CPU1 acquires A while holding B, but A -> B was seen',
    );
    const cpu0Lock = events.find((e) => e.tid === 0 && e.op.kind === 'mutex_lock' && e.op.obj?.name === 'B')!;
    // The new chain (CPU1 holds B, takes A) and the recorded one (CPU0 held A, took B).
    expect(v.details).toContain(`  CPU1 at step ${v.step}: holds B; acquires A`);
    expect(v.details).toContain(`  A -> B: CPU0 at step ${cpu0Lock.step} (chain A -> B)`);
    expect(v.details).toContain('existing dependency chain: A -> B');
  });

  it('the trylock livelock is a run that exceeds the step budget, replayable from its schedule', () => {
    const maxSteps = 80;
    const r = explore(trylockLivelock.buggy, { strategy: dfs(), budgets: { maxSteps, maxRuns: 5_000 } });
    expect(r.endedBy).toBe('failure');
    const f = r.failures[0]!;
    expect(f.violation.kind).toBe('livelock');
    expect(f.violation.message).toContain(`exceeded its budget of ${maxSteps} steps`);
    expect(f.steps).toBe(maxSteps);
    expect(f.schedule).toMatch(/^s1:\d/);
    // The trace retries: both CPUs fail a trylock while the other holds its first lock, repeatedly.
    const failed = f.trace.events!.filter((e) => e.op.kind === 'mutex_trylock' && e.result === false);
    expect(new Set(failed.map((e) => e.tid))).toEqual(new Set([0, 1]));
    expect(failed.length).toBeGreaterThan(10);
    const again = replayRun(trylockLivelock.buggy, f.schedule, { maxSteps });
    expect(again.violation?.kind).toBe('livelock');
    expect(again.steps).toBe(maxSteps);
    expect(again.hash).toBe(f.trace.hash);
    expect(f.deterministic).toBe(true);
  });
});
