//! A simulated PCI configuration space, for sluice-pci's tests and the simulator's PCI
//! functions.
//!
//! Each function has a 4 KiB configuration space and the register behaviour the crate
//! depends on: read-only id, class and header-type registers; a write-1-to-clear Status
//! register; BARs whose writable bits come from a sizing mask (so writing all ones reads
//! back the size); everything else plain read-write. Functions that do not exist read
//! as all ones. Every write is logged, and writing all ones to a BAR while the function
//! decodes memory or I/O is recorded as a violation (PCI Local Bus 3.0 §6.2.5.1 says to
//! disable decode while sizing).

use std::collections::BTreeMap;

use sluice_pci::{ConfigAccess, ConfigOffset, ConfigSize, PciAddress};

/// Shorthand for a parsed address in tests.
pub fn addr(text: &str) -> PciAddress {
    text.parse()
        .unwrap_or_else(|e| panic!("bad test address {text}: {e}"))
}

/// How a BAR behaves when sized.
#[derive(Debug, Clone, Copy)]
pub enum BarModel {
    /// An I/O BAR.
    Io {
        /// Its address as firmware assigned it.
        address: u32,
        /// Its size in bytes, a power of two.
        size: u32,
    },
    /// A 32-bit memory BAR.
    Memory32 {
        /// Its address as firmware assigned it.
        address: u32,
        /// Its size in bytes, a power of two.
        size: u32,
        /// The prefetchable bit.
        prefetchable: bool,
    },
    /// A 64-bit memory BAR, in two slots.
    Memory64 {
        /// Its address as firmware assigned it.
        address: u64,
        /// Its size in bytes, a power of two.
        size: u64,
        /// The prefetchable bit.
        prefetchable: bool,
    },
    /// Exactly this initial value and writable mask (for nonsense devices).
    Raw {
        /// The dword before sizing.
        initial: u32,
        /// The bits a write changes.
        writable: u32,
    },
}

/// One function's configuration space, and how its BARs behave.
#[derive(Clone)]
pub struct FakeFunction {
    /// The space's bytes (256, or 4096 for PCI Express).
    pub config: Vec<u8>,
    /// Writable bits of each BAR dword (0x10..0x28); zero = not implemented.
    bar_writable: [u32; 6],
    /// Where the last capability's next pointer lives, for appending.
    last_cap_next: Option<u16>,
    next_cap_at: u16,
    last_ext_at: Option<u16>,
    next_ext_at: u16,
}

impl FakeFunction {
    /// A type 0 function; `class` is 0xBBSSPP (base, sub, prog-if).
    pub fn endpoint(vendor: u16, device: u16, class: u32, revision: u8) -> FakeFunction {
        let mut f = FakeFunction {
            config: vec![0; 4096],
            bar_writable: [0; 6],
            last_cap_next: None,
            next_cap_at: 0x40,
            last_ext_at: None,
            next_ext_at: 0x100,
        };
        f.set16(0x00, vendor);
        f.set16(0x02, device);
        f.set32(0x08, (class << 8) | u32::from(revision));
        f
    }

    /// A type 1 PCI-to-PCI bridge with these bus numbers, class 0x060400.
    pub fn bridge(
        vendor: u16,
        device: u16,
        primary: u8,
        secondary: u8,
        subordinate: u8,
    ) -> FakeFunction {
        let mut f = FakeFunction::endpoint(vendor, device, 0x060400, 0);
        f.config[0x0e] = 1;
        f.config[0x18] = primary;
        f.config[0x19] = secondary;
        f.config[0x1a] = subordinate;
        f
    }

    /// Sets the multi-function bit.
    pub fn multi_function(mut self) -> FakeFunction {
        self.config[0x0e] |= 0x80;
        self
    }

    /// Sets the Header Type byte to `value`.
    pub fn with_header_type(mut self, value: u8) -> FakeFunction {
        self.config[0x0e] = value;
        self
    }

