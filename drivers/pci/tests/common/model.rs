//! A model device for the message-storage tests: one function with an MSI or an MSI-X
//! capability in a simulated configuration space (`fake.rs`), an MSI-X table and Pending
//! Bit Array behind MMIO, a log of every hardware access the storage makes (writes with
//! their width), the link between the CPU and the function (`link.rs`), and a device
//! that can send its interrupt at any moment.
//!
//! **Sending** reads the function's state *at that moment*, as hardware does (PCI Local
//! Bus 3.0 §6.8.3; QEMU's `msi_notify` and `msix_notify` do the same):
//!
//! * MSI: nothing unless Enable is set, and only members below 2^Multiple Message Enable;
//!   with per-vector masking, a masked member sets its Pending Bit instead of sending;
//!   otherwise the message is the address registers and the data register with the low
//!   k bits replaced by the member number (2^k members enabled). Without per-vector
//!   masking nothing is ever held back and nothing latches.
//! * MSI-X: nothing unless Enable is set; an entry masked by its own Vector Control bit
//!   or by the Function Mask sets its PBA bit instead; otherwise the entry's three words.
//!
//! Whenever a write lands, the device sends each member or entry that is pending and no
//! longer masked (clearing its bit): an unmask releases what was held.
//!
//! **Timing** is one of two:
//!
//! * [`Timing::Immediate`] — QEMU's: a write lands when the CPU makes it, a message
//!   arrives when the device sends it, and the device fires only when a test calls
//!   [`Machine::fire`]. Set-up and the tests of single methods run so.
//! * [`Timing::Explored`] — a PC's: writes are posted and messages are in flight (the
//!   ordering rules are `link.rs`'s), and in the gap before every CPU action (each
//!   configuration or MMIO access, and each CPU-side step the test announces with
//!   [`Machine::cpu_step`]) the [`Scheduler`] picks what happens on the bus: the device
//!   fires a member (at most `max_fires` per run), a posted write lands, messages arrive.
//!   A read lands what it must and pushes every message in flight before it is answered.
//!   Every run of the test picks differently, until every combination was run.
//!
//! Only placements that something can tell apart are offered, so the runs stay
//! countable without hiding a behaviour:
//!
//! * a write lands in a gap only if the device fires after it in that gap, or the next
//!   CPU action looks at the bus (an IRR check): landing earlier with nothing looking is
//!   the same run as landing at the next firing, the next such check, the next read of
//!   the function (which lands it anyway) or the end (where everything lands);
//! * messages arrive (any number, oldest first) only in the gap before a CPU action that
//!   looks at what arrived; elsewhere an arrival is seen by nothing before the next read
//!   pushes it or the run ends;
//! * firings go anywhere, in any order, landings interleaved between them.
//!
//! Points: the gap before CPU action `p` (0-based, counted since the log was cleared) is
//! point `p`, and so are the events in it; an arrival a read forces is at the read's
//! point; what the end drains is at the point after the last action. So a message
//! arrived before action `P` looked iff its point is ≤ `P`.
//!
//! The storage reaches the model through [`Model`] (a `ConfigHandle` that locks the
//! machine for one operation) and [`ModelMmio`] (a `MmioRegion` on the table or PBA).
//! Writes the storage must never make — to the read-only Pending Bits or PBA, outside
//! the capability (Command aside), misaligned or outside the table — are recorded as
//! violations.

#![allow(dead_code)]

use std::sync::{Arc, Mutex, MutexGuard};

use sluice_irq_core::msi::MsiMsg;
use sluice_pci::capability::id;
use sluice_pci::msix::table_entry;
use sluice_pci::{
    ConfigAccess, ConfigHandle, ConfigOffset, ConfigSize, Header, MmioRegion, MsiCapStorage,
    MsiCapability, MsiControl, MsixCapability, MsixControl, MsixTableStorage, PciAddress, Refusal,
    Width, walk_capabilities,
};

use super::schedule::Scheduler;
use sluice_sim::pci::fake::{FakeConfig, FakeFunction, addr};
use sluice_sim::pci::link::{InFlight, Link, Path};
use sluice_sim::pci::msi::{self as msi_fn, Fired};

/// Where the model function sits.
pub const AT: &str = "00:05.0";

/// Command and Status as the dword the crate writes Command through.
const COMMAND_OFFSET: u16 = 0x04;

/// Which MMIO structure an access is to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Region {
    Table,
    Pba,
}

