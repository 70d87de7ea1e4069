//! The model's queued invalidation engine: fetch at IQH, check the descriptor the way
//! QEMU's `vtd_process_inv_desc` does, execute it, stop with FSTS.IQE on a bad one.

use sluice_vtd::descriptor::{Decoded, Descriptor, IecScope, kind};

use super::unit::{QiMode, Unit};

const IQE: u32 = 1 << 4;

/// Reserved-bit masks (low, high) per descriptor type, as QEMU checks them for 128-bit
/// descriptors.
fn reserved(kind_code: u8) -> Option<(u64, u64)> {
    Some(match kind_code {
        kind::CONTEXT_CACHE => (0xfffc_0000_0000_ffc0, !0),
        kind::IOTLB => (0xffff_ffff_0000_ff00, 0xf80),
        kind::IEC => (0xffff_0000_07ff_ffe0, !0),
        kind::WAIT => (0xffff_ff80, 0x3),
        _ => return None,
    })
}

impl Unit {
    pub(crate) fn on_iqt_write(&mut self) {
        if self.qi_enabled && self.fsts & IQE == 0 && self.qi_mode == QiMode::Synchronous {
            self.run_until_blocked();
        }
    }

    /// Restarts the engine after IQE was cleared (real units).
    pub(crate) fn kick(&mut self) {
        if self.qi_mode == QiMode::Synchronous {
            self.run_until_blocked();
        }
    }

    /// A poll by software: a lazy engine processes a descriptor every few polls.
    pub(crate) fn progress(&mut self) {
        if let QiMode::Lazy { polls } = self.qi_mode {
            self.lazy_credit += 1;
            if self.lazy_credit >= polls {
                self.lazy_credit = 0;
                self.step();
            }
        }
    }

    fn tail(&self) -> usize {
        ((self.iqt >> 4) & 0x7fff) as usize
    }

    fn run_until_blocked(&mut self) {
        while self.step() {}
    }

    /// Processes the descriptor at IQH, if any; false when nothing was done.
    fn step(&mut self) -> bool {
        if !self.qi_enabled || self.fsts & IQE != 0 || self.aborted.is_some() {
            return false;
        }
        if self.tail() >= self.iq_size || self.iqh == self.tail() {
            return false;
        }
        let addr = self.iq_base + self.iqh as u64 * 16;
        let d = self.ring.get(&addr).copied().unwrap_or_default();
        if !self.execute(d) {
            self.fsts |= IQE;
            return false;
        }
        self.processed.push(d);
        self.last_desc_type = d.kind();
        self.iqh = (self.iqh + 1) % self.iq_size;
        true
    }

    fn valid(&self, d: Descriptor) -> bool {
        let Some((lo_mask, hi_mask)) = reserved(d.kind()) else {
            return false;
        };
        if d.lo & lo_mask != 0 || d.hi & hi_mask != 0 || self.rejected_types.contains(&d.kind()) {
            return false;
        }
        match d.decode() {
            Decoded::ContextCache { granularity } | Decoded::Iotlb { granularity, .. } => {
                granularity != 0
            }
            Decoded::Iec(IecScope::Indexed { mask, .. }) => {
                u64::from(mask) <= (self.ecap >> 20) & 0xf
            }
            _ => true,
        }
    }

    /// Executes one descriptor; false if it is invalid.
    fn execute(&mut self, d: Descriptor) -> bool {
        if !self.valid(d) {
            return false;
        }
        match d.decode() {
            Decoded::Iec(IecScope::Global) => self.iec.clear(),
            Decoded::Iec(IecScope::Indexed { index, mask }) => {
                let first = u32::from(index);
                let end = first + (1u32 << mask);
                self.iec
                    .retain(|&i, _| !(first..end).contains(&u32::from(i)));
            }
            Decoded::Wait {
                interrupt,
                status_write,
                ..
            } => return self.execute_wait(interrupt, status_write),
            _ => {}
        }
        true
    }

    fn execute_wait(&mut self, interrupt: bool, status_write: Option<(u64, u32)>) -> bool {
        match (status_write, interrupt) {
            (Some(_), true) if self.quirks.abort_on_sw_and_if => {
                self.aborted = Some("vtd_process_wait_desc: assertion failed: !(SW && IF)".into());
                false
            }
            (Some((addr, data)), _) => {
                if !self.drop_status_writes {
                    self.ram.insert(addr, data);
                }
                if interrupt {
                    self.ics |= 1;
                }
                true
            }
            (None, true) => {
                self.ics |= 1;
                true
            }
            (None, false) => false,
        }
    }
}
