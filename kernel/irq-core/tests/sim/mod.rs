//! Simulated machine for host tests: CPUs with local-APIC IRR/ISR and EOI, MSI devices whose
//! address-low / address-high / data words are separate writes and that can fire between
//! any two of them, an interrupt-remapping table, an IPI path, and a deterministic
//! scheduler that enumerates every interleaving of a script against device firing and
//! interrupt delivery (stateless model checking: each schedule is replayed from scratch).
//!
//! A multi-message device (multi-MSI) has one message and several members: member `j`
//! sends that message with `j` ORed into the data word, each member has its own mask and
//! pending bit, and each is handled by its own irq's handler ([`member_token`]).
//!
//! Every device firing creates a *token*. Tokens ride with the IRR bit they set, move with a
//! retrigger IPI, and are settled when the bit is delivered: handled by the right device's
//! handler (good), or dropped on a spurious/ignored slot or taken by another device's
//! handler (lost / misrouted). A run passes if every token is handled exactly once *and*
//! no handler runs more often than its device raised interrupts: a token counts once
//! however many times it is handled, so a second delivery of an interrupt whose token
//! already travelled elsewhere (a retrigger of a retrigger, say) shows up only as a
//! handler run with nothing to settle — which is what a driver that checks its device's
//! status sees as an interrupt it never raised (xHCI: Event Handler Busy clear).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use sluice_irq_core::affinity::{
    BlockMembers, MsiPath, PlanId, Step, StepPlan, Word, msi_words, plan_msi_update,
};
use sluice_irq_core::chip::{AffinityMsgs, Chip, ChipOp, HwIrq, LevelCtx};
use sluice_irq_core::desc::IrqReturn;
use sluice_irq_core::domain::Domain;
use sluice_irq_core::flow::{Dispatch, FlowEnd};
use sluice_irq_core::hw::{LocalApic, Target};
use sluice_irq_core::ioapic::{Rte, RteStorage};
use sluice_irq_core::msi::{MsiCaps, MsiMsg, MsiStorage, Trigger, decode};
use sluice_irq_core::msidomain::MsiDomain;
use sluice_irq_core::queued::{QueuedEntry, QueuedStorage};
use sluice_irq_core::vector::{SHUTDOWN_VECTOR, VECTOR_CLEANUP_VECTOR, Vector};
use sluice_irq_core::{IrqCore, IrqError, IrqSource, Virq};

pub type Token = u32;

#[derive(Clone, Debug, Default)]
pub struct Cpu {
    /// IRR: vector -> tokens riding on that bit (a set bit may carry no token, e.g. a
    /// duplicate left behind after a retrigger moved its tokens away).
    pub irr: BTreeMap<u8, Vec<Token>>,
    pub isr: Vec<u8>,
    pub irqs_on: bool,
    /// Soft-enabled local APIC (SVR bit 8). A disabled APIC does not latch interrupts.
    pub apic_enabled: bool,
}

#[derive(Clone, Debug, Default)]
pub struct Device {
    pub msg: MsiMsg,
    pub maskable: bool,
    pub masked: bool,
    /// PCI pending bit: set when firing while masked, sent on unmask.
    pub pending: Option<Token>,
    /// An I/O APIC input rather than an MSI: the wire's electrical settings; the message
    /// is whatever the redirection entry `rte` says when the edge comes.
    pub wire: Option<Wire>,
    /// The redirection entry's two registers (I/O APIC inputs only).
    pub rte: Rte,
    /// Multi-MSI: number of members (0: a plain device). Member `j` sends `msg` with `j`
    /// ORed into the data word.
    pub members: u32,
    /// Multi-MSI with per-vector masking: bit `j` set = member `j` masked.
    pub member_masked: u32,
    /// Multi-MSI: member `j`'s pending bit (fired while masked), sent on unmask.
    pub member_pending: BTreeMap<u32, Token>,
}

/// The handler token the test requests member `j` of device `dev` with: a firing of
/// that member must be handled by exactly that handler.
pub fn member_token(dev: usize, j: u32) -> u64 {
    1000 + dev as u64 * 64 + u64::from(j)
}

/// How an I/O APIC input is wired on the board.
#[derive(Clone, Copy, Debug, Default)]
pub struct Wire {
    pub active_low: bool,
    pub level: bool,
}