    /// Sets the Command register.
    pub fn with_command(mut self, command: u16) -> FakeFunction {
        self.set16(0x04, command);
        self
    }

    /// Sets the Status register.
    pub fn with_status(mut self, status: u16) -> FakeFunction {
        self.set16(0x06, status);
        self
    }

    /// The byte at `offset`.
    pub fn get8(&self, offset: usize) -> u8 {
        self.config[offset]
    }
    /// The little-endian word at `offset`.
    pub fn get16(&self, offset: usize) -> u16 {
        u16::from_le_bytes([self.config[offset], self.config[offset + 1]])
    }
    /// The little-endian dword at `offset`.
    pub fn get32(&self, offset: usize) -> u32 {
        u32::from_le_bytes(self.config[offset..offset + 4].try_into().unwrap())
    }
    /// Stores a byte at `offset`.
    pub fn set8(&mut self, offset: usize, value: u8) {
        self.config[offset] = value;
    }
    /// Stores a little-endian word at `offset`.
    pub fn set16(&mut self, offset: usize, value: u16) {
        self.config[offset..offset + 2].copy_from_slice(&value.to_le_bytes());
    }
    /// Stores a little-endian dword at `offset`.
    pub fn set32(&mut self, offset: usize, value: u32) {
        self.config[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
    }

    /// Puts BAR `index` behind `model`.
    pub fn with_bar(mut self, index: usize, model: BarModel) -> FakeFunction {
        let at = 0x10 + 4 * index;
        match model {
            BarModel::Io { address, size } => {
                self.set32(at, address | 1);
                self.bar_writable[index] = !(size - 1) & 0xffff_fffc;
            }
            BarModel::Memory32 {
                address,
                size,
                prefetchable,
            } => {
                self.set32(at, address | if prefetchable { 8 } else { 0 });
                self.bar_writable[index] = !(size - 1) & 0xffff_fff0;
            }
            BarModel::Memory64 {
                address,
                size,
                prefetchable,
            } => {
                let flags = 0b100 | if prefetchable { 8 } else { 0 };
                self.set32(at, address as u32 | flags);
                self.set32(at + 4, (address >> 32) as u32);
                let mask = !(size - 1);
                self.bar_writable[index] = mask as u32 & 0xffff_fff0;
                self.bar_writable[index + 1] = (mask >> 32) as u32;
            }
            BarModel::Raw { initial, writable } => {
                self.set32(at, initial);
                self.bar_writable[index] = writable;
            }
        }
        self
    }

    /// Append a capability (id, next, then `body` from offset 2) to the standard list,
    /// setting Status.CAP_LIST and the capabilities pointer on the first one.
    pub fn with_cap(mut self, id: u8, body: &[u8]) -> FakeFunction {
        let at = self.next_cap_at;
        let len = (2 + body.len()).div_ceil(4) * 4;
        assert!(usize::from(at) + len <= 256, "fake capabilities overflow");
        self.config[usize::from(at)] = id;
        self.config[usize::from(at) + 1] = 0;
        self.config[usize::from(at) + 2..usize::from(at) + 2 + body.len()].copy_from_slice(body);
        match self.last_cap_next {
            Some(next) => self.config[usize::from(next)] = at as u8,
            None => {
                let pointer = self.cap_pointer_offset();
                self.config[pointer] = at as u8;
                let status = self.get16(0x06) | 0x10;
                self.set16(0x06, status);
            }
        }
        self.last_cap_next = Some(at + 1);
        self.next_cap_at = at + len as u16;
        self
    }

    fn cap_pointer_offset(&self) -> usize {
        if self.config[0x0e] & 0x7f == 2 {
            0x14
        } else {
            0x34
        }
    }

    /// Write a raw capability header (id, next) at `at`; the list is the caller's to
    /// shape (loops, bad pointers). Sets CAP_LIST; `first` also sets the pointer.
    pub fn with_raw_cap(mut self, at: u8, id: u8, next: u8, first: bool) -> FakeFunction {
        self.config[usize::from(at)] = id;
        self.config[usize::from(at) + 1] = next;
        if first {
            let pointer = self.cap_pointer_offset();
            self.config[pointer] = at;
        }
        let status = self.get16(0x06) | 0x10;
        self.set16(0x06, status);
        self
    }

    /// Append an extended capability (PCIe §7.6.3 header, then `body`).
    pub fn with_ext_cap(mut self, id: u16, version: u8, body: &[u8]) -> FakeFunction {
        let at = self.next_ext_at;
        let len = (4 + body.len()).div_ceil(4) * 4;
        assert!(
            usize::from(at) + len <= 4096,
            "fake extended capabilities overflow"
        );
        self.set32(
            usize::from(at),
            u32::from(id) | (u32::from(version & 0xf) << 16),
        );
        self.config[usize::from(at) + 4..usize::from(at) + 4 + body.len()].copy_from_slice(body);
        if let Some(prev) = self.last_ext_at {
            let header = self.get32(usize::from(prev)) & 0x000f_ffff;
            self.set32(usize::from(prev), header | (u32::from(at) << 20));
        }
        self.last_ext_at = Some(at);
        self.next_ext_at = at + len as u16;
        self
    }

    /// Write a raw extended capability header at `at`.
    pub fn with_raw_ext_cap(mut self, at: u16, id: u16, version: u8, next: u16) -> FakeFunction {
        let header = u32::from(id) | (u32::from(version & 0xf) << 16) | (u32::from(next) << 20);
        self.set32(usize::from(at), header);
        self
    }

    /// A PCI Express capability (version 2) with this device/port type.
    pub fn with_pcie(self, port_type: u8) -> FakeFunction {
        let caps: u16 = 2 | (u16::from(port_type & 0xf) << 4);
        let mut body = vec![0u8; 0x3a];
        body[0..2].copy_from_slice(&caps.to_le_bytes());
        self.with_cap(0x10, &body)
    }

    /// An MSI capability: `mmc_log2` vectors capable, 64-bit address or not, per-vector
    /// masking or not.
    pub fn with_msi(self, mmc_log2: u8, is_64bit: bool, per_vector_mask: bool) -> FakeFunction {
        let control: u16 = (u16::from(mmc_log2) << 1)
            | if is_64bit { 1 << 7 } else { 0 }
            | if per_vector_mask { 1 << 8 } else { 0 };
        let len = match (is_64bit, per_vector_mask) {
            (false, false) => 10,
            (true, false) => 14,
            (false, true) => 20,
            (true, true) => 24,
        };
        let mut body = vec![0u8; len - 2];
        body[0..2].copy_from_slice(&control.to_le_bytes());
        self.with_cap(0x05, &body)
    }

    /// An MSI-X capability.
    pub fn with_msix(
        self,
        table_size: u16,
        table_bir: u8,
        table_offset: u32,
        pba_bir: u8,
        pba_offset: u32,
    ) -> FakeFunction {
        let control = (table_size - 1) & 0x7ff;
        let mut body = Vec::new();
        body.extend_from_slice(&control.to_le_bytes());
        body.extend_from_slice(&(table_offset | u32::from(table_bir)).to_le_bytes());
        body.extend_from_slice(&(pba_offset | u32::from(pba_bir)).to_le_bytes());
        self.with_cap(0x11, &body)
    }

    fn bar_index(&self, offset: u16) -> Option<usize> {
        let count = match self.config[0x0e] & 0x7f {
            0 => 6,
            1 => 2,
            _ => 0,
        };
        let index = usize::from(offset.checked_sub(0x10)? / 4);
        (offset >= 0x10 && index < count).then_some(index)
    }
}

/// One write as the fake saw it (always a dword; narrow writes arrive as the trait's
/// default read-modify-write).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoggedWrite {
    /// The function.
    pub address: PciAddress,
    /// The dword's offset.
    pub offset: u16,
    /// The value written.
    pub value: u32,
}

