//! The simulated machine: CPUs (`apic.rs`), devices whose message words are separate
//! writes and that can fire between any two of them, the bus their messages travel
//! (`bus.rs`), and the bookkeeping of every firing.
//!
//! A multi-message device (multi-MSI) has one message and several members: member `j`
//! sends that message with `j` ORed into the data word, each member has its own mask and
//! pending bit, and each is handled by its own irq's handler ([`member_token`]).
//!
//! Every device firing creates a *token*. Tokens travel with their message, ride with the
//! IRR bit it sets, move with a retrigger IPI, and are settled when the bit is delivered:
//! handled by the right device's handler (good), or dropped on a spurious/ignored slot or
//! taken by another device's handler (lost / misrouted). A run passes if every token is
//! handled exactly once *and* no handler runs more often than its device raised
//! interrupts (`verdict.rs`).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};

use sluice_irq_core::Virq;
use sluice_irq_core::msi::MsiMsg;
use sluice_irq_core::queued::QueuedEntry;

use crate::apic::Cpu;
use crate::bus::{Bus, Via};
use crate::ioapic::IoApicModel;
use crate::lines::Line;
use crate::pci::fake::FakeConfig;
use crate::pci::function::MsiFunction;

/// One firing of a device, numbered in firing order; the verdict counts its handlings.
pub type Token = u32;

/// The machine, shared by the simulated APICs, storages and the test.
pub type Shared = Arc<Mutex<Machine>>;

/// A device that sends MSI messages.
#[derive(Clone, Debug, Default)]
pub struct Device {
    /// The message it sends, as its storage last took it.
    pub msg: MsiMsg,
    /// It has a mask bit (MSI-X, or MSI with per-vector masking).
    pub maskable: bool,
    /// Its mask bit is set.
    pub masked: bool,
    /// PCI pending bit: set when firing while masked, sent on unmask.
    pub pending: Option<Token>,
    /// An I/O APIC input rather than an MSI (`lines.rs`): the pin its wire goes to; the
    /// message is whatever that pin's redirection entry says when it sends.
    pub line: Option<Line>,
    /// Multi-MSI: number of members (0: a plain device). Member `j` sends `msg` with `j`
    /// ORed into the data word.
    pub members: u32,
    /// Multi-MSI with per-vector masking: bit `j` set = member `j` masked.
    pub member_masked: u32,
    /// Multi-MSI: member `j`'s pending bit (fired while masked), sent on unmask.
    pub member_pending: BTreeMap<u32, Token>,
    /// The id its messages carry to the remapping unit: a PCI function's requester id,
    /// an I/O APIC's source-id from the DMAR.
    pub requester: u16,
    /// A PCI function with an MSI capability (`pci/function.rs`): its message, masks and
    /// pending bits are its registers in [`Machine::config`], and the fields above for
    /// them are unused.
    pub msi: Option<MsiFunction>,
}

/// The handler token the test requests member `j` of device `dev` with: a firing of
/// that member must be handled by exactly that handler.
pub fn member_token(dev: usize, j: u32) -> u64 {
    1000 + dev as u64 * 64 + u64::from(j)
}

/// How an I/O APIC input is wired on the board.
#[derive(Clone, Copy, Debug, Default)]
pub struct Wire {
    /// Active low (else active high).
    pub active_low: bool,
    /// Level-triggered (else edge).
    pub level: bool,
}

/// Who fires: a plain device, or member `j` of a multi-message device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Device `i`.
    Device(usize),
    /// Member `j` of multi-message device `i`.
    Member(usize, u32),
}

