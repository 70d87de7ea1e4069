//! Parsers for the ACPI tables that describe interrupt delivery on x86 — DMAR (Intel
//! VT-d remapping units), MADT (APICs) and HPET — and the interrupt plan Sluice derives
//! from them (docs/architecture.md).
//!
//! Everything here is pure logic over byte slices: no `unsafe`, no panicking paths, no
//! unbounded loops, so the kernel can run it on untrusted firmware data and the host can
//! test it against the real tables in `tests/corpus/` (49 real machines, CC BY 4.0 linuxhw). Unreadable tables give a
//! [`ParseError`] naming the offending offset; odd but readable ones parse.
//!
#![doc = include_str!("../README.md")]
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]
// Firmware bytes are input, never trusted: what they say is read into error values,
// never a panic (no `unwrap`), and no offset, length or count derived from them can
// wrap or overflow (checked, or saturating where a bound makes overflow impossible).
#![warn(clippy::unwrap_used, clippy::arithmetic_side_effects)]

extern crate alloc;

#[cfg(feature = "test-builders")]
pub mod build;
pub mod coverage;
pub mod dmar;
pub mod error;
pub mod host_bridges;
pub mod hpet;
pub mod hpet_msi;
pub mod json;
pub mod madt;
pub mod plan;
pub mod render;
#[cfg(feature = "std")]
pub mod report;
pub mod scope;
pub mod sdt;

pub use dmar::{Dmar, DmarFlags, Drhd, RemappingStructure};
pub use error::{Item, LengthProblem, ParseError};
pub use hpet::Hpet;
pub use madt::{Madt, MadtEntry};
pub use plan::InterruptPlan;
#[cfg(feature = "std")]
pub use report::{ReportError, report};
pub use scope::{DeviceScope, PathEntry, ScopeType, SourceId};
pub use sdt::{Checksum, SdtHeader};