/// A configuration space mechanism over fake functions, which logs what the code under test does to them.
pub struct FakeConfig {
    /// The functions that answer.
    pub functions: BTreeMap<PciAddress, FakeFunction>,
    /// How much configuration space each function has (legacy or ECAM).
    pub size: ConfigSize,
    /// Every write, in order.
    pub writes: Vec<LoggedWrite>,
    /// How many reads were made.
    pub reads: usize,
    /// Writes a function should never have been sent, as messages.
    pub violations: Vec<String>,
}

impl Default for FakeConfig {
    /// An empty ECAM configuration space.
    fn default() -> FakeConfig {
        FakeConfig::ecam()
    }
}

impl FakeConfig {
    /// ECAM: 4 KiB per function.
    pub fn ecam() -> FakeConfig {
        FakeConfig {
            functions: BTreeMap::new(),
            size: ConfigSize::Extended,
            writes: Vec::new(),
            reads: 0,
            violations: Vec::new(),
        }
    }

    /// The legacy port mechanism: 256 bytes per function.
    pub fn legacy() -> FakeConfig {
        FakeConfig {
            size: ConfigSize::Legacy,
            ..FakeConfig::ecam()
        }
    }

    /// Adds `function` at `address` (`"bb:dd.f"`).
    pub fn with(mut self, address: &str, function: FakeFunction) -> FakeConfig {
        self.functions.insert(addr(address), function);
        self
    }

