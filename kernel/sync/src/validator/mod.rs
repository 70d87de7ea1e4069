//! The lock validator (after Linux's lockdep): it watches every acquisition and release
//! and reports, with the source sites involved, what could deadlock even if it did not
//! this time.
//!
//! Per lock class it records whether it was ever taken in hard-interrupt context,
//! whether it was ever held with interrupts enabled, and which classes were taken while
//! it was held. The rules, each reported once when first broken:
//!
//! * a class is taken in hard-irq context and held with interrupts on ([`Violation::IrqUnsafe`]);
//! * a class taken in hard-irq context reaches, through nestings, one held with interrupts
//!   on ([`Violation::IrqInversion`]);
//! * a nesting closes a cycle: A → B here, B → … → A recorded ([`Violation::OrderInversion`]);
//! * two locks of one class nested, unless both were taken with `lock_ordered` and ascending
//!   keys ([`Violation::SameClass`]);
//! * a nesting that the declared order forbids ([`Violation::Undocumented`], see [`LockOrder`]).
//!
//! Nestings are recorded within one context: a handler's locks are not ordered after
//! the locks of the code it interrupted (the interrupt rules cover that case). A
//! `try_lock` orders nothing after what is held and does not count as taken in hard-irq
//! context (it cannot wait), but is itself held.
//!
//! Memory is fixed: [`MAX_CLASSES`] classes, a bit matrix of nestings and its closure,
//! [`MAX_NESTINGS`] recorded nesting sites, [`KEPT_REPORTS`] reports; an overflow is
//! reported, never a panic. The common case — a known class, known usage, known
//! nesting — is a few atomic loads and no lock; the first sighting of a usage or a
//! nesting takes the validator's own lock to record and check it.

pub mod graph;
mod order;
mod report;

pub use graph::MAX_CLASSES;
pub use order::{LockOrder, OrderError};
pub use report::{Acquisition, Chain, MAX_CHAIN, Nesting, Overflow, Report, Site, Violation};

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, AtomicU64, AtomicUsize, Ordering};

use crate::class::{LockClass, UNREGISTERED, UNTRACKED};
use crate::held::{Entry, HeldLocks, How, MAX_HELD, Stack};
use crate::platform::{Context, Platform, platform};
use graph::{ClassSet, Graph};
use order::Declared;

/// Nestings whose first sites are kept for reports.
pub const MAX_NESTINGS: usize = 1024;
/// The most recent reports kept for [`report`] (all are counted and sent to the sink).
pub const KEPT_REPORTS: usize = 16;

/// Usage bits per class.
const IN_IRQ: u8 = 1;
const IRQS_ON: u8 = 2;

const WORDS: usize = MAX_CLASSES / 64;

/// A nesting's first sighting.
#[derive(Clone, Copy)]
struct NestingSites {
    held: u8,
    taken: u8,
    held_site: Site,
    taken_site: Site,
}

/// Everything the slow path reads and writes, under `Validator::lock`.
struct Tables {
    graph: Graph,
    in_irq_site: [Option<Site>; MAX_CLASSES],
    irqs_on_site: [Option<Site>; MAX_CLASSES],
    nestings: [Option<NestingSites>; MAX_NESTINGS],
    declared: Option<Declared>,
    kept: [Option<Report>; KEPT_REPORTS],
    /// Classes whose irq inversion was reported (once per outer class).
    irq_inversion_reported: ClassSet,
    /// Classes whose same-class nesting was reported (once per class).
    same_class_reported: ClassSet,
    class_overflow_reported: bool,
    nesting_overflow_reported: bool,
}

struct Validator {
    /// Serialises `tables` and registration; taken with interrupts off, never nested.
    lock: AtomicBool,
    enabled: AtomicBool,
    classes: [AtomicPtr<LockClass>; MAX_CLASSES],
    class_count: AtomicUsize,
    /// Per class: IN_IRQ | IRQS_ON, set once under the lock, read without it.
    usage: [AtomicU8; MAX_CLASSES],
    /// The graph's direct nestings, mirrored for the lock-free "already known" test.
    edges: [[AtomicU64; WORDS]; MAX_CLASSES],
    reports: AtomicU64,
    tables: UnsafeCell<Tables>,
}

