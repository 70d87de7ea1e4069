//! MSI and MSI-X capabilities: register layout, writes as single accesses, BIR decode.

mod common;

use common::fake::{BarModel, FakeConfig, FakeFunction, addr};
use sluice_pci::capability::id;
use sluice_pci::msix::{BarRegion, MsixStructure, table_entry};
use sluice_pci::{
    Capability, ConfigAccess, ConfigWrite, Header, HeaderType, MsiCapability, MsiControl, MsiError,
    MsixCapability, MsixError, PbaBit, Width, WriteValue, size_bars, walk_capabilities,
};

const AT: &str = "00:03.0";

fn first_cap(fake: &mut FakeConfig, wanted: u8) -> Capability {
    let header = Header::read(fake, addr(AT)).unwrap().unwrap();
    let list = walk_capabilities(fake, addr(AT), header.header_type, header.status);
    *list
        .found
        .iter()
        .find(|c| c.id == wanted)
        .expect("capability missing")
}

fn msi_device(mmc_log2: u8, is_64bit: bool, pvm: bool) -> (FakeConfig, MsiCapability) {
    let f = FakeFunction::endpoint(0x1234, 0x11e8, 0x00ff00, 0x10)
        .with_cap(id::POWER_MANAGEMENT, &[0; 6])
        .with_msi(mmc_log2, is_64bit, pvm);
    let mut fake = FakeConfig::ecam().with(AT, f);
    let cap = first_cap(&mut fake, id::MSI);
    let msi = MsiCapability::read(&mut fake, addr(AT), cap).unwrap();
    (fake, msi)
}

/// Apply one write and check the fake saw exactly one access.
fn apply_one(fake: &mut FakeConfig, write: ConfigWrite) {
    let before = fake.writes.len();
    write.apply(fake, addr(AT)).unwrap();
    assert_eq!(
        fake.writes.len(),
        before + 1,
        "{write:?} was not a single access"
    );
}

#[test]
fn msi_register_offsets_for_all_four_layouts() {
    // (64-bit, per-vector masking) -> (addr hi, data, mask, pending, length), relative.
    let layouts = [
        ((false, false), (None, 0x8, None, None, 10)),
        ((true, false), (Some(0x8), 0xc, None, None, 14)),
        ((false, true), (None, 0x8, Some(0xc), Some(0x10), 20)),
        ((true, true), (Some(0x8), 0xc, Some(0x10), Some(0x14), 24)),
    ];
    for ((is_64bit, pvm), (high, data, mask, pending, length)) in layouts {
        let (_, msi) = msi_device(0, is_64bit, pvm);
        let base = msi.offset;
        assert_eq!(base, 0x48);
        let rel = |o: u16| o - base;
        assert_eq!(msi.control.is_64bit(), is_64bit);
        assert_eq!(msi.control.per_vector_masking(), pvm);
        assert_eq!(rel(msi.control_register().offset()), 0x2);
        assert_eq!(rel(msi.address_low_register().offset()), 0x4);
        assert_eq!(msi.address_high_register().map(|r| rel(r.offset())), high);
        assert_eq!(rel(msi.data_register().offset()), data);
        assert_eq!(msi.mask_register().map(|r| rel(r.offset())), mask);
        assert_eq!(msi.pending_register().map(|r| rel(r.offset())), pending);
        assert_eq!(msi.length(), length);
    }
}

#[test]
fn message_control_fields() {
    let control = MsiControl(0b1_1010_1011);
    assert!(control.enabled());
    assert_eq!(control.multiple_message_capable_log2(), 5);
    assert_eq!(control.multiple_message_enable_log2(), 2);
    assert!(control.is_64bit());
    assert!(control.per_vector_masking());
    // Reserved Multiple Message Capable values read as the 32-vector maximum.
    assert_eq!(MsiControl(0b1110).multiple_message_capable_log2(), 5);
    let (_, msi) = msi_device(3, false, false);
    assert_eq!(msi.vectors_capable(), 8);
}

