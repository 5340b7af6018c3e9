/**
 * The three examples of README.md's "hmm_range_fault", "Device-exclusive entries" and
 * "migrate_vma and device memory" sections, as they appear there (imports from the package's
 * public entry points).
 */
import { describe, expect, it } from 'vitest';

describe('README examples', () => {
  it('hmm_range_fault: mirror a page with the documented caller loop', async () => {
    // --- README: hmm_range_fault ---
    const { dfs, EBUSY, explore, Mutex } = await import('@hmmkit/sim');
    const { cpuWrite, munmap, PAGE_SIZE, PROT_READ, PROT_WRITE, System } = await import('@hmmkit/mm');
    const {
      MmuIntervalNotifier,
      mmuIntervalNotifierInsert,
      mmuIntervalReadBegin,
      mmuIntervalReadRetry,
      mmuIntervalSetSeq,
    } = await import('@hmmkit/mm/notifier');
    const { HMM_PFN_REQ_FAULT, HMM_PFN_VALID, hmmPfnToPfn, hmmRangeFault } = await import('@hmmkit/mm/hmm');

    let device: number | null = null; // the device's page table: one pfn
    const result = explore(
      {
        name: 'hmm mirror vs munmap',
        setup(sim) {
          const sys = new System(sim);
          const mm = sys.createMm();
          const a = sys.mmapSetup(mm, { len: PAGE_SIZE, prot: PROT_READ | PROT_WRITE });
          const lock = new Mutex(sim, 'driver->lock');
          const sub = new MmuIntervalNotifier(sim, 'driver->notifier');
          device = null;
          sim.spawn('device', function* () {
            yield* cpuWrite(mm, a, 'data');
            yield* mmuIntervalNotifierInsert(sub, mm, a, PAGE_SIZE, {
              *invalidate(s, _range, seq) {
                yield* lock.lock();
                yield* mmuIntervalSetSeq(s, seq);
                device = null; // tear the device mapping down
                yield* lock.unlock();
                return true;
              },
            });
            sim.spawn('cpu', () => munmap(mm, a, PAGE_SIZE));
            const range = {
              notifier: sub,
              notifierSeq: 0,
              start: a,
              end: a + PAGE_SIZE,
              hmmPfns: new BigUint64Array(1),
              defaultFlags: HMM_PFN_REQ_FAULT,
              pfnFlagsMask: 0n,
              devPrivateOwner: null,
            };
            for (;;) {
              range.notifierSeq = yield* mmuIntervalReadBegin(sub);
              yield* mm.mmapLock.downRead();
              const ret = yield* hmmRangeFault(range);
              yield* mm.mmapLock.upRead();
              if (ret === -EBUSY) continue;
              if (ret) return ret; // -EFAULT once munmap won
              yield* lock.lock();
              if (yield* mmuIntervalReadRetry(sub, range.notifierSeq)) {
                yield* lock.unlock();
                continue;
              }
              if (range.hmmPfns[0]! & HMM_PFN_VALID) device = hmmPfnToPfn(range.hmmPfns[0]!);
              yield* lock.unlock();
              return 0;
            }
          });
          return {
            invariant: () => {
              const pte = mm.pageTable.peekPte(a);
              return (
                device === null || (pte.kind === 'present' && pte.pfn === device) || 'stale device mapping'
              );
            },
          };
        },
      },
      { strategy: dfs() },
    );
    // --- end ---
    expect(result.exhausted).toBe(true);
    expect(result.failures).toEqual([]);
  });

  it('Device-exclusive entries: atomics for a device, revoked by a CPU access', async () => {
    // --- README: Device-exclusive entries ---
    const { runOnce } = await import('@hmmkit/sim');
    const { cpuRead, cpuWrite, folioPut, PAGE_SIZE, PROT_READ, PROT_WRITE, peekPte, System } = await import(
      '@hmmkit/mm'
    );
    const { makeDeviceExclusive } = await import('@hmmkit/mm/device-exclusive');

    const seen: string[] = [];
    runOnce(
      {
        name: 'device atomics',
        setup(sim) {
          const sys = new System(sim);
          const mm = sys.createMm();
          const a = sys.mmapSetup(mm, { len: PAGE_SIZE, prot: PROT_READ | PROT_WRITE });
          const gpu = { name: 'gpu0' }; // the owner cookie
          sim.spawn('driver', function* () {
            yield* cpuWrite(mm, a, 42);
            yield* mm.mmapLock.downRead();
            const folio = yield* makeDeviceExclusive(mm, a, gpu);
            yield* mm.mmapLock.upRead();
            if (typeof folio === 'number') return; // -EFAULT, -EOPNOTSUPP, ...
            seen.push(peekPte(mm, a).entry.kind); // 'device-exclusive'
            // ... program the device's atomic mapping (under the driver lock), then:
            yield* folio.unlock();
            yield* folioPut(sys.mem, folio);
            const r = yield* cpuRead(mm, a); // faults: MMU_NOTIFY_CLEAR, present PTE restored
            seen.push(peekPte(mm, a).entry.kind, String(r.ok && r.value)); // 'present', '42'
          });
        },
      },
      [],
    );
    // --- end ---
    expect(seen).toEqual(['device-exclusive', 'present', '42']);
  });

  it('migrate_vma and device memory: to the device, and back on a CPU fault', async () => {
    // --- README: migrate_vma and device memory ---
    const { runOnce } = await import('@hmmkit/sim');
    const { cpuRead, cpuWrite, PAGE_SIZE, PROT_READ, PROT_WRITE, peekPte, System, VM_FAULT_SIGBUS } =
      await import('@hmmkit/mm');
    const m = await import('@hmmkit/mm/migrate');

    const seen: unknown[] = [];
    runOnce(
      {
        name: 'device memory',
        setup(sim) {
          const sys = new System(sim);
          const mm = sys.createMm();
          const a = sys.mmapSetup(mm, { len: PAGE_SIZE, prot: PROT_READ | PROT_WRITE });
          const gpu = { name: 'gpu0' };
          // Copies the selected pages to freshly allocated pages (device or system memory).
          function* copy(args: import('@hmmkit/mm/migrate').MigrateVma, toDevice: boolean) {
            for (let i = 0; i < args.npages; i++) {
              const s = args.src[i]!;
              if (!(s & m.MIGRATE_PFN_MIGRATE)) continue;
              const d = toDevice
                ? yield* m.allocDevicePage(sys.mem, pgmap)
                : yield* m.allocSystemPage(sys.mem);
              if (!d) continue; // declined: the page stays where it is
              const src = s & m.MIGRATE_PFN_VALID ? sys.mem.folioAt(m.migratePfnToPfn(s)) : null;
              d.data[0] = src ? yield* src.inspect('copy', (f) => f.data[0]!) : 0;
              args.dst[i] = m.migratePfn(d.pfn);
            }
          }
          const pgmap = sys.mem.addPgmap('device-private', gpu, 16, {
            // A CPU fault on a device-private entry: bring that page back.
            *migrateToRam(vmf) {
              const args = {
                vma: vmf.vma,
                start: vmf.address,
                end: vmf.address + PAGE_SIZE,
                src: [0],
                dst: [0],
                cpages: 0,
                npages: 0,
                pgmapOwner: gpu,
                flags: m.MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
                faultPage: vmf.page,
              };
              if (yield* m.migrateVmaSetup(args)) return VM_FAULT_SIGBUS;
              yield* copy(args, false);
              yield* m.migrateVmaPages(args);
              yield* m.migrateVmaFinalize(args);
              return 0;
            },
          });
          sim.spawn('driver', function* () {
            yield* cpuWrite(mm, a, 'hello');
            yield* mm.mmapLock.downRead();
            const args = {
              vma: mm.vmaLookup(a)!,
              start: a,
              end: a + PAGE_SIZE,
              src: [0],
              dst: [0],
              cpages: 0,
              npages: 0,
              pgmapOwner: gpu,
              flags: m.MIGRATE_VMA_SELECT_SYSTEM,
              faultPage: null,
            };
            yield* m.migrateVmaSetup(args); // collect + unmap: the CPU now sees a migration entry
            yield* copy(args, true);
            yield* m.migrateVmaPages(args);
            yield* m.migrateVmaFinalize(args); // device-private entry
            yield* mm.mmapLock.upRead();
            seen.push(peekPte(mm, a).entry.kind); // 'device-private'
            const r = yield* cpuRead(mm, a); // migrate_to_ram
            seen.push(r.ok && r.value, peekPte(mm, a).folio!.zone); // 'hello', 'normal'
          });
        },
      },
      [],
    );
    // --- end ---
    expect(seen).toEqual(['device-private', 'hello', 'normal']);
  });
});