/// The whole simulated machine: CPUs, devices, lines, messages and the bookkeeping the verdict reads.
#[derive(Default, Debug)]
pub struct Machine {
    /// The CPUs, by number.
    pub cpus: Vec<Cpu>,
    /// The devices, by number.
    pub devices: Vec<Device>,
    /// The PCI functions' configuration space, as their registers hold it (writes still
    /// on their way are not in it).
    pub config: FakeConfig,
    /// The I/O APICs, by id (`lines.rs`).
    pub ioapics: BTreeMap<u8, IoApicModel>,
    /// Messages on their way, and the remapping unit they pass through.
    pub bus: Bus,
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
    /// Per CPU: a cleanup left a vector behind and its retry timer is armed.
    pub cleanup_pending_timer: Vec<bool>,
    /// Deliveries the core's entry reported spurious (nothing bound to the vector).
    pub spurious_seen: u32,
    /// (later token, token whose pending message it coalesced into)
    pub coalesced: Vec<(Token, Token)>,
    /// Token-less IPIs (cleanup, empty retriggers) sent to a soft-disabled APIC.
    pub dropped_ipis: u32,
    /// Device-visible hardware writes and IRR reads so far (MSI words, RTE halves, IRTE
    /// stores, `irr_pending`): the points where a schedule may slip a device firing in.
    pub writes: usize,
    /// (write number, source): fire `source` right after that write — lets a schedule put
    /// a device firing *inside* one atomic call of the core (hotplug migration).
    pub fire_after_write: Vec<(usize, Source)>,
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
    pub replay_armed: BTreeSet<usize>,
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
    pub commands: VecDeque<(usize, QueuedEntry, u64)>,
    /// Tickets below this have completed.
    pub tickets_done: u64,
    /// The next ticket handed out.
    pub next_ticket: u64,
    /// (device, irq): at the end of a schedule the verdict checks that the device sends
    /// where the core says the irq is ([`Machine::route_disagreements`]).
    pub watched_routes: Vec<(usize, Virq)>,
    /// (cpu, vector) of every IRR bit software looked at (the core's IRR checks, a
    /// retrigger moving what a bit carries, a delivery taking the bit), for the
    /// explorer's reduction; it empties it.
    pub irr_reads: Vec<(usize, u8)>,
}

impl Machine {
    /// A machine with `cpus` CPUs (interrupts on, APICs enabled) whose messages reach
    /// the APIC as they are sent; [`Bus::timing`] says otherwise.
    pub fn new(cpus: usize) -> Shared {
        let m = Machine {
            cpus: vec![Cpu::running(); cpus],
            cleanup_pending_timer: vec![false; cpus],
            ..Machine::default()
        };
        Arc::new(Mutex::new(m))
    }

    fn push_device(&mut self, d: Device) -> usize {
        self.devices.push(Device {
            requester: 0xffff,
            ..d
        });
        self.devices.len() - 1
    }

    /// Adds a device with a zero message, unmasked; returns its number.
    pub fn add_device(&mut self, maskable: bool) -> usize {
        self.push_device(Device {
            maskable,
            ..Device::default()
        })
    }

    /// A multi-message MSI device with `members` members (its message starts zero).
    pub fn add_block_device(&mut self, maskable: bool, members: u32) -> usize {
        self.push_device(Device {
            maskable,
            members,
            ..Device::default()
        })
    }

    /// A new token for a firing of `dev`, to be handled by `handler`.
    fn new_token(&mut self, dev: usize, handler: u64) -> Token {
        let token = self.token_dev.len() as Token;
        self.token_dev.push(dev);
        self.token_handler.push(handler);
        self.handled.push(0);
        token
    }

    pub(crate) fn fail(&mut self, token: Option<Token>, why: &str) {
        self.failures.push(format!("token {token:?}: {why}"));
    }

    /// `source` sends its interrupt now.
    pub fn fire_source(&mut self, source: Source) -> Token {
        self.fire_source_via(source, &mut Via::Lock)
    }

    pub(crate) fn fire_source_via(&mut self, source: Source, via: &mut Via) -> Token {
        match source {
            Source::Device(d) => self.fire_via(d, via),
            Source::Member(d, j) => self.fire_member_via(d, j, via),
        }
    }

    /// The device sends its interrupt now, reading whatever its words hold.
    pub fn fire(&mut self, dev: usize) -> Token {
        self.fire_via(dev, &mut Via::Lock)
    }

