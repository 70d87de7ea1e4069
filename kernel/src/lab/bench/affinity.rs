//! Affinity change cost, end to end: from the request to the hardware reprogrammed (for
//! a remapped irq, the IRTE stored, its cached copy invalidated and the wait descriptor
//! seen), for each path an irq of this machine takes — remapped, compatibility-format
//! MSI without and with masking, a multi-message MSI block, the I/O APIC.
//!
//! Each path's floor is the raw register writes of that path, made in the same run by
//! this file without the interrupt core, with the values the hardware already holds (so
//! nothing moves): the IRTE stored and invalidated; address low, high and data written,
//! between a mask and an unmask where the path masks; the RTE's two halves. The figure
//! over its floor is what the core adds: the vector matrix, the plan, the descriptor
//! locks, and for the two-step paths the call-function IPI that runs the plan on the old
//! CPU. `affinity-vector` is a move of an irq with only a vector (bookkeeping alone,
//! no floor).
//!
//! Each sample moves the irq to the other of two CPUs (or to a new vector on the only
//! one), timed; then the irq is retriggered at its new target, which completes the move
//! the way a device interrupt would, so the next move is allowed. Only the request is
//! timed. Figure and floor samples alternate.

use alloc::string::String;
use alloc::vec::Vec;
use sluice_acpi_tables::plan::DomainKind;
use sluice_irq_core::desc::IrqReturn;
use sluice_irq_core::ioapic::RteStorage;
use sluice_irq_core::msi::{MsiMsg, MsiStorage};
use sluice_irq_core::{CpuId, CpuMask, IrqError, Virq};

use super::stats::Summary;
use crate::irq::KernelApic;
use crate::irq::hierarchy;

/// What kind of hardware an irq's move rewrites.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// Only the vector level (no device): the floor.
    VectorOnly,
    /// An IRTE (interrupt remapping).
    Remapped,
    /// A compatibility-format MSI the device cannot mask: the two-step plan on the old CPU.
    MsiNonMaskable,
    /// A compatibility-format MSI with a mask: mask, write, unmask.
    MsiMaskable,
    /// A multi-message MSI block (one message for 2^k vectors): the whole block moves.
    MultiMsi,
    /// An I/O APIC entry: the two-step plan on the old CPU.
    IoApic,
}

impl Path {
    pub fn name(self) -> &'static str {
        match self {
            Path::VectorOnly => "vector",
            Path::Remapped => "remapped",
            Path::MsiNonMaskable => "msi-nonmaskable",
            Path::MsiMaskable => "msi-maskable",
            Path::MultiMsi => "msi-multi",
            Path::IoApic => "ioapic",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Path::VectorOnly => "vector only (bookkeeping)",
            Path::Remapped => "remapped: IRTE + invalidation",
            Path::MsiNonMaskable => "MSI, not maskable: two-step",
            Path::MsiMaskable => "MSI, maskable: mask/write/unmask",
            Path::MultiMsi => "multi-MSI block: two-step",
            Path::IoApic => "I/O APIC: two-step",
        }
    }
}

/// The path an irq's moves take, from its levels and its storage.
fn path_of(virq: Virq) -> Option<Path> {
    let kinds: Vec<Option<DomainKind>> = hierarchy::levels_with_kinds(virq)
        .ok()?
        .into_iter()
        .map(|(_, k)| k)
        .collect();
    if kinds.len() == 1 {
        return Some(Path::VectorOnly);
    }
    if kinds
        .iter()
        .any(|k| matches!(k, Some(DomainKind::IntelIr { .. })))
    {
        return Some(Path::Remapped);
    }
    match kinds.first()?.as_ref()? {
        DomainKind::IoApic { .. } => Some(Path::IoApic),
        DomainKind::DmarMsi => Some(Path::MsiMaskable),
        // MSI-X storage says maskable and never multi-vector.
        DomainKind::PciMsi => crate::irq::domains::pci_msi::with_storage(virq, |s, _, held| {
            if s.caps().multi_vector && held > 1 {
                Path::MultiMsi
            } else if s.caps().maskable {
                Path::MsiMaskable
            } else {
                Path::MsiNonMaskable
            }
        }),
        _ => None,
    }
}

