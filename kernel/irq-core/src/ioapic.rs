//! An I/O APIC as a domain under the vector domain (or a remapping domain): hardware irq
//! = input pin, the redirection entry (RTE) is the level's storage.
//!
//! **The entry is derived from the message its parent composes**, field by field, the
//! way the chipset would decode an MSI: vector and delivery mode from the data word, and
//! the address bits 19:4 — destination (compatibility format) or interrupt handle
//! (remappable format), plus the format bit — into RTE bits 63:48, address bit 2 (logical
//! destination, or handle bit 15) into RTE bit 11. Under interrupt remapping the same
//! code therefore writes a remappable-format entry (handle, pin as subhandle in the vector
//! field; VT-d spec §5.1.5.1) with no special case. Trigger mode and polarity come from
//! the line (the allocation request), never from the message.
//!
//! **Ending a level interrupt.** A level entry that has sent its interrupt holds Remote
//! IRR, and sends nothing more until an EOI whose vector equals its vector field clears
//! it (82093AA §3.2.4). The local APIC's EOI for a level-triggered vector is broadcast to
//! every I/O APIC with that vector (Intel SDM vol. 3A §11.8.5; Sluice never enables
//! directed EOI, SVR bit 12), which ends a compatibility-format entry — usually. It ends
//! nothing when the vector the CPU ends is not the entry's vector field:
//!
//! - **remappable format**: the vector field holds the pin (VT-d §5.1.5.1), the CPU's
//!   vector is the remapping entry's;
//! - **the interrupt came by IPI**: hotplug's re-delivery, or a two-step move's
//!   retrigger, arrives as edge (its TMR bit clear), and its EOI is not broadcast at all
//!   (Linux's `ioapic_ack_level` names the same case);
//! - **the entry's vector moved** while Remote IRR was set: the interrupt was latched at
//!   the old vector when a move wrote the new one, and the CPU ends the old.
//!
//! So a level line's `ack` and `eoi` answer [`ChipOp::ParentFirst`]: the local APIC's EOI
//! first (flow.rs says why in that order), then the chip (`end_level`) compares the
//! vector that EOI was broadcast with — known from the local APIC's TMR before the EOI,
//! `None` for an interrupt that arrived edge-triggered — with the entry's vector field,
//! which is what the I/O APIC compares: equal, the broadcast ended it; otherwise the
//! chip ends it here with the entry's vector field, through the EOI register (window
//! offset 0x40, from version 0x20, the PCI 2.2 I/O(x)APICs), or, on older chips that
//! have none, by Linux's sequence — entry masked and edge, then restored — since an edge
//! entry holds no Remote IRR. Remote IRR itself is never read to decide: after the
//! broadcast it may already belong to the line's *next* interrupt (a still-asserted
//! line sends again the moment it is cleared), and ending that one too would have the
//! line send it twice. Remapped entries are therefore always ended here (a vector field
//! holding the pin matches a broadcast only if the IRTE's vector happens to equal the
//! pin's number — and then the broadcast did end it).
//!
//! An RTE is two 32-bit registers behind an index register, so it cannot change vector
//! and CPU in one write; masking does not help, because an edge on a masked pin is dropped
//! by real I/O APICs (82093AA datasheet §3.2.4: masked edge interrupts are not delivered
//! or held pending). A move therefore uses the two-step plan of non-maskable MSIs — new
//! vector on the old CPU (low word), then the new CPU (high word), run on the old CPU with
//! interrupts off, then an IRR check — with its own step names, [`Word::RteLow`] and
//! [`Word::RteHigh`].

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::affinity::{Step, StepPlan, Word, plan_unmaskable_words};
use crate::chip::{AffinityMsgs, Chip, ChipOp, HwIrq, LevelCtx};
use crate::domain::Domain;
use crate::error::{IrqError, Result, Virq};
use crate::msi::{MsiMsg, Trigger};
use crate::source::{IrqSource, Polarity};
use crate::vector::Vector;
use sluice_sync::IrqSpinLock;

