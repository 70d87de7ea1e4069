//! HPET: the main counter as a clock (calibration reference) and its comparators.
//! Registers per the IA-PC HPET specification 1.0a, section 2.3.

use crate::memory::mmio::{self, Mmio};

const GCAP_ID: u64 = 0x00;
/// GCAP_ID fields: counter period in femtoseconds (63:32), last timer's number (12:8).
const GCAP_PERIOD_SHIFT: u64 = 32;
const GCAP_NUM_TIM_SHIFT: u64 = 8;
const GCAP_NUM_TIM_MASK: u64 = 0x1f;
const GEN_CONF: u64 = 0x10;
const MAIN_COUNTER: u64 = 0xf0;
/// Bytes of register space (timers 0..31 at 0x100 + 0x20·N).
const REGISTER_SPACE: u64 = 0x400;
const GEN_CONF_ENABLE: u64 = 1 << 0;
/// Legacy replacement routing steals timers 0/1 for IRQ0/IRQ8; we route explicitly.
const GEN_CONF_LEGACY: u64 = 1 << 1;

const fn timer_conf(n: u32) -> u64 {
    0x100 + 0x20 * n as u64
}
const fn timer_comparator(n: u32) -> u64 {
    0x108 + 0x20 * n as u64
}

bitflags::bitflags! {
    /// Timer N configuration and capability register, low half (spec 2.3.8).
    #[derive(Clone, Copy, Debug)]
    pub struct TimerConf: u64 {
        const LEVEL = 1 << 1;
        const INT_ENABLE = 1 << 2;
        const PERIODIC = 1 << 3;
        const PERIODIC_CAP = 1 << 4;
        const SIZE_64_CAP = 1 << 5;
        const VAL_SET = 1 << 6;
        const MODE_32 = 1 << 8;
        const FSB_ENABLE = 1 << 14;
        const FSB_CAP = 1 << 15;
    }
}
const ROUTE_SHIFT: u64 = 9;
const ROUTE_MASK: u64 = 0x1f << ROUTE_SHIFT;
/// Tn_INT_ROUTE_CAP (63:32): the I/O APIC inputs this timer can be routed to.
const ROUTE_CAP_SHIFT: u64 = 32;
const ROUTE_CAP_MASK: u64 = 0xffff_ffff << ROUTE_CAP_SHIFT;
/// Femtoseconds per tick must be non-zero and at most 100 ns (spec 2.3.4).
const MAX_PERIOD_FS: u64 = 100_000_000;

pub struct Hpet {
    regs: Mmio,
    period_fs: u64,
    comparators: u32,
}

#[derive(Debug)]
pub enum HpetError {
    Map(mmio::MmioError),
    BadPeriod(u64),
}

impl core::fmt::Display for HpetError {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        match self {
            HpetError::Map(e) => write!(f, "cannot map registers: {e}"),
            HpetError::BadPeriod(p) => write!(f, "counter period {p} fs is out of spec"),
        }
    }
}

static HPET: spin::Once<Hpet> = spin::Once::new();

pub fn get() -> Option<&'static Hpet> {
    HPET.get()
}

/// Maps the HPET, checks its period and starts the main counter.
pub fn init(base: u64) -> Result<&'static Hpet, HpetError> {
    let regs = mmio::map(base, REGISTER_SPACE).map_err(HpetError::Map)?;
    let cap = regs.read64(GCAP_ID);
    let period_fs = cap >> GCAP_PERIOD_SHIFT;
    if period_fs == 0 || period_fs > MAX_PERIOD_FS {
        return Err(HpetError::BadPeriod(period_fs));
    }
    let comparators = ((cap >> GCAP_NUM_TIM_SHIFT) & GCAP_NUM_TIM_MASK) as u32 + 1;
    let conf = regs.read64(GEN_CONF);
    regs.write64(GEN_CONF, (conf & !GEN_CONF_LEGACY) | GEN_CONF_ENABLE);
    Ok(HPET.call_once(|| Hpet {
        regs,
        period_fs,
        comparators,
    }))
}

impl Hpet {
    pub fn counter(&self) -> u64 {
        self.regs.read64(MAIN_COUNTER)
    }
    pub fn period_fs(&self) -> u64 {
        self.period_fs
    }
    pub fn comparators(&self) -> u32 {
        self.comparators
    }
    pub fn phys(&self) -> u64 {
        self.regs.phys()
    }
    /// I/O APIC inputs timer `n` can be routed to (bit i = GSI i).
    pub fn route_cap(&self, n: u32) -> u32 {
        ((self.regs.read64(timer_conf(n)) & ROUTE_CAP_MASK) >> ROUTE_CAP_SHIFT) as u32
    }

    /// Sets timer `n` up as a one-shot, edge-triggered, 64-bit comparator routed to
    /// I/O APIC input `gsi`, with its interrupt disabled until `set_enabled`.
    pub fn setup_oneshot(&self, n: u32, gsi: u32) -> Result<(), &'static str> {
        if n >= self.comparators {
            return Err("no such comparator");
        }
        if gsi >= 32 || self.route_cap(n) & (1 << gsi) == 0 {
            return Err("the comparator cannot be routed to that GSI");
        }
        let conf = TimerConf::from_bits_retain(self.regs.read64(timer_conf(n)));
        if !conf.contains(TimerConf::SIZE_64_CAP) {
            return Err("the comparator is 32-bit only");
        }
        // The high half is the read-only routing capability.
        let keep = conf.bits() & !(ROUTE_MASK | ROUTE_CAP_MASK);
        let mut new = TimerConf::from_bits_retain(keep);
        new.remove(
            TimerConf::LEVEL
                | TimerConf::INT_ENABLE
                | TimerConf::PERIODIC
                | TimerConf::MODE_32
                | TimerConf::FSB_ENABLE,
        );
        self.regs
            .write64(timer_conf(n), new.bits() | (u64::from(gsi) << ROUTE_SHIFT));
        Ok(())
    }

    pub fn set_enabled(&self, n: u32, on: bool) {
        let mut conf = TimerConf::from_bits_retain(self.regs.read64(timer_conf(n)));
        conf.set(TimerConf::INT_ENABLE, on);
        self.regs.write64(timer_conf(n), conf.bits());
    }

    /// Fires timer `n` (one-shot) when the main counter reaches `deadline`.
    pub fn arm(&self, n: u32, deadline: u64) {
        self.regs.write64(timer_comparator(n), deadline);
    }

    /// Counter ticks in `ns` nanoseconds.
    pub fn ticks_for_ns(&self, ns: u64) -> u64 {
        (u128::from(ns) * 1_000_000 / u128::from(self.period_fs)) as u64
    }
    pub fn ticks_to_ns(&self, ticks: u64) -> u64 {
        (u128::from(ticks) * u128::from(self.period_fs) / 1_000_000) as u64
    }
}
