//! The machine's I/O APIC inputs: devices wired to a pin of a model I/O APIC with Remote
//! IRR ([`crate::ioapic::IoApicModel`]), and the chip's registers as the core's real
//! `IoApicDomain` reaches them ([`SimRteStorage`]).
//!
//! * **The wire.** A device's wire has its electrical settings ([`Wire`]): an edge at an
//!   entry whose polarity or trigger mode does not match it is not seen (a failure), and
//!   an edge at a masked edge entry is dropped — unless the flow masked it and left it
//!   pending for a replay, whose handler run covers it (Linux's `handle_edge_irq` relies
//!   on the same).
//! * **Edge** lines pulse: the rising edge sends once, with the firing's token.
//! * **Level** lines stay asserted until the device is serviced — when a handler of its
//!   irq runs (`Machine::service_line`), which covers every firing not yet carried by a
//!   message. Meanwhile the entry sends when unmasked with Remote IRR clear, and again
//!   after an EOI clears Remote IRR while the line is still up: a message carries the
//!   firings made since the line's last one (none, for such a repeat).
//! * A message the I/O APIC sends arrives at once (through the remapping unit, if any);
//!   what a level message sets in the IRR is level-triggered (TMR), and a CPU's EOI of a
//!   level vector is broadcast to every I/O APIC (`apic.rs`).

use sluice_irq_core::ioapic::{Rte, RteStorage};

use crate::bus::Via;
use crate::ioapic::IoApicModel;
use crate::machine::{Machine, Shared, Token, Wire};

/// The version of the machine's I/O APICs: with the EOI register (PCI 2.2 I/O(x)APICs).
pub const IOAPIC_VERSION: u8 = 0x20;

/// Pins of each of the machine's I/O APICs.
const PINS: u32 = 24;

/// Where a device's wire goes.
#[derive(Clone, Copy, Debug)]
pub struct Line {
    /// The I/O APIC's id.
    pub ioapic: u8,
    /// The input pin.
    pub pin: u32,
    /// Its polarity and trigger on the board.
    pub wire: Wire,
    /// Firings of a level line not yet carried by a message.
    unsent: Option<Token>,
}

impl Machine {
    /// A device wired as `wire` to `pin` of I/O APIC `id` (the chip is made at its first
    /// line: every entry masked, as at reset).
    pub fn add_ioapic_line(&mut self, id: u8, pin: u32, wire: Wire) -> usize {
        self.ioapics
            .entry(id)
            .or_insert_with(|| IoApicModel::new(IOAPIC_VERSION, PINS));
        let dev = self.add_device(false);
        self.devices[dev].line = Some(Line {
            ioapic: id,
            pin,
            wire,
            unsent: None,
        });
        dev
    }

    fn line_device(&self, id: u8, pin: u32) -> Option<usize> {
        self.devices
            .iter()
            .position(|d| d.line.is_some_and(|l| l.ioapic == id && l.pin == pin))
    }

    /// The redirection entry of line device `dev`, as software reads it.
    pub fn rte(&self, dev: usize) -> Rte {
        let l = self.devices[dev].line.expect("an I/O APIC line");
        self.ioapics[&l.ioapic].read(l.pin)
    }

    /// Line device `dev` fires (`token`).
    pub(crate) fn fire_line(&mut self, dev: usize, token: Token, via: &mut Via) {
        let l = self.devices[dev].line.expect("an I/O APIC line");
        let e = self.rte(dev);
        if e.active_low() != l.wire.active_low {
            return self.fail(
                Some(token),
                &format!(
                    "device {dev}: RTE polarity does not match the wire: the edge is not seen"
                ),
            );
        }
        if e.level() != l.wire.level {
            return self.fail(
                Some(token),
                &format!("device {dev}: RTE trigger mode does not match the wire"),
            );
        }
        let io = self.ioapics.get_mut(&l.ioapic).unwrap();
        if l.wire.level {
            match l.unsent {
                Some(first) => self.coalesced.push((token, first)),
                None => self.devices[dev].line.as_mut().unwrap().unsent = Some(token),
            }
            io.set_line(l.pin, true);
            return self.pump(l.ioapic, None, via);
        }
        if e.masked() {
            if self.replay_armed.contains(&dev) {
                self.replay_tokens.entry(dev).or_default().push(token);
            } else {
                self.fail(
                    Some(token),
                    &format!("device {dev}: edge at a masked RTE not seen"),
                );
            }
            return;
        }
        io.set_line(l.pin, true);
        io.set_line(l.pin, false);
        self.pump(l.ioapic, Some(token), via);
    }

