//! Typed registers against a model block that records every access with its width: each
//! typed access is exactly one raw access of the register's width at its offset (two
//! 64-bit reads, low half first, for a 128-bit register), values convert both ways
//! without losing bits, and computed registers land where the hardware has them.

use std::cell::RefCell;
use std::collections::HashMap;

use sluice_regs::{ReadOnly, Reg, RegArray, RegisterBlock32, RegisterBlock64, Value, WriteOnly};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    Read32(usize),
    Write32(usize, u32),
    Read64(usize),
    Write64(usize, u64),
}

/// Byte-addressed little-endian register memory; every access logged.
#[derive(Default)]
struct Model {
    bytes: RefCell<HashMap<usize, u8>>,
    log: RefCell<Vec<Access>>,
}

impl Model {
    fn load(&self, offset: usize, len: usize) -> u64 {
        let b = self.bytes.borrow();
        (0..len).fold(0, |v, i| {
            v | u64::from(*b.get(&(offset + i)).unwrap_or(&0)) << (8 * i)
        })
    }
    fn store(&self, offset: usize, len: usize, value: u64) {
        let mut b = self.bytes.borrow_mut();
        for i in 0..len {
            b.insert(offset + i, (value >> (8 * i)) as u8);
        }
    }
    fn take_log(&self) -> Vec<Access> {
        std::mem::take(&mut self.log.borrow_mut())
    }
}

impl RegisterBlock32 for Model {
    fn read32(&self, offset: usize) -> u32 {
        self.log.borrow_mut().push(Access::Read32(offset));
        self.load(offset, 4) as u32
    }
    fn write32(&self, offset: usize, value: u32) {
        self.log.borrow_mut().push(Access::Write32(offset, value));
        self.store(offset, 4, u64::from(value));
    }
}

impl RegisterBlock64 for Model {
    fn read64(&self, offset: usize) -> u64 {
        self.log.borrow_mut().push(Access::Read64(offset));
        self.load(offset, 8)
    }
    fn write64(&self, offset: usize, value: u64) {
        self.log.borrow_mut().push(Access::Write64(offset, value));
        self.store(offset, 8, value);
    }
}

bitflags::bitflags! {
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    struct Conf: u32 {
        const ENABLE = 1 << 0;
        const LEGACY = 1 << 1;
    }
}

impl Value for Conf {
    type Raw = u32;
    fn from_raw(raw: u32) -> Self {
        Conf::from_bits_retain(raw)
    }
    fn to_raw(self) -> u32 {
        self.bits()
    }
}

/// A newtype value over a 64-bit register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Period(u64);

impl Value for Period {
    type Raw = u64;
    fn from_raw(raw: u64) -> Self {
        Period(raw >> 32)
    }
    fn to_raw(self) -> u64 {
        self.0 << 32
    }
}

const CONF: Reg<Conf> = Reg::new(0x10);
const CAP: Reg<Period, ReadOnly> = Reg::new(0x00);
const COUNTER: Reg<u64> = Reg::new(0xf0);
const DOORBELL: Reg<u32, WriteOnly> = Reg::new(0x20);
const RECORD: Reg<u128, ReadOnly> = Reg::new(0x200);

#[test]
fn each_access_is_one_of_the_registers_width_at_its_offset() {
    let m = Model::default();
    CONF.write(&m, Conf::ENABLE);
    assert_eq!(CONF.read(&m), Conf::ENABLE);
    COUNTER.write(&m, 0x1234_5678_9abc_def0);
    assert_eq!(COUNTER.read(&m), 0x1234_5678_9abc_def0);
    DOORBELL.write(&m, 7);
    assert_eq!(
        m.take_log(),
        [
            Access::Write32(0x10, 1),
            Access::Read32(0x10),
            Access::Write64(0xf0, 0x1234_5678_9abc_def0),
            Access::Read64(0xf0),
            Access::Write32(0x20, 7),
        ]
    );
}

#[test]
fn values_convert_both_ways_and_keep_bits_they_do_not_name() {
    let m = Model::default();
    m.store(0x10, 4, 0x8000_0001);
    let c = CONF.read(&m);
    assert!(c.contains(Conf::ENABLE));
    assert_eq!(c.bits(), 0x8000_0001, "an unnamed bit survives the read");
    m.take_log();
    let written = CONF.modify(&m, |c| (c | Conf::LEGACY) - Conf::ENABLE);
    assert_eq!(written.bits(), 0x8000_0002);
    assert_eq!(m.load(0x10, 4), 0x8000_0002, "and the write back");
    assert_eq!(
        m.take_log(),
        [Access::Read32(0x10), Access::Write32(0x10, 0x8000_0002)],
        "modify is one read and one write, both of the register's width"
    );
    m.store(0x00, 8, 10_000_000 << 32 | 0x8086_a201);
    assert_eq!(CAP.read(&m), Period(10_000_000));
}

#[test]
fn a_128_bit_register_is_two_64_bit_reads_low_half_first() {
    let m = Model::default();
    m.store(0x200, 8, 0x0000_0000_dead_b000);
    m.store(0x208, 8, 0x8000_0006_0000_00f8);
    let r: u128 = RECORD.read(&m);
    assert_eq!(r >> 127, 1, "F, bit 127");
    assert_eq!(r as u64, 0xdead_b000);
    assert_eq!((r >> 64) as u64, 0x8000_0006_0000_00f8);
    assert_eq!(m.take_log(), [Access::Read64(0x200), Access::Read64(0x208)]);
}

#[test]
fn placed_and_indexed_registers_land_where_the_hardware_has_them() {
    // A comparator's registers defined relative to its block, placed at 0x100 + 0x20·n.
    const FSB_ADDR: Reg<u32> = Reg::new(0x14);
    for n in 0..32 {
        assert_eq!(FSB_ADDR.at(0x100 + 0x20 * n).offset(), 0x114 + 0x20 * n);
    }
    // An I/O APIC's redirection entries: low halves at 0x10 + 2n, up to its pins.
    let low = RegArray::<u32>::new(0x10, 2, 24);
    assert_eq!(low.get(0).map(Reg::offset), Some(0x10));
    assert_eq!(low.get(23).map(Reg::offset), Some(0x3e));
    assert_eq!(low.get(24), None);
    assert_eq!(
        low.with_len(120).get(119).map(Reg::offset),
        Some(0x10 + 238)
    );
    assert!(RegArray::<u32>::new(0, 4, 0).is_empty());
    // A nonsense base saturates instead of wrapping to a small, valid-looking offset.
    assert_eq!(FSB_ADDR.at(usize::MAX - 4).offset(), usize::MAX);
    let far = RegArray::<u64>::new(usize::MAX - 8, usize::MAX, 3);
    assert_eq!(far.get(2).map(Reg::offset), Some(usize::MAX));
}

#[test]
fn a_reference_to_a_block_is_a_block() {
    let m = Model::default();
    let by_ref: &dyn RegisterBlock32 = &m;
    CONF.write(&by_ref, Conf::LEGACY);
    assert_eq!(CONF.read(by_ref), Conf::LEGACY);
    assert_eq!(
        m.take_log(),
        [Access::Write32(0x10, 2), Access::Read32(0x10)]
    );
}
