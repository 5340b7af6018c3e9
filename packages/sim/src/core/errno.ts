/**
 * Kernel error numbers used across the models. Model functions return them negated, the way the
 * kernel does (`return -EBUSY;`), so a model's return value reads like the kernel's.
 */
export const EPERM = 1;
export const ENOENT = 2;
export const EINTR = 4;
export const EIO = 5;
export const ENXIO = 6;
export const EBADF = 9;
export const EAGAIN = 11;
export const ENOMEM = 12;
export const EACCES = 13;
export const EFAULT = 14;
export const EBUSY = 16;
export const EEXIST = 17;
export const EINVAL = 22;
export const ENOSPC = 28;
export const ERANGE = 34;
export const EOPNOTSUPP = 95;
export const EOVERFLOW = 75;
export const EDEADLK = 35;
export const ENOSYS = 38;
export const EALREADY = 114;
export const ETIMEDOUT = 110;

const names: Record<number, string> = {
  [EPERM]: 'EPERM',
  [ENOENT]: 'ENOENT',
  [EINTR]: 'EINTR',
  [EIO]: 'EIO',
  [ENXIO]: 'ENXIO',
  [EBADF]: 'EBADF',
  [EAGAIN]: 'EAGAIN',
  [ENOMEM]: 'ENOMEM',
  [EACCES]: 'EACCES',
  [EFAULT]: 'EFAULT',
  [EBUSY]: 'EBUSY',
  [EEXIST]: 'EEXIST',
  [EINVAL]: 'EINVAL',
  [ENOSPC]: 'ENOSPC',
  [ERANGE]: 'ERANGE',
  [EOVERFLOW]: 'EOVERFLOW',
  [EOPNOTSUPP]: 'EOPNOTSUPP',
  [EDEADLK]: 'EDEADLK',
  [ENOSYS]: 'ENOSYS',
  [EALREADY]: 'EALREADY',
  [ETIMEDOUT]: 'ETIMEDOUT',
};

/** `errnoName(-16) === '-EBUSY'`; non-errors print as numbers. */
export function errnoName(code: number): string {
  if (code >= 0) return String(code);
  const name = names[-code];
  return name ? `-${name}` : String(code);
}

/**
 * An error thrown by a model API for bad input from its caller, carrying the kernel errno that the
 * kernel would return. It is thrown before any state is changed.
 */
export class KernelError extends Error {
  constructor(
    /** Negative errno, e.g. `-EINVAL`. */
    readonly errno: number,
    message: string,
  ) {
    super(`${errnoName(errno)}: ${message}`);
    this.name = 'KernelError';
  }
}
