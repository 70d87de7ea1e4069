//! The unit's registers, GCMD → GSTS behaviour, clock and memory.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};

use sluice_vtd::descriptor::Descriptor;
use sluice_vtd::hw::{RegisterBlock32, RegisterBlock64};
use sluice_vtd::registers as regs;
use sluice_vtd::{Clock, GlobalCommand, GlobalStatus, Irte, IrteMemory, QueueMemory, Registers};

/// The registers' offsets, as patterns for the model's decoding.
mod offset {
    use sluice_vtd::registers as regs;

    pub const VER: usize = regs::VER.offset();
    pub const CAP: usize = regs::CAP.offset();
    pub const ECAP: usize = regs::ECAP.offset();
    pub const GCMD: usize = regs::GCMD.offset();
    pub const GSTS: usize = regs::GSTS.offset();
    pub const FSTS: usize = regs::FSTS.offset();
    pub const FECTL: usize = regs::FECTL.offset();
    pub const IQH: usize = regs::IQH.offset();
    pub const IQT: usize = regs::IQT.offset();
    pub const IQA: usize = regs::IQA.offset();
    pub const ICS: usize = regs::ICS.offset();
    pub const IRTA: usize = regs::IRTA.offset();
}

/// How the queued invalidation engine runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QiMode {
    /// Every descriptor up to the tail is processed inside the IQT write (QEMU).
    Synchronous,
    /// One descriptor is processed every `polls` reads of IQH, FSTS or the status word.
    Lazy {
        /// Reads per descriptor.
        polls: u32,
    },
}

/// Where the model follows QEMU rather than the specification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quirks {
    /// Clearing FSTS.IQE does not restart the queue; only an IQT write does.
    pub iqe_resumes_on_iqt_write_only: bool,
    /// QIE can be cleared only when the last descriptor processed was a wait.
    pub qi_disable_needs_wait_last: bool,
    /// QIE can be cleared only when the queue is idle (IQH = IQT). A real unit takes
    /// the command whatever the queue holds (Linux's `dmar_disable_qi` clears QIE after
    /// its drain wait times out), and its head goes back to 0.
    pub qi_disable_needs_drained: bool,
    /// A wait descriptor with SW and IF aborts (QEMU ≤ 10.0.3).
    pub abort_on_sw_and_if: bool,
    /// CFI is implemented: GCMD.CFI drives GSTS.CFIS and blocks compatibility format.
    pub cfi_implemented: bool,
    /// IRTEs are cached until invalidated (QEMU re-reads every time).
    pub caches_irtes: bool,
    /// In xAPIC mode (IRTA.EIME clear) an entry whose destination has bits outside
    /// `DST[15:8]` set faults as a reserved-field violation (0x24); QEMU truncates the
    /// destination silently.
    pub checks_xapic_destination: bool,
}

/// One access the crate made, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A 32-bit register write: offset, value.
    Write32(usize, u32),
    /// A 64-bit register write: offset, value.
    Write64(usize, u64),
    /// A descriptor stored in the ring: slot, descriptor.
    Descriptor(usize, Descriptor),
    /// A 64-bit store of an IRTE's low half: index, value.
    IrteLow(u16, u64),
    /// A 64-bit store of an IRTE's high half: index, value.
    IrteHigh(u16, u64),
    /// A 16-byte store of a whole IRTE: index, entry.
    IrteAtomic(u16, Irte),
}

/// What the crate reads from a register, given its offset and the model's own value: a
/// test lends a hostile unit this way (any register, any read).
pub type ReadFilter = Box<dyn FnMut(usize, u64) -> u64 + Send>;

/// Called after every store to the IRTE table, with the unit as the store left it (its
/// cache not yet invalidated): the machine around the unit lets devices act there.
pub type StoreHook = Box<dyn FnMut(&mut Unit) + Send>;

/// Where firmware's own invalidation queue lives in the model (never our ring).
pub const FIRMWARE_RING: u64 = 0x50_0000;

/// One remapping unit and the memory it sees.
pub struct Unit {
    /// CAP.
    pub cap: u64,
    /// ECAP.
    pub ecap: u64,
    /// GSTS.
    pub gsts: u32,
    /// GSTS bits this unit never sets (a broken unit).
    pub refuse: GlobalStatus,
    /// Reads of GSTS before a GCMD effect shows (0: at once, like QEMU).
    pub gsts_delay: u32,
    pending_gsts: VecDeque<(u32, u32, bool)>, // (polls left, bits, set)
    /// Where it follows QEMU rather than the specification.
    pub quirks: Quirks,
    /// How the invalidation engine runs.
    pub qi_mode: QiMode,
    /// Drop status writes of wait descriptors (a unit that never reports completion).
    pub drop_status_writes: bool,
    /// Descriptor types the engine rejects although they are well formed.
    pub rejected_types: Vec<u8>,
    pub(crate) lazy_credit: u32,

