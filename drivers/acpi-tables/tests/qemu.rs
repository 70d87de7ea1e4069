//! Tables shaped like the ones QEMU 10's q35 builds (REFERENCE.md): the plan the kernel
//! should reach in the `iommu` and `noiommu` profiles.

use sluice_acpi_tables::plan::{DomainKind, NoRemapReason, Note, Remapping, source_text};
use sluice_acpi_tables::{Dmar, InterruptPlan, Madt, build};

/// One DRHD at 0xFED90000, flags 0, an I/O APIC scope (id 0, bus 0xff, 00.0) and two
/// root-bus device scopes; DMAR flags INTR_REMAP, host address width 39.
fn qemu_dmar() -> Vec<u8> {
    dmar_with_scopes(&[
        build::scope(build::SCOPE_IOAPIC, 0, 0xff, &[(0, 0)]),
        build::scope(build::SCOPE_ENDPOINT, 0, 0, &[(1, 0)]),
        build::scope(build::SCOPE_ENDPOINT, 0, 0, &[(2, 0)]),
    ])
}

/// A DMAR (INTR_REMAP, width 39) with one DRHD at 0xFED90000 holding `scopes`.
fn dmar_with_scopes(scopes: &[Vec<u8>]) -> Vec<u8> {
    let drhd = build::drhd(0, 0, 0xfed9_0000, scopes);
    build::dmar(39, build::INTR_REMAP, &[drhd])
}

/// QEMU's MADT with `cpus` CPUs (x2APIC entries or local APIC ones), its I/O APIC, the
/// timer's override (IRQ 0 on GSI 2) and the local APIC NMI on LINT1 of every CPU.
fn qemu_madt(cpus: u32, x2apic: bool) -> Vec<u8> {
    let mut entries: Vec<Vec<u8>> = (0..cpus)
        .map(|i| {
            if x2apic {
                build::local_x2apic(i, build::ENABLED, i)
            } else {
                build::local_apic(i as u8, i as u8, build::ENABLED)
            }
        })
        .collect();
    entries.push(build::io_apic(0, 0xfec0_0000, 0));
    entries.push(build::interrupt_override(0, 0, 2, 0));
    entries.push(build::local_apic_nmi(0xff, 0, 1));
    build::madt(0xfee0_0000, build::PCAT_COMPAT, &entries)
}

#[test]
fn iommu_profile_one_unit_with_the_io_apic() {
    let d = Dmar::parse(&qemu_dmar()).unwrap();
    let m = Madt::parse(&qemu_madt(4, false)).unwrap();
    let p = InterruptPlan::build(Some(&d), Some(&m), None);
    assert_eq!(p.units.len(), 1);
    assert_eq!(p.units[0].register_base, 0xfed9_0000);
    assert_eq!(p.remapping, Remapping::Enabled);
    assert!(p.x2apic.eim_allowed);
    let io = &p.io_apics[0];
    assert_eq!((io.id, io.unit), (0, Some(0)));
    assert_eq!(io.source.as_ref().unwrap().source_id.0, 0xff00);
    // QEMU's unit does not set INCLUDE_PCI_ALL: there is no catch-all.
    assert_eq!(p.catch_all, None);
    assert!(p.notes.contains(&Note::CatchAllCount {
        segment: 0,
        count: 0
    }));
    assert_eq!(
        kinds(&p),
        [
            DomainKind::Vector,
            DomainKind::DmarMsi,
            DomainKind::IntelIr { unit: 0 },
            DomainKind::PciMsi,
            DomainKind::IoApic { id: 0 }
        ]
    );
    assert_eq!(p.domains[4].parent, Some(2));
    assert_eq!(p.domains[1].parent, Some(0));
}

#[test]
fn noiommu_profile_plan_without_remapping() {
    let m = Madt::parse(&qemu_madt(2, false)).unwrap();
    let p = InterruptPlan::build(None, Some(&m), None);
    assert_eq!(
        p.remapping,
        Remapping::Disabled(vec![NoRemapReason::NoDmar])
    );
    assert_eq!(
        kinds(&p),
        [
            DomainKind::Vector,
            DomainKind::PciMsi,
            DomainKind::IoApic { id: 0 }
        ]
    );
}

fn kinds(p: &InterruptPlan) -> Vec<DomainKind> {
    p.domains.iter().map(|d| d.kind).collect()
}

fn names(p: &InterruptPlan) -> Vec<String> {
    p.domains.iter().map(|d| d.kind.to_string()).collect()
}

fn core_names(p: &InterruptPlan) -> Vec<String> {
    (0..p.domains.len())
        .map(|i| p.domains[i].kind.core_name(p.remapped_by(i)))
        .collect()
}

