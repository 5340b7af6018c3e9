/**
 * The world a scenario runs in: one machine (`System`), one process address space mirrored by one
 * or more instances of the driver under test, the scenario's threads, and the kit's checkers
 * wired into the simulator (after every step, and at the end of the run).
 */
import {
  checkNoLeaks,
  checkPageTables,
  type FrameRef,
  hex,
  type Mm,
  type MmuNotifierRange,
  mmObservers,
  mmput,
  noNotifierWarnings,
  notifierInvariants,
  PAGE_SIZE,
  type PageValue,
  PROT_READ,
  PROT_WRITE,
  peekPte,
  System,
  VM_HUGEPAGE,
  watchNotifierBrackets,
} from '@hmmkit/mm';
import {
  Access,
  type Check,
  Completion,
  errnoName,
  Op,
  type ProgramHooks,
  type Routine,
  type Sim,
  SimObject,
  type Thread,
  type ThreadBody,
  type ViolationKind,
} from '@hmmkit/sim';
import type { AccessResult, DeviceMapping, DriverInstance, DriverModel, Intent } from './contract.js';
import { KitViolation } from './kinds.js';
import type { Scenario } from './scenario.js';
import { validateInstance } from './validate.js';

/** Start of the scenario's mapping: 2 MiB aligned, so THP scenarios get a huge page. */
export const MAPPING_BASE = 0x200000;

/** Everything in the world that makes the run fail must go through {@link World.fail}. */
export class World {
  readonly sys: System;
  readonly mm: Mm;
  readonly base: number;
  readonly devices: Device[] = [];
  /** Threads spawned by the scenario (the teardown thread joins them). */
  readonly threads: Thread[] = [];
  /** Invalidation ranges between a successful start and their end, per mm. */
  private readonly windows: MmuNotifierRange[] = [];
  /** Set by a scenario that tears the mm down itself (exit, OOM kill). */
  mmGone = false;

  constructor(
    readonly sim: Sim,
    readonly driver: DriverModel,
    readonly variant: string | null,
    readonly scenario: Scenario,
  ) {
    const thp = !!scenario.thp;
    this.sys = new System(sim, {
      memoryPages: thp ? 1024 : 32,
      swapSlots: 8,
      thp: thp ? 'always' : 'never',
    });
    watchNotifierBrackets(sim);
    mmObservers(sim).add({
      invalidateRangeStart: (range, _t, ret) => {
        if (ret === 0) this.windows.push(range);
      },
      invalidateRangeEnd: (range) => {
        const i = this.windows.lastIndexOf(range);
        if (i >= 0) this.windows.splice(i, 1);
      },
    });
    this.mm = this.sys.createMm('proc');
    const pages = scenario.pages ?? 2;
    this.base = this.sys.mmapSetup(this.mm, {
      addr: MAPPING_BASE,
      len: thp ? 512 * PAGE_SIZE : pages * PAGE_SIZE,
      prot: PROT_READ | PROT_WRITE,
      vmFlags: thp ? VM_HUGEPAGE : 0,
    });
    const n = scenario.devices ?? 1;
    for (let i = 0; i < n; i++) {
      const instance = driver.create({ sim, system: this.sys, mm: this.mm, variant, index: i });
      const problems = validateInstance(instance, driver.supports);
      if (problems.length) {
        this.fail(KitViolation.Contract, `driver '${driver.name}': ${problems.join('; ')}`);
      }
      this.devices.push(new Device(this, i, instance));
    }
  }

  /** Address of page `i` of the scenario's mapping. */
  page(i: number): number {
    return this.base + i * PAGE_SIZE;
  }

  /** Stops the run with a violation of `kind`. */
  fail(kind: ViolationKind, message: string, objects: string[] = []): never {
    return this.sim.fail(kind, message, { objects });
  }

  /** Reports `kind` unless `cond` holds. */
  expect(cond: boolean, kind: ViolationKind, message: () => string): void {
    if (!cond) this.fail(kind, message());
  }

  /** Spawns a scenario thread. */
  spawn(name: string, body: ThreadBody): Thread {
    const t = this.sim.spawn(name, body);
    this.threads.push(t);
    return t;
  }

