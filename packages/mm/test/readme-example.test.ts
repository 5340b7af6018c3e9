// The example of README.md, kept runnable.

import { dfs, explore, type Program } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  checkAccounting,
  checkNoLeaks,
  cpuRead,
  cpuWrite,
  fork,
  type Mm,
  mmput,
  PAGE_SIZE,
  PROT_READ,
  PROT_WRITE,
  System,
  type UserAccess,
  watchNotifierBrackets,
} from '../src/index.js';

const program: Program = {
  name: 'fork-cow',
  setup(sim) {
    const sys = new System(sim, { memoryPages: 16 });
    watchNotifierBrackets(sim); // invariant 12: PTE changes only inside invalidate_range_start/end
    const parent = sys.createMm();
    const addr = sys.mmapSetup(parent, { len: PAGE_SIZE, prot: PROT_READ | PROT_WRITE });
    let seen: UserAccess | null = null;
    sim.spawn('CPU0', function* () {
      yield* cpuWrite(parent, addr, 'before fork');
      const child = (yield* fork(parent)) as Mm;
      const writer = sim.spawn('CPU1 (child)', () => cpuWrite(child, addr, 'child'));
      seen = yield* cpuRead(parent, addr); // races with the child's COW fault
      yield* sim.join(writer);
      yield* mmput(child);
      yield* mmput(parent);
    });
    return {
      properties: {
        'parent unaffected by the child': () =>
          (seen?.ok && seen.value === 'before fork') || JSON.stringify(seen),
        accounting: () => checkAccounting(sys),
        'nothing leaked': () => checkNoLeaks(sys),
      },
    };
  },
};

describe('README example', () => {
  it('explores every interleaving without a failure', () => {
    const result = explore(program, { strategy: dfs() });
    expect(result.failures).toEqual([]);
    expect(result.exhausted).toBe(true);
  });
});
