/**
 * Small random programs over every primitive the explorer has footprints for, for differential
 * testing of the partial-order reduction against the brute-force oracle.
 */
import {
  Completion,
  Mutex,
  type Program,
  Rng,
  type Routine,
  RwSemaphore,
  SeqCount,
  type Thread,
  Var,
  WaitQueue,
} from '../src/index.js';

const KINDS = [
  'read',
  'write',
  'write',
  'locked-inc',
  'trylock',
  'down-read',
  'down-write',
  'note',
  'completion',
  'wait-event',
  'choose',
  'nested-locks',
  'spin',
  'join',
  'seqcount',
] as const;

interface Instr {
  kind: (typeof KINDS)[number];
  /** Which variable/lock/side (0 or 1). */
  a: number;
  /** A small value. */
  b: number;
}

/** A random program with 2-3 threads of 1-3 instructions each, from `seed`. */
export function randomProgram(seed: number): Program {
  const rng = new Rng(seed);
  const code: Instr[][] = [];
  const nThreads = 2 + rng.below(2);
  for (let t = 0; t < nThreads; t++) {
    const n = 1 + rng.below(3);
    const ins: Instr[] = [];
    for (let i = 0; i < n; i++)
      ins.push({ kind: KINDS[rng.below(KINDS.length)]!, a: rng.below(2), b: rng.below(3) });
    code.push(ins);
  }
  const text = code.map((ins) => ins.map((i) => `${i.kind}${i.a}`).join(' ')).join(' | ');
  return {
    name: `random-${seed}: ${text}`,
    setup(sim) {
      const vars = [new Var(sim, 'x', 0), new Var(sim, 'y', 0)];
      const locks = [new Mutex(sim, 'm0'), new Mutex(sim, 'm1')];
      const sem = new RwSemaphore(sim, 'sem');
      const comp = new Completion(sim, 'comp');
      const wq = new WaitQueue(sim, 'wq');
      const flag = new Var(sim, 'flag', 0);
      const spin = new Var(sim, 'spin', 0);
      const seq = new SeqCount(sim, 'seq');
      const threads: Thread[] = [];
      code.forEach((ins, tid) => {
        threads.push(
          sim.spawn(`T${tid}`, function* (): Routine {
            for (const { kind, a, b } of ins) {
              const v = vars[a]!;
              switch (kind) {
                case 'read':
                  if ((yield* v.read()) === 2 && b === 0) yield* vars[1 - a]!.write(3);
                  break;
                case 'write':
                  yield* v.write(b);
                  break;
                case 'locked-inc':
                  yield* locks[a]!.lock();
                  yield* v.update((o) => o + 1);
                  yield* locks[a]!.unlock();
                  break;
                case 'trylock':
                  if (yield* locks[a]!.trylock()) {
                    yield* v.write(5);
                    yield* locks[a]!.unlock();
                  }
                  break;
                case 'down-read':
                  yield* sem.downRead();
                  yield* v.read();
                  yield* sem.upRead();
                  break;
                case 'down-write':
                  yield* sem.downWrite();
                  yield* v.write(7);
                  yield* sem.upWrite();
                  break;
                case 'note':
                  yield sim.note('note');
                  break;
                case 'completion':
                  if (a === 0) yield* comp.complete();
                  else yield* comp.wait();
                  break;
                case 'wait-event':
                  if (a === 0) {
                    yield* flag.write(1);
                    yield* wq.wakeUpAll();
                  } else {
                    yield* wq.waitEvent(() => flag.value === 1);
                  }
                  break;
                case 'choose': {
                  const c = (yield sim.choose(2, 'value')) as number;
                  yield* v.write(10 + c);
                  break;
                }
                case 'nested-locks': {
                  const [first, second] = a === 0 ? [locks[0]!, locks[1]!] : [locks[1]!, locks[0]!];
                  yield* first.lock();
                  yield* second.lock();
                  yield* second.unlock();
                  yield* first.unlock();
                  break;
                }
                case 'spin':
                  if (a === 0) yield* spin.write(1);
                  else while ((yield* spin.read()) !== 1) yield sim.relax();
                  break;
                case 'join':
                  if (tid > 0) yield* sim.join(threads[0]!);
                  else yield* v.write(9);
                  break;
                case 'seqcount':
                  if (a === 0) {
                    yield* locks[1]!.lock();
                    yield* seq.writeBegin();
                    yield* v.write(b);
                    yield* seq.writeEnd();
                    yield* locks[1]!.unlock();
                  } else {
                    for (;;) {
                      const s = yield* seq.readBegin();
                      yield* v.read();
                      if (!(yield* seq.readRetry(s))) break;
                    }
                  }
                  break;
              }
            }
          }),
        );
      });
    },
  };
}

/**
 * Every program of 3 or 4 threads that each do one read or write of `x` or `y` (up to renaming of
 * nothing: thread order matters for the schedule, so all 4^3 + 4^4 = 320 of them).
 */
export function tinyPrograms(): Program[] {
  const ops = ['rx', 'wx', 'ry', 'wy'] as const;
  const out: Program[] = [];
  for (const n of [3, 4]) {
    for (let code = 0; code < 4 ** n; code++) {
      const threads = Array.from({ length: n }, (_, t) => ops[Math.floor(code / 4 ** t) % 4]!);
      out.push({
        name: `tiny: ${threads.join(' | ')}`,
        setup(sim) {
          const vars = { x: new Var(sim, 'x', 0), y: new Var(sim, 'y', 0) };
          threads.forEach((op, t) => {
            const v = vars[op[1] as 'x' | 'y'];
            sim.spawn(`T${t}`, function* () {
              if (op[0] === 'r') yield* v.read();
              else yield* v.write(t + 1);
            });
          });
        },
      });
    }
  }
  return out;
}
