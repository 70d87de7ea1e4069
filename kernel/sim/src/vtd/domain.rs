//! The model bound to the `INTEL-IR` domain: a [`Unit`] enabled for remapping, with its
//! invalidation queue, behind one lock ([`ModelUnit`], the domain's `RemappingUnit`),
//! and a machine's DMAR and PCI facts ([`ModelPlatform`]). The domain's IRTE writes go
//! through the crate's own `update_irte` and queue, exactly as the kernel's do; the
//! test's devices deliver their messages through the same unit
//! ([`ModelUnit::deliver`]), so they meet its interrupt entry cache. [`StoreOnly`] is a
//! wrong binding on purpose: it stores entries and never invalidates them.

use std::collections::BTreeMap;
use std::sync::Mutex;

use sluice_irq_core::PciFunction;
use sluice_irq_core::msi::MsiMsg;
use sluice_vtd::domain::{Failure, Platform, RemappingUnit};
use sluice_vtd::{
    Capability, ExtendedCapability, InvalidationQueue, Irte, MsiMessage, QiError, RegisterLayout,
    RemappingConfig, store_irte, update_irte,
};

use super::lookup::{BusRangeOrder, Delivery};
use super::unit::Unit;
use super::{BUDGET, queue_for};

/// A unit with remapping on, shared by the domain and the test's devices.
pub struct ModelUnit {
    state: Mutex<(Unit, InvalidationQueue)>,
    table_entries: u32,
    eim: bool,
}

impl ModelUnit {
    /// `unit` (a preset: `Unit::hardware()` caches entries, `Unit::qemu()` does not)
    /// enabled by the crate's sequence with a table of `table_entries` and EIME = `eim`.
    pub fn enabled(mut unit: Unit, table_entries: u32, eim: bool) -> ModelUnit {
        let mut queue = queue_for(&unit, 0);
        let config = RemappingConfig {
            table_address: 0x30_0000,
            table_entries,
            eim,
            budget: BUDGET,
            layout: RegisterLayout::new(Capability(unit.cap), ExtendedCapability(unit.ecap))
                .expect("the model's layout is sane"),
        };
        sluice_vtd::enable_remapping(&mut unit, &mut queue, &config).expect("the model enables");
        ModelUnit {
            state: Mutex::new((unit, queue)),
            table_entries,
            eim,
        }
    }

    /// The model itself (its table `irt`, cache `iec`, processed descriptors, faults).
    pub fn with<R>(&self, f: impl FnOnce(&mut Unit) -> R) -> R {
        f(&mut self.state.lock().unwrap().0)
    }

    /// What the table holds at `index` now.
    pub fn irte(&self, index: u16) -> Irte {
        self.with(|u| u.irt.get(&index).copied().unwrap_or_default())
    }

    /// A device's message write from `requester`, as the unit remaps it (bus ranges read
    /// as the specification says): where it goes, or the fault reason.
    pub fn deliver(&self, msg: MsiMsg, requester: u16) -> Result<Delivery, u8> {
        self.with(|u| u.deliver(message(msg), Some(requester), BusRangeOrder::Spec))
    }

    /// Where [`ModelUnit::deliver`] would send it now, caching and recording nothing.
    pub fn peek(&self, msg: MsiMsg, requester: u16) -> Result<Delivery, u8> {
        self.with(|u| u.peek(message(msg), Some(requester), BusRangeOrder::Spec))
    }
}

/// The core's message as the crate's.
pub fn message(msg: MsiMsg) -> MsiMessage {
    MsiMessage {
        address_lo: msg.addr_lo,
        address_hi: msg.addr_hi,
        data: msg.data,
    }
}

impl RemappingUnit for ModelUnit {
    type Error = QiError;

    fn table_entries(&self) -> u32 {
        self.table_entries
    }

    fn eim(&self) -> bool {
        self.eim
    }

    fn write_irte(&self, index: u16, irte: Irte) -> Result<(), QiError> {
        let (unit, queue) = &mut *self.state.lock().unwrap();
        update_irte(unit, queue, index, irte).map(|_| ())
    }

    fn invalidate_range(&self, first: u16, count: u32) -> Result<(), QiError> {
        let (unit, queue) = &mut *self.state.lock().unwrap();
        queue.invalidate_iec_range(unit, first, count)
    }
}

/// WRONG on purpose: a binding that stores entries in the safe order and never
/// invalidates them — what a missing IEC invalidation looks like. A unit that caches
/// entries keeps serving the old one; QEMU, which caches nothing, cannot tell.
pub struct StoreOnly(pub std::sync::Arc<ModelUnit>);

impl RemappingUnit for StoreOnly {
    type Error = QiError;
    fn table_entries(&self) -> u32 {
        self.0.table_entries()
    }
    fn eim(&self) -> bool {
        self.0.eim()
    }
    fn write_irte(&self, index: u16, irte: Irte) -> Result<(), QiError> {
        self.0.with(|u| store_irte(u, index, irte));
        Ok(())
    }
    fn invalidate_range(&self, _first: u16, _count: u32) -> Result<(), QiError> {
        Ok(())
    }
}

/// A machine's DMAR scopes and PCI paths, and the failures the domain reported.
#[derive(Default)]
pub struct ModelPlatform {
    /// I/O APIC id → the source-id of its DMAR scope.
    pub io_apics: BTreeMap<u8, u16>,
    /// HPET block → the source-id of its DMAR scope.
    pub hpets: BTreeMap<u8, u16>,
    /// (segment, bus, device, function) → the id its requests carry entering the
    /// PCIe-to-PCI bridge above it.
    pub entering: BTreeMap<(u16, u8, u8, u8), u16>,
    /// Every `Platform::report`, as the kernel would log it.
    pub failures: Mutex<Vec<String>>,
}

impl ModelPlatform {
    /// The failures the domain reported so far.
    pub fn failures(&self) -> Vec<String> {
        self.failures.lock().unwrap().clone()
    }
}

impl Platform for ModelPlatform {
    fn io_apic_source_id(&self, id: u8) -> Option<u16> {
        self.io_apics.get(&id).copied()
    }
    fn hpet_source_id(&self, block: u8) -> Option<u16> {
        self.hpets.get(&block).copied()
    }
    fn entering_id(&self, f: &PciFunction) -> Option<u16> {
        self.entering
            .get(&(f.segment, f.bus, f.device, f.function))
            .copied()
    }
    fn report(&self, failure: &Failure<'_>) {
        self.failures.lock().unwrap().push(failure.to_string());
    }
}
