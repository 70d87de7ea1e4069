//! The HPET description table (IA-PC HPET specification 1.0a §3.2.4). Only what the
//! interrupt plan needs: which block this is, so the DMAR HPET scope whose enumeration
//! id equals the HPET number can be matched to it, as Linux does.

use crate::error::ParseError;
use crate::sdt::{Checksum, SdtHeader, open_table, u8_at, u16_at, u32_at, u64_at};

/// The table's length before any variable part: header, then 20 bytes of fields.
pub const HPET_FIXED_LEN: usize = 56;
const SIG: [u8; 4] = *b"HPET";

/// A parsed HPET table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hpet {
    /// The common ACPI header.
    pub header: SdtHeader,
    /// Event Timer Block ID: hardware revision (7:0), comparator count − 1 (12:8),
    /// COUNT_SIZE_CAP (13), LegacyReplacement capable (15), PCI vendor id (31:16).
    pub event_timer_block_id: u32,
    /// Generic Address Structure address space id (0 = system memory).
    pub address_space: u8,
    /// Physical address of the register block (Generic Address Structure address).
    pub base_address: u64,
    /// The HPET sequence number; DMAR HPET scopes name the block by this.
    pub hpet_number: u8,
    /// Minimum clock ticks for periodic mode without lost interrupts.
    pub min_tick: u16,
    /// Page protection and OEM attributes.
    pub page_protection: u8,
}

impl Hpet {
    /// Parses an HPET table, verifying its checksum. `bytes` may extend past the table.
    pub fn parse(bytes: &[u8]) -> Result<Hpet, ParseError> {
        Self::parse_with(bytes, Checksum::Verify)
    }

    /// Parses an HPET table, verifying the checksum only if `checksum` says so.
    pub fn parse_with(bytes: &[u8], checksum: Checksum) -> Result<Hpet, ParseError> {
        let (header, t) = open_table(bytes, &SIG, HPET_FIXED_LEN, checksum)?;
        Ok(Hpet {
            header,
            event_timer_block_id: u32_at(t, 36).unwrap_or(0),
            address_space: u8_at(t, 40).unwrap_or(0),
            base_address: u64_at(t, 44).unwrap_or(0),
            hpet_number: u8_at(t, 52).unwrap_or(0),
            min_tick: u16_at(t, 53).unwrap_or(0),
            page_protection: u8_at(t, 55).unwrap_or(0),
        })
    }

    /// How many comparators the block has: bits 12:8 of the event timer block id hold
    /// the count minus one (like the capabilities register's NUM_TIM_CAP), so 1 to 32.
    pub fn comparators(&self) -> u8 {
        // A 5-bit field plus one: at most 32, the saturation never happens.
        (((self.event_timer_block_id >> 8) & 0x1f) as u8).saturating_add(1)
    }

    /// The PCI vendor id of the block's maker (bits 31:16 of the block id).
    pub fn vendor_id(&self) -> u16 {
        (self.event_timer_block_id >> 16) as u16
    }
}