/// One hardware write, as the storage made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HwWrite {
    Config {
        offset: u16,
        width: Width,
        value: u32,
    },
    Mmio {
        region: Region,
        offset: u64,
        value: u32,
    },
}

impl HwWrite {
    /// The MSI-X table entry this write touched, if it is a table write.
    pub fn table_entry(&self) -> Option<u32> {
        match *self {
            HwWrite::Mmio {
                region: Region::Table,
                offset,
                ..
            } => Some((offset / u64::from(table_entry::SIZE)) as u32),
            _ => None,
        }
    }

    fn path(&self) -> Path {
        match self {
            HwWrite::Config { .. } => Path::Config,
            HwWrite::Mmio { .. } => Path::Memory,
        }
    }
}

/// What became of one firing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The message went out at once.
    Sent,
    /// Masked: the pending bit was set (sent later, on unmask).
    Latched,
    /// The capability is not enabled (or the member is beyond Multiple Message Enable):
    /// the function does not use this message at all.
    NotEnabled,
}

/// A message the device sent: which member (MSI member or MSI-X entry), and the words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message {
    pub member: u32,
    pub msg: MsiMsg,
}

/// What happened, in order. `point`: see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The device had interrupt `member` to send.
    Fire {
        member: u32,
        outcome: Outcome,
        point: usize,
    },
    /// A message left the device; `released`: from its pending bit, on unmask; `landed`:
    /// how many of the writes issued since the log was cleared had landed then.
    Sent {
        id: usize,
        member: u32,
        msg: MsiMsg,
        released: bool,
        landed: usize,
        point: usize,
    },
    /// A posted write reached the function; `early`: in a gap, before the read or the
    /// end that would have landed it.
    Landed {
        write: HwWrite,
        point: usize,
        early: bool,
    },
    /// Message `id` reached the CPU side; `pushed`: by a read completion.
    Arrived {
        id: usize,
        point: usize,
        pushed: bool,
    },
    /// A CPU-side step the test announced; `observes`: it looks at what has arrived.
    Cpu { point: usize, observes: bool },
}

/// What the CPU does next: the gap before it is filled knowing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// A read of the function (it lands what it must and pushes every message).
    Read(Path),
    /// A write (posted).
    Write,
    /// A CPU-side step that looks at what has arrived and what is still posted.
    Observe,
    /// A CPU-side step that looks at nothing on the bus.
    Quiet,
    /// The end of the run: everything lands, then everything arrives.
    End,
}

/// How writes and messages travel (see the module documentation).
pub enum Timing {
    Immediate,
    Explored(Exploration),
}

/// The explored timing's state: who may fire, how often, and the picks.
pub struct Exploration {
    pub scheduler: Scheduler,
    /// Members or entries that may fire.
    pub members: Vec<u32>,
    pub max_fires: usize,
    fired: usize,
}

/// One pick in a gap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pick {
    Proceed,
    Fire(u32),
    Land(Path),
}

/// The link as a CPU-side step sees it: writes not landed, messages not arrived.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BusView {
    /// The step's point.
    pub point: usize,
    pub posted: Vec<HwWrite>,
    pub in_flight: Vec<InFlight<Message>>,
}

/// Which capability the function has, and the MSI-X structures' contents.
pub enum Kind {
    Msi(MsiCapability),
    Msix {
        cap: MsixCapability,
        table: Vec<u32>,
        pba: Vec<u32>,
    },
}

/// The function, its device, its link, and everything they saw.
pub struct Machine {
    /// The configuration space as the function holds it (landed writes only).
    pub config: FakeConfig,
    pub address: PciAddress,
    pub kind: Kind,
    /// Every hardware write the storage made, in the order issued.
    pub writes: Vec<HwWrite>,
    /// How many of them landed.
    pub landed: usize,
    /// Configuration and MMIO reads the storage made.
    pub reads: usize,
    /// CPU actions (accesses and announced steps) since the log was cleared: the point
    /// of the next gap.
    pub actions: usize,
    pub events: Vec<Event>,
    link: Link<HwWrite, Message>,
    timing: Timing,
    pub violations: Vec<String>,
    /// What the storage reported through `ConfigHandle::refused`.
    pub refusals: Vec<Refusal>,
}

impl Machine {
    fn msi(&self) -> MsiCapability {
        match self.kind {
            Kind::Msi(cap) => cap,
            Kind::Msix { .. } => panic!("not an MSI function"),
        }
    }

