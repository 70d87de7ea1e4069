//! Typed registers for register blocks reached by offset: memory-mapped blocks (the
//! HPET, the local and I/O APICs, a VT-d unit) and MSR ranges alike.
//!
//! A [`Reg<T, A>`] is an offset that carries the register's value type `T` and its
//! access `A` ([`ReadWrite`], [`ReadOnly`], [`WriteOnly`]). `T` is a raw width (`u32`,
//! `u64`, or `u128` for a 128-bit register read as two 64-bit halves) or a type
//! convertible from and to one ([`Value`]: a bitflags type, a newtype), so:
//!
//! * reading a 32-bit register as 64 bits, or through a block that only takes 32-bit
//!   accesses, does not compile — the width is the register's, and the block says which
//!   widths it takes ([`RegisterBlock32`], [`RegisterBlock64`]);
//! * writing a read-only register, reading a write-only one, or writing a 128-bit one
//!   does not compile;
//! * the value comes back typed: `GEN_CONF.read(&hpet)` is a `GenConf`, not a `u64`.
//!
//! Nothing here touches hardware: the kernel implements the block traits over its
//! mappings (volatile accesses) or MSRs, the host tests over models.
//!
#![doc = include_str!("../README.md")]
#![no_std]
#![forbid(unsafe_code)]
// What the hardware reports is a value to check, never a reason to panic.
#![warn(clippy::unwrap_used)]

mod access;
mod array;
mod block;
#[cfg(doctest)]
mod compile_checks;
mod reg;
mod value;

pub use access::{ReadOnly, ReadWrite, Readable, Writable, WriteOnly};
pub use array::RegArray;
pub use block::{ReadRaw, RegisterBlock32, RegisterBlock64, WriteRaw};
pub use reg::Reg;
pub use value::{Raw, Value};
