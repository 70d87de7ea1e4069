//! A lost-interrupt detector: an HPET comparator in one-shot mode that only its own
//! handler re-arms. If one interrupt is ever lost the chain stops for good — exactly how
//! a device that waits for its edge to be serviced fails — so "handled keeps growing and
//! equals armed" proves nothing was lost.
//!
//! Three chains run on the same logic, each on a comparator of its own: [`IOAPIC`] routes
//! its comparator through an I/O APIC input (the I/O APIC's two-step moves), [`MSI`]
//! through its FSB route as an HPET-MSI irq (`irq::domains::hpet_msi`: maskable message
//! storage, moved by mask–write–unmask), and [`LEVEL`] through an I/O APIC input in
//! level mode (HPET spec §2.3.8, Tn_INT_TYPE_CNF): the comparator holds its line
//! asserted until the handler clears its bit in the general interrupt status register
//! (§2.3.6), and the I/O APIC entry stays at Remote IRR until the interrupt is ended —
//! under remapping only the chip's EOI at the I/O APIC ends it, so a chain that keeps
//! running proves that EOI on real registers.
//!
//! A deadline that has already passed when written never fires on real hardware (until
//! the 64-bit counter wraps), so `arm` re-arms further out if it sees the counter beyond
//! the deadline (a *late* arm). QEMU fires a passed comparator at once, so each late arm
//! may bring one interrupt that is no link: it is counted against the late arms, not as
//! stale. Any other interrupt that is not a new link is *stale*: a second delivery of a
//! link — a failure of whatever delivered it twice, except where a duplicate is the
//! documented price of a route (HPET-MSI: QEMU fires a passed comparator again when its
//! Tn_CFG is written, and the storage's unmask delivers a match that fell in a masked
//! window once more, docs/hpet-msi.md). The chains through the I/O APIC have no such
//! excuse: there a stale interrupt is a double delivery.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use sluice_irq_core::desc::IrqReturn;
use sluice_irq_core::{CpuMask, Virq};

use sluice_hpet::regs::{Timer, TimerConf};
use sluice_regs::Reg;

use crate::time::hpet::{self, Hpet};

/// GENERAL_INT_STATUS (HPET spec §2.3.6): bit n is comparator n's level interrupt,
/// active while set; writing 1 clears it and drops the comparator's line.
const GENERAL_INT_STATUS: Reg<u64> = Reg::new(0x20);

/// Time from one link to the next.
pub const PERIOD_NS: u64 = 1_000_000;

/// Where a comparator waits while its chain is not yet armed: far beyond any run.
const PARKED_NS: u64 = 3_600_000_000_000;

/// How the comparator's interrupt reaches the CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Through an I/O APIC input.
    IoApic,
    /// Through its FSB route, an HPET-MSI irq.
    Msi,
    /// Through an I/O APIC input, level-triggered.
    IoApicLevel,
}

/// No irq / no comparator yet.
const NONE: u32 = u32::MAX;

/// One chain's state.
pub struct Chain {
    delivery: Delivery,
    running: AtomicBool,
    timer: AtomicU32,
    virq: AtomicU32,
    /// Links armed / handled, interrupts that were no new link, current deadline.
    armed: AtomicU64,
    handled: AtomicU64,
    stale: AtomicU64,
    /// Arms whose deadline had passed when written, and of those the ones whose
    /// interrupt (QEMU's, at once) has not arrived: each excuses one early arrival.
    late: AtomicU64,
    late_owed: AtomicU64,
    /// Level chain: handler runs that found the comparator's status clear.
    unsolicited: AtomicU64,
    deadline: AtomicU64,
    /// HPET counter at the last handled link.
    last_link: AtomicU64,
}

/// The chain through the I/O APIC, on the block's last comparator that has an I/O APIC
/// input to drive.
pub static IOAPIC: Chain = Chain::new(Delivery::IoApic);
/// The chain over HPET-MSI, on the highest other comparator with FSB delivery.
pub static MSI: Chain = Chain::new(Delivery::Msi);
/// The level-triggered chain through the I/O APIC, on the lowest free comparator that
/// can reach an input from 16 up.
pub static LEVEL: Chain = Chain::new(Delivery::IoApicLevel);

