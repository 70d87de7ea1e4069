//! Sluice's generic interrupt layer, hardware-free so it runs on the host under `cargo test`.
//!
//! See `README.md` beside this crate for the map of files, how the kernel binds it, and the
//! lock order.
//!
#![doc = include_str!("../README.md")]
#![cfg_attr(not(test), no_std)]
#![deny(missing_docs)]

extern crate alloc;

pub mod affinity;
mod block;
pub mod chip;
pub mod cpumask;
pub mod desc;
pub mod desctable;
pub mod domain;
pub mod error;
pub mod flow;
mod group;
pub mod hotplug;
mod hotplug_block;
pub mod hotplug_queued;
pub mod hw;
pub mod injected;
pub mod ioapic;
pub mod irqcore;
mod levels;
pub mod locks;
pub mod matrix;
pub mod msi;
pub mod msidomain;
pub mod queued;
pub mod region;
mod registry;
mod retarget;
pub mod routes;
pub mod source;
pub mod vecblock;
pub mod vecdomain;
pub mod vector;

pub use cpumask::{CpuId, CpuMask, MASK_WORDS, MAX_CPUS};
pub use error::{IrqError, Result, Virq};
pub use irqcore::{IrqAlloc, IrqCore, LevelInfo};
pub use source::{DmaAlias, IrqSource, PciFunction, Polarity};
pub use vecblock::BlockId;
pub use vector::Vector;
