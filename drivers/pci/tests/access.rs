//! The configuration access seam: bounds, alignment, narrow accesses, absent functions.

mod common;

use common::fake::{FakeConfig, FakeFunction, addr};
use sluice_pci::header::{self, COMMAND, STATUS, VENDOR_ID};
use sluice_pci::{
    Command, ConfigAccess, ConfigError, ConfigSize, ConfigWrite, Register, Status, Width,
    WriteValue,
};

fn one_function(size: ConfigSize) -> FakeConfig {
    let mut fake = FakeConfig::ecam().with(
        "00:01.0",
        FakeFunction::endpoint(0x8086, 0x1234, 0x020000, 1),
    );
    fake.size = size;
    fake
}

#[test]
fn checks_every_offset_and_width() {
    for size in [ConfigSize::Legacy, ConfigSize::Extended] {
        let fake = one_function(size);
        let a = addr("00:01.0");
        for offset in 0..=u16::MAX {
            for width in [Width::Byte, Width::Word, Width::Dword] {
                let aligned = offset % width.bytes() == 0;
                let inside =
                    u32::from(offset) + u32::from(width.bytes()) <= u32::from(size.bytes());
                match fake.check(a, offset, width) {
                    Ok(at) => {
                        assert!(aligned && inside, "{offset:#x} {width:?} accepted");
                        assert_eq!(at.get(), offset);
                    }
                    Err(ConfigError::Misaligned { .. }) => assert!(!aligned),
                    Err(ConfigError::OutOfRange { size: s, .. }) => {
                        assert!(aligned && !inside);
                        assert_eq!(s, size);
                    }
                }
            }
        }
    }
}

#[test]
fn reads_beyond_the_space_are_errors_not_panics() {
    let mut fake = one_function(ConfigSize::Legacy);
    let a = addr("00:01.0");
    assert!(fake.read::<u32>(a, 0xfc).is_ok());
    assert!(matches!(
        fake.read::<u32>(a, 0x100),
        Err(ConfigError::OutOfRange { .. })
    ));
    assert!(matches!(
        fake.read::<u8>(a, 0xffff),
        Err(ConfigError::OutOfRange { .. })
    ));
    assert!(matches!(
        fake.write::<u16>(a, 0x100, 0),
        Err(ConfigError::OutOfRange { .. })
    ));
    assert!(matches!(
        fake.read::<u16>(a, 0x3),
        Err(ConfigError::Misaligned { .. })
    ));
    assert!(
        fake.writes.is_empty(),
        "a refused write reached the hardware"
    );

    let mut fake = one_function(ConfigSize::Extended);
    assert!(fake.read::<u32>(a, 0xffc).is_ok());
    assert!(matches!(
        fake.read::<u32>(a, 0x1000),
        Err(ConfigError::OutOfRange { .. })
    ));
    let e = fake.read::<u32>(a, 0x1000).unwrap_err();
    assert_eq!(
        e.to_string(),
        "0000:00:01.0: 4-byte access at 0x1000 is beyond its 4096-byte configuration space"
    );
}

#[test]
fn absent_functions_read_vendor_ffff() {
    let mut fake = one_function(ConfigSize::Extended);
    assert_eq!(fake.read_reg(addr("00:02.0"), VENDOR_ID), Ok(0xffff));
    assert!(!header::vendor_present(0xffff));
    assert!(!header::vendor_present(0));
    assert!(header::vendor_present(0x8086));
    assert_eq!(
        sluice_pci::Header::read(&mut fake, addr("00:02.0")),
        Ok(None)
    );
}

#[test]
fn narrow_accesses_are_read_modify_write_of_the_dword() {
    let mut fake = one_function(ConfigSize::Extended);
    let a = addr("00:01.0");
    fake.write::<u32>(a, 0x40, 0x4433_2211).unwrap();
    assert_eq!(fake.read::<u8>(a, 0x41), Ok(0x22));
    assert_eq!(fake.read::<u16>(a, 0x42), Ok(0x4433));
    fake.write::<u8>(a, 0x42, 0xaa).unwrap();
    assert_eq!(fake.read::<u32>(a, 0x40), Ok(0x44aa_2211));
    fake.write::<u16>(a, 0x40, 0xbbcc).unwrap();
    assert_eq!(fake.read::<u32>(a, 0x40), Ok(0x44aa_bbcc));
    // Each narrow write was one dword access.
    assert_eq!(fake.writes.len(), 3);
    assert!(fake.writes.iter().all(|w| w.offset == 0x40));
}

#[test]
fn registers_are_typed_and_placeable() {
    let msi_control: Register<u16> = Register::new(2);
    assert_eq!(msi_control.at(0x50).offset(), 0x52);
    assert_eq!(Register::<u16>::new(2).at(u16::MAX).offset(), u16::MAX);
    assert_eq!(header::bar(5).offset(), 0x24);
    assert_eq!(
        Register::<u16>::new(0x52).write(0x81),
        ConfigWrite {
            offset: 0x52,
            value: WriteValue::Word(0x81)
        }
    );
}

#[test]
fn command_writes_leave_status_error_bits_alone() {
    let errors = Status::RECEIVED_MASTER_ABORT | Status::DETECTED_PARITY_ERROR | Status::CAP_LIST;
    let mut fake = FakeConfig::ecam().with(
        "00:01.0",
        FakeFunction::endpoint(0x8086, 0x1234, 0x020000, 1).with_status(errors.bits()),
    );
    let a = addr("00:01.0");
    header::write_command(&mut fake, a, Command::MEMORY_SPACE | Command::BUS_MASTER).unwrap();
    assert_eq!(fake.read_reg(a, STATUS), Ok(errors.bits()));
    assert_eq!(fake.read_reg(a, COMMAND), Ok(0b110));

    // The trait's default 16-bit write is a read-modify-write, which clears them: the
    // hazard write_command exists to avoid (the fake's Status is write-1-to-clear).
    fake.write_reg(a, COMMAND, 0).unwrap();
    assert_eq!(fake.read_reg(a, STATUS), Ok(Status::CAP_LIST.bits()));
}

#[test]
fn works_through_a_trait_object() {
    let mut fake = one_function(ConfigSize::Extended);
    let mut dynamic: &mut dyn ConfigAccess = &mut fake;
    // The checked methods need a sized receiver: `&mut dyn ConfigAccess` is one.
    assert_eq!(
        (&mut dynamic).read_reg(addr("00:01.0"), VENDOR_ID),
        Ok(0x8086)
    );
    let header = sluice_pci::Header::read(&mut dynamic, addr("00:01.0"))
        .unwrap()
        .unwrap();
    assert_eq!(header.device_id, 0x1234);
}
