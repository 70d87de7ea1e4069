//! `INTEL-IR-n`: one remapping unit's interrupt remapping table as an irq domain of the
//! interrupt core (`sluice-irq-core`), between the vector domain and the devices'
//! domains (PCI MSI/MSI-X, HPET, the I/O APIC).
//!
//! Each irq owns one IRTE (a multi-message device, an aligned block of them). The IRTE
//! holds the vector and destination; the device stores a *remappable* message naming
//! only the entry (handle, and for MSI a subhandle with SHV) and never changes it after
//! set-up. So an affinity change is one step — rewrite the entry, invalidate the unit's
//! cached copy, wait — and the non-maskable problem of MSI is gone: the device cannot
//! send a torn message because nothing it stores changes.
//!
//! Every entry validates its source (VT-d §9.9, [`source`]): a PCI function's requester
//! id, or, behind a PCIe-to-PCI bridge, the bus range its requests may come from; an I/O
//! APIC's or HPET block's id from its DMAR device scope.
//!
//! The domain is generic over what it needs from the machine ([`binding`]): the unit's
//! table ([`RemappingUnit`]) and the platform's facts and failure log ([`Platform`]).
//! The kernel binds them to its units; host tests and the core's simulator to a model.
//!
//! Locking: one interrupt-safe lock of its own over the allocation state (class
//! [`ENTRIES_CLASS`], `vtd.ir_entries`), a leaf, never held across a call into the unit
//! or the platform. The interrupt core calls the domain under its domain lock
//! (allocation) or an irq's descriptor lock (activation, affinity), from interrupt
//! handlers too; [`IrDomain::reserve_block`], [`IrDomain::abandon_block`],
//! [`IrDomain::entry_info`] and [`IrDomain::used`] are called outside the core, with
//! interrupts on.

pub mod binding;
mod entries;
pub mod source;

use alloc::string::String;
use sluice_irq_core::affinity::{MsiPath, Step, StepPlan, plan_msi_update};
use sluice_irq_core::chip::{AffinityMsgs, Chip, HwIrq, LevelCtx};
use sluice_irq_core::domain::Domain;
use sluice_irq_core::hw::Target;
use sluice_irq_core::msi::{MsiMsg, Trigger};
use sluice_irq_core::{IrqError, IrqSource, PciFunction, Result, Virq};

pub use binding::{Failure, Platform, RemappingUnit, UnitOp};
pub use entries::EntryInfo;

use sluice_sync::{IrqSpinLock, LockClass};

use crate::irte::{Irte, TriggerMode};
use crate::message::RemappableMsi;
use entries::Entries;

/// The class of every unit's allocation lock (the kernel's lock order names it).
pub static ENTRIES_CLASS: LockClass = LockClass::new("vtd.ir_entries");

/// The domain of one unit.
pub struct IrDomain<U: RemappingUnit, P: Platform> {
    unit: U,
    platform: P,
    /// `INTEL-IR-n`, as failures are reported.
    name: String,
    /// Interrupt-safe: activation and affinity changes take it under an irq's
    /// descriptor lock, also from interrupt handlers (a plan run by IPI, migration
    /// inside stop_machine), while `reserve_block`, `abandon_block`, `entry_info` and
    /// `used` are called outside the core with interrupts on.
    entries: IrqSpinLock<Entries>,
}

impl<U: RemappingUnit, P: Platform> IrDomain<U, P> {
    /// The domain of the unit at DMAR position `unit_index` (the `n` of `INTEL-IR-n`),
    /// with every entry of its table free.
    pub fn new(unit_index: usize, unit: U, platform: P) -> Self {
        let entries = Entries::new(unit.table_entries());
        Self {
            unit,
            platform,
            name: alloc::format!("INTEL-IR-{unit_index}"),
            entries: IrqSpinLock::new(&ENTRIES_CLASS, entries),
        }
    }

    /// The unit this domain programs.
    pub fn unit(&self) -> &U {
        &self.unit
    }

    /// The rest of the machine: who sends through an entry, where failures go.
    pub fn platform(&self) -> &P {
        &self.platform
    }

    /// `INTEL-IR-n`.
    pub fn domain_name(&self) -> &str {
        &self.name
    }

    /// The entry's allocation record (for `irq N`).
    pub fn entry_info(&self, index: u16) -> Option<EntryInfo> {
        self.entries.lock().info(index)
    }

    /// Entries in use.
    pub fn used(&self) -> usize {
        self.entries.lock().used()
    }

    /// Multi-message MSI behind remapping, step 1: reserve an aligned block of `count`
    /// (a power of two, at most 32) entries for `function`; its message numbers
    /// 0..count become irqs one at a time (`alloc` with the message number as the
    /// source's index), each with a vector and affinity of its own — only the entries
    /// are contiguous. The block is torn down (and its range invalidated) with its last
    /// member. `Busy` if the function has a block already, `NoSpace` if no aligned run
    /// is free.
    pub fn reserve_block(&self, function: &PciFunction, count: u32) -> Result<u16> {
        self.entries.lock().reserve_block(function, count)
    }

    /// Gives back a reserved block none of whose members was allocated (a request that
    /// failed part-way frees its members first).
    pub fn abandon_block(&self, function: &PciFunction) {
        self.entries.lock().abandon_block(function)
    }

    fn index(hwirq: HwIrq) -> Result<u16> {
        u16::try_from(hwirq).map_err(|_| IrqError::InvalidArgument)
    }

    /// The present entry for `target`.
    fn entry_for(&self, index: u16, target: &Target, trigger: Trigger) -> Result<Irte> {
        let info = self.entry_info(index).ok_or(IrqError::InvalidState)?;
        let tm = match trigger {
            Trigger::Edge => TriggerMode::Edge,
            Trigger::Level => TriggerMode::Level,
        };
        Irte::remapped(
            target.vector.0,
            target.apic_id,
            tm,
            info.source,
            self.unit.eim(),
        )
        .map_err(|_| IrqError::InvalidArgument)
    }

