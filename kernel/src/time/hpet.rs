//! HPET: the main counter as a clock (calibration reference) and its comparators.
//! Registers per the IA-PC HPET specification 1.0a, section 2.3 (`sluice_hpet::regs`).
//!
//! The clock uses the main counter only: calibration reads it and the periodic tick is
//! the local APIC timer. So every comparator is left over for interrupt sources — the
//! HPET chains through the I/O APIC or through their FSB route (`sluice_hpet::fsb`,
//! HPET-MSI) — which claim one each (`claim`), so two users never share a comparator.

use core::sync::atomic::{AtomicU32, Ordering};

use sluice_hpet::regs::{
    GCAP_ID, GEN_CONF, GenConf, MAIN_COUNTER, MAX_REGISTER_SPACE, ROUTE_MASK, ROUTE_SHIFT, Timer,
    TimerConf,
};

use crate::memory::mmio::{self, Mmio};

/// Femtoseconds per tick must be non-zero and at most 100 ns (spec 2.3.4).
const MAX_PERIOD_FS: u64 = 100_000_000;

pub struct Hpet {
    regs: Mmio,
    period_fs: u64,
    comparators: u32,
    /// Bit n: comparator n has a user (see `claim`).
    claimed: AtomicU32,
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
    // The capability says how far the block's registers reach (past 1 KiB with more than
    // 24 comparators): map the most any block can have, then keep only this block's.
    let most = mmio::map(base, MAX_REGISTER_SPACE as u64).map_err(HpetError::Map)?;
    let cap = GCAP_ID.read(&most);
    let regs = most.sub(0, cap.register_space() as u64);
    let period_fs = cap.period_fs();
    if period_fs == 0 || period_fs > MAX_PERIOD_FS {
        return Err(HpetError::BadPeriod(period_fs));
    }
    let comparators = cap.comparators();
    // Legacy replacement routing would steal comparators 0/1 for IRQ0/IRQ8; every
    // comparator is routed explicitly instead.
    GEN_CONF.modify(&regs, |conf| (conf - GenConf::LEGACY) | GenConf::ENABLE);
    Ok(HPET.call_once(|| Hpet {
        regs,
        period_fs,
        comparators,
        claimed: AtomicU32::new(0),
    }))
}

impl Hpet {
    pub fn counter(&self) -> u64 {
        MAIN_COUNTER.read(&self.regs)
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
    /// The register mapping (the FSB storage of HPET-MSI writes through it).
    pub fn regs(&self) -> Mmio {
        self.regs
    }

    /// Comparator `n`'s configuration as it is now.
    pub fn conf(&self, n: u32) -> TimerConf {
        Timer(n).config().read(&self.regs)
    }

    /// I/O APIC inputs timer `n` can be routed to (bit i = GSI i).
    pub fn route_cap(&self, n: u32) -> u32 {
        Timer(n).route_cap().read(&self.regs)
    }

    /// Can comparator `n` deliver through its FSB route (Tn_FSB_INT_DEL_CAP)?
    pub fn fsb_capable(&self, n: u32) -> bool {
        n < self.comparators && self.conf(n).contains(TimerConf::FSB_CAP)
    }

    /// Takes comparator `n` for one user; false if it has one (or does not exist).
    pub fn claim(&self, n: u32) -> bool {
        n < self.comparators && self.claimed.fetch_or(1 << n, Ordering::SeqCst) & (1 << n) == 0
    }

    /// Whether comparator `n` has a user.
    pub fn claimed(&self, n: u32) -> bool {
        n < self.comparators && self.claimed.load(Ordering::SeqCst) & (1 << n) != 0
    }

    /// Gives comparator `n` back.
    pub fn release(&self, n: u32) {
        if n < self.comparators {
            self.claimed.fetch_and(!(1 << n), Ordering::SeqCst);
        }
    }

    /// The configuration of a 64-bit, edge-triggered, one-shot comparator with its
    /// interrupt disabled, keeping only the capability bits of `conf`.
    fn oneshot(&self, n: u32) -> Result<TimerConf, &'static str> {
        if n >= self.comparators {
            return Err("no such comparator");
        }
        let conf = self.conf(n);
        if !conf.contains(TimerConf::SIZE_64_CAP) {
            return Err("the comparator is 32-bit only");
        }
        Ok(
            conf.intersection(
                TimerConf::PERIODIC_CAP | TimerConf::SIZE_64_CAP | TimerConf::FSB_CAP,
            ),
        )
    }

    /// Sets timer `n` up as a one-shot, edge-triggered, 64-bit comparator routed to
    /// I/O APIC input `gsi`, with its interrupt disabled until `set_enabled`.
    pub fn setup_oneshot(&self, n: u32, gsi: u32) -> Result<(), &'static str> {
        let conf = self.oneshot(n)?;
        if gsi >= 32 || self.route_cap(n) & (1 << gsi) == 0 {
            return Err("the comparator cannot be routed to that GSI");
        }
        Timer(n).config().write(
            &self.regs,
            conf | TimerConf::from_bits_retain((gsi << ROUTE_SHIFT) & ROUTE_MASK),
        );
        Ok(())
    }

    /// Sets timer `n` up as a one-shot, edge-triggered, 64-bit comparator delivering
    /// through its FSB route, with its interrupt disabled: from here on its interrupt
    /// enable is the mask of its HPET-MSI irq (`fsb::FsbStorage`), which the interrupt
    /// core clears when the irq starts, after writing the route.
    pub fn setup_fsb_oneshot(&self, n: u32) -> Result<(), &'static str> {
        let conf = self.oneshot(n)?;
        if !conf.contains(TimerConf::FSB_CAP) {
            return Err("the comparator cannot deliver through its FSB route");
        }
        Timer(n)
            .config()
            .write(&self.regs, conf | TimerConf::FSB_ENABLE);
        Ok(())
    }

    /// Enables or disables timer `n`'s interrupt (an I/O APIC-routed comparator's: an
    /// FSB one's is its irq's mask, the interrupt core's to set).
    pub fn set_enabled(&self, n: u32, on: bool) {
        let mut conf = self.conf(n);
        conf.set(TimerConf::INT_ENABLE, on);
        Timer(n).config().write(&self.regs, conf);
    }

    /// Fires timer `n` (one-shot) when the main counter reaches `deadline`.
    pub fn arm(&self, n: u32, deadline: u64) {
        Timer(n).comparator().write(&self.regs, deadline);
    }

    /// Counter ticks in `ns` nanoseconds.
    pub fn ticks_for_ns(&self, ns: u64) -> u64 {
        (u128::from(ns) * 1_000_000 / u128::from(self.period_fs)) as u64
    }
    pub fn ticks_to_ns(&self, ticks: u64) -> u64 {
        (u128::from(ticks) * u128::from(self.period_fs) / 1_000_000) as u64
    }
}
