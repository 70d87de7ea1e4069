//! The way from a device to an APIC: messages in flight, and the remapping unit they
//! pass through.
//!
//! **In flight.** With [`Timing::InFlight`] a message a device sends (an MSI: a posted
//! memory write to 0xFEEx_xxxx) does not reach the APIC when it is sent: it joins its
//! device's queue and arrives at a later event of the schedule ([`Machine::land`], the
//! `Land` event), in the order the device sent it (PCI Express Base §2.4.1: a posted
//! request does not pass a posted request). What makes it arrive sooner:
//!
//! * a *flush* of its device ([`Machine::flush`]): a read of the function, whose
//!   completion does not pass the device's earlier posted writes (the same table, row D);
//!   the storage binding does it where the kernel reads back;
//! * hotplug's settle delay before the IRR scan (`LocalApic::before_irr_scan`, Linux's
//!   1 ms): long beside any bus latency, so every message sent before it arrives
//!   ([`Machine::settle`]);
//! * inside an IRTE update, between the store and its invalidation, if the schedule says
//!   so (below).
//!
//! An I/O APIC input's messages arrive when sent: the model keeps them out of flight
//! (`README.md` says why). IPIs arrive when sent too (`apic.rs`).
//!
//! **Remapping.** A machine with a unit ([`Bus::unit`], a model in its real-hardware
//! preset) looks up every message as it arrives, through the unit's interrupt entry cache
//! ([`crate::vtd::Unit::deliver`]): a fault is a failure for the firing it carried, a
//! compatibility-format message is blocked (CFI is clear), and an xAPIC-mode entry with
//! reserved destination bits set faults. Lookup and arrival are one step here: a message
//! the unit remapped is in the APIC's IRR before anything else happens, which is what the
//! IEC invalidation's wait guarantees for the messages remapped through an entry before
//! it is invalidated ("drained"); a message that arrives after the invalidation is
//! remapped through the new entry.
//!
//! **The stale window.** The unit's binding stores an entry and then invalidates the
//! cached copy (`sluice_vtd::update_irte`); in between, the unit still serves the old
//! entry from its cache. The model unit calls the machine after each store
//! ([`Machine::at_irte_store`]): a device may fire there, and — if the schedule picked it
//! ([`Bus::land_at_store`]) — every message in flight arrives there, remapped through
//! the cache as it is at that moment.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::Arc;

use sluice_irq_core::msi::{MsiMsg, Trigger, decode};

use crate::machine::{Machine, Token};
use crate::vtd::domain::{ModelUnit, message};
use crate::vtd::{BusRangeOrder, Unit};

/// When a device's message reaches the APIC.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Timing {
    /// When it is sent, as in QEMU: for tests of single operations.
    #[default]
    Immediate,
    /// At a later event (or a flush, or the settle delay): explorations.
    InFlight,
}

/// One message on its way.
#[derive(Clone, Copy, Debug)]
struct Posted {
    msg: MsiMsg,
    token: Option<Token>,
    requester: u16,
}

/// The messages between the devices and the APICs: those in flight, and the remapping unit they pass through.
#[derive(Default)]
pub struct Bus {
    /// How long messages take to land.
    pub timing: Timing,
    /// Per device, the messages it sent that have not arrived, oldest first.
    in_flight: BTreeMap<usize, VecDeque<Posted>>,
    /// The remapping unit every message passes through, if the machine has one.
    pub unit: Option<Arc<ModelUnit>>,
    /// At the next IRTE store, every message in flight arrives (the schedule's pick for
    /// the stale window, made before the call that stores).
    pub land_at_store: bool,
    /// Messages the unit remapped through a cached entry that the table no longer held.
    pub served_stale: u32,
    /// Per device, messages that arrived so far (the explorer's reduction compares it).
    landed: BTreeMap<usize, u64>,
    /// IRTE stores so far.
    pub stores: u64,
}

impl fmt::Debug for Bus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bus")
            .field("timing", &self.timing)
            .field("in_flight", &self.in_flight)
            .field("unit", &self.unit.is_some())
            .field("served_stale", &self.served_stale)
            .finish()
    }
}

/// How a lookup reaches the unit: through its lock, or — inside the unit's own call
/// (the stale window) — the unit it lends.
pub(crate) enum Via<'a> {
    Lock,
    Held(&'a mut Unit),
}

impl Machine {
    /// `dev` sends `msg` (carrying `token`).
    pub fn post(&mut self, dev: usize, msg: MsiMsg, token: Option<Token>) {
        self.post_via(dev, msg, token, &mut Via::Lock)
    }

    pub(crate) fn post_via(
        &mut self,
        dev: usize,
        msg: MsiMsg,
        token: Option<Token>,
        via: &mut Via,
    ) {
        let p = Posted {
            msg,
            token,
            requester: self.devices[dev].requester,
        };
        if self.bus.timing == Timing::Immediate || self.devices[dev].line.is_some() {
            self.arrive(p, via);
        } else {
            self.bus.in_flight.entry(dev).or_default().push_back(p);
        }
    }