#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    pub armed: u64,
    pub handled: u64,
    pub stale: u64,
    /// Arms whose deadline had passed when written (the handler was held up).
    pub late: u64,
    /// Level chain: handler runs with the comparator's status clear — an interrupt the
    /// comparator never raised, i.e. one interrupt delivered twice.
    pub unsolicited: u64,
    /// HPET time since the last link, in ns.
    pub since_last_ns: u64,
}

impl Chain {
    const fn new(delivery: Delivery) -> Self {
        Self {
            delivery,
            running: AtomicBool::new(false),
            timer: AtomicU32::new(NONE),
            virq: AtomicU32::new(NONE),
            armed: AtomicU64::new(0),
            handled: AtomicU64::new(0),
            stale: AtomicU64::new(0),
            late: AtomicU64::new(0),
            late_owed: AtomicU64::new(0),
            unsolicited: AtomicU64::new(0),
            deadline: AtomicU64::new(0),
            last_link: AtomicU64::new(0),
        }
    }

    pub fn delivery(&self) -> Delivery {
        self.delivery
    }

    /// How the shell names it.
    pub fn name(&self) -> &'static str {
        match self.delivery {
            Delivery::IoApic => "hpet-chain",
            Delivery::Msi => "hpet-chain msi",
            Delivery::IoApicLevel => "hpet-chain level",
        }
    }

    pub fn stats(&self) -> Stats {
        let since = hpet::get().map_or(0, |h| {
            h.ticks_to_ns(
                h.counter()
                    .saturating_sub(self.last_link.load(Ordering::SeqCst)),
            )
        });
        // handled first: the handler counts the next link armed before this one handled,
        // so read in this order a snapshot never shows a link outstanding as done.
        let handled = self.handled.load(Ordering::SeqCst);
        Stats {
            armed: self.armed.load(Ordering::SeqCst),
            handled,
            stale: self.stale.load(Ordering::SeqCst),
            late: self.late.load(Ordering::SeqCst),
            unsolicited: self.unsolicited.load(Ordering::SeqCst),
            since_last_ns: since,
        }
    }

    pub fn virq(&self) -> Option<Virq> {
        match self.virq.load(Ordering::SeqCst) {
            NONE => None,
            v => Some(v as Virq),
        }
    }

    /// The comparator the chain runs on, once it has one.
    pub fn comparator(&self) -> Option<u32> {
        match self.timer.load(Ordering::SeqCst) {
            NONE => None,
            t => Some(t),
        }
    }

    pub fn running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }

    fn arm_next(&self, h: &Hpet, timer: u32) {
        let mut delta = h.ticks_for_ns(PERIOD_NS);
        loop {
            let deadline = h.counter() + delta;
            self.deadline.store(deadline, Ordering::SeqCst);
            h.arm(timer, deadline);
            if h.counter() < deadline {
                break;
            }
            // Too slow (a vCPU descheduled by the host): go further out. QEMU fires the
            // passed deadline at once; its interrupt is expected, once.
            self.late.fetch_add(1, Ordering::SeqCst);
            self.late_owed.fetch_add(1, Ordering::SeqCst);
            delta *= 2;
        }
    }

    /// Through an I/O APIC input (its enable is the chain's switch)?
    fn through_ioapic(&self) -> bool {
        matches!(self.delivery, Delivery::IoApic | Delivery::IoApicLevel)
    }

    fn fire(&self) -> IrqReturn {
        let Some(h) = hpet::get() else {
            return IrqReturn::NotHandled;
        };
        if self.delivery == Delivery::IoApicLevel {
            // Ours only while the comparator's status bit is set; clearing it drops the
            // line before the next deadline is armed, so the clear never meets a match
            // of the next link.
            let bit = 1u64 << self.timer.load(Ordering::SeqCst);
            if GENERAL_INT_STATUS.read(&h.regs()) & bit == 0 {
                self.unsolicited.fetch_add(1, Ordering::SeqCst);
                return IrqReturn::NotHandled;
            }
            GENERAL_INT_STATUS.write(&h.regs(), bit);
        }
        let now = h.counter();
        if now < self.deadline.load(Ordering::SeqCst) {
            let late_one = self
                .late_owed
                .try_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if !late_one {
                self.stale.fetch_add(1, Ordering::SeqCst);
            }
            return IrqReturn::Handled;
        }
        // The next link is counted as armed before this one is counted as handled, so
        // `handled == armed` only ever holds when no link is outstanding or about to be
        // armed. Counting it after arming let `stop` (on another CPU) see the two equal in
        // between, leave, and then report the link armed behind its back as lost.
        let rearm = self.running();
        if rearm {
            self.armed.fetch_add(1, Ordering::SeqCst);
        }
        self.handled.fetch_add(1, Ordering::SeqCst);
        self.last_link.store(now, Ordering::SeqCst);
        if rearm {
            self.arm_next(h, self.timer.load(Ordering::SeqCst));
        } else {
            self.deadline.store(u64::MAX, Ordering::SeqCst);
        }
        IrqReturn::Handled
    }

    /// The chain's irq, allocated at its first start and kept for the boot.
    fn irq(&'static self, h: &Hpet, affinity: &CpuMask) -> Result<Virq, alloc::string::String> {
        if let Some(v) = self.virq() {
            return Ok(v);
        }
        let (timer, virq) = match self.delivery {
            Delivery::IoApic => {
                let timer = ioapic_comparator(h)?;
                if !h.claim(timer) {
                    return Err(alloc::format!("comparator {timer} is in use"));
                }
                let r = route_through_ioapic(h, timer, affinity);
                if r.is_err() {
                    h.release(timer);
                }
                (timer, r?)
            }
            Delivery::IoApicLevel => {
                let timer = level_comparator(h)?;
                if !h.claim(timer) {
                    return Err(alloc::format!("comparator {timer} is in use"));
                }
                let r = route_level_through_ioapic(h, timer, affinity);
                if r.is_err() {
                    h.release(timer);
                }
                (timer, r?)
            }
            Delivery::Msi => {
                crate::irq::domains::hpet_msi::status()
                    .map_err(|why| alloc::format!("HPET-MSI is not offered here: {why}"))?;
                let timer = msi_comparator(h)?;
                let v = crate::irq::domains::hpet_msi::request(
                    timer,
                    affinity,
                    "HPET-MSI chain",
                    on_fire_msi,
                )?;
                (timer, v)
            }
        };
        self.timer.store(timer, Ordering::SeqCst);
        self.virq.store(virq, Ordering::SeqCst);
        Ok(virq)
    }

    /// Starts the chain targeted at `affinity`. Idempotent per boot: the irq is allocated
    /// once and reused.
    pub fn start(&'static self, affinity: &CpuMask) -> Result<Virq, alloc::string::String> {
        let h = hpet::get().ok_or("no HPET")?;
        if self.running() {
            return Err("already running".into());
        }
        let reused = self.virq().is_some();
        let virq = self.irq(h, affinity)?;
        let timer = self.timer.load(Ordering::SeqCst);
        self.armed.store(0, Ordering::SeqCst);
        self.handled.store(0, Ordering::SeqCst);
        self.stale.store(0, Ordering::SeqCst);
        self.late.store(0, Ordering::SeqCst);
        self.late_owed.store(0, Ordering::SeqCst);
        self.unsolicited.store(0, Ordering::SeqCst);
        self.last_link.store(h.counter(), Ordering::SeqCst);
        self.running.store(true, Ordering::SeqCst);
        if self.through_ioapic() {
            // Through the I/O APIC the comparator's enable is the chain's own switch; an
            // FSB comparator's is its irq's mask, which the core set when the irq started.
            // QEMU fires a comparator whose value has passed when its Tn_CFG enables it —
            // the last run's value, here — which would arrive as a stale interrupt: the
            // comparator is parked an hour out first.
            h.arm(timer, h.counter() + h.ticks_for_ns(PARKED_NS));
            h.set_enabled(timer, true);
        }
        self.armed.fetch_add(1, Ordering::SeqCst);
        self.arm_next(h, timer);
        if reused {
            // A move made while the chain was stopped is still in flight (moves complete on
            // the first interrupt at the new target): let links run, then re-target.
            self.retarget(virq, affinity).inspect_err(|_| {
                self.stop();
            })?;
        }
        Ok(virq)
    }

    /// Moves the running chain to `affinity`. A move, or the cleanup of the last one, that
    /// is still in flight makes the core answer Busy; then this waits for a link and
    /// retries.
    pub fn retarget(&self, virq: Virq, affinity: &CpuMask) -> Result<(), alloc::string::String> {
        for _ in 0..50 {
            match crate::irq::set_affinity(virq, affinity, false) {
                Ok(_) => return Ok(()),
                Err(sluice_irq_core::IrqError::Busy) => self.wait_link(100_000_000)?,
                Err(e) => return Err(alloc::format!("{e}")),
            }
        }
        Err("the chain's irq stayed busy".into())
    }

    /// Waits (bounded by `limit_ns`) for the next link to be handled.
    pub fn wait_link(&self, limit_ns: u64) -> Result<(), alloc::string::String> {
        let target = self.handled.load(Ordering::SeqCst) + 1;
        let deadline = crate::time::nanos_since_boot() + limit_ns;
        while self.handled.load(Ordering::SeqCst) < target {
            if crate::time::nanos_since_boot() > deadline {
                return Err("the chain stalled while a move was in flight".into());
            }
            core::hint::spin_loop();
        }
        Ok(())
    }

    /// Stops re-arming and waits (bounded) for the last armed link to be handled.
    pub fn stop(&self) -> Stats {
        self.running.store(false, Ordering::SeqCst);
        let deadline = crate::time::nanos_since_boot() + LAST_LINK_GRACE_NS;
        while self.handled.load(Ordering::SeqCst) < self.armed.load(Ordering::SeqCst)
            && crate::time::nanos_since_boot() < deadline
        {
            x86_64::instructions::hlt();
        }
        if let (Some(h), true, Some(t)) = (hpet::get(), self.through_ioapic(), self.comparator()) {
            h.set_enabled(t, false);
        }
        self.stats()
    }
}