// SAFETY: `tables` is only reached through `Validator::locked`, which holds `lock`; every
// other field is atomic.
unsafe impl Sync for Validator {}

static V: Validator = Validator {
    lock: AtomicBool::new(false),
    enabled: AtomicBool::new(cfg!(feature = "validate")),
    classes: [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_CLASSES],
    class_count: AtomicUsize::new(0),
    usage: [const { AtomicU8::new(0) }; MAX_CLASSES],
    edges: [const { [const { AtomicU64::new(0) }; WORDS] }; MAX_CLASSES],
    reports: AtomicU64::new(0),
    tables: UnsafeCell::new(Tables {
        graph: Graph::new(),
        in_irq_site: [None; MAX_CLASSES],
        irqs_on_site: [None; MAX_CLASSES],
        nestings: [None; MAX_NESTINGS],
        declared: None,
        kept: [None; KEPT_REPORTS],
        irq_inversion_reported: ClassSet::EMPTY,
        same_class_reported: ClassSet::EMPTY,
        class_overflow_reported: false,
        nesting_overflow_reported: false,
    }),
};

/// Reports found by one acquisition or release, delivered once bookkeeping is done.
struct Found {
    reports: [Option<Report>; 4],
    n: usize,
    /// The platform's CPU index hook (only asked when there is something to report).
    cpu: fn() -> u32,
}

impl Found {
    const fn new(cpu: fn() -> u32) -> Found {
        Found {
            reports: [None; 4],
            n: 0,
            cpu,
        }
    }
}

