//! Wrong on purpose, for the counter-examples: each exploration that shows a path works
//! also runs one of these and must then find a failure. Each is the core's real chip or
//! APIC with one thing changed, built from public types; the core never builds them.

use sluice_irq_core::affinity::{BlockMembers, PlanId, Step, StepPlan, Word, msi_words};
use sluice_irq_core::chip::{AffinityMsgs, Chip, ChipOp, HwIrq, LevelCtx};
use sluice_irq_core::domain::Domain;
use sluice_irq_core::hw::LocalApic;
use sluice_irq_core::ioapic::{IoApicDomain, RteStorage};
use sluice_irq_core::msi::{MsiCaps, MsiMsg, MsiStorage, Trigger};
use sluice_irq_core::msidomain::MsiDomain;
use sluice_irq_core::{IrqSource, Vector, Virq};

use crate::apic::SimApic;
use crate::pci::function::{MsiOps, PciMsiStorage};

/// WRONG on purpose, for the block counter-example only: a multi-MSI domain whose block
/// plan claims and IRR-checks only the block's first vector — as if the block were one
/// irq. Everything else is the core's real [`MsiDomain`]; the plan is built from the
/// public step type.
pub struct BaseOnlyBlockDomain(pub MsiDomain<PciMsiStorage>);

impl Domain for BaseOnlyBlockDomain {
    fn size(&self) -> u32 {
        self.0.size()
    }
    fn translate(&self, s: &IrqSource) -> sluice_irq_core::Result<(HwIrq, Trigger)> {
        self.0.translate(s)
    }
    fn alloc(&self, v: Virq, nr: u32, s: &IrqSource) -> sluice_irq_core::Result<HwIrq> {
        self.0.alloc(v, nr, s)
    }
    fn free(&self, v: Virq, h: HwIrq, nr: u32) {
        self.0.free(v, h, nr)
    }
    fn reserve_block(&self, nr: u32, s: &IrqSource) -> sluice_irq_core::Result<HwIrq> {
        self.0.reserve_block(nr, s)
    }
    fn alloc_in_block(&self, v: Virq, h: HwIrq) -> sluice_irq_core::Result<()> {
        self.0.alloc_in_block(v, h)
    }
    fn free_in_block(&self, v: Virq, h: HwIrq) {
        self.0.free_in_block(v, h)
    }
    fn teardown_block(&self, h: HwIrq, nr: u32) {
        self.0.teardown_block(h, nr)
    }
    fn activate(&self, d: &LevelCtx, msg: &MsiMsg) -> sluice_irq_core::Result<()> {
        self.0.activate(d, msg)
    }
}

impl MsiOps for BaseOnlyBlockDomain {
    fn msi_storage(&self) -> &PciMsiStorage {
        self.0.storage()
    }
}

impl Chip for BaseOnlyBlockDomain {
    fn name(&self) -> &str {
        "BASE-ONLY-MSI"
    }
    fn mask(&self, d: &LevelCtx) -> sluice_irq_core::Result<ChipOp> {
        self.0.mask(d)
    }
    fn unmask(&self, d: &LevelCtx) -> sluice_irq_core::Result<ChipOp> {
        self.0.unmask(d)
    }
    fn set_block_affinity(
        &self,
        d: &LevelCtx,
        m: &AffinityMsgs,
        block: &BlockMembers,
    ) -> sluice_irq_core::Result<Option<StepPlan>> {
        let mut plan = self.0.set_block_affinity(d, m, block)?;
        if let Some(p) = plan.as_mut() {
            let base = m.new_target.vector;
            p.steps.retain(|s| match s {
                Step::ClaimTransient(v) => *v == base,
                Step::CheckIrrRetriggerMember(v, _) => *v == base,
                _ => true,
            });
        }
        Ok(plan)
    }
    fn exec_step(
        &self,
        d: &LevelCtx,
        i: u32,
        step: &Step,
        msg: &MsiMsg,
    ) -> sluice_irq_core::Result<()> {
        self.0.exec_step(d, i, step, msg)
    }
}

