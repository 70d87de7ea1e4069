//! Flow handlers: what happens between "vector V arrived on CPU C" and the driver's handler.
//!
//! Two phases, each under the irq's descriptor lock, so no lock is held while the
//! driver's handler runs: [`IrqCore::begin_vector`] classifies the vector (lock-free
//! route lookup), completes a pending move, runs the flow's entry half (ack / mask /
//! lazy-disable) and says whether to run the handler; [`IrqCore::end_irq`] does
//! accounting, storm detection and the exit half (EOI / unmask / replay).
//! [`IrqCore::handle_vector`] composes both.
//!
//! Lazy disable: [`IrqCore::disable_irq`] only marks the irq; if it fires while disabled
//! the flow masks it then and remembers it as pending; enable unmasks and retriggers.

use crate::chip::{ChipOp, LevelCtx};
use crate::cpumask::CpuId;
use crate::desc::{FlowKind, IrqDesc, IrqReturn};
use crate::domain::DomainOps;
use crate::error::{IrqError, Result, Virq};
use crate::hw::LocalApic;
use crate::irqcore::IrqCore;
use crate::routes::Slot;
use crate::vector::{VECTOR_CLEANUP_VECTOR, Vector};

/// What the kernel must do after [`IrqCore::begin_vector`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dispatch {
    /// Run the handler named `token`, then call [`IrqCore::end_irq`].
    Run {
        /// The irq.
        virq: Virq,
        /// The handler's token from `request_irq`.
        token: u64,
    },
    /// Fully dealt with (acknowledged, masked or replay noted); nothing to run.
    Done,
    /// A system vector: the kernel's own handler runs and EOIs.
    System(Vector),
    /// Nothing was routed there; acknowledged. `first`: log it (once per CPU).
    Spurious {
        /// First on this CPU.
        first: bool,
    },
}

/// What [`IrqCore::end_irq`] concluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowEnd {
    /// Finished.
    Done,
    /// The irq arrived again while the handler ran (edge, or fasteoi in progress): run
    /// the handler again, then `end_irq` again.
    RunAgain {
        /// Handler token.
        token: u64,
    },
    /// Storm detection disabled the line ("nobody cared"): report it.
    StormDisabled,
}

impl IrqCore {
    fn root_ack(&self, d: &IrqDesc, apic: &mut dyn LocalApic) -> Result<()> {
        self.end_walk(d, apic, |c, x| c.ack(x))
    }

    fn root_eoi(&self, d: &IrqDesc, apic: &mut dyn LocalApic) -> Result<()> {
        self.end_walk(d, apic, |c, x| c.eoi(x))
    }

    /// Ends an interrupt (`op` is the chips' `ack` or `eoi`): from the outermost level
    /// towards the root until a level answers [`ChipOp::Done`], else at the local APIC;
    /// then, innermost first, every level that answered [`ChipOp::ParentFirst`] ends it in
    /// its own hardware.
    ///
    /// Local APIC first, as Linux does (`ioapic_ir_ack_level`, and `ioapic_ack_level`'s
    /// "acknowledge the irq before we move it"): the I/O APIC chip decides from what the
    /// local APIC's EOI left behind. Its broadcast clears Remote IRR whenever its vector
    /// is the entry's; only an entry still at Remote IRR needs the I/O APIC's own EOI.
    /// Ended at the I/O APIC first, the chip could not know, would always end it there,
    /// and a broadcast that followed could clear the Remote IRR of the *next* interrupt
    /// of a line still asserted, which would then be sent twice.
    fn end_walk(
        &self,
        d: &IrqDesc,
        apic: &mut dyn LocalApic,
        mut op: impl FnMut(&dyn DomainOps, &LevelCtx) -> Result<ChipOp>,
    ) -> Result<()> {
        // Levels that answered `ParentFirst`, by index (a descriptor has a handful).
        let mut after: u64 = 0;
        let mut too_deep = false;
        let mut done = false;
        let levels = d.levels.len().saturating_sub(1);
        for i in 0..levels {
            let Some(chip) = Self::chip(d, i) else {
                continue;
            };
            match op(chip, &Self::ctx(d, i)?)? {
                ChipOp::Done => {
                    done = true;
                    break;
                }
                ChipOp::Delegate => {}
                ChipOp::ParentFirst if i < 64 => after |= 1 << i,
                ChipOp::ParentFirst => too_deep = true,
            }
        }
        if !done {
            apic.eoi();
        }
        if too_deep {
            return Err(IrqError::Unsupported);
        }
        for i in (0..levels.min(64)).rev() {
            if after & (1 << i) != 0
                && let Some(chip) = Self::chip(d, i)
            {
                chip.end_after_parent(&Self::ctx(d, i)?)?;
            }
        }
        Ok(())
    }