/// How long `stop` waits for the last armed link. A lost interrupt never arrives, so a
/// generous bound only delays a failure report; a tight one would call a link that a
/// starved host delayed (seen: >120 ms with two 8-vCPU guests on 2 cores) a loss.
const LAST_LINK_GRACE_NS: u64 = 2_000_000_000;

fn on_fire_ioapic(_virq: Virq) -> IrqReturn {
    IOAPIC.fire()
}

fn on_fire_msi(_virq: Virq) -> IrqReturn {
    MSI.fire()
}

fn on_fire_level(_virq: Virq) -> IrqReturn {
    LEVEL.fire()
}

/// Routes `timer` through the highest I/O APIC input it can reach that is free, as an
/// irq targeted at `affinity`.
fn route_through_ioapic(
    h: &Hpet,
    timer: u32,
    affinity: &CpuMask,
) -> Result<Virq, alloc::string::String> {
    let cap = h.route_cap(timer);
    let mut last_err = alloc::string::String::from("no routable I/O APIC input");
    for gsi in (0..32).rev().filter(|g| cap & (1 << g) != 0) {
        if let Err(e) = h.setup_oneshot(timer, gsi) {
            last_err = e.into();
            continue;
        }
        match crate::irq::request_gsi(
            gsi,
            crate::acpi::Trigger::Edge,
            crate::acpi::Polarity::ActiveHigh,
            None,
            "HPET chain",
            *affinity,
            on_fire_ioapic,
        ) {
            Ok(v) => return Ok(v),
            Err(e) => last_err = alloc::format!("GSI {gsi}: {e}"),
        }
    }
    Err(last_err)
}

