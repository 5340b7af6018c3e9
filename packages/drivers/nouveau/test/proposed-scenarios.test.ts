/**
 * Scenarios the kit's library lacks for the variants it cannot reach yet, written against the kit's
 * Scenario type so they can move into packages/conformance as they are (see the README, "What the
 * kit needs"). Each runs here with the kit's default portfolio and budget.
 */
import { runScenario, type Scenario } from '@hmmkit/conformance';
import { cpuRead, hex } from '@hmmkit/mm';
import { errnoName } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import { nouveauDriver } from '../src/driver.js';
import type { NouveauVariantName } from '../src/variants.js';

const G = 0x10_0000_0000; // a GPU VA well away from the process's mapping
const P = 0x1000;

/** A device atomic on a page the CPU has only read (mapped to the zero page). */
export const atomicAfterCpuRead: Scenario = {
  id: 'atomic/after-cpu-read',
  title: 'a device atomic on a page the CPU has only read',
  description:
    'The CPU reads an untouched page (the zero page is mapped), then the device performs an atomic exchange on it: make_device_exclusive() must break COW first, an invalidation inside the atomic fault of the driver. The exchange may fail; the CPU must then read what it implies.',
  requires: ['mirror', 'atomics'],
  small: true,
  build(w) {
    const d = w.devices[0]!;
    const p0 = w.page(0);
    w.spawn('dev0', function* () {
      const r = yield* cpuRead(w.mm, p0);
      if (!r.ok) w.fail('access-error', `CPU read at ${hex(p0)} got ${r.signal}`);
      const x = yield* d.access(p0, 'atomic', 'D');
      w.checkRead('dev0 atomic exchange', x, [0], { mayFail: true });
      const after = yield* cpuRead(w.mm, p0);
      const want = x.ret === 0 ? 'D' : 0;
      if (!after.ok || after.value !== want)
        w.fail(
          'data-integrity',
          `after the exchange (${errnoName(x.ret)}) the CPU reads ${String(after.ok ? after.value : after.signal)}`,
        );
    });
  },
};

/** Bind, split by a partial unbind (a remap), unbind the rest. */
export const vmBindRemap: Scenario = {
  id: 'vm-bind/remap',
  title: 'bind a range, unbind its middle page (a remap), unbind the rest',
  description:
    'Exercises the submit-time split of a mapping into two pieces (link the pieces before unlinking the old va) and the page tables of run_job.',
  requires: ['vmBind'],
  small: true,
  build(w) {
    const d = w.devices[0]!;
    w.spawn('dev0', function* () {
      yield* d.open();
      const ok = (what: string, r: number) =>
        r === 0 || w.fail('driver-error', `${what} failed with ${errnoName(r)}`);
      ok('bind', yield* d.instance.bind!(G, 4 * P));
      ok('unbind middle', yield* d.instance.unbind!(G + P, P));
      ok('unbind rest', yield* d.instance.unbind!(G, 4 * P));
    });
  },
};

/** Two threads of one client bind at once. */
export const vmBindConcurrent: Scenario = {
  id: 'vm-bind/concurrent',
  title: 'two threads of one client bind and unbind concurrently',
  description:
    'Binds from two threads go through the one scheduler entity of the client, in submission order.',
  requires: ['vmBind'],
  build(w) {
    const d = w.devices[0]!;
    for (const [name, base] of [
      ['dev0.a', G],
      ['dev0.b', G + 16 * P],
    ] as const) {
      w.spawn(name, function* () {
        yield* d.open();
        yield* d.instance.bind!(base, 2 * P);
        yield* d.instance.unbind!(base, 2 * P);
      });
    }
  },
};

function run(s: Scenario, variant: NouveauVariantName | null) {
  return runScenario(nouveauDriver, variant, s);
}

describe('proposed kit scenarios', () => {
  it('atomic/after-cpu-read: upstream nouveau gives up (F4); atomic-retry-keeps-folio deadlocks', () => {
    const ok = run(atomicAfterCpuRead, null);
    expect(ok.failure?.kind).toBe('livelock'); // the deadline of F4, reported as the adapter does
    const v = run(atomicAfterCpuRead, 'atomic-retry-keeps-folio');
    expect(v.failure?.kind).toBe('deadlock');
  });

  it('vm-bind/remap: passes; catches run-job-allocates-pt and remap-unlink-before-link', () => {
    expect(run(vmBindRemap, null).status).toBe('pass');
    expect(run(vmBindRemap, 'run-job-allocates-pt').failure?.kind).toBe('alloc-in-forbidden-context');
    expect(['use-after-free', 'refcount']).toContain(
      run(vmBindRemap, 'remap-unlink-before-link').failure?.kind,
    );
  });

  it('vm-bind/concurrent: passes; catches sync-bind-bypasses-queue', () => {
    expect(run(vmBindConcurrent, null).status).toBe('pass');
    expect(run(vmBindConcurrent, 'sync-bind-bypasses-queue').failure?.kind).toBe('vm-bind-order');
  });
});