  /**
   * Blocks until another thread changed shared state since this thread's previous call (the
   * first call passes). Unlike `cpu_relax()` it is not a spin hint, so schedulers do not lower
   * the caller's priority after it: an adversary paced by the device's progress.
   */
  *waitForProgress(label?: string): Routine<void> {
    const gate = this.sim.singleton('conformance:progress', () => new ProgressGate(this.sim));
    yield new Op('wait_for_progress', gate, Access.GlobalRead, 0, undefined, label);
  }

  /** A completion for ordering scenario phases (`populated`, `done`...). */
  completion(name: string): Completion {
    return new Completion(this.sim, name);
  }

  /** Whether `addr` of `mm` lies in an invalidation range between its start and its end. */
  inWindow(mm: Mm, addr: number): boolean {
    for (const r of this.windows) if (r.mm === mm && r.start <= addr && addr < r.end) return true;
    return false;
  }

  /** Checks a device read against the values the scenario allows at that point. */
  checkRead(
    what: string,
    res: AccessResult,
    allowed: readonly PageValue[],
    opts: { mayFail?: boolean } = {},
  ): void {
    if (res.ret < 0) {
      if (opts.mayFail) return;
      this.fail(KitViolation.AccessError, `${what} failed with ${errnoName(res.ret)} where it must succeed`);
    }
    if (!allowed.includes(res.value as PageValue)) {
      this.fail(
        KitViolation.DataIntegrity,
        `${what} read ${show(res.value)}, expected ${allowed.map(show).join(' or ')}`,
      );
    }
  }

  /** Checks that a device access succeeded (writes) unless the scenario lets it fail. */
  checkOk(what: string, res: AccessResult, opts: { mayFail?: boolean } = {}): boolean {
    if (res.ret === 0) return true;
    if (!opts.mayFail)
      this.fail(KitViolation.AccessError, `${what} failed with ${errnoName(res.ret)} where it must succeed`);
    return false;
  }

  /** The checks run after every step. */
  private stepCheck(): void {
    for (const d of this.devices) d.checkMirror();
  }

  /** Hooks handed to the simulator: per-step invariants and end-of-run properties. */
  hooks(): ProgramHooks {
    const sys = this.sys;
    const notifier = Object.entries(notifierInvariants(this.mm));
    const warnings = noNotifierWarnings(this.sim);
    const thp = !!this.scenario.thp;
    const invariant: Record<string, Check> = {
      kit: () => {
        this.stepCheck();
        // The structural page-table check walks every entry: skipped for THP worlds (512 PTEs).
        const pt = thp ? undefined : checkPageTables(sys);
        if (pt) this.fail(KitViolation.PageTable, pt);
        for (const [name, check] of notifier) {
          const r = check();
          if (r === false || typeof r === 'string')
            this.fail(KitViolation.NotifierState, `${name}: ${r === false ? 'does not hold' : r}`);
        }
        const w = warnings();
        if (typeof w === 'string') this.fail('kernel-warn', w);
      },
    };
    const properties: Record<string, Check> = {
      teardown: () => this.teardownCheck(),
    };
    return { invariant, properties };
  }

  /** Spawns the teardown thread: waits for the scenario, then closes devices and exits the mm. */
  spawnTeardown(): void {
    const order = this.scenario.teardown ?? 'close-then-exit';
    const threads = this.threads.slice();
    const w = this;
    this.sim.spawn('teardown', function* () {
      for (const t of threads) yield* w.sim.join(t);
      if (order === 'exit-then-close' && !w.mmGone) {
        w.mmGone = true;
        yield* mmput(w.mm);
      }
      for (const d of w.devices) yield* d.close();
      if (!w.mmGone) {
        w.mmGone = true;
        yield* mmput(w.mm);
      }
    });
  }

