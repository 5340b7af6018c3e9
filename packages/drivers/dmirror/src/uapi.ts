/**
 * The user ABI of the test driver, after `lib/test_hmm_uapi.h`: the command block, the command
 * numbers, the SNAPSHOT permission bytes and the FLAGS bits.
 *
 * The kernel passes `struct hmm_dmirror_cmd` through an ioctl; the model passes the same fields as
 * an object. `ptr` (the user buffer the device copies to or from) is the bounce side of the
 * command: an array of page values (one value per 4 KiB page, as `@hmmkit/mm` stores pages), or a
 * byte array for SNAPSHOT.
 */
import type { PageValue } from '@hmmkit/mm';

/** `struct hmm_dmirror_cmd`: `addr`, `ptr`, `npages` in; `cpages`, `faults` out. */
export interface HmmDmirrorCmd {
  /** User address the device reads or writes (must be page aligned). */
  addr: number;
  /**
   * The user buffer: page values for READ/WRITE/MIGRATE/EXCLUSIVE (read back into it), permission
   * bytes for SNAPSHOT. The driver writes it only on success, like `copy_to_user()`.
   */
  ptr: PageValue[] | Uint8Array;
  /** Number of pages (for FLAGS: the flags). */
  npages: number;
  /** Pages copied (out). */
  cpages: number;
  /** Device faults taken (out). */
  faults: number;
}

/** ioctl command numbers (`_IOWR('H', n, struct hmm_dmirror_cmd)`), by their `n`. */
export const HMM_DMIRROR_READ = 0x00;
export const HMM_DMIRROR_WRITE = 0x01;
export const HMM_DMIRROR_MIGRATE_TO_DEV = 0x02;
export const HMM_DMIRROR_MIGRATE_TO_SYS = 0x03;
export const HMM_DMIRROR_SNAPSHOT = 0x04;
export const HMM_DMIRROR_EXCLUSIVE = 0x05;
export const HMM_DMIRROR_CHECK_EXCLUSIVE = 0x06;
export const HMM_DMIRROR_RELEASE = 0x07;
export const HMM_DMIRROR_FLAGS = 0x08;

/** Names of the commands, for traces. */
export const hmmDmirrorCmdName: Readonly<Record<number, string>> = {
  [HMM_DMIRROR_READ]: 'HMM_DMIRROR_READ',
  [HMM_DMIRROR_WRITE]: 'HMM_DMIRROR_WRITE',
  [HMM_DMIRROR_MIGRATE_TO_DEV]: 'HMM_DMIRROR_MIGRATE_TO_DEV',
  [HMM_DMIRROR_MIGRATE_TO_SYS]: 'HMM_DMIRROR_MIGRATE_TO_SYS',
  [HMM_DMIRROR_SNAPSHOT]: 'HMM_DMIRROR_SNAPSHOT',
  [HMM_DMIRROR_EXCLUSIVE]: 'HMM_DMIRROR_EXCLUSIVE',
  [HMM_DMIRROR_CHECK_EXCLUSIVE]: 'HMM_DMIRROR_CHECK_EXCLUSIVE',
  [HMM_DMIRROR_RELEASE]: 'HMM_DMIRROR_RELEASE',
  [HMM_DMIRROR_FLAGS]: 'HMM_DMIRROR_FLAGS',
};

/** SNAPSHOT result bytes (`HMM_DMIRROR_PROT_*`). */
export const HMM_DMIRROR_PROT_ERROR = 0xff;
export const HMM_DMIRROR_PROT_NONE = 0x00;
export const HMM_DMIRROR_PROT_READ = 0x01;
export const HMM_DMIRROR_PROT_WRITE = 0x02;
export const HMM_DMIRROR_PROT_PMD = 0x04;
export const HMM_DMIRROR_PROT_PUD = 0x08;
export const HMM_DMIRROR_PROT_ZERO = 0x10;
export const HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL = 0x20;
export const HMM_DMIRROR_PROT_DEV_PRIVATE_REMOTE = 0x30;
export const HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL = 0x40;
export const HMM_DMIRROR_PROT_DEV_COHERENT_REMOTE = 0x50;

/** `HMM_DMIRROR_MEMORY_DEVICE_*`: the memory type of a device (0 is reserved). */
export const HMM_DMIRROR_MEMORY_DEVICE_PRIVATE = 1;
export const HMM_DMIRROR_MEMORY_DEVICE_COHERENT = 2;

/** FLAGS bit: make the next large (THP) device or system allocation fail. */
export const HMM_DMIRROR_FLAG_FAIL_ALLOC = 1 << 0;
