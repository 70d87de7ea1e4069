//! `Reg<T, A>`: a register's offset, value type and access.

use core::marker::PhantomData;

use crate::access::{ReadWrite, Readable, Writable};
use crate::block::{ReadRaw, WriteRaw};
use crate::value::Value;

/// A register of a block: its byte offset from the block's base, the type `T` of its
/// value (which fixes the access width) and its access `A`.
///
/// Registers are constants (`pub const GEN_CONF: Reg<GenConf> = Reg::new(0x10);`) or
/// computed (`Reg::new(0x100 + 0x20 * n)`, [`Reg::at`], [`crate::RegArray`]); offsets
/// saturate instead of wrapping, so a nonsense base gives an offset the block's own
/// bounds refuse.
pub struct Reg<T, A = ReadWrite> {
    offset: usize,
    // `fn() -> _`: a `Reg` is `Copy`, `Send` and `Sync` whatever `T` and `A` are.
    kind: PhantomData<fn() -> (T, A)>,
}

impl<T, A> Clone for Reg<T, A> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T, A> Copy for Reg<T, A> {}

impl<T, A> PartialEq for Reg<T, A> {
    fn eq(&self, other: &Self) -> bool {
        self.offset == other.offset
    }
}
impl<T, A> Eq for Reg<T, A> {}

impl<T, A> core::fmt::Debug for Reg<T, A> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Reg({:#x})", self.offset)
    }
}

impl<T, A> Reg<T, A> {
    /// The register at byte `offset` from the block's base.
    pub const fn new(offset: usize) -> Self {
        Reg {
            offset,
            kind: PhantomData,
        }
    }

    /// Its byte offset from the block's base.
    pub const fn offset(self) -> usize {
        self.offset
    }

    /// This register in a structure that starts at `base`: `self` was defined relative
    /// to the structure's first byte (a comparator's block, a record in an array).
    pub const fn at(self, base: usize) -> Self {
        Reg::new(base.saturating_add(self.offset))
    }
}

impl<T: Value, A: Readable> Reg<T, A> {
    /// One read of the register's width.
    pub fn read<B: ReadRaw<T::Raw> + ?Sized>(self, block: &B) -> T {
        T::from_raw(block.read_raw(self.offset))
    }
}

impl<T: Value, A: Writable> Reg<T, A> {
    /// One write of the register's width.
    pub fn write<B: WriteRaw<T::Raw> + ?Sized>(self, block: &B, value: T) {
        block.write_raw(self.offset, value.to_raw())
    }
}

impl<T: Value> Reg<T, ReadWrite> {
    /// Reads the register, then writes what `f` makes of its value; returns what was
    /// written. Two accesses: whoever needs them atomic holds the lock that says so.
    pub fn modify<B>(self, block: &B, f: impl FnOnce(T) -> T) -> T
    where
        B: ReadRaw<T::Raw> + WriteRaw<T::Raw> + ?Sized,
    {
        let value = f(self.read(block));
        self.write(block, value);
        value
    }
}
