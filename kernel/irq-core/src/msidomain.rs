//! A per-device MSI domain over any [`MsiStorage`]: PCI MSI, MSI-X, HPET, DMAR fault unit
//! all become this one domain type with a different storage.
//!
//! Under an interrupt-remapping parent the stored message is the remappable one and
//! never changes: the remapping level is asked first on an affinity change and claims
//! it, so this level is asked only when nothing between it and the vector domain can
//! retarget — then it picks the maskable or the non-maskable path.

use alloc::string::String;
use alloc::vec::Vec;

use crate::affinity::{Step, StepPlan, Word, msi_path, plan_msi_update};
use crate::chip::{AffinityMsgs, Chip, ChipOp, HwIrq, LevelCtx};
use crate::domain::Domain;
use crate::error::{IrqError, Result, Virq};
use crate::msi::{MsiMsg, MsiStorage, Trigger};
use crate::source::IrqSource;

/// MSI domain for one device.
pub struct MsiDomain<S: MsiStorage> {
    name: String,
    storage: S,
    /// Which message indices are allocated (allocation runs under the domain lock; this
    /// lock only makes the `&self` interface sound).
    used: spin::Mutex<Vec<bool>>,
}

impl<S: MsiStorage> MsiDomain<S> {
    /// A domain over `storage`; `name` is its chip name in listings (`PCI-MSI`, ...).
    pub fn new(name: &str, storage: S) -> Self {
        let n = storage.caps().nvec as usize;
        Self {
            name: String::from(name),
            storage,
            used: spin::Mutex::new(alloc::vec![false; n]),
        }
    }

    /// The storage (e.g. to read back the message for `irq N`).
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// Storage slot holding the message of `hwirq`: multi-vector MSI shares slot 0.
    fn slot(&self, hwirq: HwIrq) -> u32 {
        if self.storage.caps().multi_vector {
            0
        } else {
            hwirq as u32
        }
    }

    /// Does this member own the stored message? (Multi-MSI: only the first.)
    fn owns_message(&self, hwirq: HwIrq) -> bool {
        !self.storage.caps().multi_vector || hwirq == 0
    }

    fn write(&self, index: u32, m: &MsiMsg) {
        // Order matters only when the device can fire between writes; activation happens
        // with the irq masked or not yet enabled at the device.
        self.storage.write_addr_lo(index, m.addr_lo);
        if self.storage.caps().addr64 {
            self.storage.write_addr_hi(index, m.addr_hi);
        }
        self.storage.write_data(index, m.data);
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

    fn alloc(&self, _virq: Virq, nr: u32, source: &IrqSource) -> Result<HwIrq> {
        let (hw, _) = self.translate(source)?;
        let caps = self.storage.caps();
        if nr > 1 && (!caps.multi_vector || !nr.is_power_of_two() || hw != 0) {
            return Err(IrqError::InvalidArgument);
        }
        let mut used = self.used.lock();
        let range = hw as usize..hw as usize + nr as usize;
        if range.end > used.len() {
            return Err(IrqError::NoSpace);
        }
        if used[range.clone()].iter().any(|&u| u) {
            return Err(IrqError::Busy);
        }
        used[range].iter_mut().for_each(|u| *u = true);
        Ok(hw)
    }

    fn free(&self, _virq: Virq, hwirq: HwIrq, nr: u32) {
        let mut used = self.used.lock();
        let end = (hwirq as usize + nr as usize).min(used.len());
        for u in used.iter_mut().take(end).skip(hwirq as usize) {
            *u = false;
        }
    }

    fn activate(&self, d: &LevelCtx, msg: &MsiMsg) -> Result<()> {
        if self.owns_message(d.hwirq) {
            self.write(self.slot(d.hwirq), msg);
        }
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
            self.storage.mask(d.hwirq as u32)?;
            Ok(ChipOp::Done)
        } else {
            Ok(ChipOp::Delegate)
        }
    }

    fn unmask(&self, d: &LevelCtx) -> Result<ChipOp> {
        if self.storage.caps().maskable {
            self.storage.unmask(d.hwirq as u32)?;
            Ok(ChipOp::Done)
        } else {
            Ok(ChipOp::Delegate)
        }
    }

    fn set_affinity(&self, d: &LevelCtx, m: &AffinityMsgs) -> Result<Option<StepPlan>> {
        let path = msi_path(self.storage.caps().maskable);
        Ok(Some(plan_msi_update(path, d, self.slot(d.hwirq), m)))
    }

    fn exec_step(&self, d: &LevelCtx, index: u32, step: &Step, _msg: &MsiMsg) -> Result<()> {
        match *step {
            Step::MaskForUpdate => self.storage.mask(d.hwirq as u32),
            Step::RestoreMask if d.masked => Ok(()),
            Step::RestoreMask => self.storage.unmask(d.hwirq as u32),
            Step::Write(Word::MsiAddrLo, v) => {
                self.storage.write_addr_lo(index, v);
                Ok(())
            }
            Step::Write(Word::MsiAddrHi, v) => {
                self.storage.write_addr_hi(index, v);
                Ok(())
            }
            Step::Write(Word::MsiData, v) => {
                self.storage.write_data(index, v);
                Ok(())
            }
            _ => Err(IrqError::Unsupported),
        }
    }
}
