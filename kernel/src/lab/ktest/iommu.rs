//! Interrupt remapping's checks, triggered for real: edu's DMA engine writes a 4-byte
//! interrupt request to 0xFEEx_xxxx (a device asking for an interrupt by DMA, which
//! QEMU's unit remaps without a source-id to check), naming entries that are beyond the
//! table, not present, or malformed; and edu's own MSI is sent through an entry whose
//! source-id names another device. Each is blocked, recorded with its reason, and the
//! unit's fault interrupt arrives and is decoded. Skipped without remapping or edu.

use alloc::string::String;
use core::sync::atomic::Ordering;
use sluice_acpi_tables::plan::DomainKind;
use sluice_vtd::{Irte, RemappableMsi};

use super::{Test, TestResult};
use crate::lab::devices::raiser::Raiser;
use crate::{check, ktest};

pub static TESTS: &[Test] = &[
    ktest!(interrupt_request_beyond_the_table_faults_0x21),
    ktest!(interrupt_request_to_an_absent_entry_faults_0x22),
    ktest!(entry_with_reserved_bits_faults_0x24),
    ktest!(fault_processing_disable_suppresses_the_record),
    ktest!(msi_from_the_wrong_source_is_blocked_0x26),
];

/// What the tests need: remapping on, an edu, and the fault irq of the unit covering it.
struct Setup {
    edu: &'static crate::lab::devices::edu::Edu,
    faults: &'static crate::irq::domains::dmar_msi::UnitFaults,
}

fn setup() -> Result<Setup, String> {
    if crate::iommu::remapping().is_err() {
        crate::skip!("interrupt remapping is off");
    }
    let Some(edu) = crate::lab::devices::edu::instances().first() else {
        crate::skip!("no edu device");
    };
    let unit = crate::iommu::unit_of_pci(edu.device()).ok_or("no unit covers edu")?;
    let faults = crate::irq::domains::dmar_msi::units()
        .iter()
        .find(|f| f.unit.index == unit)
        .ok_or("the unit has no fault state")?;
    faults.virq().ok_or("the unit has no fault irq")?;
    Ok(Setup { edu, faults })
}

/// The interrupt request a device writes to reach IRTE `handle` (SHV, subhandle 0).
fn request(handle: u16) -> (u64, u32) {
    let m = RemappableMsi::shv(handle).compose();
    (u64::from(m.address_lo), m.data)
}

/// A free entry near the end of the table (nothing allocates from the top).
fn free_entry(s: &Setup) -> Result<u16, String> {
    let u = s.faults.unit;
    let index = u16::try_from(u.table_entries - 2).map_err(|_| "table too large")?;
    let entry = u.read_irte(index).ok_or("entry beyond the table")?;
    check!(!entry.present(), "entry {} is in use", index);
    Ok(index)
}

/// Waits (bounded) for the fault irq to have run `events` times and a fault with
/// `reason` to be among the recent ones; returns that fault's description.
fn expect_fault(s: &Setup, events_before: u64, reason: u8, irte: Option<u16>) -> TestResult {
    let t0 = crate::time::nanos_since_boot();
    loop {
        let recent = s.faults.recent();
        let hit = recent
            .iter()
            .rev()
            .find(|(_, f)| f.reason == reason && (irte.is_none() || f.irte_index == irte));
        if let Some((_, f)) = hit
            && s.faults.events.load(Ordering::SeqCst) > events_before
        {
            crate::println!("  fault seen: {}", f);
            return Ok(());
        }
        if crate::time::nanos_since_boot() - t0 > 1_000_000_000 {
            return Err(alloc::format!(
                "no fault {:#04x} (IRTE {:?}) within 1 s; fault events {} -> {}; recent {:?}",
                reason,
                irte,
                events_before,
                s.faults.events.load(Ordering::SeqCst),
                recent
            ));
        }
        core::hint::spin_loop();
    }
}

fn interrupt_request_beyond_the_table_faults_0x21() -> TestResult {
    let s = setup()?;
    let entries = s.faults.unit.table_entries;
    if entries >= 65536 {
        crate::skip!(
            "a 16-bit handle cannot lie beyond a 65536-entry table (opt/sluice/irte-entries sizes it)"
        );
    }
    let handle = u16::try_from(entries + 5).map_err(|_| "table too large")?;
    let before = s.faults.events.load(Ordering::SeqCst);
    let (addr, data) = request(handle);
    s.edu.dma_write_word(addr, data)?;
    expect_fault(
        &s,
        before,
        sluice_vtd::fault::reason::IR_INDEX_BEYOND_TABLE,
        Some(handle),
    )
}

