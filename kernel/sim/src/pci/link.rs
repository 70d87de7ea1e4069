//! The path between the CPU and one PCI function, as a PC's root complex and PCI Express
//! links order it — not as QEMU does, where a write lands when the CPU makes it and a
//! message reaches the APIC when the device sends it.
//!
//! Self-contained (no PCI register knowledge: writes and messages are opaque payloads),
//! so that the shared simulator can hold one per modelled function.
//!
//! **Downstream, writes are posted.** A CPU store to a memory BAR (the MSI-X table) is a
//! posted memory write; a store to ECAM is a posted memory write as far as the CPU and
//! the host bridge are concerned, which turns it into a configuration write request
//! (non-posted on the link) whose completion the CPU never waits for (PCI Express Base
//! §7.2.2: a write through ECAM may complete at the processor before the function has
//! it; the platform must give software a way to wait, and on x86 that way is a read).
//! The CPU issues its uncached accesses in program order (Intel SDM vol. 3A §12.3,
//! "Strong Uncacheable"), so they reach the root complex in that order; from there the
//! transaction ordering rules (PCI Express Base §2.4.1, table "Ordering Rules Summary")
//! decide, and this model takes exactly these from it:
//!
//! * memory writes land in the order issued (row A, column 2: a posted request must not
//!   pass a posted request);
//! * a configuration write never lands before an earlier memory write (row C, column 2:
//!   a non-posted request must not pass a posted request), while a memory write may land
//!   before an earlier configuration write (row A, columns 3 and 4: a posted request is
//!   permitted to pass a non-posted one) — so an MMIO read does not flush a configuration
//!   write;
//! * a read of the function is answered only after every earlier memory write to it has
//!   landed (row B, column 2: a read request must not pass a posted request);
//! * configuration requests to one function complete in order — a configuration read
//!   returns only after the function's earlier configuration writes landed. This one is
//!   an assumption, not a rule: the table lets a read pass a non-posted write (row B,
//!   column 4), and the ECAM section's implementation note on ordering says as much and
//!   leaves it to the platform to offer a way to wait for an ECAM write. The model
//!   takes the root complex to answer a function's configuration requests in order,
//!   which is what Linux's read-back after an MSI write ("PCI/MSI: Enforce MSI\[X\] entry
//!   updates to be visible") relies on too.
//!
//! **Upstream, messages are in flight.** An MSI is a posted memory write from the
//! function to 0xFEEx_xxxx; it reaches the CPU side (the APIC's IRR) some time after the
//! device sent it, in the order sent (row A, column 2 again; MSIs are sent without
//! Relaxed Ordering, since an interrupt must push the device's earlier data writes). A
//! read completion from the function does not pass a posted write the function sent
//! before it (row D, column 2, "D2a"): when the CPU has the answer to a read of the
//! function, every message the function sent before answering has arrived. Note that
//! the exception D2b lets an I/O or configuration *write* completion pass a posted
//! request: only a read flushes the messages, which is why a flush is a read even where
//! the write itself is non-posted (the legacy 0xCF8/0xCFC pair).
//!
//! The model: `post` a write, `land` one when the owner's schedule says so (oldest
//! first, within the rules above), `send` a message, `arrive` the oldest when the
//! schedule says so; `read` lands what a read of the class must land and pushes every
//! message in flight. Which event happens when is the owner's business (the model device
//! asks its `Scheduler`, `schedule.rs`); this file only keeps the order.

use std::collections::VecDeque;

/// How a write travels: as a posted memory write, or as a configuration write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// A store to a memory BAR (MSI-X table, PBA): posted all the way.
    Memory,
    /// A store to ECAM: posted up to the host bridge, a non-posted configuration write
    /// request on the links.
    Config,
}

/// A message in flight, with the id it was sent under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InFlight<M> {
    /// The number it was sent under.
    pub id: usize,
    /// The message.
    pub message: M,
}

/// One function's link: the writes issued to it and not yet landed, the messages it sent
/// and that have not yet arrived.
#[derive(Debug, Clone)]
pub struct Link<W, M> {
    posted: VecDeque<(Path, W)>,
    in_flight: VecDeque<InFlight<M>>,
    next_id: usize,
}

impl<W: Clone, M: Clone> Default for Link<W, M> {
    fn default() -> Self {
        Self {
            posted: VecDeque::new(),
            in_flight: VecDeque::new(),
            next_id: 0,
        }
    }
}

impl<W: Clone, M: Clone> Link<W, M> {
    /// The CPU issued `write` to the function; it has not landed.
    pub fn post(&mut self, path: Path, write: W) {
        self.posted.push_back((path, write));
    }

    /// Writes issued and not landed, oldest first.
    pub fn posted(&self) -> impl Iterator<Item = &W> {
        self.posted.iter().map(|(_, w)| w)
    }

    /// Some write is still posted.
    pub fn has_posted(&self) -> bool {
        !self.posted.is_empty()
    }

    /// Where in the queue the next write of `path` to land is, if the rules let it land
    /// now: the oldest memory write always may; the oldest configuration write only if no
    /// memory write issued before it is still on its way.
    fn landable(&self, path: Path) -> Option<usize> {
        let at = self.posted.iter().position(|&(p, _)| p == path)?;
        let blocked =
            path == Path::Config && self.posted.iter().take(at).any(|&(p, _)| p == Path::Memory);
        (!blocked).then_some(at)
    }

    /// Whether a posted write on `path` may land now.
    pub fn can_land(&self, path: Path) -> bool {
        self.landable(path).is_some()
    }

    /// The next write of `path` lands (the owner applies it to the function).
    pub fn land(&mut self, path: Path) -> Option<W> {
        let at = self.landable(path)?;
        self.posted.remove(at).map(|(_, w)| w)
    }

    /// What must land before a read of `path` is answered, in landing order: for a
    /// configuration read everything; for a memory read every memory write (earlier
    /// configuration writes may still be on their way).
    pub fn land_for_read(&mut self, path: Path) -> Vec<W> {
        let mut landed = Vec::new();
        let mut kept = VecDeque::new();
        for (p, w) in self.posted.drain(..) {
            if path == Path::Config || p == Path::Memory {
                landed.push(w);
            } else {
                kept.push_back((p, w));
            }
        }
        self.posted = kept;
        landed
    }

    /// The function sent `message`; returns its id.
    pub fn send(&mut self, message: M) -> usize {
        let id = self.next_id;
        self.next_id += 1;
        self.in_flight.push_back(InFlight { id, message });
        id
    }

    /// Messages sent and not arrived, oldest first.
    pub fn in_flight(&self) -> impl Iterator<Item = &InFlight<M>> {
        self.in_flight.iter()
    }

    /// How many messages are in flight.
    pub fn in_flight_len(&self) -> usize {
        self.in_flight.len()
    }

    /// The oldest message in flight arrives.
    pub fn arrive(&mut self) -> Option<InFlight<M>> {
        self.in_flight.pop_front()
    }

    /// A read completion from the function reaches the CPU: everything the function sent
    /// before it arrives first (in order). Call after the read's own landings, whose
    /// effects (a released pending bit) the function sends before answering.
    pub fn push_all(&mut self) -> Vec<InFlight<M>> {
        self.in_flight.drain(..).collect()
    }
}