    /// The message reaches the APIC it names (through the unit, if there is one): the
    /// CPU and vector whose IRR bit it set, `None` if it was blocked.
    fn arrive(&mut self, p: Posted, via: &mut Via) -> Option<(usize, u8)> {
        match self.resolve(p.msg, p.requester, via) {
            Ok((dest, vector, level)) => {
                self.raise_as(dest as usize, vector, p.token, level);
                Some((dest as usize, vector))
            }
            Err(why) => {
                self.fail(p.token, &why);
                None
            }
        }
    }

    /// The oldest message `dev` has in flight arrives. `None` if it had none, else the
    /// CPU and vector it reached (`None` inside: blocked).
    pub fn land(&mut self, dev: usize) -> Option<Option<(usize, u8)>> {
        self.land_via(dev, &mut Via::Lock)
    }

    /// Messages of `dev` that have arrived so far.
    pub fn landed(&self, dev: usize) -> u64 {
        self.bus.landed.get(&dev).copied().unwrap_or(0)
    }

    fn land_via(&mut self, dev: usize, via: &mut Via) -> Option<Option<(usize, u8)>> {
        let p = self
            .bus
            .in_flight
            .get_mut(&dev)
            .and_then(|q| q.pop_front())?;
        *self.bus.landed.entry(dev).or_default() += 1;
        if self.bus.in_flight.get(&dev).is_some_and(|q| q.is_empty()) {
            self.bus.in_flight.remove(&dev);
        }
        if let Via::Held(u) = via
            && u.serves_stale(message(p.msg))
        {
            self.bus.served_stale += 1;
        }
        Some(self.arrive(p, via))
    }

    /// A read of `dev` completed: everything it sent before has arrived.
    pub fn flush(&mut self, dev: usize) {
        while self.land(dev).is_some() {}
    }

    /// Every message in flight arrives (hotplug's settle delay).
    pub fn settle(&mut self) {
        self.settle_via(&mut Via::Lock);
    }

    fn settle_via(&mut self, via: &mut Via) {
        while let Some(&dev) = self.bus.in_flight.keys().next() {
            self.land_via(dev, via);
        }
    }

    /// Devices with messages in flight, ascending.
    pub fn in_flight(&self) -> Vec<usize> {
        self.bus.in_flight.keys().copied().collect()
    }

    /// How many messages are in flight.
    pub fn in_flight_count(&self) -> usize {
        self.bus.in_flight.values().map(VecDeque::len).sum()
    }

    /// Where the chipset delivers `msg` from `requester` now: (APIC id, vector, level
    /// triggered), through the unit if there is one (which may cache the entry, or record
    /// a fault).
    pub(crate) fn resolve(
        &mut self,
        msg: MsiMsg,
        requester: u16,
        via: &mut Via,
    ) -> Result<(u32, u8, bool), String> {
        let looked = match (via, &self.bus.unit) {
            (Via::Held(u), _) => {
                Some(u.deliver(message(msg), Some(requester), BusRangeOrder::Spec))
            }
            (Via::Lock, Some(unit)) => Some(unit.deliver(msg, requester)),
            (Via::Lock, None) => None,
        };
        Self::route_from(msg, looked)
    }

    /// Where `msg` from `requester` would go now, changing nothing (no entry cached, no
    /// fault recorded): what the verdict compares with the core's records.
    pub fn route(&self, msg: MsiMsg, requester: u16) -> Result<(u32, u8), String> {
        let looked = self.bus.unit.as_ref().map(|u| u.peek(msg, requester));
        Self::route_from(msg, looked).map(|(dest, vector, _)| (dest, vector))
    }

    fn route_from(
        msg: MsiMsg,
        looked: Option<Result<crate::vtd::Delivery, u8>>,
    ) -> Result<(u32, u8, bool), String> {
        match looked {
            Some(Ok(d)) if !d.passthrough => Ok((d.destination, d.vector, d.level)),
            Some(Err(reason)) => Err(format!("remapping fault {reason:#x}")),
            // No unit, or one that lets the message through untranslated.
            _ => {
                if msg.addr_lo & 0xFFF0_0000 == 0xFEE0_0000 && msg.addr_lo & (1 << 4) != 0 {
                    return Err("remappable message and no remapping unit".into());
                }
                decode(&msg)
                    .map(|f| (f.dest, f.vector.0, f.trigger == Trigger::Level))
                    .ok_or_else(|| "message outside MSI window".into())
            }
        }
    }

    /// The model unit stored an IRTE (its cached copy not yet invalidated): count the
    /// hardware point (a device may fire here) and, if the schedule picked it, let every
    /// message in flight arrive through the unit as it is now.
    pub fn at_irte_store(&mut self, unit: &mut Unit) {
        self.bus.stores += 1;
        let mut via = Via::Held(unit);
        self.after_write_via(&mut via);
        if std::mem::take(&mut self.bus.land_at_store) {
            self.settle_via(&mut via);
        }
    }
}
