//! HPET-MSI: the HPET block's comparators as MSI sources, each one's FSB route the
//! storage of its message (`sluice_hpet::fsb`), behind one MSI domain per block named as
//! Linux names it — `HPET-MSI-n` under VECTOR, or `IR-HPET-MSI-n` under the remapping
//! unit whose DMAR scope names the block (source-id with SQ=3). Where it goes is the
//! plan's decision (`InterruptPlan::hpet_msi`); the kernel adds what only it knows.
//!
//! It is not offered, and `info` and `hpet-chain` say why, when:
//! * remapping is on and no DMAR scope names the HPET (QEMU's DMAR never does; some
//!   real PCs' neither): its messages could not be remapped, and compatibility-format
//!   ones are blocked — Linux gives up HPET-MSI there too;
//! * a scope names it but the machine is QEMU, whose HPET writes its messages straight
//!   into the APIC window, never through the IOMMU (REFERENCE.md): a remappable message
//!   would be taken for a compatibility one and misdelivered, so none is ever programmed;
//! * no comparator advertises FSB delivery (Tn_FSB_INT_DEL_CAP; in QEMU
//!   `-global hpet.msi=on` sets it).
//!
//! The domain is built at boot with the rest of the tree (`irq::hierarchy`); a
//! comparator becomes an irq when a driver asks (`request`), claiming it from the HPET.

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use sluice_acpi_tables::InterruptPlan;
use sluice_acpi_tables::hpet_msi::HpetMsi;
use sluice_acpi_tables::plan::DomainKind;
use sluice_hpet::fsb::{FsbStorage, Retrigger};
use sluice_irq_core::domain::DomainId;
use sluice_irq_core::msi::{MsiMsg, MsiStorage};
use sluice_irq_core::msidomain::MsiDomain;
use sluice_irq_core::{CpuMask, IrqAlloc, IrqCore, IrqSource, Virq};

use crate::apic::local::{self, IpiDest, IpiKind};
use crate::irq::Handler;
use crate::memory::mmio::Mmio;

/// The storage of a block's FSB routes, on the kernel's mapping of its registers.
pub type Storage = FsbStorage<Mmio, IpiRetrigger>;

/// A block's HPET-MSI domain, as built.
pub struct Block {
    /// HPET number (HPET table; DMAR scopes' enumeration id).
    pub number: u8,
    pub domain: DomainId,
    /// The domain's name (`HPET-MSI-0`, `IR-HPET-MSI-0`).
    pub name: String,
    pub placement: HpetMsi,
    pub dom: Arc<MsiDomain<Storage>>,
}

/// The mapped block's HPET-MSI, or why there is none; set when the tree is built.
static BLOCK: spin::Once<Result<Block, String>> = spin::Once::new();

/// Delivers a comparator's message once more (its match fell in a masked window: see
/// `fsb`) as an IPI of the message's vector to the message's destination — what the
/// message itself would have done. Under remapping the message names an IRTE, which
/// holds the vector and destination.
pub struct IpiRetrigger {
    /// The remapping unit the block's messages go through, if any.
    unit: Option<usize>,
}

impl IpiRetrigger {
    /// The (APIC id, vector) `msg` is delivered to.
    fn target(&self, msg: &MsiMsg) -> Option<(u32, u8)> {
        if let Some(c) = sluice_irq_core::msi::decode(msg) {
            return Some((c.dest, c.vector.0));
        }
        let unit = crate::iommu::unit(self.unit?)?;
        let m = sluice_vtd::RemappableMsi::decode(sluice_vtd::MsiMessage {
            address_lo: msg.addr_lo,
            address_hi: msg.addr_hi,
            data: msg.data,
        })
        .ok()?;
        let irte = unit.read_irte(m.index()?)?;
        irte.present()
            .then(|| (irte.destination(unit.eim), irte.vector()))
    }
}

impl Retrigger for IpiRetrigger {
    fn retrigger(&self, n: u32, msg: &MsiMsg) {
        match self.target(msg) {
            Some((apic, vector)) if apic == local::id() => local::self_ipi(vector),
            Some((apic, vector)) => {
                local::send_ipi(IpiDest::Apic(apic), IpiKind::Fixed(vector));
            }
            None => crate::warn!(
                "HPET-MSI: comparator {} matched while masked, but its message {:#x}/{:#x} names no target",
                n,
                msg.addr_lo,
                msg.data
            ),
        }
    }
}

/// The HPET number of the block this kernel mapped.
fn mapped_number() -> Option<u8> {
    crate::time::hpet::get()?;
    crate::acpi::platform().hpet.map(|e| e.number)
}

/// Builds HPET-MSI for the plan's domain `HPET-MSI-<number>` under `parent` (VECTOR, or
/// the unit's `INTEL-IR-u`), from the plan the tree is built from. `Err` says why not.
pub fn build(
    core: &IrqCore,
    plan: &InterruptPlan,
    number: u8,
    parent: DomainId,
) -> Result<DomainId, String> {
    if mapped_number() != Some(number) {
        return Err(format!(
            "HPET {number} is not the block this kernel drives (the HPET table's)"
        ));
    }
    let built = make(core, plan, number, parent);
    let r = built.as_ref().map(|b| b.domain).map_err(String::clone);
    BLOCK.call_once(|| built);
    r
}