#[derive(Default, Debug)]
pub struct Machine {
    pub cpus: Vec<Cpu>,
    pub devices: Vec<Device>,
    /// Interrupt remapping table: handle -> (dest apic id, vector).
    pub irte: BTreeMap<u32, (u32, u8)>,
    /// token -> device that fired it
    pub token_dev: Vec<usize>,
    /// token -> the handler token that must handle it (the device index for a plain
    /// device, [`member_token`] for a member of a multi-message device)
    pub token_handler: Vec<u64>,
    /// token -> times handled by its own device's handler
    pub handled: Vec<u32>,
    /// Failures: (token, description)
    pub failures: Vec<String>,
    /// Cleanup passes that had to leave an IRR-pending vector behind.
    pub cleanup_retries: u32,
    /// Simulated time, as every CPU's `now_ns` reads it; only tests advance it.
    pub now_ns: u64,
    pub cleanup_pending_timer: Vec<bool>,
    pub spurious_seen: u32,
    /// (later token, token whose pending message it coalesced into)
    pub coalesced: Vec<(Token, Token)>,
    /// Token-less IPIs (cleanup, empty retriggers) sent to a soft-disabled APIC.
    pub dropped_ipis: u32,
    /// Device-visible hardware writes and IRR reads so far (MSI words, RTE halves, IRTE
    /// updates, `irr_pending`): the points where a schedule may slip a device firing in.
    pub writes: usize,
    /// (write number, device): fire `device` right after that write — lets a schedule put
    /// a device firing *inside* one atomic call of the core (hotplug migration).
    pub fire_after_write: Vec<(usize, usize)>,
    /// (write number, device, member): the same for one member of a multi-MSI device.
    pub fire_member_after_write: Vec<(usize, usize, u32)>,
    /// Hotplug re-delivery model: a retrigger IPI for vector N sent right after
    /// `irr_pending(M)` answered yes on this CPU stands for the interrupt pending at M
    /// (the old vector), whose tokens it carries — the core checks, then retriggers.
    pub redeliver_from_irr_hit: bool,
    /// (cpu, vector) of the last `irr_pending` that answered yes.
    pub last_irr_hit: Option<(usize, u8)>,
    /// Firings that arrived while their irq's handler ran elsewhere (or it was disabled)
    /// and that the flow left pending: settled when a handler of that irq next runs.
    pub pending_tokens: BTreeMap<Virq, Vec<Token>>,
    /// Devices whose irq the flow masked and left pending for a replay: an edge their
    /// masked I/O APIC input drops meanwhile is covered by the replayed handler run, which
    /// services whatever the device has outstanding (edge semantics; Linux's
    /// `handle_edge_irq` relies on the same).
    pub replay_armed: std::collections::BTreeSet<usize>,
    /// Firings covered that way, by device, settled by the replayed handler run.
    pub replay_tokens: BTreeMap<usize, Vec<Token>>,
    /// Handler runs beyond the interrupts they settled: (handler token, extra runs, cpu,
    /// vector), one entry per delivery that had more runs (first run plus replays) than
    /// firings of that handler's device riding on it.
    pub extra_runs: Vec<(u64, u32, usize, u8)>,
    /// Extra runs of a handler whose device never fired in this schedule are *phantoms*
    /// (another irq's interrupt shared its IRR bit: the intermediate message of a
    /// non-maskable move landing on a vector another irq owns on the old CPU, the
    /// documented limitation Linux shares). Scenarios that build that layout on purpose
    /// set this and count them with [`Machine::phantom_runs`]; otherwise they fail.
    pub tolerate_phantoms: bool,
    /// Queued storage (`SimQueuedStorage`): commands taken and not yet completed, in
    /// order: (device, what the entry is to hold, ticket). Each completes at some later
    /// event of the schedule ([`Machine::complete_command`]).
    pub commands: std::collections::VecDeque<(usize, QueuedEntry, u64)>,
    /// Tickets below this have completed.
    pub tickets_done: u64,
    /// The next ticket handed out.
    pub next_ticket: u64,
    /// (device, irq): at the end of a schedule [`verdict`] checks that the device sends
    /// where the core says the irq is ([`Machine::route_disagreements`]).
    pub watched_routes: Vec<(usize, Virq)>,
}

pub type Shared = Arc<Mutex<Machine>>;

impl Machine {
    pub fn new(cpus: usize) -> Shared {
        let m = Machine {
            cpus: vec![
                Cpu {
                    irqs_on: true,
                    apic_enabled: true,
                    ..Cpu::default()
                };
                cpus
            ],
            cleanup_pending_timer: vec![false; cpus],
            ..Machine::default()
        };
        Arc::new(Mutex::new(m))
    }

    pub fn add_device(&mut self, maskable: bool) -> usize {
        self.devices.push(Device {
            maskable,
            ..Device::default()
        });
        self.devices.len() - 1
    }

    /// A multi-message MSI device with `members` members (its message starts zero).
    pub fn add_block_device(&mut self, maskable: bool, members: u32) -> usize {
        self.devices.push(Device {
            maskable,
            members,
            ..Device::default()
        });
        self.devices.len() - 1
    }

    /// An I/O APIC input wired as `wire` (its entry starts masked, as at reset).
    pub fn add_ioapic_line(&mut self, wire: Wire) -> usize {
        self.devices.push(Device {
            wire: Some(wire),
            rte: Rte {
                low: sluice_irq_core::ioapic::low::MASKED,
                high: 0,
            },
            ..Device::default()
        });
        self.devices.len() - 1
    }