/// Bits of an RTE's low word (82093AA datasheet §3.2.4).
pub mod low {
    /// Vector (or, in remappable format, the subhandle: the pin).
    pub const VECTOR: u32 = 0xff;
    /// Delivery mode, bits 10:8.
    pub const DELIVERY_MODE: u32 = 0x7 << 8;
    /// Logical destination mode (compatibility) / interrupt handle bit 15 (remappable).
    pub const DEST_MODE_OR_HANDLE15: u32 = 1 << 11;
    /// Delivery status (read-only).
    pub const DELIVERY_PENDING: u32 = 1 << 12;
    /// Input pin polarity: active low.
    pub const ACTIVE_LOW: u32 = 1 << 13;
    /// Remote IRR (read-only; level lines between delivery and EOI).
    pub const REMOTE_IRR: u32 = 1 << 14;
    /// Trigger mode: level.
    pub const LEVEL: u32 = 1 << 15;
    /// Masked.
    pub const MASKED: u32 = 1 << 16;
}

/// Bits of an RTE's high word.
pub mod high {
    /// Remappable format (RTE bit 48).
    pub const FORMAT_REMAPPABLE: u32 = 1 << 16;
    /// Compatibility format: physical destination APIC id bits 7:0 (RTE 63:56).
    pub const DEST_SHIFT: u32 = 24;
    /// Compatibility format: extended destination id bits 14:8 (RTE 55:49).
    pub const EXT_DEST_SHIFT: u32 = 17;
    /// Remappable format: interrupt handle bits 14:0 (RTE 63:49).
    pub const HANDLE_SHIFT: u32 = 17;
}

/// The electrical settings of an input line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Line {
    /// Edge or level.
    pub trigger: Trigger,
    /// Active high or low.
    pub polarity: Polarity,
}

/// A redirection table entry as its two registers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rte {
    /// Register `0x10 + 2·pin`.
    pub low: u32,
    /// Register `0x11 + 2·pin`.
    pub high: u32,
}

impl Rte {
    /// The entry that makes the I/O APIC send `msg` for an interrupt on `line`.
    pub fn from_msg(msg: &MsiMsg, line: Line, masked: bool) -> Rte {
        let mut l = msg.data & (low::VECTOR | low::DELIVERY_MODE);
        if msg.addr_lo & (1 << 2) != 0 {
            l |= low::DEST_MODE_OR_HANDLE15;
        }
        if line.polarity == Polarity::ActiveLow {
            l |= low::ACTIVE_LOW;
        }
        if line.trigger == Trigger::Level {
            l |= low::LEVEL;
        }
        if masked {
            l |= low::MASKED;
        }
        Rte {
            low: l,
            high: ((msg.addr_lo >> 4) & 0xffff) << 16,
        }
    }

    /// The same entry, masked or not.
    pub fn with_mask(self, masked: bool) -> Rte {
        let low = if masked {
            self.low | low::MASKED
        } else {
            self.low & !low::MASKED
        };
        Rte { low, ..self }
    }

    /// Vector field (the subhandle in remappable format).
    pub fn vector(&self) -> u8 {
        (self.low & low::VECTOR) as u8
    }
    /// Masked?
    pub fn masked(&self) -> bool {
        self.low & low::MASKED != 0
    }
    /// Level triggered?
    pub fn level(&self) -> bool {
        self.low & low::LEVEL != 0
    }
    /// Active low?
    pub fn active_low(&self) -> bool {
        self.low & low::ACTIVE_LOW != 0
    }
    /// Remappable format?
    pub fn remappable(&self) -> bool {
        self.high & high::FORMAT_REMAPPABLE != 0
    }
    /// Compatibility format: the destination id (8 bits, plus the extended bits 14:8).
    pub fn dest(&self) -> u32 {
        self.high >> high::DEST_SHIFT | ((self.high >> high::EXT_DEST_SHIFT) & 0x7f) << 8
    }
    /// Remappable format: the interrupt handle.
    pub fn handle(&self) -> u16 {
        ((self.high >> high::HANDLE_SHIFT) & 0x7fff) as u16
            | u16::from(self.low & low::DEST_MODE_OR_HANDLE15 != 0) << 15
    }
}

impl fmt::Display for Rte {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}_{:08x}: ", self.high, self.low)?;
        if self.remappable() {
            write!(
                f,
                "remappable handle {} subhandle {}",
                self.handle(),
                self.vector()
            )?;
        } else {
            write!(f, "vector {:#04x} dest {}", self.vector(), self.dest())?;
        }
        write!(
            f,
            ", {}, active {}{}{}",
            if self.level() { "level" } else { "edge" },
            if self.active_low() { "low" } else { "high" },
            if self.masked() { ", masked" } else { "" },
            if self.low & low::REMOTE_IRR != 0 {
                ", remote IRR"
            } else {
                ""
            }
        )
    }
}

