import { describe, expect, it } from 'vitest';
import {
  cpuRead,
  cpuWrite,
  fork,
  mmput,
  PAGE_SIZE,
  PROT_READ,
  PROT_WRITE,
  type UserAccess,
} from '../src/index.js';
import { runProgram } from './helpers.js';

describe('smoke', () => {
  it('write, fork, COW, read back', () => {
    const out: UserAccess[] = [];
    runProgram('smoke', ({ sim, sys }) => {
      const mm = sys.createMm();
      const a = sys.mmapSetup(mm, { len: 2 * PAGE_SIZE, prot: PROT_READ | PROT_WRITE });
      sim.spawn('CPU0', function* () {
        out.push(yield* cpuRead(mm, a));
        yield* cpuWrite(mm, a, 42);
        const child = yield* fork(mm);
        if (typeof child === 'number') throw new Error('fork failed');
        yield* cpuWrite(child, a, 7);
        out.push(yield* cpuRead(mm, a));
        out.push(yield* cpuRead(child, a));
        yield* mmput(child);
        yield* mmput(mm);
      });
    });
    expect(out).toEqual([
      { ok: true, value: 0 },
      { ok: true, value: 42 },
      { ok: true, value: 7 },
    ]);
  });
});
