//! Source-id validation (VT-d §9.9, IRTE fields SVT, SQ, SID; §5.1.1 on who the
//! requester of an interrupt is): which requester may use an IRTE.
//!
//! | source | SVT | SQ | SID |
//! |---|---|---|---|
//! | PCI function with its own requester id | 1 | 0 | bus:dev.fn |
//! | behind a PCIe-to-PCI bridge | 2 | 0 | start bus << 8 \| end bus |
//! | behind a conventional PCI bridge (alias) | 1 | 0 | the bridge's bus:dev.fn |
//! | I/O APIC | 1 | 0 | from its DMAR device scope |
//! | HPET | 1 | 3 | from its DMAR device scope, function bits ignored |
//!
//! The rules follow Linux (`set_msi_sid`, `set_ioapic_sid`, `set_hpet_sid` in
//! drivers/iommu/intel/irq_remapping.c). Inputs are plain numbers; the caller finds the
//! requester id and the bridges (this crate depends on no other Sluice crate).

use core::fmt;

/// Source-id verification type, IRTE bits 83:82.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Svt {
    /// 0: no verification.
    None,
    /// 1: verify the requester id against SID, masked by SQ.
    RequesterId,
    /// 2: verify that the requester's bus is within SID's bus range.
    BusRange,
    /// 3: reserved.
    Reserved,
}

impl Svt {
    /// Decodes the field (the low two bits of `bits`).
    pub fn from_bits(bits: u8) -> Svt {
        match bits & 3 {
            0 => Svt::None,
            1 => Svt::RequesterId,
            2 => Svt::BusRange,
            _ => Svt::Reserved,
        }
    }
    /// The field's encoding.
    pub fn bits(self) -> u8 {
        match self {
            Svt::None => 0,
            Svt::RequesterId => 1,
            Svt::BusRange => 2,
            Svt::Reserved => 3,
        }
    }
}

/// Source-id qualifier, IRTE bits 81:80: which function-number bits the SVT=1 check
/// ignores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sq {
    /// 0: compare all 16 bits.
    All,
    /// 1: ignore bit 2 (mask 0xfffb).
    IgnoreBit2,
    /// 2: ignore bits 2:1 (mask 0xfff9).
    IgnoreBits2To1,
    /// 3: ignore bits 2:0, the whole function number (mask 0xfff8).
    IgnoreBits2To0,
}

impl Sq {
    /// Decodes the field (the low two bits of `bits`).
    pub fn from_bits(bits: u8) -> Sq {
        match bits & 3 {
            0 => Sq::All,
            1 => Sq::IgnoreBit2,
            2 => Sq::IgnoreBits2To1,
            _ => Sq::IgnoreBits2To0,
        }
    }
    /// The field's encoding.
    pub fn bits(self) -> u8 {
        match self {
            Sq::All => 0,
            Sq::IgnoreBit2 => 1,
            Sq::IgnoreBits2To1 => 2,
            Sq::IgnoreBits2To0 => 3,
        }
    }
    /// The mask applied to both ids before comparing them.
    pub fn mask(self) -> u16 {
        match self {
            Sq::All => 0xffff,
            Sq::IgnoreBit2 => 0xfffb,
            Sq::IgnoreBits2To1 => 0xfff9,
            Sq::IgnoreBits2To0 => 0xfff8,
        }
    }
}

/// How a PCI function's MSIs reach the remapping unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PciPath {
    /// With its own requester id (root bus, PCIe ports and switches).
    Own,
    /// Behind a PCIe-to-PCI(-X) bridge, which forwards conventional-PCI transactions as
    /// (its secondary bus, devfn 0) or with the original id: only the bus can be
    /// checked. `alias_bus` is the bridge's secondary bus (the bus of the alias Linux's
    /// `pci_for_each_dma_alias` reports); the device's own bus ends the range.
    BehindPcieToPciBridge {
        /// The bridge's secondary bus.
        alias_bus: u8,
    },
    /// Behind a conventional PCI bridge on another bus, whose own requester id the
    /// device's transactions carry (QEMU's `pci-bridge`).
    Alias {
        /// The bridge's requester id.
        requester_id: u16,
    },
}

/// A source-id rule that cannot be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceIdError {
    /// A bus range whose start is above its end.
    ReversedBusRange {
        /// The first bus.
        start: u8,
        /// The last bus.
        end: u8,
    },
}