    /// IRTA as written (latched by SIRTP).
    pub irta: u64,
    /// IQA.
    pub iqa: u64,
    /// IQT.
    pub iqt: u64,
    /// IQH's slot.
    pub iqh: usize,
    /// FSTS.
    pub fsts: u32,
    /// FECTL.
    pub fectl: u32,
    /// ICS.
    pub ics: u32,
    /// The fault recording registers, (low, high).
    pub frcd: Vec<(u64, u64)>,
    /// The record the next fault goes to.
    pub next_frcd: usize,
    /// Fault events sent.
    pub fault_events: u32,

    // Latched state, as QEMU keeps it.
    /// Queued invalidation is on.
    pub qi_enabled: bool,
    /// The ring's address, latched when the queue was enabled.
    pub iq_base: u64,
    /// Slots in the ring, latched when the queue was enabled.
    pub iq_size: usize,
    /// The type of the last descriptor processed.
    pub last_desc_type: u8,
    /// The table's address, latched by SIRTP.
    pub intr_root: u64,
    /// Entries in the table, latched by SIRTP.
    pub intr_size: u32,
    /// EIME, latched by SIRTP.
    pub eime: bool,

    // Memory.
    /// Where the crate's ring is.
    pub ring_address: u64,
    /// Where the crate's wait descriptors write their status.
    pub status_address: u64,
    /// The ring's slots in memory, by address.
    pub ring: BTreeMap<u64, Descriptor>,
    /// Other memory the unit wrote (status words), by address.
    pub ram: BTreeMap<u64, u32>,
    /// The interrupt remapping table in memory, by index.
    pub irt: BTreeMap<u16, Irte>,
    /// The unit can read the table (else every lookup faults).
    pub table_readable: bool,
    /// The interrupt entry cache: entries as the unit last read them.
    pub iec: BTreeMap<u16, Irte>,

    /// Descriptors the engine processed, in order.
    pub processed: Vec<Descriptor>,
    /// Why the simulated QEMU aborted, if it did.
    pub aborted: Option<String>,
    /// Every access the crate made, in order.
    pub log: Vec<Event>,
    /// The unit's clock, in nanoseconds.
    pub now: u64,
    /// How far the clock moves per reading.
    pub tick_ns: u64,
    /// Register reads the crate made (how long a sequence ran, in accesses).
    pub reads: u64,
    /// Replaces what register reads return (a hostile unit); `None`: the model's values.
    pub hostile: Option<ReadFilter>,
    /// See [`StoreHook`]; `None`: stores are not observed.
    pub on_irte_store: Option<StoreHook>,
}

/// QEMU 10's CAP with aw-bits=48: FRO 0x220, NFR 0, ND 6, SAGAW 39/48, MGAW 48,
/// PSI, SLLPS 2M/1G, MAMV 18, DRD/DWD.
pub const QEMU_CAP: u64 =
    (0x220 << 20) | 6 | (0b110 << 8) | (47 << 16) | (3 << 34) | (1 << 39) | (18 << 48) | (3 << 54);
/// QEMU 10's ECAP with intremap=on, eim=on: QI, IR, EIM, PT, IRO 0xf0, MHMV 15.
pub const QEMU_ECAP: u64 = 0x2 | 0x8 | 0x10 | 0x40 | (0xf << 8) | (0xf << 20);

impl Unit {
    /// A unit as QEMU 10 presents it with intremap=on, eim=on.
    pub fn qemu() -> Unit {
        Unit {
            cap: QEMU_CAP,
            ecap: QEMU_ECAP,
            gsts: 0,
            refuse: GlobalStatus::empty(),
            gsts_delay: 0,
            pending_gsts: VecDeque::new(),
            quirks: Quirks {
                iqe_resumes_on_iqt_write_only: true,
                qi_disable_needs_wait_last: true,
                qi_disable_needs_drained: true,
                abort_on_sw_and_if: true,
                cfi_implemented: false,
                caches_irtes: false,
                checks_xapic_destination: false,
            },
            qi_mode: QiMode::Synchronous,
            drop_status_writes: false,
            rejected_types: Vec::new(),
            lazy_credit: 0,
            irta: 0,
            iqa: 0,
            iqt: 0,
            iqh: 0,
            fsts: 0,
            fectl: 1 << 31,
            ics: 0,
            frcd: vec![(0, 0)],
            next_frcd: 0,
            fault_events: 0,
            qi_enabled: false,
            iq_base: 0,
            iq_size: 0,
            last_desc_type: 0,
            intr_root: 0,
            intr_size: 0,
            eime: false,
            ring_address: 0x10_0000,
            status_address: 0x20_0040,
            ring: BTreeMap::new(),
            ram: BTreeMap::new(),
            irt: BTreeMap::new(),
            table_readable: true,
            iec: BTreeMap::new(),
            processed: Vec::new(),
            aborted: None,
            log: Vec::new(),
            now: 0,
            tick_ns: 1_000,
            reads: 0,
            hostile: None,
            on_irte_store: None,
        }
    }