/// The names `acpi`, `domains` and the JSON print, and those of the interrupt core's
/// domains the kernel builds, are Linux's: the QEMU scenarios and the launcher's tests
/// compare them as text.
#[test]
fn domain_names_are_linuxs() {
    let d = Dmar::parse(&qemu_dmar()).unwrap();
    let m = Madt::parse(&qemu_madt(2, false)).unwrap();
    let p = InterruptPlan::build(Some(&d), Some(&m), None);
    assert_eq!(
        names(&p),
        ["VECTOR", "DMAR-MSI", "INTEL-IR-0", "PCI-MSI", "IO-APIC-0"]
    );
    // One PCI-MSI group per unit under remapping, named after it; the I/O APIC keeps
    // its name (only its chip is IR-IO-APIC).
    assert_eq!(
        core_names(&p),
        [
            "VECTOR",
            "DMAR-MSI",
            "INTEL-IR-0",
            "IR-PCI-MSI-0",
            "IO-APIC-0"
        ]
    );
    let off = p.without_remapping(NoRemapReason::NotEnabled { why: "test".into() });
    assert_eq!(names(&off), ["VECTOR", "DMAR-MSI", "PCI-MSI", "IO-APIC-0"]);
    assert_eq!(core_names(&off), names(&off));
    assert_eq!(off.remapped_by(off.domains.len()), None);

    let hpet = DomainKind::HpetMsi { n: 2 };
    assert_eq!(
        (
            hpet.to_string(),
            hpet.core_name(None),
            hpet.core_name(Some(1))
        ),
        (
            "HPET-MSI-2".into(),
            "HPET-MSI-2".into(),
            "IR-HPET-MSI-2".into()
        )
    );
    let io = DomainKind::IoApic { id: 9 };
    assert_eq!(io.core_name(Some(1)), "IO-APIC-9");
    assert_eq!(DomainKind::PciMsi.core_name(Some(3)), "IR-PCI-MSI-3");
    assert_eq!(DomainKind::AmdIr { unit: 1 }.to_string(), "AMD-IR-1");
    assert_eq!(DomainKind::AmdIr { unit: 1 }.remapping_unit(), Some(1));
    assert_eq!(io.remapping_unit(), None);
    // The text report aligns its tree on the name's width.
    assert_eq!(
        format!("[{:<12}]", DomainKind::IntelIr { unit: 10 }),
        "[INTEL-IR-10 ]"
    );
}

#[test]
fn many_cpus_need_x2apic_and_eim() {
    let d = Dmar::parse(&qemu_dmar()).unwrap();
    let m = Madt::parse(&qemu_madt(288, true)).unwrap();
    let p = InterruptPlan::build(Some(&d), Some(&m), None);
    assert!(p.x2apic.eim_allowed);
    assert_eq!(p.cpus.x2apic_only_ids, (255..288).collect::<Vec<u32>>());
    assert!(p.x2apic.unreachable_cpus.is_empty());
    // Without the DMAR those CPUs could not take device interrupts.
    let p = InterruptPlan::build(None, Some(&m), None);
    assert_eq!(p.x2apic.unreachable_cpus.len(), 33);
}

#[test]
fn dmar_without_madt_cannot_check_coverage() {
    let d = Dmar::parse(&qemu_dmar()).unwrap();
    let p = InterruptPlan::build(Some(&d), None, None);
    assert_eq!(
        p.remapping,
        Remapping::Disabled(vec![NoRemapReason::NoMadt])
    );
}

/// No corpus machine has one, so built here: an I/O APIC behind a bridge (start bus 0,
/// path 1c.0 then 00.0). Its bus is whatever the bridge forwards to, known only at boot,
/// so the source-id is provisional and says so.
#[test]
fn io_apic_behind_a_bridge_gets_a_provisional_source_id() {
    let d = Dmar::parse(&dmar_with_scopes(&[build::scope(
        build::SCOPE_IOAPIC,
        0,
        0,
        &[(0x1c, 0), (0, 0)],
    )]))
    .unwrap();
    let m = Madt::parse(&qemu_madt(2, false)).unwrap();
    let p = InterruptPlan::build(Some(&d), Some(&m), None);
    let src = p.io_apics[0].source.as_ref().unwrap();
    assert!(!src.exact);
    assert_eq!(src.path.len(), 2);
    assert!(p.notes.contains(&Note::MultiHopSource {
        what: "I/O APIC",
        id: 0,
        hops: 2
    }));
    let text = source_text(src);
    assert!(
        text.contains("provisional: 2-hop path from bus 00"),
        "{text}"
    );
}

