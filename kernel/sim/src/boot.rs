//! The common set-up of every simulation: a machine and an interrupt core with every CPU
//! online, and — for a remapped machine — a VT-d unit in its real-hardware preset
//! enabled by the crate's own sequence, with the production `INTEL-IR-0` domain over it
//! under the vector domain. Devices are added with the storage the core's chips write —
//! an MSI device is a PCI function driven by sluice-pci's own storage, its irqs started
//! in sluice-pci's own set-up order (`msi_order`); on a remapped machine their domains go
//! under `INTEL-IR-0` (a device left outside it would send compatibility-format
//! messages, which the unit blocks).

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};

use sluice_irq_core::domain::{DomainId, DomainOps};
use sluice_irq_core::msidomain::MsiDomain;
use sluice_irq_core::{IrqAlloc, IrqCore, IrqSource, PciFunction, Virq};
use sluice_vtd::domain::IrDomain;

use crate::bus::Timing;
use crate::lines::SimRteStorage;
use crate::machine::{Machine, Shared, Wire};
use crate::pci::function::{MsiOps, PciMsiStorage, msi_function, set_up_msi};
use crate::storage::SimQueuedStorage;
use crate::vtd::Unit;
use crate::vtd::domain::{ModelPlatform, ModelUnit, StoreOnly};

/// Whether the machine remaps interrupts, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Remapping {
    /// No remapping unit: messages go straight to the APICs.
    Off,
    /// One model VT-d unit, its `INTEL-IR-0` domain between the MSI domains and VECTOR.
    On {
        /// IRTA.EIME: x2APIC destinations (else xAPIC, whose reserved destination bits
        /// the unit checks).
        eim: bool,
        /// The binding invalidates each entry it stores (the kernel's); `false`: the
        /// wrong [`StoreOnly`] binding, which never does.
        invalidates: bool,
    },
}

/// The source-id of I/O APIC `id` in the machine's DMAR.
pub fn io_apic_source_id(id: u8) -> u16 {
    0xf0f8 - u16::from(id)
}

/// A remapped machine's unit, platform and domain.
pub struct Remap {
    /// The model unit.
    pub unit: Arc<ModelUnit>,
    /// What the domain asks of the machine (who sends through an entry, its failures).
    pub platform: Arc<ModelPlatform>,
    /// `INTEL-IR-0`.
    pub domain: DomainId,
}

/// A booted machine.
pub struct Boot {
    /// The machine.
    pub m: Shared,
    /// The interrupt core, with the machine's APICs and domains.
    pub core: IrqCore,
    /// The remapping unit and its domain, when booted with one.
    pub remap: Option<Remap>,
}

/// Table entries of the model unit.
const TABLE_ENTRIES: u32 = 256;

impl Boot {
    /// `cpus` CPUs (APIC id = CPU number), all online; no remapping.
    pub fn new(cpus: usize, timing: Timing) -> Boot {
        Boot::with(cpus, timing, Remapping::Off)
    }

    /// `cpus` CPUs (APIC id = CPU number), all online, remapped as `remapping` says.
    pub fn with(cpus: usize, timing: Timing, remapping: Remapping) -> Boot {
        let m = Machine::new(cpus);
        {
            let mut mm = m.lock().unwrap();
            mm.bus.timing = timing;
            mm.redeliver_from_irr_hit = true;
        }
        // This thread plays every CPU: core calls with interrupts off, deliveries in
        // hard-interrupt context, the core's lock order declared (`lockdep.rs`).
        crate::lockdep::calls_with_irqs_off();
        crate::lockdep::install_order();
        let core = IrqCore::new(cpus).expect("a core for the machine");
        for c in 0..cpus as u32 {
            core.online_cpu(c).expect("CPU online");
        }
        let remap = match remapping {
            Remapping::Off => None,
            Remapping::On { eim, invalidates } => {
                Some(Self::remapping(&m, &core, eim, invalidates))
            }
        };
        Boot { m, core, remap }
    }

    fn remapping(m: &Shared, core: &IrqCore, eim: bool, invalidates: bool) -> Remap {
        let unit = Arc::new(ModelUnit::enabled(Unit::hardware(), TABLE_ENTRIES, eim));
        let weak: Weak<_> = Arc::downgrade(m);
        unit.with(|u| {
            u.on_irte_store = Some(Box::new(move |u: &mut Unit| {
                if let Some(m) = weak.upgrade() {
                    m.lock().unwrap().at_irte_store(u);
                }
            }))
        });
        m.lock().unwrap().bus.unit = Some(unit.clone());
        let platform = Arc::new(ModelPlatform {
            io_apics: BTreeMap::from([(0, io_apic_source_id(0)), (1, io_apic_source_id(1))]),
            ..ModelPlatform::default()
        });
        let ops: Arc<dyn DomainOps> = if invalidates {
            Arc::new(IrDomain::new(0, unit.clone(), platform.clone()))
        } else {
            Arc::new(IrDomain::new(0, StoreOnly(unit.clone()), platform.clone()))
        };
        let domain = core
            .add_domain("INTEL-IR-0", DomainId::VECTOR, ops)
            .expect("INTEL-IR-0");
        Remap {
            unit,
            platform,
            domain,
        }
    }

