import { describe, expect, it } from 'vitest';
import {
  Ctx,
  dfs,
  eventText,
  explore,
  Mutex,
  type Program,
  renderRaceDiagram,
  replayRun,
  runOnce,
  TRACE_SCHEMA,
  traceToJson,
  Var,
} from '../src/index.js';
import { abbaDeadlock, lostUpdate, trylockLivelock, useAfterFree } from './catalogue.js';

const useAfterFreeDiagram = `        reader                                owner
        -----------------------------------   --------------------------
     1  READ_ONCE(dev->ptr)
     3                                        mutex_lock(dev->lock)
     4                                        READ_ONCE(dev->ptr)
     5                                        WRITE_ONCE(dev->ptr, null)
     6                                        mutex_unlock(dev->lock)
     7                                        kfree(dev->obj)
>>   8  memcpy(dev->obj)  // use the object

use-after-free at step 8: reader: memcpy(dev->obj)  // use the object on dev->obj after it was freed`;

describe('race diagram', () => {
  it('has one column per thread, the violating step marked with >>, and the violation under it', () => {
    const f = explore(useAfterFree.buggy, { strategy: dfs() }).failures[0]!;
    expect(f.schedule).toBe('s1:0.0.1');
    const text = renderRaceDiagram(f.trace);
    expect(text).toBe(useAfterFreeDiagram);
    const lines = text.split('\n');
    // Header: one name per column; every step line puts its text in its thread's column.
    const col = lines[0]!.indexOf('owner');
    for (const line of lines.slice(2, 9)) {
      const owner = line.length > col && line[col - 1] === ' ' && line.slice(col).trim() !== '';
      const reader = line.slice(8, col).trim() !== '';
      expect(owner !== reader, line).toBe(true);
    }
    expect(lines.filter((l) => l.startsWith('>>'))).toEqual(['>>   8  memcpy(dev->obj)  // use the object']);
  });

  it('the failing step is in the trace even when it failed inside the operation', () => {
    const f = explore(useAfterFree.buggy, { strategy: dfs() }).failures[0]!;
    const last = f.trace.events!.at(-1)!;
    expect(last.step).toBe(f.violation.step);
    expect(last.op.kind).toBe('memcpy');
    expect(f.trace.steps).toBe(8);
  });

  it('shows the names of all threads that took part, results, labels and details', () => {
    const f = explore(lostUpdate.buggy, { strategy: dfs() }).failures[0]!;
    const text = renderRaceDiagram(f.trace);
    expect(text.split('\n')[0]).toMatch(/^ {8}CPU0 +CPU1$/);
    expect(text).toContain('READ_ONCE(count) = 0');
    expect(text).toContain('WRITE_ONCE(count, 1)');
    // End-of-run property: no step is marked, and it says where it was found.
    expect(text).not.toContain('>>');
    expect(text).toContain("assertion at the end of the run: property 'both increments land' does not hold");

    const dl = explore(abbaDeadlock.buggy, { strategy: dfs(), stopOnFailure: false }).failures.find(
      (x) => x.violation.kind === 'deadlock',
    )!;
    const dtext = renderRaceDiagram(dl.trace);
    expect(dtext).toContain('deadlock at step 4: deadlock: CPU0, CPU1 cannot make progress');
    expect(dtext).toContain('  CPU0 waits: mutex_lock(B), held by CPU1');
  });

  it('shows a thread start when the violation is on it (a context rule checked on the first operation)', () => {
    const r = runOnce(
      {
        name: 'notifier',
        setup(sim) {
          const m = new Mutex(sim, 'm');
          sim.spawn('notifier', function* () {
            sim.enterCtx(Ctx.NonBlock);
            yield* m.lock();
          });
        },
      },
      [],
      { trace: true },
    );
    expect(renderRaceDiagram(r)).toBe(
      [
        '        notifier',
        '        ----------------',
        '>>   0  <start notifier>',
        '',
        'block-in-nonblockable at step 0: notifier: mutex_lock(m) may block inside a non-blockable section',
      ].join('\n'),
    );
    expect(renderRaceDiagram(r, { hideStarts: false })).toContain('<start notifier>');
  });

  it('cuts long runs to their tail and long operations to the column width', () => {
    const f = explore(trylockLivelock.buggy, { strategy: dfs(), budgets: { maxSteps: 80 } }).failures[0]!;
    const text = renderRaceDiagram(f.trace, { tail: 5 });
    const steps = text.split('\n').filter((l) => /^(>>| {2}) {0,3}\d+ {2}/.test(l));
    expect(steps).toHaveLength(5);
    expect(text).toMatch(/\.\.\. \d+ earlier steps \.\.\./);
    const narrow = renderRaceDiagram(f.trace, { columnWidth: 12 });
    for (const line of narrow.split('\n').slice(2, 10))
      expect(line.trimEnd().length).toBeLessThanOrEqual(8 + 12 * 2 + 3);
    expect(narrow).toContain('...');
  });

  it('says so when nothing was recorded', () => {
    const r = runOnce(lostUpdate.fixed, []);
    expect(r.events).toBeUndefined();
    expect(renderRaceDiagram(r)).toBe('(no steps recorded)');
  });
});

describe('JSON trace', () => {
  it("has schema 'hmmkit.trace/1', the schedule, the violation and one event per step", () => {
    const f = explore(useAfterFree.buggy, { strategy: dfs() }).failures[0]!;
    const json = traceToJson(f.trace, f.schedule);
    expect(TRACE_SCHEMA).toBe('hmmkit.trace/1');
    expect(json.schema).toBe('hmmkit.trace/1');
    expect(json.program).toBe(useAfterFree.buggy.name);
    expect(json.status).toBe('violation');
    expect(json.threads).toEqual(['reader', 'owner']);
    expect(json.schedule).toBe('s1:0.0.1');
    expect(json.violation).toEqual(f.violation);
    expect(json.events).toHaveLength(9);
    expect(json.events.map((e) => e.step)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
    expect(json.events[3]).toEqual({
      step: 3,
      thread: 'owner',
      tid: 1,
      op: 'mutex_lock',
      object: 'dev->lock',
      access: 'acquire',
      text: 'mutex_lock(dev->lock)',
    });
    expect(json.events[8]).toEqual({
      step: 8,
      thread: 'reader',
      tid: 0,
      op: 'memcpy',
      object: 'dev->obj',
      access: 'read',
      text: 'memcpy(dev->obj)  // use the object',
      label: 'use the object',
    });
    // Plain data: survives a JSON round trip unchanged.
    expect(JSON.parse(JSON.stringify(json))).toEqual(json);
  });

  it('records results and snapshots', () => {
    const program: Program = {
      name: 'snap',
      setup(sim) {
        const x = new Var(sim, 'x', 0);
        sim.spawn('T', function* () {
          yield* x.write(4);
          yield* x.read();
        });
        return { snapshot: () => ({ x: x.value }) };
      },
    };
    const r = replayRun(program, 's1:', { snapshots: true });
    const json = traceToJson(r);
    expect(json.schedule).toBeUndefined();
    expect(json.violation).toBeUndefined();
    expect(json.status).toBe('done');
    expect(json.events.map((e) => e.snapshot)).toEqual([{ x: 0 }, { x: 4 }, { x: 4 }]);
    expect(json.events[2]!.result).toBe(4);
    expect(eventText(r.events![2]!)).toBe('READ_ONCE(x) = 4');
  });
});