  private teardownCheck(): void {
    for (const d of this.devices) {
      const live = d.instance.liveSubscriptions();
      if (live !== 0)
        this.fail(KitViolation.Leak, `${d.name}: ${live} notifier subscription(s) still live after close()`);
      const left = [...d.instance.mappings()];
      if (left.length)
        this.fail(
          KitViolation.Leak,
          `${d.name}: ${left.length} device mapping(s) left after close() (first at ${hex(left[0]!.addr)})`,
        );
    }
    const leak = checkNoLeaks(this.sys);
    if (leak) this.fail(KitViolation.Leak, `after teardown: ${leak}`);
    for (const mm of this.sys.mms) {
      if (mm.mmCount !== 0)
        this.fail(
          KitViolation.Leak,
          `after teardown: ${mm.name}->mm_count is ${mm.mmCount}: an mmgrab() was never dropped`,
        );
    }
  }
}

/** The object {@link World.waitForProgress} waits on. */
class ProgressGate extends SimObject {
  private readonly marks = new Map<Thread, number>();
  constructor(sim: Sim) {
    super(sim, 'progress');
  }
  override enabled(_op: Op, t: Thread): boolean {
    const mark = this.marks.get(t);
    return mark === undefined || this.sim.changeEpoch - t.changes > mark;
  }
  override exec(_op: Op, t: Thread): unknown {
    this.marks.set(t, this.sim.changeEpoch - t.changes);
    return undefined;
  }
  override describe(): string {
    return 'wait_for_progress()';
  }
  override waitReason(op: Op): string {
    return `${op.describe()}: no other thread changed anything since its previous wait`;
  }
}

/** One instance of the driver under test, as scenarios use it. */
export class Device {
  readonly name: string;
  private state: 'closed' | 'opening' | 'open' | 'released' = 'closed';
  private readonly opened: Completion;

  constructor(
    readonly world: World,
    readonly index: number,
    readonly instance: DriverInstance,
  ) {
    this.name = `dev${index}`;
    this.opened = new Completion(world.sim, `${this.name} opened`);
  }

  /** Opens the device once; concurrent callers wait for the first. */
  *open(): Routine<void> {
    if (this.state === 'open') return;
    if (this.state === 'opening') {
      yield* this.opened.wait();
      return;
    }
    if (this.state === 'released') this.world.fail('model-error', `${this.name} used after close()`);
    this.state = 'opening';
    const ret = yield* this.instance.open();
    if (typeof ret !== 'number')
      this.world.fail(KitViolation.Contract, `${this.name}: open() returned ${show(ret)}, not 0 or -errno`);
    if (ret < 0)
      this.world.fail(KitViolation.DriverError, `${this.name}: open() failed with ${errnoName(ret)}`);
    this.state = 'open';
    yield* this.opened.completeAll();
  }

  /** A device access (opens the device first if needed). */
  *access(addr: number, intent: Intent, value?: PageValue): Routine<AccessResult> {
    yield* this.open();
    const res = yield* this.instance.access(addr, intent, value);
    if (!res || typeof res !== 'object' || typeof res.ret !== 'number') {
      this.world.fail(
        KitViolation.Contract,
        `${this.name}: access() returned ${show(res)}, not { ret, value? }`,
      );
    }
    if (res.ret === 0 && intent !== 'write' && res.value === undefined) {
      this.world.fail(
        KitViolation.Contract,
        `${this.name}: a successful ${intent} access at ${hex(addr)} returned no value`,
      );
    }
    return res;
  }

  /** `migrateToDevice` (the scenario requires `migration`). */
  *migrateToDevice(addr: number, npages: number): Routine<number> {
    yield* this.open();
    return yield* this.instance.migrateToDevice!(addr, npages);
  }

  /** `migrateToSystem` (the scenario requires `migration`). */
  *migrateToSystem(addr: number, npages: number): Routine<number> {
    yield* this.open();
    return yield* this.instance.migrateToSystem!(addr, npages);
  }

  /** `registerRange` (the scenario requires `userptr` or `odp`). */
  *registerRange(addr: number, len: number): Routine<number> {
    yield* this.open();
    return yield* this.instance.registerRange!(addr, len);
  }

  /** `unregisterRange`. */
  *unregisterRange(addr: number, len: number): Routine<number> {
    return yield* this.instance.unregisterRange!(addr, len);
  }

