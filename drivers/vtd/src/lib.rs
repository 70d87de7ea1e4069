//! The hardware-free half of Sluice's Intel VT-d interrupt remapping driver
//! (docs/architecture.md, "The model").
//!
//! Typed registers and their text decoders, the GCMD read-modify-write rule and the
//! enable/disable sequences with bounded waits, the invalidation queue, IRTEs,
//! source-id validation, remappable MSI messages and fault records; and the interrupt
//! core's `INTEL-IR-n` domain over them ([`domain`]). The kernel lends the hardware
//! through the traits in [`hw`] and [`domain::binding`]; nothing here is `unsafe` or
//! touches hardware, so the host tests run all of it against a model of the unit
//! (`tests/common`).
//!
//! Section numbers are those of the Intel VT-d specification, revisions 4.x/5.x:
//! §5.1 interrupt remapping, §6.5 invalidation, ch. 7 fault reporting, §9.9/§9.10 IRTE,
//! §11.4 registers.
//!
#![doc = include_str!("../README.md")]
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
// What the hardware reports is a value to check, never a reason to panic.
#![warn(clippy::unwrap_used)]

extern crate alloc;

pub mod descriptor;
pub mod domain;
pub mod enable;
pub mod fault;
pub mod gcmd;
pub mod hw;
pub mod irte;
pub mod irte_table;
pub mod message;
pub mod poll;
pub mod qi;
pub mod registers;
pub mod source_id;
pub mod table;

pub use descriptor::{
    Decoded, Descriptor, DescriptorError, DescriptorProblem, IecScope, iec_ranges,
};
pub use enable::{
    DisableError, DisableStep, EnableError, Enabled, RemappingConfig, Step, StepError,
    disable_remapping, enable_remapping,
};
pub use fault::{Fault, FaultKind, FaultRateLimiter, Verdict, reason_name};
pub use hw::{Clock, IrteMemory, QueueMemory, Registers};
pub use irte::{DeliveryMode, DestinationMode, Irte, IrteError, RemappedEntry, TriggerMode};
pub use irte_table::{EntryLine, present_entries};
pub use message::{MessageError, MsiMessage, RemappableMsi};
pub use poll::{PollBudget, Timeout, WaitingFor};
pub use qi::{InvalidationQueue, QiError, QueueShutdown};
pub use registers::{
    Capability, Command, EventControl, ExtendedCapability, FaultRecording, FaultStatus,
    GlobalCommand, GlobalStatus, Iqa, Irta, RegisterError, RegisterLayout, Version, gcmd_value,
};
pub use source_id::{PciPath, SourceIdError, SourceValidation, Sq, Svt};
pub use table::{IrteWrite, plan_write, store_irte, update_irte};

/// The README's examples, compiled as doctests so they stay true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
