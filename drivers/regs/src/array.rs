//! Registers repeated at a stride: a redirection table, an APIC's 256-bit banks, a
//! block of fault recording registers.

use core::marker::PhantomData;

use crate::access::ReadWrite;
use crate::reg::Reg;

/// `len` registers of one kind, the first at `base`, each `stride` bytes after the one
/// before. `len` may be known only at run time (an I/O APIC's pins, a VT-d unit's fault
/// records): [`RegArray::get`] refuses an index past it.
pub struct RegArray<T, A = ReadWrite> {
    base: usize,
    stride: usize,
    len: usize,
    kind: PhantomData<fn() -> (T, A)>,
}

impl<T, A> Clone for RegArray<T, A> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T, A> Copy for RegArray<T, A> {}

impl<T, A> core::fmt::Debug for RegArray<T, A> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "RegArray({:#x} + {:#x} * 0..{})",
            self.base, self.stride, self.len
        )
    }
}

impl<T, A> RegArray<T, A> {
    /// `len` registers, the first at `base`, each `stride` bytes after the one before.
    pub const fn new(base: usize, stride: usize, len: usize) -> Self {
        RegArray {
            base,
            stride,
            len,
            kind: PhantomData,
        }
    }

    /// How many registers there are.
    pub const fn len(self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub const fn is_empty(self) -> bool {
        self.len == 0
    }

    /// The same registers, `len` of them.
    pub const fn with_len(self, len: usize) -> Self {
        RegArray::new(self.base, self.stride, len)
    }

    /// Register `index`, if the array has it.
    pub const fn get(self, index: usize) -> Option<Reg<T, A>> {
        if index < self.len {
            Some(Reg::new(
                self.base.saturating_add(self.stride.saturating_mul(index)),
            ))
        } else {
            None
        }
    }
}