/// WRONG on purpose, for the counter-example only: an MSI domain whose affinity change
/// rewrites address and data in one pass (on the old CPU with interrupts off, as the
/// two-step path runs, so the difference is only the order of the writes). The core
/// never builds such a plan; this test-only type builds it from the public step type.
pub struct NaiveMsiDomain(pub MsiDomain<PciMsiStorage>);

impl Domain for NaiveMsiDomain {
    fn size(&self) -> u32 {
        self.0.size()
    }
    fn translate(&self, s: &IrqSource) -> sluice_irq_core::Result<(HwIrq, Trigger)> {
        self.0.translate(s)
    }
    fn alloc(&self, v: Virq, nr: u32, s: &IrqSource) -> sluice_irq_core::Result<HwIrq> {
        self.0.alloc(v, nr, s)
    }
    fn free(&self, v: Virq, h: HwIrq, nr: u32) {
        self.0.free(v, h, nr)
    }
    fn activate(&self, d: &LevelCtx, msg: &MsiMsg) -> sluice_irq_core::Result<()> {
        self.0.activate(d, msg)
    }
}

impl MsiOps for NaiveMsiDomain {
    fn msi_storage(&self) -> &PciMsiStorage {
        self.0.storage()
    }
}

impl Chip for NaiveMsiDomain {
    fn name(&self) -> &str {
        "NAIVE-MSI"
    }
    fn set_affinity(
        &self,
        d: &LevelCtx,
        m: &AffinityMsgs,
    ) -> sluice_irq_core::Result<Option<StepPlan>> {
        let steps = msi_words(&m.old)
            .into_iter()
            .zip(msi_words(&m.new))
            .filter(|(a, b)| a.1 != b.1)
            .map(|(_, (w, v)): (_, (Word, u32))| Step::Write(w, v))
            .collect();
        Ok(Some(StepPlan {
            id: PlanId::UNSTAMPED,
            level: d.level,
            index: 0,
            run_on: Some(m.old_target.cpu),
            irqs_off: true,
            steps,
        }))
    }
    fn exec_step(
        &self,
        d: &LevelCtx,
        i: u32,
        step: &Step,
        msg: &MsiMsg,
    ) -> sluice_irq_core::Result<()> {
        self.0.exec_step(d, i, step, msg)
    }
}

/// WRONG on purpose, for the hotplug counter-example only: a local APIC that stops
/// reporting its IRR once the core says it is about to scan it for re-delivery
/// ([`LocalApic::before_irr_scan`]), and does not wait there either (messages still on
/// their way arrive whenever they arrive) — exactly as if step 4 of the migration, settle
/// delay and re-delivery, were left out.
pub struct NoRedeliveryApic {
    /// The correct APIC it wraps.
    pub inner: SimApic,
    /// The core began its IRR scan: from then on every IRR bit reads clear.
    pub scanning: bool,
}

impl NoRedeliveryApic {
    /// Wraps `inner`.
    pub fn new(inner: SimApic) -> NoRedeliveryApic {
        NoRedeliveryApic {
            inner,
            scanning: false,
        }
    }
}

impl LocalApic for NoRedeliveryApic {
    fn current_cpu(&self) -> u32 {
        self.inner.current_cpu()
    }
    fn eoi(&mut self) {
        self.inner.eoi()
    }
    fn irr_pending(&self, v: Vector) -> bool {
        !self.scanning && self.inner.irr_pending(v)
    }
    fn send_ipi(&mut self, cpu: u32, v: Vector) {
        self.inner.send_ipi(cpu, v)
    }
    fn now_ns(&self) -> u64 {
        self.inner.now_ns()
    }
    fn before_irr_scan(&mut self) {
        self.scanning = true;
    }
}

