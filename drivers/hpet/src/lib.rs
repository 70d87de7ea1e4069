//! The HPET (IA-PC HPET specification 1.0a) without hardware: its registers as typed
//! offsets and fields, and a comparator's FSB interrupt route as the interrupt core's
//! MSI message storage (HPET-MSI), with the pending latch the hardware lacks.
//!
//! Where a block's HPET-MSI goes — under VECTOR, under a remapping unit, or nowhere — is
//! the interrupt plan's decision (`sluice_acpi_tables::hpet_msi`): it is made from the
//! firmware's tables alone, and the plan's domain tree is built from it. The kernel
//! binds the two: it maps the registers, lends them to the storage here, and places the
//! domain where the plan says (`kernel/src/irq/domains/hpet_msi.rs`).
//!
#![doc = include_str!("../README.md")]
#![no_std]
#![forbid(unsafe_code)]
// What the hardware reports is a value to check, never a reason to panic.
#![warn(clippy::unwrap_used)]

pub mod fsb;
pub mod regs;
