//! A per-device MSI domain over any [`MsiStorage`]: PCI MSI, MSI-X, HPET, DMAR fault unit
//! all become this one domain type with a different storage.
//!
//! Under an interrupt-remapping parent the stored message is the remappable one and
//! never changes: the remapping level is asked first on an affinity change and claims
//! it, so this level is asked only when nothing between it and the vector domain can
//! retarget — then it picks the maskable or the non-maskable path.
//!
//! **Message numbers** are a [`RegionAllocator`] over the storage's `nvec` entries:
//!
//! * a multi-MSI device reserves one 2^k region at index 0 ([`Domain::reserve_block`]:
//!   its Multiple Message Enable field enables messages 0..2^k), whose members are then
//!   allocated and freed one by one; they share the one stored message (slot 0), written
//!   with the member bits of the data word clear, since the device ORs its message number
//!   into them;
//! * every other message (MSI-X entries, a single MSI, an HPET comparator) is a
//!   one-entry region, so MSI-X entries can be added and freed at any time while the
//!   others stay (dynamic MSI-X) — freeing one never touches another's region.
//!
//! **Flushing.** Every storage write this domain makes is followed by
//! [`MsiStorage::flush`] before the step (or activation, or mask change) returns, so a
//! plan's next step — above all the non-maskable path's IRR check — runs with the
//! device holding what was written and every message it sent before that arrived
//! (Linux reads back after each message write and each mask for the same reason:
//! "PCI/MSI: Enforce MSI\[X\] entry updates to be visible"). The flush is the storage's
//! to do (only it knows what read reaches its device) but this domain's to call: the
//! storage's methods stay one write each, which the affinity paths and their explorers
//! count on, a plan needs no step of its own for it, and a storage that needs no flush
//! keeps the default that does nothing. One flush per step, not one per plan: correctness
//! needs it only before an IRR check and at the plan's end, but a step does not know
//! it is the last, and a read per word is cheap beside the IPI the two-step path sends.

use alloc::string::String;

use crate::affinity::{
    BlockMembers, Step, StepPlan, Word, msi_path, plan_block_update, plan_msi_update,
};
use crate::chip::{AffinityMsgs, Chip, ChipOp, HwIrq, LevelCtx};
use crate::domain::Domain;
use crate::error::{IrqError, Result, Virq};
use crate::msi::{MsiMsg, MsiStorage, Trigger};
use crate::region::{RegionAllocator, RegionInfo};
use crate::source::IrqSource;
use sluice_sync::IrqSpinLock;

/// MSI domain for one device.
pub struct MsiDomain<S: MsiStorage> {
    name: String,
    storage: S,
    /// Which message numbers are reserved and allocated (allocation runs under the domain
    /// lock; this lock only makes the `&self` interface sound, and is a leaf).
    index: IrqSpinLock<RegionAllocator>,
}

impl<S: MsiStorage> MsiDomain<S> {
    /// A domain over `storage`; `name` is its chip name in listings (`PCI-MSI`, ...).
    pub fn new(name: &str, storage: S) -> Self {
        let n = storage.caps().nvec;
        Self {
            name: String::from(name),
            storage,
            index: IrqSpinLock::new(&crate::locks::MSI_INDEX, RegionAllocator::up_to(n)),
        }
    }

    /// The storage (e.g. to read back the message for `irq N`).
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// The region (block, or a single entry) that message number `hwirq` belongs to.
    pub fn region_of(&self, hwirq: HwIrq) -> Option<RegionInfo> {
        self.index.lock().region_of(u32::try_from(hwirq).ok()?)
    }

    /// Every reserved region of message numbers (diagnostics and tests).
    pub fn regions(&self) -> alloc::vec::Vec<RegionInfo> {
        self.index.lock().regions().collect()
    }

    /// Storage slot holding the message of `hwirq`: multi-vector MSI stores one message
    /// for its whole block, at the block's first number (0).
    fn slot(&self, hwirq: HwIrq) -> u32 {
        if self.storage.caps().multi_vector {
            self.region_of(hwirq).map_or(0, |r| r.base)
        } else {
            hwirq as u32
        }
    }

    /// The words stored for `hwirq`'s message `msg`: a multi-MSI member's data word with
    /// the member bits clear (the device ORs its message number back in).
    fn stored(&self, hwirq: HwIrq, msg: &MsiMsg) -> MsiMsg {
        if !self.storage.caps().multi_vector {
            return *msg;
        }
        let len = self.region_of(hwirq).map_or(1, |r| r.len);
        MsiMsg {
            data: msg.data & !(len - 1),
            ..*msg
        }
    }

    fn write(&self, index: u32, m: &MsiMsg) {
        // Order matters only when the device can fire between writes; activation happens
        // with the irq masked or not yet enabled at the device. One flush for the whole
        // message: nothing looks at the device between its words.
        self.storage.write_addr_lo(index, m.addr_lo);
        if self.storage.caps().addr64 {
            self.storage.write_addr_hi(index, m.addr_hi);
        }
        self.storage.write_data(index, m.data);
        self.storage.flush(index);
    }

