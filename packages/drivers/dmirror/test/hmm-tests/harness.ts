/**
 * The "userspace" of the ported selftests (tools/testing/selftests/mm/hmm-tests.c): the
 * `hmm_buffer` helpers, `hmm_dmirror_cmd()`, the `hmm` / `hmm2` fixtures with their device-private
 * and device-coherent variants, and a runner that executes a test body as a thread of a fresh
 * simulated machine.
 *
 * Memory model of the port: `@hmmkit/mm` stores one value per 4 KiB page, so the selftests' int
 * arrays become page arrays. "Fill with i" (every int holds its own index) becomes every page
 * holding its own page index; "-i" becomes minus the page index; the int at index k lives in page
 * `k / 1024`.
 */
import {
  checkAccounting,
  checkPageTables,
  cpuRead,
  cpuWrite,
  createVma,
  type File,
  MAP_ANONYMOUS,
  type Mm,
  madvise,
  mmap,
  mmput,
  mprotect,
  munmap,
  noNotifierWarnings,
  notifierInvariants,
  PAGE_SHIFT,
  PAGE_SIZE,
  type PageValue,
  PMD_SIZE,
  planMmap,
  System,
  type SystemOptions,
  VM_MIXEDMAP,
} from '@hmmkit/mm';
import { type Check, type Program, type Routine, type RunResult, runOnce, type Sim } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  type Dmirror,
  DmirrorModule,
  dmirrorFopsMmap,
  dmirrorFopsRelease,
  dmirrorFopsUnlockedIoctl,
  dmirrorMirrorInvariant,
  dmirrorOpen,
  HMM_DMIRROR_MIGRATE_TO_DEV,
  HMM_DMIRROR_MIGRATE_TO_SYS,
  type HmmDmirrorCmd,
} from '../../src/index.js';

export const ONEKB = 1 << 10;
export const ONEMEG = 1 << 20;
export const TWOMEG = 1 << 21;
/** `HMM_BUFFER_SIZE`: 1024 pages. */
export const HMM_BUFFER_SIZE = 1024 << 12;
export const NTIMES = 10;

/** `enum { HMM_PRIVATE_DEVICE_ONE, ... }`. */
export const HMM_PRIVATE_DEVICE_ONE = 0;
export const HMM_PRIVATE_DEVICE_TWO = 1;
export const HMM_COHERENCE_DEVICE_ONE = 2;
export const HMM_COHERENCE_DEVICE_TWO = 3;

/** `ALIGN(x, a)` (no 32-bit bit operations on addresses). */
export function ALIGN(x: number, a: number): number {
  return Math.ceil(x / a) * a;
}

/** `hmm_is_coherent_type()`. */
export function hmmIsCoherentType(devNum: number): boolean {
  return devNum >= HMM_COHERENCE_DEVICE_ONE;
}

/** `read_pmd_pagesize()`. */
export function readPmdPagesize(): number {
  return PMD_SIZE;
}

/** `struct hmm_buffer`. */
export interface HmmBuffer {
  /** User address of the buffer (`ptr`). */
  ptr: number;
  /** The device side: page values (READ/WRITE/MIGRATE/EXCLUSIVE) or bytes (SNAPSHOT). */
  mirror: PageValue[] | Uint8Array;
  size: number;
  fd: File | null;
  cpages: number;
  faults: number;
}

/** `malloc(sizeof(*buffer))` + `malloc(size)` of the mirror (page values). */
export function hmmBuffer(size: number, mirror?: PageValue[] | Uint8Array): HmmBuffer {
  return {
    ptr: 0,
    mirror: mirror ?? new Array<PageValue>(Math.ceil(size / PAGE_SIZE)).fill(0),
    size,
    fd: null,
    cpages: 0,
    faults: 0,
  };
}

/** A value of "every int holds its own index" for page `p`. */
export const I = (p: number): number => p;
/** "-i" for page `p` (never -0). */
export const NEG = (p: number): number => (p === 0 ? 0 : -p);
/** `memset(mirror, 0xFF, size)`: a value no page holds. */
export const FF = 0xffffffff;

/** What a test body gets: the fixture (`self`, `variant`) and the process it runs in. */
export interface HmmSelf {
  sim: Sim;
  sys: System;
  module: DmirrorModule;
  /** The test process. */
  mm: Mm;
  page_size: number;
  page_shift: number;
  /** `hmm` fixture. */
  fd: Dmirror;
  /** `hmm2` fixture. */
  fd0: Dmirror;
  fd1: Dmirror;
  variant: { device_number: number; device_number0: number; device_number1: number };
  /** Every fd opened in this run (for the mirror invariant). */
  files: Dmirror[];
}

/** `hmm_open(unit)` from a process: the open file (the test fails if the device cannot be opened). */
export function* hmmOpen(self: HmmSelf, unit: number, mm: Mm = self.mm): Routine<Dmirror> {
  const r = yield* dmirrorOpen(self.module, unit, mm);
  if (typeof r === 'number')
    throw new Error(`could not open hmm dmirror driver (/dev/hmm_dmirror${unit}): ${r}`);
  self.files.push(r);
  return r;
}

