//! The local APIC's registers and the values they hold, by their offsets in the xAPIC
//! page (SDM vol. 3A table 11-1). In x2APIC mode each is MSR 0x800 + offset/16 (table
//! 11-6): both modes reach them through one block (`local::Access`), so a register is
//! named once.

use sluice_regs::{ReadOnly, Reg, RegArray, Value, WriteOnly};

use super::{IpiDest, IpiKind};

/// Bits 31:24 in xAPIC mode, all 32 in x2APIC mode.
pub const ID: Reg<u32, ReadOnly> = Reg::new(0x20);
/// Version (7:0), last LVT entry (23:16).
pub const VERSION: Reg<u32, ReadOnly> = Reg::new(0x30);
pub const TPR: Reg<u32> = Reg::new(0x80);
/// Write-only: reading EOI in x2APIC mode faults.
pub const EOI: Reg<u32, WriteOnly> = Reg::new(0xb0);
pub const SVR: Reg<Svr> = Reg::new(0xf0);
/// The Interrupt Request Register: 256 bits as eight 32-bit registers, 16 bytes
/// apart in the xAPIC page, consecutive MSRs in x2APIC mode (SDM vol. 3A §11.8.4).
pub const IRR: RegArray<u32, ReadOnly> = RegArray::new(0x200, 0x10, 8);
/// The Trigger Mode Register, laid out as the IRR: a bit is set when its vector was
/// accepted level-triggered, and that vector's EOI is then broadcast to the I/O APICs
/// (SDM vol. 3A §11.8.4–§11.8.5).
pub const TMR: RegArray<u32, ReadOnly> = RegArray::new(0x180, 0x10, 8);
/// The Error Status Register: latches errors only after a write (§11.5.3).
pub const ESR: Reg<u32> = Reg::new(0x280);
/// xAPIC: the ICR's low word, written last (the write sends the IPI).
pub const ICR_LOW: Reg<u32> = Reg::new(0x300);
/// xAPIC: the ICR's high word, the destination in bits 31:24.
pub const ICR_HIGH: Reg<u32> = Reg::new(0x310);
/// x2APIC: the whole ICR, one 64-bit MSR write (§11.12.9).
pub const ICR: Reg<Icr, WriteOnly> = Reg::new(0x300);
pub const LVT_TIMER: Reg<Lvt> = Reg::new(0x320);
pub const LVT_LINT0: Reg<Lvt> = Reg::new(0x350);
pub const LVT_LINT1: Reg<Lvt> = Reg::new(0x360);
pub const LVT_ERROR: Reg<Lvt> = Reg::new(0x370);
pub const TIMER_INITIAL: Reg<u32> = Reg::new(0x380);
pub const TIMER_CURRENT: Reg<u32, ReadOnly> = Reg::new(0x390);
pub const TIMER_DIVIDE: Reg<u32> = Reg::new(0x3e0);
/// x2APIC only: a vector to send to this CPU (§11.12.11).
pub const SELF_IPI: Reg<u32, WriteOnly> = Reg::new(0x3f0);

/// IA32_APIC_BASE (SDM vol. 3A §11.4.4, §11.12.1).
pub(super) const IA32_APIC_BASE: u32 = 0x1b;
/// In xAPIC mode the ID register and the ICR's destination hold an 8-bit id in 31:24.
pub(super) const XAPIC_ID_SHIFT: u32 = 24;
/// Divide the timer's input clock by 16 (SDM vol. 3, figure 11-10: 0b0011).
pub(super) const TIMER_DIVIDE_16: u32 = 0b0011;
/// x2APIC registers are MSRs 0x800 + (xAPIC offset / 16) (SDM vol. 3A §11.12.1.2).
pub(super) const X2APIC_MSR_BASE: u32 = 0x800;

bitflags::bitflags! {
    /// IA32_APIC_BASE's mode bits; the rest (the xAPIC page's address, BSP) is kept
    /// as read.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(super) struct ApicBase: u64 {
        /// EXTD: x2APIC mode (with EN).
        const X2APIC = 1 << 10;
        /// EN: the APIC is enabled.
        const ENABLE = 1 << 11;
    }
}

/// Delivery mode, bits 10:8 of an LVT entry and of the ICR (SDM vol. 3A §11.5.1,
/// §11.6.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub(super) enum Delivery {
    Fixed = 0b000,
    Nmi = 0b100,
    Init = 0b101,
    StartUp = 0b110,
    ExtInt = 0b111,
}