    /// A mask change of message `index`, flushed once made.
    fn set_mask(&self, index: u32, masked: bool) -> Result<()> {
        if masked {
            self.storage.mask(index)?;
        } else {
            self.storage.unmask(index)?;
        }
        self.storage.flush(index);
        Ok(())
    }

    /// One word of message `index`, flushed.
    fn write_word(&self, index: u32, word: Word, value: u32) -> Result<()> {
        match word {
            Word::MsiAddrLo => self.storage.write_addr_lo(index, value),
            Word::MsiAddrHi => self.storage.write_addr_hi(index, value),
            Word::MsiData => self.storage.write_data(index, value),
            _ => return Err(IrqError::Unsupported),
        }
        self.storage.flush(index);
        Ok(())
    }
}

impl<S: MsiStorage> Domain for MsiDomain<S> {
    fn size(&self) -> u32 {
        self.storage.caps().nvec
    }

    fn translate(&self, source: &IrqSource) -> Result<(HwIrq, Trigger)> {
        let index = match *source {
            IrqSource::Pci { index, .. } => index,
            IrqSource::Hpet { comparator, .. } => u32::from(comparator),
            IrqSource::Iommu { .. } => 0,
            _ => return Err(IrqError::InvalidArgument),
        };
        if index < self.size() {
            Ok((HwIrq::from(index), Trigger::Edge))
        } else {
            Err(IrqError::InvalidArgument)
        }
    }

    /// One message number, as a one-entry region (several at once: use a block).
    fn alloc(&self, _virq: Virq, nr: u32, source: &IrqSource) -> Result<HwIrq> {
        let (hw, _) = self.translate(source)?;
        if nr != 1 {
            return Err(IrqError::InvalidArgument);
        }
        let mut ix = self.index.lock();
        ix.reserve_at(hw as u32, 1)?;
        ix.alloc_at(hw as u32)?;
        Ok(hw)
    }

    fn free(&self, _virq: Virq, hwirq: HwIrq, nr: u32) {
        let mut ix = self.index.lock();
        for i in hwirq..hwirq.saturating_add(u64::from(nr)) {
            let Ok(i) = u32::try_from(i) else { return };
            if let Ok(f) = ix.free(i)
                && f.live == 0
            {
                let _ = ix.teardown(f.base);
            }
        }
    }

    /// Multi-MSI only, and only at number 0 (Multiple Message Enable counts from 0).
    fn reserve_block(&self, nr: u32, source: &IrqSource) -> Result<HwIrq> {
        let (hw, _) = self.translate(source)?;
        if !self.storage.caps().multi_vector || hw != 0 {
            return Err(IrqError::InvalidArgument);
        }
        self.index.lock().reserve_at(0, nr)?;
        Ok(0)
    }

    fn alloc_in_block(&self, _virq: Virq, hwirq: HwIrq) -> Result<()> {
        // A one-entry region's member is always allocated: only a block's can be free.
        let i = u32::try_from(hwirq).map_err(|_| IrqError::InvalidArgument)?;
        self.index.lock().alloc_at(i)?;
        Ok(())
    }

    fn free_in_block(&self, _virq: Virq, hwirq: HwIrq) {
        if let Ok(i) = u32::try_from(hwirq) {
            let _ = self.index.lock().free(i);
        }
    }

    fn teardown_block(&self, hwirq: HwIrq, _nr: u32) {
        if let Ok(i) = u32::try_from(hwirq) {
            let _ = self.index.lock().teardown(i);
        }
    }

    /// Writes the message; every member of a multi-MSI block writes the same shared one
    /// (member 0 may not be allocated at all).
    fn activate(&self, d: &LevelCtx, msg: &MsiMsg) -> Result<()> {
        self.write(self.slot(d.hwirq), &self.stored(d.hwirq, msg));
        Ok(())
    }

    fn deactivate(&self, d: &LevelCtx, msg: &MsiMsg) -> Result<()> {
        self.activate(d, msg)
    }
}

impl<S: MsiStorage> Chip for MsiDomain<S> {
    fn name(&self) -> &str {
        &self.name
    }

    /// Each member masks through its own mask bit, multi-MSI members included (PCI 3.0
    /// §6.8.1.8: one mask bit per vector the device may send).
    fn mask(&self, d: &LevelCtx) -> Result<ChipOp> {
        if self.storage.caps().maskable {
            self.set_mask(d.hwirq as u32, true)?;
            Ok(ChipOp::Done)
        } else {
            Ok(ChipOp::Delegate)
        }
    }

    fn unmask(&self, d: &LevelCtx) -> Result<ChipOp> {
        if self.storage.caps().maskable {
            self.set_mask(d.hwirq as u32, false)?;
            Ok(ChipOp::Done)
        } else {
            Ok(ChipOp::Delegate)
        }
    }

