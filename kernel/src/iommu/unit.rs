//! One VT-d remapping unit (a DRHD) bound to the machine: its register page mapped
//! uncached, an invalidation queue ring and its status word, and the interrupt
//! remapping table, in RAM the unit reads by physical address. The sequences — enable,
//! invalidation, IRTE stores — are the pure `sluice-vtd` crate's; this file lends it the
//! hardware through its four traits.
//!
//! Locking: `Unit::state` (the queue, and every IRTE store with its invalidation) is
//! taken under irq descriptor locks when an irq's IRTE changes, so it is a leaf: nothing
//! is taken inside it but the console.

use alloc::string::String;
use alloc::vec::Vec;
use sluice_vtd::registers::{CAP, ECAP};
use sluice_vtd::{
    Capability, Clock, Descriptor, Enabled, ExtendedCapability, GlobalStatus, InvalidationQueue,
    Irte, IrteMemory, PollBudget, QiError, QueueMemory, QueueShutdown, RegisterLayout, Registers,
    RemappingConfig,
};

use crate::memory::mmio::{self, Mmio};

/// Entries in each unit's interrupt remapping table: the most a 16-bit handle reaches
/// (Linux's size too). 1 MiB of RAM per unit.
pub const TABLE_ENTRIES: u32 = 65536;

/// Under QEMU, a test may ask for a smaller table (`-fw_cfg
/// name=opt/sluice/irte-entries,string=N`, N a power of two from 256): with 65536
/// entries no 16-bit handle lies beyond the table, so that fault could not be shown.
fn table_entries() -> u32 {
    crate::qemu::fw_cfg_text("opt/sluice/irte-entries", 16)
        .and_then(|t| t.parse::<u32>().ok())
        .filter(|n| n.is_power_of_two() && (256..=TABLE_ENTRIES).contains(n))
        .unwrap_or(TABLE_ENTRIES)
}
const IRTE_BYTES: u64 = 16;
/// The register page; fault recording registers beyond it are mapped as CAP says.
const REGISTER_PAGE: u64 = 0x1000;
/// The invalidation queue's size field: 2^(QS+8) slots, one 4 KiB page.
const QUEUE_SIZE_FIELD: u8 = 0;
const RING_SLOTS: usize = 256 << QUEUE_SIZE_FIELD;

/// What can be changed in a unit, under one lock.
pub struct UnitState {
    pub queue: InvalidationQueue,
    /// What enabling found (None until enabled).
    pub enabled: Option<Enabled>,
    /// Invalidations and waits submitted, for `iommu`.
    pub invalidations: u64,
}

/// A remapping unit.
pub struct Unit {
    /// Position among the DRHDs: the `n` of `INTEL-IR-n`.
    pub index: usize,
    pub register_base: u64,
    pub segment: u16,
    regs: Mmio,
    ring: u64,
    status: u64,
    pub table: u64,
    pub table_entries: u32,
    pub cap: Capability,
    pub ecap: ExtendedCapability,
    /// CAP and ECAP as read once at probe and checked: where the fault records are, and
    /// how much of the register block is mapped. Every later access goes by it.
    pub layout: RegisterLayout,
    /// Entries carry 32-bit x2APIC destinations (IRTA.EIME).
    pub eim: bool,
    /// Interrupt-safe: CPU-offline migration takes it inside stop_machine while the
    /// other CPUs wait in the rendezvous from an interrupt handler, so a holder with
    /// interrupts on could be parked there and the migration would spin on it (issue 23,
    /// bug 5). A queue round trip with interrupts off is bounded by the poll budget, as
    /// Linux's `qi_submit_sync` spins under `raw_spin_lock_irqsave`.
    pub state: sluice_sync::IrqSpinLock<UnitState>,
}

/// The unit as `sluice-vtd` wants to see it: registers, clock, queue memory, table.
pub struct Hw<'a> {
    unit: &'a Unit,
}

impl Unit {
    /// Maps the unit's registers and allocates its ring, status word and table (zeroed).
    /// Nothing is written to the unit.
    pub fn probe(
        index: usize,
        register_base: u64,
        segment: u16,
        eim: bool,
    ) -> Result<Unit, String> {
        let page = mmio::map(register_base, REGISTER_PAGE)
            .map_err(|e| alloc::format!("registers at {register_base:#x}: {e}"))?;
        let cap = CAP.read(&page);
        let ecap = ECAP.read(&page);
        // A unit that does not answer, or places its fault records over other registers,
        // is refused before any of its values becomes an offset.
        let layout = RegisterLayout::new(cap, ecap).map_err(|e| alloc::format!("{e}"))?;
        // The fault recording registers may lie past the first page (CAP.FRO); the
        // layout bounds them (at most 0x4ff0 bytes in all).
        let end = layout.window() as u64;
        let regs = if end > REGISTER_PAGE {
            mmio::map(register_base, end.next_multiple_of(REGISTER_PAGE))
                .map_err(|e| alloc::format!("registers at {register_base:#x}: {e}"))?
        } else {
            page
        };
        let frame = || {
            crate::memory::frames::alloc_zeroed()
                .map(|f| f.start_address().as_u64())
                .ok_or_else(|| String::from("out of memory for the invalidation queue"))
        };
        let (ring, status) = (frame()?, frame()?);
        let entries = table_entries();
        let table_bytes = u64::from(entries) * IRTE_BYTES;
        let table = crate::memory::frames::alloc_contiguous(table_bytes / 4096, 4096)
            .ok_or("out of contiguous memory for the interrupt remapping table")?;
        let queue = InvalidationQueue::new(ring, QUEUE_SIZE_FIELD, ecap, PollBudget::DEFAULT)
            .map_err(|e| alloc::format!("invalidation queue: {e:?}"))?;
        Ok(Unit {
            index,
            register_base,
            segment,
            regs,
            ring,
            status,
            table,
            table_entries: entries,
            cap,
            ecap,
            layout,
            eim,
            state: sluice_sync::IrqSpinLock::new(
                &crate::sync::order::IOMMU_UNIT,
                UnitState {
                    queue,
                    enabled: None,
                    invalidations: 0,
                },
            ),
        })
    }

