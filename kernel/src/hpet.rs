//! HPET: the main counter as a clock (calibration reference) and its comparators.
//! Registers per the IA-PC HPET specification 1.0a, section 2.3.

use crate::memory::mmio::{self, Mmio};

const GCAP_ID: u64 = 0x00;
const GEN_CONF: u64 = 0x10;
const MAIN_COUNTER: u64 = 0xf0;
const GEN_CONF_ENABLE: u64 = 1 << 0;
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
    let regs = mmio::map(base, 0x400).map_err(HpetError::Map)?;
    let cap = regs.read64(GCAP_ID);
    let period_fs = cap >> 32;
    if period_fs == 0 || period_fs > MAX_PERIOD_FS {
        return Err(HpetError::BadPeriod(period_fs));
    }
    let comparators = ((cap >> 8) & 0x1f) as u32 + 1;
    let conf = regs.read64(GEN_CONF);
    regs.write64(GEN_CONF, conf | GEN_CONF_ENABLE);
    Ok(HPET.call_once(|| Hpet { regs, period_fs, comparators }))
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
    /// Counter ticks in `ns` nanoseconds.
    pub fn ticks_for_ns(&self, ns: u64) -> u64 {
        (u128::from(ns) * 1_000_000 / u128::from(self.period_fs)) as u64
    }
    pub fn ticks_to_ns(&self, ticks: u64) -> u64 {
        (u128::from(ticks) * u128::from(self.period_fs) / 1_000_000) as u64
    }
}