impl Validator {
    /// Runs `f` on the tables under the validator's lock. Interrupts must be off.
    fn locked<R>(&self, f: impl FnOnce(&mut Tables) -> R) -> R {
        while self
            .lock
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            while self.lock.load(Ordering::Relaxed) {
                core::hint::spin_loop();
            }
        }
        // SAFETY: `lock` is held, so this is the only reference to the tables; interrupts
        // are off and NMIs never validate, so nothing on this CPU re-enters.
        let r = f(unsafe { &mut *self.tables.get() });
        self.lock.store(false, Ordering::Release);
        r
    }

    fn class(&self, slot: usize) -> &'static LockClass {
        // SAFETY: slots below `class_count` hold pointers made from `&'static LockClass`
        // (written before the count was raised); callers only pass such slots.
        unsafe { &*self.classes[slot].load(Ordering::Acquire) }
    }

    fn edge_known(&self, from: usize, to: usize) -> bool {
        self.edges[from][to / 64].load(Ordering::Relaxed) & (1 << (to % 64)) != 0
    }

    /// Records a report (counted, kept) and queues it for the sink.
    fn record(&self, t: &mut Tables, found: &mut Found, violation: Violation) {
        let r = Report {
            cpu: (found.cpu)(),
            violation,
        };
        let seq = self.reports.fetch_add(1, Ordering::Relaxed);
        t.kept[(seq % KEPT_REPORTS as u64) as usize] = Some(r);
        if found.n < found.reports.len() {
            found.reports[found.n] = Some(r);
            found.n += 1;
        }
    }

    /// The class's slot, registering it on first use; `None` if it is not validated.
    fn slot_of(&self, class: &'static LockClass, site: Site, found: &mut Found) -> Option<usize> {
        match class.slot() {
            UNTRACKED => None,
            UNREGISTERED => self.locked(|t| self.register(t, class, Some((site, found)))),
            s => Some(usize::from(s) - 1),
        }
    }

    /// Gives `class` a slot under the lock (reporting a full table if `at` is given).
    fn register(
        &self,
        t: &mut Tables,
        class: &'static LockClass,
        at: Option<(Site, &mut Found)>,
    ) -> Option<usize> {
        match class.slot() {
            UNTRACKED => return None,
            UNREGISTERED => {}
            s => return Some(usize::from(s) - 1),
        }
        let n = self.class_count.load(Ordering::Relaxed);
        if n == MAX_CLASSES {
            class.set_slot(UNTRACKED);
            if let Some((site, found)) = at
                && !t.class_overflow_reported
            {
                t.class_overflow_reported = true;
                let violation = Violation::Overflow {
                    what: Overflow::Classes,
                    at: Acquisition {
                        class,
                        site: Some(site),
                    },
                };
                self.record(t, found, violation);
            }
            return None;
        }
        self.classes[n].store(
            class as *const LockClass as *mut LockClass,
            Ordering::Release,
        );
        self.class_count.store(n + 1, Ordering::Release);
        // n < MAX_CLASSES = 128, so n + 1 fits and stays below UNTRACKED.
        class.set_slot((n + 1) as u8);
        Some(n)
    }

    fn acquisition(&self, slot: usize, site: Option<Site>) -> Acquisition {
        Acquisition {
            class: self.class(slot),
            site,
        }
    }

    /// The recorded chain along the graph's shortest path `from` →+ `to`.
    fn chain(&self, t: &Tables, from: usize, to: usize) -> Chain {
        let mut c = Chain::empty();
        if let Some(p) = t.graph.path(from, to) {
            for w in p.nodes().windows(2) {
                let (a, b) = (usize::from(w[0]), usize::from(w[1]));
                let sites = t
                    .nestings
                    .iter()
                    .flatten()
                    .find(|n| usize::from(n.held) == a && usize::from(n.taken) == b);
                c.push(Nesting {
                    held: self.acquisition(a, sites.map(|s| s.held_site)),
                    taken: self.acquisition(b, sites.map(|s| s.taken_site)),
                });
            }
        }
        c
    }

    fn with_usage(&self, bit: u8) -> ClassSet {
        let mut s = ClassSet::EMPTY;
        for c in 0..self.class_count.load(Ordering::Acquire) {
            if self.usage[c].load(Ordering::Relaxed) & bit != 0 {
                s.insert(c);
            }
        }
        s
    }

    /// An irq-safe class in `safe` reaching an irq-unsafe one in `unsafe_` (not itself):
    /// reported once per safe class.
    fn check_irq_inversion(
        &self,
        t: &mut Tables,
        found: &mut Found,
        safe: ClassSet,
        unsafe_: ClassSet,
    ) {
        for x in safe.iter() {
            if t.irq_inversion_reported.contains(x) {
                continue;
            }
            let mut inner = t.graph.reach(x).intersection(unsafe_);
            inner.remove(x);
            let Some(y) = inner.first() else { continue };
            t.irq_inversion_reported.insert(x);
            let violation = Violation::IrqInversion {
                in_irq: self.acquisition(x, t.in_irq_site[x]),
                irqs_on: self.acquisition(y, t.irqs_on_site[y]),
                chain: self.chain(t, x, y),
            };
            self.record(t, found, violation);
            return;
        }
    }

    /// First sighting of `need`'s bits for `slot`: record the site, check the rules.
    fn note_usage(&self, slot: usize, need: u8, site: Site, found: &mut Found) {
        self.locked(|t| {
            let had = self.usage[slot].load(Ordering::Relaxed);
            let new = need & !had;
            if new == 0 {
                return;
            }
            if new & IN_IRQ != 0 {
                t.in_irq_site[slot] = Some(site);
            }
            if new & IRQS_ON != 0 {
                t.irqs_on_site[slot] = Some(site);
            }
            self.usage[slot].fetch_or(new, Ordering::Relaxed);
            if (had | new) == IN_IRQ | IRQS_ON {
                let violation = Violation::IrqUnsafe {
                    in_irq: self.acquisition(slot, t.in_irq_site[slot]),
                    irqs_on: self.acquisition(slot, t.irqs_on_site[slot]),
                };
                self.record(t, found, violation);
                return;
            }
            if new & IN_IRQ != 0 {
                let unsafe_ = self.with_usage(IRQS_ON);
                self.check_irq_inversion(t, found, ClassSet::single(slot), unsafe_);
            }
            if new & IRQS_ON != 0 {
                let safe = t.graph.reaching(slot).intersection(self.with_usage(IN_IRQ));
                self.check_irq_inversion(t, found, safe, ClassSet::single(slot));
            }
        })
    }

    /// First sighting of `held → taken` in this direction: record and check it.
    fn note_nesting(&self, held: &Entry, taken: usize, site: Site, found: &mut Found) {
        let from = usize::from(held.slot);
        self.locked(|t| {
            if t.graph.has_edge(from, taken) {
                return;
            }
            let now = Nesting {
                held: self.acquisition(from, Some(held.site)),
                taken: self.acquisition(taken, Some(site)),
            };
            let inversion = t
                .graph
                .closes_cycle(from, taken)
                .then(|| self.chain(t, taken, from));
            let forbidden = t.declared.as_ref().is_some_and(|d| d.forbids(from, taken));
            t.graph.add_edge(from, taken);
            self.edges[from][taken / 64].fetch_or(1 << (taken % 64), Ordering::Relaxed);
            match t.nestings.iter_mut().find(|n| n.is_none()) {
                Some(free) => {
                    *free = Some(NestingSites {
                        held: held.slot,
                        taken: taken as u8,
                        held_site: held.site,
                        taken_site: site,
                    })
                }
                None if !t.nesting_overflow_reported => {
                    t.nesting_overflow_reported = true;
                    let violation = Violation::Overflow {
                        what: Overflow::Nestings,
                        at: now.taken,
                    };
                    self.record(t, found, violation);
                }
                None => {}
            }
            if let Some(earlier) = inversion {
                let violation = Violation::OrderInversion { now, earlier };
                self.record(t, found, violation);
            } else if forbidden {
                let violation = Violation::Undocumented { now };
                self.record(t, found, violation);
            }
            let safe = t.graph.reaching(from).intersection(self.with_usage(IN_IRQ));
            let unsafe_ = t.graph.reach(from).intersection(self.with_usage(IRQS_ON));
            self.check_irq_inversion(t, found, safe, unsafe_);
        })
    }

    /// Checks and pushes one acquisition on `st`. Returns whether it was pushed.
    #[allow(clippy::too_many_arguments)]
    fn acquire(
        &self,
        st: &mut Stack,
        class: &'static LockClass,
        lock: usize,
        how: How,
        site: Site,
        ctx: Context,
        irqs_on: bool,
        found: &mut Found,
    ) -> bool {
        if st.reporting {
            return false;
        }
        let Some(slot) = self.slot_of(class, site, found) else {
            return false;
        };
        // A try-lock in an interrupt never waits, so it cannot spin on its own CPU's
        // holder: only what is waited for counts as taken in hard-irq context. Held with
        // interrupts on, though, it can be what an interrupt waits for.
        let waits_in_irq = ctx == Context::HardIrq && how != How::Try;
        let need = if waits_in_irq { IN_IRQ } else { 0 } | if irqs_on { IRQS_ON } else { 0 };
        if self.usage[slot].load(Ordering::Relaxed) & need != need {
            self.note_usage(slot, need, site, found);
        }
        if how != How::Try {
            // Nearest first, within this context; transitivity covers what lies below the
            // first lock that was waited for.
            for e in st.entries[..st.depth].iter().rev().flatten() {
                if e.ctx != ctx {
                    break;
                }
                if usize::from(e.slot) == slot {
                    if e.how == How::Try {
                        continue;
                    }
                    let keys = match (e.how, how) {
                        (How::Ordered(a), How::Ordered(b)) if a < b => continue,
                        (How::Ordered(a), How::Ordered(b)) => Some((a, b)),
                        _ => None,
                    };
                    let violation = Violation::SameClass {
                        now: Nesting {
                            held: self.acquisition(slot, Some(e.site)),
                            taken: self.acquisition(slot, Some(site)),
                        },
                        keys,
                    };
                    // Once per class: a repeated bad pattern would flood the sink.
                    self.locked(|t| {
                        if !t.same_class_reported.contains(slot) {
                            t.same_class_reported.insert(slot);
                            self.record(t, found, violation)
                        }
                    });
                    break;
                }
                if !self.edge_known(usize::from(e.slot), slot) {
                    self.note_nesting(e, slot, site, found);
                }
                if e.how != How::Try {
                    break;
                }
            }
        }
        if st.depth == MAX_HELD {
            if !st.overflow_reported {
                st.overflow_reported = true;
                let violation = Violation::Overflow {
                    what: Overflow::Held,
                    at: self.acquisition(slot, Some(site)),
                };
                self.locked(|t| self.record(t, found, violation));
            }
            return false;
        }
        st.entries[st.depth] = Some(Entry {
            lock,
            slot: slot as u8,
            how,
            ctx,
            site,
        });
        st.depth += 1;
        true
    }

    /// Removes `lock`'s entry from `st`; notes interrupts enabled while it was held.
    fn release(&self, st: &mut Stack, lock: usize, irqs_on: bool, found: &mut Found) {
        let Some(i) = st.entries[..st.depth]
            .iter()
            .rposition(|e| e.is_some_and(|e| e.lock == lock))
        else {
            return;
        };
        let e = st.entries[i].take().expect("found above");
        st.entries.copy_within(i + 1..st.depth, i);
        st.depth -= 1;
        st.entries[st.depth] = None;
        let slot = usize::from(e.slot);
        if irqs_on
            && self.enabled.load(Ordering::Relaxed)
            && self.usage[slot].load(Ordering::Relaxed) & IRQS_ON == 0
        {
            // Interrupts were enabled while it was held: as unsafe as taking it so.
            self.note_usage(slot, IRQS_ON, e.site, found);
        }
    }
}