    fn raw16(&self, offset: u16) -> u16 {
        self.config.function(AT).get16(usize::from(offset))
    }

    /// Command as the function holds it.
    pub fn command(&self) -> u16 {
        self.raw16(COMMAND_OFFSET)
    }

    // ----- MSI ------------------------------------------------------------------

    /// Message Control now.
    pub fn msi_control(&self) -> MsiControl {
        msi_fn::control(self.config.function(AT), &self.msi())
    }

    /// Members the function may send now (2^Multiple Message Enable), 0 if disabled.
    pub fn msi_enabled_members(&self) -> u32 {
        msi_fn::enabled_members(self.config.function(AT), &self.msi())
    }

    /// Mask Bits and Pending Bits now (0 without per-vector masking).
    pub fn msi_mask_bits(&self) -> u32 {
        msi_fn::mask_bits(self.config.function(AT), &self.msi())
    }
    pub fn msi_pending_bits(&self) -> u32 {
        msi_fn::pending_bits(self.config.function(AT), &self.msi())
    }

    /// The message member `member` would carry now (the data's low k bits are the member
    /// number, with 2^k members enabled).
    pub fn msi_message(&self, member: u32) -> MsiMsg {
        msi_fn::message(self.config.function(AT), &self.msi(), member)
    }

    fn msi_fire(&mut self, member: u32) -> (Outcome, Option<MsiMsg>) {
        let cap = self.msi();
        match msi_fn::fire(self.config.function_mut(AT), &cap, member) {
            Fired::NotEnabled => (Outcome::NotEnabled, None),
            Fired::Latched => (Outcome::Latched, None),
            Fired::Sent(msg) => (Outcome::Sent, Some(msg)),
        }
    }

    fn msi_release(&mut self) {
        let cap = self.msi();
        for (member, msg) in msi_fn::release(self.config.function_mut(AT), &cap) {
            self.send(member, msg, true);
        }
    }

    // ----- MSI-X ----------------------------------------------------------------

    fn msix_cap(&self) -> MsixCapability {
        match self.kind {
            Kind::Msix { cap, .. } => cap,
            Kind::Msi(_) => panic!("not an MSI-X function"),
        }
    }

    /// Message Control now.
    pub fn msix_control(&self) -> MsixControl {
        MsixControl(self.raw16(self.msix_cap().control_register().offset()))
    }

    /// Table dword `i` (entry i / 4, word i % 4).
    pub fn table(&self) -> &[u32] {
        match &self.kind {
            Kind::Msix { table, .. } => table,
            Kind::Msi(_) => panic!("not an MSI-X function"),
        }
    }

    /// Sets table dword `i` behind the storage's back (as firmware or reset left it).
    pub fn set_table(&mut self, i: usize, value: u32) {
        if let Kind::Msix { table, .. } = &mut self.kind {
            table[i] = value;
        }
    }

    pub fn pba(&self) -> &[u32] {
        match &self.kind {
            Kind::Msix { pba, .. } => pba,
            Kind::Msi(_) => panic!("not an MSI-X function"),
        }
    }

    /// Entry `e`'s message as the table holds it.
    pub fn msix_message(&self, e: u32) -> MsiMsg {
        let t = &self.table()[e as usize * 4..];
        MsiMsg {
            addr_lo: t[0],
            addr_hi: t[1],
            data: t[2],
        }
    }

    /// Entry `e`'s own mask bit.
    pub fn msix_entry_masked(&self, e: u32) -> bool {
        self.table()[e as usize * 4 + 3] & table_entry::VECTOR_CONTROL_MASKED != 0
    }

    pub fn msix_pending(&self, e: u32) -> bool {
        self.pba()[e as usize / 32] & (1 << (e % 32)) != 0
    }

    fn set_msix_pending(&mut self, e: u32, on: bool) {
        if let Kind::Msix { pba, .. } = &mut self.kind {
            let bit = 1 << (e % 32);
            if on {
                pba[e as usize / 32] |= bit;
            } else {
                pba[e as usize / 32] &= !bit;
            }
        }
    }

    fn msix_masked_now(&self, e: u32) -> bool {
        self.msix_control().function_masked() || self.msix_entry_masked(e)
    }