    fn fire_via(&mut self, dev: usize, via: &mut Via) -> Token {
        let token = self.new_token(dev, dev as u64);
        if self.devices[dev].msi.is_some() {
            self.fire_msi(dev, 0, token, via);
            return token;
        }
        if self.devices[dev].line.is_some() {
            self.fire_line(dev, token, via);
            return token;
        }
        let d = &mut self.devices[dev];
        if d.maskable && d.masked {
            // Masked: the pending bit holds it (PCI 3.0 §6.8.3.5); a second firing while
            // masked coalesces into the one pending message.
            let first = *d.pending.get_or_insert(token);
            if first != token {
                self.coalesced.push((token, first));
            }
            return token;
        }
        let msg = d.msg;
        self.post_via(dev, msg, Some(token), via);
        token
    }

    /// Member `j` of multi-message device `dev` sends its interrupt now: the one message
    /// with `j` in the low data bits (PCI 3.0 §6.8.1.6), or its pending bit if masked.
    pub fn fire_member(&mut self, dev: usize, j: u32) -> Token {
        self.fire_member_via(dev, j, &mut Via::Lock)
    }

    fn fire_member_via(&mut self, dev: usize, j: u32, via: &mut Via) -> Token {
        let token = self.new_token(dev, member_token(dev, j));
        if self.devices[dev].msi.is_some() {
            self.fire_msi(dev, j, token, via);
            return token;
        }
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
        self.post_via(dev, msg, Some(token), via);
        token
    }

    /// The oldest queued command completes: the device now holds (and sends) what it
    /// said; an interrupt it held while masked goes out if it is unmasked now. The
    /// device reports the completion with a posted write of its own, which passes none of
    /// the messages it sent before (PCI Express Base §2.4.1): whoever sees the command
    /// completed finds those arrived.
    pub fn complete_command(&mut self) -> bool {
        let Some((dev, e, t)) = self.commands.pop_front() else {
            return false;
        };
        self.flush(dev);
        self.tickets_done = t + 1;
        let d = &mut self.devices[dev];
        d.msg = e.msg;
        d.masked = e.masked;
        if !e.masked
            && let Some(token) = d.pending.take()
        {
            let msg = d.msg;
            self.post(dev, msg, Some(token));
        }
        true
    }

    /// Count one write or IRR read and fire whatever a schedule put right after it.
    pub fn after_write(&mut self) {
        self.after_write_via(&mut Via::Lock);
    }

    pub(crate) fn after_write_via(&mut self, via: &mut Via) {
        self.writes += 1;
        let n = self.writes;
        let due: Vec<Source> = self
            .fire_after_write
            .iter()
            .filter(|(k, _)| *k == n)
            .map(|(_, s)| *s)
            .collect();
        self.fire_after_write.retain(|(k, _)| *k != n);
        for s in due {
            self.fire_source_via(s, via);
        }
    }

    /// The message device `dev` sends now (member 0's for a multi-message device), as
    /// its storage holds it; `None` if it cannot send at all (an I/O APIC input masked).
    pub fn message_of(&self, dev: usize) -> Option<MsiMsg> {
        let d = &self.devices[dev];
        if d.msi.is_some() {
            return self.msi_message(dev);
        }
        if d.line.is_none() {
            return Some(d.msg);
        }
        let e = self.rte(dev);
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
                &sluice_irq_core::msi::CompatMsi::fixed(
                    e.dest(),
                    sluice_irq_core::Vector(e.vector()),
                ),
                sluice_irq_core::msi::DestFormat::ExtDest15,
            )
            .unwrap_or_default()
        })
    }

    /// Is device `dev` masked at its storage (a maskable MSI, or an I/O APIC input)?
    /// `None` for storage without a mask.
    pub fn storage_masked(&self, dev: usize) -> Option<bool> {
        let d = &self.devices[dev];
        if d.msi.is_some() {
            return if d.members == 0 {
                self.msi_masked(dev)
            } else {
                None
            };
        }
        match d.line {
            Some(_) => Some(self.rte(dev).masked()),
            None if d.maskable && d.members == 0 => Some(d.masked),
            None => None,
        }
    }
}
