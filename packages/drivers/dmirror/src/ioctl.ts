/**
 * `dmirror_fops_unlocked_ioctl()`: the argument checks every command shares, the counters, and
 * the dispatch.
 */
import { PAGE_SIZE } from '@hmmkit/mm';
import { EINVAL, type Routine } from '@hmmkit/sim';
import { dmirrorDeviceRemoveChunks } from './devmem.js';
import type { Dmirror } from './dmirror.js';
import { dmirrorCheckAtomic, dmirrorExclusive } from './exclusive.js';
import { dmirrorMigrateToDevice, dmirrorMigrateToSystem } from './migrate.js';
import { dmirrorRead, dmirrorWrite } from './read-write.js';
import { dmirrorSnapshot } from './snapshot.js';
import {
  HMM_DMIRROR_CHECK_EXCLUSIVE,
  HMM_DMIRROR_EXCLUSIVE,
  HMM_DMIRROR_FLAGS,
  HMM_DMIRROR_MIGRATE_TO_DEV,
  HMM_DMIRROR_MIGRATE_TO_SYS,
  HMM_DMIRROR_READ,
  HMM_DMIRROR_RELEASE,
  HMM_DMIRROR_SNAPSHOT,
  HMM_DMIRROR_WRITE,
  type HmmDmirrorCmd,
} from './uapi.js';

const U64 = 1n << 64n;

/** `cmd.addr >= cmd.addr + (cmd.npages << PAGE_SHIFT)` in 64-bit unsigned arithmetic. */
function rangeWraps(addr: number, npages: number): boolean {
  const a = BigInt(addr);
  const end = (a + ((BigInt(npages) << 12n) % U64)) % U64;
  return a >= end;
}

/**
 * models dmirror_fops_unlocked_ioctl(): runs `command` on `cmd` (the kernel's copy of the user's
 * block). Returns 0 or a negative errno; on success the caller copies `cpages` and `faults` back to
 * the user's block (the kernel's final `copy_to_user()`), on failure it does not.
 */
export function* dmirrorFopsUnlockedIoctl(
  dmirror: Dmirror | null,
  command: number,
  cmd: HmmDmirrorCmd,
): Routine<number> {
  if (!dmirror) return -EINVAL;
  if (!Number.isSafeInteger(cmd.addr) || cmd.addr < 0 || !Number.isSafeInteger(cmd.npages) || cmd.npages < 0)
    return -EINVAL;
  if (cmd.addr % PAGE_SIZE !== 0) return -EINVAL;
  if (rangeWraps(cmd.addr, cmd.npages)) return -EINVAL;
  cmd.cpages = 0;
  cmd.faults = 0;
  let ret: number;
  switch (command) {
    case HMM_DMIRROR_READ:
      ret = yield* dmirrorRead(dmirror, cmd);
      break;
    case HMM_DMIRROR_WRITE:
      ret = yield* dmirrorWrite(dmirror, cmd);
      break;
    case HMM_DMIRROR_MIGRATE_TO_DEV:
      ret = yield* dmirrorMigrateToDevice(dmirror, cmd);
      break;
    case HMM_DMIRROR_MIGRATE_TO_SYS:
      ret = yield* dmirrorMigrateToSystem(dmirror, cmd);
      break;
    case HMM_DMIRROR_EXCLUSIVE:
      ret = yield* dmirrorExclusive(dmirror, cmd);
      break;
    case HMM_DMIRROR_CHECK_EXCLUSIVE:
      ret = yield* dmirrorCheckAtomic(dmirror, cmd.addr, cmd.addr + cmd.npages * PAGE_SIZE);
      break;
    case HMM_DMIRROR_SNAPSHOT:
      ret = yield* dmirrorSnapshot(dmirror, cmd);
      break;
    case HMM_DMIRROR_RELEASE:
      yield* dmirrorDeviceRemoveChunks(dmirror.device);
      ret = 0;
      break;
    case HMM_DMIRROR_FLAGS:
      dmirror.flags = cmd.npages;
      ret = 0;
      break;
    default:
      return -EINVAL;
  }
  return ret;
}
