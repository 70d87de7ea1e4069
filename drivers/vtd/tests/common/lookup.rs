//! The model's interrupt remapping: QEMU 10's `vtd_interrupt_remap_msi` and
//! `vtd_irte_get` checks, in QEMU's order, and its fault recording.

use sluice_vtd::{Irte, MsiMessage};

use super::unit::Unit;

/// How an SVT 2 (bus range) SID is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusRangeOrder {
    /// VT-d §9.9 and Linux: SID[15:8] is the start bus, SID[7:0] the end bus.
    Spec,
    /// QEMU 10: SID[15:8] is the highest bus, SID[7:0] the lowest.
    Qemu,
}

/// An interrupt as the APIC receives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub vector: u8,
    pub destination: u32,
    pub level: bool,
    pub logical: bool,
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

impl Unit {
    /// Delivers an MSI write to 0xFEEx_xxxx from `requester` (`None`: no requester id,
    /// as for plain DMA writes and the I/O APIC in QEMU). `Err(reason)` when the unit
    /// blocks it; the fault is recorded as QEMU records it.
    pub fn deliver(
        &mut self,
        msg: MsiMessage,
        requester: Option<u16>,
        order: BusRangeOrder,
    ) -> Result<Delivery, u8> {
        if self.gsts & (1 << 25) == 0 {
            return Ok(PASS);
        }
        let sid = requester.unwrap_or(0xffff);
        if msg.address_hi != 0 || msg.address_lo & 0xfff0_0000 != 0xfee0_0000 {
            return Err(self.fault(sid, 0x20, 0, true));
        }
        if msg.address_lo & (1 << 4) == 0 {
            return self.compatibility(sid);
        }
        let a = msg.address_lo;
        let mut index = (((a >> 5) & 0x7fff) | ((a >> 2) & 1) << 15) as u16;
        let shv = a & (1 << 3) != 0;
        if shv {
            index = index.wrapping_add(msg.data as u16);
        }
        let irte = self.irte_get(index, requester, order)?;
        if shv && msg.data & 0xffff_0000 != 0 {
            return Err(self.fault(sid, 0x20, 0, true));
        }
        let dest = (irte.low() >> 32) as u32;
        Ok(Delivery {
            vector: irte.vector(),
            destination: if self.eime { dest } else { (dest >> 8) & 0xff },
            level: irte.low() & (1 << 4) != 0,
            logical: irte.low() & (1 << 2) != 0,
            delivery_mode: ((irte.low() >> 5) & 7) as u8,
            passthrough: false,
        })
    }

    /// QEMU lets compatibility format through; a real unit blocks it when CFIS is clear
    /// or EIME is set (VT-d fault 0x25).
    fn compatibility(&mut self, sid: u16) -> Result<Delivery, u8> {
        let blocked = self.quirks.cfi_implemented && (self.gsts & (1 << 23) == 0 || self.eime);
        if blocked {
            Err(self.fault(sid, 0x25, 0, true))
        } else {
            Ok(PASS)
        }
    }

    /// QEMU's `vtd_irte_get`, with an interrupt entry cache on units that have one.
    fn irte_get(
        &mut self,
        index: u16,
        requester: Option<u16>,
        order: BusRangeOrder,
    ) -> Result<Irte, u8> {
        let sid = requester.unwrap_or(0xffff);
        if u32::from(index) >= self.intr_size {
            return Err(self.fault(sid, 0x21, index, true));
        }
        if !self.table_readable {
            return Err(self.fault(sid, 0x23, index, true));
        }
        let irte = self.cached_irte(index);
        let report = !irte.fault_processing_disable();
        if !irte.present() {
            return Err(self.fault(sid, 0x22, index, report));
        }
        let reserved = (irte.low() & (0x7 << 12 | 0xff << 24)) | (irte.high() & !0xf_ffff);
        if reserved != 0 {
            return Err(self.fault(sid, 0x24, index, report));
        }
        if let Some(rid) = requester
            && !source_ok(irte, rid, order)
        {
            return Err(self.fault(sid, 0x26, index, report));
        }
        Ok(irte)
    }

    fn cached_irte(&mut self, index: u16) -> Irte {
        if let Some(irte) = self.iec.get(&index) {
            return *irte;
        }
        let irte = self.irt.get(&index).copied().unwrap_or_default();
        if self.quirks.caches_irtes && irte.present() {
            self.iec.insert(index, irte);
        }
        irte
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
