/**
 * PLACEHOLDER written by the lead so that the address-space code can compile before the notifier
 * layer exists. The notifier engineer replaces this file: `struct mmu_notifier_subscriptions`.
 */
export class MmuNotifierSubscriptions {}
