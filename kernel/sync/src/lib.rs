//! Sluice's locks and their validator.
//!
//! * [`SpinLock`]: for state no interrupt handler touches.
//! * [`IrqSpinLock`]: for state an interrupt handler may touch; interrupts are off on the
//!   local CPU while it is held.
//! * [`LockMap`]: no lock at all, but something CPUs wait for (a rendezvous), shown to the
//!   validator as one.
//!
//! Every lock names a [`LockClass`]; with the `validate` feature (on by default, and in
//! every kernel build) the [`validator`] checks each acquisition against what it has
//! learnt about the classes involved and reports, with both source sites, any pattern
//! that can deadlock. The machine's side — the interrupt flag, the context, the per-CPU
//! held-lock stack, where reports go — comes through [`Platform`] hooks the kernel sets
//! at boot; on the host, [`host`] provides them per thread.
//!
//! See `README.md` beside this crate for the rules, the hooks and the cost.
//!
#![doc = include_str!("../README.md")]
#![no_std]
#![deny(missing_docs)]
// Without the validator, its bookkeeping types are built but never used.
#![cfg_attr(not(feature = "validate"), allow(dead_code))]

#[cfg(not(target_os = "none"))]
extern crate std;

mod class;
mod held;
#[cfg(not(target_os = "none"))]
pub mod host;
mod irqlock;
mod map;
mod platform;
mod raw;
mod spinlock;
pub mod validator;

pub use class::LockClass;
pub use held::{HeldLocks, MAX_HELD};
pub use irqlock::{IrqSpinGuard, IrqSpinLock};
pub use map::{LockMap, MapGuard};
pub use platform::{Context, Platform, context, irqs_enabled, set_platform};
pub use spinlock::{SpinGuard, SpinLock};
pub use validator::{LockOrder, Report};
