//! BAR sizing: every kind, the original values and Command restored, nonsense reported.

mod common;

use common::fake::{BarModel, FakeConfig, FakeFunction, addr};
use proptest::prelude::*;
use sluice_pci::{
    Bar, BarError, BarKind, BarSlot, Command, ConfigAccess, HeaderType, Status, size_bars,
};

const AT: &str = "00:04.0";

fn size(fake: &mut FakeConfig) -> sluice_pci::Bars {
    let header_type = HeaderType(fake.function(AT).get8(0x0e));
    size_bars(fake, addr(AT), header_type).unwrap()
}

fn implemented(index: u8, kind: BarKind, address: u64, size: u64, prefetchable: bool) -> BarSlot {
    BarSlot::Implemented(Bar {
        index,
        kind,
        address,
        size,
        prefetchable,
    })
}

/// Size, then check nothing but the writes changed and decode was off while sizing.
fn size_and_check_restored(fake: &mut FakeConfig) -> sluice_pci::Bars {
    let before = fake.function(AT).config.clone();
    let bars = size(fake);
    assert_eq!(
        fake.function(AT).config,
        before,
        "configuration space not restored"
    );
    assert!(fake.violations.is_empty(), "{:?}", fake.violations);
    bars
}

#[test]
fn sizes_every_kind_and_restores_everything() {
    let errors = Status::RECEIVED_MASTER_ABORT | Status::CAP_LIST;
    let f = FakeFunction::endpoint(0x8086, 0x10d3, 0x020000, 0)
        .with_command((Command::IO_SPACE | Command::MEMORY_SPACE | Command::BUS_MASTER).bits())
        .with_status(errors.bits())
        .with_bar(
            0,
            BarModel::Io {
                address: 0xc000,
                size: 32,
            },
        )
        .with_bar(
            1,
            BarModel::Memory32 {
                address: 0xfebf_0000,
                size: 0x1000,
                prefetchable: false,
            },
        )
        .with_bar(
            2,
            BarModel::Memory64 {
                address: 0x8_0000_0000,
                size: 0x4000,
                prefetchable: true,
            },
        )
        .with_bar(
            5,
            BarModel::Memory32 {
                address: 0xfd00_0000,
                size: 0x10_0000,
                prefetchable: true,
            },
        );
    let mut fake = FakeConfig::ecam().with(AT, f);
    let bars = size_and_check_restored(&mut fake);
    assert_eq!(
        bars.slots,
        [
            implemented(0, BarKind::Io, 0xc000, 32, false),
            implemented(1, BarKind::Memory32, 0xfebf_0000, 0x1000, false),
            implemented(2, BarKind::Memory64, 0x8_0000_0000, 0x4000, true),
            BarSlot::UpperHalf { lower: 2 },
            BarSlot::Unimplemented,
            implemented(5, BarKind::Memory32, 0xfd00_0000, 0x10_0000, true),
        ]
    );
    assert_eq!(bars.iter().count(), 4);
    assert_eq!(bars.get(2).unwrap().size, 0x4000);
    assert_eq!(bars.get(3), None);
    // Command went off and came back with two single 32-bit writes; Status kept its bits.
    let command_writes: Vec<_> = fake.writes.iter().filter(|w| w.offset == 0x04).collect();
    assert_eq!(command_writes.len(), 2);
    assert_eq!(
        command_writes[0].value,
        u32::from(Command::BUS_MASTER.bits())
    );
    assert_eq!(command_writes[1].value, 0b111);
    assert_eq!(fake.function(AT).get16(0x06), errors.bits());
}

#[test]
fn leaves_command_alone_when_decode_is_already_off() {
    let f = FakeFunction::endpoint(0x8086, 0x10d3, 0x020000, 0)
        .with_command(Command::BUS_MASTER.bits())
        .with_bar(
            0,
            BarModel::Memory32 {
                address: 0xfebf_0000,
                size: 0x1000,
                prefetchable: false,
            },
        );
    let mut fake = FakeConfig::ecam().with(AT, f);
    size_and_check_restored(&mut fake);
    assert!(fake.writes.iter().all(|w| w.offset != 0x04));
    // Each BAR: all ones, then the original; unimplemented ones too.
    assert_eq!(fake.writes.len(), 12);
}

