//! The HPET description table (IA-PC HPET specification 1.0a §3.2.4). Only what the
//! interrupt plan needs: which block this is, so the DMAR HPET scope whose enumeration
//! id equals the HPET number can be matched to it, as Linux does.

use crate::error::ParseError;
use crate::sdt::{Checksum, SdtHeader, open_table, u8_at, u16_at, u32_at, u64_at};

pub const HPET_FIXED_LEN: usize = 56;
const SIG: [u8; 4] = *b"HPET";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hpet {
    pub header: SdtHeader,
    /// Event Timer Block ID: hardware revision (7:0), comparator count − 1 (12:8),
    /// COUNT_SIZE_CAP (13), LegacyReplacement capable (15), PCI vendor id (31:16).
    pub event_timer_block_id: u32,
    /// Generic Address Structure address space id (0 = system memory).
    pub address_space: u8,
    pub base_address: u64,
    /// The HPET sequence number; DMAR HPET scopes name the block by this.
    pub hpet_number: u8,
    pub min_tick: u16,
    pub page_protection: u8,
}

impl Hpet {
    pub fn parse(bytes: &[u8]) -> Result<Hpet, ParseError> {
        Self::parse_with(bytes, Checksum::Verify)
    }

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

    pub fn comparators(&self) -> u8 {
        (((self.event_timer_block_id >> 8) & 0x1f) + 1) as u8
    }

    pub fn vendor_id(&self) -> u16 {
        (self.event_timer_block_id >> 16) as u16
    }
}