    /// A real unit: lazy queue, IQE cleared resumes it, CFI enforced (CFIS set by
    /// firmware), IRTEs cached, GSTS changes visible a few polls after the command.
    pub fn hardware() -> Unit {
        let mut u = Unit::qemu();
        u.quirks = Quirks {
            iqe_resumes_on_iqt_write_only: false,
            qi_disable_needs_wait_last: false,
            qi_disable_needs_drained: false,
            abort_on_sw_and_if: false,
            cfi_implemented: true,
            caches_irtes: true,
            checks_xapic_destination: true,
        };
        u.qi_mode = QiMode::Lazy { polls: 3 };
        u.gsts_delay = 2;
        u.gsts = GlobalStatus::CFIS.bits();
        u
    }

    /// Firmware handed over with DMA translation on (pre-boot DMA protection): TES set,
    /// and RTPS from the root table pointer it set.
    pub fn with_firmware_translation(mut self) -> Unit {
        self.gsts |= (GlobalStatus::TES | GlobalStatus::RTPS).bits();
        self
    }

    /// Firmware left its own invalidation queue on, at [`FIRMWARE_RING`], stopped on an
    /// invalid descriptor at slot `head` (FSTS.IQE set) with the tail at `tail`: it will
    /// never drain.
    pub fn with_halted_firmware_queue(mut self, head: usize, tail: usize) -> Unit {
        self.gsts |= GlobalStatus::QIES.bits();
        self.iqa = FIRMWARE_RING;
        self.iq_base = FIRMWARE_RING;
        self.iq_size = 256;
        self.qi_enabled = true;
        self.iqh = head;
        self.iqt = (tail as u64) << 4;
        self.fsts |= IQE_BIT;
        self.last_desc_type = sluice_vtd::descriptor::kind::IEC;
        self
    }

    /// Every register read answers `filter(offset, model's value)`.
    pub fn hostile(mut self, filter: impl FnMut(usize, u64) -> u64 + Send + 'static) -> Unit {
        self.hostile = Some(Box::new(filter));
        self
    }

    /// GSTS, typed.
    pub fn status(&self) -> GlobalStatus {
        GlobalStatus::from_bits_retain(self.gsts)
    }

    /// Register writes (not memory accesses) in order, as (name, value).
    pub fn register_writes(&self) -> Vec<(&'static str, u64)> {
        self.log
            .iter()
            .filter_map(|e| match *e {
                Event::Write32(o, v) => Some((regs::name(o), u64::from(v))),
                Event::Write64(o, v) => Some((regs::name(o), v)),
                _ => None,
            })
            .collect()
    }

    /// GCMD values written, in order.
    pub fn gcmd_writes(&self) -> Vec<GlobalCommand> {
        self.log
            .iter()
            .filter_map(|e| match *e {
                Event::Write32(offset::GCMD, v) => Some(GlobalCommand::from_bits_retain(v)),
                _ => None,
            })
            .collect()
    }

    /// Applies a GSTS change now or after `gsts_delay` GSTS reads. Refused bits are
    /// never set.
    pub(crate) fn set_status(&mut self, bits: GlobalStatus, set: bool) {
        let bits = if set { bits - self.refuse } else { bits };
        if self.gsts_delay == 0 {
            self.apply_status(bits.bits(), set);
        } else {
            self.pending_gsts
                .push_back((self.gsts_delay, bits.bits(), set));
        }
    }

    fn apply_status(&mut self, bits: u32, set: bool) {
        if set {
            self.gsts |= bits;
        } else {
            self.gsts &= !bits;
        }
    }