#[test]
fn sixty_four_bit_bars_larger_than_4g() {
    let f = FakeFunction::endpoint(0x10de, 0x2204, 0x030000, 0xa1)
        .with_command(0b11)
        .with_bar(
            0,
            BarModel::Memory64 {
                address: 0x40_0000_0000,
                size: 8 << 30,
                prefetchable: true,
            },
        )
        .with_bar(
            4,
            BarModel::Memory64 {
                address: 0xfe00_0000,
                size: 0x20_0000,
                prefetchable: false,
            },
        );
    let mut fake = FakeConfig::ecam().with(AT, f);
    let bars = size_and_check_restored(&mut fake);
    assert_eq!(
        bars.slots[0],
        implemented(0, BarKind::Memory64, 0x40_0000_0000, 8 << 30, true)
    );
    assert_eq!(bars.slots[1], BarSlot::UpperHalf { lower: 0 });
    assert_eq!(
        bars.slots[4],
        implemented(4, BarKind::Memory64, 0xfe00_0000, 0x20_0000, false)
    );
    assert_eq!(bars.slots[5], BarSlot::UpperHalf { lower: 4 });
}

#[test]
fn sixty_four_bit_bar_in_the_last_slot_is_an_error() {
    let f = FakeFunction::endpoint(0x8086, 0x10d3, 0x020000, 0).with_bar(
        5,
        BarModel::Raw {
            initial: 0xfe00_0004,
            writable: 0xffff_f000,
        },
    );
    let mut fake = FakeConfig::ecam().with(AT, f);
    let bars = size_and_check_restored(&mut fake);
    assert_eq!(
        bars.slots[5],
        BarSlot::Invalid(BarError::SixtyFourBitInLastSlot { index: 5 })
    );
    // The same in a bridge's second slot.
    let f = FakeFunction::bridge(0x8086, 0x244e, 0, 1, 1).with_bar(
        1,
        BarModel::Raw {
            initial: 0x4,
            writable: 0xffff_f000,
        },
    );
    let mut fake = FakeConfig::ecam().with(AT, f);
    let bars = size_and_check_restored(&mut fake);
    assert_eq!(bars.slots.len(), 2);
    assert_eq!(
        bars.slots[1],
        BarSlot::Invalid(BarError::SixtyFourBitInLastSlot { index: 1 })
    );
}

#[test]
fn bridges_have_two_bars() {
    let f = FakeFunction::bridge(0x1b36, 0x000c, 0, 1, 1)
        .with_command(0b10)
        .with_bar(
            0,
            BarModel::Memory64 {
                address: 0xfea0_0000,
                size: 0x1000,
                prefetchable: false,
            },
        );
    let mut fake = FakeConfig::ecam().with(AT, f);
    let bars = size_and_check_restored(&mut fake);
    // 0x18 (bus numbers) is not a BAR in a bridge: never written.
    assert_eq!(
        bars.slots,
        [
            implemented(0, BarKind::Memory64, 0xfea0_0000, 0x1000, false),
            BarSlot::UpperHalf { lower: 0 }
        ]
    );
    assert!(fake.writes.iter().all(|w| w.offset < 0x18));
    assert_eq!(fake.function(AT).get32(0x18) & 0xff_ffff, 0x01_0100);
}

#[test]
fn cardbus_and_unknown_layouts_are_not_sized() {
    for header_type in [2u8, 3, 0x7f] {
        let f = FakeFunction::endpoint(0x1180, 0x0476, 0x060700, 0)
            .with_header_type(header_type)
            .with_command(3);
        let mut fake = FakeConfig::ecam().with(AT, f);
        let bars = size(&mut fake);
        assert!(bars.slots.is_empty());
        assert!(fake.writes.is_empty());
    }
}

#[test]
fn nonsense_read_backs_are_errors_for_that_bar_only() {
    let f = FakeFunction::endpoint(0x8086, 0x10d3, 0x020000, 0)
        .with_command(0b11)
        // A hole in the writable address bits: no power-of-two size.
        .with_bar(
            0,
            BarModel::Raw {
                initial: 0xfe00_0000,
                writable: 0xfff0_f000,
            },
        )
        // Memory type 11b: reserved.
        .with_bar(
            1,
            BarModel::Raw {
                initial: 0xfd00_0006,
                writable: 0xffff_f000,
            },
        )
        // Prefetchable flag but no writable address bit.
        .with_bar(
            2,
            BarModel::Raw {
                initial: 0x8,
                writable: 0,
            },
        )
        // Memory type 01b ("below 1 MiB", PCI 2.x): a 32-bit BAR.
        .with_bar(
            3,
            BarModel::Raw {
                initial: 0x000d_0002,
                writable: 0xffff_c000,
            },
        )
        // An I/O BAR with its upper 16 bits hard-wired to zero: 16-bit decode.
        .with_bar(
            4,
            BarModel::Raw {
                initial: 0xc041,
                writable: 0x0000_ffc0,
            },
        )
        // An I/O BAR with a hole.
        .with_bar(
            5,
            BarModel::Raw {
                initial: 0xd001,
                writable: 0xffff_ff04,
            },
        );
    let mut fake = FakeConfig::ecam().with(AT, f);
    let bars = size_and_check_restored(&mut fake);
    assert_eq!(
        bars.slots,
        [
            BarSlot::Invalid(BarError::NotPowerOfTwo {
                index: 0,
                readback: 0xfff0_f000
            }),
            BarSlot::Invalid(BarError::ReservedMemoryType {
                index: 1,
                value: 0xffff_f006
            }),
            BarSlot::Invalid(BarError::NoAddressBits {
                index: 2,
                readback: 0x8
            }),
            implemented(3, BarKind::Memory32, 0x000d_0000, 0x4000, false),
            implemented(4, BarKind::Io, 0xc040, 0x40, false),
            BarSlot::Invalid(BarError::NotPowerOfTwo {
                index: 5,
                readback: 0xffff_ff05
            }),
        ]
    );
    assert_eq!(bars.errors().count(), 4);
    assert_eq!(
        bars.errors().next().unwrap().to_string(),
        "BAR 0: sizing read back 0xfff0f000, which is no power-of-two size"
    );
}

