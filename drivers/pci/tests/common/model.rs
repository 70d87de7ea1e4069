//! A model device for the message-storage tests: one function with an MSI or an MSI-X
//! capability in a simulated configuration space (`fake.rs`), an MSI-X table and Pending
//! Bit Array behind MMIO, a log of every hardware write the storage makes (with its
//! width), and a device that can send its interrupt at any moment.
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
//! After every hardware write the device sends each member or entry that is pending and
//! no longer masked (clearing its bit) — an unmask releases what was held — and then
//! makes the firings scheduled for that position. So the device fires "between any two
//! hardware writes": at position `p` it fires after the storage's `p`-th write of the
//! run (position 0: before the first).
//!
//! The storage reaches the model through [`Model`] (a `ConfigHandle` that locks the
//! machine for one operation) and [`ModelMmio`] (a `MmioRegion` on the table or PBA).
//! Writes the storage must never make — to the read-only Pending Bits or PBA, outside
//! the capability, misaligned or outside the table — are recorded as violations.

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

use super::fake::{FakeConfig, FakeFunction, addr};

/// Where the model function sits.
pub const AT: &str = "00:05.0";

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

/// What the device did, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The device had interrupt `member` (MSI member or MSI-X entry) to send.
    Fire { member: u32, outcome: Outcome },
    /// A message went out for `member`; `released`: from its pending bit, on unmask;
    /// `at`: after how many hardware writes since the log was cleared.
    Sent {
        member: u32,
        msg: MsiMsg,
        released: bool,
        at: usize,
    },
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

/// The function, its device, and everything they saw.
pub struct Machine {
    pub config: FakeConfig,
    pub address: PciAddress,
    pub kind: Kind,
    /// Every hardware write the storage made, in order.
    pub writes: Vec<HwWrite>,
    /// Configuration and MMIO reads the storage made.
    pub reads: usize,
    pub events: Vec<Event>,
    /// Firings still to make: (position, member), sorted by position. Position `p`
    /// fires once `writes.len() == base + p`.
    schedule: Vec<(usize, u32)>,
    base: usize,
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

    fn raw32(&self, offset: u16) -> u32 {
        self.config.function(AT).get32(usize::from(offset))
    }

    fn set_raw32(&mut self, offset: u16, value: u32) {
        self.config
            .function_mut(AT)
            .set32(usize::from(offset), value);
    }

    // ----- MSI ------------------------------------------------------------------

    /// Message Control now.
    pub fn msi_control(&self) -> MsiControl {
        MsiControl(self.raw16(self.msi().control_register().offset()))
    }

    /// Members the function may send now (2^Multiple Message Enable), 0 if disabled.
    pub fn msi_enabled_members(&self) -> u32 {
        let c = self.msi_control();
        if c.enabled() {
            1 << c.multiple_message_enable_log2()
        } else {
            0
        }
    }

    /// Mask Bits and Pending Bits now (0 without per-vector masking).
    pub fn msi_mask_bits(&self) -> u32 {
        self.msi()
            .mask_register()
            .map_or(0, |r| self.raw32(r.offset()))
    }
    pub fn msi_pending_bits(&self) -> u32 {
        self.msi()
            .pending_register()
            .map_or(0, |r| self.raw32(r.offset()))
    }

    /// The message member `member` would carry now (the data's low k bits are the member
    /// number, with 2^k members enabled).
    pub fn msi_message(&self, member: u32) -> MsiMsg {
        let cap = self.msi();
        let n = self.msi_enabled_members().max(1);
        let data = u32::from(self.raw16(cap.data_register().offset()));
        MsiMsg {
            addr_lo: self.raw32(cap.address_low_register().offset()),
            addr_hi: cap
                .address_high_register()
                .map_or(0, |r| self.raw32(r.offset())),
            data: (data & !(n - 1)) | member,
        }
    }

    fn msi_fire(&mut self, member: u32) -> (Outcome, Option<MsiMsg>) {
        if member >= self.msi_enabled_members() {
            return (Outcome::NotEnabled, None);
        }
        if self.msi_mask_bits() & (1 << member) != 0 {
            let pending = self.msi().pending_register().expect("masked without PVM");
            let bits = self.raw32(pending.offset()) | 1 << member;
            self.set_raw32(pending.offset(), bits);
            return (Outcome::Latched, None);
        }
        (Outcome::Sent, Some(self.msi_message(member)))
    }

