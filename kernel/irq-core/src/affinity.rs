//! Affinity changes as explicit step sequences.
//!
//! A [`StepPlan`] is data: the kernel executes it against real hardware and the
//! simulator against its model, through the same [`crate::IrqCore::run_step`]. Three
//! correct paths (DESIGN §3) and one deliberately wrong one kept for the simulator's
//! counter-example:
//!
//! 1. **Remapped**: the device keeps its remappable message (handle/subhandle); only the
//!    remap entry changes, in one update plus invalidation. One step.
//! 2. **Maskable**: mask, write the changed words, unmask. A masked MSI/MSI-X that fires
//!    sets its pending bit and is sent on unmask (PCI Local Bus 3.0 §6.8.3.5), so nothing
//!    is lost and no torn message is ever sent.
//! 3. **Non-maskable** (e.g. QEMU `edu`): the device may send between any two word writes.
//!    Changing destination and vector in one pass would let a torn message (new CPU + old
//!    vector, or old CPU + new vector) escape to a slot with no handler. Instead, on the
//!    *old* CPU with interrupts off:
//!    a. claim the new vector's slot on the old CPU as "retriggered";
//!    b. write the new vector while keeping the old destination (one word: data);
//!    c. write the new destination (one word: address);
//!    d. if the new vector is now pending in this CPU's IRR, a device write hit the window
//!    between b and c: retrigger the irq on its new target.
//!
//!    Every message the device can send is old/old (still routed until cleanup),
//!    old-CPU/new-vector (held in the IRR because interrupts are off, caught by d, then
//!    acknowledged quietly via the claimed slot) or new/new. Linux does the same in
//!    `msi_set_affinity()` (commit 6f1a4891a592).
//!
//! When only one word changes (same CPU, or same vector) a single write is atomic and the
//! dance is unnecessary. When the old target is the shutdown vector (irq not started),
//! there is nothing to lose and the words are simply written.

use alloc::vec::Vec;

use crate::cpumask::CpuId;
use crate::hw::Target;
use crate::msi::MsiMsg;
use crate::vector::{SHUTDOWN_VECTOR, Vector};

/// One hardware action of an affinity change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Mask the message at the storage.
    Mask,
    /// Unmask it.
    Unmask,
    /// One write: address bits 31:0.
    WriteAddrLo(u32),
    /// One write: address bits 63:32.
    WriteAddrHi(u32),
    /// One write: data.
    WriteData(u32),
    /// Rewrite this level's routing entry (IRTE, I/O APIC RTE) for the irq's current
    /// target, as one update (the chip does whatever flushing it needs).
    UpdateRoute,
    /// On the executing CPU, mark this vector's slot [`crate::vecdomain::Slot::Retriggered`]
    /// if unused.
    ClaimTransient(Vector),
    /// If this vector is pending in the executing CPU's IRR, retrigger the irq at its
    /// current target.
    CheckIrrRetrigger(Vector),
}

/// A sequence of steps for one level of one irq.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepPlan {
    /// Which level of the descriptor executes the storage steps.
    pub level: usize,
    /// Message index in the storage.
    pub index: u32,
    /// The plan must run on this CPU (the old target) ...
    pub run_on: Option<CpuId>,
    /// ... with interrupts disabled for its whole duration.
    pub irqs_off: bool,
    /// The steps, in order.
    pub steps: Vec<Step>,
}

/// Which way to rewrite a stored message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsiPath {
    /// Interrupt remapping: update the remap entry only.
    Remapped,
    /// Mask, write, unmask.
    Maskable,
    /// Two single-word steps on the old CPU, then IRR check (see module docs).
    NonMaskable,
    /// WRONG on purpose: write address then data in one pass, unmasked. Exists only so the
    /// simulator can demonstrate the loss the other paths avoid. Never chosen by the core.
    NaiveSinglePass,
}

/// Pick the path for a storage: remapped beats everything, then maskable.
pub fn choose_path(remapped: bool, maskable: bool) -> MsiPath {
    if remapped {
        MsiPath::Remapped
    } else if maskable {
        MsiPath::Maskable
    } else {
        MsiPath::NonMaskable
    }
}

fn push_changed_words(steps: &mut Vec<Step>, from: &MsiMsg, to: &MsiMsg) {
    if from.addr_lo != to.addr_lo {
        steps.push(Step::WriteAddrLo(to.addr_lo));
    }
    if from.addr_hi != to.addr_hi {
        steps.push(Step::WriteAddrHi(to.addr_hi));
    }
    if from.data != to.data {
        steps.push(Step::WriteData(to.data));
    }
}