    /// The entry for the irq's current target, written and invalidated.
    fn program(&self, d: &LevelCtx) -> Result<()> {
        let index = Self::index(d.hwirq)?;
        let irte = self.entry_for(index, &d.target, d.trigger)?;
        self.unit.write_irte(index, irte).map_err(|e| {
            self.report(UnitOp::Program { index }, &e);
            IrqError::InvalidState
        })
    }

    fn report(&self, op: UnitOp, error: &dyn core::fmt::Display) {
        self.platform.report(&Failure {
            domain: &self.name,
            op,
            error,
        });
    }
}

impl<U: RemappingUnit, P: Platform> Domain for IrDomain<U, P> {
    fn size(&self) -> u32 {
        self.unit.table_entries()
    }

    fn translate(&self, source: &IrqSource) -> Result<(HwIrq, Trigger)> {
        Ok((0, source.trigger()))
    }

    /// One entry: in the function's reserved block (at its message number) if it has
    /// one, else a block of its own. Nothing is written to the table until activation.
    fn alloc(&self, virq: Virq, nr: u32, source: &IrqSource) -> Result<HwIrq> {
        if nr != 1 {
            return Err(IrqError::Unsupported);
        }
        let (validation, pin) = source::entry_source(&self.platform, source)?;
        let index = self.entries.lock().alloc(virq, source, validation, pin)?;
        Ok(HwIrq::from(index))
    }

    /// Each entry is written not present (and its cached copy invalidated) before it is
    /// given back; a block's last member also invalidates the block's whole range.
    fn free(&self, _virq: Virq, hwirq: HwIrq, nr: u32) {
        let Ok(first) = Self::index(hwirq) else {
            return;
        };
        for i in 0..nr as u16 {
            let index = first.wrapping_add(i);
            if let Err(e) = self.unit.write_irte(index, Irte::NOT_PRESENT) {
                self.report(UnitOp::Clear { index }, &e);
            }
            let block = self.entries.lock().free(index);
            if let Some((first, count)) = block
                && let Err(e) = self.unit.invalidate_range(first, count)
            {
                self.report(UnitOp::InvalidateRange { first, count }, &e);
            }
        }
    }

    /// The entry goes live for the irq's current target before the device is given the
    /// message that names it (activation runs innermost first).
    fn activate(&self, d: &LevelCtx, _msg: &MsiMsg) -> Result<()> {
        self.program(d)
    }

    /// Shut down: the entry points at the shutdown vector like the irq.
    fn deactivate(&self, d: &LevelCtx, _msg: &MsiMsg) -> Result<()> {
        self.program(d)
    }
}

impl<U: RemappingUnit, P: Platform> Chip for IrDomain<U, P> {
    fn name(&self) -> &str {
        "INTEL-IR"
    }

    /// The entry holds vector and destination itself — any APIC id with EIM — so no
    /// compatibility-format message is composed for it.
    fn uses_parent_message(&self) -> bool {
        false
    }

    /// The remappable message: the entry's handle; for MSI, SHV with subhandle 0 (VT-d
    /// §5.1.2.2); for an I/O APIC, the pin in the vector field, as Linux writes it — the
    /// I/O APIC sends no data to remap, and a level line is then ended by an explicit
    /// EOI to the I/O APIC with that vector.
    fn compose_msi_msg(&self, d: &LevelCtx, _target: &Target) -> Result<Option<MsiMsg>> {
        let index = Self::index(d.hwirq)?;
        let info = self.entry_info(index).ok_or(IrqError::InvalidState)?;
        let m = match info.pin {
            Some(pin) => {
                let mut m = RemappableMsi {
                    handle: index,
                    subhandle: None,
                }
                .compose();
                m.data = pin & 0xff;
                m
            }
            // A block's members share the device's one message: the block's first entry
            // as handle, subhandle 0; the device adds the member number.
            None => RemappableMsi::shv(info.block.map_or(index, |(base, _)| base)).compose(),
        };
        Ok(Some(MsiMsg {
            addr_lo: m.address_lo,
            addr_hi: m.address_hi,
            data: m.data,
        }))
    }

    /// Only the entry changes: one step, [`Step::UpdateRoute`], whatever the device can
    /// or cannot do, on any CPU, with interrupts on or off.
    fn set_affinity(&self, d: &LevelCtx, m: &AffinityMsgs) -> Result<Option<StepPlan>> {
        Ok(Some(plan_msi_update(
            MsiPath::Remapped,
            d,
            d.hwirq as u32,
            m,
        )))
    }

    /// [`Step::UpdateRoute`]: the entry is rewritten for `d.target` and, when this
    /// returns `Ok`, the unit's cached copy has been invalidated and the invalidation
    /// waited for ([`RemappingUnit::write_irte`]): no interrupt the unit remaps from then
    /// on reaches the old vector or destination. The core may complete the move (and
    /// schedule the old vector's cleanup) at that point, without waiting for an
    /// interrupt at the new target; the cleanup must still allow for interrupts the unit
    /// remapped before, which may be on their way to or pending at the old target (its
    /// IRR check). On `Err` the entry may
    /// hold the new target while the unit still serves the old one: nothing is
    /// guaranteed, and the move must not complete. Any other step is `Unsupported`.
    fn exec_step(&self, d: &LevelCtx, _index: u32, step: &Step, _msg: &MsiMsg) -> Result<()> {
        match step {
            Step::UpdateRoute => self.program(d),
            _ => Err(IrqError::Unsupported),
        }
    }
}