    /// Where the chipset would deliver `msg`: (APIC id, vector), through the remapping
    /// table for a remappable message.
    fn resolve(&self, msg: &MsiMsg) -> Result<(u32, u8), &'static str> {
        if msg.addr_lo & 0xFFF0_0000 == 0xFEE0_0000 && msg.addr_lo & (1 << 4) != 0 {
            let handle = (msg.addr_lo >> 5) & 0x7fff;
            self.irte
                .get(&handle)
                .copied()
                .ok_or("remap fault: no IRTE")
        } else {
            decode(msg)
                .map(|f| (f.dest, f.vector.0))
                .ok_or("message outside MSI window")
        }
    }

    /// Post a message to the bus as the chipset would.
    fn post(&mut self, msg: MsiMsg, token: Option<Token>) {
        match self.resolve(&msg) {
            Ok((dest, vector)) => self.raise(dest as usize, vector, token),
            Err(why) => self.fail(token, why),
        }
    }

    /// The message device `dev` sends now (member 0's for a multi-message device), as
    /// its storage holds it; `None` if it cannot send at all (an I/O APIC input masked).
    fn message_of(&self, dev: usize) -> Option<MsiMsg> {
        let d = &self.devices[dev];
        let Some(_) = d.wire else {
            return Some(d.msg);
        };
        let e = d.rte;
        if e.masked() {
            return None;
        }
        Some(if e.remappable() {
            MsiMsg {
                addr_lo: 0xFEE0_0000
                    | u32::from(e.handle() & 0x7fff) << 5
                    | 1 << 4
                    | u32::from(e.handle() >> 15) << 2,
                addr_hi: 0,
                data: u32::from(e.vector()),
            }
        } else {
            sluice_irq_core::msi::compose(
                &sluice_irq_core::msi::CompatMsi::fixed(e.dest(), Vector(e.vector())),
                sluice_irq_core::msi::DestFormat::ExtDest15,
            )
            .unwrap_or_default()
        })
    }

    /// Is device `dev` masked at its storage (a maskable MSI, or an I/O APIC input)?
    /// `None` for storage without a mask.
    fn storage_masked(&self, dev: usize) -> Option<bool> {
        let d = &self.devices[dev];
        match d.wire {
            Some(_) => Some(d.rte.masked()),
            None if d.maskable && d.members == 0 => Some(d.masked),
            None => None,
        }
    }

    /// For every watched (device, irq): does the device's storage (its message, its
    /// I/O APIC entry, the remapping entry it names) send where the core records the
    /// irq's target (a block member: its block's first vector), masked as the descriptor
    /// says? A freed irq's device must be parked: masked, unable to send, or sending to
    /// the shutdown vector — except a multi-message device, whose block keeps its vectors
    /// (and its message) until it is torn down: turning its MSI capability off, outside
    /// this model, is what silences it. This is what a plan that never ran (or ran too
    /// late) leaves wrong even when no interrupt happened to show it.
    pub fn route_disagreements(&self, core: &IrqCore) -> Vec<String> {
        let mut out = Vec::new();
        for &(dev, virq) in &self.watched_routes {
            let sends = self
                .message_of(dev)
                .ok_or("masked")
                .and_then(|msg| self.resolve(&msg));
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
                        || sends.is_ok_and(|(_, v)| v == SHUTDOWN_VECTOR.0);
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

    fn fail(&mut self, token: Option<Token>, why: &str) {
        self.failures.push(format!("token {token:?}: {why}"));
    }

    /// Set an IRR bit (APIC id == CPU number in the sim).
    pub fn raise(&mut self, cpu: usize, vector: u8, token: Option<Token>) {
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
        let e = c.irr.entry(vector).or_default();
        if let Some(t) = token {
            e.push(t);
        }
    }

    /// The device sends its interrupt now, reading whatever its words hold.
    pub fn fire(&mut self, dev: usize) -> Token {
        let token = self.token_dev.len() as Token;
        self.token_dev.push(dev);
        self.token_handler.push(dev as u64);
        self.handled.push(0);
        let d = &mut self.devices[dev];
        if let Some(wire) = d.wire {
            let e = d.rte;
            let why = if e.masked() {
                Some("edge at a masked RTE not seen")
            } else if e.active_low() != wire.active_low {
                Some("RTE polarity does not match the wire: the edge is not seen")
            } else if e.level() != wire.level {
                Some("RTE trigger mode does not match the wire")
            } else {
                None
            };
            if e.masked() && self.replay_armed.contains(&dev) {
                self.replay_tokens.entry(dev).or_default().push(token);
                return token;
            }
            if let Some(why) = why {
                self.failures
                    .push(format!("token {token}: device {dev}: {why}"));
                return token;
            }
            // The I/O APIC sends what its entry says, as an MSI would (the core derives
            // entries from messages the same way).
            let msg = self.message_of(dev).unwrap_or_default();
            self.post(msg, Some(token));
            return token;
        }
        if d.maskable && d.masked {
            // Masked: the pending bit holds it (PCI 3.0 §6.8.3.5); tokens coalesce.
            // A second firing while masked coalesces into the one pending message.
            d.pending = Some(d.pending.unwrap_or(token));
            if d.pending != Some(token) {
                // The earlier pending message now also stands for this firing.
                self.coalesced.push((token, d.pending.unwrap()));
            }
            return token;
        }
        let msg = d.msg;
        self.post(msg, Some(token));
        token
    }

    /// Member `j` of multi-message device `dev` sends its interrupt now: the one message
    /// with `j` in the low data bits (PCI 3.0 §6.8.1.6), or its pending bit if masked.
    pub fn fire_member(&mut self, dev: usize, j: u32) -> Token {
        let token = self.token_dev.len() as Token;
        self.token_dev.push(dev);
        self.token_handler.push(member_token(dev, j));
        self.handled.push(0);
        let d = &mut self.devices[dev];
        if d.maskable && d.member_masked & 1 << j != 0 {
            match d.member_pending.get(&j) {
                Some(&first) => self.coalesced.push((token, first)),
                None => {
                    d.member_pending.insert(j, token);
                }
            }
            return token;
        }
        let mut msg = d.msg;
        msg.data |= j;
        self.post(msg, Some(token));
        token
    }

    /// The oldest queued command completes: the device now holds (and sends) what it
    /// said; an interrupt it held while masked goes out if it is unmasked now.
    pub fn complete_command(&mut self) -> bool {
        let Some((dev, e, t)) = self.commands.pop_front() else {
            return false;
        };
        self.tickets_done = t + 1;
        let d = &mut self.devices[dev];
        d.msg = e.msg;
        d.masked = e.masked;
        if !e.masked
            && let Some(token) = d.pending.take()
        {
            let msg = d.msg;
            self.post(msg, Some(token));
        }
        true
    }

    /// Count one write or IRR read and fire whatever a schedule put right after it.
    pub fn after_write(&mut self) {
        self.writes += 1;
        let n = self.writes;
        let due: Vec<usize> = self
            .fire_after_write
            .iter()
            .filter(|(k, _)| *k == n)
            .map(|(_, d)| *d)
            .collect();
        self.fire_after_write.retain(|(k, _)| *k != n);
        for dev in due {
            self.fire(dev);
        }
        let due: Vec<(usize, u32)> = self
            .fire_member_after_write
            .iter()
            .filter(|(k, _, _)| *k == n)
            .map(|(_, d, j)| (*d, *j))
            .collect();
        self.fire_member_after_write.retain(|(k, _, _)| *k != n);
        for (dev, j) in due {
            self.fire_member(dev, j);
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

    pub fn lost_or_duplicated(&self) -> Vec<String> {
        let mut out = self.failures.clone();
        for (t, &n) in self.handled.iter().enumerate() {
            let settled_by = self
                .coalesced
                .iter()
                .find(|(a, _)| *a as usize == t)
                .map(|(_, b)| *b as usize);
            let n = match settled_by {
                Some(b) => self.handled[b],
                None => n,
            };
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
        (0..self.handled.len()).all(|t| {
            let settled_by = self
                .coalesced
                .iter()
                .find(|(a, _)| *a as usize == t)
                .map_or(t, |(_, b)| *b as usize);
            self.handled[settled_by] > 0
        })
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
}

/// Interrupts the core counted as stray on every CPU ([`IrqCore::stray_count`]).
pub fn strays(core: &IrqCore) -> u64 {
    (0..core.nr_cpus() as u32)
        .map(|c| core.stray_count(c))
        .sum()
}

/// Everything wrong with a finished schedule: [`Machine::lost_or_duplicated`], every
/// watched device whose storage disagrees with the core's target for its irq
/// ([`Machine::route_disagreements`]), and any arrival the core counted as stray — on a
/// planned path every interrupt reaches a routed slot, or the slot a retrigger left its
/// bit on.
pub fn verdict(mm: &Machine, core: &IrqCore) -> Vec<String> {
    let mut out = mm.lost_or_duplicated();
    out.extend(mm.route_disagreements(core));
    let n = strays(core);
    if n > 0 {
        out.push(format!(
            "{n} stray arrival(s) on shut-down or claimed slots"
        ));
    }
    out
}

/// The local APIC of one CPU of the simulated machine.
pub struct SimApic {
    pub m: Shared,
    pub cpu: usize,
}

impl LocalApic for SimApic {
    fn current_cpu(&self) -> u32 {
        self.cpu as u32
    }
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
            c.isr.remove(pos);
        }
    }
    fn now_ns(&self) -> u64 {
        self.m.lock().unwrap().now_ns
    }
    fn irr_pending(&self, vector: Vector) -> bool {
        let mut m = self.m.lock().unwrap();
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
            tokens = m.cpus[self.cpu]
                .irr
                .get_mut(&v)
                .map(std::mem::take)
                .unwrap_or_default();
        }
        if tokens.is_empty() {
            m.raise(cpu as usize, vector.0, None);
        }
        for t in tokens {
            m.raise(cpu as usize, vector.0, Some(t));
        }
    }
}

/// Queued storage of a simulated device: the device's message (and mask) change only
/// when a command completes, an event of its own in the schedule. The device itself is
/// a maskable [`Device`]: masked, it holds one pending interrupt. Its message starts as
/// zeros (what it holds before any command: not an MSI at all).
pub struct SimQueuedStorage {
    pub m: Shared,
    pub dev: usize,
}

impl QueuedStorage for SimQueuedStorage {
    fn nvec(&self) -> u32 {
        1
    }
    fn ready(&self) -> bool {
        true
    }
    fn submit(&self, _index: u32, e: &QueuedEntry) -> sluice_irq_core::Result<u64> {
        let mut m = self.m.lock().unwrap();
        let t = m.next_ticket;
        m.next_ticket += 1;
        m.commands.push_back((self.dev, *e, t));
        Ok(t)
    }
    fn completed(&self, ticket: u64) -> bool {
        ticket < self.m.lock().unwrap().tickets_done
    }
}

/// MSI storage of a simulated device: each write lands immediately in the device.
pub struct SimMsiStorage {
    pub m: Shared,
    pub dev: usize,
    pub maskable: bool,
}

impl MsiStorage for SimMsiStorage {
    fn caps(&self) -> MsiCaps {
        MsiCaps {
            maskable: self.maskable,
            nvec: 1,
            multi_vector: false,
            dynamic: false,
            addr64: true,
        }
    }
    fn write_addr_lo(&self, _i: u32, v: u32) {
        let mut m = self.m.lock().unwrap();
        m.devices[self.dev].msg.addr_lo = v;
        m.after_write();
    }
    fn write_addr_hi(&self, _i: u32, v: u32) {
        let mut m = self.m.lock().unwrap();
        m.devices[self.dev].msg.addr_hi = v;
        m.after_write();
    }
    fn write_data(&self, _i: u32, v: u32) {
        let mut m = self.m.lock().unwrap();
        m.devices[self.dev].msg.data = v;
        m.after_write();
    }
    fn mask(&self, _i: u32) -> sluice_irq_core::Result<()> {
        if !self.maskable {
            return Err(IrqError::Unsupported);
        }
        self.m.lock().unwrap().devices[self.dev].masked = true;
        Ok(())
    }
    fn unmask(&self, _i: u32) -> sluice_irq_core::Result<()> {
        if !self.maskable {
            return Err(IrqError::Unsupported);
        }
        let mut m = self.m.lock().unwrap();
        let d = &mut m.devices[self.dev];
        d.masked = false;
        if let Some(t) = d.pending.take() {
            let msg = d.msg;
            m.post(msg, Some(t));
        }
        Ok(())
    }
    fn read(&self, _i: u32) -> MsiMsg {
        self.m.lock().unwrap().devices[self.dev].msg
    }
}

/// Message storage of a simulated multi-message MSI device: one message (slot 0), one
/// mask bit per member when `maskable` (PCI 3.0 per-vector masking).
pub struct SimBlockStorage {
    pub m: Shared,
    pub dev: usize,
    pub maskable: bool,
    pub nvec: u32,
}

impl SimBlockStorage {
    fn write(&self, i: u32, f: impl FnOnce(&mut MsiMsg)) {
        let mut m = self.m.lock().unwrap();
        if i != 0 {
            m.failures
                .push(format!("multi-MSI device {} written at slot {i}", self.dev));
        }
        f(&mut m.devices[self.dev].msg);
        m.after_write();
    }
}

impl MsiStorage for SimBlockStorage {
    fn caps(&self) -> MsiCaps {
        MsiCaps {
            maskable: self.maskable,
            nvec: self.nvec,
            multi_vector: true,
            dynamic: false,
            addr64: true,
        }
    }
    fn write_addr_lo(&self, i: u32, v: u32) {
        self.write(i, |m| m.addr_lo = v);
    }
    fn write_addr_hi(&self, i: u32, v: u32) {
        self.write(i, |m| m.addr_hi = v);
    }
    fn write_data(&self, i: u32, v: u32) {
        self.write(i, |m| m.data = v);
    }
    fn mask(&self, j: u32) -> sluice_irq_core::Result<()> {
        if !self.maskable {
            return Err(IrqError::Unsupported);
        }
        self.m.lock().unwrap().devices[self.dev].member_masked |= 1 << j;
        Ok(())
    }
    fn unmask(&self, j: u32) -> sluice_irq_core::Result<()> {
        if !self.maskable {
            return Err(IrqError::Unsupported);
        }
        let mut m = self.m.lock().unwrap();
        let d = &mut m.devices[self.dev];
        d.member_masked &= !(1 << j);
        if let Some(t) = d.member_pending.remove(&j) {
            let mut msg = d.msg;
            msg.data |= j;
            m.post(msg, Some(t));
        }
        Ok(())
    }
    fn read(&self, _i: u32) -> MsiMsg {
        self.m.lock().unwrap().devices[self.dev].msg
    }
}

/// WRONG on purpose, for the block counter-example only: a multi-MSI domain whose block
/// plan claims and IRR-checks only the block's first vector — as if the block were one
/// irq. Everything else is the core's real [`MsiDomain`]; the plan is built from the
/// public step type.
pub struct BaseOnlyBlockDomain(pub MsiDomain<SimBlockStorage>);

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

/// A minimal interrupt-remapping domain as the VT-d driver would provide: one IRTE per
/// irq, remappable messages (handle = hwirq), affinity by rewriting the IRTE in one update.
pub struct SimIrDomain {
    pub m: Shared,
    pub next: AtomicU32,
}

impl SimIrDomain {
    pub fn new(m: &Shared) -> Self {
        Self {
            m: m.clone(),
            next: AtomicU32::new(0),
        }
    }
}

impl Domain for SimIrDomain {
    fn size(&self) -> u32 {
        65536
    }
    fn translate(&self, s: &IrqSource) -> sluice_irq_core::Result<(HwIrq, Trigger)> {
        Ok((0, s.trigger()))
    }
    fn alloc(&self, _v: Virq, nr: u32, _s: &IrqSource) -> sluice_irq_core::Result<HwIrq> {
        Ok(self.next.fetch_add(nr, Ordering::Relaxed) as HwIrq)
    }
    fn free(&self, _v: Virq, h: HwIrq, _nr: u32) {
        self.m.lock().unwrap().irte.remove(&(h as u32));
    }
    fn activate(&self, d: &LevelCtx, _msg: &MsiMsg) -> sluice_irq_core::Result<()> {
        self.m
            .lock()
            .unwrap()
            .irte
            .insert(d.hwirq as u32, (d.target.apic_id, d.target.vector.0));
        Ok(())
    }
}

impl Chip for SimIrDomain {
    fn name(&self) -> &str {
        "INTEL-IR"
    }
    fn compose_msi_msg(
        &self,
        d: &LevelCtx,
        _t: &Target,
    ) -> sluice_irq_core::Result<Option<MsiMsg>> {
        // Remappable format: handle in bits 19:5, format bit 4 (VT-d §5.1.5.2); an I/O
        // APIC's subhandle (the pin) in the data word.
        let data = match d.source {
            IrqSource::IoApic { pin, .. } => pin,
            _ => 0,
        };
        Ok(Some(MsiMsg {
            addr_lo: 0xFEE0_0000 | (d.hwirq as u32) << 5 | 1 << 4,
            addr_hi: 0,
            data,
        }))
    }
    fn set_affinity(
        &self,
        d: &LevelCtx,
        m: &AffinityMsgs,
    ) -> sluice_irq_core::Result<Option<StepPlan>> {
        Ok(Some(plan_msi_update(
            MsiPath::Remapped,
            d,
            d.hwirq as u32,
            m,
        )))
    }
    fn exec_step(
        &self,
        d: &LevelCtx,
        _i: u32,
        step: &Step,
        _msg: &MsiMsg,
    ) -> sluice_irq_core::Result<()> {
        match step {
            Step::UpdateRoute => {
                let mut m = self.m.lock().unwrap();
                m.irte
                    .insert(d.hwirq as u32, (d.target.apic_id, d.target.vector.0));
                m.after_write();
                Ok(())
            }
            _ => Err(IrqError::Unsupported),
        }
    }
    fn mask(&self, _d: &LevelCtx) -> sluice_irq_core::Result<ChipOp> {
        Ok(ChipOp::Delegate)
    }
}

/// The redirection table of a simulated I/O APIC whose every pin is wired to one device:
/// each register write lands at once, and the device may fire right after it. The chip
/// driving it is the core's real [`sluice_irq_core::ioapic::IoApicDomain`].
pub struct SimRteStorage {
    pub m: Shared,
    pub dev: usize,
}

impl RteStorage for SimRteStorage {
    fn pins(&self) -> u32 {
        24
    }
    fn read(&self, _pin: u32) -> Rte {
        self.m.lock().unwrap().devices[self.dev].rte
    }
    fn write_low(&self, _pin: u32, v: u32) {
        let mut m = self.m.lock().unwrap();
        m.devices[self.dev].rte.low = v;
        m.after_write();
    }
    fn write_high(&self, _pin: u32, v: u32) {
        let mut m = self.m.lock().unwrap();
        m.devices[self.dev].rte.high = v;
        m.after_write();
    }
}

/// WRONG on purpose, for the counter-example only: an MSI domain whose affinity change
/// rewrites address and data in one pass (on the old CPU with interrupts off, as the
/// two-step path runs, so the difference is only the order of the writes). The core
/// never builds such a plan; this test-only type builds it from the public step type.
pub struct NaiveMsiDomain(pub MsiDomain<SimMsiStorage>);

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
/// ([`LocalApic::before_irr_scan`]) — exactly as if step 4 of the migration were left out.
pub struct NoRedeliveryApic {
    pub inner: SimApic,
    pub scanning: bool,
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

/// An interrupt a CPU has begun and whose handler has not returned yet: the CPU runs it
/// with interrupts off (an interrupt gate), so it takes nothing else meanwhile.
#[derive(Clone, Debug)]
pub struct InFlight {
    pub cpu: usize,
    pub vector: u8,
    pub virq: Virq,
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
/// vector, spurious, ignored, or left pending for a replay), and `Some(Some(f))` if a
/// handler must now run: finish it with [`end_delivery`].
pub fn begin_delivery(core: &IrqCore, m: &Shared, cpu: usize) -> Option<Option<InFlight>> {
    let (vector, tokens) = {
        let mut mm = m.lock().unwrap();
        let v = mm.deliverable(cpu)?;
        let tokens = mm.cpus[cpu].irr.remove(&v).unwrap_or_default();
        mm.cpus[cpu].isr.push(v);
        (v, tokens)
    };
    let mut apic = SimApic { m: m.clone(), cpu };
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
            Some(Some(InFlight {
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
            if let sluice_irq_core::routes::Slot::Irq(virq) = routed
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
pub fn end_delivery(core: &IrqCore, m: &Shared, f: InFlight) {
    let mut apic = SimApic {
        m: m.clone(),
        cpu: f.cpu,
    };
    let mut ran_for = vec![f.token];
    let mut tokens = f.tokens;
    // The handler services whatever its device has pending, replays included.
    tokens.extend(
        m.lock()
            .unwrap()
            .pending_tokens
            .remove(&f.virq)
            .unwrap_or_default(),
    );
    while let Ok(FlowEnd::RunAgain { token }) = core.end_irq(f.virq, IrqReturn::Handled, &mut apic)
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
        tokens.extend(mm.pending_tokens.remove(&f.virq).unwrap_or_default());
    }
    let mut mm = m.lock().unwrap();
    mm.cpus[f.cpu].irqs_on = true;
    // Every run (the first and each replay) must have had a firing of its own device to
    // service; IRR coalescing may give one run several, never the other way round.
    let runs = ran_for.len() as u32;
    let own = tokens
        .iter()
        .filter(|&&t| mm.token_handler[t as usize] == f.token)
        .count() as u32;
    if runs > own {
        mm.extra_runs.push((f.token, runs - own, f.cpu, f.vector));
    }
    settle(&mut mm, f.cpu, f.vector, tokens, &ran_for, "handler ran");
}

/// Deliver the highest deliverable interrupt on `cpu` through the core, entry and exit
/// back to back, settling tokens. Handler tokens are device indices.
pub fn deliver(core: &IrqCore, m: &Shared, cpu: usize) -> bool {
    match begin_delivery(core, m, cpu) {
        None => false,
        Some(None) => true,
        Some(Some(f)) => {
            end_delivery(core, m, f);
            true
        }
    }
}

/// One thing that can happen next in a two-CPU schedule: the test's own script moves a
/// step, the device fires, a CPU takes its highest pending interrupt, or a CPU's timer
/// tick retries a deferred vector cleanup.
#[derive(Clone, Copy, Debug)]
pub enum Event {
    Script,
    Fire,
    /// Member `j` of device 0 (a multi-message device) fires.
    FireMember(u32),
    /// Another plain device (not device 0) fires: a second source on the same CPUs.
    FireOther(usize),
    Deliver(usize),
    CleanupTimer(usize),
}

impl Event {
    /// One letter per event, for a schedule's trail in failure messages.
    pub fn letter(self) -> char {
        match self {
            Event::Script => 'S',
            Event::Fire => 'F',
            Event::FireMember(j) => char::from(b'a' + j as u8),
            Event::FireOther(_) => 'z',
            Event::Deliver(0) => '0',
            Event::Deliver(_) => '1',
            Event::CleanupTimer(_) => 'T',
        }
    }
}

/// The events enabled now on CPUs 0 and 1. A cleanup tick is only enabled once the CPU
/// has no interrupt left to take: fairness, since a tick comes long after pending
/// interrupts were taken.
pub fn enabled_events(m: &Shared, script_pending: bool, fires_left: u32) -> Vec<Event> {
    enabled_events_of(m, script_pending, fires_left, &[])
}

/// [`enabled_events`] for a multi-message device 0 whose members `members` may each fire
/// (a plain device when `members` is empty).
pub fn enabled_events_of(
    m: &Shared,
    script_pending: bool,
    fires_left: u32,
    members: &[u32],
) -> Vec<Event> {
    enabled_events_with(m, script_pending, fires_left, members, &[])
}

/// [`enabled_events_of`] where the plain devices `others` may fire too, out of the same
/// budget of firings.
pub fn enabled_events_with(
    m: &Shared,
    script_pending: bool,
    fires_left: u32,
    members: &[u32],
    others: &[usize],
) -> Vec<Event> {
    let mut en = Vec::new();
    if script_pending {
        en.push(Event::Script);
    }
    if fires_left > 0 {
        if members.is_empty() {
            en.push(Event::Fire);
        }
        en.extend(members.iter().map(|&j| Event::FireMember(j)));
        en.extend(others.iter().map(|&d| Event::FireOther(d)));
    }
    let mm = m.lock().unwrap();
    for c in 0..2 {
        if mm.deliverable(c).is_some() {
            en.push(Event::Deliver(c));
        }
        if mm.cleanup_pending_timer[c] && mm.cpus[c].irqs_on && mm.deliverable(c).is_none() {
            en.push(Event::CleanupTimer(c));
        }
    }
    en
}

/// Runs a hardware event (anything but `Script`, which belongs to the test): device 0
/// fires, a CPU takes an interrupt through the core, or a tick retries cleanup.
pub fn run_hardware_event(core: &IrqCore, m: &Shared, ev: Event, fires_left: &mut u32) {
    match ev {
        Event::Script => unreachable!("the test runs its own script"),
        Event::Fire => {
            *fires_left -= 1;
            m.lock().unwrap().fire(0);
        }
        Event::FireMember(j) => {
            *fires_left -= 1;
            m.lock().unwrap().fire_member(0, j);
        }
        Event::FireOther(d) => {
            *fires_left -= 1;
            m.lock().unwrap().fire(d);
        }
        Event::Deliver(c) => {
            deliver(core, m, c);
        }
        Event::CleanupTimer(c) => {
            let mut apic = SimApic {
                m: m.clone(),
                cpu: c,
            };
            let out = core.vector_cleanup(&mut apic);
            m.lock().unwrap().cleanup_pending_timer[c] = out.retry > 0;
        }
    }
}

/// Who fires: a plain device, or member `j` of a multi-message device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Device(usize),
    Member(usize, u32),
}

/// Before one atomic call of the core (a plan run by its IPI, a migration): if firings
/// are left, the explorer picks whether one of `sources` fires right after one of the
/// call's first `points` hardware writes or IRR reads, and after which. Returns the token
/// count to hand to [`fired_inside`].
pub fn let_fire_inside(
    ex: &mut Explorer,
    m: &Shared,
    fires_left: u32,
    sources: &[Source],
    points: usize,
) -> usize {
    let at = if fires_left > 0 && !sources.is_empty() {
        ex.pick(1 + points * sources.len())
    } else {
        0
    };
    let mut mm = m.lock().unwrap();
    if at > 0 {
        let k = mm.writes + (at - 1) / sources.len() + 1;
        match sources[(at - 1) % sources.len()] {
            Source::Device(d) => mm.fire_after_write.push((k, d)),
            Source::Member(d, j) => mm.fire_member_after_write.push((k, d, j)),
        }
    }
    mm.token_dev.len()
}

/// After the call: did a source fire inside it? A pick beyond the call's last write
/// never fired and is dropped.
pub fn fired_inside(m: &Shared, before: usize) -> bool {
    let mut mm = m.lock().unwrap();
    mm.fire_after_write.clear();
    mm.fire_member_after_write.clear();
    mm.token_dev.len() > before
}

/// Stateless exhaustive exploration: `run(choices)` executes one schedule, calling
/// `pick(n)` at each decision point with n enabled options; we enumerate all sequences.
pub struct Explorer {
    prefix: Vec<(usize, usize)>,
    pos: usize,
}

impl Explorer {
    pub fn pick(&mut self, n: usize) -> usize {
        assert!(n > 0);
        if self.pos < self.prefix.len() {
            let c = self.prefix[self.pos].0;
            self.pos += 1;
            return c;
        }
        self.prefix.push((0, n));
        self.pos += 1;
        0
    }
}

/// Explore every schedule; `body` returns Err(description) for a bad run. Returns
/// (schedules explored, failing descriptions).
pub fn explore(
    mut body: impl FnMut(&mut Explorer) -> Result<(), String>,
    limit: usize,
) -> (usize, Vec<String>) {
    let mut ex = Explorer {
        prefix: Vec::new(),
        pos: 0,
    };
    let mut runs = 0;
    let mut fails = Vec::new();
    loop {
        ex.pos = 0;
        runs += 1;
        if let Err(e) = body(&mut ex) {
            fails.push(e);
        }
        ex.prefix.truncate(ex.pos);
        // Backtrack: bump the deepest choice that has options left.
        while let Some(&(c, n)) = ex.prefix.last() {
            if c + 1 < n {
                ex.prefix.last_mut().unwrap().0 += 1;
                break;
            }
            ex.prefix.pop();
        }
        if ex.prefix.is_empty() || runs >= limit {
            return (runs, fails);
        }
    }
}