    /// Entry half. Call with interrupts off on the CPU where `vector` arrived. Takes no
    /// lock shared with other irqs: the route and the descriptor are found without one,
    /// and only this irq's descriptor lock is taken (plus the vector lock once per move,
    /// on the first interrupt at its new target).
    pub fn begin_vector(&self, vector: Vector, apic: &mut dyn LocalApic) -> Dispatch {
        let cpu = apic.current_cpu();
        let virq = match self.routes.get(cpu, vector) {
            Slot::System => return Dispatch::System(vector),
            Slot::RetriggeredPending => {
                // The bit left behind by a retrigger: expected once, already handled at
                // its new target. (Had a writer changed the slot first, the arrival still
                // was that bit.)
                self.routes.consume_pending(cpu, vector);
                apic.eoi();
                return Dispatch::Done;
            }
            Slot::Shutdown | Slot::Retriggered => {
                // Nothing expected here: counted (`stray_count`), acknowledged.
                self.count_stray(cpu);
                apic.eoi();
                return Dispatch::Done;
            }
            Slot::Unused => {
                let first = self.count_spurious(cpu);
                apic.eoi();
                return Dispatch::Spurious { first };
            }
            Slot::Irq(virq) => virq,
        };
        // A slot read an instant before its irq was freed finds an empty descriptor: the
        // interrupt of a vector that is going away, stray like one on a shut-down slot.
        let r = self.with_desc(virq, |d| {
            self.complete_move_here(d, cpu, vector, apic);
            self.flow_entry(d, cpu, apic)
        });
        r.unwrap_or_else(|e| {
            if e == IrqError::UnknownIrq(virq) {
                self.count_stray(cpu);
            }
            apic.eoi();
            Dispatch::Done
        })
    }

    /// The first interrupt at a move's new target completes it: the old CPU is asked to
    /// free the old vector. Not while the move's hardware steps are still to run, nor
    /// while a queued storage has not confirmed its new message (then this arrival is a
    /// retrigger and the device may still point at the old target).
    fn complete_move_here(
        &self,
        d: &mut IrqDesc,
        cpu: CpuId,
        vector: Vector,
        apic: &mut dyn LocalApic,
    ) {
        if !d.move_in_progress
            || d.state.plan_pending
            || d.state.queue_pending
            || d.target.cpu != cpu
            || d.target.vector != vector
        {
            return;
        }
        let virq = d.virq;
        let old_cpu = self.vector_op(d, |vd| vd.complete_move(virq, cpu, vector));
        if let Some(c) = old_cpu {
            apic.send_ipi(c, VECTOR_CLEANUP_VECTOR);
        }
    }