fn make(
    core: &IrqCore,
    plan: &InterruptPlan,
    number: u8,
    parent: DomainId,
) -> Result<Block, String> {
    let h = crate::time::hpet::get().ok_or("the HPET is not mapped")?;
    let placement = plan.hpet_msi(number);
    let unit = match &placement {
        HpetMsi::Refused(why) => return Err(format!("{why}")),
        HpetMsi::Direct => None,
        HpetMsi::Remapped { unit, .. } => {
            if crate::qemu::present() {
                return Err(format!(
                    "a DMAR scope names HPET {number}, but under QEMU the HPET writes its messages straight into the APIC window, never through the IOMMU: a remappable message would be misdelivered"
                ));
            }
            Some(*unit)
        }
    };
    if !(0..h.comparators()).any(|n| h.fsb_capable(n)) {
        return Err(format!(
            "no comparator of HPET {number} can deliver through its FSB route (Tn_FSB_INT_DEL_CAP clear; in QEMU: -global hpet.msi=on)"
        ));
    }
    let name = placement.domain_name(number).ok_or("refused")?;
    let chip = placement.chip_name().ok_or("refused")?;
    let storage = FsbStorage::new(h.regs(), h.comparators(), IpiRetrigger { unit });
    let dom = Arc::new(MsiDomain::new(chip, storage));
    let domain = core
        .add_domain(&name, parent, dom.clone())
        .map_err(|e| format!("{name}: {e}"))?;
    Ok(Block {
        number,
        domain,
        name,
        placement,
        dom,
    })
}

/// The block's HPET-MSI, or why it is not offered.
pub fn status() -> Result<&'static Block, String> {
    match BLOCK.get() {
        Some(Ok(b)) => return Ok(b),
        Some(Err(why)) => return Err(why.clone()),
        None => {}
    }
    let Some(number) = mapped_number() else {
        return Err(String::from(
            "this machine has no usable HPET (no HPET table, or its registers are out of spec)",
        ));
    };
    let Some(tree) = crate::irq::hierarchy::built() else {
        return Err(String::from("the interrupt core is not up"));
    };
    // The plan had no HPET-MSI domain for it: the plan says why.
    Err(match tree.plan.hpet_msi(number) {
        HpetMsi::Refused(why) => format!("{why}"),
        _ => format!("the plan places HPET {number}'s MSI domain, but it was not built"),
    })
}

/// The comparators that can deliver through their FSB route, as a bit mask.
pub fn fsb_comparators() -> u32 {
    crate::time::hpet::get().map_or(0, |h| {
        (0..h.comparators())
            .filter(|&n| h.fsb_capable(n))
            .fold(0, |m, n| m | 1 << n)
    })
}

/// The `info` line.
pub fn info_text() -> String {
    match status() {
        Ok(b) => {
            let via = match &b.placement {
                HpetMsi::Remapped { unit, source } => format!(
                    "{}, IRTEs validating source-id {} with SQ=3",
                    DomainKind::IntelIr { unit: *unit },
                    source.source_id
                ),
                _ => format!("{}, compatibility-format messages", DomainKind::Vector),
            };
            let mut list = String::new();
            let mask = fsb_comparators();
            for n in (0..32).filter(|n| mask & (1 << n) != 0) {
                if !list.is_empty() {
                    list.push(',');
                }
                list.push_str(&format!("{n}"));
            }
            format!(
                "{} under {via}; comparators with FSB delivery: {list}; {} retriggered after a match while masked",
                b.name,
                b.dom.storage().retriggered()
            )
        }
        Err(why) => format!("not offered: {why}"),
    }
}

/// Makes comparator `n` an irq of the block's HPET-MSI domain on `affinity`, started
/// with `handler`: the comparator is claimed, set up one-shot with FSB delivery, its
/// route written and its interrupt enabled by the core as the irq starts.
pub fn request(n: u32, affinity: &CpuMask, name: &str, handler: Handler) -> Result<Virq, String> {
    let b = status()?;
    let h = crate::time::hpet::get().ok_or("no HPET")?;
    if !h.fsb_capable(n) {
        return Err(format!(
            "comparator {n} cannot deliver through its FSB route"
        ));
    }
    if !h.claim(n) {
        return Err(format!("comparator {n} is in use"));
    }
    let r = h.setup_fsb_oneshot(n).map_err(String::from).and_then(|()| {
        let source = IrqSource::Hpet {
            block: b.number,
            comparator: n as u8,
        };
        crate::irq::request_in(b.domain, &source, &IrqAlloc::edge(*affinity), name, handler)
            .map_err(|e| format!("{}: comparator {n}: {e}", b.name))
    });
    if r.is_err() {
        h.release(n);
    }
    r
}

/// What comparator `n`'s FSB route holds now, read back from the HPET.
pub fn stored(n: u32) -> Option<MsiMsg> {
    status().ok().map(|b| b.dom.storage().read(n))
}
