//! An I/O APIC as a domain under the vector domain: hardware irq = input pin, the
//! redirection entry is the level's storage.
//!
//! An RTE is two 32-bit registers (vector+flags, destination) behind an index register,
//! so it cannot change vector and CPU in one write; masking does not help, because an
//! edge on a masked pin is dropped by real I/O APICs (82093AA datasheet, 3.2.4: edge
//! interrupts on a masked input are not delivered or held pending). A move therefore
//! uses the core's two-step plan, the one for non-maskable MSIs: new vector on the old
//! CPU, then the new CPU, run on the old CPU with interrupts off, then an IRR check.

use alloc::vec;
use alloc::vec::Vec;
use sluice_irq_core::affinity::{MsiPath, Step, StepPlan, plan_msi_update};
use sluice_irq_core::chip::{AffinityMsgs, Chip, ChipOp, HwIrq, LevelCtx};
use sluice_irq_core::domain::{Domain, FwSpec};
use sluice_irq_core::hw::Target;
use sluice_irq_core::msi::{MsiMsg, Trigger};
use sluice_irq_core::{IrqError, Virq};

use crate::apic::ioapic::{IoApic, Rte, RteFlags};

/// Per pin: who owns it and its electrical settings.
#[derive(Clone, Copy)]
struct PinState {
    trigger: Trigger,
    active_low: bool,
}

pub struct IoApicDomain {
    io: &'static IoApic,
    pins: Vec<Option<PinState>>,
}

impl IoApicDomain {
    pub fn new(io: &'static IoApic) -> Self {
        IoApicDomain {
            io,
            pins: vec![None; io.pins() as usize],
        }
    }

    fn pin(&self, hwirq: HwIrq) -> Result<(u32, PinState), IrqError> {
        let p = u32::try_from(hwirq).map_err(|_| IrqError::InvalidArgument)?;
        let st = self
            .pins
            .get(p as usize)
            .copied()
            .flatten()
            .ok_or(IrqError::InvalidArgument)?;
        Ok((p, st))
    }

    /// An RTE's physical destination is 8 bits (82093AA datasheet, 3.2.4) and 0xff is the
    /// broadcast id (SDM vol. 3, "Physical Destination Mode"): a CPU with a larger APIC id
    /// is out of reach without interrupt remapping, and truncating its id would deliver
    /// to some other CPU.
    pub(crate) fn dest_of(target: &Target) -> Result<u8, IrqError> {
        u8::try_from(target.apic_id)
            .ok()
            .filter(|&d| d != 0xff)
            .ok_or(IrqError::InvalidArgument)
    }

    fn rte_for(st: PinState, target: &Target, masked: bool) -> Result<Rte, IrqError> {
        let mut flags = RteFlags::empty();
        flags.set(RteFlags::LEVEL, st.trigger == Trigger::Level);
        flags.set(RteFlags::ACTIVE_LOW, st.active_low);
        flags.set(RteFlags::MASKED, masked);
        Ok(Rte {
            vector: target.vector.0,
            flags,
            dest: Self::dest_of(target)?,
        })
    }

    fn masked_now(&self, pin: u32) -> bool {
        self.io.read_rte(pin).flags.contains(RteFlags::MASKED)
    }
}

