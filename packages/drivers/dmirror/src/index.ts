/**
 * `@hmmkit/driver-dmirror`: a model of the kernel's HMM test driver, `lib/test_hmm.c` (the dmirror
 * devices), written as the reference every other driver model follows. It exports the driver's
 * pieces under their kernel names, the user ABI of `lib/test_hmm_uapi.h`, its bug variants, and
 * `dmirrorDriver`, the conformance-kit `DriverModel`.
 *
 * @packageDocumentation
 */
export * from './access.js';
export * from './check.js';
export * from './device.js';
export * from './devmem.js';
export * from './dmirror.js';
export { dmirrorDriver } from './driver.js';
export * from './exclusive.js';
export * from './fault.js';
export * from './ioctl.js';
export * from './migrate.js';
export * from './mmap.js';
export * from './module.js';
export * from './pt.js';
export * from './read-write.js';
export * from './snapshot.js';
export * from './uapi.js';
export * from './variants.js';

import { dmirrorDriver } from './driver.js';

export default dmirrorDriver;