  /** Closes the device (teardown); a device never opened is still closed, to release what create() took. */
  *close(): Routine<void> {
    if (this.state === 'released') return;
    if (this.state === 'opening') yield* this.opened.wait();
    this.state = 'released';
    yield* this.instance.close();
  }

  /** Waits until the device is open (scenarios that end the process need an opened device). */
  *whenOpen(): Routine<void> {
    if (this.state === 'open' || this.state === 'released') return;
    yield* this.opened.wait();
  }

  /**
   * The mirror invariant and the freed-frame check for this device, after a step. A device being
   * closed accepts no more accesses; its page table is checked to be empty at the end instead.
   */
  checkMirror(): void {
    if (this.state === 'released') return;
    const w: World = this.world;
    const mm = w.mm;
    const mem = w.sys.mem;
    for (const m of this.instance.mappings()) {
      if (w.inWindow(mm, m.addr)) continue;
      const where = `${this.name} maps ${hex(m.addr)}`;
      const frame = m.frame as FrameRef | undefined;
      if (!frame || typeof frame.pfn !== 'number' || typeof frame.gen !== 'number') {
        w.fail(KitViolation.Contract, `${where}: mappings() gave an entry without a FrameRef { pfn, gen }`);
      }
      const res = mem.resolve(frame);
      if (!res) {
        w.fail(
          KitViolation.FreedFrame,
          `${where} -> pfn ${hex(frame.pfn)} (generation ${frame.gen}), a frame that was freed${mem.genOf(frame.pfn) > frame.gen + 1 ? ' and reused' : ''}, outside any invalidation window`,
        );
      }
      const problem = mirrorProblem(mm, m, res, this.instance.owner);
      if (problem)
        w.fail(KitViolation.StaleMapping, `${where} -> ${res.folio.name}${pageOf(res)}: ${problem}`);
    }
  }
}

function pageOf(res: { index: number }): string {
  return res.index ? ` page ${res.index}` : '';
}

/** Why device mapping `m` is not allowed by the CPU's entry at `m.addr`, or null if it is. */
function mirrorProblem(
  mm: Mm,
  m: DeviceMapping,
  res: { folio: { name: string; pgmap: { owner: unknown } | null }; index: number },
  owner: unknown,
): string | null {
  const info = peekPte(mm, m.addr);
  const e = info.entry;
  const same = info.folio === res.folio && info.index === res.index;
  const cpu = info.folio ? `${info.folio.name}${pageOf(info)}` : 'nothing';
  switch (e.kind) {
    case 'present':
    case 'huge': {
      if (!same) return `the CPU maps ${cpu} there`;
      if (e.protnone) return 'the CPU entry is PROT_NONE';
      if (m.write && !e.write) return 'the device mapping is writable but the CPU entry is read-only';
      if (m.atomic) return 'the device maps it for atomic access but the CPU entry is not device-exclusive';
      return null;
    }
    case 'device-private': {
      if (!same) return `the CPU entry is device-private ${cpu}`;
      // Without an `owner` the kit cannot tell whose page it is; the frame match must do.
      if (owner !== undefined && res.folio.pgmap?.owner !== owner)
        return "the CPU entry is a device-private page of another owner (not this instance's `owner`)";
      if (m.write && !e.write)
        return 'the device mapping is writable but the device-private entry is read-only';
      return null;
    }
    case 'device-exclusive': {
      if (!same) return `the CPU entry is device-exclusive for ${cpu}`;
      if (owner !== undefined && e.owner !== owner)
        return "the CPU entry is device-exclusive for another owner (not this instance's `owner`)";
      return null;
    }
    case 'migration':
      // A migration of the page is in progress (the CPU itself waits for it); the device may
      // already map the destination, as test_hmm.c's dmirror_migrate_finalize_and_map() does
      // before migrate_vma_finalize(). Checked again once the migration entry is replaced.
      return null;
    case 'none':
      return 'the CPU maps nothing there';
    default:
      return `the CPU entry is a ${e.kind} entry`;
  }
}

/** A value as reports show it. */
export function show(v: unknown): string {
  if (v === undefined) return 'undefined';
  return typeof v === 'string' ? JSON.stringify(v) : String(v);
}