/** `close(fd)`. */
export function* hmmClose(fd: Dmirror): Routine<number> {
  yield* dmirrorFopsRelease(fd);
  return 0;
}

/**
 * `hmm_dmirror_cmd()`: issues `request` for `npages` pages at `buffer.ptr` with `buffer.mirror` as
 * the user buffer; on success copies `cpages` and `faults` back into the buffer. Returns 0 or the
 * negative errno (there is no EINTR in the model, so there is nothing to retry).
 */
export function* hmmDmirrorCmd(
  fd: Dmirror,
  request: number,
  buffer: HmmBuffer,
  npages: number,
): Routine<number> {
  const cmd: HmmDmirrorCmd = { addr: buffer.ptr, ptr: buffer.mirror, npages, cpages: 0, faults: 0 };
  const ret = yield* dmirrorFopsUnlockedIoctl(fd, request, cmd);
  if (ret) return ret;
  buffer.cpages = cmd.cpages;
  buffer.faults = cmd.faults;
  return 0;
}

/** `hmm_migrate_sys_to_dev()`. */
export function hmmMigrateSysToDev(fd: Dmirror, buffer: HmmBuffer, npages: number): Routine<number> {
  return hmmDmirrorCmd(fd, HMM_DMIRROR_MIGRATE_TO_DEV, buffer, npages);
}

/** `hmm_migrate_dev_to_sys()`. */
export function hmmMigrateDevToSys(fd: Dmirror, buffer: HmmBuffer, npages: number): Routine<number> {
  return hmmDmirrorCmd(fd, HMM_DMIRROR_MIGRATE_TO_SYS, buffer, npages);
}

/** `hmm_buffer_free()`: unmaps the buffer. */
export function* hmmBufferFree(mm: Mm, buffer: HmmBuffer): Routine {
  if (buffer.ptr) {
    yield* munmap(mm, buffer.ptr, buffer.size);
    buffer.ptr = 0;
  }
}

/** `mmap()` from the test process; fails the test on MAP_FAILED. */
export function* mmapOk(
  mm: Mm,
  len: number,
  prot: number,
  flags: number,
  file: File | null = null,
  addr = 0,
): Routine<number> {
  const r = yield* mmap(mm, addr, len, prot, flags, file, 0);
  expect(r, 'mmap').toBeGreaterThan(0);
  return r;
}

/** `ptr[page] = value(page)` for the pages of `[addr, addr + size)`, as CPU stores. */
export function* cpuFill(mm: Mm, addr: number, size: number, value: (p: number) => PageValue): Routine {
  for (let p = 0; p < size / PAGE_SIZE; p++) {
    const r = yield* cpuWrite(mm, addr + p * PAGE_SIZE, value(p));
    expect(r.ok, `store to page ${p}`).toBe(true);
  }
}

/** `ASSERT_EQ(ptr[page], value(page))` for the pages of `[addr, addr + size)`, as CPU loads. */
export function* cpuCheck(mm: Mm, addr: number, size: number, value: (p: number) => PageValue): Routine {
  for (let p = 0; p < size / PAGE_SIZE; p++) {
    const r = yield* cpuRead(mm, addr + p * PAGE_SIZE);
    expect(r.ok, `load of page ${p}`).toBe(true);
    if (r.ok) expect(r.value, `page ${p}`).toBe(value(p));
  }
}

/** `ASSERT_EQ(mirror[page], value(page))` for `npages` pages of the mirror. */
export function mirrorCheck(buffer: HmmBuffer, npages: number, value: (p: number) => PageValue): void {
  const m = buffer.mirror as PageValue[];
  for (let p = 0; p < npages; p++) expect(m[p], `mirror page ${p}`).toBe(value(p));
}

/** `for (...) mirror[page] = value(page)`. */
export function mirrorFill(buffer: HmmBuffer, npages: number, value: (p: number) => PageValue): void {
  const m = buffer.mirror as PageValue[];
  for (let p = 0; p < npages; p++) m[p] = value(p);
}

export { madvise, mmput, mprotect, munmap };

/** Options of one ported test run. */
export interface HmmTestOptions {
  /** Machine size (default 8192 pages of memory, THP on MADV_HUGEPAGE). */
  system?: SystemOptions;
  /**
   * Check after every step the mirror invariant of every open file, the page tables and the
   * notifier state machine (slow; default false).
   */
  checkEveryStep?: boolean;
  /** Step budget (default 5,000,000). */
  maxSteps?: number;
}

export type Fixture = 'hmm' | 'hmm2';
export type FixtureVariant = 'device_private' | 'device_coherent';

/** The fixture variants: `hmm_device_private`/`hmm_device_coherent`, `hmm2_device_private`/`..._coherent`. */
export const FIXTURE_VARIANTS: FixtureVariant[] = ['device_private', 'device_coherent'];

/**
 * A program running one TEST_F: a machine with the dmirror module loaded, a process, the fixture's
 * setup (open), the body, the teardown (close) and the process's exit; at the end, no WARN was
 * hit and the page accounting balances.
 */