fn interrupt_request_to_an_absent_entry_faults_0x22() -> TestResult {
    let s = setup()?;
    let index = free_entry(&s)?;
    let before = s.faults.events.load(Ordering::SeqCst);
    let (addr, data) = request(index);
    s.edu.dma_write_word(addr, data)?;
    expect_fault(
        &s,
        before,
        sluice_vtd::fault::reason::IR_NOT_PRESENT,
        Some(index),
    )
}

fn entry_with_reserved_bits_faults_0x24() -> TestResult {
    let s = setup()?;
    let index = free_entry(&s)?;
    let u = s.faults.unit;
    // Present, vector 0x40, reserved bit 12 set, no source check.
    let bad = Irte::from_halves(1 | 0x40 << 16 | 1 << 12, 0);
    u.write_irte(index, bad)
        .map_err(|e| alloc::format!("{e}"))?;
    let before = s.faults.events.load(Ordering::SeqCst);
    let (addr, data) = request(index);
    let r = s.edu.dma_write_word(addr, data).and_then(|()| {
        expect_fault(
            &s,
            before,
            sluice_vtd::fault::reason::IR_IRTE_RESERVED,
            Some(index),
        )
    });
    u.write_irte(index, Irte::NOT_PRESENT)
        .map_err(|e| alloc::format!("{e}"))?;
    r
}

fn fault_processing_disable_suppresses_the_record() -> TestResult {
    let s = setup()?;
    let index = free_entry(&s)?;
    let u = s.faults.unit;
    // Not present, but Fault Processing Disable: the request is blocked, unrecorded.
    u.write_irte(index, Irte::from_halves(1 << 1, 0))
        .map_err(|e| alloc::format!("{e}"))?;
    let total = s.faults.total.load(Ordering::SeqCst);
    let (addr, data) = request(index);
    let r = s.edu.dma_write_word(addr, data);
    // Give a fault, if one were (wrongly) recorded, the time to arrive.
    crate::time::spin_for_ns(200_000_000);
    s.faults.drain();
    u.write_irte(index, Irte::NOT_PRESENT)
        .map_err(|e| alloc::format!("{e}"))?;
    r?;
    check!(
        s.faults.total.load(Ordering::SeqCst) == total,
        "a fault was recorded for an FPD entry: {:?}",
        s.faults.recent().last()
    );
    Ok(())
}

fn msi_from_the_wrong_source_is_blocked_0x26() -> TestResult {
    let s = setup()?;
    let virq = s.edu.counts()[0].virq().ok_or("edu has no irq")?;
    let levels =
        crate::irq::hierarchy::levels_with_kinds(virq).map_err(|e| alloc::format!("{e}"))?;
    let (ir, _) = levels
        .iter()
        .find(|(_, k)| matches!(k, Some(DomainKind::IntelIr { .. })))
        .ok_or("edu's irq is not remapped")?;
    let index = u16::try_from(ir.hwirq).map_err(|_| "bad IRTE index")?;
    let u = s.faults.unit;
    let good = u.read_irte(index).ok_or("edu's entry beyond the table")?;
    // The same entry, validating 00:1f.0 (the ISA bridge) instead of edu.
    let wrong = Irte::from_halves(good.low(), (good.high() & !0xffff) | 0x00f8);
    u.write_irte(index, wrong)
        .map_err(|e| alloc::format!("{e}"))?;
    let handled = s.edu.counts()[0].handled.load(Ordering::SeqCst);
    let before = s.faults.events.load(Ordering::SeqCst);
    let raised = s.edu.raise(0);
    let fault = raised.and_then(|()| {
        expect_fault(
            &s,
            before,
            sluice_vtd::fault::reason::IR_SOURCE_ID,
            Some(index),
        )
    });
    let blocked = s.edu.counts()[0].handled.load(Ordering::SeqCst) == handled;
    u.write_irte(index, good)
        .map_err(|e| alloc::format!("{e}"))?;
    fault?;
    check!(
        blocked,
        "the interrupt was delivered despite the wrong source-id"
    );
    // With the right entry back, the device's interrupts arrive again (the blocked
    // one stays lost: edu holds its cause, a new raise sends a new message).
    s.edu.raise(0)?;
    let t0 = crate::time::nanos_since_boot();
    while s.edu.counts()[0].handled.load(Ordering::SeqCst) == handled {
        check!(
            crate::time::nanos_since_boot() - t0 < 500_000_000,
            "edu's interrupt did not come back after the entry was restored"
        );
        core::hint::spin_loop();
    }
    Ok(())
}
