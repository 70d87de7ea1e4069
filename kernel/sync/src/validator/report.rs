//! What the validator reports: the violation, the classes, and the source sites of the
//! acquisitions involved — the one that revealed it and the earlier one(s) recorded when
//! each flag or nesting was first seen. Fixed-size and `Copy`, so a report is built and
//! kept without allocating.

use core::fmt;
use core::panic::Location;

use crate::class::LockClass;
use crate::held::MAX_HELD;
use crate::validator::graph::MAX_CLASSES;

/// A source site (`file:line:col`).
pub type Site = &'static Location<'static>;

/// One acquisition: the class and where it was taken (`None` when the site could not be
/// kept: the nesting table was full).
#[derive(Clone, Copy, Debug)]
pub struct Acquisition {
    /// The lock's class.
    pub class: &'static LockClass,
    /// Where it was taken.
    pub site: Option<Site>,
}

/// A nesting: `taken` was acquired while `held` was held.
#[derive(Clone, Copy, Debug)]
pub struct Nesting {
    /// The lock already held (and where it had been taken).
    pub held: Acquisition,
    /// The lock taken under it.
    pub taken: Acquisition,
}

/// Nestings a report shows of a recorded chain; longer chains are cut short.
pub const MAX_CHAIN: usize = 4;

/// A recorded chain of nestings, A → B → … (the first `MAX_CHAIN` links of it).
#[derive(Clone, Copy, Debug)]
pub struct Chain {
    links: [Option<Nesting>; MAX_CHAIN],
    /// Links in the whole chain.
    total: usize,
}

impl Chain {
    pub(crate) const fn empty() -> Chain {
        Chain {
            links: [None; MAX_CHAIN],
            total: 0,
        }
    }

    pub(crate) fn push(&mut self, n: Nesting) {
        if self.total < MAX_CHAIN {
            self.links[self.total] = Some(n);
        }
        self.total += 1;
    }

    /// The links shown, first to last.
    pub fn links(&self) -> impl Iterator<Item = &Nesting> {
        self.links.iter().flatten()
    }

    /// Links in the whole chain (more than `links()` yields when it was cut short).
    pub fn total(&self) -> usize {
        self.total
    }
}

/// A table that filled up: what is past it is not (fully) validated, and says so once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overflow {
    /// More than `MAX_CLASSES` classes: later classes are not validated.
    Classes,
    /// The nesting-site table is full: nestings are still checked, their sites not kept.
    Nestings,
    /// A CPU held more than `MAX_HELD` locks: the excess is not validated.
    Held,
}

/// A rule broken, or a table overflowed.
#[derive(Clone, Copy, Debug)]
pub enum Violation {
    /// One class taken in hard-interrupt context and also held with interrupts enabled:
    /// an interrupt arriving on a CPU that holds it spins on its own CPU forever.
    IrqUnsafe {
        /// The first acquisition in hard-interrupt context.
        in_irq: Acquisition,
        /// The first acquisition held with interrupts enabled.
        irqs_on: Acquisition,
    },
    /// A class taken in hard-interrupt context nests, directly or not, a class held with
    /// interrupts enabled: CPU 1 holds the inner one with interrupts on and is interrupted
    /// by a handler that wants the outer one, which CPU 2 holds while waiting for the
    /// inner one.
    IrqInversion {
        /// The outer class's first acquisition in hard-interrupt context.
        in_irq: Acquisition,
        /// The inner class's first acquisition with interrupts enabled.
        irqs_on: Acquisition,
        /// How the outer class reaches the inner one.
        chain: Chain,
    },
    /// `now` closes a cycle: its reverse was recorded earlier (directly or through other
    /// classes), so two CPUs can each hold what the other waits for.
    OrderInversion {
        /// The acquisition that closed the cycle.
        now: Nesting,
        /// The recorded chain from `now.taken`'s class back to `now.held`'s.
        earlier: Chain,
    },
    /// A second lock of a class taken while one is held, without `lock_ordered` (or with
    /// keys that do not ascend): two CPUs taking two instances in opposite order deadlock.
    SameClass {
        /// The lock of the class already held, and the one taken now.
        now: Nesting,
        /// The keys, when both were taken with `lock_ordered` (they did not ascend).
        keys: Option<(u64, u64)>,
    },
    /// A nesting between two classes of the declared lock order that it does not allow.
    Undocumented {
        /// The nesting seen.
        now: Nesting,
    },
    /// A table filled up.
    Overflow {
        /// Which table.
        what: Overflow,
        /// The acquisition that found it full.
        at: Acquisition,
    },
}

/// One report: the violation and the CPU that found it.
#[derive(Clone, Copy, Debug)]
pub struct Report {
    /// The CPU whose acquisition revealed the violation.
    pub cpu: u32,
    /// What is wrong.
    pub violation: Violation,
}

