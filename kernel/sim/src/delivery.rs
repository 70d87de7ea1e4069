//! A CPU taking an interrupt through the core: the entry half (`begin_vector`), the
//! handler, the exit half (`end_irq`, with any replays), settling the firings that rode
//! on the delivered IRR bit.

use sluice_irq_core::desc::IrqReturn;
use sluice_irq_core::flow::{Dispatch, FlowEnd};
use sluice_irq_core::hw::LocalApic;
use sluice_irq_core::routes::Slot;
use sluice_irq_core::vector::VECTOR_CLEANUP_VECTOR;
use sluice_irq_core::{IrqCore, Vector, Virq};

use crate::apic::SimApic;
use crate::lockdep::in_irq;
use crate::machine::{Machine, Shared, Token};

/// An interrupt a CPU has begun and whose handler has not returned yet: the CPU runs it
/// with interrupts off (an interrupt gate), so it takes nothing else meanwhile.
#[derive(Clone, Debug)]
pub struct Running {
    /// The CPU.
    pub cpu: usize,
    /// The vector it took.
    pub vector: u8,
    /// The interrupt the vector belongs to.
    pub virq: Virq,
    /// The handler token the core's dispatch returned for the vector.
    pub token: u64,
    /// Device firings riding on the delivered IRR bit.
    pub tokens: Vec<Token>,
}

/// Settle `tokens` delivered on `cpu`/`vector` after the handlers in `ran_for` ran.
fn settle(
    mm: &mut Machine,
    cpu: usize,
    vector: u8,
    tokens: Vec<Token>,
    ran_for: &[u64],
    what: &str,
) {
    for t in tokens {
        let dev = mm.token_handler[t as usize];
        if ran_for.contains(&dev) {
            mm.handled[t as usize] += 1;
        } else if ran_for.is_empty() {
            mm.failures.push(format!(
                "token {t} (device {dev}) delivered to cpu {cpu} vector {vector:#x} with no handler ({what})"
            ));
        } else {
            mm.failures.push(format!(
                "token {t} (device {dev}) misrouted on cpu {cpu} vector {vector:#x} to handler {ran_for:?}"
            ));
        }
    }
}

/// Take the highest deliverable interrupt on `cpu` into the core's entry half. Returns
/// `None` if nothing was deliverable, `Some(None)` if the entry dealt with it (system
/// vector, spurious, ignored, or left pending for a replay), and `Some(Some(r))` if a
/// handler must now run: finish it with [`end_delivery`].
pub fn begin_delivery(core: &IrqCore, m: &Shared, cpu: usize) -> Option<Option<Running>> {
    in_irq(cpu, || begin(core, m, cpu))
}

fn begin(core: &IrqCore, m: &Shared, cpu: usize) -> Option<Option<Running>> {
    let (vector, tokens) = {
        let mut mm = m.lock().unwrap();
        let v = mm.deliverable(cpu)?;
        mm.irr_reads.push((cpu, v));
        let tokens = mm.cpus[cpu].irr.remove(&v).unwrap_or_default();
        mm.cpus[cpu].isr.push(v);
        (v, tokens)
    };
    let mut apic = SimApic::on(m, cpu);
    let routed = core.slot(cpu as u32, Vector(vector));
    let d = core.begin_vector(Vector(vector), &mut apic);
    match d {
        Dispatch::System(v) => {
            let out = (v == VECTOR_CLEANUP_VECTOR).then(|| core.vector_cleanup(&mut apic));
            apic.eoi();
            let mut mm = m.lock().unwrap();
            if out.is_some_and(|o| o.retry > 0) {
                mm.cleanup_retries += 1;
                mm.cleanup_pending_timer[cpu] = true;
            }
            Some(None)
        }
        Dispatch::Run { virq, token } => {
            m.lock().unwrap().cpus[cpu].irqs_on = false;
            Some(Some(Running {
                cpu,
                vector,
                virq,
                token,
                tokens,
            }))
        }
        Dispatch::Spurious { .. } | Dispatch::Done => {
            let mut mm = m.lock().unwrap();
            if matches!(d, Dispatch::Spurious { .. }) {
                mm.spurious_seen += 1;
            }
            // Arrived while its handler ran elsewhere (or while disabled): the flow left
            // it pending, and whoever replays it handles these firings.
            if let Slot::Irq(virq) = routed
                && let Ok(desc) = core.desc(virq)
                && desc.state.pending
            {
                mm.pending_tokens.entry(virq).or_default().extend(tokens);
                if let Some(dev) = desc.action {
                    mm.replay_armed.insert(dev as usize);
                }
                return Some(None);
            }
            settle(&mut mm, cpu, vector, tokens, &[], &format!("{d:?}"));
            Some(None)
        }
    }
}

/// Run the handler of an interrupt begun with [`begin_delivery`] (and any replays the
/// exit half asks for), then the exit half; the CPU takes interrupts again.
pub fn end_delivery(core: &IrqCore, m: &Shared, r: Running) {
    in_irq(r.cpu, || end(core, m, r))
}

fn end(core: &IrqCore, m: &Shared, r: Running) {
    let mut apic = SimApic::on(m, r.cpu);
    let mut ran_for = vec![r.token];
    let mut tokens = r.tokens;
    // The handler services its device: a level line drops, and what it raised since its
    // last message is covered by this run.
    tokens.extend(m.lock().unwrap().service_line(r.token));
    // The handler services whatever its device has pending, replays included.
    tokens.extend(
        m.lock()
            .unwrap()
            .pending_tokens
            .remove(&r.virq)
            .unwrap_or_default(),
    );
    while let Ok(FlowEnd::RunAgain { token }) = core.end_irq(r.virq, IrqReturn::Handled, &mut apic)
    {
        // The replay: the line is unmasked again, and this run covers what was pending.
        ran_for.push(token);
        let mut mm = m.lock().unwrap();
        mm.replay_armed.remove(&(token as usize));
        let covered = mm
            .replay_tokens
            .remove(&(token as usize))
            .unwrap_or_default();
        tokens.extend(covered);
        tokens.extend(mm.pending_tokens.remove(&r.virq).unwrap_or_default());
    }
    let mut mm = m.lock().unwrap();
    mm.cpus[r.cpu].irqs_on = true;
    // Every run (the first and each replay) must have had a firing of its own device to
    // service; IRR coalescing may give one run several, never the other way round.
    let runs = ran_for.len() as u32;
    let own = tokens
        .iter()
        .filter(|&&t| mm.token_handler[t as usize] == r.token)
        .count() as u32;
    if runs > own {
        mm.extra_runs.push((r.token, runs - own, r.cpu, r.vector));
    }
    settle(&mut mm, r.cpu, r.vector, tokens, &ran_for, "handler ran");
}

/// Deliver the highest deliverable interrupt on `cpu` through the core, entry and exit
/// back to back, settling tokens. Handler tokens are device indices.
pub fn deliver(core: &IrqCore, m: &Shared, cpu: usize) -> bool {
    match begin_delivery(core, m, cpu) {
        None => false,
        Some(None) => true,
        Some(Some(r)) => {
            end_delivery(core, m, r);
            true
        }
    }
}

/// Set-up, not explored: every message in flight arrives and every CPU takes whatever it
/// can until nothing is left (bounded).
pub fn drain(core: &IrqCore, m: &Shared) {
    for _ in 0..100 {
        m.lock().unwrap().settle();
        let n = m.lock().unwrap().cpus.len();
        let mut any = false;
        for c in 0..n {
            any |= deliver(core, m, c);
        }
        if !any {
            return;
        }
    }
}