    fn msix_fire(&mut self, e: u32) -> (Outcome, Option<MsiMsg>) {
        if !self.msix_control().enabled() || e >= self.msix_cap().table_size() {
            return (Outcome::NotEnabled, None);
        }
        if self.msix_masked_now(e) {
            self.set_msix_pending(e, true);
            return (Outcome::Latched, None);
        }
        (Outcome::Sent, Some(self.msix_message(e)))
    }

    fn msix_release(&mut self) {
        if !self.msix_control().enabled() {
            return;
        }
        for e in 0..self.msix_cap().table_size() {
            if self.msix_pending(e) && !self.msix_masked_now(e) {
                self.set_msix_pending(e, false);
                let msg = self.msix_message(e);
                self.send(e, msg, true);
            }
        }
    }

    // ----- the device -----------------------------------------------------------

    /// The device sends (or tries to send) member `member`'s interrupt now, from the
    /// state the function holds (writes landed so far).
    pub fn fire(&mut self, member: u32) -> Outcome {
        let (outcome, msg) = match self.kind {
            Kind::Msi(_) => self.msi_fire(member),
            Kind::Msix { .. } => self.msix_fire(member),
        };
        self.events.push(Event::Fire {
            member,
            outcome,
            point: self.actions,
        });
        if let Some(msg) = msg {
            self.send(member, msg, false);
        }
        outcome
    }

    /// A message leaves the device: onto the link, or (immediate timing) straight to the
    /// CPU side.
    fn send(&mut self, member: u32, msg: MsiMsg, released: bool) {
        let id = self.link.send(Message { member, msg });
        self.events.push(Event::Sent {
            id,
            member,
            msg,
            released,
            landed: self.landed,
            point: self.actions,
        });
        if matches!(self.timing, Timing::Immediate) {
            self.arrive_oldest(false);
        }
    }

    fn arrive_oldest(&mut self, pushed: bool) {
        if let Some(m) = self.link.arrive() {
            self.events.push(Event::Arrived {
                id: m.id,
                point: self.actions,
                pushed,
            });
        }
    }

    /// Is member / entry `m` masked at the function now (its own bit, or the MSI-X
    /// function mask)? Never, for MSI without per-vector masking.
    pub fn masked(&self, m: u32) -> bool {
        match self.kind {
            Kind::Msi(_) => self.msi_mask_bits() & (1 << m) != 0,
            Kind::Msix { .. } => self.msix_masked_now(m),
        }
    }

    /// Is member / entry `m`'s pending bit set?
    pub fn pending(&self, m: u32) -> bool {
        match self.kind {
            Kind::Msi(_) => self.msi_pending_bits() & (1 << m) != 0,
            Kind::Msix { .. } => self.msix_pending(m),
        }
    }

    /// The messages sent, in order: (member, message, released on unmask).
    pub fn sent(&self) -> Vec<(u32, MsiMsg, bool)> {
        self.events
            .iter()
            .filter_map(|e| match *e {
                Event::Sent {
                    member,
                    msg,
                    released,
                    ..
                } => Some((member, msg, released)),
                _ => None,
            })
            .collect()
    }

    /// Where message `id` arrived, if it did.
    pub fn arrival(&self, id: usize) -> Option<usize> {
        self.events.iter().find_map(|e| match *e {
            Event::Arrived { id: a, point, .. } if a == id => Some(point),
            _ => None,
        })
    }

    /// Forget the accesses and events so far (after set-up); the next gap is point 0.
    pub fn clear_log(&mut self) {
        self.writes.clear();
        self.landed = 0;
        self.reads = 0;
        self.actions = 0;
        self.events.clear();
    }

    // ----- timing ---------------------------------------------------------------

    /// From now on, hardware timing, with `scheduler`'s picks, `members` able to fire
    /// (at most `max_fires` firings); the log is cleared.
    pub fn explore(&mut self, scheduler: Scheduler, members: &[u32], max_fires: usize) {
        assert!(
            !self.link.has_posted() && self.link.in_flight_len() == 0,
            "explore from a settled link"
        );
        self.clear_log();
        self.timing = Timing::Explored(Exploration {
            scheduler,
            members: members.to_vec(),
            max_fires,
            fired: 0,
        });
    }

