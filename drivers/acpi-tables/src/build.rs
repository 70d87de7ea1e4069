//! Byte builders for the tables this crate parses — DMAR, MADT, HPET — for tests: the
//! crate's own host tests, and the QEMU scenarios that hand a table to the guest with
//! `-acpitable`. One copy of each layout (ACPI 6.5 §5.2.6 header, §5.2.12 MADT; VT-d
//! 4.1 §8.1-8.3 DMAR, DRHD, device scope; IA-PC HPET 1.0a §3.2.4), written next to
//! the parsers that read them.
//!
//! Behind the `test-builders` feature, and no_std like the rest, so that a feature
//! unified into another build can never break it. Every builder returns a finished
//! table (length and checksum set) or a finished sub-structure; a test that wants a
//! damaged table damages a finished one and calls [`fix_checksum`].

// Test builders, not parsers: their inputs are the tests' own constants, and an
// overflow there is a bug in a test, which the panic reports.
#![allow(clippy::arithmetic_side_effects)]

use alloc::vec::Vec;

/// The OEM fields every built table carries.
const OEM_ID: &[u8; 6] = b"SLUICE";
const OEM_TABLE_ID: &[u8; 8] = b"TESTS   ";
const CREATOR_ID: &[u8; 4] = b"SLCE";

/// The size of the common header.
pub const HEADER_LEN: usize = 36;

/// Sets the header's length field to `len`.
pub fn set_length(t: &mut [u8], len: u32) {
    t[4..8].copy_from_slice(&len.to_le_bytes());
}

/// Sets the checksum byte so that every byte of `t` sums to zero.
pub fn fix_checksum(t: &mut [u8]) {
    t[9] = 0;
    let sum = t.iter().fold(0u8, |a, &b| a.wrapping_add(b));
    t[9] = 0u8.wrapping_sub(sum);
}

/// A table: the common header with `signature` (revision 1), then `body`; length and
/// checksum set.
pub fn table(signature: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut t = Vec::with_capacity(HEADER_LEN + body.len());
    t.extend_from_slice(signature);
    t.extend_from_slice(&[0; 4]); // length, below
    t.extend_from_slice(&[1, 0]); // revision, checksum
    t.extend_from_slice(OEM_ID);
    t.extend_from_slice(OEM_TABLE_ID);
    t.extend_from_slice(&1u32.to_le_bytes()); // OEM revision
    t.extend_from_slice(CREATOR_ID);
    t.extend_from_slice(&1u32.to_le_bytes()); // creator revision
    t.extend_from_slice(body);
    let len = t.len() as u32;
    set_length(&mut t, len);
    fix_checksum(&mut t);
    t
}

/// DMAR flags (VT-d §8.1): interrupt remapping supported.
pub const INTR_REMAP: u8 = 1 << 0;
/// Firmware asks the OS not to enable x2APIC mode.
pub const X2APIC_OPT_OUT: u8 = 1 << 1;
/// Firmware asks the OS to keep the DMA protection it set up.
pub const DMA_CTRL_PLATFORM_OPT_IN: u8 = 1 << 2;

/// A DMAR: host address width in bits, flags, then its remapping structures.
pub fn dmar(address_width: u8, flags: u8, structures: &[Vec<u8>]) -> Vec<u8> {
    let mut body = Vec::new();
    body.push(address_width - 1);
    body.push(flags);
    body.extend_from_slice(&[0; 10]);
    for s in structures {
        body.extend_from_slice(s);
    }
    table(b"DMAR", &body)
}

/// DRHD flag: the unit covers every device of its segment not named by another.
pub const INCLUDE_PCI_ALL: u8 = 1 << 0;

/// A DRHD (remapping structure type 0): flags, segment, register base, device scopes.
pub fn drhd(flags: u8, segment: u16, register_base: u64, scopes: &[Vec<u8>]) -> Vec<u8> {
    let len = 16 + scopes.iter().map(Vec::len).sum::<usize>();
    let mut s = Vec::with_capacity(len);
    s.extend_from_slice(&0u16.to_le_bytes());
    s.extend_from_slice(&(len as u16).to_le_bytes());
    s.extend_from_slice(&[flags, 0]);
    s.extend_from_slice(&segment.to_le_bytes());
    s.extend_from_slice(&register_base.to_le_bytes());
    for sc in scopes {
        s.extend_from_slice(sc);
    }
    s
}