/// Runs `f` with interrupts off on this CPU (bookkeeping must not be interrupted by a
/// handler that takes locks).
fn irqs_off<R>(p: &Platform, f: impl FnOnce(bool) -> R) -> R {
    let was = (p.disable_irqs)();
    let r = f(was);
    (p.restore_irqs)(was);
    r
}

/// Hands `found` to the platform's sink, validation suspended on this CPU meanwhile.
fn deliver(p: &Platform, held: Option<&'static HeldLocks>, found: &Found) {
    for r in found.reports.iter().flatten() {
        if let Some(h) = held {
            irqs_off(p, |_| h.with(|s| s.reporting = true));
        }
        (p.report)(r);
        if let Some(h) = held {
            irqs_off(p, |_| h.with(|s| s.reporting = false));
        }
    }
}

/// A lock of `class` at `lock` is being taken at `site`: check and record it. Returns the
/// stack it was pushed on (to be passed to [`release`]), `None` if not tracked.
pub(crate) fn acquire(
    class: &'static LockClass,
    lock: usize,
    how: How,
    site: Site,
) -> Option<&'static HeldLocks> {
    if !V.enabled.load(Ordering::Relaxed) {
        return None;
    }
    let p = platform();
    let ctx = (p.context)();
    if ctx == Context::Nmi {
        return None;
    }
    let held = (p.held_locks)()?;
    let mut found = Found::new(p.cpu);
    let pushed = irqs_off(p, |irqs_on| {
        held.with(|st| V.acquire(st, class, lock, how, site, ctx, irqs_on, &mut found))
    });
    deliver(p, Some(held), &found);
    pushed.then_some(held)
}