#[test]
fn programs_a_message_one_access_per_word() {
    for (is_64bit, pvm) in [(false, false), (true, false), (false, true), (true, true)] {
        let (mut fake, msi) = msi_device(0, is_64bit, pvm);
        let high = if is_64bit { 0x1 } else { 0 };
        let writes = msi.message_writes(0xfee0_1000, high, 0x4041).unwrap();
        assert_eq!(writes.address_low.width(), Width::Dword);
        assert_eq!(writes.data.width(), Width::Word);
        assert_eq!(writes.address_high.is_some(), is_64bit);
        for write in writes.in_order() {
            apply_one(&mut fake, write);
        }
        let a = addr(AT);
        assert_eq!(
            fake.read_reg(a, msi.address_low_register()),
            Ok(0xfee0_1000)
        );
        if let Some(register) = msi.address_high_register() {
            assert_eq!(fake.read_reg(a, register), Ok(1));
        }
        assert_eq!(fake.read_reg(a, msi.data_register()), Ok(0x4041));
        // The capability header and control survived the data write's dword.
        assert_eq!(fake.read::<u8>(a, msi.offset), Ok(id::MSI));
    }
}

#[test]
fn refuses_messages_the_function_cannot_hold() {
    let (_, msi32) = msi_device(0, false, false);
    assert_eq!(msi32.write_address_high(0), Ok(None));
    assert_eq!(
        msi32.write_address_high(1),
        Err(MsiError::AddressNeeds64Bit { high: 1 })
    );
    assert_eq!(
        msi32.message_writes(0xfee0_0000, 2, 0x41),
        Err(MsiError::AddressNeeds64Bit { high: 2 })
    );
    assert_eq!(
        msi32.write_address_low(0xfee0_0002),
        Err(MsiError::AddressNotDwordAligned { low: 0xfee0_0002 })
    );
    assert_eq!(
        msi32.write_data(0x1_0000),
        Err(MsiError::DataTooWide { data: 0x1_0000 })
    );
    assert_eq!(
        msi32.write_data(0xffff),
        Ok(ConfigWrite {
            offset: 0x48 + 8,
            value: WriteValue::Word(0xffff)
        })
    );
}

#[test]
fn enables_two_to_the_k_vectors_in_one_write() {
    let (mut fake, msi) = msi_device(4, true, true);
    for k in 0..=4u8 {
        let write = msi.write_enable(k).unwrap();
        assert_eq!(write.width(), Width::Word);
        apply_one(&mut fake, write);
        let control = MsiControl(fake.read_reg(addr(AT), msi.control_register()).unwrap());
        assert!(control.enabled());
        assert_eq!(control.multiple_message_enable_log2(), k);
        // Read-only capability bits are carried over unchanged.
        assert_eq!(control.multiple_message_capable_log2(), 4);
        assert!(control.is_64bit() && control.per_vector_masking());
    }
    assert_eq!(
        msi.write_enable(5),
        Err(MsiError::TooManyVectors {
            requested_log2: 5,
            capable_log2: 4
        })
    );
    apply_one(&mut fake, msi.write_disable());
    let control = MsiControl(fake.read_reg(addr(AT), msi.control_register()).unwrap());
    assert!(!control.enabled());
    assert_eq!(control.multiple_message_enable_log2(), 0);
}

#[test]
fn enable_keeps_other_control_bits() {
    let control =
        MsiControl(MsiControl::EXTENDED_DATA_CAPABLE | MsiControl::EXTENDED_DATA_ENABLE | 0b1010);
    let updated = control.with_enable_and_vectors(true, 3);
    assert_eq!(
        updated.0 & (MsiControl::EXTENDED_DATA_CAPABLE | MsiControl::EXTENDED_DATA_ENABLE),
        0x600
    );
    assert_eq!(updated.multiple_message_enable_log2(), 3);
    assert_eq!(updated.multiple_message_capable_log2(), 5);
}

#[test]
fn the_edu_shape_is_not_maskable_and_has_one_vector() {
    // QEMU's edu: MSI at 0x40, one vector, 64-bit, no per-vector masking.
    let (_, msi) = msi_device(0, true, false);
    assert_eq!(msi.vectors_capable(), 1);
    assert_eq!(msi.write_mask_bits(1), Err(MsiError::NotMaskable));
    assert_eq!(
        msi.write_vector_mask(0, 0, true),
        Err(MsiError::NotMaskable)
    );
    assert_eq!(
        msi.write_enable(1),
        Err(MsiError::TooManyVectors {
            requested_log2: 1,
            capable_log2: 0
        })
    );
}

