//! The HPET's registers (IA-PC HPET specification 1.0a, §2.3) as typed registers
//! (`sluice_regs::Reg`) and fields, and the one access trait the HPET code goes through:
//! the kernel's mapping implements it, and so does the model the host tests run the FSB
//! storage against (`tests/fsb.rs`).

use sluice_regs::{ReadOnly, Reg, RegisterBlock32, RegisterBlock64, Value};

/// General Capabilities and ID (§2.3.4).
pub const GCAP_ID: Reg<GeneralCaps, ReadOnly> = Reg::new(0x00);
/// General Configuration (§2.3.5).
pub const GEN_CONF: Reg<GenConf> = Reg::new(0x10);
/// Main Counter Value (§2.3.7).
pub const MAIN_COUNTER: Reg<u64> = Reg::new(0xf0);
/// Comparators one block can have (the 5-bit NUM_TIM_CAP field, plus one).
pub const MAX_COMPARATORS: u32 = 32;
/// The register map's 1 KiB (§2.3.1: general registers below 0x100, comparators 0..23
/// from 0x100 up to 0x3ff).
const SPEC_REGISTER_SPACE: usize = 0x400;
/// Bytes a block with [`MAX_COMPARATORS`] reaches: comparator n is at 0x100 + 0x20·n, so
/// comparators 24..31 lie past the spec's 1 KiB. Map this much, then keep what the
/// block's capability says it has ([`GeneralCaps::register_space`]).
pub const MAX_REGISTER_SPACE: usize = Timer(MAX_COMPARATORS).base();

/// General Capabilities and ID (§2.3.4): counter period in femtoseconds (63:32), vendor
/// (31:16), LEG_RT_CAP (15), COUNT_SIZE_CAP (13), last comparator's number (12:8),
/// revision (7:0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GeneralCaps(pub u64);

impl GeneralCaps {
    /// COUNTER_CLK_PERIOD: femtoseconds per main counter tick.
    pub const fn period_fs(self) -> u64 {
        self.0 >> 32
    }

    /// Comparators in the block (NUM_TIM_CAP, the last one's number, plus one).
    pub const fn comparators(self) -> u32 {
        ((self.0 >> 8) & 0x1f) as u32 + 1
    }

    /// Bytes of register space this block has: the spec's 1 KiB, or up to the end of
    /// its last comparator's registers when it has more than 24.
    pub const fn register_space(self) -> usize {
        let end = Timer(self.comparators()).base();
        if end > SPEC_REGISTER_SPACE {
            end
        } else {
            SPEC_REGISTER_SPACE
        }
    }
}

impl Value for GeneralCaps {
    type Raw = u64;
    fn from_raw(raw: u64) -> Self {
        GeneralCaps(raw)
    }
    fn to_raw(self) -> u64 {
        self.0
    }
}

bitflags::bitflags! {
    /// General Configuration bits (§2.3.5).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct GenConf: u64 {
        /// The main counter runs and comparators may interrupt.
        const ENABLE = 1 << 0;
        /// Legacy replacement routing: comparators 0 and 1 drive IRQ0 and IRQ8,
        /// whatever their own routing says.
        const LEGACY = 1 << 1;
    }
}

impl Value for GenConf {
    type Raw = u64;
    fn from_raw(raw: u64) -> Self {
        GenConf::from_bits_retain(raw)
    }
    fn to_raw(self) -> u64 {
        self.bits()
    }
}

/// The 0x20-byte register block of comparator (timer) `n`, at 0x100 + 0x20·n.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timer(pub u32);

impl Timer {
    const fn base(self) -> usize {
        0x100 + 0x20 * self.0 as usize
    }
    /// Tn_CONF_CAP bits 31:0: the configuration ([`TimerConf`], §2.3.8).
    pub const fn config(self) -> Reg<TimerConf> {
        Reg::new(self.base())
    }
    /// Tn_CONF_CAP bits 63:32: Tn_INT_ROUTE_CAP, the I/O APIC inputs this comparator
    /// can be routed to (bit i = input i).
    pub const fn route_cap(self) -> Reg<u32, ReadOnly> {
        Reg::new(self.base() + 0x04)
    }
    /// Tn_COMPARATOR (§2.3.9), 64 bits (32 in 32-bit mode).
    pub const fn comparator(self) -> Reg<u64> {
        Reg::new(self.base() + 0x08)
    }
    /// Tn_FSB_INT_ROUTE bits 31:0 (§2.3.10): Tn_FSB_INT_VAL, the data written.
    pub const fn fsb_data(self) -> Reg<u32> {
        Reg::new(self.base() + 0x10)
    }
    /// Tn_FSB_INT_ROUTE bits 63:32: Tn_FSB_INT_ADDR, where it is written. The route has
    /// no wider address: an FSB message can only target the low 4 GiB, which the
    /// interrupt window 0xFEEx_xxxx is in.
    pub const fn fsb_addr(self) -> Reg<u32> {
        Reg::new(self.base() + 0x14)
    }
}

bitflags::bitflags! {
    /// Tn_CONF_CAP bits 31:0 (§2.3.8); the upper half is the read-only routing
    /// capability, reached through [`Timer::route_cap`].
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct TimerConf: u32 {
        /// Tn_INT_TYPE_CNF: level-triggered (edge when clear).
        const LEVEL = 1 << 1;
        /// Tn_INT_ENB_CNF: the comparator may interrupt. Clear, it still matches but
        /// raises nothing — and in edge mode keeps no status of the match either (§2.3.6:
        /// the status bit is meaningless for edge), so a match while clear is gone.
        const INT_ENABLE = 1 << 2;
        /// Tn_TYPE_CNF: periodic.
        const PERIODIC = 1 << 3;
        /// Tn_PER_INT_CAP: the comparator can run in periodic mode.
        const PERIODIC_CAP = 1 << 4;
        /// Tn_SIZE_CAP: the comparator is 64 bits wide.
        const SIZE_64_CAP = 1 << 5;
        /// Tn_VAL_SET_CNF: the next comparator write sets a periodic timer's value.
        const VAL_SET = 1 << 6;
        /// Tn_32MODE_CNF: a 64-bit comparator runs as a 32-bit one.
        const MODE_32 = 1 << 8;
        /// Tn_FSB_EN_CNF: deliver through the FSB route (a memory write) instead of an
        /// I/O APIC input.
        const FSB_ENABLE = 1 << 14;
        /// Tn_FSB_INT_DEL_CAP: the comparator can deliver through its FSB route.
        const FSB_CAP = 1 << 15;
    }
}

impl Value for TimerConf {
    type Raw = u32;
    fn from_raw(raw: u32) -> Self {
        TimerConf::from_bits_retain(raw)
    }
    fn to_raw(self) -> u32 {
        self.bits()
    }
}

/// Tn_INT_ROUTE_CNF (13:9): the I/O APIC input the comparator drives; its lowest bit.
pub const ROUTE_SHIFT: u32 = 9;
/// Tn_INT_ROUTE_CNF's bits in place.
pub const ROUTE_MASK: u32 = 0x1f << ROUTE_SHIFT;

/// Register access to one HPET block, as the HPET code needs it: offsets from the
/// block's base, every access one bus transaction of the width its register names (the
/// HPET takes 32- and 64-bit accesses; a 64-bit read of the main counter is atomic).
/// Implemented for every block that takes both widths and may be shared.
pub trait HpetRegs: RegisterBlock32 + RegisterBlock64 + Send + Sync {}

impl<R: RegisterBlock32 + RegisterBlock64 + Send + Sync> HpetRegs for R {}
