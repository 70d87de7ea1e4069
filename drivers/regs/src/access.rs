//! Whether a register may be read, written, or both. A write-only register is not just
//! a convention: in x2APIC mode reading EOI or SELF IPI faults (Intel SDM vol. 3A
//! §11.12.1.2), and reading some status registers has side effects.

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::ReadWrite {}
    impl Sealed for super::ReadOnly {}
    impl Sealed for super::WriteOnly {}
}

/// Read and written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadWrite;

/// Only read (capabilities, status, counters that only hardware moves).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadOnly;

/// Only written (commands, end of interrupt).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOnly;

/// An access that allows reads.
pub trait Readable: sealed::Sealed {}
impl Readable for ReadWrite {}
impl Readable for ReadOnly {}

/// An access that allows writes.
pub trait Writable: sealed::Sealed {}
impl Writable for ReadWrite {}
impl Writable for WriteOnly {}
