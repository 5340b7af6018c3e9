/**
 * The scenario library: CPU-side operations of the mm model racing device-side operations of the
 * driver under test, on a two-page (or one-THP) anonymous mapping. Every scenario writes known
 * values, so what the device and the CPU read afterwards can be checked (data integrity), and
 * every scenario ends with the teardown of the device and the address space (leak checks).
 *
 * Conventions: `A`, `B` are values the CPU writes, `D`, `E` values the device writes. A phase
 * that races is followed by an ordered phase (after a completion) whose reads must give exactly
 * the value the race left behind: a device that kept a stale mapping reads the old frame.
 */
import {
  cpuRead,
  cpuWrite,
  fork,
  hex,
  type Mm,
  migratePage,
  mmput,
  mprotect,
  munmap,
  oomReap,
  PAGE_SIZE,
  type PageValue,
  PROT_READ,
  PROT_WRITE,
  splitHugePmd,
  swapOutPage,
} from '@hmmkit/mm';
import { errnoName, type Routine, Var } from '@hmmkit/sim';
import type { AccessResult } from '../contract.js';
import { KitViolation } from '../kinds.js';
import type { Scenario } from '../scenario.js';
import { show, type World } from '../world.js';

/** A CPU store that must succeed. */
function* cpuStore(w: World, mm: Mm, addr: number, value: PageValue): Routine<void> {
  const r = yield* cpuWrite(mm, addr, value);
  if (!r.ok) w.fail(KitViolation.AccessError, `CPU write of ${show(value)} at ${hex(addr)} got ${r.signal}`);
}

/** A CPU load that must succeed and return one of `allowed`. */
function* cpuLoad(
  w: World,
  mm: Mm,
  addr: number,
  allowed: readonly PageValue[],
  what: string,
): Routine<PageValue> {
  const r = yield* cpuRead(mm, addr);
  if (!r.ok) w.fail(KitViolation.AccessError, `${what}: CPU read at ${hex(addr)} got ${r.signal}`);
  if (!allowed.includes(r.value as PageValue)) {
    w.fail(
      KitViolation.DataIntegrity,
      `${what}: CPU read at ${hex(addr)} returned ${show(r.value)}, expected ${allowed.map(show).join(' or ')}`,
    );
  }
  return r.value as PageValue;
}

function mustFail(w: World, what: string, res: AccessResult): void {
  if (res.ret >= 0) {
    w.fail(
      KitViolation.DataIntegrity,
      `${what} succeeded${res.value !== undefined ? ` (value ${show(res.value)})` : ''}, but the CPU no longer maps it with that permission`,
    );
  }
}

/**
 * The shape shared by the single-operation races: the CPU writes `A` and runs `op` on the page
 * while the device reads it (the read may fail, but may only return `A`); once `op` is done a
 * device write of `D` must reach the frame the CPU now maps.
 */
function opRacesDeviceRead(
  w: World,
  page: number,
  op: { done: string; racing: string; after: string },
  run: (addr: number) => Routine<unknown>,
): void {
  const d = w.devices[0]!;
  const addr = w.page(page);
  const populated = w.completion('populated');
  const finished = w.completion(op.done);
  w.spawn('CPU0', function* () {
    yield* cpuStore(w, w.mm, addr, 'A');
    yield* populated.completeAll();
    yield* run(addr);
    yield* finished.completeAll();
  });
  w.spawn('dev0', function* () {
    yield* populated.wait();
    w.checkRead(`dev0 read racing ${op.racing}`, yield* d.access(addr, 'read'), ['A'], { mayFail: true });
    yield* finished.wait();
    w.checkOk(`dev0 write D after ${op.after}`, yield* d.access(addr, 'write', 'D'));
    yield* cpuLoad(w, w.mm, addr, ['D'], 'after the device write');
  });
}

const MIRROR = ['mirror'] as const;

/** A device virtual address well away from the process's mapping (VM_BIND scenarios). */
const GPU_VA = 0x10_0000_0000;

