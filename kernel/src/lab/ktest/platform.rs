//! Boot-platform tests: exceptions, ACPI against what QEMU itself reports, APIC mode,
//! timer calibration, and the COM1 receive interrupt through the I/O APIC.

use core::sync::atomic::Ordering;
use sluice_acpi_tables::plan::DomainKind;

use crate::lab::ktest::{Test, TestResult};
use crate::{check, ktest};

pub static TESTS: &[Test] = &[
    ktest!(breakpoint_is_caught_and_resumed),
    ktest!(page_fault_is_caught_and_reported),
    ktest!(madt_cpu_count_matches_qemu),
    ktest!(ioapic_matches_hardware),
    ktest!(apic_mode_follows_cpuid),
    ktest!(apic_mode_choice_for_each_firmware_hand_over),
    ktest!(lapic_tick_rate_within_2_percent_of_hpet),
    ktest!(com1_byte_raises_ioapic_interrupt),
    ktest!(s5_package_is_decoded),
    ktest!(dmar_describes_qemus_iommu_or_plan_says_why_not),
];

fn breakpoint_is_caught_and_resumed() -> TestResult {
    let before = crate::arch::idt::BREAKPOINTS.load(Ordering::SeqCst);
    x86_64::instructions::interrupts::int3();
    let after = crate::arch::idt::BREAKPOINTS.load(Ordering::SeqCst);
    check!(
        after == before + 1,
        "breakpoint count went {} -> {}",
        before,
        after
    );
    Ok(())
}

fn page_fault_is_caught_and_reported() -> TestResult {
    // Canonical, lower half, far from anything the bootloader maps.
    const UNMAPPED: u64 = 0x0000_7ead_beef_0000;
    check!(
        !crate::memory::is_mapped(UNMAPPED),
        "test address {:#x} is mapped",
        UNMAPPED
    );
    match crate::arch::idt::probe_read(UNMAPPED) {
        Ok(v) => Err(alloc::format!(
            "read of unmapped {UNMAPPED:#x} returned {v:#x} instead of faulting"
        )),
        Err((vector, error, addr)) => {
            check!(vector == 14, "expected #PF (14), got vector {}", vector);
            check!(addr == UNMAPPED, "CR2 {:#x} != {:#x}", addr, UNMAPPED);
            check!(
                error & 1 == 0,
                "error code {:#x} claims a protection fault on a missing page",
                error
            );
            check!(error & 2 == 0, "error code {:#x} claims a write", error);
            Ok(())
        }
    }
}

fn madt_cpu_count_matches_qemu() -> TestResult {
    let Some(qemu) = crate::qemu::cpu_count() else {
        crate::skip!("not running under QEMU (no fw_cfg)");
    };
    let madt = crate::acpi::platform().cpus.len();
    check!(
        madt == usize::from(qemu),
        "MADT lists {} usable CPUs, QEMU has {}",
        madt,
        qemu
    );
    Ok(())
}

fn ioapic_matches_hardware() -> TestResult {
    if !crate::qemu::present() {
        crate::skip!("compares with QEMU q35's I/O APIC; this is not QEMU");
    }
    let p = crate::acpi::platform();
    check!(
        p.io_apics.len() == 1,
        "QEMU q35 has one I/O APIC; MADT lists {}",
        p.io_apics.len()
    );
    let e = p.io_apics[0];
    check!(
        e.address == 0xfec0_0000,
        "I/O APIC at {:#x}, QEMU puts it at 0xfec00000",
        e.address
    );
    check!(e.gsi_base == 0, "GSI base {}, expected 0", e.gsi_base);
    let io = crate::irq::domains::ioapic::all()
        .first()
        .ok_or("I/O APIC not initialised")?;
    check!(
        io.hw_id() == e.id,
        "chip reports id {}, MADT says {}",
        io.hw_id(),
        e.id
    );
    check!(
        io.pins() == 24,
        "QEMU's I/O APIC has 24 pins; chip reports {}",
        io.pins()
    );
    check!(
        io.version() == 0x20,
        "QEMU's I/O APIC version is 0x20; chip reports {:#x}",
        io.version()
    );
    Ok(())
}

