//! The simulator's MSI devices: PCI functions with an MSI capability in the machine's
//! configuration space ([`Machine::config`]), driven by sluice-pci's own message storage
//! ([`PciMsiStorage`], `MsiCapStorage` over a handle on the machine) and set up in
//! sluice-pci's own order (`msi_order`) — the kernel's code, not a stand-in.
//!
//! **Posted writes.** A configuration write does not reach the function when the CPU
//! makes it: it waits on the function's link (`link.rs`: configuration writes land in
//! the order issued) until a read of that function lands it — the storage reads back
//! after every write, its flush — or, if nothing reads it, a later event of the schedule
//! (`Event::Apply`). A device that fires meanwhile sends what its registers held before.
//!
//! **A read pushes.** A configuration read of a function is answered once its posted
//! writes have landed (what an unmask releases goes out then) and every message the
//! function sent before it has arrived (`bus.rs`, [`Machine::flush`]): a read completion
//! passes neither (PCI Express Base §2.4.1).
//!
//! With [`crate::Timing::Immediate`] writes land when made.

use std::collections::BTreeMap;

use sluice_irq_core::domain::DomainOps;
use sluice_irq_core::msi::MsiMsg;
use sluice_irq_core::msidomain::MsiDomain;
use sluice_pci::{
    ConfigAccess, ConfigHandle, ConfigOffset, ConfigSize, Header, MsiCapStorage, MsiCapability,
    PciAddress, Refusal, Width, walk_capabilities,
};

use super::fake::FakeFunction;
use super::link::{Link, Path};
use super::msi::{self, Fired};
use crate::bus::{Timing, Via};
use crate::machine::{Machine, Shared, Token};

/// The machine's configuration space, as a storage reaches it: one lock of the machine
/// per operation.
#[derive(Clone)]
pub struct SimConfig(pub Shared);

impl ConfigHandle for SimConfig {
    type Access = Machine;

    fn access<R>(&self, f: impl FnOnce(&mut Machine) -> R) -> R {
        f(&mut self.0.lock().unwrap())
    }

    fn refused(&self, refusal: &Refusal) {
        self.0
            .lock()
            .unwrap()
            .failures
            .push(format!("storage refused a write: {refusal}"));
    }
}

/// sluice-pci's MSI storage on a function of the machine.
pub type PciMsiStorage = MsiCapStorage<SimConfig>;

/// A domain over a machine function's MSI storage — the production [`MsiDomain`], or one
/// wrong on purpose around it (`crate::wrong`) — as the set-up order (sluice-pci's
/// `msi_order`, run by [`crate::Boot::start_msi`]) reaches the storage through it, the
/// way the kernel's PCI MSI code reaches its domain's.
pub trait MsiOps: DomainOps {
    /// The storage the domain writes this function's message through.
    fn msi_storage(&self) -> &PciMsiStorage;
}

impl MsiOps for MsiDomain<PciMsiStorage> {
    fn msi_storage(&self) -> &PciMsiStorage {
        self.storage()
    }
}

/// One configuration write on its way.
#[derive(Clone, Copy, Debug)]
struct Write {
    offset: ConfigOffset,
    width: Width,
    value: u32,
}

/// A device that is a PCI function with an MSI capability.
#[derive(Clone, Debug)]
pub struct MsiFunction {
    /// The function.
    pub address: PciAddress,
    /// Its MSI capability, as read at set-up.
    pub cap: MsiCapability,
    /// Writes issued and not landed.
    link: Link<Write, ()>,
    /// Member → the firing its Pending Bit holds (later ones coalesce into it).
    pending: BTreeMap<u32, Token>,
}

/// The PCI address of `function`.
pub fn address_of(function: &sluice_irq_core::PciFunction) -> PciAddress {
    PciAddress::new(
        function.segment,
        function.bus,
        function.device,
        function.function,
    )
    .expect("a valid function")
}