/// One irq per path this machine has, the first found in irq order.
pub fn representatives() -> Vec<(Path, Virq)> {
    let descs = crate::irq::with_core(|c| c.descs()).unwrap_or_default();
    let mut out: Vec<(Path, Virq)> = Vec::new();
    for d in descs.iter().filter(|d| d.action.is_some()) {
        if let Some(p) = path_of(d.virq)
            && p != Path::VectorOnly
            && !out.iter().any(|(q, _)| *q == p)
        {
            out.push((p, d.virq));
        }
    }
    out.sort_by_key(|(p, _)| *p as u8);
    out
}

fn on_vector_irq(_virq: Virq) -> IrqReturn {
    IrqReturn::Handled
}

/// `count` timed moves of `virq` (ns each), and as many timed `raw` writes between them.
fn moves(virq: Virq, count: u64, raw: Option<&RawWrites>) -> Result<(Vec<u64>, Vec<u64>), String> {
    let cpus: Vec<CpuId> = crate::smp::online_cpus()
        .map(|c| c as CpuId)
        .take(2)
        .collect();
    let original = crate::irq::with_core(|c| c.vector_irq(virq).map(|v| v.affinity))
        .map_err(|e| alloc::format!("{e}"))?
        .map_err(|e| alloc::format!("irq {virq}: {e}"))?;
    let mut samples = Vec::with_capacity(count as usize);
    let mut floor = Vec::with_capacity(count as usize);
    let mut i = 0usize;
    let mut busy_since: Option<u64> = None;
    while (samples.len() as u64) < count {
        let cpu = cpus[i % cpus.len()];
        let t0 = crate::time::nanos_since_boot();
        match crate::irq::set_affinity(virq, &CpuMask::single(cpu), true) {
            Ok(_) => {
                samples.push(crate::time::nanos_since_boot() - t0);
                if let Some(raw) = raw {
                    floor.push(raw.timed()?);
                }
                i += 1;
                busy_since = None;
                // Complete the move as a device interrupt at the new target would.
                let _ = crate::irq::with_core(|c| c.retrigger(virq, &mut KernelApic));
            }
            Err(IrqError::Busy) => {
                // A move waits for its first interrupt (one made before this run, say):
                // give it one. Or its cleanup is pending: wait.
                let now = crate::time::nanos_since_boot();
                if now - *busy_since.get_or_insert(now) > 1_000_000_000 {
                    return Err(alloc::format!("irq {virq}: a move never completed"));
                }
                let _ = crate::irq::with_core(|c| c.retrigger(virq, &mut KernelApic));
                crate::time::spin_for_ns(10_000);
            }
            Err(e) => return Err(alloc::format!("irq {virq}: {e}")),
        }
    }
    // Leave it where its affinity said, the move completed, as far as the core lets us.
    let t0 = crate::time::nanos_since_boot();
    while let Err(IrqError::Busy) = crate::irq::set_affinity(virq, &original, false) {
        if crate::time::nanos_since_boot() - t0 > 1_000_000_000 {
            break;
        }
        let _ = crate::irq::with_core(|c| c.retrigger(virq, &mut KernelApic));
        crate::time::spin_for_ns(10_000);
    }
    let _ = crate::irq::with_core(|c| c.retrigger(virq, &mut KernelApic));
    Ok((samples, floor))
}

/// The registers one path's move rewrites, and the values they hold now.
enum RawWrites {
    Irte {
        unit: &'static crate::iommu::unit::Unit,
        index: u16,
        entry: sluice_vtd::Irte,
    },
    Msi {
        virq: Virq,
        message: MsiMsg,
        masked: bool,
    },
    FaultEvent {
        storage: crate::irq::domains::dmar_msi::FaultEventStorage,
        message: MsiMsg,
    },
    Rte {
        ioapic: &'static crate::irq::domains::ioapic::IoApic,
        pin: u32,
        entry: sluice_irq_core::ioapic::Rte,
    },
}

/// Writes `m` to message `index` of `s` as a move does: one write per register, masked
/// around them if `masked`.
fn write_message(s: &dyn MsiStorage, index: u32, m: &MsiMsg, masked: bool) {
    if masked {
        let _ = s.mask(index);
    }
    s.write_addr_lo(index, m.addr_lo);
    if s.caps().addr64 {
        s.write_addr_hi(index, m.addr_hi);
    }
    s.write_data(index, m.data);
    if masked {
        let _ = s.unmask(index);
    }
}

