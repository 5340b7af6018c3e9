/**
 * Exploration strategies behind one interface: `random(seed)`, `pct({ depth, seed })`,
 * `dfs({ preemptionBound })` and `replay(schedule)`.
 */
import type { Chooser, RunResult } from '../core/sim.js';
import { PctChooser, RandomChooser, ReplayChooser } from './choosers.js';
import { DporRun, DporState } from './dpor.js';
import { runSeed } from './rng.js';
import { decodeSchedule } from './schedule.js';

/** A strategy description (plain data: printable, storable in JSON results). */
export type StrategySpec =
  | { kind: 'random'; seed: number }
  | { kind: 'pct'; depth: number; seed: number }
  | { kind: 'dfs'; preemptionBound?: number }
  | { kind: 'replay'; schedule: string };

/** Uniformly random scheduling, run `i` seeded from `(seed, i)`. */
export function random(seed = 0): StrategySpec {
  return { kind: 'random', seed };
}

/** Probabilistic concurrency testing with bug depth `depth` (3 finds most bugs, per SCTBench). */
export function pct(options: { depth?: number; seed?: number } = {}): StrategySpec {
  return { kind: 'pct', depth: options.depth ?? 3, seed: options.seed ?? 0 };
}

/** Exhaustive DPOR with sleep sets, optionally preemption-bounded. */
export function dfs(options: { preemptionBound?: number } = {}): StrategySpec {
  return options.preemptionBound === undefined
    ? { kind: 'dfs' }
    : { kind: 'dfs', preemptionBound: options.preemptionBound };
}

/** Re-runs one schedule string. */
export function replay(schedule: string): StrategySpec {
  return { kind: 'replay', schedule };
}

/** An option value as it should read in an error (`NaN` and `Infinity` are not JSON). */
export function show(v: unknown): string {
  return typeof v === 'number' ? String(v) : (JSON.stringify(v) ?? String(v));
}

/** Invalid strategy or budget options. */
export class ExploreOptionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ExploreOptionError';
  }
}

/** Checks a spec and throws {@link ExploreOptionError} naming the bad field. */
export function validateStrategy(spec: StrategySpec): void {
  const nonNegInt = (v: unknown, what: string) => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
      throw new ExploreOptionError(`${what} must be a non-negative integer, got ${show(v)}`);
    }
  };
  if (!spec || typeof spec !== 'object') throw new ExploreOptionError('strategy must be an object');
  switch (spec.kind) {
    case 'random':
      nonNegInt(spec.seed, 'random: seed');
      return;
    case 'pct':
      nonNegInt(spec.seed, 'pct: seed');
      if (!Number.isSafeInteger(spec.depth) || spec.depth < 1) {
        throw new ExploreOptionError(`pct: depth must be an integer >= 1, got ${show(spec.depth)}`);
      }
      return;
    case 'dfs':
      if (spec.preemptionBound !== undefined) nonNegInt(spec.preemptionBound, 'dfs: preemptionBound');
      return;
    case 'replay':
      decodeSchedule(spec.schedule);
      return;
    default:
      throw new ExploreOptionError(
        `unknown strategy '${(spec as { kind?: unknown }).kind}' (expected random, pct, dfs or replay)`,
      );
  }
}

/**
 * Parses the command-line form: `random[:SEED]`, `pct[:DEPTH[:SEED]]`, `dfs[:BOUND]`,
 * `replay:SCHEDULE`.
 */
export function parseStrategy(text: string): StrategySpec {
  const [name, ...rest] = text.split(':');
  const num = (s: string | undefined, what: string): number | undefined => {
    if (s === undefined || s === '') return undefined;
    if (!/^\d+$/.test(s))
      throw new ExploreOptionError(`strategy '${text}': ${what} '${s}' is not a non-negative integer`);
    return Number(s);
  };
  let spec: StrategySpec;
  switch (name) {
    case 'random':
      if (rest.length > 1)
        throw new ExploreOptionError(`strategy '${text}': random takes one argument (seed)`);
      spec = random(num(rest[0], 'seed') ?? 0);
      break;
    case 'pct':
      if (rest.length > 2) throw new ExploreOptionError(`strategy '${text}': pct takes depth and seed`);
      spec = pct({ depth: num(rest[0], 'depth') ?? 3, seed: num(rest[1], 'seed') ?? 0 });
      break;
    case 'dfs': {
      if (rest.length > 1)
        throw new ExploreOptionError(`strategy '${text}': dfs takes one argument (preemption bound)`);
      const bound = num(rest[0], 'preemption bound');
      spec = dfs(bound === undefined ? {} : { preemptionBound: bound });
      break;
    }
    case 'replay':
      spec = replay(rest.join(':'));
      break;
    default:
      throw new ExploreOptionError(`unknown strategy '${name}' (expected random, pct, dfs or replay)`);
  }
  validateStrategy(spec);
  return spec;
}

/** Printable form of a spec (the inverse of {@link parseStrategy}). */
export function formatStrategy(spec: StrategySpec): string {
  switch (spec.kind) {
    case 'random':
      return `random:${spec.seed}`;
    case 'pct':
      return `pct:${spec.depth}:${spec.seed}`;
    case 'dfs':
      return spec.preemptionBound === undefined ? 'dfs' : `dfs:${spec.preemptionBound}`;
    case 'replay':
      return `replay:${spec.schedule}`;
  }
}

/** A running strategy: hands out one chooser per run until its space is covered. */
export interface StrategyRunner {
  /**
   * True for strategies that can prove the space explored (dfs, replay), read when the exploration
   * ends: a preemption-bounded dfs is exhaustive only if the bound never cut a choice.
   */
  readonly exhaustive: boolean;
  /** The chooser for run `index`, or null when the strategy has nothing left to explore. */
  next(index: number): Chooser | null;
  /** Feedback after each run. */
  done(result: RunResult, chooser: Chooser): void;
  /** The seed of run `index`, for randomised strategies. */
  seedOf?(index: number): number;
}

/** Builds the stateful runner of a spec. */
export function createStrategy(spec: StrategySpec): StrategyRunner {
  validateStrategy(spec);
  switch (spec.kind) {
    case 'random':
      return {
        exhaustive: false,
        next: (i) => new RandomChooser(runSeed(spec.seed, i)),
        done: () => {},
        seedOf: (i) => runSeed(spec.seed, i),
      };
    case 'pct': {
      let expected = 64;
      return {
        exhaustive: false,
        next: (i) => new PctChooser(runSeed(spec.seed, i), spec.depth, expected),
        done: (r) => {
          expected = Math.max(expected, r.steps);
        },
        seedOf: (i) => runSeed(spec.seed, i),
      };
    }
    case 'dfs': {
      const state = new DporState(spec.preemptionBound);
      let started = false;
      return {
        // A bounded search covers the whole space only if the bound never excluded a choice.
        get exhaustive() {
          return !state.boundHit;
        },
        next: () => {
          if (started && !state.advance()) return null;
          started = true;
          return state.newRun();
        },
        done: (result, chooser) => {
          if (chooser instanceof DporRun) chooser.finish(result);
        },
      };
    }
    case 'replay': {
      const choices = decodeSchedule(spec.schedule);
      return {
        exhaustive: true,
        next: (i) => (i === 0 ? new ReplayChooser(choices) : null),
        done: () => {},
      };
    }
  }
}
