//! The HPET's registers (IA-PC HPET specification 1.0a, §2.3) as typed offsets and
//! fields, and the one access trait the HPET code goes through: the kernel's mapping
//! implements it, and so does the model the host tests run the FSB storage against
//! (`tests/fsb.rs`).

/// General Capabilities and ID (§2.3.4): counter period in femtoseconds (63:32), last
/// comparator's number (12:8).
pub const GCAP_ID: u64 = 0x00;
pub const GCAP_PERIOD_SHIFT: u64 = 32;
pub const GCAP_NUM_TIM_SHIFT: u64 = 8;
pub const GCAP_NUM_TIM_MASK: u64 = 0x1f;
/// General Configuration (§2.3.5).
pub const GEN_CONF: u64 = 0x10;
/// Main Counter Value (§2.3.7).
pub const MAIN_COUNTER: u64 = 0xf0;
/// Bytes of register space: comparators 0..31 at 0x100 + 0x20·N.
pub const REGISTER_SPACE: u64 = 0x400;
/// Comparators one block can have (the 5-bit NUM_TIM_CAP field, plus one).
pub const MAX_COMPARATORS: u32 = 32;

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

/// The 0x20-byte register block of comparator (timer) `n`, at 0x100 + 0x20·n.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timer(pub u32);

impl Timer {
    const fn base(self) -> u64 {
        0x100 + 0x20 * self.0 as u64
    }
    /// Tn_CONF_CAP bits 31:0: the configuration ([`TimerConf`], §2.3.8).
    pub const fn config(self) -> u64 {
        self.base()
    }
    /// Tn_CONF_CAP bits 63:32: Tn_INT_ROUTE_CAP, the I/O APIC inputs this comparator
    /// can be routed to (bit i = input i), read-only.
    pub const fn route_cap(self) -> u64 {
        self.base() + 0x04
    }
    /// Tn_COMPARATOR (§2.3.9), 64 bits (32 in 32-bit mode).
    pub const fn comparator(self) -> u64 {
        self.base() + 0x08
    }
    /// Tn_FSB_INT_ROUTE bits 31:0 (§2.3.10): Tn_FSB_INT_VAL, the data written.
    pub const fn fsb_data(self) -> u64 {
        self.base() + 0x10
    }
    /// Tn_FSB_INT_ROUTE bits 63:32: Tn_FSB_INT_ADDR, where it is written. The route has
    /// no wider address: an FSB message can only target the low 4 GiB, which the
    /// interrupt window 0xFEEx_xxxx is in.
    pub const fn fsb_addr(self) -> u64 {
        self.base() + 0x14
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

/// Tn_INT_ROUTE_CNF (13:9): the I/O APIC input the comparator drives.
pub const ROUTE_SHIFT: u32 = 9;
pub const ROUTE_MASK: u32 = 0x1f << ROUTE_SHIFT;

/// Register access to one HPET block, as message storage needs it: offsets are from the
/// block's base; every access is one bus transaction of the width named (the HPET takes
/// 32- and 64-bit accesses; a 64-bit read of the main counter is atomic).
pub trait HpetRegs: Send + Sync {
    fn read32(&self, offset: u64) -> u32;
    fn write32(&self, offset: u64, value: u32);
    fn read64(&self, offset: u64) -> u64;
}