impl Report {
    /// Every acquisition the report names.
    pub fn acquisitions(&self) -> impl Iterator<Item = Acquisition> {
        let mut a = [None; 2 + 2 * MAX_CHAIN];
        let mut n = 0;
        let mut add = |x: Acquisition| {
            a[n] = Some(x);
            n += 1;
        };
        let chain = |c: &Chain, add: &mut dyn FnMut(Acquisition)| {
            for l in c.links() {
                add(l.held);
                add(l.taken);
            }
        };
        match &self.violation {
            Violation::IrqUnsafe { in_irq, irqs_on } => {
                add(*in_irq);
                add(*irqs_on);
            }
            Violation::IrqInversion {
                in_irq,
                irqs_on,
                chain: c,
            } => {
                add(*in_irq);
                add(*irqs_on);
                chain(c, &mut add);
            }
            Violation::OrderInversion { now, earlier } => {
                add(now.held);
                add(now.taken);
                chain(earlier, &mut add);
            }
            Violation::SameClass { now, .. } | Violation::Undocumented { now } => {
                add(now.held);
                add(now.taken);
            }
            Violation::Overflow { at, .. } => add(*at),
        }
        a.into_iter().flatten()
    }

    /// Whether the report names `class`.
    pub fn involves(&self, class: &LockClass) -> bool {
        self.acquisitions().any(|a| a.class.is(class))
    }

    /// A short name for the kind of violation.
    pub fn kind(&self) -> &'static str {
        match self.violation {
            Violation::IrqUnsafe { .. } => "irq-unsafe lock",
            Violation::IrqInversion { .. } => "irq-safe lock nests an irq-unsafe one",
            Violation::OrderInversion { .. } => "lock order inversion",
            Violation::SameClass { .. } => "same-class nesting",
            Violation::Undocumented { .. } => "nesting outside the declared lock order",
            Violation::Overflow { .. } => "validator table full",
        }
    }
}

struct At(Option<Site>);

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(l) => write!(f, "{}:{}:{}", l.file(), l.line(), l.column()),
            None => f.write_str("(site not kept)"),
        }
    }
}

impl fmt::Display for Nesting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} → {} ({} held from {}, {} taken at {})",
            self.held.class,
            self.taken.class,
            self.held.class,
            At(self.held.site),
            self.taken.class,
            At(self.taken.site)
        )
    }
}

impl fmt::Display for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, l) in self.links().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{l}")?;
        }
        if self.total > MAX_CHAIN {
            write!(f, "; and {} more", self.total - MAX_CHAIN)?;
        }
        Ok(())
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (cpu {}): ", self.kind(), self.cpu)?;
        match &self.violation {
            Violation::IrqUnsafe { in_irq, irqs_on } => write!(
                f,
                "{} taken in hard-irq context at {}, and held with interrupts enabled at {}",
                in_irq.class,
                At(in_irq.site),
                At(irqs_on.site)
            ),
            Violation::IrqInversion {
                in_irq,
                irqs_on,
                chain,
            } => write!(
                f,
                "{} taken in hard-irq context at {}; {} held with interrupts enabled at {}; nested through {}",
                in_irq.class,
                At(in_irq.site),
                irqs_on.class,
                At(irqs_on.site),
                chain
            ),
            Violation::OrderInversion { now, earlier } => {
                write!(f, "now {now}; but earlier {earlier}")
            }
            Violation::SameClass { now, keys: None } => write!(
                f,
                "two {} locks nested without lock_ordered: one held from {}, another taken at {}",
                now.held.class,
                At(now.held.site),
                At(now.taken.site)
            ),
            Violation::SameClass {
                now,
                keys: Some((held, taken)),
            } => write!(
                f,
                "{} keys not ascending: key {} held from {}, key {} taken at {}",
                now.held.class,
                held,
                At(now.held.site),
                taken,
                At(now.taken.site)
            ),
            Violation::Undocumented { now } => write!(f, "{now}"),
            Violation::Overflow { what, at } => match what {
                Overflow::Classes => write!(
                    f,
                    "more than {MAX_CLASSES} lock classes: {} (taken at {}) and later classes are not validated",
                    at.class,
                    At(at.site)
                ),
                Overflow::Nestings => write!(
                    f,
                    "nesting-site table full at {} (taken at {}): nestings are still checked, new ones' sites not kept",
                    at.class,
                    At(at.site)
                ),
                Overflow::Held => write!(
                    f,
                    "more than {MAX_HELD} locks held at once: {} (taken at {}) and deeper locks are not validated",
                    at.class,
                    At(at.site)
                ),
            },
        }
    }
}
