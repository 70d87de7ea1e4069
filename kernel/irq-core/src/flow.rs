//! Flow handlers: what happens between "vector V arrived on CPU C" and the driver's handler.
//!
//! Two phases so the kernel can drop its lock around the driver's handler:
//! [`IrqCore::begin_vector`] classifies the vector, completes a pending move, runs the
//! flow's entry half (ack / mask / lazy-disable) and says whether to run the handler;
//! [`IrqCore::end_irq`] does accounting, storm detection and the exit half (EOI / unmask /
//! replay). [`IrqCore::handle_vector`] composes both for callers holding one lock.
//!
//! Lazy disable: [`IrqCore::disable_irq`] only marks the irq; if it fires while disabled
//! the flow masks it then and remembers it as pending; enable unmasks and retriggers.

use crate::cpumask::CpuId;
use crate::desc::{FlowKind, IrqReturn};
use crate::error::{Result, Virq};
use crate::hw::LocalApic;
use crate::irqcore::IrqCore;
use crate::vecdomain::Lookup;
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
    fn root_ack(&mut self, virq: Virq, apic: &mut dyn LocalApic) -> Result<()> {
        if !self.walk(virq, |c, d| c.ack(d))? {
            apic.eoi();
        }
        Ok(())
    }

    fn root_eoi(&mut self, virq: Virq, apic: &mut dyn LocalApic) -> Result<()> {
        if !self.walk(virq, |c, d| c.eoi(d))? {
            apic.eoi();
        }
        Ok(())
    }

    /// Entry half. Call with interrupts off on the CPU where `vector` arrived.
    pub fn begin_vector(&mut self, vector: Vector, apic: &mut dyn LocalApic) -> Dispatch {
        let cpu = apic.current_cpu();
        match self.vector.lookup(cpu, vector) {
            Lookup::System(v) => Dispatch::System(v),
            Lookup::Ignored => {
                apic.eoi();
                Dispatch::Done
            }
            Lookup::Spurious { first } => {
                apic.eoi();
                Dispatch::Spurious { first }
            }
            Lookup::Irq { virq, cleanup_cpu } => {
                if let Some(old) = cleanup_cpu {
                    apic.send_ipi(old, VECTOR_CLEANUP_VECTOR);
                }
                match self.flow_entry(virq, cpu, apic) {
                    Ok(d) => d,
                    // The descriptor vanished under a stale slot: acknowledge and move on.
                    Err(_) => {
                        apic.eoi();
                        Dispatch::Done
                    }
                }
            }
        }
    }

    fn flow_entry(&mut self, virq: Virq, cpu: CpuId, apic: &mut dyn LocalApic) -> Result<Dispatch> {
        let d = self.desc_mut(virq)?;
        if let Some(c) = d.counts.get_mut(cpu as usize) {
            *c += 1;
        }
        let flow = d.flow;
        let blocked = d.disabled() || d.action.is_none() || d.state.in_progress;
        let token = d.action;
        match flow {
            FlowKind::Edge => {
                if blocked {
                    // Lazy disable: mask now, remember the edge, acknowledge.
                    self.desc_mut(virq)?.state.pending = true;
                    self.mask(virq)?;
                    self.root_ack(virq, apic)?;
                    return Ok(Dispatch::Done);
                }
                self.root_ack(virq, apic)?;
            }
            FlowKind::FastEoi => {
                if blocked {
                    let d = self.desc_mut(virq)?;
                    d.state.pending = true;
                    // Merely running on another CPU: that CPU replays it when its handler
                    // returns (see `end_irq`), so masking here would leave the line masked
                    // with nobody to unmask it. Disabled or unrequested: lazy mask.
                    let running_elsewhere = !d.disabled() && d.action.is_some();
                    if !running_elsewhere {
                        self.mask(virq)?;
                    }
                    self.root_eoi(virq, apic)?;
                    return Ok(Dispatch::Done);
                }
            }
            FlowKind::Level => {
                self.mask(virq)?;
                self.root_ack(virq, apic)?;
                if blocked {
                    self.desc_mut(virq)?.state.pending = true;
                    return Ok(Dispatch::Done);
                }
            }
        }
        let d = self.desc_mut(virq)?;
        d.state.in_progress = true;
        Ok(Dispatch::Run {
            virq,
            token: token.unwrap_or(0),
        })
    }

    /// Exit half, after the handler returned `ret`.
    pub fn end_irq(
        &mut self,
        virq: Virq,
        ret: IrqReturn,
        apic: &mut dyn LocalApic,
    ) -> Result<FlowEnd> {
        let storm = self.storm;
        let d = self.desc_mut(virq)?;
        d.state.in_progress = false;
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
        if stormed {
            d.state.storm_disabled = true;
            d.state.disable_depth += 1;
            let flow = d.flow;
            self.mask(virq)?;
            if flow == FlowKind::FastEoi {
                self.root_eoi(virq, apic)?;
            }
            return Ok(FlowEnd::StormDisabled);
        }
        let d = self.desc_mut(virq)?;
        match d.flow {
            FlowKind::Edge => {
                if d.state.pending && !d.disabled() {
                    d.state.pending = false;
                    d.state.in_progress = true;
                    let token = d.action.unwrap_or(0);
                    if d.state.masked {
                        self.unmask(virq)?;
                    }
                    return Ok(FlowEnd::RunAgain { token });
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
                self.root_eoi(virq, apic)?
            }
            FlowKind::Level => {
                if !d.disabled() {
                    self.unmask(virq)?;
                }
            }
        }
        Ok(FlowEnd::Done)
    }

    /// Both halves with `run` as the handler dispatcher (for callers that keep the core
    /// locked throughout, and for the simulator).
    pub fn handle_vector(
        &mut self,
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
