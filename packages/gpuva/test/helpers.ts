import {
  dfs,
  explore,
  type Program,
  type Routine,
  type RunResult,
  renderRaceDiagram,
  runOnce,
  Sim,
  type Violation,
} from '@hmmkit/sim';
import { expect } from 'vitest';
import {
  applyingSteps,
  applyOpsNow,
  formatOps,
  GemObject,
  GpuVa,
  GpuVm,
  type GpuVmInit,
  type GpuvaOp,
  gpuvmSmMapNow,
  gpuvmSmMapOpsCreateNow,
  gpuvmSmUnmapNow,
  gpuvmSmUnmapOpsCreateNow,
  isErr,
  type MapReq,
  mapReq,
  recordingSteps,
} from '../src/index.js';

export type Obj = 'A' | 'B' | 'C' | null;
/** A layout entry as data: [addr, range, object name or null, offset]. */
export type Ent = [number, number, Obj, number];

export interface Fixture {
  sim: Sim;
  vm: GpuVm;
  objs: Record<'A' | 'B' | 'C', GemObject>;
}

/** A VM on the window [0, 1024) with three local objects A, B, C; a fresh Sim per fixture. */
export function fixture(init: Partial<GpuVmInit> = {}): Fixture {
  return fixtureIn(new Sim(), init);
}

/** {@link fixture} on a given simulator (inside a program's setup). */
export function fixtureIn(sim: Sim, init: Partial<GpuVmInit> = {}): Fixture {
  const rObj = new GemObject(sim, 'r_obj');
  const vm = new GpuVm(sim, { name: 'vm', rObj, start: 0, range: 1024, ops: { vmFree: () => {} }, ...init });
  const objs = {
    A: new GemObject(sim, 'A', { resv: vm.resv }),
    B: new GemObject(sim, 'B', { resv: vm.resv }),
    C: new GemObject(sim, 'C', { resv: vm.resv }),
  };
  return { sim, vm, objs };
}

export function obj(f: Fixture, name: Obj): GemObject | null {
  return name === null ? null : f.objs[name];
}

/** Inserts the layout (must succeed). */
export function place(f: Fixture, ents: readonly Ent[]): GpuVa[] {
  return ents.map(([addr, range, o, offset]) => {
    const va = new GpuVa(addr, range, obj(f, o), offset);
    expect(f.vm.insert(va), `insert ${va.toString()}`).toBe(0);
    return va;
  });
}

export function req(f: Fixture, [addr, range, o, offset]: Ent): MapReq {
  return mapReq(addr, range, obj(f, o), offset);
}

export function layoutOf(ents: readonly Ent[]): string {
  return ents.map(([a, r, o, off]) => `[${a},${a + r})->${o ?? '-'}@${off}`).join(' ');
}

export interface FormResult {
  ret: number;
  ops: string[];
  layout: string;
}

/**
 * Runs a map request in the three forms on three identical VMs and returns each form's result:
 * `list` (ops_create, then applied), `callbacks` (the VM's sm_step_* through drm_gpuvm_sm_map,
 * recording only, then the recorded ops applied) and `mutating` (callbacks that apply every step
 * to the tree while the walk runs).
 */
export function mapAllForms(
  existing: readonly Ent[],
  request: Ent,
  init: Partial<GpuVmInit> = {},
): Record<'list' | 'callbacks' | 'mutating', FormResult> {
  const fl = fixture(init);
  place(fl, existing);
  const ops = gpuvmSmMapOpsCreateNow(fl.vm, req(fl, request));
  let list: FormResult;
  if (isErr(ops)) list = { ret: ops, ops: [], layout: fl.vm.layoutText() };
  else {
    const text = formatOps(ops);
    applyOpsNow(fl.vm, ops);
    list = { ret: 0, ops: text, layout: fl.vm.layoutText() };
  }

  const rec = recordingSteps();
  const fc = fixture({ ...init, ops: { vmFree: () => {}, ...rec } });
  place(fc, existing);
  const ret = gpuvmSmMapNow(fc.vm, undefined, req(fc, request));
  const recorded: GpuvaOp[] = [...rec.record];
  if (!ret) applyOpsNow(fc.vm, recorded);
  const callbacks = { ret, ops: formatOps(recorded), layout: fc.vm.layoutText() };

  const fm = fixture(init);
  const steps = applyingSteps(fm.vm);
  fm.vm.ops.smStepMap = steps.smStepMap;
  fm.vm.ops.smStepRemap = steps.smStepRemap;
  fm.vm.ops.smStepUnmap = steps.smStepUnmap;
  place(fm, existing);
  const mret = gpuvmSmMapNow(fm.vm, undefined, req(fm, request));
  const mutating = { ret: mret, ops: formatOps(steps.record), layout: fm.vm.layoutText() };
  return { list, callbacks, mutating };
}

