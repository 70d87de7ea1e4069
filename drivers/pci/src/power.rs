//! The power management capability (id 0x01, PCI Bus Power Management Interface spec
//! 1.2 §3.2): which device states a function supports and which one it is in. A
//! function in D3hot answers configuration reads but decodes neither memory nor I/O and
//! sends no MSI, so a listing should show it.

use crate::access::{ConfigAccess, ConfigError};
use crate::address::PciAddress;
use crate::capability::Capability;
use crate::register::Register;

/// Power Management Capabilities (PMC), relative to the capability (§3.2.3).
pub const PMC: Register<u16> = Register::new(0x02);
/// Power Management Control/Status (PMCSR, §3.2.4). PME_Status (bit 15) is
/// write-1-to-clear.
pub const PMCSR: Register<u16> = Register::new(0x04);

/// PMCSR bits 1:0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerState {
    /// Fully on.
    D0,
    /// Light sleep (optional).
    D1,
    /// Deeper sleep (optional).
    D2,
    /// Off, but with power and configuration space still answering.
    D3Hot,
}

impl PowerState {
    /// Decodes PMCSR bits 1:0.
    pub const fn from_bits(bits: u16) -> PowerState {
        match bits & 3 {
            0 => PowerState::D0,
            1 => PowerState::D1,
            2 => PowerState::D2,
            _ => PowerState::D3Hot,
        }
    }

    /// The state's name as lspci prints it.
    pub const fn name(self) -> &'static str {
        match self {
            PowerState::D0 => "D0",
            PowerState::D1 => "D1",
            PowerState::D2 => "D2",
            PowerState::D3Hot => "D3hot",
        }
    }
}

/// The decoded power management capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PowerManagement {
    /// Where the capability starts in configuration space.
    pub offset: u16,
    /// PMC bits 2:0: 2 = PM 1.1, 3 = PM 1.2.
    pub version: u8,
    /// PMC bit 9: D1 is supported.
    pub d1_supported: bool,
    /// PMC bit 10: D2 is supported.
    pub d2_supported: bool,
    /// PMC bits 15:11: states from which the function can assert PME, bit 0 = D0 ..
    /// bit 4 = D3cold.
    pub pme_support: u8,
    /// The current power state (PMCSR bits 1:0).
    pub state: PowerState,
    /// PMCSR bit 3: leaving D3hot keeps the function's state (no internal reset).
    pub no_soft_reset: bool,
    /// PMCSR bit 8: PME# generation is enabled.
    pub pme_enabled: bool,
    /// PMCSR bit 15: the function asserted PME# (write-1-to-clear).
    pub pme_status: bool,
}

impl PowerManagement {
    /// Decodes the capability at `offset` from its PMC and PMCSR registers.
    pub fn from_registers(offset: u16, pmc: u16, pmcsr: u16) -> PowerManagement {
        PowerManagement {
            offset,
            version: (pmc & 7) as u8,
            d1_supported: pmc & (1 << 9) != 0,
            d2_supported: pmc & (1 << 10) != 0,
            pme_support: (pmc >> 11) as u8,
            state: PowerState::from_bits(pmcsr),
            no_soft_reset: pmcsr & (1 << 3) != 0,
            pme_enabled: pmcsr & (1 << 8) != 0,
            pme_status: pmcsr & (1 << 15) != 0,
        }
    }

    /// Reads the capability found at `capability` (which must be a power management one).
    pub fn read<A: ConfigAccess>(
        access: &mut A,
        address: PciAddress,
        capability: Capability,
    ) -> Result<PowerManagement, ConfigError> {
        let pmc = access.read_reg(address, capability.register(PMC))?;
        let pmcsr = access.read_reg(address, capability.register(PMCSR))?;
        Ok(PowerManagement::from_registers(
            capability.offset,
            pmc,
            pmcsr,
        ))
    }
}
