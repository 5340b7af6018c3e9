/**
 * Property test (gpuvm.md §8 B13): random sequences of map/unmap requests against a naive per-unit
 * reference model. After every step: the layout equals the reference; the op list and the
 * tree-mutating callback form agree; §7 invariants 1–5 and 14–18 hold.
 */
import { EINVAL } from '@hmmkit/sim';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  applyingSteps,
  applyOpsNow,
  checkTree,
  checkVmRefcount,
  formatOps,
  type GemObject,
  type GpuvaOp,
  GpuvaOpType,
  gpuvmSmMapOpsCreateNow,
  gpuvmSmUnmapOpsCreateNow,
  isErr,
  mapReq,
  smMapWithNow,
  smUnmapWithNow,
} from '../src/index.js';
import { fixture } from './helpers.js';

const W = 64;
const RSV_START = 40;
const RSV_LEN = 4;

type Unit = { obj: GemObject | null; offset: number } | undefined;

interface Req {
  kind: 'map' | 'unmap';
  addr: number;
  len: number;
  obj: 'A' | 'B' | null;
  off: number;
}

const reqArb: fc.Arbitrary<Req> = fc.record({
  kind: fc.constantFrom('map', 'map', 'map', 'unmap') as fc.Arbitrary<'map' | 'unmap'>,
  addr: fc.integer({ min: 0, max: W - 1 }),
  len: fc.integer({ min: 1, max: 20 }),
  obj: fc.constantFrom('A', 'B', null) as fc.Arbitrary<'A' | 'B' | null>,
  off: fc.integer({ min: 0, max: 24 }),
});

function unitsOf(vm: ReturnType<typeof fixture>['vm']): Unit[] {
  const u: Unit[] = new Array(W).fill(undefined);
  for (const e of vm.layout())
    for (let i = 0; i < e.range; i++) u[e.addr + i] = { obj: e.obj, offset: e.offset + i };
  return u;
}

function shapeOk(ops: GpuvaOp[], isMap: boolean): string | null {
  const kinds = ops.map((op) => {
    if (op.op === GpuvaOpType.MAP) return 'M';
    if (op.op === GpuvaOpType.UNMAP) return 'U';
    if (op.op === GpuvaOpType.REMAP) return op.remap.prev && op.remap.next ? 'B' : op.remap.prev ? 'P' : 'N';
    return '?';
  });
  const s = kinds.join('');
  const re = isMap ? /^(P?U*N?M|BM)$/ : /^(P?U*N?|B)$/;
  return re.test(s) ? null : `bad op shape ${s}`;
}

describe('sm_map/sm_unmap against a per-unit reference (fast-check)', () => {
  it('layout, op-list form vs mutating-callback form, and invariants after every step', () => {
    fc.assert(
      fc.property(fc.array(reqArb, { minLength: 1, maxLength: 25 }), (reqs) => {
        const fl = fixture({ range: W, reserveOffset: RSV_START, reserveRange: RSV_LEN });
        const fm = fixture({ range: W, reserveOffset: RSV_START, reserveRange: RSV_LEN });
        const ref: Unit[] = new Array(W).fill(undefined);
        for (const r of reqs) {
          const end = r.addr + r.len;
          const valid = end <= W && !(r.addr < RSV_START + RSV_LEN && RSV_START < end);
          const objL = r.obj ? fl.objs[r.obj] : null;
          const objM = r.obj ? fm.objs[r.obj] : null;
          const before = unitsOf(fl.vm);
          const victims = [...fl.vm.vasRange(r.addr, Math.min(end, W))].filter((v) => !v.reserved);
          const steps = applyingSteps(fm.vm);
          let ops: ReturnType<typeof gpuvmSmMapOpsCreateNow>;
          let mret: number;
          if (r.kind === 'map') {
            ops = gpuvmSmMapOpsCreateNow(fl.vm, mapReq(r.addr, r.len, objL, r.off));
            mret = smMapWithNow(fm.vm, steps, undefined, mapReq(r.addr, r.len, objM, r.off));
          } else {
            ops = gpuvmSmUnmapOpsCreateNow(fl.vm, r.addr, r.len);
            mret = smUnmapWithNow(fm.vm, steps, undefined, r.addr, r.len);
          }
          if (!valid) {
            expect(ops).toBe(-EINVAL);
            expect(mret).toBe(-EINVAL);
            expect(steps.record).toEqual([]);
            continue;
          }
          if (isErr(ops)) throw new Error(`unexpected ${ops}`);
          expect(mret).toBe(0);
          // (18) shape; both forms give the same sequence.
          expect(shapeOk(ops.list, r.kind === 'map')).toBeNull();
          const text = formatOps(ops);
          expect(formatOps(steps.record)).toEqual(text);
          // (17) keep, (16) piece offsets, victims = exactly the overlapping vas in order.
          const seenVictims: unknown[] = [];
          for (const op of ops) {
            if (op.op === GpuvaOpType.MAP) {
              expect(op.map).toEqual({
                va: { addr: r.addr, range: r.len },
                gem: { obj: objL, offset: r.off },
              });
              continue;
            }
            const u =
              op.op === GpuvaOpType.UNMAP ? op.unmap : op.op === GpuvaOpType.REMAP ? op.remap.unmap : null;
            if (!u) continue;
            const v = u.va;
            seenVictims.push(v);
            const a = v.va.addr;
            const o = v.gem.obj;
            const f = v.gem.offset;
            const at = Math.max(a, r.addr);
            const keep =
              r.kind === 'map' && o !== null && o === objL && f + (at - a) === r.off + (at - r.addr);
            expect(u.keep).toBe(keep);
            if (op.op === GpuvaOpType.REMAP) {
              const { prev, next } = op.remap;
              if (prev)
                expect(prev).toEqual({ va: { addr: a, range: r.addr - a }, gem: { obj: o, offset: f } });
              if (next) {
                expect(next.va.addr).toBe(end);
                expect(next.va.addr + next.va.range).toBe(a + v.va.range);
                expect(next.gem).toEqual({ obj: o, offset: f + (next.va.addr - a) });
              }
            }
          }
          expect(seenVictims).toEqual(victims);
          applyOpsNow(fl.vm, ops);
          // Reference update.
          for (let i = r.addr; i < end; i++)
            ref[i] = r.kind === 'map' ? { obj: objL, offset: r.off + (i - r.addr) } : undefined;
          const after = unitsOf(fl.vm);
          // (14)/(15) the request exactly, everything outside unchanged.
          expect(after).toEqual(ref);
          for (let i = 0; i < W; i++) if (i < r.addr || i >= end) expect(after[i]).toEqual(before[i]);
          if (r.kind === 'unmap') expect(fl.vm.intervalEmpty(r.addr, r.len)).toBe(true);
          expect(fl.vm.layoutText()).toBe(fm.vm.layoutText());
          expect(checkTree(fl.vm)).toBeNull();
          expect(checkTree(fm.vm)).toBeNull();
          expect(checkVmRefcount(fl.vm)).toBeNull();
          expect(fl.vm.silentFailures).toEqual([]);
        }
      }),
      { numRuns: 400, seed: 0x9e3779b9 },
    );
  });
});