/** As {@link mapAllForms} for an unmap request. */
export function unmapAllForms(
  existing: readonly Ent[],
  addr: number,
  range: number,
  init: Partial<GpuVmInit> = {},
): Record<'list' | 'callbacks' | 'mutating', FormResult> {
  const fl = fixture(init);
  place(fl, existing);
  const ops = gpuvmSmUnmapOpsCreateNow(fl.vm, addr, range);
  let list: FormResult;
  if (isErr(ops)) list = { ret: ops, ops: [], layout: fl.vm.layoutText() };
  else {
    const text = formatOps(ops);
    applyOpsNow(fl.vm, ops);
    list = { ret: 0, ops: text, layout: fl.vm.layoutText() };
  }
  const rec = recordingSteps();
  const fc = fixture({
    ...init,
    ops: { vmFree: () => {}, smStepRemap: rec.smStepRemap, smStepUnmap: rec.smStepUnmap },
  });
  place(fc, existing);
  const ret = gpuvmSmUnmapNow(fc.vm, undefined, addr, range);
  if (!ret) applyOpsNow(fc.vm, rec.record);
  const callbacks = { ret, ops: formatOps(rec.record), layout: fc.vm.layoutText() };
  const fm = fixture(init);
  const steps = applyingSteps(fm.vm);
  fm.vm.ops.smStepRemap = steps.smStepRemap;
  fm.vm.ops.smStepUnmap = steps.smStepUnmap;
  place(fm, existing);
  const mret = gpuvmSmUnmapNow(fm.vm, undefined, addr, range);
  const mutating = { ret: mret, ops: formatOps(steps.record), layout: fm.vm.layoutText() };
  return { list, callbacks, mutating };
}

/** Asserts the three forms agree and returns the common result. */
export function agree(r: Record<'list' | 'callbacks' | 'mutating', FormResult>): FormResult {
  expect(r.callbacks).toEqual(r.list);
  expect(r.mutating).toEqual(r.list);
  return r.list;
}

/** A one-thread program whose thread runs `body` (built in setup). */
export function oneThread<T>(
  name: string,
  setup: (sim: Sim) => {
    body: () => Routine<T>;
    checks?: Record<string, () => boolean | string | undefined | void>;
  },
  options: Program['options'] = {},
): Program {
  return {
    name,
    options,
    setup(sim) {
      const { body, checks } = setup(sim);
      sim.spawn(name, body);
      return checks ? { properties: checks } : {};
    },
  };
}

/** Runs a program once (default schedule) and returns the result. */
export function runDefault(p: Program): RunResult {
  return runOnce(p, []);
}

/** Asserts a run ended without a violation (printing its diagram otherwise). */
export function expectClean(r: RunResult): void {
  if (r.violation) {
    throw new Error(
      `unexpected violation: ${r.violation.kind}: ${r.violation.message}\n${(r.violation.details ?? []).join('\n')}`,
    );
  }
  expect(r.status).toBe('done');
}

/** Asserts a run ended with a violation of `kind` and returns it. */
export function expectViolation(r: RunResult, kind: string, match?: RegExp): Violation {
  expect(r.violation, `expected a '${kind}' violation`).toBeDefined();
  expect(r.violation!.kind).toBe(kind);
  if (match) expect(r.violation!.message).toMatch(match);
  return r.violation!;
}

/** Explores exhaustively (bounded); returns the result; fails the test on an unexpected failure. */
export function exploreClean(p: Program, maxRuns = 20_000): ReturnType<typeof explore> {
  const r = explore(p, { strategy: dfs(), budgets: { maxRuns, maxTimeMs: 20_000 } });
  if (r.failures.length) {
    const f = r.failures[0]!;
    throw new Error(
      `${f.violation.kind}: ${f.violation.message}\n${renderRaceDiagram(f.trace)}\nschedule ${f.schedule}`,
    );
  }
  return r;
}

/** Runs `body` once on one simulated thread over a fresh fixture built in setup. */
export function run1(
  init: Partial<GpuVmInit>,
  body: (f: Fixture) => Routine<unknown>,
  options: Program['options'] = {},
): { r: RunResult; f: Fixture } {
  let fx: Fixture | undefined;
  const p: Program = {
    name: 'one thread',
    options,
    setup(sim) {
      fx = fixtureIn(sim, init);
      const f = fx;
      sim.spawn('T0', () => body(f));
    },
  };
  const r = runOnce(p, []);
  return { r, f: fx! };
}
