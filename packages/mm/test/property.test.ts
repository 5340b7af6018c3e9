/**
 * Property: random sequences of CPU operations on a small address space, run as one sim thread,
 * keep page tables well formed at every step, give the accounting exact at the end, read back
 * what a simple reference model predicts (content survives swap and migration), and leave nothing
 * behind once every mm has exited.
 */
import { EINVAL, ENOMEM, runOnce } from '@hmmkit/sim';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  checkAccounting,
  checkNoLeaks,
  checkPageTables,
  cpuRead,
  cpuWrite,
  fork,
  MADV_DONTNEED,
  MADV_FREE,
  MAP_PRIVATE,
  type Mm,
  madvise,
  migratePage,
  mmput,
  mprotect,
  munmap,
  PAGE_SIZE,
  type PageValue,
  PMD_SIZE,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
  System,
  swapOutPage,
  VM_HUGEPAGE,
  watchNotifierBrackets,
} from '../src/index.js';

const ANON_PAGES = 4;
const FILE_PAGES = 2;
const PAGES = ANON_PAGES + FILE_PAGES;

type Cmd =
  | { op: 'write'; mm: number; page: number; value: number }
  | { op: 'read'; mm: number; page: number }
  | { op: 'munmap'; mm: number; page: number }
  | { op: 'mprotect'; mm: number; page: number; prot: number }
  | { op: 'dontneed' | 'free'; mm: number; page: number }
  | { op: 'fork' | 'exit'; mm: number }
  | { op: 'swap' | 'migrate'; mm: number; page: number };

const mmIx = fc.nat({ max: 2 });
const page = fc.nat({ max: PAGES - 1 });
const cmd: fc.Arbitrary<Cmd> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({ op: fc.constant('write' as const), mm: mmIx, page, value: fc.nat({ max: 99 }) }),
  },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('read' as const), mm: mmIx, page }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('munmap' as const), mm: mmIx, page }) },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('mprotect' as const),
      mm: mmIx,
      page,
      prot: fc.constantFrom(PROT_NONE, PROT_READ, PROT_READ | PROT_WRITE),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ op: fc.constantFrom('dontneed' as const, 'free' as const), mm: mmIx, page }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constantFrom('fork' as const, 'exit' as const), mm: mmIx }) },
  {
    weight: 3,
    arbitrary: fc.record({ op: fc.constantFrom('swap' as const, 'migrate' as const), mm: mmIx, page }),
  },
);

/** Reference state of one page of one mm. */
interface RefPage {
  mapped: boolean;
  prot: number;
  /** Values a read may return (MADV_FREE makes it "old or zero" until written or reclaimed). */
  values: PageValue[];
  file: boolean;
}

function initial(): RefPage[] {
  return Array.from({ length: PAGES }, (_, i) => ({
    mapped: true,
    prot: PROT_READ | PROT_WRITE,
    values: [i < ANON_PAGES ? 0 : `f${i - ANON_PAGES}`],
    file: i >= ANON_PAGES,
  }));
}