    fn msi_release(&mut self) {
        let Some(pending) = self.msi().pending_register() else {
            return;
        };
        for member in 0..self.msi_enabled_members() {
            let bit = 1 << member;
            if self.msi_pending_bits() & bit != 0 && self.msi_mask_bits() & bit == 0 {
                let bits = self.raw32(pending.offset()) & !bit;
                self.set_raw32(pending.offset(), bits);
                let msg = self.msi_message(member);
                self.events.push(Event::Sent {
                    member,
                    msg,
                    released: true,
                    at: self.writes.len(),
                });
            }
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
                self.events.push(Event::Sent {
                    member: e,
                    msg,
                    released: true,
                    at: self.writes.len(),
                });
            }
        }
    }

    // ----- the device -----------------------------------------------------------

    /// The device sends (or tries to send) member `member`'s interrupt now.
    pub fn fire(&mut self, member: u32) -> Outcome {
        let (outcome, msg) = match self.kind {
            Kind::Msi(_) => self.msi_fire(member),
            Kind::Msix { .. } => self.msix_fire(member),
        };
        self.events.push(Event::Fire { member, outcome });
        if let Some(msg) = msg {
            self.events.push(Event::Sent {
                member,
                msg,
                released: false,
                at: self.writes.len(),
            });
        }
        outcome
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

    /// Arms `schedule` ((position, member), any order) from the next write on, and makes
    /// the position-0 firings now.
    pub fn arm(&mut self, mut schedule: Vec<(usize, u32)>) {
        schedule.sort_by_key(|&(p, _)| p);
        self.schedule = schedule;
        self.base = self.writes.len();
        self.fire_due();
    }

    /// Firings armed but not made (their position was past the last write).
    pub fn unfired(&self) -> &[(usize, u32)] {
        &self.schedule
    }

    fn fire_due(&mut self) {
        let now = self.writes.len() - self.base;
        while let Some(&(p, member)) = self.schedule.first() {
            if p != now {
                break;
            }
            self.schedule.remove(0);
            self.fire(member);
        }
    }

    /// After each hardware write: what an unmask released, then the scheduled firings.
    fn after_write(&mut self, w: HwWrite) {
        self.writes.push(w);
        match self.kind {
            Kind::Msi(_) => self.msi_release(),
            Kind::Msix { .. } => self.msix_release(),
        }
        self.fire_due();
    }

    /// Forget the writes, reads and events so far (after set-up).
    pub fn clear_log(&mut self) {
        self.writes.clear();
        self.reads = 0;
        self.events.clear();
    }

    /// The messages sent, in order.
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
                Event::Fire { .. } => None,
            })
            .collect()
    }

    // ----- what the storage may write -------------------------------------------

    /// Checks a configuration write against the capability: inside it, not the
    /// read-only Pending Bits (MSI), only Message Control (MSI-X).
    fn config_write_problem(&self, offset: u16, width: Width) -> Option<String> {
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
            self.after_write(w);
            return;
        }
        // The fake keeps bytes; a narrow write lands there as its read-modify-write (the
        // neighbouring bytes of a capability are plain registers or read back unchanged).
        let a = self.address;
        match width {
            Width::Dword => self.config.write32(a, offset, value),
            Width::Word => self.config.write16(a, offset, value as u16),
            Width::Byte => self.config.write8(a, offset, value as u8),
        }
        self.after_write(w);
    }

    fn mmio_read(&mut self, region: Region, offset: u64) -> u32 {
        self.reads += 1;
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
        let Kind::Msix { table, .. } = &mut self.kind else {
            panic!("MMIO on an MSI function")
        };
        match region {
            Region::Pba => self
                .violations
                .push(format!("write to the read-only PBA at {offset:#x}")),
            Region::Table => {
                match usize::try_from(offset / 4)
                    .ok()
                    .filter(|_| offset.is_multiple_of(4))
                    .and_then(|i| table.get_mut(i))
                {
                    Some(slot) => *slot = value,
                    None => self
                        .violations
                        .push(format!("table write at {offset:#x} outside or misaligned")),
                }
            }
        }
        self.after_write(w);
    }
}

/// The model's configuration space as the storage sees it: every write logged with its
/// own width (real narrow accesses, as the kernel's ECAM and 0xCFC have), then what the
/// device does after it.
impl ConfigAccess for Machine {
    fn config_size(&self, _: PciAddress) -> ConfigSize {
        ConfigSize::Extended
    }
    fn read32(&mut self, a: PciAddress, offset: ConfigOffset) -> u32 {
        self.reads += 1;
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
        reads: 0,
        events: Vec::new(),
        schedule: Vec::new(),
        base: 0,
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