impl Domain for IoApicDomain {
    fn size(&self) -> u32 {
        self.io.pins()
    }
    fn select(&self, spec: &FwSpec) -> bool {
        matches!(spec, FwSpec::IoApicPin { ioapic, .. } if *ioapic == u32::from(self.io.entry.id))
    }
    fn translate(&self, spec: &FwSpec) -> Result<(HwIrq, Trigger), IrqError> {
        match spec {
            FwSpec::IoApicPin { pin, trigger, .. } if *pin < self.io.pins() => {
                Ok((HwIrq::from(*pin), *trigger))
            }
            _ => Err(IrqError::InvalidArgument),
        }
    }
    fn alloc(&mut self, _virq: Virq, nr: u32, spec: &FwSpec) -> Result<HwIrq, IrqError> {
        let FwSpec::IoApicPin {
            pin,
            trigger,
            active_low,
            ..
        } = *spec
        else {
            return Err(IrqError::InvalidArgument);
        };
        if nr != 1 {
            return Err(IrqError::InvalidArgument);
        }
        let slot = self
            .pins
            .get_mut(pin as usize)
            .ok_or(IrqError::InvalidArgument)?;
        if slot.is_some() {
            return Err(IrqError::Busy);
        }
        *slot = Some(PinState {
            trigger,
            active_low,
        });
        Ok(HwIrq::from(pin))
    }
    fn free(&mut self, _virq: Virq, hwirq: HwIrq, _nr: u32) {
        if let Some(slot) = usize::try_from(hwirq)
            .ok()
            .and_then(|p| self.pins.get_mut(p))
        {
            *slot = None;
            self.io.set_masked(hwirq as u32, true);
        }
    }
    /// Programs the entry for the irq's target, masked; the core unmasks when it starts.
    fn activate(&mut self, d: &LevelCtx, _msg: &MsiMsg) -> Result<(), IrqError> {
        let (pin, st) = self.pin(d.hwirq)?;
        self.io.write_rte(pin, Self::rte_for(st, &d.target, true)?);
        Ok(())
    }
    fn deactivate(&mut self, d: &LevelCtx, _msg: &MsiMsg) -> Result<(), IrqError> {
        let (pin, st) = self.pin(d.hwirq)?;
        self.io.write_rte(pin, Self::rte_for(st, &d.target, true)?);
        Ok(())
    }
}

impl Chip for IoApicDomain {
    fn name(&self) -> &str {
        "IO-APIC"
    }
    fn mask(&mut self, d: &LevelCtx) -> Result<ChipOp, IrqError> {
        self.io.set_masked(self.pin(d.hwirq)?.0, true);
        Ok(ChipOp::Done)
    }
    fn unmask(&mut self, d: &LevelCtx) -> Result<ChipOp, IrqError> {
        self.io.set_masked(self.pin(d.hwirq)?.0, false);
        Ok(ChipOp::Done)
    }
    // ack/eoi delegate: the local APIC's EOI also ends a level interrupt at the I/O APIC
    // (directed EOI is not enabled, so the EOI is broadcast).
    fn set_affinity(
        &mut self,
        d: &LevelCtx,
        old: &Target,
        new: &Target,
        msgs: &AffinityMsgs,
    ) -> Result<Option<StepPlan>, IrqError> {
        let (pin, _) = self.pin(d.hwirq)?;
        Ok(Some(plan_msi_update(
            MsiPath::NonMaskable,
            d.level,
            pin,
            *old,
            *new,
            &msgs.old,
            &msgs.new,
            &msgs.intermediate,
        )))
    }
    /// The plan's words map onto the RTE: the data word carries the vector (low half),
    /// the address word the destination (high half). `d.target` is already the new
    /// target, so each step writes its half of it.
    fn exec_step(
        &mut self,
        d: &LevelCtx,
        _index: u32,
        step: &Step,
        _msg: &MsiMsg,
    ) -> Result<(), IrqError> {
        let (pin, st) = self.pin(d.hwirq)?;
        match step {
            Step::WriteData(_) => self
                .io
                .write_low(pin, Self::rte_for(st, &d.target, self.masked_now(pin))?),
            Step::WriteAddrLo(_) => self.io.write_dest(pin, Self::dest_of(&d.target)?),
            Step::WriteAddrHi(_) => {}
            Step::Mask => self.io.set_masked(pin, true),
            Step::Unmask => self.io.set_masked(pin, false),
            Step::UpdateRoute => {
                let masked = self.masked_now(pin);
                self.io
                    .write_rte(pin, Self::rte_for(st, &d.target, masked)?)
            }
            Step::ClaimTransient(_) | Step::CheckIrrRetrigger(_) => {
                return Err(IrqError::InvalidArgument);
            }
        }
        Ok(())
    }
}
