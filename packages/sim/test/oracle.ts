/**
 * A brute-force oracle for the explorer's partial-order reduction: it runs every interleaving of a
 * small program and names each complete run by its Mazurkiewicz trace, so DPOR's runs can be
 * compared with the whole space.
 */
import {
  Access,
  type Chooser,
  createStrategy,
  dependent,
  dfs,
  footprint,
  type Program,
  type RunResult,
  Sim,
  type StrategySpec,
  type Thread,
} from '../src/index.js';

/**
 * Runs every schedule of `program` (every choice of thread and data value), calling `onRun` with each
 * traced run. Steps that touch nothing (`Access.None`: thread starts, notes) are run as soon as they
 * are runnable: they commute with everything and cannot be disabled, so no trace is lost. Returns the
 * number of runs, or null if there are more than `maxRuns`.
 */
export function bruteForce(
  program: Program,
  onRun: (r: RunResult) => void,
  maxRuns = 100_000,
  maxSteps = 1_000,
): number | null {
  let prefix: number[] = [];
  for (let run = 0; run < maxRuns; run++) {
    const widths: number[] = [];
    const take = (n: number): number => {
      const k = widths.length;
      widths.push(n);
      return k < prefix.length ? prefix[k]! : 0;
    };
    const chooser: Chooser = {
      pick(enabled: readonly Thread[]) {
        const quiet = enabled.find((t) => t.pending.access === Access.None);
        return quiet ?? enabled[take(enabled.length)]!;
      },
      value: (n: number) => take(n),
    };
    onRun(new Sim({ ...program.options, trace: true, maxSteps }).run(program, chooser));
    // Next schedule in lexicographic order: bump the deepest choice that has an alternative left.
    const path = widths.map((_, i) => (i < prefix.length ? prefix[i]! : 0));
    let i = path.length - 1;
    while (i >= 0 && path[i]! + 1 >= widths[i]!) i--;
    if (i < 0) return run + 1;
    prefix = [...path.slice(0, i), path[i]! + 1];
  }
  return null;
}

/**
 * The Mazurkiewicz trace of a traced run, as a canonical string: the lexicographically least
 * (by thread id) linearisation of its dependency graph, where two steps are ordered when they belong
 * to one thread, their footprints are dependent (the explorer's own `dependent`), or the later one
 * joins the earlier one's thread. Data choices are part of the name, and so is the violation.
 */
export function traceKey(run: RunResult): string {
  const ev = run.events ?? [];
  const n = ev.length;
  const preds: number[][] = ev.map(() => []);
  for (let j = 0; j < n; j++) {
    const b = ev[j]!;
    for (let i = 0; i < j; i++) {
      const a = ev[i]!;
      const joins = b.op.access === Access.Join && (b.op.obj as Thread).tid === a.tid;
      if (a.tid === b.tid || joins || dependent(footprint(a.op), footprint(b.op))) preds[j]!.push(i);
    }
  }
  const placed = new Array<boolean>(n).fill(false);
  const out: string[] = [];
  for (let s = 0; s < n; s++) {
    let best = -1;
    for (let j = 0; j < n; j++) {
      if (placed[j] || !preds[j]!.every((p) => placed[p])) continue;
      if (best < 0 || ev[j]!.tid < ev[best]!.tid) best = j;
    }
    placed[best] = true;
    const e = ev[best]!;
    out.push(e.op.kind === 'choose' ? `${e.tid}=${String(e.result)}` : String(e.tid));
  }
  return `${out.join(',')}|${run.violation ? `${run.violation.kind}: ${run.violation.message}` : run.status}`;
}

/**
 * The runs of an exploration with `strategy` (dfs by default), traced: all of them for dfs (throws
 * past `maxRuns`), the first `maxRuns` for the randomised strategies.
 */
export function strategyRuns(
  program: Program,
  strategy: StrategySpec = dfs(),
  maxRuns = 100_000,
): RunResult[] {
  const runner = createStrategy(strategy);
  const out: RunResult[] = [];
  for (let i = 0; i < maxRuns; i++) {
    const chooser = runner.next(i);
    if (!chooser) return out;
    const r = new Sim({ ...program.options, trace: true }).run(program, chooser);
    runner.done(r, chooser);
    out.push(r);
  }
  if (strategy.kind === 'dfs') throw new Error(`${program.name}: more than ${maxRuns} runs`);
  return out;
}
