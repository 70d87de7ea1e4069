//! The model's interrupt remapping: QEMU 10's `vtd_interrupt_remap_msi` and
//! `vtd_irte_get` checks, in QEMU's order, and its fault recording — plus what a real
//! unit does and QEMU does not: the interrupt entry cache, compatibility format blocked
//! while CFI is clear, and the reserved destination bits of an xAPIC-mode entry.
//!
//! A lookup is computed without side effects ([`Unit::peek`]); [`Unit::deliver`] then
//! applies them as the hardware would (an entry cached on first use, a fault recorded).

use sluice_vtd::{Irte, MsiMessage};

use super::unit::Unit;

/// How an SVT 2 (bus range) SID is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusRangeOrder {
    /// VT-d §9.9 and Linux: `SID[15:8]` is the start bus, `SID[7:0]` the end bus.
    Spec,
    /// QEMU 10: `SID[15:8]` is the highest bus, `SID[7:0]` the lowest.
    Qemu,
}

/// An interrupt as the APIC receives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// The vector.
    pub vector: u8,
    /// The destination APIC id (or logical destination).
    pub destination: u32,
    /// Level-triggered.
    pub level: bool,
    /// Logical destination mode.
    pub logical: bool,
    /// The delivery mode's 3-bit encoding.
    pub delivery_mode: u8,
    /// It went through without remapping (IR off, or compatibility format let through).
    pub passthrough: bool,
}

const PASS: Delivery = Delivery {
    vector: 0,
    destination: 0,
    level: false,
    logical: false,
    delivery_mode: 0,
    passthrough: true,
};

/// Bits of the low half that are reserved in every remapped entry (VT-d §9.10).
const RESERVED_LOW: u64 = 0x7 << 12 | 0xff << 24;
/// The destination bits an xAPIC-mode entry (IRTA.EIME clear) must leave zero: the APIC
/// id sits in DST\[15:8\] (entry bits 47:40); DST\[7:0\] and DST\[31:16\] are reserved.
const RESERVED_LOW_XAPIC: u64 = 0xff << 32 | 0xffff << 48;
/// Bits of the high half above the source-id fields.
const RESERVED_HIGH: u64 = !0xf_ffff;

/// Why a lookup failed, and what the unit records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fault {
    reason: u8,
    index: u16,
    /// Recorded (FPD clear in the entry, or no entry involved).
    report: bool,
}

impl Fault {
    fn at(reason: u8, index: u16, report: bool) -> Fault {
        Fault {
            reason,
            index,
            report,
        }
    }
}

/// A lookup's result before its side effects: where it goes (or why not), and the entry
/// to cache if it was read from the table — cached on fetch, whatever the checks after
/// the fetch say.
struct Lookup {
    result: Result<Delivery, Fault>,
    fill: Option<(u16, Irte)>,
}

impl Lookup {
    fn fault(f: Fault) -> Lookup {
        Lookup {
            result: Err(f),
            fill: None,
        }
    }
}

impl Unit {
    /// Delivers an MSI write to 0xFEEx_xxxx from `requester` (`None`: no requester id,
    /// as for plain DMA writes and the I/O APIC in QEMU). `Err(reason)` when the unit
    /// blocks it; the fault is recorded as QEMU records it, and an entry read from the
    /// table is cached on a unit that caches.
    pub fn deliver(
        &mut self,
        msg: MsiMessage,
        requester: Option<u16>,
        order: BusRangeOrder,
    ) -> Result<Delivery, u8> {
        let Lookup { result, fill } = self.lookup(msg, requester, order);
        if let Some((index, irte)) = fill
            && self.quirks.caches_irtes
            && irte.present()
        {
            self.iec.insert(index, irte);
        }
        result.map_err(|f| self.fault(requester.unwrap_or(0xffff), f.reason, f.index, f.report))
    }

    /// Where [`Unit::deliver`] would send `msg` now, with no side effect: nothing cached,
    /// no fault recorded. What a test asks to see where a device's message leads.
    pub fn peek(
        &self,
        msg: MsiMessage,
        requester: Option<u16>,
        order: BusRangeOrder,
    ) -> Result<Delivery, u8> {
        self.lookup(msg, requester, order)
            .result
            .map_err(|f| f.reason)
    }

    /// Would the unit remap `msg` through a cached entry that differs from the table's —
    /// an entry changed in memory whose invalidation has not happened yet?
    pub fn serves_stale(&self, msg: MsiMessage) -> bool {
        let a = msg.address_lo;
        if self.gsts & (1 << 25) == 0 || a & (1 << 4) == 0 {
            return false;
        }
        let index = Self::handle(msg);
        let table = self.irt.get(&index).copied().unwrap_or_default();
        self.iec.get(&index).is_some_and(|&cached| cached != table)
    }

    /// The entry a remappable message names: handle, plus the subhandle with SHV.
    fn handle(msg: MsiMessage) -> u16 {
        let a = msg.address_lo;
        let index = (((a >> 5) & 0x7fff) | ((a >> 2) & 1) << 15) as u16;
        if a & (1 << 3) != 0 {
            index.wrapping_add(msg.data as u16)
        } else {
            index
        }
    }

