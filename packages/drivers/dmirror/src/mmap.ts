/**
 * `dmirror_fops_mmap()`: mapping the device file inserts freshly zeroed kernel pages into the VMA
 * with `vm_insert_page()` (a VM_MIXEDMAP mapping of normal pages). Used by the `mixedmap` test.
 */
import { type Folio, PAGE_SIZE, pteAlloc, VM_MIXEDMAP, VM_WRITE, type Vma } from '@hmmkit/mm';
import { EBUSY, ENOMEM, type Routine } from '@hmmkit/sim';

/**
 * models vm_insert_page(): maps `folio` at `addr` with the VMA's page protection (read-only for a
 * private mapping), taking a reference and a file-style mapcount. mmap_lock is held for write.
 * (Kernel mm code, modelled here because @hmmkit/mm does not provide it yet.)
 */
function* vmInsertPage(vma: Vma, addr: number, folio: Folio): Routine<number> {
  const mm = vma.mm;
  vma.flags |= VM_MIXEDMAP;
  const pmdSlot = mm.pageTable.pmdSlot(addr);
  if ((yield* pmdSlot.get('walk_to_pmd')).kind === 'none') yield* pteAlloc(mm, pmdSlot);
  const pmd = pmdSlot.entry;
  if (pmd.kind !== 'table') return -ENOMEM;
  const table = pmd.table;
  yield* table.ptl.lock('insert_page');
  const slot = table.slot(addr);
  if (slot.entry.kind !== 'none') {
    yield* table.ptl.unlock();
    return -EBUSY;
  }
  yield* folio.update('folio_add_file_rmap_pte', (f) => {
    f.refcount++;
    f.mapcount[0]!++;
  });
  mm.rss.file++;
  // vm_page_prot of a private mapping is never writable (COW); shared mappings may be.
  const write = vma.isShared && (vma.flags & VM_WRITE) !== 0;
  yield* slot.set({ kind: 'present', pfn: folio.pfn, write, dirty: false, young: false }, 'insert_page');
  yield* table.ptl.unlock();
  return 0;
}

/** models dmirror_fops_mmap(). */
export function* dmirrorFopsMmap(vma: Vma): Routine<number> {
  const mem = vma.mm.system.mem;
  for (let addr = vma.start; addr < vma.end; addr += PAGE_SIZE) {
    const page = yield* mem.alloc(0, 'alloc_page(GFP_KERNEL | __GFP_ZERO)');
    if (!page) return -ENOMEM;
    const ret = yield* vmInsertPage(vma, addr, page);
    if (ret) return ret;
    // put_page(): the mapping keeps its own reference.
    yield* page.update('put_page', (f) => {
      f.refcount--;
    });
  }
  return 0;
}