    /// Ends an explored run: the last gap, then every posted write lands and every
    /// message arrives; back to immediate timing. Returns the scheduler.
    pub fn finish(&mut self) -> Scheduler {
        self.gap(Next::End);
        for w in self.link.land_for_read(Path::Config) {
            self.apply(w, false);
        }
        while self.link.in_flight_len() > 0 {
            self.arrive_oldest(false);
        }
        match std::mem::replace(&mut self.timing, Timing::Immediate) {
            Timing::Explored(x) => x.scheduler,
            Timing::Immediate => panic!("finish without explore"),
        }
    }

    /// Lands every posted write and delivers every message (immediate timing stays).
    pub fn settle(&mut self) {
        for w in self.link.land_for_read(Path::Config) {
            self.apply(w, false);
        }
        while self.link.in_flight_len() > 0 {
            self.arrive_oldest(false);
        }
    }

    /// The link now.
    pub fn view(&self) -> BusView {
        BusView {
            point: self.actions,
            posted: self.link.posted().copied().collect(),
            in_flight: self.link.in_flight().copied().collect(),
        }
    }

    /// A CPU-side step that touches no hardware (a plan's claim, or its IRR check if
    /// `observes`): its gap, then what the link holds as it runs.
    pub fn cpu_step(&mut self, observes: bool) -> BusView {
        self.gap(if observes { Next::Observe } else { Next::Quiet });
        let view = self.view();
        self.events.push(Event::Cpu {
            point: self.actions,
            observes,
        });
        self.actions += 1;
        view
    }

    /// The gap before the next CPU action: the scheduler's picks (see the module
    /// documentation for which are offered).
    fn gap(&mut self, next: Next) {
        let Timing::Explored(_) = self.timing else {
            return;
        };
        let looks = next == Next::Observe;
        let mut after_landing = false;
        loop {
            let Timing::Explored(x) = &mut self.timing else {
                unreachable!()
            };
            let can_fire = x.fired < x.max_fires;
            let mut picks = Vec::new();
            if !after_landing || looks {
                picks.push(Pick::Proceed);
            }
            if can_fire {
                picks.extend(x.members.iter().map(|&m| Pick::Fire(m)));
            }
            if can_fire || looks {
                for path in [Path::Memory, Path::Config] {
                    if self.link.can_land(path) {
                        picks.push(Pick::Land(path));
                    }
                }
            }
            let Timing::Explored(x) = &mut self.timing else {
                unreachable!()
            };
            match picks[x.scheduler.choose(picks.len())] {
                Pick::Proceed => break,
                Pick::Fire(m) => {
                    x.fired += 1;
                    after_landing = false;
                    self.fire(m);
                }
                Pick::Land(path) => {
                    after_landing = true;
                    let w = self.link.land(path).expect("offered");
                    self.apply(w, true);
                }
            }
        }
        if looks && self.link.in_flight_len() > 0 {
            let Timing::Explored(x) = &mut self.timing else {
                unreachable!()
            };
            let arriving = x.scheduler.choose(self.link.in_flight_len() + 1);
            for _ in 0..arriving {
                self.arrive_oldest(false);
            }
        }
    }

    /// A read of the function over `path`: its gap, what it lands, every message pushed.
    fn before_read(&mut self, path: Path) {
        self.gap(Next::Read(path));
        for w in self.link.land_for_read(path) {
            self.apply(w, false);
        }
        while self.link.in_flight_len() > 0 {
            self.arrive_oldest(true);
        }
        self.reads += 1;
    }

    /// A write issued: landed now (immediate timing) or posted.
    fn issue(&mut self, w: HwWrite) {
        self.gap(Next::Write);
        self.writes.push(w);
        match self.timing {
            Timing::Immediate => self.apply(w, false),
            Timing::Explored(_) => self.link.post(w.path(), w),
        }
        self.actions += 1;
    }

    /// A write reaches the function: its effect, then what an unmask released.
    fn apply(&mut self, w: HwWrite, early: bool) {
        match w {
            HwWrite::Config {
                offset,
                width,
                value,
            } => {
                // The fake keeps bytes; a narrow write lands there as its
                // read-modify-write (the neighbouring bytes of a capability are plain
                // registers or read back unchanged).
                let (a, offset) = (self.address, ConfigOffset::new(offset).unwrap());
                match width {
                    Width::Dword => self.config.write32(a, offset, value),
                    Width::Word => self.config.write16(a, offset, value as u16),
                    Width::Byte => self.config.write8(a, offset, value as u8),
                }
            }
            HwWrite::Mmio {
                region: Region::Table,
                offset,
                value,
            } => {
                if let Kind::Msix { table, .. } = &mut self.kind {
                    table[(offset / 4) as usize] = value;
                }
            }
            HwWrite::Mmio {
                region: Region::Pba,
                ..
            } => {}
        }
        self.landed += 1;
        self.events.push(Event::Landed {
            write: w,
            point: self.actions,
            early,
        });
        match self.kind {
            Kind::Msi(_) => self.msi_release(),
            Kind::Msix { .. } => self.msix_release(),
        }
    }