    fn set_affinity(&self, d: &LevelCtx, m: &AffinityMsgs) -> Result<Option<StepPlan>> {
        let path = msi_path(self.storage.caps().maskable);
        Ok(Some(plan_msi_update(path, d, self.slot(d.hwirq), m)))
    }

    fn set_block_affinity(
        &self,
        d: &LevelCtx,
        m: &AffinityMsgs,
        block: &BlockMembers,
    ) -> Result<Option<StepPlan>> {
        if !self.storage.caps().multi_vector {
            return Err(IrqError::Unsupported);
        }
        let maskable = self.storage.caps().maskable;
        Ok(Some(plan_block_update(
            maskable,
            d,
            self.slot(d.hwirq),
            m,
            block,
        )))
    }

    /// Each storage step is one write, flushed before the step returns (see the module
    /// documentation).
    fn exec_step(&self, d: &LevelCtx, index: u32, step: &Step, _msg: &MsiMsg) -> Result<()> {
        match *step {
            Step::MaskForUpdate => self.set_mask(d.hwirq as u32, true),
            Step::RestoreMask if d.masked => Ok(()),
            Step::RestoreMask => self.set_mask(d.hwirq as u32, false),
            Step::Write(word, v) => self.write_word(index, word, v),
            _ => Err(IrqError::Unsupported),
        }
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec::Vec;

    use super::*;
    use crate::hw::Target;
    use crate::source::IrqSource;
    use crate::vector::Vector;

    /// Records every storage call, in order.
    struct Recording {
        maskable: bool,
        calls: std::sync::Mutex<Vec<&'static str>>,
    }

    impl Recording {
        fn new(maskable: bool) -> Self {
            Self {
                maskable,
                calls: std::sync::Mutex::new(Vec::new()),
            }
        }
        fn log(&self, call: &'static str) {
            self.calls.lock().unwrap().push(call);
        }
        fn take(&self) -> Vec<&'static str> {
            core::mem::take(&mut *self.calls.lock().unwrap())
        }
    }

    impl MsiStorage for Recording {
        fn caps(&self) -> crate::msi::MsiCaps {
            crate::msi::MsiCaps {
                maskable: self.maskable,
                nvec: 4,
                multi_vector: false,
                dynamic: true,
                addr64: true,
            }
        }
        fn write_addr_lo(&self, _: u32, _: u32) {
            self.log("addr_lo");
        }
        fn write_addr_hi(&self, _: u32, _: u32) {
            self.log("addr_hi");
        }
        fn write_data(&self, _: u32, _: u32) {
            self.log("data");
        }
        fn mask(&self, _: u32) -> Result<()> {
            self.log("mask");
            Ok(())
        }
        fn unmask(&self, _: u32) -> Result<()> {
            self.log("unmask");
            Ok(())
        }
        fn read(&self, _: u32) -> MsiMsg {
            MsiMsg::default()
        }
        fn flush(&self, _: u32) {
            self.log("flush");
        }
    }

    fn ctx(masked: bool) -> LevelCtx {
        LevelCtx {
            virq: 1,
            hwirq: 2,
            level: 0,
            target: Target {
                cpu: 0,
                apic_id: 0,
                vector: Vector(0x41),
            },
            trigger: Trigger::Edge,
            source: IrqSource::VectorOnly,
            masked,
        }
    }

    #[test]
    fn every_write_and_mask_change_is_flushed_before_it_returns() {
        let d = MsiDomain::new("test", Recording::new(true));
        let msg = MsiMsg::default();
        d.activate(&ctx(false), &msg).unwrap();
        assert_eq!(
            d.storage().take(),
            ["addr_lo", "addr_hi", "data", "flush"],
            "one flush per message"
        );
        for (step, calls) in [
            (Step::MaskForUpdate, &["mask", "flush"][..]),
            (Step::Write(Word::MsiAddrLo, 1), &["addr_lo", "flush"]),
            (Step::Write(Word::MsiAddrHi, 0), &["addr_hi", "flush"]),
            (Step::Write(Word::MsiData, 0x41), &["data", "flush"]),
            (Step::RestoreMask, &["unmask", "flush"]),
        ] {
            d.exec_step(&ctx(false), 2, &step, &msg).unwrap();
            assert_eq!(d.storage().take(), calls, "{step:?}");
        }
        // Nothing written, nothing to flush.
        d.exec_step(&ctx(true), 2, &Step::RestoreMask, &msg)
            .unwrap();
        assert_eq!(
            d.exec_step(&ctx(false), 2, &Step::Write(Word::RteLow, 0), &msg),
            Err(IrqError::Unsupported)
        );
        assert!(d.storage().take().is_empty());
        Chip::mask(&d, &ctx(false)).unwrap();
        Chip::unmask(&d, &ctx(false)).unwrap();
        assert_eq!(d.storage().take(), ["mask", "flush", "unmask", "flush"]);
    }
}
