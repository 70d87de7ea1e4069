//! A local APIC as far as interrupt delivery and EOI go (Intel SDM vol. 3A §11.8.4–11.8.5):
//! the IRR, ISR and TMR bitmaps and what an EOI sends to the I/O APICs.
//!
//! - An accepted interrupt sets its IRR bit (a second one while it is set merges into
//!   it) and its TMR bit to its trigger mode: set for level, cleared for edge (§11.8.4).
//!   An IPI is always edge; what an I/O APIC or a remapping entry sends for a level line
//!   is level.
//! - The highest pending vector is dispatched when its priority class (vector bits 7:4)
//!   is above that of the highest vector in service: its IRR bit moves to the ISR.
//! - An EOI clears the highest ISR bit; if that vector's TMR bit is set, the EOI is
//!   broadcast to every I/O APIC with the vector (§11.8.5; directed EOI, SVR bit 12,
//!   is not modelled: Sluice does not enable it).

/// 256 bits, one per vector.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VectorBits([u64; 4]);

impl VectorBits {
    /// Is `v` set?
    pub fn get(&self, v: u8) -> bool {
        self.0[usize::from(v >> 6)] & (1 << (v & 63)) != 0
    }
    /// Set or clear `v`.
    pub fn set(&mut self, v: u8, on: bool) {
        let w = &mut self.0[usize::from(v >> 6)];
        if on {
            *w |= 1 << (v & 63);
        } else {
            *w &= !(1 << (v & 63));
        }
    }
    /// The highest vector set.
    pub fn highest(&self) -> Option<u8> {
        (0..4).rev().find_map(|i| {
            let w = self.0[i];
            (w != 0).then(|| (i as u8) << 6 | (63 - w.leading_zeros() as u8))
        })
    }
}

/// One CPU's local APIC.
#[derive(Clone, Debug, Default)]
pub struct LapicModel {
    /// Requested, not yet in service.
    pub irr: VectorBits,
    /// In service (dispatched, no EOI yet).
    pub isr: VectorBits,
    /// Trigger mode of the last interrupt accepted on each vector: set = level.
    pub tmr: VectorBits,
    /// Interrupts accepted while their IRR bit was already set (merged into it).
    pub merged: u64,
}

impl LapicModel {
    /// An interrupt on `vector` arrives: from an I/O APIC or a remapping entry (`level`
    /// as the entry says), or by IPI (`level` false).
    pub fn accept(&mut self, vector: u8, level: bool) {
        if self.irr.get(vector) {
            self.merged += 1;
        }
        self.irr.set(vector, true);
        self.tmr.set(vector, level);
    }

    /// Is `vector` pending in the IRR?
    pub fn pending(&self, vector: u8) -> bool {
        self.irr.get(vector)
    }

    /// The interrupt the CPU takes next when it enables interrupts, moved to the ISR.
    pub fn dispatch(&mut self) -> Option<u8> {
        let v = self.irr.highest()?;
        if self.isr.highest().is_some_and(|s| s >> 4 >= v >> 4) {
            return None;
        }
        self.irr.set(v, false);
        self.isr.set(v, true);
        Some(v)
    }

    /// An EOI: ends the highest vector in service. Returns the vector to broadcast to the
    /// I/O APICs if it was accepted level-triggered.
    pub fn eoi(&mut self) -> Option<u8> {
        let v = self.isr.highest()?;
        self.isr.set(v, false);
        self.tmr.get(v).then_some(v)
    }
}