    fn flow_entry(
        &self,
        d: &mut IrqDesc,
        cpu: CpuId,
        apic: &mut dyn LocalApic,
    ) -> Result<Dispatch> {
        if let Some(c) = d.counts.get_mut(cpu as usize) {
            *c += 1;
        }
        let blocked = d.disabled() || d.action.is_none() || d.state.in_progress;
        match d.flow {
            FlowKind::Edge => {
                if blocked {
                    // Lazy disable: mask now, remember the edge, acknowledge.
                    d.state.pending = true;
                    self.mask_locked(d)?;
                    self.root_ack(d, apic)?;
                    return Ok(Dispatch::Done);
                }
                self.root_ack(d, apic)?;
            }
            FlowKind::FastEoi => {
                if blocked {
                    d.state.pending = true;
                    // Merely running on another CPU: that CPU replays it when its handler
                    // returns (see `end_irq`), so masking here would leave the line masked
                    // with nobody to unmask it. Disabled or unrequested: lazy mask.
                    let running_elsewhere = !d.disabled() && d.action.is_some();
                    if !running_elsewhere {
                        self.mask_locked(d)?;
                    }
                    self.root_eoi(d, apic)?;
                    return Ok(Dispatch::Done);
                }
            }
            FlowKind::Level => {
                self.mask_locked(d)?;
                self.root_ack(d, apic)?;
                if blocked {
                    d.state.pending = true;
                    return Ok(Dispatch::Done);
                }
            }
        }
        d.state.in_progress = true;
        Ok(Dispatch::Run {
            virq: d.virq,
            token: d.action.unwrap_or(0),
        })
    }

    /// Storm accounting after the handler returned `ret`; true if the line must go.
    fn note_interrupt(&self, d: &mut IrqDesc, ret: IrqReturn, apic: &dyn LocalApic) -> bool {
        let storm = self.storm();
        d.window_count += 1;
        if ret == IrqReturn::NotHandled {
            let now = apic.now_ns();
            let after_pause = d
                .last_unhandled_ns
                .is_none_or(|t| now.saturating_sub(t) > storm.unhandled_gap_ns);
            d.window_unhandled = if after_pause {
                1
            } else {
                d.window_unhandled + 1
            };
            d.last_unhandled_ns = Some(now);
            d.unhandled_total += 1;
        }
        let mut stormed = false;
        if d.window_count >= storm.window {
            stormed = d.window_unhandled > storm.threshold;
            d.window_count = 0;
            d.window_unhandled = 0;
        }
        stormed
    }

    /// Exit half, after the handler returned `ret`.
    pub fn end_irq(&self, virq: Virq, ret: IrqReturn, apic: &mut dyn LocalApic) -> Result<FlowEnd> {
        self.with_desc(virq, |d| {
            d.state.in_progress = false;
            if self.note_interrupt(d, ret, apic) {
                d.state.storm_disabled = true;
                d.state.disable_depth += 1;
                self.mask_locked(d)?;
                if d.flow == FlowKind::FastEoi {
                    self.root_eoi(d, apic)?;
                }
                return Ok(FlowEnd::StormDisabled);
            }
            match d.flow {
                FlowKind::Edge => {
                    if d.state.pending && !d.disabled() {
                        d.state.pending = false;
                        d.state.in_progress = true;
                        if d.state.masked {
                            self.unmask_locked(d)?;
                        }
                        return Ok(FlowEnd::RunAgain {
                            token: d.action.unwrap_or(0),
                        });
                    }
                }
                FlowKind::FastEoi => {
                    // One that arrived while the handler ran elsewhere (already EOIed on
                    // its CPU): run again before this one's single EOI.
                    if d.state.pending && !d.disabled() {
                        d.state.pending = false;
                        d.state.in_progress = true;
                        return Ok(FlowEnd::RunAgain {
                            token: d.action.unwrap_or(0),
                        });
                    }
                    self.root_eoi(d, apic)?
                }
                FlowKind::Level => {
                    if !d.disabled() {
                        self.unmask_locked(d)?;
                    }
                }
            }
            Ok(FlowEnd::Done)
        })
    }

    /// Both halves with `run` as the handler dispatcher (the simulator, and callers that
    /// have their handler at hand).
    pub fn handle_vector(
        &self,
        vector: Vector,
        apic: &mut dyn LocalApic,
        run: &mut dyn FnMut(Virq, u64) -> IrqReturn,
    ) -> Dispatch {
        let dispatch = self.begin_vector(vector, apic);
        if let Dispatch::Run { virq, token } = dispatch {
            let mut ret = run(virq, token);
            while let Ok(FlowEnd::RunAgain { token }) = self.end_irq(virq, ret, apic) {
                ret = run(virq, token);
            }
        }
        dispatch
    }
}
