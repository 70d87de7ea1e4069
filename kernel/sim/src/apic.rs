//! The CPU side: each CPU's local APIC (IRR with the tokens riding on each bit, ISR,
//! soft-enable) and the `LocalApic` the core is given on that CPU.

use std::collections::{BTreeMap, BTreeSet};

use sluice_irq_core::Vector;
use sluice_irq_core::hw::LocalApic;
use sluice_irq_core::vector::VECTOR_CLEANUP_VECTOR;

use crate::machine::{Machine, Shared, Token};

/// One simulated CPU: its local APIC's interrupt state and its interrupt flag.
#[derive(Clone, Debug, Default)]
pub struct Cpu {
    /// IRR: vector -> tokens riding on that bit (a set bit may carry no token, e.g. a
    /// duplicate left behind after a retrigger moved its tokens away).
    pub irr: BTreeMap<u8, Vec<Token>>,
    /// ISR: vectors in service (taken, and not yet ended by an EOI).
    pub isr: Vec<u8>,
    /// TMR: vectors whose last accepted interrupt was level-triggered (SDM vol. 3A
    /// §11.8.4); their EOI is broadcast to the I/O APICs (§11.8.5; directed EOI is not
    /// enabled).
    pub tmr: BTreeSet<u8>,
    /// RFLAGS.IF: the CPU takes interrupts.
    pub irqs_on: bool,
    /// Soft-enabled local APIC (SVR bit 8). A disabled APIC does not latch interrupts.
    pub apic_enabled: bool,
}

impl Cpu {
    /// A CPU taking interrupts, its APIC enabled, nothing pending.
    pub fn running() -> Cpu {
        Cpu {
            irqs_on: true,
            apic_enabled: true,
            ..Cpu::default()
        }
    }
}

impl Machine {
    /// Set an IRR bit (APIC id == CPU number in the sim) for an edge-triggered interrupt
    /// (an MSI, an IPI).
    pub fn raise(&mut self, cpu: usize, vector: u8, token: Option<Token>) {
        self.raise_as(cpu, vector, token, false)
    }

    /// Set an IRR bit for an interrupt of the given trigger mode (TMR set for level).
    pub fn raise_as(&mut self, cpu: usize, vector: u8, token: Option<Token>, level: bool) {
        let Some(c) = self.cpus.get_mut(cpu) else {
            self.fail(token, "no such cpu");
            return;
        };
        if !c.apic_enabled {
            // A soft-disabled APIC does not accept fixed interrupts (SDM vol. 3A §11.4.7.2:
            // only INIT, NMI, SMI and SIPI are handled normally; IRR/ISR contents are held).
            match token {
                Some(t) => self.failures.push(format!(
                    "token {t}: cpu {cpu} APIC disabled, interrupt dropped"
                )),
                None => self.dropped_ipis += 1,
            }
            return;
        }
        if level {
            c.tmr.insert(vector);
        } else {
            c.tmr.remove(&vector);
        }
        let e = c.irr.entry(vector).or_default();
        if let Some(t) = token {
            e.push(t);
        }
    }

    /// Highest-priority deliverable vector of `cpu`: above the in-service priority class.
    pub fn deliverable(&self, cpu: usize) -> Option<u8> {
        let c = &self.cpus[cpu];
        if !c.irqs_on {
            return None;
        }
        let top = *c.irr.keys().next_back()?;
        let isr_class = c.isr.iter().max().map(|v| v >> 4).unwrap_or(0);
        (top >> 4 > isr_class).then_some(top)
    }

    /// CPU `c` comes back from INIT: IRR and ISR cleared, APIC enabled, interrupts on.
    pub fn restart(&mut self, c: usize) {
        self.cpus[c] = Cpu::running();
    }
}

/// The local APIC of one CPU of the simulated machine.
pub struct SimApic {
    /// The machine.
    pub m: Shared,
    /// The CPU whose APIC this is.
    pub cpu: usize,
}

impl SimApic {
    /// CPU `cpu`'s local APIC on machine `m`.
    pub fn on(m: &Shared, cpu: usize) -> SimApic {
        SimApic { m: m.clone(), cpu }
    }
}

impl LocalApic for SimApic {
    fn current_cpu(&self) -> u32 {
        self.cpu as u32
    }
    /// Ends the highest vector in service; a level-triggered one's EOI is broadcast to
    /// every I/O APIC.
    fn eoi(&mut self) {
        let mut m = self.m.lock().unwrap();
        let c = &mut m.cpus[self.cpu];
        if let Some(pos) = c
            .isr
            .iter()
            .enumerate()
            .max_by_key(|(_, v)| **v)
            .map(|(i, _)| i)
        {
            let v = c.isr.remove(pos);
            if c.tmr.contains(&v) {
                m.broadcast_eoi(v);
            }
        }
    }
    /// The TMR bit the machine set when it accepted `vector` level-triggered.
    fn eoi_broadcasts(&self, vector: Vector) -> bool {
        self.m.lock().unwrap().cpus[self.cpu]
            .tmr
            .contains(&vector.0)
    }
    fn now_ns(&self) -> u64 {
        self.m.lock().unwrap().now_ns
    }
    fn irr_pending(&self, vector: Vector) -> bool {
        let mut m = self.m.lock().unwrap();
        m.irr_reads.push((self.cpu, vector.0));
        let hit = m.cpus[self.cpu].irr.contains_key(&vector.0);
        if hit {
            m.last_irr_hit = Some((self.cpu, vector.0));
        }
        // A device may also fire right after an IRR read (the window between checking and
        // acting on it).
        m.after_write();
        hit
    }
    fn send_ipi(&mut self, cpu: u32, vector: Vector) {
        let mut m = self.m.lock().unwrap();
        m.irr_reads.push((self.cpu, vector.0));
        // A retrigger of a device vector re-raises the interrupt pending here: its tokens
        // travel with the IPI; the physical bit stays and will be delivered empty.
        let mut tokens = if vector != VECTOR_CLEANUP_VECTOR {
            m.cpus[self.cpu]
                .irr
                .get_mut(&vector.0)
                .map(std::mem::take)
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let hit = m.last_irr_hit.take();
        if tokens.is_empty()
            && vector != VECTOR_CLEANUP_VECTOR
            && m.redeliver_from_irr_hit
            && let Some((c, v)) = hit
            && c == self.cpu
        {
            m.irr_reads.push((c, v));
            tokens = m.cpus[self.cpu]
                .irr
                .get_mut(&v)
                .map(std::mem::take)
                .unwrap_or_default();
        }
        // IPIs are not in flight: the ICR write is delivered before the sender goes on
        // (xAPIC's delivery status; an x2APIC sender that does not wait is not modelled).
        if tokens.is_empty() {
            m.raise(cpu as usize, vector.0, None);
        }
        for t in tokens {
            m.raise(cpu as usize, vector.0, Some(t));
        }
    }
    /// The settle delay before hotplug's IRR scan (Linux's 1 ms in `fixup_irqs`): long
    /// beside any bus latency, so every message sent before it has arrived when it ends.
    fn before_irr_scan(&mut self) {
        self.m.lock().unwrap().settle();
    }
}
