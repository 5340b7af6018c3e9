/**
 * Lockdep: a lock-class dependency graph with a rolling proof, after the kernel's
 * `kernel/locking/lockdep.c`. Every acquisition of class B while class A is held records A -> B; a
 * new edge that closes a cycle is a possible deadlock, reported with both chains even when the
 * explored schedule did not deadlock. Orders can be primed up front, as `dma_resv_lockdep()` does.
 */
import type { Violation } from './violation.js';

/** A lock class: all instances initialised at one place share it (`&svmm->mutex`). */
export interface LockClass {
  readonly id: number;
  readonly name: string;
  /** ww_mutex-style classes may be nested with an acquire context (`nest_lock`). */
  readonly nestable: boolean;
}

/** Where an edge of the graph was first seen. */
export interface LockWitness {
  thread: string;
  step: number;
  /** Names of the locks held at that moment, outermost first, then the acquired one. */
  chain: string[];
}

/** A lock held by a thread, as lockdep sees it. */
export interface HeldLock {
  cls: LockClass;
  /** The instance (object) or pseudo-lock map, to match the release. */
  instance: object;
  /** Instance name for reports. */
  name: string;
  subclass: number;
}

export class Lockdep {
  private readonly classes = new Map<string, LockClass>();
  private readonly byId: LockClass[] = [];
  /** Per class id: the classes acquired while it was held, with where that was first seen. */
  private readonly out: Map<number, LockWitness>[] = [];

  /** The class named `name`, created on first use. */
  classOf(name: string, nestable = false): LockClass {
    let cls = this.classes.get(name);
    if (!cls) {
      cls = { id: this.byId.length, name, nestable };
      this.classes.set(name, cls);
      this.byId.push(cls);
      this.out.push(new Map());
    }
    return cls;
  }

  /**
   * Records `order[0] -> order[1] -> ...` as if seen, like `dma_resv_lockdep()` does at boot, so a
   * later inversion is reported on first sight.
   */
  prime(order: readonly string[], source = 'primed'): void {
    for (let i = 0; i + 1 < order.length; i++) {
      const a = this.classOf(order[i]!);
      const b = this.classOf(order[i + 1]!);
      if (!this.out[a.id]!.has(b.id)) {
        this.out[a.id]!.set(b.id, { thread: source, step: -1, chain: [a.name, b.name] });
      }
    }
  }

  /** Whether A -> B has been recorded (tests and reports). */
  hasEdge(from: string, to: string): boolean {
    const a = this.classes.get(from);
    const b = this.classes.get(to);
    return !!a && !!b && this.out[a.id]!.has(b.id);
  }

  /**
   * Checks and records the acquisition of `cls` by a thread holding `held`. Returns a violation
   * (recursive locking or a circular dependency) or null. A trylock is neither checked nor recorded,
   * as in the kernel's `validate_chain()`: it cannot deadlock, so trylocks may be taken in any order
   * (a lock taken with a trylock still counts as held for later blocking acquisitions).
   */
  acquire(
    thread: string,
    step: number,
    held: readonly HeldLock[],
    cls: LockClass,
    name: string,
    subclass: number,
    trylock = false,
  ): Violation | null {
    if (trylock) return null;
    for (const h of held) {
      if (h.cls === cls && h.subclass === subclass && !cls.nestable) {
        return {
          kind: 'recursive-lock',
          message: `possible recursive locking: ${thread} acquires ${name} (class ${cls.name}) while holding ${h.name}`,
          step,
          threads: [thread],
          objects: [name, h.name],
        };
      }
    }
    for (const h of held) {
      if (h.cls === cls) continue;
      const edges = this.out[h.cls.id]!;
      if (edges.has(cls.id)) continue;
      const back = this.path(cls.id, h.cls.id);
      const witness: LockWitness = { thread, step, chain: [...held.map((x) => x.name), name] };
      if (back) {
        const details = [
          `new dependency: ${h.cls.name} -> ${cls.name}`,
          `  ${thread} at step ${step}: holds ${held.map((x) => x.name).join(', ')}; acquires ${name}`,
          `existing dependency chain: ${[cls.name, ...back.map((e) => this.byId[e.to]!.name)].join(' -> ')}`,
          ...back.map((e) => {
            const w = e.w;
            const where = w.step < 0 ? `${w.thread}` : `${w.thread} at step ${w.step}`;
            return `  ${this.byId[e.from]!.name} -> ${this.byId[e.to]!.name}: ${where} (chain ${w.chain.join(' -> ')})`;
          }),
          'possible deadlock scenario:',
          `  CPU0: lock(${h.cls.name}); lock(${cls.name});`,
          `  CPU1: lock(${cls.name}); ...; lock(${h.cls.name});`,
        ];
        return {
          kind: 'lock-order',
          message: `possible circular locking dependency: ${thread} acquires ${name} while holding ${h.name}, but ${cls.name} -> ${h.cls.name} was seen`,
          step,
          threads: [thread, ...new Set(back.map((e) => e.w.thread))],
          objects: [h.name, name],
          details,
        };
      }
      edges.set(cls.id, witness);
    }
    return null;
  }

  /** Shortest path from -> to in the class graph, as a list of edges, or null. */
  private path(from: number, to: number): { from: number; to: number; w: LockWitness }[] | null {
    const prev = new Map<number, number>();
    const queue = [from];
    prev.set(from, -1);
    for (let qi = 0; qi < queue.length; qi++) {
      const n = queue[qi]!;
      if (n === to) {
        const edges: { from: number; to: number; w: LockWitness }[] = [];
        let cur = n;
        while (cur !== from) {
          const p = prev.get(cur)!;
          edges.unshift({ from: p, to: cur, w: this.out[p]!.get(cur)! });
          cur = p;
        }
        return edges;
      }
      for (const next of this.out[n]!.keys()) {
        if (!prev.has(next)) {
          prev.set(next, n);
          queue.push(next);
        }
      }
    }
    return null;
  }
}