    /// The hardware view, for a call into `sluice-vtd` made under `state`'s lock.
    pub fn hw(&self) -> Hw<'_> {
        Hw { unit: self }
    }

    /// The register page, for typed accesses outside the crate's sequences (the fault
    /// event's message registers).
    pub fn registers(&self) -> &Mmio {
        &self.regs
    }

    /// Turns remapping on (the crate's sequence; everything turned back off on failure).
    pub fn enable(&self) -> Result<(), String> {
        let mut st = self.state.lock();
        let config = RemappingConfig {
            table_address: self.table,
            table_entries: self.table_entries,
            eim: self.eim,
            budget: PollBudget::DEFAULT,
            layout: self.layout,
        };
        let enabled = sluice_vtd::enable_remapping(&mut self.hw(), &mut st.queue, &config)
            .map_err(|e| alloc::format!("{e}"))?;
        st.enabled = Some(enabled);
        Ok(())
    }

    /// Turns remapping and the queue off again (another unit refused to enable).
    pub fn disable(&self) {
        let mut st = self.state.lock();
        let r =
            sluice_vtd::disable_remapping(&mut self.hw(), Some(&mut st.queue), PollBudget::DEFAULT);
        if let Err(e) = r {
            crate::error!("IOMMU unit {}: turning remapping off: {}", self.index, e);
        }
        st.enabled = None;
    }

    /// Stores `irte` at `index` in the safe order and invalidates the unit's cached copy;
    /// when this returns `Ok`, every later interrupt through `index` uses it. The
    /// invalidation is sent even if the table already holds `irte`: after a failed
    /// attempt the retry finds it there while the unit may still cache the old entry.
    pub fn write_irte(&self, index: u16, irte: Irte) -> Result<(), QiError> {
        let mut st = self.state.lock();
        let UnitState {
            queue,
            invalidations,
            ..
        } = &mut *st;
        sluice_vtd::update_irte(&mut self.hw(), queue, index, irte)?;
        *invalidations += 1;
        Ok(())
    }

    /// Invalidates the cached copies of `count` entries from `first` (a block's range).
    pub fn invalidate_range(&self, first: u16, count: u32) -> Result<(), QiError> {
        let mut st = self.state.lock();
        let UnitState {
            queue,
            invalidations,
            ..
        } = &mut *st;
        queue.invalidate_iec_range(&mut self.hw(), first, count)?;
        *invalidations += 1;
        Ok(())
    }

    /// The entry at `index` as the table holds it now; `None` beyond the table (an index
    /// read from a message a device holds can be anything).
    pub fn read_irte(&self, index: u16) -> Option<Irte> {
        (u32::from(index) < self.table_entries).then(|| self.hw().read_irte(index))
    }

    /// Registers, read now (the `iommu` command).
    pub fn snapshot(&self) -> sluice_vtd::registers::Snapshot {
        sluice_vtd::registers::Snapshot::read(&mut self.hw(), &self.layout)
    }

    /// What enabling found firmware had left on and turned off, one line each (boot log
    /// and `iommu`); empty when it left nothing, or before the unit is enabled.
    pub fn handover_notes(&self) -> Vec<String> {
        let st = self.state.lock();
        let Some(e) = st.enabled.as_ref() else {
            return Vec::new();
        };
        let mut notes = Vec::new();
        if e.firmware_status.contains(GlobalStatus::TES) {
            notes.push(String::from(
                "DMA translation was on at hand-over (firmware's pre-boot DMA protection); \
                 turned off before interrupt remapping was enabled: device DMA is now \
                 untranslated and unrestricted",
            ));
        }
        if e.firmware_queue != QueueShutdown::WasOff {
            notes.push(alloc::format!(
                "firmware's invalidation queue: {}",
                e.firmware_queue
            ));
        }
        notes
    }

    /// The entry's address in the table. Indices come from the entry allocator, bounded
    /// by `table_entries` (which a test may shrink below 65536); past it is a bug.
    fn entry(&self, index: u16) -> *mut u64 {
        assert!(
            u32::from(index) < self.table_entries,
            "IRTE index {index} beyond the {}-entry table",
            self.table_entries
        );
        crate::memory::phys_to_virt(self.table + u64::from(index) * IRTE_BYTES) as *mut u64
    }

    /// Without coherent page walks (ECAP.C clear) the unit reads the table from memory,
    /// not the cache: write the entry's line back (VT-d §6.2.2, "Coherency").
    fn flush_entry(&self, index: u16) {
        if !self.ecap.c() {
            // SAFETY: the entry lies in RAM this unit owns, mapped through the
            // physical-memory map; CLFLUSH writes the line back and has no other effect.
            unsafe {
                core::arch::asm!("clflush [{}]", in(reg) self.entry(index), options(nostack))
            };
        }
    }
}