#[test]
fn masks_one_vector_with_one_write() {
    let (mut fake, msi) = msi_device(5, false, true);
    let a = addr(AT);
    assert_eq!(msi.read_mask_bits(&mut fake, a), Ok(Some(0)));
    let write = msi.write_vector_mask(0, 3, true).unwrap();
    assert_eq!(write.width(), Width::Dword);
    apply_one(&mut fake, write);
    assert_eq!(msi.read_mask_bits(&mut fake, a), Ok(Some(0x8)));
    apply_one(&mut fake, msi.write_vector_mask(0x8, 31, true).unwrap());
    apply_one(
        &mut fake,
        msi.write_vector_mask(0x8000_0008, 3, false).unwrap(),
    );
    assert_eq!(msi.read_mask_bits(&mut fake, a), Ok(Some(0x8000_0000)));
    assert_eq!(msi.read_pending_bits(&mut fake, a), Ok(Some(0)));
    assert_eq!(
        msi.write_vector_mask(0, 32, true),
        Err(MsiError::VectorOutOfRange {
            vector: 32,
            vectors: 32
        })
    );
    let (_, small) = msi_device(1, false, true);
    assert_eq!(
        small.write_vector_mask(0, 2, true),
        Err(MsiError::VectorOutOfRange {
            vector: 2,
            vectors: 2
        })
    );
    let (mut fake, unmaskable) = msi_device(0, false, false);
    assert_eq!(unmaskable.read_mask_bits(&mut fake, a), Ok(None));
    assert_eq!(unmaskable.read_pending_bits(&mut fake, a), Ok(None));
}

// ---- MSI-X ----

fn msix_device(table_size: u16, table: (u8, u32), pba: (u8, u32)) -> (FakeConfig, MsixCapability) {
    let f = FakeFunction::endpoint(0x8086, 0x10d3, 0x020000, 0)
        .with_bar(
            0,
            BarModel::Memory32 {
                address: 0xfeb8_0000,
                size: 0x2_0000,
                prefetchable: false,
            },
        )
        .with_bar(
            2,
            BarModel::Io {
                address: 0xc040,
                size: 32,
            },
        )
        .with_bar(
            3,
            BarModel::Memory32 {
                address: 0xfebc_0000,
                size: 0x4000,
                prefetchable: false,
            },
        )
        .with_bar(
            4,
            BarModel::Memory64 {
                address: 0xfe00_0000,
                size: 0x1_0000,
                prefetchable: true,
            },
        )
        .with_msix(table_size, table.0, table.1, pba.0, pba.1);
    let mut fake = FakeConfig::ecam().with(AT, f);
    let cap = first_cap(&mut fake, id::MSI_X);
    let msix = MsixCapability::read(&mut fake, addr(AT), cap).unwrap();
    (fake, msix)
}

#[test]
fn decodes_the_e1000e_shape() {
    // e1000e: 5 vectors, table at BAR3 + 0, PBA at BAR3 + 0x2000.
    let (mut fake, msix) = msix_device(5, (3, 0), (3, 0x2000));
    assert_eq!(msix.table_size(), 5);
    assert!(!msix.control.enabled() && !msix.control.function_masked());
    assert_eq!(msix.table, BarRegion { bir: 3, offset: 0 });
    assert_eq!(
        msix.pba,
        BarRegion {
            bir: 3,
            offset: 0x2000
        }
    );
    assert_eq!(msix.pba_length(), 8);
    let bars = size_bars(&mut fake, addr(AT), HeaderType(0)).unwrap();
    let location = msix.locate(&bars).unwrap();
    assert_eq!(location.table_bar.address, 0xfebc_0000);
    assert_eq!((location.table_offset, location.pba_offset), (0, 0x2000));
    assert_eq!(msix.entry_offset(4), Ok(0x40));
    assert_eq!(
        msix.entry_offset(5),
        Err(MsixError::VectorOutOfRange {
            vector: 5,
            table_size: 5
        })
    );
}

#[test]
fn bir_and_offset_share_one_register() {
    for bir in 0..8u8 {
        for offset in [0u32, 8, 0x800, 0x2000, 0xffff_fff8] {
            let region = BarRegion::from_register(offset | u32::from(bir));
            assert_eq!(region, BarRegion { bir, offset });
        }
    }
}