impl Delivery {
    const fn bits(self) -> u32 {
        (self as u32) << 8
    }
}

/// A local vector table entry (SDM vol. 3A §11.5.1, figure 11-8): vector (7:0),
/// delivery mode (10:8), mask (16), and for the timer its mode (18:17).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lvt(u32);

impl Lvt {
    const MASKED: u32 = 1 << 16;
    const TIMER_PERIODIC: u32 = 1 << 17;

    pub(super) const fn fixed(vector: u8) -> Lvt {
        Lvt(vector as u32 | Delivery::Fixed.bits())
    }
    pub(super) const fn delivering(mode: Delivery) -> Lvt {
        Lvt(mode.bits())
    }
    pub(super) const fn masked(self) -> Lvt {
        Lvt(self.0 | Self::MASKED)
    }
    pub(super) const fn periodic(self) -> Lvt {
        Lvt(self.0 | Self::TIMER_PERIODIC)
    }
}

impl Value for Lvt {
    type Raw = u32;
    fn from_raw(raw: u32) -> Self {
        Lvt(raw)
    }
    fn to_raw(self) -> u32 {
        self.0
    }
}

/// The spurious-interrupt vector register (SDM vol. 3A §11.9): the vector (7:0) and
/// the APIC software enable (8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Svr(u32);

impl Svr {
    const ENABLE: u32 = 1 << 8;

    pub(super) const fn disabled(spurious: u8) -> Svr {
        Svr(spurious as u32)
    }
    pub(super) const fn enabled(self) -> Svr {
        Svr(self.0 | Self::ENABLE)
    }
}

impl Value for Svr {
    type Raw = u32;
    fn from_raw(raw: u32) -> Self {
        Svr(raw)
    }
    fn to_raw(self) -> u32 {
        self.0
    }
}

/// The interrupt command register (SDM vol. 3A §11.6.1, figure 11-12; x2APIC §11.12.9):
/// the command in bits 31:0 — vector, delivery mode, delivery status (12), level (14),
/// trigger mode (15), shorthand (19:18) — and the destination APIC id in 63:32 (the
/// xAPIC's ICR high holds an 8-bit one in its bits 31:24).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Icr(u64);

impl Icr {
    /// xAPIC: the previous IPI is still being sent.
    pub(super) const DELIVERY_PENDING: u32 = 1 << 12;
    const LEVEL_ASSERT: u32 = 1 << 14;
    const TRIGGER_LEVEL: u32 = 1 << 15;
    const SHORTHAND_SELF: u32 = 0b01 << 18;
    const SHORTHAND_ALL_EXCLUDING_SELF: u32 = 0b11 << 18;

    pub(super) fn new(dest: IpiDest, kind: IpiKind) -> Icr {
        let (mode, vector) = match kind {
            IpiKind::Fixed(v) => (Delivery::Fixed.bits(), v),
            IpiKind::Nmi => (Delivery::Nmi.bits(), 0),
            IpiKind::Init => (
                Delivery::Init.bits() | Self::LEVEL_ASSERT | Self::TRIGGER_LEVEL,
                0,
            ),
            IpiKind::InitDeassert => (Delivery::Init.bits() | Self::TRIGGER_LEVEL, 0),
            IpiKind::Startup(page) => (Delivery::StartUp.bits(), page),
        };
        let level = if matches!(kind, IpiKind::InitDeassert) {
            0
        } else {
            Self::LEVEL_ASSERT
        };
        let (shorthand, apic) = match dest {
            IpiDest::Apic(id) => (0, id),
            IpiDest::SelfOnly => (Self::SHORTHAND_SELF, 0),
            IpiDest::AllExcludingSelf => (Self::SHORTHAND_ALL_EXCLUDING_SELF, 0),
        };
        let low = u32::from(vector) | mode | level | shorthand;
        Icr(u64::from(apic) << 32 | u64::from(low))
    }

    pub(super) const fn low(self) -> u32 {
        self.0 as u32
    }

    /// The xAPIC's ICR high word.
    pub(super) const fn xapic_high(self) -> u32 {
        ((self.0 >> 32) as u32) << XAPIC_ID_SHIFT
    }
}

impl Value for Icr {
    type Raw = u64;
    fn from_raw(raw: u64) -> Self {
        Icr(raw)
    }
    fn to_raw(self) -> u64 {
        self.0
    }
}
