//! The raw accesses a register block takes, by byte offset from its base.
//!
//! A block implements the widths it takes: an I/O APIC's window and a local APIC take
//! 32-bit accesses only, an HPET or a VT-d unit 32- and 64-bit ones, an MSR range
//! 64-bit ones. Each method is one bus access (one RDMSR/WRMSR) of its width; a 64-bit
//! access is never split here, so a block that cannot make one does not implement
//! [`RegisterBlock64`].
//!
//! Accesses take `&self`: a mapping of device registers is shared by nature (volatile
//! accesses through one pointer), and whoever needs accesses serialised (an indirect
//! window, a unit's command sequence) holds its own lock around them. A host model keeps
//! its state in a `Cell`, `RefCell` or `Mutex`.

use crate::value::Raw;

/// 32-bit accesses.
pub trait RegisterBlock32 {
    /// Reads the 32-bit register at `offset`.
    fn read32(&self, offset: usize) -> u32;
    /// Writes `value` to the 32-bit register at `offset`.
    fn write32(&self, offset: usize, value: u32);
}

/// 64-bit accesses.
pub trait RegisterBlock64 {
    /// Reads the 64-bit register at `offset`, in one access.
    fn read64(&self, offset: usize) -> u64;
    /// Writes `value` to the 64-bit register at `offset`, in one access.
    fn write64(&self, offset: usize, value: u64);
}

impl<B: RegisterBlock32 + ?Sized> RegisterBlock32 for &B {
    fn read32(&self, offset: usize) -> u32 {
        (**self).read32(offset)
    }
    fn write32(&self, offset: usize, value: u32) {
        (**self).write32(offset, value)
    }
}

impl<B: RegisterBlock64 + ?Sized> RegisterBlock64 for &B {
    fn read64(&self, offset: usize) -> u64 {
        (**self).read64(offset)
    }
    fn write64(&self, offset: usize, value: u64) {
        (**self).write64(offset, value)
    }
}

/// Reads of width `R`: implemented for every block that takes them (not by hand).
pub trait ReadRaw<R: Raw> {
    /// Reads the register of width `R` at `offset`.
    fn read_raw(&self, offset: usize) -> R;
}

/// Writes of width `R`: implemented for every block that takes them (not by hand).
/// There is none of `u128`: no register that wide is written as a whole.
pub trait WriteRaw<R: Raw> {
    /// Writes `value` to the register of width `R` at `offset`.
    fn write_raw(&self, offset: usize, value: R);
}

impl<B: RegisterBlock32 + ?Sized> ReadRaw<u32> for B {
    fn read_raw(&self, offset: usize) -> u32 {
        self.read32(offset)
    }
}

impl<B: RegisterBlock32 + ?Sized> WriteRaw<u32> for B {
    fn write_raw(&self, offset: usize, value: u32) {
        self.write32(offset, value)
    }
}

impl<B: RegisterBlock64 + ?Sized> ReadRaw<u64> for B {
    fn read_raw(&self, offset: usize) -> u64 {
        self.read64(offset)
    }
}

impl<B: RegisterBlock64 + ?Sized> WriteRaw<u64> for B {
    fn write_raw(&self, offset: usize, value: u64) {
        self.write64(offset, value)
    }
}

/// A 128-bit register as two 64-bit reads, the low half (bits 63:0, at the offset)
/// first, then the high half (at the offset + 8). The two reads are not one access:
/// this fits registers that hold still while read, such as a VT-d fault recording
/// register, which keeps its record until software clears its F bit (VT-d §11.4.14).
impl<B: RegisterBlock64 + ?Sized> ReadRaw<u128> for B {
    fn read_raw(&self, offset: usize) -> u128 {
        let low = self.read64(offset);
        let high = self.read64(offset.saturating_add(8));
        u128::from(high) << 64 | u128::from(low)
    }
}
