//! The traits through which the kernel lends this crate its hardware: the remapping
//! unit's MMIO registers, a clock for timeouts, the invalidation queue's memory and the
//! interrupt remapping table's memory.
//!
//! Nothing in this crate touches hardware by itself. The kernel implements these traits
//! over a mapped register page and physical memory (with volatile accesses and its own
//! `// SAFETY:` reasoning); the host tests implement them over a model of the unit.
//! Implementations may put all four on one object: the sequences in this crate take
//! `&mut H where H: Registers + Clock + ...` so a model can see register writes and
//! memory writes in the order they happen.

pub use sluice_regs::{RegisterBlock32, RegisterBlock64};

use crate::descriptor::Descriptor;
use crate::irte::Irte;

/// A remapping unit's registers: a block of 32- and 64-bit registers by byte offset from
/// the unit's register base (the DRHD's register base address), reached through the
/// typed registers in [`crate::registers`] (`GSTS.read(&hw.registers())`).
///
/// VT-d §11.4: 64-bit registers may be accessed as one 64-bit access (QEMU's model
/// accepts 4- and 8-byte accesses). The block is lent for the accesses of one step
/// (`&mut self`): the kernel lends its uncached mapping, which takes `&self` accesses
/// anyway (and holds the unit under its lock); a model lends a view of itself with
/// interior mutability, since a read can have effects in a model.
pub trait Registers {
    /// The register block while lent.
    type Block<'a>: RegisterBlock32 + RegisterBlock64
    where
        Self: 'a;
    /// Lends the register block.
    fn registers(&mut self) -> Self::Block<'_>;
}

/// A monotonic clock for poll timeouts.
pub trait Clock {
    /// Monotonic time in nanoseconds (any epoch).
    fn now_ns(&mut self) -> u64;
    /// Called between two polls of a register or a status word: the kernel pauses
    /// (`pause` instruction); a model may let simulated hardware make progress.
    fn relax(&mut self) {}
}

/// The invalidation queue's memory: a ring of 16-byte descriptor slots at the address
/// programmed into IQA, and one 32-bit status word that invalidation wait descriptors
/// write (VT-d §6.5.2).
///
/// `write_descriptor` must make the descriptor visible to the unit before the next
/// register write (on x86, plain stores to write-back memory are ordered before a later
/// uncached MMIO store, so a volatile 16-byte store suffices).
pub trait QueueMemory {
    /// Physical address of slot 0 (4 KiB aligned): what IQA holds.
    fn ring_address(&self) -> u64;
    /// Physical address of the status word (4-byte aligned): what wait descriptors name.
    fn status_address(&self) -> u64;
    /// Stores `descriptor` into ring slot `slot` (byte offset `slot * 16`).
    fn write_descriptor(&mut self, slot: usize, descriptor: Descriptor);
    /// Reads the status word (a volatile load: the unit writes it by DMA).
    fn read_status(&mut self) -> u32;
}

/// The interrupt remapping table's memory: 16-byte entries at the address programmed into
/// IRTA (VT-d §9.9).
///
/// The unit reads an entry with no lock of ours, so entries are changed with stores the
/// unit cannot see half-done: one 64-bit store for the low half (vector, destination,
/// present and mode bits), one for the high half (source-id), and a 16-byte atomic store
/// (`cmpxchg16b`) when both halves of a live entry change. See [`crate::table`].
pub trait IrteMemory {
    /// Reads entry `index` (two 64-bit loads; only used for the entry being replaced).
    fn read_irte(&mut self, index: u16) -> Irte;
    /// One 64-bit store of the low half (bits 63:0) of entry `index`.
    fn write_low(&mut self, index: u16, low: u64);
    /// One 64-bit store of the high half (bits 127:64) of entry `index`.
    fn write_high(&mut self, index: u16, high: u64);
    /// One 16-byte atomic store of the whole entry (`cmpxchg16b` on x86_64).
    fn write_atomic(&mut self, index: u16, irte: Irte);
}