function runCommands(cmds: Cmd[], thp: boolean): string | undefined {
  let failure: string | undefined;
  const program = {
    name: 'property',
    setup(sim: import('@hmmkit/sim').Sim) {
      const sys = new System(sim, { memoryPages: thp ? 2048 : 64, swapSlots: 64 });
      watchNotifierBrackets(sim);
      const root = sys.createMm();
      const base = 0x400000;
      // With THP the anonymous pages are the first pages of a PMD-sized MADV_HUGEPAGE area.
      const anonLen = thp ? PMD_SIZE : ANON_PAGES * PAGE_SIZE;
      sys.mmapSetup(root, {
        addr: base,
        len: anonLen,
        prot: PROT_READ | PROT_WRITE,
        flags: 0x22 | 0x10,
        vmFlags: thp ? VM_HUGEPAGE : 0,
      });
      const file = sys.createFile('f', ['f0', 'f1']);
      const fileBase = base + anonLen;
      sys.mmapSetup(root, {
        addr: fileBase,
        len: FILE_PAGES * PAGE_SIZE,
        prot: PROT_READ | PROT_WRITE,
        flags: MAP_PRIVATE | 0x10,
        file,
      });
      const mms: { mm: Mm; ref: RefPage[] }[] = [{ mm: root, ref: initial() }];
      const fail = (m: string) => {
        failure ??= m;
      };
      sim.spawn('CPU', function* () {
        for (const [n, c] of cmds.entries()) {
          if (failure) return;
          const slot = mms[c.mm % Math.max(1, mms.length)];
          if (!slot) continue;
          const { mm, ref } = slot;
          const at = (p: number) =>
            p < ANON_PAGES ? base + p * PAGE_SIZE : fileBase + (p - ANON_PAGES) * PAGE_SIZE;
          const where = `#${n} ${JSON.stringify(c)}`;
          switch (c.op) {
            case 'write': {
              const r = yield* cpuWrite(mm, at(c.page), c.value);
              const p = ref[c.page]!;
              const allowed = p.mapped && (p.prot & PROT_WRITE) !== 0;
              if (r.ok !== allowed)
                fail(`${where}: write ${r.ok ? 'succeeded' : r.signal}, expected ${allowed}`);
              if (r.ok) p.values = [c.value];
              break;
            }
            case 'read': {
              const r = yield* cpuRead(mm, at(c.page));
              const p = ref[c.page]!;
              const allowed = p.mapped && p.prot !== PROT_NONE;
              if (r.ok !== allowed) fail(`${where}: read ${JSON.stringify(r)}, expected allowed=${allowed}`);
              if (r.ok && !p.values.includes(r.value!))
                fail(`${where}: read ${String(r.value)}, expected one of ${p.values}`);
              if (r.ok) p.values = [r.value!];
              break;
            }
            case 'munmap':
              if ((yield* munmap(mm, at(c.page), PAGE_SIZE)) !== 0) fail(`${where}: munmap failed`);
              ref[c.page]!.mapped = false;
              break;
            case 'mprotect': {
              const r = yield* mprotect(mm, at(c.page), PAGE_SIZE, c.prot);
              const p = ref[c.page]!;
              if (r !== (p.mapped ? 0 : -ENOMEM)) fail(`${where}: mprotect ${r}`);
              if (p.mapped) p.prot = c.prot;
              break;
            }
            case 'dontneed':
            case 'free': {
              const p = ref[c.page]!;
              const r = yield* madvise(
                mm,
                at(c.page),
                PAGE_SIZE,
                c.op === 'free' ? MADV_FREE : MADV_DONTNEED,
              );
              const expected = !p.mapped ? -ENOMEM : c.op === 'free' && p.file ? -EINVAL : 0;
              if (r !== expected) fail(`${where}: madvise ${r}, expected ${expected}`);
              if (r === 0) {
                const zero: PageValue = p.file ? `f${c.page - ANON_PAGES}` : 0;
                p.values = c.op === 'dontneed' ? [zero] : [...new Set([...p.values, zero])];
              }
              break;
            }
            case 'fork': {
              if (mms.length >= 3) break;
              const child = yield* fork(mm);
              if (typeof child === 'number') fail(`${where}: fork ${child}`);
              else mms.push({ mm: child, ref: ref.map((p) => ({ ...p, values: [...p.values] })) });
              break;
            }
            case 'exit':
              yield* mmput(mm);
              mms.splice(mms.indexOf(slot), 1);
              break;
            case 'swap':
              yield* swapOutPage(mm, at(c.page));
              break;
            case 'migrate':
              yield* migratePage(mm, at(c.page));
              break;
          }
          const acc = checkAccounting(sys) ?? checkPageTables(sys);
          if (acc) fail(`${where}: ${acc}`);
        }
        for (const { mm } of [...mms]) yield* mmput(mm);
      });
      return {
        // Per-step structure checks are O(entries); with 512-entry THP tables they run per command.
        invariant: () => (thp ? undefined : checkPageTables(sys)),
        properties: () => failure ?? checkNoLeaks(sys),
      };
    },
  };
  const r = runOnce(program, [], { maxSteps: 500_000 });
  return r.violation ? `${r.violation.kind}: ${r.violation.message}` : undefined;
}

describe('random CPU operation sequences keep the accounting consistent', () => {
  it('base pages', () => {
    fc.assert(
      fc.property(fc.array(cmd, { maxLength: 30 }), (cmds) => {
        expect(runCommands(cmds, false)).toBeUndefined();
      }),
      { numRuns: 300, seed: 0x5eed },
    );
  });

  it('with transparent huge pages (PMD mappings, splits, COW of THPs)', () => {
    fc.assert(
      fc.property(fc.array(cmd, { maxLength: 20 }), (cmds) => {
        expect(runCommands(cmds, true)).toBeUndefined();
      }),
      { numRuns: 60, seed: 0x719 },
    );
  });
});