/// x2APIC exactly when CPUID offers it, unless the DMAR opts out; always when the
/// firmware handed over in x2APIC mode.
fn apic_mode_follows_cpuid() -> TestResult {
    use crate::apic::local::{self, Mode, ModeReason};
    let by_firmware = matches!(
        local::mode_reason(),
        Some(ModeReason::EnabledByFirmware { .. })
    );
    let want = if by_firmware || (local::cpu_has_x2apic() && !crate::iommu::x2apic_opt_out()) {
        Mode::X2Apic
    } else {
        Mode::XApic
    };
    check!(
        local::mode() == Some(want),
        "APIC mode {:?}, CPUID says {:?}",
        local::mode(),
        want
    );
    // IA32_APIC_BASE must agree with what we think we use (SDM vol. 3, 11.12.1).
    // SAFETY: reading IA32_APIC_BASE has no side effect.
    let base = unsafe { x86_64::registers::model_specific::Msr::new(0x1b).read() };
    check!(
        (base & (1 << 10) != 0) == (want == Mode::X2Apic),
        "IA32_APIC_BASE {:#x} disagrees",
        base
    );
    check!(
        local::id() == crate::arch::cpu::current().apic_id,
        "APIC id changed"
    );
    Ok(())
}

/// The tick period is measured as the median interval between consecutive ticks,
/// timestamped with the HPET. Under TCG a vCPU that is not scheduled for longer than a
/// period gets two periods merged into one interrupt (the IRR holds one bit per vector),
/// so a raw count undercounts on a loaded host; the median is immune to that and still
/// fails if the timer is programmed or calibrated wrong.
/// Without an HPET (PCs whose firmware hides it) the ticks are timed with the TSC,
/// which was calibrated against the PIT: that still checks the tick's programming
/// (mode, divider, initial count) against an independent oscillator.
fn lapic_tick_rate_within_2_percent_of_hpet() -> TestResult {
    let hpet = crate::time::hpet::get();
    let now_ns = || match hpet {
        Some(h) => h.ticks_to_ns(h.counter()),
        None => crate::time::nanos_since_boot(),
    };
    let clock = if hpet.is_some() { "HPET" } else { "TSC" };
    const SAMPLES: usize = 101;
    let ticks = &crate::arch::cpu::current().ticks;
    let mut stamps = [0u64; SAMPLES];
    let mut last = ticks.load(Ordering::SeqCst);
    let mut n = 0;
    let deadline = now_ns() + 10_000_000_000;
    while n < SAMPLES {
        x86_64::instructions::hlt();
        let now = ticks.load(Ordering::SeqCst);
        if now != last {
            stamps[n] = now_ns();
            last = now;
            n += 1;
        }
        check!(
            now_ns() < deadline,
            "only {} ticks in 10 s of {} time",
            n,
            clock
        );
    }
    let mut intervals = [0u64; SAMPLES - 1];
    for i in 0..SAMPLES - 1 {
        intervals[i] = stamps[i + 1] - stamps[i];
    }
    let nominal_ns = 1_000_000_000 / crate::time::HZ;
    let merged = intervals
        .iter()
        .filter(|&&d| d > nominal_ns * 3 / 2)
        .count();
    intervals.sort_unstable();
    let median = intervals[intervals.len() / 2];
    let err_pct = (median as f64 - nominal_ns as f64).abs() * 100.0 / nominal_ns as f64;
    crate::log!(
        "tick period against the {}: median {} us over {} intervals (nominal {} us, error {:.2}%), {} merged by host scheduling",
        clock,
        median / 1000,
        intervals.len(),
        nominal_ns / 1000,
        err_pct,
        merged
    );
    check!(
        err_pct <= 2.0,
        "median tick period {} ns, nominal {} ns ({:.2}% off)",
        median,
        nominal_ns,
        err_pct
    );
    Ok(())
}

/// The mode decision for every hand-over firmware can make (IA32_APIC_BASE's EN and
/// EXTD bits, CPUID's x2APIC bit, the DMAR's X2APIC_OPT_OUT).
fn apic_mode_choice_for_each_firmware_hand_over() -> TestResult {
    use crate::apic::local::{Mode, ModeReason, choose_mode};
    const EN: u64 = 1 << 11;
    const EXTD: u64 = 1 << 10;
    let base = 0xfee0_0000;
    let cases = [
        (base | EN, true, false, Mode::X2Apic, ModeReason::CpuHasIt),
        (base | EN, false, false, Mode::XApic, ModeReason::CpuLacksIt),
        (
            base | EN,
            true,
            true,
            Mode::XApic,
            ModeReason::FirmwareOptOut,
        ),
        (base, true, true, Mode::XApic, ModeReason::FirmwareOptOut),
        (
            base | EN | EXTD,
            true,
            false,
            Mode::X2Apic,
            ModeReason::EnabledByFirmware {
                opt_out_ignored: false,
            },
        ),
        (
            base | EN | EXTD,
            true,
            true,
            Mode::X2Apic,
            ModeReason::EnabledByFirmware {
                opt_out_ignored: true,
            },
        ),
    ];
    for (msr, has, opt_out, mode, reason) in cases {
        let got = choose_mode(msr, has, opt_out);
        check!(
            got == (mode, reason),
            "APIC base {:#x}, CPUID x2APIC {}, opt-out {}: chose {:?}",
            msr,
            has,
            opt_out,
            got
        );
    }
    Ok(())
}