/// The kernel turns remapping off when hardware or its own limits say so: the plan it
/// then builds from has no INTEL-IR domains, no EIM, and says why.
#[test]
fn remapping_turned_off_at_boot_moves_the_io_apic_under_vector() {
    let d = Dmar::parse(&qemu_dmar()).unwrap();
    let m = Madt::parse(&qemu_madt(4, false)).unwrap();
    let plan = InterruptPlan::build(Some(&d), Some(&m), None);
    assert!(plan.remapping.enabled());
    assert!(plan.domain(DomainKind::IntelIr { unit: 0 }).is_some());
    let off = plan.without_remapping(NoRemapReason::NotEnabled {
        why: "unit 0 lacks ECAP.IR".into(),
    });
    assert!(!off.remapping.enabled());
    assert!(!off.x2apic.eim_allowed);
    assert!(
        !off.domains
            .iter()
            .any(|d| d.kind.remapping_unit().is_some())
    );
    let io = off.domain(DomainKind::IoApic { id: 0 }).unwrap();
    assert_eq!(off.parent_kind(io), Some(DomainKind::Vector));
    let Remapping::Disabled(why) = &off.remapping else {
        unreachable!()
    };
    assert_eq!(
        why.iter().map(|w| w.to_string()).collect::<Vec<_>>(),
        ["not enabled at boot: unit 0 lacks ECAP.IR"]
    );
    // Applying it twice keeps one blocker and appends the reason.
    let twice = off.without_remapping(NoRemapReason::NotEnabled {
        why: "again".into(),
    });
    assert_eq!(twice.x2apic.blockers.len(), off.x2apic.blockers.len());
}

/// QEMU's HPET table: block 0 at 0xFED00000, 3 comparators, vendor 0x8086.
fn qemu_hpet() -> Vec<u8> {
    build::hpet(0x8086_a201, 0xfed0_0000, 0, 0)
}

/// HPET-MSI in the profiles: `iommu` (remapping on, QEMU's DMAR names no HPET) refuses
/// it with the reason; `noiommu` puts it under VECTOR; a DMAR that scopes the HPET (as
/// the firmware tests' `-acpitable` does, 00:1f.0) puts it under the unit with SQ=3.
#[test]
fn hpet_msi_in_the_profiles() {
    use sluice_acpi_tables::Hpet;
    use sluice_acpi_tables::hpet_msi::{HpetMsi, Refusal};
    let h = Hpet::parse(&qemu_hpet()).unwrap();
    assert_eq!((h.hpet_number, h.comparators()), (0, 3));
    let m = Madt::parse(&qemu_madt(4, false)).unwrap();
    let d = Dmar::parse(&qemu_dmar()).unwrap();
    let iommu = InterruptPlan::build(Some(&d), Some(&m), Some(&h));
    let HpetMsi::Refused(why) = iommu.hpet_msi(0) else {
        panic!("offered under QEMU's DMAR")
    };
    assert_eq!(why, Refusal::NoScopeUnderRemapping { number: 0 });
    assert!(iommu.notes.contains(&Note::HpetNotCovered { number: 0 }));
    assert!(
        !iommu
            .domains
            .iter()
            .any(|d| matches!(d.kind, DomainKind::HpetMsi { .. }))
    );

    let noiommu = InterruptPlan::build(None, Some(&m), Some(&h));
    assert_eq!(noiommu.hpet_msi(0), HpetMsi::Direct);
    assert_eq!(
        kinds(&noiommu),
        [
            DomainKind::Vector,
            DomainKind::PciMsi,
            DomainKind::IoApic { id: 0 },
            DomainKind::HpetMsi { n: 0 }
        ]
    );

    let scoped = Dmar::parse(&dmar_with_scopes(&[
        build::scope(build::SCOPE_IOAPIC, 0, 0xff, &[(0, 0)]),
        build::scope(build::SCOPE_HPET, 0, 0, &[(0x1f, 0)]),
    ]))
    .unwrap();
    let p = InterruptPlan::build(Some(&scoped), Some(&m), Some(&h));
    let HpetMsi::Remapped { unit, source } = p.hpet_msi(0) else {
        panic!("{:?}", p.hpet_msi(0))
    };
    assert_eq!((unit, source.source_id.0, source.exact), (0, 0x00f8, true));
    let hpet = p.domain(DomainKind::HpetMsi { n: 0 }).unwrap();
    assert_eq!(p.parent_kind(hpet), Some(DomainKind::IntelIr { unit: 0 }));
    assert_eq!(
        p.hpet_msi(0).domain_name(0).as_deref(),
        Some("IR-HPET-MSI-0")
    );
    assert_eq!(
        DomainKind::HpetMsi { n: 0 }.core_name(p.remapped_by(hpet)),
        "IR-HPET-MSI-0"
    );
    // Remapping refused at boot (no unit answers at 0xFED90000): back under VECTOR.
    let off = p.without_remapping(NoRemapReason::NotEnabled {
        why: "unit 0 at 0xfed90000: no unit answers".into(),
    });
    assert_eq!(off.hpet_msi(0), HpetMsi::Direct);
}
