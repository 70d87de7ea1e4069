//! `INTEL-IR-n`, bound to the machine: the domain itself — IRTE allocation, multi-message
//! blocks, source validation, remappable messages, the one-step affinity change — is
//! `sluice_vtd::domain::IrDomain`, host-tested over a model of the unit. This file lends
//! it a remapping unit (`iommu::unit::Unit`, whose IRTE writes invalidate the unit's
//! cached copy and wait) and the platform: the DMAR's I/O APIC and HPET source ids, the
//! PCI path of a function behind a PCIe-to-PCI bridge, and the kernel log.

use sluice_irq_core::PciFunction;
use sluice_vtd::domain::{Failure, Platform, RemappingUnit};
use sluice_vtd::{Irte, QiError};

use crate::iommu::unit::Unit;

/// The domain of one unit, as the kernel builds it.
pub type IrDomain = sluice_vtd::domain::IrDomain<&'static Unit, Machine>;

/// The domain of `unit`, every entry free.
pub fn bind(unit: &'static Unit) -> IrDomain {
    IrDomain::new(unit.index, unit, Machine)
}

impl RemappingUnit for Unit {
    type Error = QiError;

    fn table_entries(&self) -> u32 {
        self.table_entries
    }

    fn eim(&self) -> bool {
        self.eim
    }

    /// `Unit::write_irte`: the crate's store order, then an IEC invalidation and its
    /// wait descriptor, under the unit's state lock.
    fn write_irte(&self, index: u16, irte: Irte) -> Result<(), QiError> {
        Unit::write_irte(self, index, irte)
    }

    fn invalidate_range(&self, first: u16, count: u32) -> Result<(), QiError> {
        Unit::invalidate_range(self, first, count)
    }
}

/// The running kernel: its DMAR tables, its PCI enumeration, its log.
pub struct Machine;

impl Platform for Machine {
    fn io_apic_source_id(&self, id: u8) -> Option<u16> {
        crate::iommu::io_apic_source_id(id)
    }

    fn hpet_source_id(&self, block: u8) -> Option<u16> {
        crate::iommu::hpet_source_id(block)
    }

    fn entering_id(&self, function: &PciFunction) -> Option<u16> {
        crate::pci::entering_id(function)
    }

    fn report(&self, failure: &Failure<'_>) {
        crate::error!("{}", failure);
    }
}
