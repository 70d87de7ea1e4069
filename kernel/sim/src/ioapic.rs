//! An I/O APIC with Remote IRR: its redirection table, its input lines, the EOI register
//! and the messages it sends (82093AA datasheet §3.2.4; the EOI register of the PCI 2.2
//! I/O(x)APICs, version 0x20 and later, at window offset 0x40, as in Intel's ICH/PCH
//! datasheets and QEMU's `ioapic.c`).
//!
//! What it does, and what the tests rely on:
//!
//! - **Level entries.** An asserted input at an unmasked level entry whose Remote IRR is
//!   clear sends one message and sets Remote IRR. While Remote IRR is set nothing more is
//!   sent, however long the line stays asserted. Remote IRR is cleared by an EOI whose
//!   vector equals the entry's vector field — a local APIC's broadcast EOI
//!   ([`IoApicModel::broadcast_eoi`]) or a write to the EOI register
//!   ([`IoApicModel::write_eoi`], ignored below version 0x20, where the register does not
//!   exist) — or by switching the entry to edge. An input still asserted when Remote IRR
//!   clears (or when the entry is unmasked) sends again at once.
//! - **Masking holds a level line**: a masked level entry sends nothing, and sends when
//!   unmasked if its input is still asserted. A masked **edge** entry drops the edge
//!   (82093AA §3.2.4).
//! - **Read-only bits.** Remote IRR and delivery status in a written low word are
//!   ignored; reads show Remote IRR (delivery status is always idle here: a message
//!   leaves at once).
//! - **Messages.** An entry is sent as the message the chipset decodes: RTE bits 63:48
//!   in address bits 19:4 (destination, or in remappable format the handle and the
//!   format bit; SHV is 0), RTE bit 11 in address bit 2, and the vector field, delivery
//!   mode and trigger mode in the data word (VT-d spec §5.1.5.1 for the remappable
//!   format). They wait in [`IoApicModel::take_sent`] for the machine to route them.
//! - Input lines are logical (asserted or not); polarity is the device's business here.

use std::collections::VecDeque;

use sluice_irq_core::ioapic::{Rte, low};
use sluice_irq_core::msi::MsiMsg;

/// The bits of a low word software cannot write.
const READ_ONLY: u32 = low::REMOTE_IRR | low::DELIVERY_PENDING;

/// One message the I/O APIC sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sent {
    /// The input it was sent for.
    pub pin: u32,
    /// What reaches the interrupt window (or the remapping unit).
    pub msg: MsiMsg,
    /// Level-triggered entry (the data word's trigger bit says so too).
    pub level: bool,
}

/// What the I/O APIC was asked to do, counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Messages sent.
    pub sent: u64,
    /// Writes to the EOI register that the chip has (version ≥ 0x20).
    pub eoi_writes: u64,
    /// Writes to an EOI register the chip does not have (version < 0x20): no effect.
    pub eoi_writes_ignored: u64,
    /// Broadcast EOIs that matched an entry with Remote IRR set, and cleared it.
    pub broadcast_cleared: u64,
    /// Broadcast EOIs that cleared nothing.
    pub broadcast_unmatched: u64,
    /// Low-word writes that switched a level entry to edge while its Remote IRR was set
    /// (and so cleared it).
    pub edge_switch_cleared: u64,
    /// Redirection-entry register writes.
    pub rte_writes: u64,
    /// Edges dropped at a masked edge entry.
    pub edges_dropped: u64,
}

#[derive(Clone, Copy, Debug, Default)]
struct Pin {
    /// The entry as written, read-only bits excluded.
    low: u32,
    high: u32,
    remote_irr: bool,
    asserted: bool,
}

/// One I/O APIC.
#[derive(Clone, Debug)]
pub struct IoApicModel {
    version: u8,
    pins: Vec<Pin>,
    sent: VecDeque<Sent>,
    counts: Counts,
}

impl IoApicModel {
    /// A chip of `version` (IOAPICVER bits 7:0) with `pins` inputs, every entry masked
    /// edge, every input deasserted.
    pub fn new(version: u8, pins: u32) -> IoApicModel {
        IoApicModel {
            version,
            pins: vec![
                Pin {
                    low: low::MASKED,
                    ..Pin::default()
                };
                pins as usize
            ],
            sent: VecDeque::new(),
            counts: Counts::default(),
        }
    }

    /// IOAPICVER bits 7:0.
    pub fn version(&self) -> u8 {
        self.version
    }

    /// Number of inputs.
    pub fn pins(&self) -> u32 {
        self.pins.len() as u32
    }

