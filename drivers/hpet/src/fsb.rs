//! A comparator's FSB interrupt route as MSI message storage (IA-PC HPET 1.0a §2.3.8,
//! §2.3.10): the message's address in Tn_FSB_INT_ADDR (32 bits: there is no upper
//! address word), its data in Tn_FSB_INT_VAL, and Tn_INT_ENB_CNF as the mask. Each
//! method is one 32-bit register write, as `MsiStorage` requires; a block's comparators
//! are its message numbers.
//!
//! **The mask does not latch.** The interrupt core treats maskable storage the way PCI
//! defines it: a message raised while masked is held pending and sent on unmask, so an
//! affinity change may mask, rewrite and unmask without losing anything. An HPET
//! comparator in edge mode with its interrupt disabled matches and forgets: no message,
//! and no status bit either (§2.3.6 leaves the status undefined for edge). So this
//! storage keeps the pending bit itself: `mask` notes the main counter just before it
//! disables the interrupt, and `unmask`, after enabling it again, checks whether the
//! comparator's value was reached in between. If it was, the match may have fallen in
//! the masked window and the message is delivered once more through [`Retrigger`]. The
//! window's edges are included, so a match that was in fact delivered just before the
//! mask or just after the unmask is delivered twice: the cost of never losing one. (QEMU
//! 10 adds its own copy: it re-arms a comparator when its Tn_CFG is written, and one
//! whose value has passed fires again at once — so there re-enabling brings a masked
//! match back even without this latch, and the latch's copy is the duplicate, when the
//! two do not merge in the APIC's IRR.) A driver that counts its interrupts must
//! tolerate a duplicate, as the HPET chain does (it counts one as stale).
//!
//! The latch assumes one-shot comparators (a periodic one re-arms itself; nothing here
//! uses one), compared at the width the comparator runs at.

use core::sync::atomic::{AtomicU64, Ordering};

use sluice_irq_core::Result;
use sluice_irq_core::msi::{MsiCaps, MsiMsg, MsiStorage};

use crate::regs::{HpetRegs, MAIN_COUNTER, MAX_COMPARATORS, Timer, TimerConf};

/// Delivers a comparator's message once more, without the comparator (whose value its
/// driver owns): in the kernel, an IPI of the message's vector to its destination.
pub trait Retrigger: Send + Sync {
    /// Comparator `n` holds `msg` and matched while masked.
    fn retrigger(&self, n: u32, msg: &MsiMsg);
}

/// `masked_at` of a comparator that is not masked by this storage.
const NOT_MASKED: u64 = u64::MAX;

/// The FSB routes of one HPET block's comparators.
pub struct FsbStorage<R: HpetRegs, X: Retrigger> {
    regs: R,
    comparators: u32,
    retrigger: X,
    /// Per comparator: the main counter just before `mask` disabled its interrupt, while
    /// it is masked. Written under the comparator's irq's descriptor lock; atomic only so
    /// that `&self` suffices.
    masked_at: [AtomicU64; MAX_COMPARATORS as usize],
    /// Matches that may have fallen in a masked window, delivered again.
    retriggered: AtomicU64,
}

impl<R: HpetRegs, X: Retrigger> FsbStorage<R, X> {
    /// Storage for the first `comparators` comparators of the block behind `regs`
    /// (at most 32).
    pub fn new(regs: R, comparators: u32, retrigger: X) -> Self {
        Self {
            regs,
            comparators: comparators.min(MAX_COMPARATORS),
            retrigger,
            masked_at: [const { AtomicU64::new(NOT_MASKED) }; MAX_COMPARATORS as usize],
            retriggered: AtomicU64::new(0),
        }
    }

    /// Messages delivered again after a match in a masked window (since boot).
    pub fn retriggered(&self) -> u64 {
        self.retriggered.load(Ordering::Relaxed)
    }

    fn timer(&self, n: u32) -> Option<Timer> {
        (n < self.comparators).then_some(Timer(n))
    }

    fn conf(&self, t: Timer) -> TimerConf {
        t.config().read(&self.regs)
    }

    /// Was the comparator's value reached after the counter read `since` and by `now`,
    /// at the width the comparator compares?
    fn reached_between(conf: TimerConf, cmp: u64, since: u64, now: u64) -> bool {
        let wide = conf.contains(TimerConf::SIZE_64_CAP) && !conf.contains(TimerConf::MODE_32);
        if wide {
            let due = cmp.wrapping_sub(since);
            due != 0 && due <= now.wrapping_sub(since)
        } else {
            let due = (cmp as u32).wrapping_sub(since as u32);
            due != 0 && due <= (now as u32).wrapping_sub(since as u32)
        }
    }
}

impl<R: HpetRegs, X: Retrigger> MsiStorage for FsbStorage<R, X> {
    fn caps(&self) -> MsiCaps {
        MsiCaps {
            maskable: true,
            nvec: self.comparators,
            multi_vector: false,
            dynamic: false,
            addr64: false,
        }
    }

    fn write_addr_lo(&self, index: u32, value: u32) {
        if let Some(t) = self.timer(index) {
            t.fsb_addr().write(&self.regs, value);
        }
    }

    /// There is no upper address word; the core never asks for one (`addr64` is
    /// false, and neither a compatibility nor a remappable message has one).
    fn write_addr_hi(&self, _index: u32, _value: u32) {}

    fn write_data(&self, index: u32, value: u32) {
        if let Some(t) = self.timer(index) {
            t.fsb_data().write(&self.regs, value);
        }
    }

    fn mask(&self, index: u32) -> Result<()> {
        let t = self
            .timer(index)
            .ok_or(sluice_irq_core::IrqError::InvalidArgument)?;
        // The counter before the write: a match at or before this value happened while
        // the interrupt was still enabled. Masked twice, the first window still counts.
        let now = MAIN_COUNTER.read(&self.regs);
        let _ = self.masked_at[index as usize].compare_exchange(
            NOT_MASKED,
            now,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        let conf = self.conf(t);
        t.config().write(&self.regs, conf - TimerConf::INT_ENABLE);
        Ok(())
    }

    fn unmask(&self, index: u32) -> Result<()> {
        let t = self
            .timer(index)
            .ok_or(sluice_irq_core::IrqError::InvalidArgument)?;
        let conf = self.conf(t);
        t.config().write(&self.regs, conf | TimerConf::INT_ENABLE);
        let since = self.masked_at[index as usize].swap(NOT_MASKED, Ordering::Relaxed);
        if since == NOT_MASKED || conf.contains(TimerConf::PERIODIC) {
            return Ok(());
        }
        // Both read after the write: a match after this counter value finds the
        // interrupt enabled.
        let now = MAIN_COUNTER.read(&self.regs);
        let cmp = t.comparator().read(&self.regs);
        if Self::reached_between(conf, cmp, since, now) {
            self.retriggered.fetch_add(1, Ordering::Relaxed);
            self.retrigger.retrigger(index, &self.read(index));
        }
        Ok(())
    }

    /// Reads the comparator's configuration back: the HPET's register writes are posted
    /// like any MMIO write, and a read of the same block returns only after them (and
    /// after any message the block sent before it), so a plan's IRR check or a freed
    /// vector sees what the block really holds.
    fn flush(&self, index: u32) {
        if let Some(t) = self.timer(index) {
            let _ = self.conf(t);
        }
    }

    fn read(&self, index: u32) -> MsiMsg {
        match self.timer(index) {
            Some(t) => MsiMsg {
                addr_lo: t.fsb_addr().read(&self.regs),
                addr_hi: 0,
                data: t.fsb_data().read(&self.regs),
            },
            None => MsiMsg::default(),
        }
    }
}