    /// The function at `address`; panics if there is none.
    pub fn function(&self, address: &str) -> &FakeFunction {
        &self.functions[&addr(address)]
    }

    /// The function at `address`, to change; panics if there is none.
    pub fn function_mut(&mut self, address: &str) -> &mut FakeFunction {
        self.functions
            .get_mut(&addr(address))
            .expect("no such fake function")
    }

    fn write_dword(function: &mut FakeFunction, offset: u16, value: u32) -> Option<String> {
        let at = usize::from(offset);
        let old = function.get32(at);
        let new = match offset {
            // Vendor and device ids, revision and class: read-only.
            0x00 | 0x08 => old,
            // Command is read-write; Status bits 8 and 11..=15 are write-1-to-clear,
            // the rest read-only.
            0x04 => {
                let clear = (value >> 16) as u16 & 0xf900;
                let status = (old >> 16) as u16 & !clear;
                (u32::from(status) << 16) | (value & 0xffff)
            }
            // Header type (0x0e) is read-only.
            0x0c => (value & 0xff00_ffff) | (old & 0x00ff_0000),
            _ => match function.bar_index(offset) {
                Some(index) => {
                    let writable = function.bar_writable[index];
                    let command = function.get16(0x04);
                    let problem = (value == u32::MAX && command & 0b11 != 0)
                        .then(|| format!("BAR at {offset:#x} sized with decode on ({command:#x})"));
                    function.set32(at, (value & writable) | (old & !writable));
                    return problem;
                }
                None => value,
            },
        };
        function.set32(at, new);
        None
    }
}

impl ConfigAccess for FakeConfig {
    fn config_size(&self, _address: PciAddress) -> ConfigSize {
        self.size
    }

    fn read32(&mut self, address: PciAddress, offset: ConfigOffset) -> u32 {
        self.reads += 1;
        assert_eq!(offset.get() % 4, 0, "unaligned read32 reached the fake");
        match self.functions.get(&address) {
            Some(f) => f.get32(usize::from(offset.get())),
            None => u32::MAX,
        }
    }

    fn write32(&mut self, address: PciAddress, offset: ConfigOffset, value: u32) {
        assert_eq!(offset.get() % 4, 0, "unaligned write32 reached the fake");
        self.writes.push(LoggedWrite {
            address,
            offset: offset.get(),
            value,
        });
        if let Some(f) = self.functions.get_mut(&address)
            && let Some(problem) = FakeConfig::write_dword(f, offset.get(), value)
        {
            self.violations.push(format!("{address}: {problem}"));
        }
    }
}

