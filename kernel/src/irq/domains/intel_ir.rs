//! `INTEL-IR-n`: one remapping unit's interrupt remapping table as an irq domain of the
//! interrupt core, between the vector domain and the devices' domains (PCI MSI/MSI-X,
//! the I/O APIC).
//!
//! Each irq owns one IRTE (a multi-message device, an aligned block of them). The IRTE
//! holds the vector and destination; the device stores a *remappable* message naming
//! only the entry (handle, and for MSI a subhandle with SHV) and never changes it after
//! set-up. So an affinity change is one step — rewrite the entry's low half in one store,
//! invalidate the unit's cached copy, wait — and the non-maskable problem of MSI is gone:
//! the device cannot send a torn message because nothing it stores changes.
//!
//! Every entry validates its source (VT-d §9.9): a PCI function's requester id, or,
//! behind a PCIe-to-PCI bridge, the bus range its requests may come from; an I/O APIC's
//! id from its DMAR device scope.

use alloc::collections::BTreeMap;
use alloc::string::String;
use sluice_acpi_tables::plan::DomainKind;
use sluice_irq_core::affinity::{MsiPath, Step, StepPlan, plan_msi_update};
use sluice_irq_core::chip::{AffinityMsgs, Chip, HwIrq, LevelCtx};
use sluice_irq_core::domain::Domain;
use sluice_irq_core::hw::Target;
use sluice_irq_core::msi::{MsiMsg, Trigger};
use sluice_irq_core::region::RegionAllocator;
use sluice_irq_core::{IrqError, IrqSource, Result, Virq};
use sluice_vtd::{Irte, PciPath, RemappableMsi, SourceValidation, TriggerMode};

use crate::iommu::unit::Unit;

/// What an allocated entry validates and how it triggers.
#[derive(Clone, Copy, Debug)]
pub struct EntryInfo {
    pub virq: Virq,
    pub source: SourceValidation,
    /// I/O APIC input, for the remappable RTE's vector field.
    pub pin: Option<u32>,
    /// A multi-message device's block of entries: (first entry, entries). The device's
    /// one message names the first as handle; member `j` sends subhandle `j`.
    pub block: Option<(u16, u32)>,
}

/// A PCI function, as the key of its reserved block.
type FunctionKey = (u16, u8, u8, u8);

fn key(f: &sluice_irq_core::PciFunction) -> FunctionKey {
    (f.segment, f.bus, f.device, f.function)
}

/// The domain of one unit.
pub struct IrDomain {
    unit: &'static Unit,
    name: String,
    /// Which entries are taken (regions of one entry, or aligned blocks).
    regions: spin::Mutex<RegionAllocator>,
    entries: spin::Mutex<BTreeMap<u16, EntryInfo>>,
    /// Blocks reserved for multi-message functions: first entry and length.
    blocks: spin::Mutex<BTreeMap<FunctionKey, (u16, u32)>>,
}

impl IrDomain {
    pub fn new(unit: &'static Unit) -> Self {
        Self {
            unit,
            name: DomainKind::IntelIr { unit: unit.index }.core_name(None),
            regions: spin::Mutex::new(RegionAllocator::up_to(unit.table_entries)),
            entries: spin::Mutex::new(BTreeMap::new()),
            blocks: spin::Mutex::new(BTreeMap::new()),
        }
    }

