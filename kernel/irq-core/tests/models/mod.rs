//! Hardware-faithful models for the interrupt core's host tests, each self-contained
//! (no machine around it, no test harness): a test wires them to the core and to each
//! other. They are written to move as they are into the shared simulator (`tests/sim/`).
//!
//! - [`ioapic::IoApicModel`]: an I/O APIC's redirection table with Remote IRR, the EOI
//!   register (from version 0x20 on) and the messages it sends.
//! - [`lapic::LapicModel`]: a local APIC's IRR, ISR and TMR, and the EOI it broadcasts
//!   for a level-triggered vector.
#![allow(dead_code)]

pub mod ioapic;
pub mod lapic;
