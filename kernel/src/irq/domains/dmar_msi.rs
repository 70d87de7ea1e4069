//! `DMAR-MSI`: each remapping unit's fault event, an MSI whose storage is the unit's own
//! FEDATA/FEADDR/FEUADDR registers, masked by FECTL.IM — a domain directly on the vector
//! domain, never remapped (the unit reports its own faults in compatibility format).
//!
//! The handler drains every fault recording register, decodes each record (reason by
//! name, source-id as a bus:device.function, the IRTE index), keeps the last few for the
//! `iommu` command and counts them per unit; printing is rate-limited, so a storm of
//! faults is counted, not a hang. Draining also clears the overflow: a unit signals a
//! new fault event only when no fault was left pending (VT-d §7.3.1; QEMU the same).
//!
//! QEMU ignores FEUADDR (write mask 0), so in QEMU the fault event can only name APIC ids
//! 0–255: the irq's affinity is the CPUs below 255.

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use sluice_acpi_tables::plan::DomainKind;
use sluice_irq_core::desc::IrqReturn;
use sluice_irq_core::msi::{MsiCaps, MsiMsg, MsiStorage};
use sluice_irq_core::msidomain::MsiDomain;
use sluice_irq_core::{CpuId, CpuMask, IrqAlloc, IrqSource, Result, Virq};
use sluice_vtd::registers::{EventControl, FEADDR, FECTL, FEDATA, FEUADDR};
use sluice_vtd::{Fault, FaultRateLimiter, Verdict};

use crate::iommu::unit::Unit;

/// Faults kept per unit for `iommu`.
const RECENT: usize = 16;

/// A unit's fault-event registers as message storage.
pub struct FaultEventStorage {
    unit: &'static Unit,
}

impl MsiStorage for FaultEventStorage {
    fn caps(&self) -> MsiCaps {
        MsiCaps {
            maskable: true,
            nvec: 1,
            multi_vector: false,
            dynamic: false,
            addr64: true,
        }
    }
    fn write_addr_lo(&self, _i: u32, value: u32) {
        FEADDR.write(self.unit.registers(), value)
    }
    fn write_addr_hi(&self, _i: u32, value: u32) {
        FEUADDR.write(self.unit.registers(), value)
    }
    fn write_data(&self, _i: u32, value: u32) {
        FEDATA.write(self.unit.registers(), value)
    }
    fn mask(&self, _i: u32) -> Result<()> {
        FECTL.write(self.unit.registers(), EventControl::IM);
        Ok(())
    }
    fn unmask(&self, _i: u32) -> Result<()> {
        FECTL.write(self.unit.registers(), EventControl::empty());
        Ok(())
    }
    /// Reads FECTL back: the unit's register writes are posted like any MMIO write, and
    /// a read of the same register block returns only after them.
    fn flush(&self, _i: u32) {
        let _ = FECTL.read(self.unit.registers());
    }
    fn read(&self, _i: u32) -> MsiMsg {
        let regs = self.unit.registers();
        MsiMsg {
            addr_lo: FEADDR.read(regs),
            addr_hi: FEUADDR.read(regs),
            data: FEDATA.read(regs),
        }
    }
}

/// The fault-event registers behind `virq`, if it is a unit's fault irq.
pub fn storage_of(virq: Virq) -> Option<FaultEventStorage> {
    units()
        .iter()
        .find(|u| u.virq() == Some(virq))
        .map(|u| FaultEventStorage { unit: u.unit })
}

/// What a unit's fault handler has seen.
pub struct UnitFaults {
    pub unit: &'static Unit,
    virq: AtomicU32,
    /// Fault records drained (every one, printed or not).
    pub total: AtomicU64,
    /// Fault events (interrupts) handled.
    pub events: AtomicU64,
    /// Interrupt-safe: the fault handler drains into it, and `iommu` and the tests read
    /// it with interrupts on (a fault interrupt on their CPU would spin on it forever).
    state: sluice_sync::IrqSpinLock<FaultLog>,
}

struct FaultLog {
    recent: VecDeque<(u64, Fault)>,
    limiter: FaultRateLimiter,
}

static UNITS: spin::Once<Vec<UnitFaults>> = spin::Once::new();

/// Every unit's fault state (empty without remapping).
pub fn units() -> &'static [UnitFaults] {
    UNITS.get().map_or(&[], |v| v.as_slice())
}

