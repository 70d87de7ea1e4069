//! What a finished schedule must satisfy.
//!
//! Every firing handled **exactly once**, by its own handler: not lost, not misrouted,
//! and no handler run beyond what its device raised (each delivery's runs — first run
//! and replays — against the firings of that handler's device it settled; IRR
//! coalescing may give one run several, never the other way round). A second delivery
//! of an interrupt whose token already travelled elsewhere (a retrigger of a retrigger,
//! say) shows up only as a handler run with nothing to settle — which is what a driver
//! that checks its device's status sees as an interrupt it never raised (xHCI: Event
//! Handler Busy clear). Also: no arrival the core counted as stray, nothing still in
//! flight, every watched device's storage sending where the core says its irq is, and
//! no lock validator report.

use sluice_irq_core::IrqCore;
use sluice_irq_core::vector::SHUTDOWN_VECTOR;

use crate::machine::Machine;

impl Machine {
    /// The token that settles firing `t`: itself, or the pending message it coalesced
    /// into.
    fn settled_by(&self, t: usize) -> usize {
        self.coalesced
            .iter()
            .find(|(a, _)| *a as usize == t)
            .map_or(t, |(_, b)| *b as usize)
    }

    /// What went wrong: every firing not handled exactly once, and every handler run its device did not raise.
    pub fn lost_or_duplicated(&self) -> Vec<String> {
        let mut out = self.failures.clone();
        for t in 0..self.handled.len() {
            let n = self.handled[self.settled_by(t)];
            if n != 1 {
                out.push(format!(
                    "token {t} (device {}, handler {}) handled {n} times",
                    self.token_dev[t], self.token_handler[t]
                ));
            }
        }
        for &(h, extra, cpu, vector) in &self.extra_runs {
            if self.token_handler.contains(&h) {
                out.push(format!(
                    "duplicate: handler {h} ran {extra} more time(s) on cpu {cpu} vector {vector:#x} than its device raised"
                ));
            } else if !self.tolerate_phantoms {
                out.push(format!(
                    "phantom: handler {h} ran {extra} time(s) on cpu {cpu} vector {vector:#x}, its device never fired"
                ));
            }
        }
        out
    }

    /// Has every firing so far been handled (or coalesced into one that was)? What a
    /// driver waits for before it frees its irq.
    pub fn all_handled(&self) -> bool {
        (0..self.handled.len()).all(|t| self.handled[self.settled_by(t)] > 0)
    }

    /// Handler runs of devices that never fired (see [`Machine::tolerate_phantoms`]).
    pub fn phantom_runs(&self) -> u32 {
        self.extra_runs
            .iter()
            .filter(|(h, ..)| !self.token_handler.contains(h))
            .map(|(_, n, ..)| n)
            .sum()
    }

    /// Handler runs beyond what their devices raised, phantoms included.
    pub fn extra_handler_runs(&self) -> u32 {
        self.extra_runs.iter().map(|(_, n, ..)| n).sum()
    }

    /// For every watched (device, irq): does the device's storage (its message, its
    /// I/O APIC entry, the remapping entry it names — as the unit would serve it, cache
    /// included) send where the core records the irq's target (a block member: its
    /// block's first vector), masked as the descriptor says? A freed irq's device must be
    /// parked: masked, unable to send, or sending to the shutdown vector — except a
    /// multi-message device, whose block keeps its vectors (and its message) until it is
    /// torn down: turning its MSI capability off, outside this model, is what silences
    /// it. This is what a plan that never ran (or ran too late), or an entry never
    /// invalidated, leaves wrong even when no interrupt happened to show it.
    pub fn route_disagreements(&self, core: &IrqCore) -> Vec<String> {
        let mut out = Vec::new();
        for &(dev, virq) in &self.watched_routes {
            let sends = self
                .message_of(dev)
                .ok_or_else(|| "masked".to_string())
                .and_then(|msg| self.route(msg, self.devices[dev].requester));
            match (core.vector_irq(virq), core.desc(virq)) {
                (Ok(irq), Ok(desc)) => {
                    let first = irq.target.vector.0.wrapping_sub(irq.block.0 as u8);
                    let want = (irq.target.apic_id, first);
                    if self.storage_masked(dev) != Some(true) && sends != Ok(want) {
                        out.push(format!(
                            "device {dev} sends to {sends:?}, the core has irq {virq} at {want:?}"
                        ));
                    }
                    if let Some(masked) = self.storage_masked(dev)
                        && masked != desc.state.masked
                    {
                        out.push(format!(
                            "device {dev} masked {masked}, irq {virq}'s descriptor says {}",
                            desc.state.masked
                        ));
                    }
                }
                _ if self.devices[dev].members > 0 => {}
                _ => {
                    let parked = self.storage_masked(dev) == Some(true)
                        || sends.is_err()
                        || sends.as_ref().is_ok_and(|(_, v)| *v == SHUTDOWN_VECTOR.0);
                    if !parked {
                        out.push(format!(
                            "device {dev} of freed irq {virq} still sends to {sends:?}"
                        ));
                    }
                }
            }
        }
        out
    }
}

/// Interrupts the core counted as stray on every CPU ([`IrqCore::stray_count`]).
pub fn strays(core: &IrqCore) -> u64 {
    (0..core.nr_cpus() as u32)
        .map(|c| core.stray_count(c))
        .sum()
}

/// Everything wrong with a finished schedule: [`Machine::lost_or_duplicated`], every
/// watched device whose storage disagrees with the core's target for its irq
/// ([`Machine::route_disagreements`]), any message still in flight, and any arrival the
/// core counted as stray — on a planned path every interrupt reaches a routed slot, or
/// the slot a retrigger left its bit on — and any report of the lock validator in this
/// process (`lockdep.rs`).
pub fn verdict(mm: &Machine, core: &IrqCore) -> Vec<String> {
    let mut out = mm.lost_or_duplicated();
    out.extend(mm.route_disagreements(core));
    let n = mm.in_flight_count();
    if n > 0 {
        out.push(format!("{n} message(s) still in flight at the end"));
    }
    let n = strays(core);
    if n > 0 {
        out.push(format!(
            "{n} stray arrival(s) on shut-down or claimed slots"
        ));
    }
    out.extend(crate::lockdep::reports());
    out
}