    /// Where a device's domain goes: under `INTEL-IR-0` on a remapped machine, else
    /// under the vector domain.
    pub fn parent(&self) -> DomainId {
        self.remap.as_ref().map_or(DomainId::VECTOR, |r| r.domain)
    }

    /// Adds a device's domain under [`Boot::parent`].
    pub fn add(&self, name: &str, ops: Arc<dyn DomainOps>) -> DomainId {
        self.core
            .add_domain(name, self.parent(), ops)
            .expect("a device domain")
    }

    /// A new PCI function at `function`'s address with an MSI capability for
    /// `members` messages, and sluice-pci's storage on it ([`msi_function`]).
    pub fn msi_function(
        &self,
        members: u32,
        maskable: bool,
        function: PciFunction,
    ) -> PciMsiStorage {
        msi_function(&self.m, members, maskable, function)
    }

    /// Starts `req.count` irqs of an MSI function's `domain` (`dom`, the same domain,
    /// typed) for `source`, requested with `token(j)`, in sluice-pci's set-up order
    /// ([`set_up_msi`]). The first irq.
    pub fn start_msi(
        &self,
        dom: &dyn MsiOps,
        domain: DomainId,
        source: &IrqSource,
        req: &IrqAlloc,
        token: impl Fn(u32) -> u64,
    ) -> Virq {
        set_up_msi(dom, req.count, || self.request(domain, source, req, token))
    }

    /// A new single-message MSI function at `function`'s address under its own
    /// `PCI-MSI` domain named `name`, its irq started (see [`Boot::start_msi`]) on
    /// `affinity` with `token`.
    pub fn msi_irq(
        &self,
        name: &str,
        maskable: bool,
        function: PciFunction,
        affinity: sluice_irq_core::CpuMask,
        token: u64,
    ) -> Virq {
        let dom = Arc::new(MsiDomain::new(
            "PCI-MSI",
            self.msi_function(1, maskable, function),
        ));
        let id = self.add(name, dom.clone());
        let source = IrqSource::Pci { function, index: 0 };
        self.start_msi(&*dom, id, &source, &IrqAlloc::edge(affinity), |_| token)
    }

    /// A new device wired as `wire` to `pin` of I/O APIC `id` (its messages carry the
    /// I/O APIC's source-id), and the chip's redirection table.
    pub fn ioapic_line(&self, id: u8, pin: u32, wire: Wire) -> SimRteStorage {
        let mut mm = self.m.lock().unwrap();
        let dev = mm.add_ioapic_line(id, pin, wire);
        mm.devices[dev].requester = io_apic_source_id(id);
        SimRteStorage {
            m: self.m.clone(),
            id,
        }
    }

    /// A new device of `function` whose message storage sits behind a command queue.
    pub fn queued_device(&self, function: PciFunction) -> SimQueuedStorage {
        let dev = self.device(function, |mm| mm.add_device(true));
        SimQueuedStorage {
            m: self.m.clone(),
            dev,
        }
    }

    fn device(&self, function: PciFunction, add: impl FnOnce(&mut Machine) -> usize) -> usize {
        let mut mm = self.m.lock().unwrap();
        let dev = add(&mut mm);
        mm.devices[dev].requester = function.requester_id;
        dev
    }

    /// Allocates `req.count` irqs of `domain` for `source` and requests each with
    /// `tokens(j)`; the first irq.
    pub fn request(
        &self,
        domain: DomainId,
        source: &IrqSource,
        req: &IrqAlloc,
        token: impl Fn(u32) -> u64,
    ) -> Virq {
        let first = self
            .core
            .alloc_irq(domain, source, req)
            .expect("irq allocated");
        for j in 0..req.count.max(1) {
            self.core
                .request_irq(first + j, token(j), "dev")
                .expect("irq requested");
        }
        first
    }
}

/// Function `device` on bus 0 (its own requester id).
pub fn function(device: u8) -> PciFunction {
    PciFunction::new(0, 0, device, 0)
}

/// Message `index` of function `device` on bus 0.
pub fn pci(device: u8, index: u32) -> IrqSource {
    IrqSource::Pci {
        function: function(device),
        index,
    }
}