impl fmt::Display for SourceIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceIdError::ReversedBusRange { start, end } => write!(
                f,
                "source-id bus range {:#04x}..={:#04x} starts above its end",
                start, end
            ),
        }
    }
}

/// The SVT, SQ and SID fields of an IRTE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceValidation {
    /// SVT: which check.
    pub svt: Svt,
    /// SQ: which function bits the requester-id check ignores.
    pub sq: Sq,
    /// SID: a requester id, or a bus range (start 15:8, end 7:0).
    pub sid: u16,
}

impl SourceValidation {
    /// No source-id check (SVT 0). Sluice validates every IRTE; this exists for
    /// decoding and for sources with no known id.
    pub const NONE: SourceValidation = SourceValidation {
        svt: Svt::None,
        sq: Sq::All,
        sid: 0,
    };

    /// Exact requester id (SVT 1, SQ 0).
    pub const fn requester(sid: u16) -> SourceValidation {
        SourceValidation {
            svt: Svt::RequesterId,
            sq: Sq::All,
            sid,
        }
    }

    /// Requester's bus within `start..=end` (SVT 2): SID = start << 8 | end (VT-d §9.9).
    pub fn bus_range(start: u8, end: u8) -> Result<SourceValidation, SourceIdError> {
        if start > end {
            return Err(SourceIdError::ReversedBusRange { start, end });
        }
        Ok(SourceValidation {
            svt: Svt::BusRange,
            sq: Sq::All,
            sid: u16::from(start) << 8 | u16::from(end),
        })
    }

    /// A PCI function's MSI/MSI-X with requester id `rid` (bus << 8 | devfn), reaching
    /// the unit by `path`.
    pub fn pci(rid: u16, path: PciPath) -> Result<SourceValidation, SourceIdError> {
        match path {
            PciPath::Own => Ok(SourceValidation::requester(rid)),
            PciPath::BehindPcieToPciBridge { alias_bus } => {
                SourceValidation::bus_range(alias_bus, (rid >> 8) as u8)
            }
            PciPath::Alias { requester_id } => Ok(SourceValidation::requester(requester_id)),
        }
    }

    /// An I/O APIC's remapped interrupts: the source-id of its DMAR device scope.
    pub const fn io_apic(scope_source_id: u16) -> SourceValidation {
        SourceValidation::requester(scope_source_id)
    }

    /// An HPET block's FSB interrupts: the source-id of its DMAR device scope with the
    /// function bits ignored (SQ 3). Some firmware lists one scope per comparator, or the
    /// wrong function; Linux uses SQ 3 for the same reason.
    pub const fn hpet(scope_source_id: u16) -> SourceValidation {
        SourceValidation {
            svt: Svt::RequesterId,
            sq: Sq::IgnoreBits2To0,
            sid: scope_source_id,
        }
    }

    /// Whether a request from `requester` passes this check as the VT-d specification
    /// defines it. (QEMU 10 reads an SVT 2 range the other way round; see the README.)
    pub fn accepts(self, requester: u16) -> bool {
        match self.svt {
            Svt::None => true,
            Svt::RequesterId => requester & self.sq.mask() == self.sid & self.sq.mask(),
            Svt::BusRange => {
                let bus = (requester >> 8) as u8;
                let (start, end) = ((self.sid >> 8) as u8, self.sid as u8);
                (start..=end).contains(&bus)
            }
            Svt::Reserved => false,
        }
    }
}

/// `bus:dev.fn` of a 16-bit requester id, e.g. `00:1f.0`.
pub struct Bdf(pub u16);

impl fmt::Display for Bdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02x}:{:02x}.{}",
            self.0 >> 8,
            (self.0 >> 3) & 0x1f,
            self.0 & 7
        )
    }
}

impl fmt::Display for SourceValidation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.svt {
            Svt::None => write!(f, "SVT 0 (no check)"),
            Svt::RequesterId => write!(
                f,
                "SVT 1 SQ {} SID {} (mask {:#06x})",
                self.sq.bits(),
                Bdf(self.sid),
                self.sq.mask()
            ),
            Svt::BusRange => write!(
                f,
                "SVT 2 buses {:02x}..={:02x}",
                self.sid >> 8,
                self.sid & 0xff
            ),
            Svt::Reserved => write!(f, "SVT 3 (reserved) SID {:#06x}", self.sid),
        }
    }
}