    fn lookup(&self, msg: MsiMessage, requester: Option<u16>, order: BusRangeOrder) -> Lookup {
        if self.gsts & (1 << 25) == 0 {
            return Lookup {
                result: Ok(PASS),
                fill: None,
            };
        }
        if msg.address_hi != 0 || msg.address_lo & 0xfff0_0000 != 0xfee0_0000 {
            return Lookup::fault(Fault::at(0x20, 0, true));
        }
        if msg.address_lo & (1 << 4) == 0 {
            return self.compatibility();
        }
        let shv = msg.address_lo & (1 << 3) != 0;
        let index = Self::handle(msg);
        let (irte, fill) = match self.irte_get(index, requester, order) {
            (Ok(irte), fill) => (irte, fill),
            (Err(f), fill) => {
                return Lookup {
                    result: Err(f),
                    fill,
                };
            }
        };
        if shv && msg.data & 0xffff_0000 != 0 {
            return Lookup {
                result: Err(Fault::at(0x20, 0, true)),
                fill,
            };
        }
        let dest = (irte.low() >> 32) as u32;
        let d = Delivery {
            vector: irte.vector(),
            destination: if self.eime { dest } else { (dest >> 8) & 0xff },
            level: irte.low() & (1 << 4) != 0,
            logical: irte.low() & (1 << 2) != 0,
            delivery_mode: ((irte.low() >> 5) & 7) as u8,
            passthrough: false,
        };
        Lookup {
            result: Ok(d),
            fill,
        }
    }

    /// QEMU lets compatibility format through; a real unit blocks it when CFIS is clear
    /// or EIME is set (VT-d §5.1.4, fault 0x25).
    fn compatibility(&self) -> Lookup {
        let blocked = self.quirks.cfi_implemented && (self.gsts & (1 << 23) == 0 || self.eime);
        Lookup {
            result: if blocked {
                Err(Fault::at(0x25, 0, true))
            } else {
                Ok(PASS)
            },
            fill: None,
        }
    }

    /// QEMU's `vtd_irte_get`, through the interrupt entry cache on units that have one,
    /// and with the xAPIC destination check of units that make it.
    fn irte_get(
        &self,
        index: u16,
        requester: Option<u16>,
        order: BusRangeOrder,
    ) -> (Result<Irte, Fault>, Option<(u16, Irte)>) {
        if u32::from(index) >= self.intr_size {
            return (Err(Fault::at(0x21, index, true)), None);
        }
        if !self.table_readable {
            return (Err(Fault::at(0x23, index, true)), None);
        }
        let (irte, fill) = match self.iec.get(&index) {
            Some(&cached) => (cached, None),
            None => {
                let irte = self.irt.get(&index).copied().unwrap_or_default();
                (irte, Some((index, irte)))
            }
        };
        let report = !irte.fault_processing_disable();
        if !irte.present() {
            return (Err(Fault::at(0x22, index, report)), fill);
        }
        let xapic = if !self.eime && self.quirks.checks_xapic_destination {
            RESERVED_LOW_XAPIC
        } else {
            0
        };
        let reserved = (irte.low() & (RESERVED_LOW | xapic)) | (irte.high() & RESERVED_HIGH);
        if reserved != 0 {
            return (Err(Fault::at(0x24, index, report)), fill);
        }
        if let Some(rid) = requester
            && !source_ok(irte, rid, order)
        {
            return (Err(Fault::at(0x26, index, report)), fill);
        }
        (Ok(irte), fill)
    }

    /// Records a fault as QEMU's `vtd_report_frcd_fault` does and returns the reason.
    pub fn fault(&mut self, sid: u16, reason: u8, index: u16, report: bool) -> u8 {
        if !report || self.fsts & 1 != 0 {
            return reason;
        }
        let same_sid = self
            .frcd
            .iter()
            .any(|f| f.1 & (1 << 63) != 0 && f.1 as u16 == sid);
        if same_sid {
            return reason;
        }
        let i = self.next_frcd;
        if self.frcd[i].1 & (1 << 63) != 0 {
            self.fsts |= 1;
            return reason;
        }
        let before = self.fsts;
        self.frcd[i] = (
            u64::from(index) << 48,
            u64::from(sid) | u64::from(reason) << 32 | 1 << 63,
        );
        self.next_frcd = (i + 1) % self.frcd.len();
        self.fsts = (self.fsts & !0xff00) | 1 << 1 | (i as u32) << 8;
        if before & 0b10011 == 0 && self.fectl & (1 << 31) == 0 {
            self.fault_events += 1;
        }
        reason
    }
}

/// QEMU's source-id check (SVT 1: masks by SQ; SVT 2: bus range; SVT 3: fails).
fn source_ok(irte: Irte, rid: u16, order: BusRangeOrder) -> bool {
    const MASKS: [u16; 4] = [0xffff, 0xfffb, 0xfff9, 0xfff8];
    let sid = irte.high() as u16;
    let sq = ((irte.high() >> 16) & 3) as usize;
    match (irte.high() >> 18) & 3 {
        0 => true,
        1 => sid & MASKS[sq] == rid & MASKS[sq],
        2 => {
            let bus = (rid >> 8) as u8;
            let (hi, lo) = ((sid >> 8) as u8, sid as u8);
            match order {
                BusRangeOrder::Spec => (hi..=lo).contains(&bus),
                BusRangeOrder::Qemu => (lo..=hi).contains(&bus),
            }
        }
        _ => false,
    }
}
