//! What must not compile, each beside its twin that must: the twin proves the scaffold
//! compiles, so each `compile_fail` fails for the one line it is about.
//!
//! The scaffold: a block that takes 32-bit accesses only, and one that takes both.
//!
//! ```
//! use sluice_regs::*;
//! struct Narrow;
//! impl RegisterBlock32 for Narrow {
//!     fn read32(&self, _: usize) -> u32 { 0 }
//!     fn write32(&self, _: usize, _: u32) {}
//! }
//! struct Wide;
//! impl RegisterBlock32 for Wide {
//!     fn read32(&self, _: usize) -> u32 { 0 }
//!     fn write32(&self, _: usize, _: u32) {}
//! }
//! impl RegisterBlock64 for Wide {
//!     fn read64(&self, _: usize) -> u64 { 0 }
//!     fn write64(&self, _: usize, _: u64) {}
//! }
//! const CAP: Reg<u64, ReadOnly> = Reg::new(0x08);
//! const CMD: Reg<u32, WriteOnly> = Reg::new(0x18);
//! const STS: Reg<u32> = Reg::new(0x1c);
//! const FRCD: Reg<u128, ReadOnly> = Reg::new(0x200);
//! let _: u64 = CAP.read(&Wide);
//! CMD.write(&Narrow, 1);
//! STS.modify(&Narrow, |v| v | 1);
//! let _: u128 = FRCD.read(&Wide);
//! ```
//!
//! A 64-bit register through a block without 64-bit accesses:
//!
//! ```compile_fail,E0277
//! use sluice_regs::*;
//! struct Narrow;
//! impl RegisterBlock32 for Narrow {
//!     fn read32(&self, _: usize) -> u32 { 0 }
//!     fn write32(&self, _: usize, _: u32) {}
//! }
//! const CAP: Reg<u64, ReadOnly> = Reg::new(0x08);
//! let _ = CAP.read(&Narrow);
//! ```
//!
//! A 64-bit register read into a 32-bit value:
//!
//! ```compile_fail,E0308
//! use sluice_regs::*;
//! struct Wide;
//! impl RegisterBlock64 for Wide {
//!     fn read64(&self, _: usize) -> u64 { 0 }
//!     fn write64(&self, _: usize, _: u64) {}
//! }
//! const CAP: Reg<u64, ReadOnly> = Reg::new(0x08);
//! let _: u32 = CAP.read(&Wide);
//! ```
//!
//! A read-only register written:
//!
//! ```compile_fail,E0599
//! use sluice_regs::*;
//! struct Wide;
//! impl RegisterBlock64 for Wide {
//!     fn read64(&self, _: usize) -> u64 { 0 }
//!     fn write64(&self, _: usize, _: u64) {}
//! }
//! const CAP: Reg<u64, ReadOnly> = Reg::new(0x08);
//! CAP.write(&Wide, 0);
//! ```
//!
//! A write-only register read:
//!
//! ```compile_fail,E0599
//! use sluice_regs::*;
//! struct Narrow;
//! impl RegisterBlock32 for Narrow {
//!     fn read32(&self, _: usize) -> u32 { 0 }
//!     fn write32(&self, _: usize, _: u32) {}
//! }
//! const CMD: Reg<u32, WriteOnly> = Reg::new(0x18);
//! let _ = CMD.read(&Narrow);
//! ```
//!
//! A read-only register modified:
//!
//! ```compile_fail,E0599
//! use sluice_regs::*;
//! struct Narrow;
//! impl RegisterBlock32 for Narrow {
//!     fn read32(&self, _: usize) -> u32 { 0 }
//!     fn write32(&self, _: usize, _: u32) {}
//! }
//! const VER: Reg<u32, ReadOnly> = Reg::new(0x00);
//! VER.modify(&Narrow, |v| v);
//! ```
//!
//! A 128-bit register written (even one declared read-write):
//!
//! ```compile_fail,E0277
//! use sluice_regs::*;
//! struct Wide;
//! impl RegisterBlock64 for Wide {
//!     fn read64(&self, _: usize) -> u64 { 0 }
//!     fn write64(&self, _: usize, _: u64) {}
//! }
//! const FRCD: Reg<u128> = Reg::new(0x200);
//! FRCD.write(&Wide, 0);
//! ```