export const scenarios: readonly Scenario[] = [
  {
    id: 'touch/read',
    title: 'device read fault races the first CPU write (zero page, then COW)',
    description:
      'The device reads an untouched page (it may map the shared zero page) while the CPU writes it for the first time; afterwards the device must read what the CPU wrote. Catches a device that keeps the zero page mapped after the CPU write fault replaced it.',
    requires: MIRROR,
    small: true,
    build(w) {
      const d = w.devices[0]!;
      const p0 = w.page(0);
      const written = w.completion('cpu wrote A');
      w.spawn('CPU0', function* () {
        yield* cpuStore(w, w.mm, p0, 'A');
        yield* written.completeAll();
      });
      w.spawn('dev0', function* () {
        w.checkRead('dev0 read racing the CPU write', yield* d.access(p0, 'read'), [0, 'A'], {
          mayFail: true,
        });
        yield* written.wait();
        w.checkRead('dev0 read after the CPU write', yield* d.access(p0, 'read'), ['A']);
      });
    },
  },
  {
    id: 'touch/write',
    title: 'device write fault races a CPU write to the same page',
    description:
      'The device and the CPU both write an untouched page; afterwards the device and the CPU must read the same value, one of the two written. Catches a device write that lands in a frame the CPU no longer maps (a lost write).',
    requires: MIRROR,
    small: true,
    build(w) {
      const d = w.devices[0]!;
      const p0 = w.page(0);
      const written = w.completion('cpu wrote A');
      w.spawn('CPU0', function* () {
        yield* cpuStore(w, w.mm, p0, 'A');
        yield* written.completeAll();
      });
      w.spawn('dev0', function* () {
        const ok = w.checkOk('dev0 write D', yield* d.access(p0, 'write', 'D'), { mayFail: true });
        yield* written.wait();
        const cpu = yield* cpuLoad(w, w.mm, p0, ok ? ['A', 'D'] : ['A'], 'after both writes');
        w.checkRead('dev0 read after both writes', yield* d.access(p0, 'read'), [cpu]);
      });
    },
  },
  {
    id: 'munmap/read',
    title: 'munmap races a device read',
    description:
      'The CPU unmaps a populated page while the device reads it. The device may read the old value or fail, but once munmap returned it must not reach the page any more (MMU_NOTIFY_UNMAP).',
    requires: MIRROR,
    small: true,
    build(w) {
      const d = w.devices[0]!;
      const p0 = w.page(0);
      const populated = w.completion('populated');
      const unmapped = w.completion('unmapped');
      w.spawn('CPU0', function* () {
        yield* cpuStore(w, w.mm, p0, 'A');
        yield* populated.completeAll();
        yield* munmap(w.mm, p0, PAGE_SIZE);
        yield* unmapped.completeAll();
      });
      w.spawn('dev0', function* () {
        yield* populated.wait();
        w.checkRead('dev0 read racing munmap', yield* d.access(p0, 'read'), ['A'], { mayFail: true });
        yield* unmapped.wait();
        mustFail(w, `dev0 read of ${hex(p0)} after munmap`, yield* d.access(p0, 'read'));
      });
    },
  },
  {
    id: 'munmap/write',
    title: 'munmap races two device writes',
    description:
      'The CPU unmaps a populated page while the device writes it twice (the second write goes through the mapping the first one made). A device write must never reach the freed frame.',
    requires: MIRROR,
    build(w) {
      const d = w.devices[0]!;
      const p0 = w.page(0);
      const populated = w.completion('populated');
      w.spawn('CPU0', function* () {
        yield* cpuStore(w, w.mm, p0, 'A');
        yield* populated.completeAll();
        yield* munmap(w.mm, p0, PAGE_SIZE);
      });
      w.spawn('dev0', function* () {
        yield* populated.wait();
        w.checkOk('dev0 write D', yield* d.access(p0, 'write', 'D'), { mayFail: true });
        w.checkOk('dev0 write E', yield* d.access(p0, 'write', 'E'), { mayFail: true });
      });
    },
  },
  {
    id: 'mprotect/write',
    title: 'mprotect(PROT_READ) races a device write',
    description:
      'The CPU makes a populated page read-only while the device writes it. Afterwards a device write must fail, and the CPU and the device must read the value the race left (MMU_NOTIFY_PROTECTION_VMA).',
    requires: MIRROR,
    small: true,
    build(w) {
      const d = w.devices[0]!;
      const p0 = w.page(0);
      const populated = w.completion('populated');
      const protectedRo = w.completion('read-only');
      w.spawn('CPU0', function* () {
        yield* cpuStore(w, w.mm, p0, 'A');
        yield* populated.completeAll();
        yield* mprotect(w.mm, p0, PAGE_SIZE, PROT_READ);
        yield* protectedRo.completeAll();
      });
      w.spawn('dev0', function* () {
        yield* populated.wait();
        const ok = w.checkOk('dev0 write D', yield* d.access(p0, 'write', 'D'), { mayFail: true });
        yield* protectedRo.wait();
        mustFail(w, `dev0 write of read-only ${hex(p0)}`, yield* d.access(p0, 'write', 'E'));
        const expected = ok ? 'D' : 'A';
        yield* cpuLoad(w, w.mm, p0, [expected], 'after mprotect');
        w.checkRead('dev0 read after mprotect', yield* d.access(p0, 'read'), [expected]);
      });
    },
  },
  {
    id: 'fork/cow',
    title: 'fork and a parent COW write race a device read',
    description:
      "The CPU forks (write-protecting the page, MMU_NOTIFY_PROTECTION_PAGE) and the parent writes (COW: the parent gets a new frame, MMU_NOTIFY_CLEAR) while the device reads. Afterwards the device must see the parent's new frame, and a device write must reach the parent, never the child.",
    requires: MIRROR,
    build(w) {
      const d = w.devices[0]!;
      const p0 = w.page(0);
      const populated = w.completion('populated');
      const cowDone = w.completion('parent wrote B');
      const devDone = w.completion('device wrote D');
      w.spawn('CPU0', function* () {
        yield* cpuStore(w, w.mm, p0, 'A');
        yield* populated.completeAll();
        const child = yield* fork(w.mm);
        if (typeof child === 'number')
          return w.fail(KitViolation.AccessError, `fork failed with ${errnoName(child)}`);
        yield* cpuStore(w, w.mm, p0, 'B');
        yield* cowDone.completeAll();
        yield* devDone.wait();
        yield* cpuLoad(w, w.mm, p0, ['D'], 'parent after the device write');
        yield* cpuLoad(w, child, p0, ['A'], 'child after the device wrote the parent');
        yield* mmput(child);
      });
      w.spawn('dev0', function* () {
        yield* populated.wait();
        w.checkRead('dev0 read racing fork', yield* d.access(p0, 'read'), ['A', 'B'], { mayFail: true });
        yield* cowDone.wait();
        w.checkRead('dev0 read after the parent COW', yield* d.access(p0, 'read'), ['B']);
        w.checkOk('dev0 write D', yield* d.access(p0, 'write', 'D'));
        yield* devDone.completeAll();
      });
    },
  },
  {
    id: 'swap-out/read',
    title: 'swap-out races a device read',
    description:
      'Reclaim unmaps the page and frees its frame (MMU_NOTIFY_CLEAR) while the device reads it. Afterwards a device write swaps it back in and the CPU must read what the device wrote.',
    requires: MIRROR,
    build(w) {
      opRacesDeviceRead(w, 0, { done: 'swapped out', racing: 'swap-out', after: 'swap-out' }, (addr) =>
        swapOutPage(w.mm, addr),
      );
    },
  },
  {
    id: 'migrate/read',
    title: 'CPU page migration races a device read',
    description:
      'The kernel migrates the page to a new frame (migration entries, MMU_NOTIFY_CLEAR) and frees the old one while the device reads it. Afterwards device writes must reach the new frame.',
    requires: MIRROR,
    build(w) {
      opRacesDeviceRead(w, 0, { done: 'migrated', racing: 'migration', after: 'migration' }, (addr) =>
        migratePage(w.mm, addr),
      );
    },
  },
  {
    id: 'migrate/read-repeat',
    title: 'three CPU page migrations race three device reads',
    description:
      "The kernel migrates the page three times (each a new frame, MMU_NOTIFY_CLEAR, no mmap_lock) while the device reads it three times, so device faults meet invalidations at many points of their read_begin, sample, lock, read_retry, program sequence, also while the fault samples the CPU page table (migration does not wait for the mmap_lock, munmap does). Catches a driver whose device-PTE clear and sequence bump are not one critical section in the right order (e.g. a clear that runs before the notifier sequence is published: a fault passes read_retry in between and maps the old frame). Afterwards a device write must reach the page's current frame.",
    requires: MIRROR,
    build(w) {
      const d = w.devices[0]!;
      const p0 = w.page(0);
      const populated = w.completion('populated');
      const migrated = w.completion('migrated');
      w.spawn('CPU0', function* () {
        yield* cpuStore(w, w.mm, p0, 'A');
        yield* populated.completeAll();
        for (let i = 0; i < 3; i++) yield* migratePage(w.mm, p0);
        yield* migrated.completeAll();
      });
      w.spawn('dev0', function* () {
        yield* populated.wait();
        for (let i = 0; i < 3; i++)
          w.checkRead(`dev0 read ${i + 1} racing migrations`, yield* d.access(p0, 'read'), ['A'], {
            mayFail: true,
          });
        yield* migrated.wait();
        w.checkOk('dev0 write D after the migrations', yield* d.access(p0, 'write', 'D'));
        yield* cpuLoad(w, w.mm, p0, ['D'], 'after the device write');
      });
    },
  },
  {
    id: 'thp-split/read',
    title: 'a THP split races a device read of a page inside it',
    description:
      "The page is part of a PMD-mapped transparent huge page; __split_huge_pmd replaces the PMD by PTEs (MMU_NOTIFY_CLEAR over 2 MiB) while the device reads. The frames stay the same; the device must keep seeing the CPU's data.",
    requires: MIRROR,
    thp: true,
    weight: 0.25,
    build(w) {
      opRacesDeviceRead(w, 1, { done: 'split', racing: 'the split', after: 'the split' }, function* (addr) {
        yield* w.mm.mmapLock.downRead('mmap_read_lock');
        const vma = w.mm.vmaLookup(addr);
        if (vma) yield* splitHugePmd(vma, addr);
        yield* w.mm.mmapLock.upRead('mmap_read_unlock');
      });
    },
  },
  {
    id: 'exit/read',
    title: 'process exit races device reads; the device is closed after the exit',
    description:
      'The last mmput() runs exit_mmap (mmu_notifier_release, then MMU_NOTIFY_UNMAP over everything) while the device reads; the device file is closed afterwards. No device access may reach a freed frame, and close() must release everything.',
    requires: MIRROR,
    teardown: 'exit-then-close',
    build(w) {
      const d = w.devices[0]!;
      const p0 = w.page(0);
      const populated = w.completion('populated');
      w.spawn('CPU0', function* () {
        yield* cpuStore(w, w.mm, p0, 'A');
        yield* populated.completeAll();
        yield* d.whenOpen();
        w.mmGone = true;
        yield* mmput(w.mm);
      });
      w.spawn('dev0', function* () {
        yield* d.open();
        yield* populated.wait();
        w.checkRead('dev0 read racing exit', yield* d.access(p0, 'read'), ['A'], { mayFail: true });
        w.checkRead('dev0 second read racing exit', yield* d.access(p0, 'read'), ['A'], { mayFail: true });
      });
    },
  },
  {
    id: 'oom-reap/read',
    title: 'the OOM reaper (non-blockable invalidation) races device reads',
    description:
      "oom_reap_task_mm() unmaps the memory of a dying process under a non-blockable MMU_NOTIFY_CLEAR range while the device reads. A driver may refuse (return false) or try-lock; it must never sleep (block-in-nonblockable). A driver that declares nonBlocking: 'refuse' must make the reaper skip its range.",
    requires: MIRROR,
    build(w) {
      const d = w.devices[0]!;
      const p0 = w.page(0);
      const populated = w.completion('populated');
      const policy = w.driver.supports.nonBlocking;
      w.spawn('oom_reaper', function* () {
        yield* cpuStore(w, w.mm, p0, 'A');
        yield* populated.completeAll();
        const subscribed = w.devices.some((x) => x.instance.liveSubscriptions() > 0);
        const reaped = yield* oomReap(w.mm);
        if (policy === 'refuse' && subscribed && reaped) {
          w.fail(
            KitViolation.CapabilityMismatch,
            "the driver declares nonBlocking: 'refuse', but a non-blockable invalidation over its subscription succeeded",
          );
        }
      });
      w.spawn('dev0', function* () {
        yield* populated.wait();
        w.checkRead('dev0 read racing the OOM reaper', yield* d.access(p0, 'read'), ['A'], { mayFail: true });
        w.checkRead('dev0 second read racing the OOM reaper', yield* d.access(p0, 'read'), ['A'], {
          mayFail: true,
        });
      });
    },
  },
  {
    id: 'continuous/read',
    title: 'continuous invalidation: mprotect toggles the page for as long as the device read lasts',
    description:
      'The CPU keeps invalidating the page (mprotect read-only, then read-write) for as long as the device access is in flight, each time after the device made progress. A driver must either succeed with the right value or give up (-EBUSY, -EAGAIN); one that retries without bound starves and is reported as a livelock.',
    requires: MIRROR,
    build(w) {
      const d = w.devices[0]!;
      const p0 = w.page(0);
      const populated = w.completion('populated');
      const done = new Var(w.sim, 'device done', false);
      w.spawn('CPU0', function* () {
        yield* cpuStore(w, w.mm, p0, 'A');
        yield* populated.completeAll();
        for (;;) {
          if (yield* done.read()) break;
          yield* mprotect(w.mm, p0, PAGE_SIZE, PROT_READ);
          yield* mprotect(w.mm, p0, PAGE_SIZE, PROT_READ | PROT_WRITE);
          yield* w.waitForProgress('wait for the device to make progress');
        }
      });
      w.spawn('dev0', function* () {
        yield* populated.wait();
        w.checkRead('dev0 read under continuous invalidation', yield* d.access(p0, 'read'), ['A'], {
          mayFail: true,
        });
        yield* done.write(true);
      });
    },
  },
  {
    id: 'two-devices/munmap',
    title: 'two instances mirror the process while munmap removes both pages',
    description:
      'Two devices of the same driver mirror one process (one reads page 0, the other writes page 1) while the CPU unmaps both pages. Every instance must tear down its own mappings.',
    requires: MIRROR,
    devices: 2,
    build(w) {
      const [d0, d1] = [w.devices[0]!, w.devices[1]!];
      const [p0, p1] = [w.page(0), w.page(1)];
      const populated = w.completion('populated');
      w.spawn('CPU0', function* () {
        yield* cpuStore(w, w.mm, p0, 'A');
        yield* cpuStore(w, w.mm, p1, 'B');
        yield* populated.completeAll();
        yield* munmap(w.mm, p0, 2 * PAGE_SIZE);
      });
      w.spawn('dev0', function* () {
        yield* populated.wait();
        w.checkRead('dev0 read racing munmap', yield* d0.access(p0, 'read'), ['A'], { mayFail: true });
      });
      w.spawn('dev1', function* () {
        yield* populated.wait();
        const ok = w.checkOk('dev1 write D', yield* d1.access(p1, 'write', 'D'), { mayFail: true });
        w.checkRead('dev1 read back', yield* d1.access(p1, 'read'), ok ? ['B', 'D'] : ['B'], {
          mayFail: true,
        });
      });
    },
  },
  {
    id: 'teardown/close-vs-munmap',
    title: 'the device is closed while munmap invalidates its range',
    description:
      'close() (unregistering the notifier, freeing the device page table) races an MMU_NOTIFY_UNMAP callback. Removal must wait for the callback, nothing may be used after it is freed, and nothing may leak.',
    requires: MIRROR,
    small: true,
    build(w) {
      const d = w.devices[0]!;
      const p0 = w.page(0);
      const populated = w.completion('populated');
      w.spawn('CPU0', function* () {
        yield* cpuStore(w, w.mm, p0, 'A');
        yield* populated.completeAll();
        yield* munmap(w.mm, p0, PAGE_SIZE);
      });
      w.spawn('dev0', function* () {
        yield* populated.wait();
        w.checkRead('dev0 read before close', yield* d.access(p0, 'read'), ['A'], { mayFail: true });
        yield* d.close();
      });
    },
  },
  {
    id: 'register/munmap',
    title: 'a registered range (userptr / ODP) races munmap',
    description:
      'The device registers a range, reads through it and unregisters it while the CPU unmaps the page. Registration may fail with -EFAULT once the page is gone; nothing may stay mapped or leak.',
    requires: [['userptr', 'odp']],
    small: true,
    build(w) {
      const d = w.devices[0]!;
      const p0 = w.page(0);
      const populated = w.completion('populated');
      w.spawn('CPU0', function* () {
        yield* cpuStore(w, w.mm, p0, 'A');
        yield* populated.completeAll();
        yield* munmap(w.mm, p0, PAGE_SIZE);
      });
      w.spawn('dev0', function* () {
        yield* populated.wait();
        const reg = yield* d.registerRange(p0, PAGE_SIZE);
        if (reg === 0) {
          w.checkRead('dev0 read of the registered range', yield* d.access(p0, 'read'), ['A'], {
            mayFail: true,
          });
          const un = yield* d.unregisterRange(p0, PAGE_SIZE);
          if (un !== 0) w.fail(KitViolation.DriverError, `unregisterRange failed with ${errnoName(un)}`);
        }
      });
    },
  },
  {
    id: 'device-migrate/cpu-read',
    title: 'migration to device memory races a CPU read (migrate_to_ram)',
    description:
      'The device migrates the page to its memory (MMU_NOTIFY_MIGRATE with its own owner) while the CPU reads it (a fault on the device-private entry migrates it back). The CPU must read the value, and the driver must ignore its own MIGRATE invalidation or it retries forever (livelock).',
    requires: ['mirror', 'migration'],
    build(w) {
      const d = w.devices[0]!;
      const p0 = w.page(0);
      const populated = w.completion('populated');
      const migrated = w.completion('migrated');
      const rewritten = w.completion('cpu wrote B');
      w.spawn('CPU0', function* () {
        yield* cpuStore(w, w.mm, p0, 'A');
        yield* populated.completeAll();
        yield* cpuLoad(w, w.mm, p0, ['A'], 'CPU read racing migration to the device');
        yield* migrated.wait();
        yield* cpuStore(w, w.mm, p0, 'B');
        yield* rewritten.completeAll();
      });
      w.spawn('dev0', function* () {
        yield* populated.wait();
        // Racing the CPU read, the migration may migrate nothing and fail (-EBUSY, -ENOENT, ...).
        yield* d.migrateToDevice(p0, 1);
        w.checkRead('dev0 read after migration', yield* d.access(p0, 'read'), ['A']);
        yield* migrated.completeAll();
        yield* rewritten.wait();
        w.checkRead('dev0 read after the CPU wrote B', yield* d.access(p0, 'read'), ['B']);
      });
    },
  },
  {
    id: 'device-migrate/exit',
    title: 'the process exits with pages in device memory; the device is closed afterwards',
    description:
      'The device migrates a page to its memory, then the process exits and the device is closed. Device memory must be freed and nothing may leak.',
    requires: ['mirror', 'migration'],
    teardown: 'exit-then-close',
    build(w) {
      const d = w.devices[0]!;
      const p0 = w.page(0);
      const populated = w.completion('populated');
      const migrated = w.completion('migrated');
      w.spawn('CPU0', function* () {
        yield* cpuStore(w, w.mm, p0, 'A');
        yield* populated.completeAll();
        yield* migrated.wait();
        yield* d.whenOpen();
        w.mmGone = true;
        yield* mmput(w.mm);
      });
      w.spawn('dev0', function* () {
        yield* populated.wait();
        yield* d.migrateToDevice(p0, 1);
        yield* migrated.completeAll();
        w.checkRead('dev0 read racing exit', yield* d.access(p0, 'read'), ['A'], { mayFail: true });
      });
    },
  },
  {
    id: 'atomic/cpu-write',
    title: 'a device atomic exchange races a CPU write',
    description:
      'The device performs an atomic exchange (device-exclusive entry, MMU_NOTIFY_EXCLUSIVE) while the CPU writes the page. The outcome must be linearizable: either the exchange saw A and the CPU write B came last, or it saw B and its own D is what remains.',
    requires: ['mirror', 'atomics'],
    build(w) {
      const d = w.devices[0]!;
      const p0 = w.page(0);
      const populated = w.completion('populated');
      const devDone = w.completion('device done');
      let old: AccessResult | null = null;
      w.spawn('CPU0', function* () {
        yield* cpuStore(w, w.mm, p0, 'A');
        yield* populated.completeAll();
        yield* cpuStore(w, w.mm, p0, 'B');
        yield* devDone.wait();
        const r = old!;
        const allowed: PageValue[] =
          r.ret < 0 ? ['B'] : r.value === 'A' ? ['B'] : r.value === 'B' ? ['D'] : [];
        if (!allowed.length)
          w.fail(
            KitViolation.DataIntegrity,
            `dev0 atomic exchange returned ${show(r.value)}, expected "A" or "B"`,
          );
        yield* cpuLoad(w, w.mm, p0, allowed, `after the exchange that returned ${show(r.value)}`);
      });
      w.spawn('dev0', function* () {
        yield* populated.wait();
        old = yield* d.access(p0, 'atomic', 'D');
        w.checkOk('dev0 atomic exchange', old, { mayFail: true });
        yield* devDone.completeAll();
      });
    },
  },
  {
    id: 'atomic/after-cpu-read',
    title: 'a device atomic on a page the CPU has only read',
    description:
      'The CPU reads an untouched page (the zero page is mapped), then the device performs an atomic exchange on it: make_device_exclusive() must break COW first, an invalidation inside the atomic fault of the driver (no other thread runs). The exchange may fail; the CPU must then read what it implies (D if it succeeded, 0 otherwise).',
    requires: ['mirror', 'atomics'],
    small: true,
    build(w) {
      const d = w.devices[0]!;
      const p0 = w.page(0);
      w.spawn('dev0', function* () {
        yield* cpuLoad(w, w.mm, p0, [0], 'CPU read of the untouched page');
        const x = yield* d.access(p0, 'atomic', 'D');
        w.checkRead('dev0 atomic exchange', x, [0], { mayFail: true });
        yield* cpuLoad(w, w.mm, p0, [x.ret === 0 ? 'D' : 0], `after the exchange (${errnoName(x.ret)})`);
      });
    },
  },
  {
    id: 'vm-bind/remap',
    title: 'bind a range, unbind its middle page (a remap), unbind the rest',
    description:
      'Binds four pages at a device VA, unbinds the second (the mapping is split into two pieces: a remap), then unbinds the whole range; every bind must succeed. Exercises the submit-time split (link the pieces before unlinking the old mapping) and run_job, which must not allocate (page tables are got at submit).',
    requires: ['vmBind'],
    small: true,
    build(w) {
      const d = w.devices[0]!;
      w.spawn('dev0', function* () {
        yield* d.open();
        const ok = (what: string, r: number) => {
          if (r !== 0) w.fail(KitViolation.DriverError, `${what} failed with ${errnoName(r)}`);
        };
        ok('bind', yield* d.instance.bind!(GPU_VA, 4 * PAGE_SIZE));
        ok('unbind middle', yield* d.instance.unbind!(GPU_VA + PAGE_SIZE, PAGE_SIZE));
        ok('unbind rest', yield* d.instance.unbind!(GPU_VA, 4 * PAGE_SIZE));
      });
    },
  },
  {
    id: 'vm-bind/concurrent',
    title: 'two threads of one client bind and unbind concurrently',
    description:
      "Two threads of one client each bind and unbind their own device VA range. Binds go through the client's one job queue and must complete in submission order (a synchronous bind must not overtake earlier asynchronous ones).",
    requires: ['vmBind'],
    build(w) {
      const d = w.devices[0]!;
      for (const [name, base] of [
        ['dev0.a', GPU_VA],
        ['dev0.b', GPU_VA + 16 * PAGE_SIZE],
      ] as const) {
        w.spawn(name, function* () {
          yield* d.open();
          yield* d.instance.bind!(base, 2 * PAGE_SIZE);
          yield* d.instance.unbind!(base, 2 * PAGE_SIZE);
        });
      }
    },
  },
];

/** Scenario by id. */
export function findScenario(id: string): Scenario | undefined {
  return scenarios.find((s) => s.id === id);
}
