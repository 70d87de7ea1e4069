//! Affinity change cost, end to end: from the request to the hardware reprogrammed (for
//! a remapped irq, the IRTE stored, its cached copy invalidated and the wait descriptor
//! seen), for each path an irq of this machine takes — remapped, compatibility-format
//! MSI without and with masking, the I/O APIC — beside a floor in the same run: an irq
//! with only a vector, whose move is bookkeeping alone.
//!
//! Each sample moves the irq to the other of two CPUs (or to a new vector on the only
//! one), timed; then the irq is retriggered at its new target, which completes the move
//! the way a device interrupt would, so the next move is allowed. Only the request is
//! timed.

use alloc::string::String;
use alloc::vec::Vec;
use sluice_irq_core::desc::IrqReturn;
use sluice_irq_core::{CpuId, CpuMask, IrqError, Virq};

use super::stats::Summary;
use crate::irq::KernelApic;

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
    /// An I/O APIC entry: the two-step plan on the old CPU.
    IoApic,
}

impl Path {
    pub fn name(self) -> &'static str {
        match self {
            Path::VectorOnly => "floor",
            Path::Remapped => "remapped",
            Path::MsiNonMaskable => "msi-nonmaskable",
            Path::MsiMaskable => "msi-maskable",
            Path::IoApic => "ioapic",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Path::VectorOnly => "vector only (floor)",
            Path::Remapped => "remapped: IRTE + invalidation",
            Path::MsiNonMaskable => "MSI, not maskable: two-step",
            Path::MsiMaskable => "MSI, maskable: mask/write/unmask",
            Path::IoApic => "I/O APIC: two-step",
        }
    }
}

/// The path an irq's moves take, from its levels and its storage.
fn path_of(virq: Virq) -> Option<Path> {
    let levels = crate::irq::with_core(|c| c.irq_levels(virq)).ok()?.ok()?;
    if levels.len() == 1 {
        return Some(Path::VectorOnly);
    }
    if levels.iter().any(|l| l.chip == "INTEL-IR") {
        return Some(Path::Remapped);
    }
    match levels.first()?.chip.as_str() {
        "IO-APIC" => Some(Path::IoApic),
        "DMAR-MSI" | "PCI-MSIX" => Some(Path::MsiMaskable),
        "PCI-MSI" => Some(
            if crate::pci::irqs::stored_message(virq).is_some_and(|(_, m)| m.masked.is_some()) {
                Path::MsiMaskable
            } else {
                Path::MsiNonMaskable
            },
        ),
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

fn on_floor_irq(_virq: Virq) -> IrqReturn {
    IrqReturn::Handled
}

/// `count` timed moves of `virq` (ns each).
fn moves(virq: Virq, count: u64) -> Result<Vec<u64>, String> {
    let cpus: Vec<CpuId> = crate::smp::online_cpus()
        .map(|c| c as CpuId)
        .take(2)
        .collect();
    let original = crate::irq::with_core(|c| c.vector_irq(virq).map(|v| v.affinity))
        .map_err(|e| alloc::format!("{e}"))?
        .map_err(|e| alloc::format!("irq {virq}: {e}"))?;
    let mut samples = Vec::with_capacity(count as usize);
    let mut i = 0usize;
    let mut busy_since: Option<u64> = None;
    while (samples.len() as u64) < count {
        let cpu = cpus[i % cpus.len()];
        let t0 = crate::time::nanos_since_boot();
        match crate::irq::set_affinity(virq, &CpuMask::single(cpu), true) {
            Ok(_) => {
                samples.push(crate::time::nanos_since_boot() - t0);
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
    Ok(samples)
}

/// The figures: the floor, then each path this machine has.
pub fn run(count: u64) -> Result<Vec<(Path, Summary)>, String> {
    let (floor_irq, _) =
        crate::irq::request_vector_irq("bench affinity", CpuMask::single(0), on_floor_irq)
            .map_err(|e| alloc::format!("floor irq: {e}"))?;
    let floor = moves(floor_irq, count);
    let _ = crate::irq::free_irq(floor_irq);
    let mut out = alloc::vec![(Path::VectorOnly, Summary::of(&mut floor?))];
    for (path, virq) in representatives() {
        let mut s = moves(virq, count)?;
        out.push((path, Summary::of(&mut s)));
    }
    Ok(out)
}