    fn read_gsts(&mut self) -> u32 {
        for p in self.pending_gsts.iter_mut() {
            p.0 = p.0.saturating_sub(1);
        }
        while let Some(&(0, bits, set)) = self.pending_gsts.front() {
            self.pending_gsts.pop_front();
            self.apply_status(bits, set);
        }
        self.gsts
    }

    /// GCMD write, as QEMU's `vtd_handle_gcmd_write`: persistent functions follow the
    /// bits that differ from GSTS; one-shots fire when their bit is written as 1.
    fn write_gcmd(&mut self, value: u32) {
        let changed = self.gsts ^ value;
        let cmd = GlobalCommand::from_bits_retain(value);
        let ch = GlobalCommand::from_bits_retain(changed);
        if ch.contains(GlobalCommand::TE) {
            self.set_status(GlobalStatus::TES, cmd.contains(GlobalCommand::TE));
        }
        if cmd.contains(GlobalCommand::SRTP) {
            self.set_status(GlobalStatus::RTPS, true);
        }
        if ch.contains(GlobalCommand::QIE) {
            self.handle_qie(cmd.contains(GlobalCommand::QIE));
        }
        if cmd.contains(GlobalCommand::SIRTP) {
            self.gsts &= !GlobalStatus::IRTPS.bits();
            self.intr_root = self.irta & !0xfff;
            self.intr_size = 1 << ((self.irta & 0xf) + 1);
            self.eime = self.irta & (1 << 11) != 0;
            self.set_status(GlobalStatus::IRTPS, true);
        }
        if ch.contains(GlobalCommand::IRE) {
            self.set_status(GlobalStatus::IRES, cmd.contains(GlobalCommand::IRE));
        }
        if self.quirks.cfi_implemented && ch.contains(GlobalCommand::CFI) {
            self.set_status(GlobalStatus::CFIS, cmd.contains(GlobalCommand::CFI));
        }
    }

    fn handle_qie(&mut self, enable: bool) {
        if enable {
            self.iq_base = self.iqa & !0xfff;
            self.iq_size = 1 << ((self.iqa & 7) + 8);
            self.qi_enabled = true;
            self.set_status(GlobalStatus::QIES, true);
            return;
        }
        let tail = ((self.iqt >> 4) & 0x7fff) as usize;
        let drained = self.iqh == tail;
        let ok = (drained || !self.quirks.qi_disable_needs_drained)
            && (!self.quirks.qi_disable_needs_wait_last
                || self.last_desc_type == sluice_vtd::descriptor::kind::WAIT);
        if ok {
            self.iqh = 0;
            self.qi_enabled = false;
            self.set_status(GlobalStatus::QIES, false);
        }
    }

    fn write_fsts(&mut self, value: u32) {
        let w1c = (1 << 0) | (1 << 2) | (1 << 4) | (1 << 5) | (1 << 6);
        let cleared_iqe = self.fsts & value & (1 << 4) != 0;
        self.fsts &= !(value & w1c);
        if cleared_iqe && !self.quirks.iqe_resumes_on_iqt_write_only {
            self.kick();
        }
    }

    fn frcd_index(&self, off: usize) -> Option<(usize, bool)> {
        let base = ((self.cap >> 24) & 0x3ff) as usize * 16;
        let n = ((self.cap >> 40) & 0xff) as usize + 1;
        let rel = off.checked_sub(base)?;
        let i = rel / 16;
        (i < n.min(self.frcd.len()) && rel % 8 == 0).then_some((i, rel % 16 == 8))
    }

    fn write_frcd_hi(&mut self, i: usize, value: u64) {
        if value & (1 << 63) != 0 {
            self.frcd[i].1 &= !(1 << 63);
        }
        let any = self.frcd.iter().any(|f| f.1 & (1 << 63) != 0);
        if !any {
            self.fsts &= !(1 << 1);
        }
    }
}

const IQE_BIT: u32 = 1 << 4;

impl Unit {
    /// What a read returns after the hostile filter, if any.
    fn answer(&mut self, offset: usize, value: u64) -> u64 {
        self.reads += 1;
        match self.hostile.as_mut() {
            Some(f) => f(offset, value),
            None => value,
        }
    }

    fn model_read32(&mut self, offset: usize) -> u32 {
        match offset {
            offset::VER => 0x10,
            offset::GSTS => self.read_gsts(),
            offset::FSTS => {
                self.progress();
                self.fsts
            }
            offset::FECTL => self.fectl,
            offset::ICS => self.ics,
            other => self.model_read64(other) as u32,
        }
    }