    /// What software reads of `pin`'s entry (Remote IRR included).
    pub fn read(&self, pin: u32) -> Rte {
        let p = &self.pins[pin as usize];
        Rte {
            low: p.low | if p.remote_irr { low::REMOTE_IRR } else { 0 },
            high: p.high,
        }
    }

    /// Is Remote IRR set on `pin`?
    pub fn remote_irr(&self, pin: u32) -> bool {
        self.pins[pin as usize].remote_irr
    }

    /// Is `pin`'s input asserted?
    pub fn asserted(&self, pin: u32) -> bool {
        self.pins[pin as usize].asserted
    }

    /// Software writes the low register of `pin`'s entry.
    pub fn write_low(&mut self, pin: u32, value: u32) {
        self.counts.rte_writes += 1;
        let p = &mut self.pins[pin as usize];
        p.low = value & !READ_ONLY;
        if p.low & low::LEVEL == 0 && p.remote_irr {
            // Remote IRR belongs to level entries; an edge entry never holds it (what
            // Linux's EOI emulation for chips without the EOI register relies on).
            p.remote_irr = false;
            self.counts.edge_switch_cleared += 1;
        }
        self.service(pin);
    }

    /// Software writes the high register of `pin`'s entry.
    pub fn write_high(&mut self, pin: u32, value: u32) {
        self.counts.rte_writes += 1;
        self.pins[pin as usize].high = value;
        self.service(pin);
    }

    /// Software writes the EOI register (window offset 0x40). Below version 0x20 there is
    /// no such register and the write does nothing.
    pub fn write_eoi(&mut self, vector: u8) {
        if self.version < 0x20 {
            self.counts.eoi_writes_ignored += 1;
            return;
        }
        self.counts.eoi_writes += 1;
        self.end(vector);
    }

    /// A local APIC's EOI for a level-triggered `vector`, broadcast to every I/O APIC.
    pub fn broadcast_eoi(&mut self, vector: u8) {
        if self.end(vector) {
            self.counts.broadcast_cleared += 1;
        } else {
            self.counts.broadcast_unmatched += 1;
        }
    }

    /// The device raises (`true`) or drops its input `pin`.
    pub fn set_line(&mut self, pin: u32, asserted: bool) {
        let p = &mut self.pins[pin as usize];
        let rising = asserted && !p.asserted;
        p.asserted = asserted;
        if p.low & low::LEVEL != 0 {
            self.service(pin);
        } else if rising {
            if p.low & low::MASKED != 0 {
                self.counts.edges_dropped += 1;
            } else {
                self.send(pin);
            }
        }
    }

    /// Messages sent since the last call, oldest first.
    pub fn take_sent(&mut self) -> Vec<Sent> {
        self.sent.drain(..).collect()
    }

    /// What it was asked to do so far.
    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// Clears Remote IRR of every level entry whose vector field is `vector`, and lets
    /// those still asserted send again. True if one was cleared.
    fn end(&mut self, vector: u8) -> bool {
        let mut cleared = false;
        for pin in 0..self.pins() {
            let p = &mut self.pins[pin as usize];
            if p.low & low::LEVEL != 0 && p.remote_irr && (p.low & low::VECTOR) as u8 == vector {
                p.remote_irr = false;
                cleared = true;
                self.service(pin);
            }
        }
        cleared
    }

    /// A level entry sends if its input is asserted, it is unmasked and Remote IRR is
    /// clear.
    fn service(&mut self, pin: u32) {
        let p = &mut self.pins[pin as usize];
        let level = p.low & low::LEVEL != 0;
        if level && p.asserted && p.low & low::MASKED == 0 && !p.remote_irr {
            p.remote_irr = true;
            self.send(pin);
        }
    }

    fn send(&mut self, pin: u32) {
        let p = self.pins[pin as usize];
        let level = p.low & low::LEVEL != 0;
        let mut addr_lo = 0xfee0_0000 | ((p.high >> 16) & 0xffff) << 4;
        if p.low & low::DEST_MODE_OR_HANDLE15 != 0 {
            addr_lo |= 1 << 2;
        }
        let mut data = p.low & (low::VECTOR | low::DELIVERY_MODE);
        if level {
            // Trigger mode level, level asserted (data bits 15 and 14).
            data |= 1 << 15 | 1 << 14;
        }
        self.counts.sent += 1;
        self.sent.push_back(Sent {
            pin,
            msg: MsiMsg {
                addr_lo,
                addr_hi: 0,
                data,
            },
            level,
        });
    }
}

#[cfg(test)]
mod tests {
    //! The model against the behaviour its doc promises (these run in every test binary
    //! that includes the model).
    use super::*;

    const PIN: u32 = 3;
    const VECTOR: u32 = 0x41;

    fn level_entry(masked: bool) -> u32 {
        VECTOR | low::LEVEL | if masked { low::MASKED } else { 0 }
    }