/// An I/O APIC's redirection table. Each write is **one** register write: the device may
/// send between any two of them, and the affinity plan is built around that. The
/// storage serialises its index/data register pair itself (under the descriptor lock of
/// whichever irq is being driven; two irqs of one I/O APIC may be driven at once).
pub trait RteStorage: Send + Sync {
    /// Number of input pins.
    fn pins(&self) -> u32;
    /// Both registers of `pin`'s entry.
    fn read(&self, pin: u32) -> Rte;
    /// Write the low register of `pin`'s entry.
    fn write_low(&self, pin: u32, value: u32);
    /// Write the high register of `pin`'s entry.
    fn write_high(&self, pin: u32, value: u32);
    /// The low register of `pin`'s entry alone (one register read where the whole entry
    /// is not needed: a level line's end reads Remote IRR and the vector field).
    fn read_low(&self, pin: u32) -> u32 {
        self.read(pin).low
    }
    /// The chip's version (IOAPICVER bits 7:0). From [`EOI_REGISTER_VERSION`] on the
    /// chip has the EOI register. The default, `0x11`, claims none: correct on any
    /// I/O APIC (a level line is then ended by the mask–edge–level sequence), so storage
    /// over a real chip reports what its version register says.
    fn version(&self) -> u8 {
        0x11
    }
    /// Write `vector` to the EOI register (offset 0x40 of the window, from version 0x20
    /// on): the chip clears Remote IRR of every level-triggered entry whose vector field
    /// is `vector`. Never called on a chip whose [`RteStorage::version`] is below
    /// [`EOI_REGISTER_VERSION`].
    fn write_eoi(&self, vector: u8) {
        let _ = vector;
    }
}

/// The first I/O APIC version with the EOI register: the PCI 2.2 compliant I/O(x)APICs
/// (`0x2X`); `0x1X` (the 82093AA and the cores of older chipsets) have none.
pub const EOI_REGISTER_VERSION: u8 = 0x20;

/// One I/O APIC as an irq domain and chip.
pub struct IoApicDomain<S: RteStorage> {
    id: u8,
    /// `IO-APIC`, or `IR-IO-APIC` under a remapping domain (Linux's names).
    name: &'static str,
    /// Under a remapping domain: every entry is in remappable format.
    remapped: bool,
    storage: S,
    /// Per pin: the line settings while allocated (allocation runs under the domain lock).
    lines: IrqSpinLock<Vec<Option<Line>>>,
    /// Compatibility-format level interrupts that the local APIC's EOI did not end (it
    /// was not broadcast with the entry's vector): `irqs --linux` shows them as Linux's
    /// `MIS`.
    missed_eois: AtomicU64,
}

impl<S: RteStorage> IoApicDomain<S> {
    /// The domain of the I/O APIC with MADT id `id` over its redirection table.
    pub fn new(id: u8, storage: S) -> Self {
        Self::named(id, storage, false)
    }

    /// The same under an interrupt-remapping domain: its entries are derived from the
    /// remappable messages that domain composes; only the chip's name differs.
    pub fn remapped(id: u8, storage: S) -> Self {
        Self::named(id, storage, true)
    }

    fn named(id: u8, storage: S, remapped: bool) -> Self {
        let pins = storage.pins() as usize;
        Self {
            id,
            name: if remapped { "IR-IO-APIC" } else { "IO-APIC" },
            remapped,
            storage,
            lines: IrqSpinLock::new(&crate::locks::IOAPIC_LINES, alloc::vec![None; pins]),
            missed_eois: AtomicU64::new(0),
        }
    }

    /// How many compatibility-format level interrupts the local APIC's broadcast EOI
    /// left at Remote IRR, so that this chip ended them: an interrupt that came by IPI
    /// (hotplug's re-delivery, a retrigger) and so as edge, or one whose entry's vector
    /// moved meanwhile. Linux counts the same case, found from the TMR, as `MIS`
    /// (`ioapic_ack_level`). A remappable entry is always ended here (its vector field
    /// holds the pin), which is the rule, not a miss, and is not counted.
    pub fn missed_eois(&self) -> u64 {
        self.missed_eois.load(Ordering::Relaxed)
    }

    /// The redirection table (to read an entry back for `irq N`).
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// The MADT id this domain serves.
    pub fn id(&self) -> u8 {
        self.id
    }

    fn line(&self, hwirq: HwIrq) -> Result<(u32, Line)> {
        let pin = u32::try_from(hwirq).map_err(|_| IrqError::InvalidArgument)?;
        let line = self
            .lines
            .lock()
            .get(pin as usize)
            .copied()
            .flatten()
            .ok_or(IrqError::InvalidArgument)?;
        Ok((pin, line))
    }