#[test]
fn table_entry_and_pba_addressing() {
    assert_eq!(table_entry::SIZE, 16);
    assert_eq!(
        (
            table_entry::ADDRESS_LOW,
            table_entry::ADDRESS_HIGH,
            table_entry::DATA,
            table_entry::VECTOR_CONTROL
        ),
        (0, 4, 8, 12)
    );
    assert_eq!(table_entry::VECTOR_CONTROL_MASKED, 1);
    let (_, msix) = msix_device(2048, (0, 0x1000), (0, 0x9000));
    assert_eq!(msix.table_size(), 2048);
    assert_eq!(msix.pba_length(), 256);
    assert_eq!(msix.entry_offset(0), Ok(0x1000));
    assert_eq!(msix.entry_offset(2047), Ok(0x1000 + 2047 * 16));
    assert_eq!(
        msix.pba_bit(0),
        Ok(PbaBit {
            offset: 0x9000,
            bit: 0
        })
    );
    assert_eq!(
        msix.pba_bit(31),
        Ok(PbaBit {
            offset: 0x9000,
            bit: 31
        })
    );
    assert_eq!(
        msix.pba_bit(33),
        Ok(PbaBit {
            offset: 0x9004,
            bit: 1
        })
    );
    assert_eq!(
        msix.pba_bit(64),
        Ok(PbaBit {
            offset: 0x9008,
            bit: 0
        })
    );
    assert_eq!(
        msix.pba_bit(2048),
        Err(MsixError::VectorOutOfRange {
            vector: 2048,
            table_size: 2048
        })
    );
    let (_, msix) = msix_device(65, (0, 0), (0, 0x800));
    assert_eq!(msix.pba_length(), 16);
}

#[test]
fn locate_refuses_bad_birs_and_overruns() {
    let cases = [
        (
            (6, 0),
            (3, 0),
            MsixError::ReservedBir {
                structure: MsixStructure::Table,
                bir: 6,
            },
        ),
        (
            (3, 0),
            (7, 0),
            MsixError::ReservedBir {
                structure: MsixStructure::PendingBitArray,
                bir: 7,
            },
        ),
        (
            (2, 0),
            (3, 0),
            MsixError::NotAMemoryBar {
                structure: MsixStructure::Table,
                bir: 2,
            },
        ),
        (
            (1, 0),
            (3, 0),
            MsixError::NotAMemoryBar {
                structure: MsixStructure::Table,
                bir: 1,
            },
        ),
        (
            (5, 0),
            (3, 0),
            MsixError::NotAMemoryBar {
                structure: MsixStructure::Table,
                bir: 5,
            },
        ),
        (
            (3, 0x3fc8),
            (3, 0),
            MsixError::OutsideBar {
                structure: MsixStructure::Table,
                end: 0x4018,
                bar_size: 0x4000,
            },
        ),
        (
            (3, 0),
            (3, 0x4000),
            MsixError::OutsideBar {
                structure: MsixStructure::PendingBitArray,
                end: 0x4008,
                bar_size: 0x4000,
            },
        ),
    ];
    for (table, pba, error) in cases {
        let (mut fake, msix) = msix_device(5, table, pba);
        let bars = size_bars(&mut fake, addr(AT), HeaderType(0)).unwrap();
        assert_eq!(msix.locate(&bars), Err(error), "{table:?} {pba:?}");
    }
    // A 64-bit BAR is named by its lower slot.
    let (mut fake, msix) = msix_device(5, (4, 0), (4, 0x800));
    let bars = size_bars(&mut fake, addr(AT), HeaderType(0)).unwrap();
    assert_eq!(msix.locate(&bars).unwrap().table_bar.address, 0xfe00_0000);
}

#[test]
fn control_writes_are_one_word() {
    let (mut fake, msix) = msix_device(5, (3, 0), (3, 0x2000));
    let write = msix.write_control(true, true);
    assert_eq!(
        write,
        ConfigWrite {
            offset: msix.offset + 2,
            value: WriteValue::Word(0xc004)
        }
    );
    apply_one(&mut fake, write);
    let again = MsixCapability::read(
        &mut fake,
        addr(AT),
        Capability {
            offset: msix.offset,
            id: id::MSI_X,
        },
    )
    .unwrap();
    assert!(again.control.enabled() && again.control.function_masked());
    assert_eq!(again.table_size(), 5);
    apply_one(&mut fake, again.write_control(true, false));
    let again = MsixCapability::read(
        &mut fake,
        addr(AT),
        Capability {
            offset: msix.offset,
            id: id::MSI_X,
        },
    )
    .unwrap();
    assert!(again.control.enabled() && !again.control.function_masked());
}