    fn model_read64(&mut self, offset: usize) -> u64 {
        match offset {
            offset::CAP => self.cap,
            offset::ECAP => self.ecap,
            offset::IRTA => self.irta,
            offset::IQA => self.iqa,
            offset::IQT => self.iqt,
            offset::IQH => {
                self.progress();
                (self.iqh as u64) << 4
            }
            other => match self.frcd_index(other) {
                Some((i, false)) => self.frcd[i].0,
                Some((i, true)) => self.frcd[i].1,
                None => 0,
            },
        }
    }
}

/// The unit's register block, lent for the accesses of one step: a register access has
/// effects on the whole model (an IQT write runs the queue), so the block holds the
/// unit mutably and each access borrows it for its own duration.
pub struct UnitRegisters<'a> {
    unit: RefCell<&'a mut Unit>,
}

impl Registers for Unit {
    type Block<'a> = UnitRegisters<'a>;
    fn registers(&mut self) -> UnitRegisters<'_> {
        UnitRegisters {
            unit: RefCell::new(self),
        }
    }
}

impl RegisterBlock32 for UnitRegisters<'_> {
    fn read32(&self, offset: usize) -> u32 {
        self.unit.borrow_mut().register_read32(offset)
    }
    fn write32(&self, offset: usize, value: u32) {
        self.unit.borrow_mut().register_write32(offset, value)
    }
}

impl RegisterBlock64 for UnitRegisters<'_> {
    fn read64(&self, offset: usize) -> u64 {
        self.unit.borrow_mut().register_read64(offset)
    }
    fn write64(&self, offset: usize, value: u64) {
        self.unit.borrow_mut().register_write64(offset, value)
    }
}

impl Unit {
    fn register_read32(&mut self, offset: usize) -> u32 {
        let value = self.model_read32(offset);
        self.answer(offset, u64::from(value)) as u32
    }

    fn register_read64(&mut self, offset: usize) -> u64 {
        let value = self.model_read64(offset);
        self.answer(offset, value)
    }

    fn register_write32(&mut self, offset: usize, value: u32) {
        self.log.push(Event::Write32(offset, value));
        match offset {
            offset::GCMD => self.write_gcmd(value),
            offset::FSTS => self.write_fsts(value),
            offset::FECTL => self.fectl = value & (1 << 31),
            offset::ICS => self.ics &= !(value & 1),
            _ => {}
        }
    }

    fn register_write64(&mut self, offset: usize, value: u64) {
        self.log.push(Event::Write64(offset, value));
        match offset {
            offset::IRTA => self.irta = value,
            offset::IQA => self.iqa = value,
            offset::IQT => {
                self.iqt = value & 0x7fff0;
                self.on_iqt_write();
            }
            other => {
                if let Some((i, true)) = self.frcd_index(other) {
                    self.write_frcd_hi(i, value);
                }
            }
        }
    }
}

impl Clock for Unit {
    fn now_ns(&mut self) -> u64 {
        self.now += self.tick_ns;
        self.now
    }
}

impl QueueMemory for Unit {
    fn ring_address(&self) -> u64 {
        self.ring_address
    }
    fn status_address(&self) -> u64 {
        self.status_address
    }
    fn write_descriptor(&mut self, slot: usize, descriptor: Descriptor) {
        self.log.push(Event::Descriptor(slot, descriptor));
        self.ring
            .insert(self.ring_address + slot as u64 * 16, descriptor);
    }
    fn read_status(&mut self) -> u32 {
        self.progress();
        self.ram.get(&self.status_address).copied().unwrap_or(0)
    }
}

impl Unit {
    /// Runs the store hook, if any (taken out while it runs: it gets the unit itself).
    fn stored(&mut self) {
        if let Some(mut hook) = self.on_irte_store.take() {
            hook(self);
            self.on_irte_store = Some(hook);
        }
    }
}

impl IrteMemory for Unit {
    fn read_irte(&mut self, index: u16) -> Irte {
        self.irt.get(&index).copied().unwrap_or_default()
    }
    fn write_low(&mut self, index: u16, low: u64) {
        self.log.push(Event::IrteLow(index, low));
        let old = self.read_irte(index);
        self.irt.insert(index, Irte::from_halves(low, old.high()));
        self.stored();
    }
    fn write_high(&mut self, index: u16, high: u64) {
        self.log.push(Event::IrteHigh(index, high));
        let old = self.read_irte(index);
        self.irt.insert(index, Irte::from_halves(old.low(), high));
        self.stored();
    }
    fn write_atomic(&mut self, index: u16, irte: Irte) {
        self.log.push(Event::IrteAtomic(index, irte));
        self.irt.insert(index, irte);
        self.stored();
    }
}