/// Device scope types (VT-d §8.3.1): a PCI endpoint.
pub const SCOPE_ENDPOINT: u8 = 1;
/// A PCI-PCI bridge: every device below it.
pub const SCOPE_BRIDGE: u8 = 2;
/// An I/O APIC, named by its id.
pub const SCOPE_IOAPIC: u8 = 3;
/// An HPET block, named by its number.
pub const SCOPE_HPET: u8 = 4;

/// A device scope: type, enumeration id (I/O APIC or HPET number), start bus, and the
/// path as (device, function) pairs.
pub fn scope(kind: u8, enumeration_id: u8, start_bus: u8, path: &[(u8, u8)]) -> Vec<u8> {
    let mut s = Vec::with_capacity(6 + 2 * path.len());
    s.push(kind);
    s.push((6 + 2 * path.len()) as u8);
    s.extend_from_slice(&[0, 0]);
    s.push(enumeration_id);
    s.push(start_bus);
    for &(dev, func) in path {
        s.extend_from_slice(&[dev, func]);
    }
    s
}

/// MADT flag: the machine has dual 8259s (ACPI §5.2.12).
pub const PCAT_COMPAT: u32 = 1 << 0;
/// Local APIC / x2APIC flag: the processor is enabled.
pub const ENABLED: u32 = 1 << 0;

/// A MADT: the local APIC address, flags, then its entries.
pub fn madt(local_apic_address: u32, flags: u32, entries: &[Vec<u8>]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&local_apic_address.to_le_bytes());
    body.extend_from_slice(&flags.to_le_bytes());
    for e in entries {
        body.extend_from_slice(e);
    }
    table(b"APIC", &body)
}

/// A Processor Local APIC entry (type 0).
pub fn local_apic(uid: u8, apic_id: u8, flags: u32) -> Vec<u8> {
    let mut e = alloc::vec![0, 8, uid, apic_id];
    e.extend_from_slice(&flags.to_le_bytes());
    e
}

/// An I/O APIC entry (type 1).
pub fn io_apic(id: u8, address: u32, gsi_base: u32) -> Vec<u8> {
    let mut e = alloc::vec![1, 12, id, 0];
    e.extend_from_slice(&address.to_le_bytes());
    e.extend_from_slice(&gsi_base.to_le_bytes());
    e
}

/// An Interrupt Source Override entry (type 2): ISA `source` on `gsi`, MPS INTI flags.
pub fn interrupt_override(bus: u8, source: u8, gsi: u32, flags: u16) -> Vec<u8> {
    let mut e = alloc::vec![2, 10, bus, source];
    e.extend_from_slice(&gsi.to_le_bytes());
    e.extend_from_slice(&flags.to_le_bytes());
    e
}

/// A Local APIC NMI entry (type 4): processor `uid` (0xff: all), MPS INTI flags, LINT#.
pub fn local_apic_nmi(uid: u8, flags: u16, lint: u8) -> Vec<u8> {
    let mut e = alloc::vec![4, 6, uid];
    e.extend_from_slice(&flags.to_le_bytes());
    e.push(lint);
    e
}

/// A Processor Local x2APIC entry (type 9).
pub fn local_x2apic(x2apic_id: u32, flags: u32, uid: u32) -> Vec<u8> {
    let mut e = alloc::vec![9, 16, 0, 0];
    e.extend_from_slice(&x2apic_id.to_le_bytes());
    e.extend_from_slice(&flags.to_le_bytes());
    e.extend_from_slice(&uid.to_le_bytes());
    e
}

/// An HPET table: the event timer block id (vendor, comparators, ...), the block's
/// base in memory space, its HPET number and minimum clock tick.
pub fn hpet(block_id: u32, base: u64, number: u8, min_tick: u16) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&block_id.to_le_bytes());
    // Generic address: system memory, 64 bits wide, offset 0, access size undefined.
    body.extend_from_slice(&[0, 64, 0, 0]);
    body.extend_from_slice(&base.to_le_bytes());
    body.push(number);
    body.extend_from_slice(&min_tick.to_le_bytes());
    body.push(0); // page protection
    table(b"HPET", &body)
}