    fn chip(version: u8) -> IoApicModel {
        let mut io = IoApicModel::new(version, 24);
        io.write_high(PIN, 1 << 24);
        io.write_low(PIN, level_entry(false));
        io
    }

    #[test]
    fn an_asserted_level_line_sends_once_until_its_eoi() {
        let mut io = chip(0x20);
        io.set_line(PIN, true);
        let sent = io.take_sent();
        assert_eq!(sent.len(), 1);
        assert!(sent[0].level && sent[0].msg.data & 0xff == VECTOR);
        assert_eq!(sent[0].msg.addr_lo, 0xfee0_0000 | 1 << 12);
        assert!(io.remote_irr(PIN) && io.read(PIN).low & low::REMOTE_IRR != 0);
        // Still asserted, Remote IRR set: nothing more, whatever else is written.
        io.set_line(PIN, true);
        io.write_high(PIN, 2 << 24);
        assert!(io.take_sent().is_empty());
        // An EOI for another vector changes nothing; the entry's own sends again at once.
        io.broadcast_eoi(VECTOR as u8 + 1);
        assert!(io.take_sent().is_empty() && io.remote_irr(PIN));
        io.broadcast_eoi(VECTOR as u8);
        assert_eq!(io.take_sent().len(), 1, "still asserted: sent again");
        // Dropped before the EOI: the EOI clears Remote IRR and nothing is sent.
        io.set_line(PIN, false);
        io.broadcast_eoi(VECTOR as u8);
        assert!(io.take_sent().is_empty() && !io.remote_irr(PIN));
        assert_eq!(io.counts().broadcast_unmatched, 1);
        assert_eq!(io.counts().broadcast_cleared, 2);
    }

    #[test]
    fn the_eoi_register_exists_from_version_0x20() {
        for (version, works) in [(0x11, false), (0x20, true)] {
            let mut io = chip(version);
            io.set_line(PIN, true);
            io.set_line(PIN, false);
            io.write_eoi(VECTOR as u8);
            assert_eq!(!io.remote_irr(PIN), works, "version {version:#x}");
        }
    }

    #[test]
    fn switching_to_edge_clears_remote_irr_and_masking_holds_the_line() {
        let mut io = chip(0x11);
        io.set_line(PIN, true);
        io.take_sent();
        // Linux's sequence for chips without the EOI register: masked edge, then the
        // entry as it was. The line is still asserted: it sends again on the restore.
        io.write_low(PIN, level_entry(true) & !low::LEVEL);
        assert!(!io.remote_irr(PIN) && io.take_sent().is_empty());
        io.write_low(PIN, level_entry(false));
        assert_eq!(io.take_sent().len(), 1);
        // Masked, an asserted level line waits; unmasked, it sends.
        io.set_line(PIN, false);
        io.broadcast_eoi(VECTOR as u8);
        io.write_low(PIN, level_entry(true));
        io.set_line(PIN, true);
        assert!(io.take_sent().is_empty());
        io.write_low(PIN, level_entry(false));
        assert_eq!(io.take_sent().len(), 1);
        // Software cannot write Remote IRR.
        io.write_low(PIN, level_entry(false) & !low::REMOTE_IRR);
        assert!(io.remote_irr(PIN));
    }

    #[test]
    fn a_masked_edge_entry_drops_the_edge() {
        let mut io = IoApicModel::new(0x20, 24);
        io.write_low(PIN, VECTOR | low::MASKED);
        io.set_line(PIN, true);
        io.set_line(PIN, false);
        io.write_low(PIN, VECTOR);
        assert!(io.take_sent().is_empty());
        assert_eq!(io.counts().edges_dropped, 1);
        io.set_line(PIN, true);
        let sent = io.take_sent();
        assert_eq!(sent.len(), 1);
        assert!(!sent[0].level && !io.remote_irr(PIN));
    }

    #[test]
    fn a_remappable_entry_sends_its_handle() {
        let mut io = IoApicModel::new(0x20, 24);
        // Handle 0x8123 (bits 14:0 in RTE 63:49, bit 15 in RTE bit 11), format bit 48,
        // the pin as vector field.
        io.write_high(PIN, (0x8123 & 0x7fff) << 17 | 1 << 16);
        io.write_low(PIN, PIN | low::LEVEL | low::DEST_MODE_OR_HANDLE15);
        io.set_line(PIN, true);
        let m = io.take_sent()[0].msg;
        assert_eq!(
            m.addr_lo,
            0xfee0_0000 | (0x8123 & 0x7fff) << 5 | 1 << 4 | 1 << 2
        );
        assert_eq!(m.data & 0xff, PIN);
    }
}