/// The lock at `lock`, tracked on `held` by [`acquire`], is being released.
pub(crate) fn release(held: &'static HeldLocks, lock: usize) {
    let p = platform();
    let mut found = Found::new(p.cpu);
    irqs_off(p, |irqs_on| {
        held.with(|st| V.release(st, lock, irqs_on, &mut found))
    });
    deliver(p, Some(held), &found);
}

/// Whether the validator checks acquisitions (always false without the `validate`
/// feature).
pub fn enabled() -> bool {
    V.enabled.load(Ordering::Relaxed)
}

/// Stops checking (a panic path that forces locks open), or starts again. Locks taken
/// while off are not tracked, before or after.
pub fn set_enabled(on: bool) {
    V.enabled
        .store(on && cfg!(feature = "validate"), Ordering::Relaxed);
}

/// Reports since boot (every one, kept or not).
pub fn report_count() -> u64 {
    V.reports.load(Ordering::Relaxed)
}

/// Report number `seq` (0 = the first since boot), if it is among the last
/// [`KEPT_REPORTS`].
pub fn report(seq: u64) -> Option<Report> {
    let total = report_count();
    if seq >= total || total - seq > KEPT_REPORTS as u64 {
        return None;
    }
    locked_irqs_off(|t| t.kept[(seq % KEPT_REPORTS as u64) as usize])
}