    /// Sends what I/O APIC `id` has sent: an edge message carries `edge` (the firing that
    /// made it), a level one the line's firings not yet carried.
    pub(crate) fn pump(&mut self, id: u8, mut edge: Option<Token>, via: &mut Via) {
        let Some(io) = self.ioapics.get_mut(&id) else {
            return;
        };
        for s in io.take_sent() {
            let Some(dev) = self.line_device(id, s.pin) else {
                self.failures
                    .push(format!("I/O APIC {id} pin {} sent with no device", s.pin));
                continue;
            };
            let token = if s.level {
                self.devices[dev].line.as_mut().unwrap().unsent.take()
            } else {
                edge.take()
            };
            self.post_via(dev, s.msg, token, via);
        }
    }

    /// A local APIC's EOI of a level-triggered `vector`, broadcast to every I/O APIC.
    pub(crate) fn broadcast_eoi(&mut self, vector: u8) {
        let ids: Vec<u8> = self.ioapics.keys().copied().collect();
        for id in ids {
            self.ioapics.get_mut(&id).unwrap().broadcast_eoi(vector);
            self.pump(id, None, &mut Via::Lock);
        }
    }

    /// A handler of `handler`'s irq runs: if that is a level line's device, it is
    /// serviced — its line drops, and the firings no message carried yet are covered by
    /// this run (returned).
    pub(crate) fn service_line(&mut self, handler: u64) -> Vec<Token> {
        let Some(dev) = usize::try_from(handler)
            .ok()
            .filter(|&d| d < self.devices.len())
        else {
            return Vec::new();
        };
        let Some(l) = self.devices[dev].line.filter(|l| l.wire.level) else {
            return Vec::new();
        };
        self.devices[dev].line.as_mut().unwrap().unsent = None;
        self.ioapics
            .get_mut(&l.ioapic)
            .unwrap()
            .set_line(l.pin, false);
        l.unsent.into_iter().collect()
    }
}

/// The redirection table of I/O APIC `id` of the machine, as the core's chip writes it:
/// each register write reaches the model at once (it may send), and a device may fire
/// right after it.
pub struct SimRteStorage {
    /// The machine.
    pub m: Shared,
    /// The I/O APIC's id.
    pub id: u8,
}

impl SimRteStorage {
    fn with<R>(&self, f: impl FnOnce(&mut IoApicModel) -> R) -> R {
        let mut mm = self.m.lock().unwrap();
        let r = f(mm.ioapics.get_mut(&self.id).expect("the I/O APIC"));
        mm.pump(self.id, None, &mut Via::Lock);
        r
    }
}

impl RteStorage for SimRteStorage {
    fn pins(&self) -> u32 {
        PINS
    }
    fn read(&self, pin: u32) -> Rte {
        self.m.lock().unwrap().ioapics[&self.id].read(pin)
    }
    fn write_low(&self, pin: u32, v: u32) {
        self.with(|io| io.write_low(pin, v));
        self.m.lock().unwrap().after_write();
    }
    fn write_high(&self, pin: u32, v: u32) {
        self.with(|io| io.write_high(pin, v));
        self.m.lock().unwrap().after_write();
    }
    fn version(&self) -> u8 {
        self.m.lock().unwrap().ioapics[&self.id].version()
    }
    fn write_eoi(&self, vector: u8) {
        self.with(|io| io.write_eoi(vector));
    }
}
