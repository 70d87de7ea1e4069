//! The declared lock order: the kernel writes its documented order down as data once,
//! the validator checks every nesting it sees between two declared classes against it,
//! and the `locks` command prints it. Documentation and checking cannot drift apart.

use crate::class::LockClass;
use crate::validator::graph::{ClassSet, Graph, MAX_CLASSES};

/// A lock order, outermost first.
///
/// * Each chain `[A, B, C]` allows B and C to be taken while A is held, and C while B is
///   held (the order is transitive across chains too: `[A, B]` and `[B, C]` allow A → C).
/// * A leaf may be taken while any lock is held (the console: every path logs), unless
///   the chains put it before that lock. Only other leaves may follow a leaf in a chain.
///
/// A nesting between two classes that both appear here and that the order does not allow
/// is reported; classes that do not appear are only checked for inversions and interrupt
/// safety.
#[derive(Debug)]
pub struct LockOrder {
    /// Sequences of classes, outermost first.
    pub chains: &'static [&'static [&'static LockClass]],
    /// Classes that may be taken under any other.
    pub leaves: &'static [&'static LockClass],
}

/// Why a declared order was refused.
#[derive(Clone, Copy, Debug)]
pub enum OrderError {
    /// The chains put `inner` both after and before `outer`.
    Cycle {
        /// The class the chain puts first.
        outer: &'static LockClass,
        /// The class the chain puts after it.
        inner: &'static LockClass,
    },
    /// A chain puts a non-leaf after a leaf (which would let it be taken anywhere too).
    LeafNests {
        /// The leaf.
        leaf: &'static LockClass,
        /// What the chain nests under it.
        inner: &'static LockClass,
    },
    /// The order names more classes than the validator's table holds.
    TooManyClasses,
}

impl core::fmt::Display for OrderError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            OrderError::Cycle { outer, inner } => write!(
                f,
                "the declared order puts {inner} both after and before {outer}"
            ),
            OrderError::LeafNests { leaf, inner } => write!(
                f,
                "the declared order nests {inner}, not a leaf, under the leaf {leaf}"
            ),
            OrderError::TooManyClasses => write!(
                f,
                "the declared order names more than {MAX_CLASSES} classes"
            ),
        }
    }
}

/// A declared order resolved to class slots.
pub(crate) struct Declared {
    pub order: &'static LockOrder,
    /// `allowed[a]` ∋ b: the chains let b be taken while a is held.
    allowed: Graph,
    declared: ClassSet,
    leaves: ClassSet,
}

impl Declared {
    /// Resolves `order` with `slot_of` (which registers a class, `None` when the table
    /// is full).
    pub fn build(
        order: &'static LockOrder,
        mut slot_of: impl FnMut(&'static LockClass) -> Option<usize>,
    ) -> Result<Declared, OrderError> {
        let mut d = Declared {
            order,
            allowed: Graph::new(),
            declared: ClassSet::EMPTY,
            leaves: ClassSet::EMPTY,
        };
        for &leaf in order.leaves {
            let s = slot_of(leaf).ok_or(OrderError::TooManyClasses)?;
            d.leaves.insert(s);
            d.declared.insert(s);
        }
        for chain in order.chains {
            for w in chain.windows(2) {
                let (a, b) = (
                    slot_of(w[0]).ok_or(OrderError::TooManyClasses)?,
                    slot_of(w[1]).ok_or(OrderError::TooManyClasses)?,
                );
                if d.allowed.closes_cycle(a, b) {
                    return Err(OrderError::Cycle {
                        outer: w[0],
                        inner: w[1],
                    });
                }
                if d.leaves.contains(a) && !d.leaves.contains(b) {
                    return Err(OrderError::LeafNests {
                        leaf: w[0],
                        inner: w[1],
                    });
                }
                d.allowed.add_edge(a, b);
            }
            for &c in chain.iter() {
                d.declared
                    .insert(slot_of(c).ok_or(OrderError::TooManyClasses)?);
            }
        }
        Ok(d)
    }

    /// Whether the order speaks about `held → taken` and forbids it.
    pub fn forbids(&self, held: usize, taken: usize) -> bool {
        if !self.declared.contains(held) || !self.declared.contains(taken) {
            return false;
        }
        let chained = self.allowed.reach(held).contains(taken);
        let as_leaf = self.leaves.contains(taken) && !self.allowed.reach(taken).contains(held);
        !(chained || as_leaf)
    }
}
