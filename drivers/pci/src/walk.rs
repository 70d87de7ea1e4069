//! The bounded linked-list walk shared by the standard and the extended capability
//! lists. Both are lists threaded through configuration space by "next" pointers that
//! the device supplies, so both can loop, point into the header, or point at nothing;
//! the walk stops at the first such pointer, reports it, and keeps what it found.

use alloc::vec::Vec;
use core::fmt;

use crate::access::ConfigError;

/// Why a capability walk stopped early, or what it noticed on the way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalkProblem {
    /// The pointer held at `from` had its two reserved low bits set. Software masks them
    /// (PCI Local Bus 3.0 §6.7, PCI Express Base §7.6.3) and the walk went on.
    ReservedPointerBits {
        /// Where the pointer was read.
        from: u16,
        /// The pointer as read.
        pointer: u16,
    },
    /// The pointer at `from` points into the header (below 0x40 for the standard list,
    /// below 0x100 for the extended one). The walk stopped.
    PointerBelowHeader {
        /// Where the pointer was read.
        from: u16,
        /// The pointer as read.
        pointer: u16,
    },
    /// The pointer at `from` points at a capability already visited: the list loops.
    /// The walk stopped.
    Loop {
        /// Where the pointer was read.
        from: u16,
        /// The pointer as read.
        pointer: u16,
    },
    /// More capabilities than the space can hold (48 standard, 480 extended); the walk
    /// stopped there.
    TooMany {
        /// The bound.
        limit: usize,
    },
    /// The capability at `at` read as all ones: the function stopped answering (removed,
    /// or powered down). The walk stopped.
    AllOnes {
        /// Where the capability was to start.
        at: u16,
    },
    /// A configuration access was refused (the list pointed past the function's
    /// configuration space). The walk stopped.
    Access(ConfigError),
}

impl fmt::Display for WalkProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            WalkProblem::ReservedPointerBits { from, pointer } => write!(
                f,
                "pointer {pointer:#x} at {from:#x} has reserved low bits set (masked)"
            ),
            WalkProblem::PointerBelowHeader { from, pointer } => {
                write!(
                    f,
                    "pointer {pointer:#x} at {from:#x} points into the header"
                )
            }
            WalkProblem::Loop { from, pointer } => write!(
                f,
                "pointer {pointer:#x} at {from:#x} points back to a visited capability (loop)"
            ),
            WalkProblem::TooMany { limit } => {
                write!(f, "more than {limit} capabilities; stopped")
            }
            WalkProblem::AllOnes { at } => {
                write!(f, "capability at {at:#x} reads all ones (function gone?)")
            }
            WalkProblem::Access(e) => write!(f, "{e}"),
        }
    }
}

/// The capabilities a walk found, in list order, and what went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapabilityList<C> {
    /// The capabilities, in list order.
    pub found: Vec<C>,
    /// What was wrong with the list.
    pub problems: Vec<WalkProblem>,
}

impl<C> CapabilityList<C> {
    /// No capabilities and no problems (a function without a list).
    pub const fn empty() -> CapabilityList<C> {
        CapabilityList {
            found: Vec::new(),
            problems: Vec::new(),
        }
    }

    /// Whether the walk reached the end of the list without stopping early.
    pub fn complete(&self) -> bool {
        self.problems
            .iter()
            .all(|p| matches!(p, WalkProblem::ReservedPointerBits { .. }))
    }
}

impl<C> Default for CapabilityList<C> {
    fn default() -> Self {
        CapabilityList::empty()
    }
}

/// What one list entry read as.
pub(crate) enum Entry<C> {
    /// A capability and the raw (unmasked) pointer to the next one.
    Found(C, u16),
    /// The entry read as all ones.
    AllOnes,
    /// An all-zero extended header: an empty list or its end.
    End,
}

/// The shape of a list: where valid entries may start and how many there can be.
pub(crate) struct ListShape {
    /// The lowest offset an entry may have (0x40 or 0x100).
    pub first_valid: u16,
    /// The most entries the list can have.
    pub limit: usize,
}

/// Walk a list whose first raw pointer `first` was read from offset `from`; `read`
/// reads the entry at an offset. Every entry is visited at most once (a bitmap of the
/// 1024 dwords of a 4 KiB space), so the walk ends after at most 1024 reads even if
/// `limit` were larger.
pub(crate) fn walk_list<C>(
    shape: ListShape,
    mut from: u16,
    mut raw: u16,
    mut read: impl FnMut(u16) -> Result<Entry<C>, ConfigError>,
) -> CapabilityList<C> {
    let mut list = CapabilityList::empty();
    let mut visited = [0u64; 16];
    loop {
        if raw & 3 != 0 {
            list.problems
                .push(WalkProblem::ReservedPointerBits { from, pointer: raw });
        }
        let pointer = raw & !3;
        if pointer == 0 {
            break;
        }
        if pointer < shape.first_valid {
            list.problems
                .push(WalkProblem::PointerBelowHeader { from, pointer });
            break;
        }
        let dword = usize::from(pointer / 4) & 0x3ff;
        let bit = 1u64 << (dword % 64);
        if visited[dword / 64] & bit != 0 {
            list.problems.push(WalkProblem::Loop { from, pointer });
            break;
        }
        if list.found.len() >= shape.limit {
            list.problems
                .push(WalkProblem::TooMany { limit: shape.limit });
            break;
        }
        visited[dword / 64] |= bit;
        match read(pointer) {
            Ok(Entry::Found(capability, next)) => {
                list.found.push(capability);
                from = pointer;
                raw = next;
            }
            Ok(Entry::AllOnes) => {
                list.problems.push(WalkProblem::AllOnes { at: pointer });
                break;
            }
            Ok(Entry::End) => break,
            Err(e) => {
                list.problems.push(WalkProblem::Access(e));
                break;
            }
        }
    }
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A list that never repeats: entry at p points to p + 4, forever.
    fn endless(pointer: u16) -> Result<Entry<u16>, ConfigError> {
        Ok(Entry::Found(pointer, pointer + 4))
    }

    #[test]
    fn the_entry_limit_stops_a_list_that_does_not_loop() {
        let shape = ListShape {
            first_valid: 0x40,
            limit: 48,
        };
        let list = walk_list(shape, 0x34, 0x40, endless);
        assert_eq!(list.found.len(), 48);
        assert_eq!(list.problems, [WalkProblem::TooMany { limit: 48 }]);
        assert!(!list.complete());
    }

    #[test]
    fn the_visited_map_stops_a_loop_before_the_limit() {
        let shape = ListShape {
            first_valid: 0x40,
            limit: 1000,
        };
        let list = walk_list(shape, 0x34, 0x40, |p| {
            Ok(Entry::Found(p, if p == 0x48 { 0x40 } else { p + 4 }))
        });
        assert_eq!(list.found, [0x40, 0x44, 0x48]);
        assert_eq!(
            list.problems,
            [WalkProblem::Loop {
                from: 0x48,
                pointer: 0x40
            }]
        );
    }
}