    fn set_mask(&self, pin: u32, masked: bool) {
        let e = self.storage.read(pin).with_mask(masked);
        self.storage.write_low(pin, e.low);
    }

    fn words(e: Rte) -> [(Word, u32); 2] {
        [(Word::RteLow, e.low), (Word::RteHigh, e.high)]
    }

    /// What `ack` and `eoi` answer: a level line is ended here too, after the parents.
    fn end_op(&self, d: &LevelCtx) -> Result<ChipOp> {
        Ok(match self.line(d.hwirq)?.1.trigger {
            Trigger::Level => ChipOp::ParentFirst,
            Trigger::Edge => ChipOp::Delegate,
        })
    }

    /// After the local APIC's EOI, broadcast with `broadcast` (or not at all): unless
    /// that vector is `pin`'s entry's vector field — then the I/O APIC ended it — end it
    /// here. With the EOI register, by writing the entry's vector field to it; without
    /// (before version 0x20), as Linux does (`__eoi_ioapic_pin`): the entry masked and
    /// edge-triggered, which clears Remote IRR, then written back as it was.
    fn end_level(&self, pin: u32, broadcast: Option<Vector>) {
        let entry = self.storage.read_low(pin);
        if broadcast.is_some_and(|v| u32::from(v.0) == entry & low::VECTOR) {
            return;
        }
        if !self.remapped {
            self.missed_eois.fetch_add(1, Ordering::Relaxed);
        }
        if self.storage.version() >= EOI_REGISTER_VERSION {
            self.storage.write_eoi((entry & low::VECTOR) as u8);
        } else {
            let entry = entry & !(low::REMOTE_IRR | low::DELIVERY_PENDING);
            self.storage
                .write_low(pin, (entry | low::MASKED) & !low::LEVEL);
            self.storage.write_low(pin, entry);
        }
    }

    /// A one-line description of the chip for listings.
    pub fn describe(&self) -> String {
        alloc::format!("I/O APIC {} ({} pins)", self.id, self.storage.pins())
    }
}

impl<S: RteStorage> Domain for IoApicDomain<S> {
    fn size(&self) -> u32 {
        self.storage.pins()
    }

    fn select(&self, source: &IrqSource) -> bool {
        matches!(source, IrqSource::IoApic { id, .. } if *id == self.id)
    }

    fn translate(&self, source: &IrqSource) -> Result<(HwIrq, Trigger)> {
        match *source {
            IrqSource::IoApic {
                id, pin, trigger, ..
            } if id == self.id && pin < self.storage.pins() => Ok((HwIrq::from(pin), trigger)),
            _ => Err(IrqError::InvalidArgument),
        }
    }

    fn alloc(&self, _virq: Virq, nr: u32, source: &IrqSource) -> Result<HwIrq> {
        let (hw, trigger) = self.translate(source)?;
        let IrqSource::IoApic { polarity, .. } = *source else {
            return Err(IrqError::InvalidArgument);
        };
        if nr != 1 {
            return Err(IrqError::InvalidArgument);
        }
        let mut lines = self.lines.lock();
        let slot = lines
            .get_mut(hw as usize)
            .ok_or(IrqError::InvalidArgument)?;
        if slot.is_some() {
            return Err(IrqError::Busy);
        }
        *slot = Some(Line { trigger, polarity });
        Ok(hw)
    }

    fn free(&self, _virq: Virq, hwirq: HwIrq, _nr: u32) {
        let mut lines = self.lines.lock();
        if let Some(slot) = usize::try_from(hwirq).ok().and_then(|p| lines.get_mut(p)) {
            *slot = None;
            self.set_mask(hwirq as u32, true);
        }
    }

    /// Programs the entry for the irq's target, masked; the core unmasks when it starts.
    /// High word first, so the pin never becomes live half-written.
    fn activate(&self, d: &LevelCtx, msg: &MsiMsg) -> Result<()> {
        let (pin, line) = self.line(d.hwirq)?;
        let e = Rte::from_msg(msg, line, true);
        self.storage
            .write_low(pin, self.storage.read(pin).low | low::MASKED);
        self.storage.write_high(pin, e.high);
        self.storage.write_low(pin, e.low);
        Ok(())
    }

    fn deactivate(&self, d: &LevelCtx, msg: &MsiMsg) -> Result<()> {
        self.activate(d, msg)
    }
}