/// Builders for the bridges QEMU and PCs have, with QEMU's ids.
pub mod bridges {
    use super::FakeFunction;

    /// PCIe capability device/port types (PCIe Base §7.5.3.2).
    pub const ROOT_PORT: u8 = 4;
    /// Upstream port of a switch.
    pub const UPSTREAM_PORT: u8 = 5;
    /// Downstream port of a switch.
    pub const DOWNSTREAM_PORT: u8 = 6;
    /// PCI Express to PCI/PCI-X bridge.
    pub const PCIE_TO_PCI: u8 = 7;
    /// PCI/PCI-X to PCI Express bridge.
    pub const PCI_TO_PCIE: u8 = 8;

    /// QEMU `pcie-root-port` (1b36:000c).
    pub fn root_port(primary: u8, secondary: u8, subordinate: u8) -> FakeFunction {
        FakeFunction::bridge(0x1b36, 0x000c, primary, secondary, subordinate).with_pcie(ROOT_PORT)
    }

    /// QEMU `pcie-pci-bridge` (1b36:000e).
    pub fn pcie_to_pci(primary: u8, secondary: u8, subordinate: u8) -> FakeFunction {
        FakeFunction::bridge(0x1b36, 0x000e, primary, secondary, subordinate).with_pcie(PCIE_TO_PCI)
    }

    /// QEMU `pci-bridge` (1b36:0001): conventional, no PCIe capability.
    pub fn pci_bridge(primary: u8, secondary: u8, subordinate: u8) -> FakeFunction {
        FakeFunction::bridge(0x1b36, 0x0001, primary, secondary, subordinate)
    }

    /// QEMU `x3130-upstream` / `xio3130-downstream` switch ports.
    pub fn switch_up(primary: u8, secondary: u8, subordinate: u8) -> FakeFunction {
        FakeFunction::bridge(0x104c, 0x8232, primary, secondary, subordinate)
            .with_pcie(UPSTREAM_PORT)
    }
    /// A switch's downstream port with these bus numbers.
    pub fn switch_down(primary: u8, secondary: u8, subordinate: u8) -> FakeFunction {
        FakeFunction::bridge(0x104c, 0x8233, primary, secondary, subordinate)
            .with_pcie(DOWNSTREAM_PORT)
    }

    /// A PCI/PCI-X to PCIe ("reverse") bridge.
    pub fn reverse(primary: u8, secondary: u8, subordinate: u8) -> FakeFunction {
        FakeFunction::bridge(0x8086, 0x0001, primary, secondary, subordinate).with_pcie(PCI_TO_PCIE)
    }

    /// A PCIe endpoint.
    pub fn pcie_endpoint(vendor: u16, device: u16, class: u32) -> FakeFunction {
        FakeFunction::endpoint(vendor, device, class, 0).with_pcie(0)
    }

    /// A conventional endpoint.
    pub fn pci_endpoint(vendor: u16, device: u16, class: u32) -> FakeFunction {
        FakeFunction::endpoint(vendor, device, class, 0)
    }
}

impl std::fmt::Debug for FakeConfig {
    /// The functions with their ids and, for bridges, bus numbers: enough to rebuild a
    /// failing property-test case by hand.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut list = f.debug_list();
        for (address, function) in &self.functions {
            let ids = format!("{:04x}:{:04x}", function.get16(0), function.get16(2));
            if function.get8(0x0e) & 0x7f == 1 {
                list.entry(&format_args!(
                    "{address} {ids} bridge {:02x}/{:02x}/{:02x}",
                    function.get8(0x18),
                    function.get8(0x19),
                    function.get8(0x1a)
                ));
            } else {
                list.entry(&format_args!("{address} {ids}"));
            }
        }
        list.finish()
    }
}