/// A new PCI function of machine `m` at `function`'s address with an MSI capability for
/// `members` messages (1: a plain device; 2^k: a multi-message device), per-vector
/// masking if `maskable` — a device of the machine — and sluice-pci's storage on it.
pub fn msi_function(
    m: &Shared,
    members: u32,
    maskable: bool,
    function: sluice_irq_core::PciFunction,
) -> PciMsiStorage {
    assert!(members.is_power_of_two() && members <= 32);
    let log2 = members.trailing_zeros() as u8;
    let cap = {
        let mut mm = m.lock().unwrap();
        let dev = mm.add_msi_function(&function, log2, maskable);
        mm.devices[dev].msi.as_ref().unwrap().cap
    };
    PciMsiStorage::new(SimConfig(m.clone()), address_of(&function), cap)
}

/// `start` (which starts the function's irqs: the core writes each message and unmasks
/// each member) inside sluice-pci's set-up order for `members` messages: MSI disabled and
/// every member masked before, MSI enabled with that many members and INTx off after.
pub fn set_up_msi<T>(dom: &dyn MsiOps, members: u32, start: impl FnOnce() -> T) -> T {
    let log2 = members.max(1).trailing_zeros() as u8;
    sluice_pci::msi_order::set_up_msi(dom.msi_storage(), log2, || Ok::<_, ()>(start()), |_| {})
        .expect("MSI enabled")
}

impl Machine {
    /// A new PCI function at `function`'s address (its messages carry its requester id)
    /// with an MSI capability: 2^`mmc_log2` messages capable, a 64-bit address, and
    /// per-vector masking if `maskable`. MSI is off, as at reset.
    pub fn add_msi_function(
        &mut self,
        function: &sluice_irq_core::PciFunction,
        mmc_log2: u8,
        maskable: bool,
    ) -> usize {
        let address = address_of(function);
        let f = FakeFunction::endpoint(0x1b36, 0x0005, 0x00ff00, 0x10)
            .with_msi(mmc_log2, true, maskable);
        self.config.functions.insert(address, f);
        let header = Header::read(&mut self.config, address)
            .ok()
            .flatten()
            .expect("the function answers");
        let list = walk_capabilities(&mut self.config, address, header.header_type, header.status);
        let c = *list
            .found
            .iter()
            .find(|c| c.id == sluice_pci::capability::id::MSI)
            .expect("an MSI capability");
        let cap = MsiCapability::read(&mut self.config, address, c).expect("MSI capability");
        let dev = self.add_device(maskable);
        let d = &mut self.devices[dev];
        d.members = if mmc_log2 > 0 { 1 << mmc_log2 } else { 0 };
        d.requester = function.requester_id;
        d.msi = Some(MsiFunction {
            address,
            cap,
            link: Link::default(),
            pending: BTreeMap::new(),
        });
        dev
    }

    fn msi_device_at(&self, address: PciAddress) -> Option<usize> {
        self.devices
            .iter()
            .position(|d| d.msi.as_ref().is_some_and(|f| f.address == address))
    }

    fn function_of(&self, dev: usize) -> (&FakeFunction, &MsiCapability) {
        let f = self.devices[dev].msi.as_ref().expect("an MSI function");
        (&self.config.functions[&f.address], &f.cap)
    }

    /// Member `member` of MSI device `dev` has an interrupt to send (`token`).
    pub(crate) fn fire_msi(&mut self, dev: usize, member: u32, token: Token, via: &mut Via) {
        let mf = self.devices[dev].msi.as_ref().expect("an MSI function");
        let (address, cap) = (mf.address, mf.cap);
        let f = self
            .config
            .functions
            .get_mut(&address)
            .expect("the function");
        match msi::fire(f, &cap, member) {
            Fired::NotEnabled => self.failures.push(format!(
                "token {token}: device {dev} member {member}: MSI not enabled, nothing sent"
            )),
            Fired::Latched => {
                let pending = &mut self.devices[dev].msi.as_mut().unwrap().pending;
                match pending.get(&member) {
                    Some(&first) => self.coalesced.push((token, first)),
                    None => {
                        pending.insert(member, token);
                    }
                }
            }
            Fired::Sent(msg) => self.post_via(dev, msg, Some(token), via),
        }
    }