export function hmmProgram(
  fixture: Fixture,
  variant: FixtureVariant,
  name: string,
  body: (self: HmmSelf) => Routine<void>,
  options: HmmTestOptions = {},
): Program {
  const coherent = variant === 'device_coherent';
  return {
    name: `${fixture}.${name} (${fixture}_${variant})`,
    options: { maxSteps: options.maxSteps ?? 5_000_000 },
    setup(sim) {
      const sys = new System(sim, { memoryPages: 8192, swapSlots: 16, thp: 'madvise', ...options.system });
      const module = new DmirrorModule(sys);
      const mm = sys.createMm('test');
      const self = {
        sim,
        sys,
        module,
        mm,
        page_size: PAGE_SIZE,
        page_shift: PAGE_SHIFT,
        variant: {
          device_number: coherent ? HMM_COHERENCE_DEVICE_ONE : HMM_PRIVATE_DEVICE_ONE,
          device_number0: coherent ? HMM_COHERENCE_DEVICE_ONE : HMM_PRIVATE_DEVICE_ONE,
          device_number1: coherent ? HMM_COHERENCE_DEVICE_TWO : HMM_PRIVATE_DEVICE_TWO,
        },
        files: [] as Dmirror[],
      } as HmmSelf;
      sim.spawn('test', function* () {
        // FIXTURE_SETUP
        if (fixture === 'hmm') {
          self.fd = yield* hmmOpen(self, self.variant.device_number);
        } else {
          self.fd0 = yield* hmmOpen(self, self.variant.device_number0);
          self.fd1 = yield* hmmOpen(self, self.variant.device_number1);
        }
        yield* body(self);
        // FIXTURE_TEARDOWN
        if (fixture === 'hmm') expect(yield* hmmClose(self.fd)).toBe(0);
        else {
          expect(yield* hmmClose(self.fd0)).toBe(0);
          expect(yield* hmmClose(self.fd1)).toBe(0);
        }
        // The test process exits.
        yield* mmput(mm);
      });
      const invariant: Record<string, Check> = {};
      if (options.checkEveryStep) {
        invariant.mirror = () => {
          for (const f of self.files) {
            const m = dmirrorMirrorInvariant(f);
            if (m) return m;
          }
          return undefined;
        };
        invariant['page tables'] = () => checkPageTables(sys);
        Object.assign(invariant, notifierInvariants(mm));
      }
      return {
        invariant,
        properties: {
          'no WARN_ON': noNotifierWarnings(sim),
          accounting: () => checkAccounting(sys),
        },
      };
    },
  };
}

/**
 * Maps the device file itself (`mmap(NULL, len, prot, flags, self->fd, 0)`): a VMA whose pages
 * the driver's mmap handler inserts (`dmirror_fops_mmap()`). The VMA has no `File` in the model
 * (the device file has no page cache).
 */
export function* hmmMmapDevice(mm: Mm, len: number, prot: number, flags: number): Routine<number> {
  yield* mm.mmapLock.downWrite('mmap_write_lock_killable');
  const plan = planMmap(mm, {
    addr: 0,
    len,
    prot,
    flags: flags | MAP_ANONYMOUS,
    file: null,
    offset: 0,
    vmFlags: VM_MIXEDMAP,
  });
  if (typeof plan === 'number') {
    yield* mm.mmapLock.upWrite('mmap_write_unlock');
    return plan;
  }
  const vma = createVma(mm, plan);
  const ret = yield* dmirrorFopsMmap(vma);
  yield* mm.mmapLock.upWrite('mmap_write_unlock');
  return ret ? ret : vma.start;
}

/** Runs a program once (default schedule) and fails the vitest test with the violation, if any. */
export function runHmm(program: Program): RunResult {
  const r = runOnce(program, []);
  if (r.violation) {
    throw new Error(
      `${program.name}: ${r.violation.kind}: ${r.violation.message}\n${(r.violation.details ?? []).join('\n')}`,
    );
  }
  return r;
}

/** `TEST_F(fixture, name)`: one vitest test per fixture variant. */
export function TEST_F(
  fixture: Fixture,
  name: string,
  body: (self: HmmSelf) => Routine<void>,
  options: HmmTestOptions & { only?: FixtureVariant[]; skipReason?: string } = {},
): void {
  describe(`${fixture}.${name}`, () => {
    for (const v of FIXTURE_VARIANTS) {
      if (options.only && !options.only.includes(v)) {
        it.skip(`${fixture}_${v}: ${options.skipReason ?? 'not run'}`, () => {});
        continue;
      }
      it(`${fixture}_${v}`, () => {
        runHmm(hmmProgram(fixture, v, name, body, options));
      });
    }
  });
}

/** A TEST_F the model deliberately cannot run, with the reason (reported as skipped). */
export function TEST_F_SKIP(fixture: Fixture, name: string, reason: string): void {
  describe(`${fixture}.${name}`, () => {
    for (const v of FIXTURE_VARIANTS) it.skip(`${fixture}_${v}: ${reason}`, () => {});
  });
}
