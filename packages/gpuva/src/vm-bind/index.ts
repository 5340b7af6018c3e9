/**
 * `@hmmkit/gpuva/vm-bind`: the asynchronous VM_BIND model (bind queues, jobs with in/out fences,
 * `run_job` as a fence-signalling section, all-or-nothing multi-op binds, the submit-time and
 * run-job update patterns, pre-allocation helpers and a device page table).
 *
 * @module
 */
export { DevicePageTable, type Pte } from './page-table.js';
export { VmBindPrealloc, vasWorstCase } from './prealloc.js';
export {
  BindJob,
  type BindOp,
  type BindOptions,
  BindQueue,
  type BindResult,
  createVmBind,
  VmBind,
  type VmBindBugs,
  type VmBindOptions,
  type VmBindPattern,
} from './vm-bind.js';
