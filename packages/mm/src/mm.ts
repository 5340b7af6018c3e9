/**
 * PLACEHOLDER written by the lead; the address-space engineer replaces it with the real `Mm`.
 * Contract the notifier layer relies on: these fields exist with these names and types.
 */
import type { RwSemaphore, Sim } from '@hmmkit/sim';
import type { MmuNotifierSubscriptions } from './notifier/subscriptions.js';

export class Mm {
  /** `mm->notifier_subscriptions`: null until the first notifier registration. */
  notifierSubscriptions: MmuNotifierSubscriptions | null = null;
  /** `mm_users` and `mm_count`. */
  mmUsers = 1;
  mmCount = 1;
  constructor(
    readonly sim: Sim,
    readonly mmapLock: RwSemaphore,
  ) {}
}
