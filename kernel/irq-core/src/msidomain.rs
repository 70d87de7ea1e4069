//! A per-device MSI domain over any [`MsiStorage`]: PCI MSI, MSI-X, HPET, DMAR fault unit
//! all become this one domain type with a different storage.

use alloc::string::String;
use alloc::vec::Vec;

use crate::affinity::{MsiPath, Step, StepPlan, choose_path, plan_msi_update};
use crate::chip::{AffinityMsgs, Chip, ChipOp, HwIrq, LevelCtx};
use crate::domain::{Domain, FwSpec};
use crate::error::{IrqError, Result, Virq};
use crate::hw::Target;
use crate::msi::{MsiMsg, MsiStorage, Trigger};

/// MSI domain for one device.
pub struct MsiDomain<S: MsiStorage> {
    name: String,
    storage: S,
    /// The parent is an interrupt-remapping domain: the stored message never changes after
    /// activation, affinity is the remapping level's business.
    remapped: bool,
    used: Vec<bool>,
    path_override: Option<MsiPath>,
}

impl<S: MsiStorage> MsiDomain<S> {
    /// A domain over `storage`; `remapped` if its parent is an interrupt-remapping domain.
    pub fn new(name: &str, storage: S, remapped: bool) -> Self {
        let n = storage.caps().nvec as usize;
        Self {
            name: String::from(name),
            storage,
            remapped,
            used: alloc::vec![false; n],
            path_override: None,
        }
    }

    /// Force an affinity path. Only for the simulator's counter-example
    /// ([`MsiPath::NaiveSinglePass`]); the kernel never calls this.
    pub fn force_path(&mut self, p: MsiPath) {
        self.path_override = Some(p);
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

    fn write(&mut self, index: u32, m: &MsiMsg) {
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

    fn translate(&self, spec: &FwSpec) -> Result<(HwIrq, Trigger)> {
        match *spec {
            FwSpec::Msi { index, .. } if index < self.size() => Ok((index as HwIrq, Trigger::Edge)),
            FwSpec::Hwirq(h) if h < self.size() as u64 => Ok((h, Trigger::Edge)),
            _ => Err(IrqError::InvalidArgument),
        }
    }

    fn alloc(&mut self, _virq: Virq, nr: u32, spec: &FwSpec) -> Result<HwIrq> {
        let (hw, _) = self.translate(spec)?;
        let caps = self.storage.caps();
        if nr > 1 && (!caps.multi_vector || !nr.is_power_of_two() || hw != 0) {
            return Err(IrqError::InvalidArgument);
        }
        let range = hw as usize..hw as usize + nr as usize;
        if range.end > self.used.len() {
            return Err(IrqError::NoSpace);
        }
        if self.used[range.clone()].iter().any(|&u| u) {
            return Err(IrqError::Busy);
        }
        self.used[range].iter_mut().for_each(|u| *u = true);
        Ok(hw)
    }

    fn free(&mut self, _virq: Virq, hwirq: HwIrq, nr: u32) {
        for i in hwirq as usize..(hwirq as usize + nr as usize).min(self.used.len()) {
            self.used[i] = false;
        }
    }

    fn activate(&mut self, d: &LevelCtx, msg: &MsiMsg) -> Result<()> {
        if self.owns_message(d.hwirq) {
            let i = self.slot(d.hwirq);
            self.write(i, msg);
        }
        Ok(())
    }

    fn deactivate(&mut self, d: &LevelCtx, msg: &MsiMsg) -> Result<()> {
        self.activate(d, msg)
    }
}

impl<S: MsiStorage> Chip for MsiDomain<S> {
    fn name(&self) -> &str {
        &self.name
    }

    fn mask(&mut self, d: &LevelCtx) -> Result<ChipOp> {
        if self.storage.caps().maskable {
            self.storage.mask(self.slot(d.hwirq))?;
            Ok(ChipOp::Done)
        } else {
            Ok(ChipOp::Delegate)
        }
    }

    fn unmask(&mut self, d: &LevelCtx) -> Result<ChipOp> {
        if self.storage.caps().maskable {
            self.storage.unmask(self.slot(d.hwirq))?;
            Ok(ChipOp::Done)
        } else {
            Ok(ChipOp::Delegate)
        }
    }

    fn write_msi_msg(&mut self, d: &LevelCtx, msg: &MsiMsg) -> Result<ChipOp> {
        let i = self.slot(d.hwirq);
        self.write(i, msg);
        Ok(ChipOp::Done)
    }

    fn set_affinity(
        &mut self,
        d: &LevelCtx,
        old: &Target,
        new: &Target,
        msgs: &AffinityMsgs,
    ) -> Result<Option<StepPlan>> {
        if self.remapped && self.path_override.is_none() {
            return Ok(None);
        }
        let path = self
            .path_override
            .unwrap_or(choose_path(false, self.storage.caps().maskable));
        Ok(Some(plan_msi_update(
            path,
            d.level,
            self.slot(d.hwirq),
            *old,
            *new,
            &msgs.old,
            &msgs.new,
            &msgs.intermediate,
        )))
    }

    fn exec_step(&mut self, _d: &LevelCtx, index: u32, step: &Step, _msg: &MsiMsg) -> Result<()> {
        match *step {
            Step::Mask => self.storage.mask(index),
            Step::Unmask => self.storage.unmask(index),
            Step::WriteAddrLo(v) => {
                self.storage.write_addr_lo(index, v);
                Ok(())
            }
            Step::WriteAddrHi(v) => {
                self.storage.write_addr_hi(index, v);
                Ok(())
            }
            Step::WriteData(v) => {
                self.storage.write_data(index, v);
                Ok(())
            }
            _ => Err(IrqError::Unsupported),
        }
    }
}