    // ----- what the storage may write -------------------------------------------

    /// Checks a configuration write: Command (as the dword with Status, the crate's
    /// only way to write it), or inside the capability and not the read-only Pending
    /// Bits (MSI), or Message Control (MSI-X).
    fn config_write_problem(&self, offset: u16, width: Width) -> Option<String> {
        if offset == COMMAND_OFFSET && width == Width::Dword {
            return None;
        }
        let end = offset + width.bytes();
        match &self.kind {
            Kind::Msi(cap) => {
                if offset < cap.offset || end > cap.offset + cap.length() {
                    return Some(format!(
                        "config write at {offset:#x} outside the MSI capability"
                    ));
                }
                if cap.pending_register().is_some_and(|r| r.offset() == offset) {
                    return Some(format!(
                        "write to the read-only Pending Bits at {offset:#x}"
                    ));
                }
                None
            }
            Kind::Msix { cap, .. } => {
                (offset != cap.control_register().offset() || width != Width::Word).then(|| {
                    format!("MSI-X config write of {width:?} at {offset:#x}, not Message Control")
                })
            }
        }
    }

    fn config_write(&mut self, offset: ConfigOffset, width: Width, value: u32) {
        let w = HwWrite::Config {
            offset: offset.get(),
            width,
            value,
        };
        if let Some(problem) = self.config_write_problem(offset.get(), width) {
            self.violations.push(problem);
            // Logged as made, but it reaches nothing.
            self.gap(Next::Write);
            self.writes.push(w);
            self.actions += 1;
            return;
        }
        self.issue(w);
    }

    fn mmio_read(&mut self, region: Region, offset: u64) -> u32 {
        self.before_read(Path::Memory);
        self.actions += 1;
        let words = match region {
            Region::Table => self.table(),
            Region::Pba => self.pba(),
        };
        match usize::try_from(offset / 4).ok().and_then(|i| words.get(i)) {
            Some(&v) if offset.is_multiple_of(4) => v,
            _ => {
                self.violations.push(format!(
                    "{region:?} read at {offset:#x} outside or misaligned"
                ));
                u32::MAX
            }
        }
    }

    fn mmio_write(&mut self, region: Region, offset: u64, value: u32) {
        let w = HwWrite::Mmio {
            region,
            offset,
            value,
        };
        let Kind::Msix { table, .. } = &self.kind else {
            panic!("MMIO on an MSI function")
        };
        let problem = match region {
            Region::Pba => Some(format!("write to the read-only PBA at {offset:#x}")),
            Region::Table => (!offset.is_multiple_of(4)
                || usize::try_from(offset / 4).map_or(true, |i| i >= table.len()))
            .then(|| format!("table write at {offset:#x} outside or misaligned")),
        };
        match problem {
            Some(p) => {
                self.violations.push(p);
                self.gap(Next::Write);
                self.writes.push(w);
                self.actions += 1;
            }
            None => self.issue(w),
        }
    }
}

/// The model's configuration space as the storage sees it: every write logged with its
/// own width (real narrow accesses, as the kernel's ECAM and 0xCFC have) and issued to
/// the link; every read lands what it must first and answers from the function.
impl ConfigAccess for Machine {
    fn config_size(&self, _: PciAddress) -> ConfigSize {
        ConfigSize::Extended
    }
    fn read32(&mut self, a: PciAddress, offset: ConfigOffset) -> u32 {
        self.before_read(Path::Config);
        self.actions += 1;
        self.config.read32(a, offset)
    }
    fn write32(&mut self, a: PciAddress, offset: ConfigOffset, value: u32) {
        assert_eq!(a, self.address, "write to another function");
        self.config_write(offset, Width::Dword, value);
    }
    fn write16(&mut self, a: PciAddress, offset: ConfigOffset, value: u16) {
        assert_eq!(a, self.address, "write to another function");
        self.config_write(offset, Width::Word, u32::from(value));
    }
    fn write8(&mut self, a: PciAddress, offset: ConfigOffset, value: u8) {
        assert_eq!(a, self.address, "write to another function");
        self.config_write(offset, Width::Byte, u32::from(value));
    }
}