fn locked_irqs_off<R>(f: impl FnOnce(&mut Tables) -> R) -> R {
    irqs_off(platform(), |_| V.locked(f))
}

/// What the validator knows about one class.
#[derive(Clone, Copy, Debug)]
pub struct ClassUsage {
    /// The class.
    pub class: &'static LockClass,
    /// Its first acquisition in hard-irq context, if any.
    pub in_irq: Option<Site>,
    /// Its first acquisition (or release) with interrupts enabled, if any.
    pub irqs_on: Option<Site>,
}

/// Classes seen so far (registered at their first acquisition).
pub fn class_count() -> usize {
    V.class_count.load(Ordering::Acquire)
}

/// Class `i` (below [`class_count`]) and its usage.
pub fn class_usage(i: usize) -> Option<ClassUsage> {
    (i < class_count()).then(|| {
        locked_irqs_off(|t| ClassUsage {
            class: V.class(i),
            in_irq: t.in_irq_site[i],
            irqs_on: t.irqs_on_site[i],
        })
    })
}

/// Nesting `i` of the site table, if that slot is in use: every nesting seen, with the
/// sites of its first sighting, in the order first seen (slots freed by [`forget`] may
/// be reused).
pub fn nesting(i: usize) -> Option<Nesting> {
    if i >= MAX_NESTINGS {
        return None;
    }
    locked_irqs_off(|t| {
        t.nestings[i].map(|n| Nesting {
            held: V.acquisition(usize::from(n.held), Some(n.held_site)),
            taken: V.acquisition(usize::from(n.taken), Some(n.taken_site)),
        })
    })
}

/// Every recorded nesting (see [`nesting`]).
pub fn nestings() -> impl Iterator<Item = Nesting> {
    (0..MAX_NESTINGS).filter_map(nesting)
}

/// Installs the declared lock order (once, at boot). Nestings already recorded are
/// checked against it, and the violations reported as usual.
pub fn set_order(order: &'static LockOrder) -> Result<(), OrderError> {
    let p = platform();
    let mut found = Found::new(p.cpu);
    let r = irqs_off(p, |_| {
        V.locked(|t| {
            let d = Declared::build(order, |c| V.register(t, c, None))?;
            for i in 0..MAX_NESTINGS {
                let Some(n) = t.nestings[i] else { continue };
                let (a, b) = (usize::from(n.held), usize::from(n.taken));
                if d.forbids(a, b) {
                    let now = Nesting {
                        held: V.acquisition(a, Some(n.held_site)),
                        taken: V.acquisition(b, Some(n.taken_site)),
                    };
                    V.record(t, &mut found, Violation::Undocumented { now });
                }
            }
            t.declared = Some(d);
            Ok(())
        })
    });
    deliver(p, (p.held_locks)(), &found);
    r
}

/// The declared order, if one was installed.
pub fn order() -> Option<&'static LockOrder> {
    locked_irqs_off(|t| t.declared.as_ref().map(|d| d.order))
}

/// Forgets what was learnt about `class`: its usage and every nesting to or from it (a
/// test that provokes a violation on purpose clears it, so it can run again). Reports
/// already made stay counted.
pub fn forget(class: &'static LockClass) {
    let Some(slot) = (match class.slot() {
        UNREGISTERED | UNTRACKED => None,
        s => Some(usize::from(s) - 1),
    }) else {
        return;
    };
    locked_irqs_off(|t| {
        t.graph.forget(slot);
        for (from, row) in V.edges.iter().enumerate() {
            for (w, word) in row.iter().enumerate() {
                let mut bits = 0;
                for b in 0..64 {
                    if t.graph.has_edge(from, w * 64 + b) {
                        bits |= 1 << b;
                    }
                }
                word.store(bits, Ordering::Relaxed);
            }
        }
        V.usage[slot].store(0, Ordering::Relaxed);
        t.in_irq_site[slot] = None;
        t.irqs_on_site[slot] = None;
        t.irq_inversion_reported.remove(slot);
        t.same_class_reported.remove(slot);
        for n in t.nestings.iter_mut() {
            if n.is_some_and(|n| usize::from(n.held) == slot || usize::from(n.taken) == slot) {
                *n = None;
            }
        }
    })
}
