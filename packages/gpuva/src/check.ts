/**
 * The invariants of gpuvm.md §7 (1–13) as checks: each returns null when it holds, or a message.
 * Use them as `invariant`/`properties` hooks of a simulated program, or call them in tests.
 */
import type { Check } from '@hmmkit/sim';
import type { GemObject } from './gem.js';
import type { GpuVm } from './vm.js';

/** Tree invariants 1–3 and 5. */
export function checkTree(vm: GpuVm): string | null {
  let prevEnd = -1;
  let count = 0;
  for (let n = vm.tree.firstNode(); n !== -1; n = vm.tree.nextNode(n)) {
    const va = vm.tree.value(n);
    count++;
    if (va.node !== n) return `${va.name} does not know its tree node`;
    if (va.vm !== vm) return `${va.name} is in ${vm.name}'s tree but va.vm is ${va.vm?.name}`;
    if (va.va.addr < prevEnd) return `${va.toString()} overlaps its predecessor (ends at ${prevEnd})`;
    if (va.va.range === 0) return `${va.toString()} has length 0`;
    prevEnd = va.va.addr + va.va.range;
    if (!va.reserved && !vm.rangeValid(va.va.addr, va.va.range)) {
      return `${va.toString()} is outside the window or touches the reserved node`;
    }
  }
  if (count !== vm.tree.size) return `the ordered walk saw ${count} vas, the tree holds ${vm.tree.size}`;
  return null;
}

/** Refcount invariant 4 (lower bound: the creator's and other references are not tracked). */
export function checkVmRefcount(vm: GpuVm): string | null {
  if (vm.freed) return null;
  let vas = 0;
  for (const va of vm.vas()) if (!va.reserved) vas++;
  const min = vas + vm.vmBos.size;
  return vm.kref >= min ? null : `vm kref ${vm.kref} < ${vas} vas + ${vm.vmBos.size} vm_bos`;
}

/** vm_bo and linking invariants 7–10, 12, 13. */
export function checkVmBos(vm: GpuVm): string | null {
  const objs = new Set<GemObject>();
  for (const vmBo of vm.vmBos) objs.add(vmBo.obj);
  for (const obj of objs) {
    const mine = obj.gpuva.list.filter((b) => b.vm === vm);
    if (mine.length > 1) return `${obj.name} has ${mine.length} vm_bos for ${vm.name}`;
    for (const b of mine) {
      if (b.kref.count < 1 && !b.dying)
        return `${b.name} is on ${obj.name}'s list with refcount ${b.kref.count}`;
    }
  }
  for (const vmBo of vm.vmBos) {
    const zombie = vmBo.onDefer;
    if (!vmBo.dying && vmBo.kref.count < vmBo.list.gpuva.length) {
      return `${vmBo.name} refcount ${vmBo.kref.count} < ${vmBo.list.gpuva.length} linked vas`;
    }
    for (const va of vmBo.list.gpuva) {
      if (va.vmBo !== vmBo) return `${va.name} is on ${vmBo.name}'s list but va.vm_bo is ${va.vmBo?.name}`;
      if (!va.gem.obj) return `GEM-less ${va.name} is linked to ${vmBo.name}`;
      if (va.gem.obj !== vmBo.obj) return `${va.name} maps ${va.gem.obj.name} but is linked to ${vmBo.name}`;
    }
    if (vmBo.onExtobj === vm.extobj.list && !vm.isExtobj(vmBo.obj))
      return `local ${vmBo.name} is on the extobj list`;
    if (zombie) {
      if (vmBo.onGem) return `zombie ${vmBo.name} is still on ${vmBo.obj.name}'s list`;
      if (!vm.resvProtected && (vmBo.onExtobj || vmBo.onEvict)) return `zombie ${vmBo.name} is still listed`;
    }
  }
  for (const l of [vm.extobj.list, vm.evict.list]) {
    if (new Set(l.items).size !== l.items.length) return `a vm_bo appears twice on the ${l.name} list`;
    for (const b of l.items) if (b.freed) return `freed ${b.name} is on the ${l.name} list`;
  }
  for (const va of vm.vas()) {
    if (va.vmBo && !va.vmBo.list.gpuva.includes(va))
      return `${va.name} points to ${va.vmBo.name} but is not on its list`;
  }
  return null;
}

/** All of the above; null when everything holds. */
export function checkGpuvm(vm: GpuVm): string | null {
  return checkTree(vm) ?? checkVmRefcount(vm) ?? checkVmBos(vm);
}

/** The checks as named sim hooks, e.g. `return { invariant: gpuvmChecks(vm) }`. */
export function gpuvmChecks(vm: GpuVm): Record<string, Check> {
  return {
    'gpuvm tree (§7.1-5)': () => checkTree(vm) ?? true,
    'gpuvm refcount (§7.4)': () => checkVmRefcount(vm) ?? true,
    'gpuvm vm_bo (§7.7-13)': () => checkVmBos(vm) ?? true,
  };
}