impl UnitFaults {
    pub fn virq(&self) -> Option<Virq> {
        match self.virq.load(Ordering::Acquire) {
            u32::MAX => None,
            v => Some(v as Virq),
        }
    }

    /// The last faults, oldest first: (time since boot in ns, fault).
    #[track_caller]
    pub fn recent(&self) -> Vec<(u64, Fault)> {
        self.state.lock().recent.iter().copied().collect()
    }

    /// Faults counted but not printed (rate limit).
    #[track_caller]
    pub fn suppressed(&self) -> u64 {
        self.state.lock().limiter.total_suppressed()
    }

    /// Drains the unit's fault records: returns how many there were. (The log's lock
    /// is recorded at the caller's site: the handler and the shell tell apart.)
    #[track_caller]
    pub fn drain(&self) -> usize {
        let records = sluice_vtd::fault::drain_fault_records(&mut self.unit.hw(), self.unit.cap);
        let now = crate::time::nanos_since_boot();
        let mut log = self.state.lock();
        let mut n = 0;
        for f in records.into_iter().filter_map(Fault::decode) {
            n += 1;
            self.total.fetch_add(1, Ordering::Relaxed);
            if log.recent.len() == RECENT {
                log.recent.pop_front();
            }
            log.recent.push_back((now, f));
            match log.limiter.check(now) {
                Verdict::Print { suppressed: 0 } => {
                    crate::warn!("DMAR unit {}: {}", self.unit.index, f)
                }
                Verdict::Print { suppressed } => crate::warn!(
                    "DMAR unit {}: {} ({} more faults not shown)",
                    self.unit.index,
                    f,
                    suppressed
                ),
                Verdict::Suppress => {}
            }
        }
        n
    }
}

fn on_fault(virq: Virq) -> IrqReturn {
    let Some(u) = units().iter().find(|u| u.virq() == Some(virq)) else {
        return IrqReturn::NotHandled;
    };
    u.events.fetch_add(1, Ordering::Relaxed);
    if u.drain() > 0 {
        IrqReturn::Handled
    } else {
        IrqReturn::NotHandled
    }
}

/// The CPUs a compatibility-format fault event can reach: APIC ids 0..=254 (QEMU reads
/// no upper destination bits).
fn reachable_cpus() -> CpuMask {
    let mut m = CpuMask::new();
    for cpu in 0..crate::smp::possible() {
        if crate::smp::apic_id(cpu).is_some_and(|a| a <= crate::smp::ap::MAX_DEVICE_APIC_ID) {
            m.set(cpu as CpuId);
        }
    }
    m
}

/// Gives every enabled unit its fault-event irq (after the interrupt core is up).
pub fn init() {
    let Ok(r) = crate::iommu::remapping() else {
        return;
    };
    let Some(group) = crate::irq::hierarchy::group(DomainKind::DmarMsi) else {
        return;
    };
    UNITS.call_once(|| {
        r.units
            .iter()
            .map(|unit| UnitFaults {
                unit,
                virq: AtomicU32::new(u32::MAX),
                total: AtomicU64::new(0),
                events: AtomicU64::new(0),
                state: sluice_sync::IrqSpinLock::new(
                    &crate::sync::order::DMAR_FAULT_LOG,
                    FaultLog {
                        recent: VecDeque::new(),
                        limiter: FaultRateLimiter::linux_default(),
                    },
                ),
            })
            .collect()
    });
    for u in units() {
        // Faults recorded before the irq existed would keep the event from firing.
        u.drain();
        let storage = FaultEventStorage { unit: u.unit };
        let dom = Arc::new(MsiDomain::new("DMAR-MSI", storage));
        let name = alloc::format!("DMAR-MSI-{}", u.unit.index);
        let r = crate::irq::with_core(|c| c.add_domain(&name, group, dom))
            .and_then(|r| r)
            .and_then(|id| {
                crate::irq::request_in(
                    id,
                    &IrqSource::Iommu {
                        unit: u.unit.index as u32,
                    },
                    &IrqAlloc::edge(reachable_cpus()),
                    "DMAR fault",
                    on_fault,
                )
            });
        match r {
            Ok(v) => u.virq.store(v, Ordering::Release),
            Err(e) => crate::error!("DMAR unit {}: fault-event irq: {}", u.unit.index, e),
        }
    }
}