fn com1_byte_raises_ioapic_interrupt() -> TestResult {
    let virq = crate::console::com1_virq().ok_or("COM1 has no interrupt routed")?;
    let levels =
        crate::irq::hierarchy::levels_with_kinds(virq).map_err(|e| alloc::format!("{e}"))?;
    check!(
        levels
            .first()
            .is_some_and(|(_, k)| matches!(k, Some(DomainKind::IoApic { .. }))),
        "COM1's outer level is not an I/O APIC's: {:?}",
        levels
    );
    let count =
        || crate::irq::with_core(|c| c.desc(virq).map(|d| d.total()).unwrap_or(0)).unwrap_or(0);
    let before = count();
    crate::console::serial::set_loopback(true);
    crate::console::serial::write_bytes(b"Z");
    let deadline = crate::time::nanos_since_boot() + 1_000_000_000;
    while count() == before && crate::time::nanos_since_boot() < deadline {
        x86_64::instructions::hlt();
    }
    crate::console::serial::set_loopback(false);
    check!(
        count() > before,
        "no COM1 interrupt (irq {}) within 1 s of a looped-back byte",
        virq
    );
    let got = crate::console::serial::take_newest();
    check!(
        got == Some(b'Z'),
        "the shell's input ring got {:?}, expected 'Z'",
        got
    );
    Ok(())
}

fn s5_package_is_decoded() -> TestResult {
    // A DSDT-like blob: 36-byte header, then `Name(_S5, Package(4){0x05, 0x05, 0, 0})`.
    let mut t = [0u8; 36 + 13];
    t[36..].copy_from_slice(&[
        0x08, b'_', b'S', b'5', b'_', 0x12, 0x08, 0x04, 0x0a, 0x05, 0x0a, 0x05, 0x00,
    ]);
    let got = crate::acpi::s5_decode(&t);
    check!(got == Some((5, 5)), "decoded {:?}", got);
    // Cut inside the name, then inside the package's second element.
    for cut in [40, 47] {
        check!(
            crate::acpi::s5_decode(&t[..cut]).is_none(),
            "a table truncated at {} bytes decoded as {:?}",
            cut,
            crate::acpi::s5_decode(&t[..cut])
        );
    }
    Ok(())
}

/// QEMU's intel-iommu DMAR: one unit at 0xfed90000 with the I/O APIC in its scope
/// (../shared/REFERENCE.md). Without the device there is no DMAR and the plan says so.
fn dmar_describes_qemus_iommu_or_plan_says_why_not() -> TestResult {
    use sluice_acpi_tables::dmar::RemappingStructure;
    use sluice_acpi_tables::plan::{NoRemapReason, Remapping};
    use sluice_acpi_tables::scope::ScopeType;
    if !crate::qemu::present() {
        crate::skip!("compares with QEMU's intel-iommu DMAR; this is not QEMU");
    }
    let t = crate::iommu::tables();
    match &t.dmar {
        None => {
            let ok = matches!(&t.plan.remapping, Remapping::Disabled(w) if w.contains(&NoRemapReason::NoDmar));
            check!(ok, "no DMAR, but the plan says {:?}", t.plan.remapping);
            Ok(())
        }
        Some(Err(e)) => Err(alloc::format!("QEMU's DMAR did not parse: {e}")),
        Some(Ok(d)) => {
            let units: alloc::vec::Vec<_> = d
                .structures
                .iter()
                .filter_map(|s| {
                    if let RemappingStructure::Drhd(u) = s {
                        Some(u)
                    } else {
                        None
                    }
                })
                .collect();
            check!(
                units.len() == 1,
                "QEMU builds one DRHD, found {}",
                units.len()
            );
            check!(
                units[0].register_base == 0xfed9_0000,
                "unit at {:#x}, not 0xfed90000",
                units[0].register_base
            );
            let ioapic_id = crate::acpi::platform().io_apics[0].id;
            let scope = units[0].scopes.iter().find(|s| s.kind == ScopeType::IoApic);
            let scope = scope.ok_or("the unit has no I/O APIC scope")?;
            check!(
                scope.enumeration_id == ioapic_id,
                "I/O APIC scope id {} != MADT id {}",
                scope.enumeration_id,
                ioapic_id
            );
            check!(d.flags.intr_remap(), "QEMU sets INTR_REMAP");
            check!(
                t.plan.remapping.enabled(),
                "the plan refuses remapping: {:?}",
                t.plan.remapping
            );
            Ok(())
        }
    }
}