impl RawWrites {
    /// What `virq`'s moves on `path` write, read back from the hardware.
    fn of(path: Path, virq: Virq) -> Result<RawWrites, String> {
        let levels = crate::irq::with_core(|c| c.irq_levels(virq))
            .map_err(|e| alloc::format!("{e}"))?
            .map_err(|e| alloc::format!("irq {virq}: {e}"))?;
        let first = levels.first().ok_or("no levels")?;
        // The plan domain each level was built for, by the core's domain id.
        let kinds: Vec<_> = crate::irq::with_core(|c| c.desc(virq))
            .map_err(|e| alloc::format!("{e}"))?
            .map_err(|e| alloc::format!("irq {virq}: {e}"))?
            .levels
            .iter()
            .map(|l| (crate::irq::hierarchy::kind_of(l.domain), l.hwirq))
            .collect();
        let masked = path == Path::MsiMaskable;
        match path {
            Path::Remapped => {
                let (unit, hwirq) = kinds
                    .iter()
                    .find_map(|&(k, hwirq)| match k {
                        Some(DomainKind::IntelIr { unit }) => Some((unit, hwirq)),
                        _ => None,
                    })
                    .ok_or("no INTEL-IR level")?;
                let unit = crate::iommu::unit(unit).ok_or_else(|| {
                    alloc::format!("no unit behind {}", DomainKind::IntelIr { unit })
                })?;
                let index = u16::try_from(hwirq).map_err(|_| "IRTE index out of range")?;
                let entry = unit.read_irte(index).ok_or("IRTE index beyond the table")?;
                Ok(RawWrites::Irte { unit, index, entry })
            }
            Path::IoApic => {
                let ioapic = match kinds.first() {
                    Some(&(Some(DomainKind::IoApic { id }), _)) => {
                        crate::irq::domains::ioapic::by_id(id)
                    }
                    _ => None,
                }
                .ok_or_else(|| alloc::format!("no I/O APIC behind {}", first.domain))?;
                let pin = first.hwirq as u32;
                Ok(RawWrites::Rte {
                    ioapic,
                    pin,
                    entry: ioapic.read_rte(pin),
                })
            }
            _ if first.chip == "DMAR-MSI" => {
                let storage = crate::irq::domains::dmar_msi::storage_of(virq)
                    .ok_or("no fault-event registers")?;
                let message = storage.read(0);
                Ok(RawWrites::FaultEvent { storage, message })
            }
            _ => {
                let message = crate::irq::domains::pci_msi::with_storage(virq, |s, i, _| s.read(i))
                    .ok_or_else(|| alloc::format!("irq {virq}: no PCI storage"))?;
                Ok(RawWrites::Msi {
                    virq,
                    message,
                    masked,
                })
            }
        }
    }

    /// The writes, timed (ns).
    fn timed(&self) -> Result<u64, String> {
        crate::irq::without_moves(|| {
            let t0 = crate::time::nanos_since_boot();
            match self {
                RawWrites::Irte { unit, index, entry } => unit
                    .write_irte(*index, *entry)
                    .map_err(|e| alloc::format!("IRTE {index}: {e:?}"))?,
                RawWrites::Msi {
                    virq,
                    message,
                    masked,
                } => crate::irq::domains::pci_msi::with_storage(*virq, |s, i, _| {
                    write_message(s, i, message, *masked)
                })
                .ok_or_else(|| alloc::format!("irq {virq}: no PCI storage"))?,
                RawWrites::FaultEvent { storage, message } => {
                    write_message(storage, 0, message, true)
                }
                RawWrites::Rte { ioapic, pin, entry } => {
                    ioapic.write_high(*pin, entry.high);
                    ioapic.write_low(*pin, entry.low);
                }
            }
            Ok(crate::time::nanos_since_boot() - t0)
        })
    }
}

/// The figures: the vector-only move, then each path this machine has beside its raw
/// writes.
pub fn run(count: u64) -> Result<Vec<(Path, Option<Summary>, Summary)>, String> {
    let (vector_irq, _) =
        crate::irq::request_vector_irq("bench affinity", CpuMask::single(0), on_vector_irq)
            .map_err(|e| alloc::format!("vector-only irq: {e}"))?;
    let vector = moves(vector_irq, count, None);
    let _ = crate::irq::free_irq(vector_irq);
    let mut out = alloc::vec![(Path::VectorOnly, None, Summary::of(&mut vector?.0))];
    for (path, virq) in representatives() {
        let raw = RawWrites::of(path, virq)?;
        let (mut s, mut f) = moves(virq, count, Some(&raw))?;
        out.push((path, Some(Summary::of(&mut f)), Summary::of(&mut s)));
    }
    Ok(out)
}
