//! The test builders (`build`, feature `test-builders`) make what they say: each table
//! parses with this crate's own parsers, checksum verified, back to the values given,
//! field by field and at the offsets the specifications give.

use sluice_acpi_tables::build;
use sluice_acpi_tables::{Dmar, Hpet, Madt, MadtEntry, RemappingStructure, ScopeType};

#[test]
fn table_header_length_and_checksum() {
    let t = build::table(b"TEST", &[1, 2, 3]);
    assert_eq!(t.len(), build::HEADER_LEN + 3);
    assert_eq!(&t[0..4], b"TEST");
    assert_eq!(u32::from_le_bytes(t[4..8].try_into().unwrap()), 39);
    assert_eq!(t.iter().fold(0u8, |a, &b| a.wrapping_add(b)), 0);
    let mut bad = t.clone();
    bad[38] ^= 0xff;
    build::fix_checksum(&mut bad);
    assert_eq!(bad.iter().fold(0u8, |a, &b| a.wrapping_add(b)), 0);
    build::set_length(&mut bad, 7);
    assert_eq!(&bad[4..8], &[7, 0, 0, 0]);
}

#[test]
fn dmar_drhd_and_scopes_parse_back() {
    let t = build::dmar(
        48,
        build::INTR_REMAP | build::X2APIC_OPT_OUT,
        &[build::drhd(
            build::INCLUDE_PCI_ALL,
            1,
            0xfed9_0000,
            &[
                build::scope(build::SCOPE_IOAPIC, 2, 0xff, &[(0, 0)]),
                build::scope(build::SCOPE_HPET, 0, 0, &[(0x1f, 0)]),
                build::scope(build::SCOPE_BRIDGE, 0, 0, &[(0x1c, 0), (0, 1)]),
                build::scope(build::SCOPE_ENDPOINT, 0, 3, &[(4, 5)]),
            ],
        )],
    );
    let d = Dmar::parse(&t).unwrap();
    assert_eq!(d.header.length as usize, t.len());
    assert_eq!(d.host_address_width_raw, 47);
    assert_eq!(d.flags.0, 0b11);
    let [RemappingStructure::Drhd(u)] = d.structures.as_slice() else {
        panic!("{:?}", d.structures)
    };
    assert_eq!(
        (u.flags, u.segment, u.register_base, u.length),
        (1, 1, 0xfed9_0000, 16 + 8 + 8 + 10 + 8)
    );
    let got: Vec<_> = u
        .scopes
        .iter()
        .map(|s| {
            let path: Vec<_> = s.path.iter().map(|p| (p.device, p.function)).collect();
            (s.kind, s.enumeration_id, s.start_bus, path)
        })
        .collect();
    assert_eq!(
        got,
        [
            (ScopeType::IoApic, 2, 0xff, vec![(0, 0)]),
            (ScopeType::Hpet, 0, 0, vec![(0x1f, 0)]),
            (ScopeType::PciBridge, 0, 0, vec![(0x1c, 0), (0, 1)]),
            (ScopeType::PciEndpoint, 0, 3, vec![(4, 5)]),
        ]
    );
}

#[test]
fn madt_entries_parse_back() {
    let t = build::madt(
        0xfee0_0000,
        build::PCAT_COMPAT,
        &[
            build::local_apic(1, 2, build::ENABLED),
            build::local_x2apic(300, build::ENABLED, 7),
            build::io_apic(3, 0xfec0_0000, 24),
            build::interrupt_override(0, 9, 9, 0x000d),
            build::local_apic_nmi(0xff, 0x0005, 1),
        ],
    );
    let m = Madt::parse(&t).unwrap();
    assert_eq!((m.local_apic_address, m.flags), (0xfee0_0000, 1));
    let [
        MadtEntry::LocalApic(l),
        MadtEntry::LocalX2apic(x),
        MadtEntry::IoApic(io),
        MadtEntry::InterruptOverride(o),
        MadtEntry::LocalApicNmi(n),
    ] = m.entries.as_slice()
    else {
        panic!("{:?}", m.entries)
    };
    assert_eq!((l.processor_uid, l.apic_id, l.flags.0), (1, 2, 1));
    assert_eq!((x.x2apic_id, x.flags.0, x.processor_uid), (300, 1, 7));
    assert_eq!((io.id, io.address, io.gsi_base), (3, 0xfec0_0000, 24));
    assert_eq!((o.bus, o.source, o.gsi, o.flags.0), (0, 9, 9, 0x000d));
    assert_eq!((n.processor_uid, n.flags.0, n.lint), (0xff, 0x0005, 1));
}

#[test]
fn hpet_parses_back() {
    let t = build::hpet(0x8086_a201, 0xfed0_0000, 2, 0x80);
    let h = Hpet::parse(&t).unwrap();
    assert_eq!(
        (
            h.event_timer_block_id,
            h.address_space,
            h.base_address,
            h.hpet_number,
            h.min_tick
        ),
        (0x8086_a201, 0, 0xfed0_0000, 2, 0x80)
    );
    assert_eq!(h.comparators(), 3);
}
