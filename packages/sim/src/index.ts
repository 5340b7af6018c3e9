/**
 * @hmmkit/sim: the deterministic simulation kernel every hmmkit model runs on.
 *
 * @packageDocumentation
 */
export { Ctx, ctxNames } from './core/context.js';
export * from './core/errno.js';
export { type HeldLock, type LockClass, Lockdep, type LockWitness } from './core/lockdep.js';
export { SimObject } from './core/object.js';
export { Access, Op, OpFlag, type Routine } from './core/op.js';
export { accessName } from './core/op-names.js';
export {
  type Check,
  type Chooser,
  defaultPick,
  defaultSimOptions,
  type Program,
  type ProgramHooks,
  PruneRun,
  type RunResult,
  Sim,
  type SimOptions,
  StaleScheduleError,
  type StepEvent,
} from './core/sim.js';
export { Thread, type ThreadBody } from './core/thread.js';
export {
  type SimViolationKind,
  type Violation,
  type ViolationKind,
  ViolationSignal,
} from './core/violation.js';
export { PctChooser, RandomChooser, ReplayChooser } from './explore/choosers.js';
export { type Clock, monotonicClock } from './explore/clock.js';
export { dependent, footprint } from './explore/dpor.js';
export {
  type Budgets,
  defaultBudgets,
  type EndReason,
  type ExploreOptions,
  type ExploreResult,
  explore,
  type Failure,
  replayRun,
  runOnce,
} from './explore/explorer.js';
export { Rng, runSeed } from './explore/rng.js';
export { decodeSchedule, encodeSchedule, SCHEDULE_PREFIX, ScheduleFormatError } from './explore/schedule.js';
export {
  createStrategy,
  dfs,
  ExploreOptionError,
  formatStrategy,
  parseStrategy,
  pct,
  random,
  replay,
  type StrategyRunner,
  type StrategySpec,
  validateStrategy,
} from './explore/strategy.js';
export { type Gfp, KBuf, kfree, kmalloc } from './primitives/alloc.js';
export { Completion } from './primitives/completion.js';
export { DmaFence, dmaFenceBeginSignalling, dmaFenceEndSignalling } from './primitives/dma-fence.js';
export { DmaResv, type DmaResvUsage, WwAcquireCtx } from './primitives/dma-resv.js';
export { ExclusiveLock, type LockOptions } from './primitives/lock-base.js';
export { LockMap, LockMaps, lockMap, primeDmaResvLockdep } from './primitives/lockmap.js';
export { Mutex } from './primitives/mutex.js';
export { Refcount } from './primitives/refcount.js';
export { RwSemaphore } from './primitives/rwsem.js';
export { SeqCount } from './primitives/seqcount.js';
export { Spinlock } from './primitives/spinlock.js';
export { Var } from './primitives/var.js';
export { WaitQueue } from './primitives/waitqueue.js';
export { type DiagramOptions, eventText, renderRaceDiagram } from './trace/diagram.js';
export { TRACE_SCHEMA, type TraceEventJson, type TraceJson, traceToJson } from './trace/json.js';