impl<S: RteStorage> Chip for IoApicDomain<S> {
    fn name(&self) -> &str {
        self.name
    }

    fn mask(&self, d: &LevelCtx) -> Result<ChipOp> {
        self.set_mask(self.line(d.hwirq)?.0, true);
        Ok(ChipOp::Done)
    }

    fn unmask(&self, d: &LevelCtx) -> Result<ChipOp> {
        self.set_mask(self.line(d.hwirq)?.0, false);
        Ok(ChipOp::Done)
    }

    /// An edge line is ended at the local APIC alone. A level line there first, then
    /// here (`Self::end_level`): see the module docs, "Ending a level interrupt".
    fn ack(&self, d: &LevelCtx) -> Result<ChipOp> {
        self.end_op(d)
    }

    /// As [`Chip::ack`] (the fasteoi flow ends here, the level flow at `ack`).
    fn eoi(&self, d: &LevelCtx) -> Result<ChipOp> {
        self.end_op(d)
    }

    fn end_after_parent(&self, d: &LevelCtx, broadcast: Option<Vector>) -> Result<()> {
        self.end_level(self.line(d.hwirq)?.0, broadcast);
        Ok(())
    }

    fn set_affinity(&self, d: &LevelCtx, m: &AffinityMsgs) -> Result<Option<StepPlan>> {
        let (pin, line) = self.line(d.hwirq)?;
        let entry = |msg: &MsiMsg| Self::words(Rte::from_msg(msg, line, false));
        Ok(Some(plan_unmaskable_words(
            d,
            pin,
            m,
            &entry(&m.old),
            &entry(&m.intermediate),
            &entry(&m.new),
        )))
    }

    /// A low-word write keeps the mask the descriptor has *now*: the plan was made
    /// unmasked, and the irq may have been masked (lazy disable) before the plan ran.
    fn exec_step(&self, d: &LevelCtx, _index: u32, step: &Step, _msg: &MsiMsg) -> Result<()> {
        let (pin, _) = self.line(d.hwirq)?;
        match *step {
            Step::Write(Word::RteLow, v) => {
                let e = Rte { low: v, high: 0 }.with_mask(d.masked);
                self.storage.write_low(pin, e.low);
            }
            Step::Write(Word::RteHigh, v) => self.storage.write_high(pin, v),
            _ => return Err(IrqError::Unsupported),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msi::{CompatMsi, DestFormat, compose};

    const EDGE_HIGH: Line = Line {
        trigger: Trigger::Edge,
        polarity: Polarity::ActiveHigh,
    };

    #[test]
    fn compatibility_entry_from_message() {
        let m = compose(&CompatMsi::fixed(0x12, Vector(0x41)), DestFormat::XApic).unwrap();
        let e = Rte::from_msg(
            &m,
            Line {
                trigger: Trigger::Level,
                polarity: Polarity::ActiveLow,
            },
            true,
        );
        assert_eq!(e.low, 0x41 | low::ACTIVE_LOW | low::LEVEL | low::MASKED);
        assert_eq!(e.high, 0x12 << 24);
        assert_eq!((e.vector(), e.dest()), (0x41, 0x12));
        assert!(!e.remappable());
        assert!(e.level() && e.active_low() && e.masked());
        assert!(!e.with_mask(false).masked());
    }

    #[test]
    fn extended_destination_lands_in_bits_55_49() {
        let m = compose(
            &CompatMsi::fixed(0x1234, Vector(0x30)),
            DestFormat::ExtDest15,
        )
        .unwrap();
        let e = Rte::from_msg(&m, EDGE_HIGH, false);
        assert_eq!(e.dest(), 0x1234);
        assert_eq!(e.high, 0x34 << 24 | 0x12 << 17);
    }

    #[test]
    fn remappable_message_gives_a_remappable_entry() {
        // Handle 0x8123: bits 14:0 in address 19:5, bit 15 in address bit 2; format bit 4;
        // the subhandle (the pin, 9) in the data word.
        let handle: u32 = 0x8123;
        let m = MsiMsg {
            addr_lo: 0xFEE0_0000 | (handle & 0x7fff) << 5 | 1 << 4 | (handle >> 15) << 2,
            addr_hi: 0,
            data: 9,
        };
        let e = Rte::from_msg(&m, EDGE_HIGH, false);
        assert!(e.remappable());
        assert_eq!(e.handle(), 0x8123);
        assert_eq!(e.vector(), 9);
        assert_eq!(e.high >> 16 & 1, 1, "format bit 48");
    }
}
