/**
 * The run-level choosers of the randomised strategies and of replay.
 */
import { type Chooser, defaultPick, type Sim, StaleScheduleError } from '../core/sim.js';
import type { Thread } from '../core/thread.js';
import { Rng } from './rng.js';

/** Uniformly random choices; a thread that just spun (`cpu_relax`) lets another go first. */
export class RandomChooser implements Chooser {
  private readonly rng: Rng;
  constructor(seed: number) {
    this.rng = new Rng(seed);
  }
  pick(enabled: readonly Thread[], sim: Sim): Thread {
    if (sim.lastRelaxed && sim.lastThread && enabled.length > 1) {
      const others = enabled.filter((t) => t !== sim.lastThread);
      if (others.length > 0 && others.length < enabled.length) return others[this.rng.below(others.length)]!;
    }
    return enabled[this.rng.below(enabled.length)]!;
  }
  value(n: number): number {
    return this.rng.below(n);
  }
}

/**
 * PCT (Burckhardt et al., ASPLOS 2010): random distinct initial priorities >= depth, and depth-1
 * priority change points drawn uniformly over the expected run length; the highest-priority
 * runnable thread always runs, and at the i-th change point the running thread drops to priority
 * depth-i. A bug of depth d is found with probability at least 1/(n * k^(d-1)) per run.
 */
export class PctChooser implements Chooser {
  readonly wantsEveryStep = true;
  private readonly rng: Rng;
  private readonly priority = new Map<Thread, number>();
  private readonly changePoints: number[];
  private lowest: number;

  constructor(
    seed: number,
    private readonly depth: number,
    expectedSteps: number,
  ) {
    this.rng = new Rng(seed);
    const points = new Set<number>();
    const k = Math.max(1, expectedSteps);
    while (points.size < Math.min(depth - 1, k)) points.add(1 + this.rng.below(k));
    this.changePoints = [...points].sort((a, b) => a - b);
    this.lowest = 0;
  }

  private prio(t: Thread): number {
    let p = this.priority.get(t);
    if (p === undefined) {
      // Distinct random initial priorities above every change-point priority.
      p = this.depth + this.rng.float() * 1e6;
      this.priority.set(t, p);
    }
    return p;
  }

  pick(enabled: readonly Thread[], sim: Sim): Thread {
    if (sim.lastRelaxed && sim.lastThread) {
      // A spinning thread yields: it drops below everyone so the thread it waits for can run.
      this.priority.set(sim.lastThread, --this.lowest - this.depth);
    }
    const idx = this.changePoints.indexOf(sim.step);
    if (idx >= 0) this.priority.set(this.highest(enabled), this.depth - 1 - idx);
    return this.highest(enabled);
  }

  private highest(enabled: readonly Thread[]): Thread {
    let best = enabled[0]!;
    let bestP = this.prio(best);
    for (let i = 1; i < enabled.length; i++) {
      const p = this.prio(enabled[i]!);
      if (p > bestP) {
        best = enabled[i]!;
        bestP = p;
      }
    }
    return best;
  }

  value(n: number): number {
    return this.rng.below(n);
  }
}

/**
 * Follows a recorded list of choices, then the default policy. Any choice that does not fit the
 * program (a thread that cannot run, a value out of range) is a {@link StaleScheduleError}.
 */
export class ReplayChooser implements Chooser {
  private index = 0;
  constructor(private readonly choices: readonly number[]) {}

  pick(enabled: readonly Thread[], sim: Sim): Thread {
    if (this.index >= this.choices.length) return defaultPick(enabled, sim.lastThread, sim.lastRelaxed);
    const tid = this.choices[this.index++]!;
    const t = enabled.find((e) => e.tid === tid);
    if (!t) {
      const named = sim.threads[tid]?.name ?? `#${tid}`;
      throw new StaleScheduleError(
        `stale schedule: choice ${this.index} names thread ${tid} (${named}), which cannot run at step ${sim.step}; runnable: ${enabled.map((e) => `${e.tid} (${e.name})`).join(', ')}. Was the program changed since the schedule was recorded?`,
      );
    }
    return t;
  }

  value(n: number, label: string): number {
    if (this.index >= this.choices.length) return 0;
    const v = this.choices[this.index++]!;
    if (v >= n) {
      throw new StaleScheduleError(
        `stale schedule: choice ${this.index} is ${v}, but the choice '${label}' only has ${n} options`,
      );
    }
    return v;
  }

  /** Choices the run did not consume (a schedule longer than the run is stale too). */
  unused(): number {
    return this.choices.length - this.index;
  }
}