/// WRONG on purpose (issue 23, bug 1): sluice-pci's MSI storage with its read-back left
/// out — every write and mask change goes on its way and the call returns, so a plan's
/// next step (the two-step path's IRR check) runs while the write may still be posted
/// and a message the function sent before it still in flight.
pub struct Unflushed(pub PciMsiStorage);

impl MsiStorage for Unflushed {
    fn caps(&self) -> MsiCaps {
        self.0.caps()
    }
    fn write_addr_lo(&self, i: u32, v: u32) {
        self.0.write_addr_lo(i, v)
    }
    fn write_addr_hi(&self, i: u32, v: u32) {
        self.0.write_addr_hi(i, v)
    }
    fn write_data(&self, i: u32, v: u32) {
        self.0.write_data(i, v)
    }
    fn mask(&self, i: u32) -> sluice_irq_core::Result<()> {
        self.0.mask(i)
    }
    fn unmask(&self, i: u32) -> sluice_irq_core::Result<()> {
        self.0.unmask(i)
    }
    fn read(&self, i: u32) -> MsiMsg {
        self.0.read(i)
    }
    // `flush`: the default, which does nothing.
}

impl MsiOps for MsiDomain<Unflushed> {
    fn msi_storage(&self) -> &PciMsiStorage {
        &self.storage().0
    }
}

/// WRONG on purpose (issue 23, bug 4): the core's I/O APIC chip with everything forwarded
/// except ack and EOI, which leave the interrupt to the local APIC's (broadcast) EOI
/// alone — as before the fix. A remapped level line then stays at Remote IRR after its
/// first interrupt.
pub struct NoIoApicEoi<S: RteStorage>(pub IoApicDomain<S>);

impl<S: RteStorage> Domain for NoIoApicEoi<S> {
    fn size(&self) -> u32 {
        self.0.size()
    }
    fn select(&self, source: &IrqSource) -> bool {
        self.0.select(source)
    }
    fn translate(&self, source: &IrqSource) -> sluice_irq_core::Result<(HwIrq, Trigger)> {
        self.0.translate(source)
    }
    fn alloc(&self, virq: Virq, nr: u32, source: &IrqSource) -> sluice_irq_core::Result<HwIrq> {
        self.0.alloc(virq, nr, source)
    }
    fn free(&self, virq: Virq, hwirq: HwIrq, nr: u32) {
        self.0.free(virq, hwirq, nr)
    }
    fn activate(&self, d: &LevelCtx, msg: &MsiMsg) -> sluice_irq_core::Result<()> {
        self.0.activate(d, msg)
    }
    fn deactivate(&self, d: &LevelCtx, msg: &MsiMsg) -> sluice_irq_core::Result<()> {
        self.0.deactivate(d, msg)
    }
}

impl<S: RteStorage> Chip for NoIoApicEoi<S> {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn mask(&self, d: &LevelCtx) -> sluice_irq_core::Result<ChipOp> {
        self.0.mask(d)
    }
    fn unmask(&self, d: &LevelCtx) -> sluice_irq_core::Result<ChipOp> {
        self.0.unmask(d)
    }
    fn ack(&self, _d: &LevelCtx) -> sluice_irq_core::Result<ChipOp> {
        Ok(ChipOp::Delegate)
    }
    fn eoi(&self, _d: &LevelCtx) -> sluice_irq_core::Result<ChipOp> {
        Ok(ChipOp::Delegate)
    }
    fn set_affinity(
        &self,
        d: &LevelCtx,
        m: &AffinityMsgs,
    ) -> sluice_irq_core::Result<Option<StepPlan>> {
        self.0.set_affinity(d, m)
    }
    fn exec_step(
        &self,
        d: &LevelCtx,
        index: u32,
        step: &sluice_irq_core::affinity::Step,
        msg: &MsiMsg,
    ) -> sluice_irq_core::Result<()> {
        self.0.exec_step(d, index, step, msg)
    }
}