    pub fn unit(&self) -> &'static Unit {
        self.unit
    }

    /// The entry's allocation record (for `irq N`).
    pub fn entry_info(&self, index: u16) -> Option<EntryInfo> {
        self.entries.lock().get(&index).copied()
    }

    /// Entries in use.
    pub fn used(&self) -> usize {
        self.entries.lock().len()
    }

    /// Multi-message MSI behind remapping, step 1: reserve an aligned block of `count`
    /// (a power of two) entries for `function`; its message numbers 0..count become
    /// irqs one at a time (`alloc` with the message number as the source's index), each
    /// with a vector and affinity of its own — only the entries are contiguous. The block
    /// is torn down (and its range invalidated) with its last member.
    pub fn reserve_block(
        &self,
        function: &sluice_irq_core::PciFunction,
        count: u32,
    ) -> Result<u16> {
        if !count.is_power_of_two() || count > 32 {
            return Err(IrqError::InvalidArgument);
        }
        let mut blocks = self.blocks.lock();
        if blocks.contains_key(&key(function)) {
            return Err(IrqError::Busy);
        }
        let base = self
            .regions
            .lock()
            .reserve(count)
            .map_err(|_| IrqError::NoSpace)?;
        blocks.insert(key(function), (base as u16, count));
        Ok(base as u16)
    }

    /// Gives back a reserved block none of whose members was allocated (a request that
    /// failed part-way frees its members first).
    pub fn abandon_block(&self, function: &sluice_irq_core::PciFunction) {
        if let Some((base, _)) = self.blocks.lock().remove(&key(function)) {
            let _ = self.regions.lock().teardown(u32::from(base));
        }
    }

    fn index(hwirq: HwIrq) -> Result<u16> {
        u16::try_from(hwirq).map_err(|_| IrqError::InvalidArgument)
    }

    /// The check an entry makes of who sends through it.
    fn validation(source: &IrqSource) -> Result<(SourceValidation, Option<u32>)> {
        match *source {
            IrqSource::Pci { function, .. } => {
                let own = function.own_id();
                let (rid, path) = match function.alias {
                    sluice_irq_core::DmaAlias::Own => (own, PciPath::Own),
                    sluice_irq_core::DmaAlias::PciBridge => (
                        own,
                        PciPath::Alias {
                            requester_id: function.requester_id,
                        },
                    ),
                    sluice_irq_core::DmaAlias::PcieToPciBridge => {
                        // The ids that can reach the unit are the bridge's alias and the
                        // id entering the bridge (a conventional bridge below it
                        // substitutes its own, on the bridge's secondary bus). The range
                        // ends at that id's bus, not at the device's: tighter than
                        // Linux's, and QEMU 10, which reads a range backwards, agrees
                        // with it whenever it is one bus.
                        let entering = crate::pci::entering_id(&function).unwrap_or(own);
                        (
                            entering,
                            PciPath::BehindPcieToPciBridge {
                                alias_bus: (function.requester_id >> 8) as u8,
                            },
                        )
                    }
                };
                let v = SourceValidation::pci(rid, path).map_err(|_| IrqError::InvalidArgument)?;
                Ok((v, None))
            }
            IrqSource::IoApic { id, pin, .. } => {
                let sid = crate::iommu::io_apic_source_id(id).ok_or(IrqError::InvalidArgument)?;
                Ok((SourceValidation::io_apic(sid), Some(pin)))
            }
            IrqSource::Hpet { block, .. } => {
                let sid = crate::iommu::hpet_source_id(block).ok_or(IrqError::InvalidArgument)?;
                Ok((SourceValidation::hpet(sid), None))
            }
            _ => Err(IrqError::InvalidArgument),
        }
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
            self.unit.eim,
        )
        .map_err(|_| IrqError::InvalidArgument)
    }

    fn program(&self, d: &LevelCtx) -> Result<()> {
        let index = Self::index(d.hwirq)?;
        let irte = self.entry_for(index, &d.target, d.trigger)?;
        self.unit.write_irte(index, irte).map_err(|e| {
            crate::error!("{}: IRTE {}: {}", self.name, index, e);
            IrqError::InvalidState
        })
    }
}

impl Domain for IrDomain {
    fn size(&self) -> u32 {
        self.unit.table_entries
    }

    fn translate(&self, source: &IrqSource) -> Result<(HwIrq, Trigger)> {
        Ok((0, source.trigger()))
    }

    /// One entry: in the function's reserved block (at its message number) if it has
    /// one, else a block of its own.
    fn alloc(&self, virq: Virq, nr: u32, source: &IrqSource) -> Result<HwIrq> {
        if nr != 1 {
            return Err(IrqError::Unsupported);
        }
        let (validation, pin) = Self::validation(source)?;
        let block = match source {
            IrqSource::Pci { function, index } => self
                .blocks
                .lock()
                .get(&key(function))
                .copied()
                .map(|(base, len)| (base, len, *index)),
            _ => None,
        };
        let mut regions = self.regions.lock();
        let index = match block {
            Some((base, len, member)) => {
                if member >= len {
                    return Err(IrqError::InvalidArgument);
                }
                let i = u32::from(base) + member;
                regions.alloc_at(i).map_err(|_| IrqError::Busy)?;
                i
            }
            None => {
                let base = regions.reserve(1).map_err(|_| IrqError::NoSpace)?;
                regions.alloc(base).map_err(|_| IrqError::NoSpace)?
            }
        };
        self.entries.lock().insert(
            index as u16,
            EntryInfo {
                virq,
                source: validation,
                pin,
                block: block.map(|(base, len, _)| (base, len)),
            },
        );
        Ok(HwIrq::from(index))
    }

    fn free(&self, _virq: Virq, hwirq: HwIrq, nr: u32) {
        let Ok(first) = Self::index(hwirq) else {
            return;
        };
        for i in 0..nr as u16 {
            let index = first.wrapping_add(i);
            if let Err(e) = self.unit.write_irte(index, Irte::NOT_PRESENT) {
                crate::error!("{}: clearing IRTE {}: {}", self.name, index, e);
            }
            self.entries.lock().remove(&index);
            let mut regions = self.regions.lock();
            if let Ok(f) = regions.free(u32::from(index))
                && f.live == 0
                && let Ok(len) = regions.teardown(f.base)
                && len > 1
            {
                // A block's last member: forget the block, flush its whole range.
                drop(regions);
                self.blocks
                    .lock()
                    .retain(|_, (b, _)| u32::from(*b) != f.base);
                if let Err(e) = self.unit.invalidate_range(f.base as u16, len) {
                    crate::error!(
                        "{}: invalidating IRTEs {}+{}: {}",
                        self.name,
                        f.base,
                        len,
                        e
                    );
                }
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

impl Chip for IrDomain {
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

    /// Only the entry changes: one step, whatever the device can or cannot do.
    fn set_affinity(&self, d: &LevelCtx, m: &AffinityMsgs) -> Result<Option<StepPlan>> {
        Ok(Some(plan_msi_update(
            MsiPath::Remapped,
            d,
            d.hwirq as u32,
            m,
        )))
    }

    fn exec_step(&self, d: &LevelCtx, _index: u32, step: &Step, _msg: &MsiMsg) -> Result<()> {
        match step {
            Step::UpdateRoute => self.program(d),
            _ => Err(IrqError::Unsupported),
        }
    }
}