/// Routes `timer` in level mode through the highest free I/O APIC input from 16 up, as
/// a level-triggered, active-high irq targeted at `affinity`. Inputs below 16 are left
/// out: there a level HPET interrupt's polarity is the chipset's business (QEMU drives
/// them inverted, active low, as ICH's ISA inputs are), while from 16 up it is active
/// high (ICH: the HPET's inputs 20–23).
fn route_level_through_ioapic(
    h: &Hpet,
    timer: u32,
    affinity: &CpuMask,
) -> Result<Virq, alloc::string::String> {
    let cap = h.route_cap(timer) & !0xffff;
    let mut last_err = alloc::string::String::from("no routable I/O APIC input from 16 up");
    for gsi in (16..32).rev().filter(|g| cap & (1 << g) != 0) {
        if let Err(e) = h.setup_oneshot(timer, gsi) {
            last_err = e.into();
            continue;
        }
        Timer(timer)
            .config()
            .modify(&h.regs(), |c| c | TimerConf::LEVEL);
        match crate::irq::request_gsi(
            gsi,
            crate::acpi::Trigger::Level,
            crate::acpi::Polarity::ActiveHigh,
            None,
            "HPET level chain",
            *affinity,
            on_fire_level,
        ) {
            Ok(v) => return Ok(v),
            Err(e) => last_err = alloc::format!("GSI {gsi}: {e}"),
        }
    }
    Err(last_err)
}