/// The storages' handle on the model: one lock of the machine per operation.
#[derive(Clone)]
pub struct Model(pub Arc<Mutex<Machine>>);

impl Model {
    pub fn lock(&self) -> MutexGuard<'_, Machine> {
        self.0.lock().expect("model poisoned")
    }
}

impl ConfigHandle for Model {
    type Access = Machine;

    fn access<R>(&self, f: impl FnOnce(&mut Machine) -> R) -> R {
        f(&mut self.lock())
    }

    fn refused(&self, refusal: &Refusal) {
        self.lock().refusals.push(*refusal);
    }
}

/// The table or the PBA of the model, as the MSI-X storage maps it.
pub struct ModelMmio {
    pub model: Model,
    pub region: Region,
}

impl MmioRegion for ModelMmio {
    fn read32(&self, offset: u64) -> u32 {
        self.model.lock().mmio_read(self.region, offset)
    }
    fn write32(&self, offset: u64, value: u32) {
        self.model.lock().mmio_write(self.region, offset, value)
    }
}

fn machine(config: FakeConfig, kind: Kind) -> Model {
    Model(Arc::new(Mutex::new(Machine {
        config,
        address: addr(AT),
        kind,
        writes: Vec::new(),
        landed: 0,
        reads: 0,
        actions: 0,
        events: Vec::new(),
        link: Link::default(),
        timing: Timing::Immediate,
        violations: Vec::new(),
        refusals: Vec::new(),
    })))
}

fn find_cap(fake: &mut FakeConfig, wanted: u8) -> sluice_pci::Capability {
    let header = Header::read(fake, addr(AT)).unwrap().unwrap();
    let list = walk_capabilities(fake, addr(AT), header.header_type, header.status);
    *list
        .found
        .iter()
        .find(|c| c.id == wanted)
        .expect("capability missing")
}

/// Storage on MSI: a model function with 2^`mmc_log2` messages capable, a 64-bit
/// address or not, per-vector masking or not; `mask_bits` as firmware left them.
pub fn msi(
    mmc_log2: u8,
    is_64bit: bool,
    pvm: bool,
    mask_bits: u32,
) -> (Model, MsiCapStorage<Model>) {
    let f = FakeFunction::endpoint(0x1234, 0x11e8, 0x00ff00, 0x10)
        .with_cap(id::POWER_MANAGEMENT, &[0; 6])
        .with_msi(mmc_log2, is_64bit, pvm);
    let mut fake = FakeConfig::ecam().with(AT, f);
    let c = find_cap(&mut fake, id::MSI);
    let cap = MsiCapability::read(&mut fake, addr(AT), c).unwrap();
    if let Some(r) = cap.mask_register() {
        fake.function_mut(AT)
            .set32(usize::from(r.offset()), mask_bits);
    }
    let model = machine(fake, Kind::Msi(cap));
    let storage = MsiCapStorage::new(model.clone(), addr(AT), cap);
    model.lock().clear_log();
    (model, storage)
}

/// Storage on MSI-X: a model function with a `size`-entry table (every entry masked,
/// as at reset) and its PBA.
pub fn msix(size: u16) -> (Model, MsixTableStorage<Model, ModelMmio>) {
    let f = FakeFunction::endpoint(0x8086, 0x10d3, 0x020000, 0)
        .with_pcie(0)
        .with_msix(size, 3, 0, 3, 0x2000);
    let mut fake = FakeConfig::ecam().with(AT, f);
    let c = find_cap(&mut fake, id::MSI_X);
    let cap = MsixCapability::read(&mut fake, addr(AT), c).unwrap();
    let mut table = vec![0u32; usize::from(size) * 4];
    for e in 0..usize::from(size) {
        table[e * 4 + 3] = table_entry::VECTOR_CONTROL_MASKED;
    }
    let pba = vec![0u32; cap.pba_length() as usize / 4];
    let model = machine(fake, Kind::Msix { cap, table, pba });
    let region = |region| ModelMmio {
        model: model.clone(),
        region,
    };
    let storage = MsixTableStorage::new(
        model.clone(),
        addr(AT),
        cap,
        region(Region::Table),
        region(Region::Pba),
    );
    (model, storage)
}
