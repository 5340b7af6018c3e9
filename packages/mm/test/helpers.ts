/**
 * Test helpers: run a program once (default schedule) or explore it, and fail loudly with the
 * violation and its race diagram.
 */
import {
  type ExploreOptions,
  type ExploreResult,
  explore,
  type Program,
  type RunResult,
  renderRaceDiagram,
  runOnce,
  type Sim,
} from '@hmmkit/sim';
import {
  checkAccounting,
  checkPageTables,
  System,
  type SystemOptions,
  watchNotifierBrackets,
} from '../src/index.js';

export interface Ctx {
  sim: Sim;
  sys: System;
}

/** Runs `body` as a program once under the default schedule; throws on a violation. */
export function runProgram(
  name: string,
  body: (ctx: Ctx) => void | { check?: () => string | undefined | boolean | void },
  opts: SystemOptions & { watch?: boolean; accounting?: boolean; maxSteps?: number; quick?: boolean } = {},
): RunResult {
  const program = makeProgram(name, body, opts);
  const r = runOnce(program, [], { trace: !opts.quick, maxSteps: opts.maxSteps ?? 200_000 });
  if (r.status === 'violation') {
    throw new Error(
      `${r.violation!.kind}: ${r.violation!.message}\n${(r.violation!.details ?? []).join('\n')}\n${renderRaceDiagram(r)}`,
    );
  }
  return r;
}

/** A program that builds a System, checks page tables after every step and accounting at the end. */
export function makeProgram(
  name: string,
  body: (ctx: Ctx) => void | {
    check?: () => string | undefined | boolean | void;
    step?: () => string | undefined | boolean | void;
  },
  opts: SystemOptions & { watch?: boolean; accounting?: boolean; quick?: boolean } = {},
): Program {
  return {
    name,
    setup(sim) {
      const sys = new System(sim, opts);
      if (opts.watch !== false) watchNotifierBrackets(sim);
      const extra = body({ sim, sys }) ?? {};
      // `quick`: page tables checked at the end only, and no trace (large THP scenarios).
      const pageTables = { 'page tables': () => checkPageTables(sys) };
      return {
        invariant: { ...(opts.quick ? {} : pageTables), ...(extra.step ? { step: extra.step } : {}) },
        properties: {
          ...(opts.quick ? pageTables : {}),
          ...(opts.accounting !== false ? { accounting: () => checkAccounting(sys) } : {}),
          ...(extra.check ? { check: extra.check } : {}),
        },
      };
    },
  };
}

/** Explores and throws with the first failure's diagram. */
export function exploreOk(program: Program, options: ExploreOptions): ExploreResult {
  const r = explore(program, options);
  const f = r.failures[0];
  if (f) {
    throw new Error(
      `${f.violation.kind}: ${f.violation.message}\n${(f.violation.details ?? []).join('\n')}\nschedule ${f.schedule}\n${renderRaceDiagram(f.trace)}`,
    );
  }
  return r;
}

/**
 * Builds a System with `opts`, lets `setup` create state and return one thread body, runs it once
 * (default schedule, page tables checked every step, accounting at the end), and returns the
 * thread's result together with the system.
 */
export function runThread<T>(
  setup: (ctx: Ctx) => () => Generator<import('@hmmkit/sim').Op, T, unknown>,
  opts: SystemOptions & { watch?: boolean; accounting?: boolean; maxSteps?: number; quick?: boolean } = {},
): { result: T; sys: System; run: RunResult } {
  let sys!: System;
  let thread!: import('@hmmkit/sim').Thread;
  const run = runProgram(
    'thread',
    (ctx) => {
      sys = ctx.sys;
      thread = ctx.sim.spawn('CPU0', setup(ctx));
    },
    opts,
  );
  return { result: thread.result as T, sys, run };
}
