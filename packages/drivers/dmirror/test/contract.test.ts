/**
 * The conformance-kit contract: `dmirrorDriver` has the shape the kit validates, its instances do
 * what the contract says, and `expectations.json` parses. (The kit's scenarios run in the kit.)
 */
import { parseExpectations, validateDriver, validateInstance } from '@hmmkit/conformance';
import { cpuRead, cpuWrite, PAGE_SIZE, PROT_READ, PROT_WRITE, System } from '@hmmkit/mm';
import { runOnce } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import expectations from '../expectations.json' with { type: 'json' };
import dmirrorDefault, { dmirrorDriver, dmirrorVariants } from '../src/index.js';

describe('dmirrorDriver', () => {
  it('is a valid DriverModel, also as the default export', () => {
    expect(validateDriver(dmirrorDriver)).toEqual([]);
    expect(dmirrorDefault).toBe(dmirrorDriver);
    expect(dmirrorDriver.variants.map((v) => v.name)).toEqual(dmirrorVariants.map((v) => v.name));
  });

  it('has a well-formed expectations.json', () => {
    expect(() => parseExpectations(expectations)).not.toThrow();
  });

  it('reads, writes, migrates, does atomics and closes cleanly through its instance', () => {
    const r = runOnce(
      {
        name: 'contract',
        setup(sim) {
          const sys = new System(sim, { memoryPages: 64 });
          const mm = sys.createMm();
          const addr = sys.mmapSetup(mm, { len: 2 * PAGE_SIZE, prot: PROT_READ | PROT_WRITE });
          const inst = dmirrorDriver.create({ sim, system: sys, mm, variant: null, index: 0 });
          expect(validateInstance(inst, dmirrorDriver.supports)).toEqual([]);
          sim.spawn('test', function* () {
            expect(yield* inst.open()).toBe(0);
            expect(inst.liveSubscriptions()).toBe(1);
            yield* cpuWrite(mm, addr, 'A');
            expect(yield* inst.access(addr, 'read')).toEqual({ ret: 0, value: 'A' });
            // The CPU maps it writable, so hmm_range_fault() reports WRITE and the entry is tagged writable.
            expect([...inst.mappings()]).toMatchObject([{ addr, write: true, atomic: false }]);
            expect(yield* inst.access(addr, 'write', 'B')).toEqual({ ret: 0 });
            expect(yield* cpuRead(mm, addr)).toEqual({ ok: true, value: 'B' });
            expect(yield* inst.migrateToDevice!(addr, 2)).toBe(0);
            expect(yield* inst.access(addr, 'read')).toEqual({ ret: 0, value: 'B' });
            expect(yield* inst.migrateToSystem!(addr, 2)).toBe(0);
            expect(yield* inst.access(addr, 'atomic', 'C')).toEqual({ ret: 0, value: 'B' });
            expect([...inst.mappings()].find((m) => m.addr === addr)?.atomic).toBe(true);
            // The CPU touching the page revokes the atomic mapping.
            expect(yield* cpuRead(mm, addr)).toEqual({ ok: true, value: 'C' });
            expect([...inst.mappings()].some((m) => m.atomic)).toBe(false);
            yield* inst.close();
            expect(inst.liveSubscriptions()).toBe(0);
          });
        },
      },
      [],
    );
    if (r.violation) throw new Error(`${r.violation.kind}: ${r.violation.message}`);
  });
});
