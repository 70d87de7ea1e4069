//! Local APIC (per CPU) and I/O APICs, plus the kernel's fixed vector assignments.

pub mod local;
pub mod vectors;