/// Build the plan to move a stored message from `old` to `new`.
///
/// `old_msg`/`new_msg` are the complete messages for the old and new targets;
/// `intermediate` composes the message "new vector, old destination" (step b) — passed in
/// because only the parent levels know how to compose.
#[allow(clippy::too_many_arguments)]
pub fn plan_msi_update(
    path: MsiPath,
    level: usize,
    index: u32,
    old: Target,
    new: Target,
    old_msg: &MsiMsg,
    new_msg: &MsiMsg,
    intermediate: &MsiMsg,
) -> StepPlan {
    let mut steps = Vec::new();
    let mut run_on = None;
    let mut irqs_off = false;
    match path {
        MsiPath::Remapped => steps.push(Step::UpdateRoute),
        MsiPath::Maskable => {
            steps.push(Step::Mask);
            push_changed_words(&mut steps, old_msg, new_msg);
            steps.push(Step::Unmask);
        }
        MsiPath::NaiveSinglePass => {
            push_changed_words(&mut steps, old_msg, new_msg);
            run_on = Some(old.cpu);
            irqs_off = true;
        }
        MsiPath::NonMaskable => {
            let both_change = old.vector != new.vector && old.cpu != new.cpu;
            if old.vector == SHUTDOWN_VECTOR || !both_change {
                // Not started, or a single word changes: one write per word is atomic
                // enough (at most one word differs in compatibility format).
                push_changed_words(&mut steps, old_msg, new_msg);
            } else {
                run_on = Some(old.cpu);
                irqs_off = true;
                steps.push(Step::ClaimTransient(new.vector));
                push_changed_words(&mut steps, old_msg, intermediate);
                push_changed_words(&mut steps, intermediate, new_msg);
                steps.push(Step::CheckIrrRetrigger(new.vector));
            }
        }
    }
    StepPlan {
        level,
        index,
        run_on,
        irqs_off,
        steps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msi::{CompatMsi, DestFormat, compose};

    fn t(cpu: u32, v: u8) -> Target {
        Target {
            cpu,
            apic_id: cpu,
            vector: Vector(v),
        }
    }
    fn m(cpu: u32, v: u8) -> MsiMsg {
        compose(&CompatMsi::fixed(cpu, Vector(v)), DestFormat::XApic).unwrap()
    }

    #[test]
    fn non_maskable_dance_is_two_single_word_steps() {
        let p = plan_msi_update(
            MsiPath::NonMaskable,
            0,
            0,
            t(0, 0x30),
            t(1, 0x40),
            &m(0, 0x30),
            &m(1, 0x40),
            &m(0, 0x40),
        );
        assert_eq!(p.run_on, Some(0));
        assert!(p.irqs_off);
        assert_eq!(
            p.steps,
            [
                Step::ClaimTransient(Vector(0x40)),
                Step::WriteData(0x40),
                Step::WriteAddrLo(0xFEE0_1000),
                Step::CheckIrrRetrigger(Vector(0x40))
            ]
        );
    }

    #[test]
    fn single_word_changes_need_no_dance() {
        let p = plan_msi_update(
            MsiPath::NonMaskable,
            0,
            0,
            t(0, 0x30),
            t(0, 0x40),
            &m(0, 0x30),
            &m(0, 0x40),
            &m(0, 0x40),
        );
        assert_eq!(p.steps, [Step::WriteData(0x40)]);
        assert_eq!(p.run_on, None);
    }

    #[test]
    fn maskable_and_remapped() {
        let p = plan_msi_update(
            MsiPath::Maskable,
            1,
            2,
            t(0, 0x30),
            t(1, 0x40),
            &m(0, 0x30),
            &m(1, 0x40),
            &m(0, 0x40),
        );
        assert_eq!(
            p.steps,
            [
                Step::Mask,
                Step::WriteAddrLo(0xFEE0_1000),
                Step::WriteData(0x40),
                Step::Unmask
            ]
        );
        let p = plan_msi_update(
            MsiPath::Remapped,
            1,
            2,
            t(0, 0x30),
            t(1, 0x40),
            &m(0, 0x30),
            &m(1, 0x40),
            &m(0, 0x40),
        );
        assert_eq!(p.steps, [Step::UpdateRoute]);
        assert_eq!(choose_path(true, false), MsiPath::Remapped);
        assert_eq!(choose_path(false, true), MsiPath::Maskable);
        assert_eq!(choose_path(false, false), MsiPath::NonMaskable);
    }
}
