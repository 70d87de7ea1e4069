//! The simulator the interrupt layer's host tests run on: the kernel's own code (the
//! interrupt core, the `INTEL-IR` remapping domain, the chips) over a machine that
//! behaves like a PC where QEMU does not, and an explorer that runs every schedule.
//!
//! * [`machine`]: devices and the bookkeeping of every firing; [`apic`]: CPUs (IRR/ISR,
//!   EOI, soft-enable, IPIs); [`bus`]: messages in flight, and the remapping unit they
//!   pass through; [`pci`](mod@pci): PCI functions with an MSI capability, driven by
//!   sluice-pci's own storage, their writes posted; [`lines`]: I/O APIC inputs, on a
//!   model I/O APIC with Remote IRR ([`ioapic`]); [`storage`]: storage behind a command
//!   queue.
//! * [`vtd`]: a model of a VT-d remapping unit (registers, invalidation queue, the lookup
//!   with an interrupt entry cache), also used by `sluice-vtd`'s tests; [`lapic`]: a
//!   standalone local APIC model (IRR, ISR, TMR) for tests without a machine.
//! * [`boot`]: the common set-up; [`schedule`]: one schedule's events and run;
//!   [`explorer`]: every schedule; [`delivery`]: a CPU taking an interrupt through the
//!   core; [`verdict`](mod@verdict): what a finished schedule must satisfy.
//! * [`lockdep`]: the lock validator over the simulation (interrupt context, the
//!   interrupt flag, reports).
//! * [`wrong`]: chips and APICs wrong on purpose, for the counter-examples.
//!
//! README.md says what each model does that QEMU does not.
//!
#![doc = include_str!("../README.md")]

pub mod apic;
pub mod boot;
pub mod bus;
pub mod delivery;
pub mod explorer;
pub mod ioapic;
pub mod lapic;
pub mod lines;
pub mod lockdep;
pub mod machine;
pub mod pci;
pub mod schedule;
pub mod storage;
pub mod verdict;
pub mod vtd;
pub mod wrong;

pub use apic::{Cpu, SimApic};
pub use boot::{Boot, Remapping, function, pci};
pub use bus::Timing;
pub use delivery::{Running, begin_delivery, deliver, drain, end_delivery};
pub use explorer::{Explorer, explore};
pub use lines::SimRteStorage;
pub use machine::{Device, Machine, Shared, Source, Token, Wire, member_token};
pub use pci::function::{MsiOps, PciMsiStorage, SimConfig, msi_function, set_up_msi};
pub use schedule::{Completer, Event, Run, SimWait};
pub use storage::SimQueuedStorage;
pub use verdict::{strays, verdict};