    /// The write reaches the function; whatever an unmask released goes out.
    fn apply(&mut self, dev: usize, w: Write) {
        let address = self.devices[dev].msi.as_ref().unwrap().address;
        match w.width {
            Width::Dword => self.config.write32(address, w.offset, w.value),
            Width::Word => self.config.write16(address, w.offset, w.value as u16),
            Width::Byte => self.config.write8(address, w.offset, w.value as u8),
        }
        let mf = self.devices[dev].msi.as_mut().unwrap();
        let cap = mf.cap;
        let f = self.config.functions.get_mut(&address).unwrap();
        for (member, msg) in msi::release(f, &cap) {
            let token = self.devices[dev]
                .msi
                .as_mut()
                .unwrap()
                .pending
                .remove(&member);
            self.post(dev, msg, token);
        }
    }

    /// The oldest write posted to `dev` lands. False if none was on its way.
    pub fn land_write(&mut self, dev: usize) -> bool {
        let Some(w) = self.devices[dev]
            .msi
            .as_mut()
            .and_then(|f| f.link.land(Path::Config))
        else {
            return false;
        };
        self.apply(dev, w);
        true
    }

    /// Devices with writes on their way, ascending.
    pub fn posted(&self) -> Vec<usize> {
        (0..self.devices.len())
            .filter(|&d| {
                self.devices[d]
                    .msi
                    .as_ref()
                    .is_some_and(|f| f.link.has_posted())
            })
            .collect()
    }

    /// What MSI device `dev`'s member 0 sends now; `None` with MSI off.
    pub fn msi_message(&self, dev: usize) -> Option<MsiMsg> {
        let (f, cap) = self.function_of(dev);
        (msi::enabled_members(f, cap) > 0).then(|| msi::message(f, cap, 0))
    }

    /// What MSI device `dev`'s registers hold now (member 0's message), enabled or not.
    pub fn msi_registers(&self, dev: usize) -> MsiMsg {
        let (f, cap) = self.function_of(dev);
        msi::message(f, cap, 0)
    }

    /// MSI device `dev`'s Mask Bits now (0 without per-vector masking).
    pub fn mask_bits(&self, dev: usize) -> u32 {
        let (f, cap) = self.function_of(dev);
        msi::mask_bits(f, cap)
    }

    /// Is MSI device `dev`'s member 0 masked (`None` without per-vector masking)?
    pub(crate) fn msi_masked(&self, dev: usize) -> Option<bool> {
        let (_, cap) = self.function_of(dev);
        cap.control
            .per_vector_masking()
            .then(|| self.mask_bits(dev) & 1 != 0)
    }

    /// A configuration write to `address`: posted (or landed, with immediate timing);
    /// a device may fire right after it.
    fn config_write(
        &mut self,
        address: PciAddress,
        offset: ConfigOffset,
        width: Width,
        value: u32,
    ) {
        let w = Write {
            offset,
            width,
            value,
        };
        match self.msi_device_at(address) {
            Some(dev) if self.bus.timing == Timing::InFlight => {
                let f = self.devices[dev].msi.as_mut().unwrap();
                f.link.post(Path::Config, w);
            }
            Some(dev) => self.apply(dev, w),
            None => {}
        }
        self.after_write();
    }
}

/// The machine's configuration space, as sluice-pci reaches it (through [`SimConfig`]):
/// every write posted, every read landing what it must and pushing what the function
/// sent first.
impl ConfigAccess for Machine {
    fn config_size(&self, _: PciAddress) -> ConfigSize {
        ConfigSize::Extended
    }

    fn read32(&mut self, address: PciAddress, offset: ConfigOffset) -> u32 {
        if let Some(dev) = self.msi_device_at(address) {
            while self.land_write(dev) {}
            self.flush(dev);
        }
        self.config.read32(address, offset)
    }

    fn write32(&mut self, address: PciAddress, offset: ConfigOffset, value: u32) {
        self.config_write(address, offset, Width::Dword, value);
    }

    fn write16(&mut self, address: PciAddress, offset: ConfigOffset, value: u16) {
        self.config_write(address, offset, Width::Word, u32::from(value));
    }

    fn write8(&mut self, address: PciAddress, offset: ConfigOffset, value: u8) {
        self.config_write(address, offset, Width::Byte, u32::from(value));
    }
}
