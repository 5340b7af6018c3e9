import { describe, expect, it } from 'vitest';
import { dfs, explore, type Program, Var } from '../src/index.js';

/**
 * Two threads write two different variables; the invariant forbids the intermediate state where
 * y was written but x not yet. The two writes are independent, so a reduction that ignored the
 * invariant would explore one order only and could miss that state.
 */
function twoWrites(visible: 'default' | 'none' | 'declared' | 'predicate'): Program {
  return {
    name: `two-writes (${visible})`,
    setup(sim) {
      const x = new Var(sim, 'x', 0);
      const y = new Var(sim, 'y', 0);
      sim.spawn('T0', function* () {
        yield* x.write(1);
      });
      sim.spawn('T1', function* () {
        yield* y.write(1);
      });
      return {
        invariant: () => !(x.value === 0 && y.value === 1) || 'y written before x',
        ...(visible === 'none'
          ? { visible: 'none' as const }
          : visible === 'declared'
            ? { visible: [x, y] }
            : visible === 'predicate'
              ? { visible: (o: unknown) => o instanceof Var }
              : {}),
      };
    },
  };
}

describe('invariants under DPOR (visible objects)', () => {
  it('by default every state change is visible, so dfs sees the intermediate state', () => {
    const r = explore(twoWrites('default'), { strategy: dfs() });
    expect(r.failures[0]?.violation.message).toContain('y written before x');
  });

  it('declaring the objects the invariant reads keeps it sound (as a list or a predicate)', () => {
    expect(explore(twoWrites('declared'), { strategy: dfs() }).failures[0]?.violation.kind).toBe('assertion');
    expect(explore(twoWrites('predicate'), { strategy: dfs() }).failures[0]?.violation.kind).toBe(
      'assertion',
    );
  });

  it("with visible: 'none' the writes commute and one order is explored (the documented trade-off)", () => {
    const r = explore(twoWrites('none'), { strategy: dfs() });
    expect(r.exhausted).toBe(true);
    expect(r.completedRuns).toBe(1);
  });

  it('visibility costs nothing for objects the invariant does not read', () => {
    const p: Program = {
      name: 'private writes',
      setup(sim) {
        const flag = new Var(sim, 'flag', 0);
        for (let i = 0; i < 4; i++) {
          const own = new Var(sim, `own${i}`, 0);
          sim.spawn(`T${i}`, function* () {
            yield* own.write(1);
            yield* own.write(2);
          });
        }
        return { invariant: () => flag.value === 0, visible: [flag] };
      },
    };
    const r = explore(p, { strategy: dfs() });
    expect(r.exhausted).toBe(true);
    expect(r.completedRuns).toBe(1);
  });
});