/// The level chain's comparator: the lowest free one that can reach an input from 16 up
/// and is not the I/O APIC chain's, so that the chains can run side by side.
fn level_comparator(h: &Hpet) -> Result<u32, alloc::string::String> {
    let theirs = ioapic_comparator(h).ok();
    (0..h.comparators())
        .filter(|&n| Some(n) != theirs)
        .find(|&n| !h.claimed(n) && h.route_cap(n) & !0xffff != 0)
        .ok_or_else(|| {
            alloc::format!(
                "no free comparator other than the I/O APIC chain's can reach an I/O APIC input from 16 up (of {})",
                h.comparators()
            )
        })
}

/// The I/O APIC chain's comparator: the last one that can be routed to an I/O APIC
/// input. On hardware that is the block's last; QEMU 10 decodes only the spec's 1 KiB
/// of registers, so with `-global hpet.timers=32` comparators 24..31 read as zero
/// (no routes, no capabilities), and the chain runs on comparator 23.
fn ioapic_comparator(h: &Hpet) -> Result<u32, alloc::string::String> {
    (0..h.comparators())
        .rev()
        .find(|&n| h.route_cap(n) != 0)
        .ok_or_else(|| {
            alloc::format!(
                "none of the {} comparators can be routed to an I/O APIC input",
                h.comparators()
            )
        })
}

/// The MSI chain's comparator: the highest free one with FSB delivery, leaving the I/O
/// APIC chain's to it so that both can run side by side.
fn msi_comparator(h: &Hpet) -> Result<u32, alloc::string::String> {
    let theirs = ioapic_comparator(h).ok();
    let free = |n: &u32| h.fsb_capable(*n) && !h.claimed(*n);
    (0..h.comparators())
        .rev()
        .filter(|&n| Some(n) != theirs)
        .find(free)
        .or_else(|| theirs.filter(free))
        .ok_or_else(|| {
            alloc::format!(
                "no free comparator with FSB delivery (of {} comparators; {} is the I/O APIC chain's)",
                h.comparators(),
                theirs.map_or(alloc::string::String::from("none"), |n| alloc::format!("{n}"))
            )
        })
}

/// The chain through the I/O APIC (the interface the hotplug tests use).
pub fn start(affinity: &CpuMask) -> Result<Virq, alloc::string::String> {
    IOAPIC.start(affinity)
}
pub fn stop() -> Stats {
    IOAPIC.stop()
}