#[test]
fn every_power_of_two_size_decodes() {
    for shift in 4..32 {
        let size = 1u32 << shift;
        let f = FakeFunction::endpoint(1, 1, 0, 0).with_bar(
            0,
            BarModel::Memory32 {
                address: 0,
                size,
                prefetchable: false,
            },
        );
        let mut fake = FakeConfig::ecam().with(AT, f);
        assert_eq!(
            size_and_check_restored(&mut fake).get(0).unwrap().size,
            u64::from(size)
        );
    }
    for shift in 2..16 {
        let size = 1u32 << shift;
        let f = FakeFunction::endpoint(1, 1, 0, 0).with_bar(0, BarModel::Io { address: 0, size });
        let mut fake = FakeConfig::ecam().with(AT, f);
        assert_eq!(
            size_and_check_restored(&mut fake).get(0).unwrap().size,
            u64::from(size)
        );
    }
    for shift in 4..64 {
        let size = 1u64 << shift;
        let f = FakeFunction::endpoint(1, 1, 0, 0).with_bar(
            0,
            BarModel::Memory64 {
                address: 0,
                size,
                prefetchable: true,
            },
        );
        let mut fake = FakeConfig::ecam().with(AT, f);
        let bars = size_and_check_restored(&mut fake);
        assert_eq!(bars.get(0).unwrap().size, size, "2^{shift}");
        assert_eq!(bars.get(0).unwrap().kind, BarKind::Memory64);
    }
}

#[test]
fn bars_print_like_lspci_v() {
    let io = Bar {
        index: 0,
        kind: BarKind::Io,
        address: 0xc000,
        size: 32,
        prefetchable: false,
    };
    assert_eq!(io.to_string(), "Region 0: I/O ports at c000 [size=32]");
    let mem = Bar {
        index: 2,
        kind: BarKind::Memory64,
        address: 0xfe00_0000,
        size: 16 << 20,
        prefetchable: true,
    };
    assert_eq!(
        mem.to_string(),
        "Region 2: Memory at fe000000 (64-bit, prefetchable) [size=16M]"
    );
    let mem = Bar {
        index: 1,
        kind: BarKind::Memory32,
        address: 0xfebf_1000,
        size: 0x1000,
        prefetchable: false,
    };
    assert_eq!(
        mem.to_string(),
        "Region 1: Memory at febf1000 (32-bit, non-prefetchable) [size=4K]"
    );
    let huge = Bar {
        size: 8 << 30,
        ..mem
    };
    assert!(huge.to_string().ends_with("[size=8G]"));
}

proptest! {
    /// Whatever a BAR reads back, sizing never panics, restores every register and
    /// Command, and never sizes with decode on.
    #[test]
    fn arbitrary_bars_never_panic_and_always_restore(
        values in proptest::collection::vec((any::<u32>(), any::<u32>()), 6),
        command in any::<u16>(),
        bridge in any::<bool>(),
    ) {
        let mut f = if bridge {
            FakeFunction::bridge(1, 1, 0, 1, 1)
        } else {
            FakeFunction::endpoint(1, 1, 0, 0)
        }
        .with_command(command & 0x7ff);
        let count = if bridge { 2 } else { 6 };
        for (index, &(initial, writable)) in values.iter().enumerate().take(count) {
            f = f.with_bar(index, BarModel::Raw { initial, writable });
        }
        let mut fake = FakeConfig::ecam().with(AT, f);
        let before = fake.function(AT).config.clone();
        let bars = size(&mut fake);
        prop_assert_eq!(&fake.function(AT).config, &before);
        prop_assert!(fake.violations.is_empty());
        prop_assert_eq!(bars.slots.len(), count);
        for bar in bars.iter() {
            prop_assert!(bar.size.is_power_of_two());
            prop_assert_eq!(bar.address & (bar.size - 1), 0);
        }
        let _ = fake.read::<u32>(addr(AT), 0x10);
    }
}