/// The register page itself: its accesses are volatile and take `&self`.
impl Registers for Hw<'_> {
    type Block<'b>
        = &'b Mmio
    where
        Self: 'b;
    fn registers(&mut self) -> &Mmio {
        &self.unit.regs
    }
}

impl Clock for Hw<'_> {
    fn now_ns(&mut self) -> u64 {
        crate::time::nanos_since_boot()
    }
    fn relax(&mut self) {
        core::hint::spin_loop()
    }
}

impl QueueMemory for Hw<'_> {
    fn ring_address(&self) -> u64 {
        self.unit.ring
    }
    fn status_address(&self) -> u64 {
        self.unit.status
    }
    fn write_descriptor(&mut self, slot: usize, d: Descriptor) {
        // The queue bounds every slot by its size, including one derived from the
        // unit's IQH (sluice-vtd checks it against the ring): past it is a bug.
        assert!(slot < RING_SLOTS, "descriptor slot {slot} beyond the ring");
        let at = crate::memory::phys_to_virt(self.unit.ring + slot as u64 * 16) as *mut u64;
        // SAFETY: slot < RING_SLOTS (checked above), in the ring page this unit owns;
        // volatile because the unit reads it by DMA.
        unsafe {
            at.write_volatile(d.lo);
            at.add(1).write_volatile(d.hi);
        }
    }
    fn read_status(&mut self) -> u32 {
        let at = crate::memory::phys_to_virt(self.unit.status) as *const u32;
        // SAFETY: the status page this unit owns; the unit writes it by DMA.
        unsafe { at.read_volatile() }
    }
}

impl IrteMemory for Hw<'_> {
    fn read_irte(&mut self, index: u16) -> Irte {
        let at = self.unit.entry(index);
        // SAFETY: `entry` checked index < table_entries: in the table this unit owns.
        unsafe { Irte::from_halves(at.read_volatile(), at.add(1).read_volatile()) }
    }
    fn write_low(&mut self, index: u16, low: u64) {
        // SAFETY: as in read_irte; one aligned 64-bit store, as the store order requires.
        unsafe { self.unit.entry(index).write_volatile(low) };
        self.unit.flush_entry(index);
    }
    fn write_high(&mut self, index: u16, high: u64) {
        // SAFETY: as in read_irte.
        unsafe { self.unit.entry(index).add(1).write_volatile(high) };
        self.unit.flush_entry(index);
    }
    fn write_atomic(&mut self, index: u16, irte: Irte) {
        let at = self.unit.entry(index);
        // SAFETY: the entry is 16-byte aligned (the table is page aligned, entries are
        // 16 bytes) RAM this unit owns; CMPXCHG16B is available on every CPU with VT-d
        // interrupt remapping (x86-64-v2), and we loop until our value is in place.
        unsafe { store16(at, irte.low(), irte.high()) };
        self.unit.flush_entry(index);
    }
}

/// One atomic 16-byte store (LOCK CMPXCHG16B until it takes).
///
/// # Safety
/// `at` must be 16-byte aligned, valid for reads and writes of 16 bytes.
unsafe fn store16(at: *mut u64, low: u64, high: u64) {
    // SAFETY: the caller's contract; the loop reads the current value first so the
    // compare succeeds unless another writer raced us (then it retries).
    unsafe {
        let mut cur_lo = at.read_volatile();
        let mut cur_hi = at.add(1).read_volatile();
        loop {
            let ok: u8;
            // CMPXCHG16B takes its new low half in RBX, which LLVM may not hand out as an
            // operand but does use for others: every register here is named, so neither
            // the address nor the flag can be allocated to RBX and swapped away with it
            // (a `reg` operand once was, and the store faulted on the low half).
            core::arch::asm!(
                "xchg rbx, rsi",
                "lock cmpxchg16b [rdi]",
                "sete r8b",
                "xchg rbx, rsi",
                in("rdi") at,
                inout("rsi") low => _,
                out("r8b") ok,
                inout("rax") cur_lo,
                inout("rdx") cur_hi,
                in("rcx") high,
                options(nostack),
            );
            if ok != 0 {
                return;
            }
        }
    }
}
