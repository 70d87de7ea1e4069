//! Interrupt remapping table entries in remapped format (VT-d §9.9; the posted format of
//! §9.10, IM = 1, is recognised but not built).
//!
//! | bits | field |
//! |---|---|
//! | 0 | P: present |
//! | 1 | FPD: fault processing disable |
//! | 2 | DM: destination mode (0 physical, 1 logical) |
//! | 3 | RH: redirection hint |
//! | 4 | TM: trigger mode (0 edge, 1 level) |
//! | 7:5 | DLM: delivery mode |
//! | 11:8 | AVAIL: for software |
//! | 14:12 | reserved |
//! | 15 | IM: 0 remapped, 1 posted |
//! | 23:16 | V: vector |
//! | 31:24 | reserved |
//! | 63:32 | DST: x2APIC id (EIME set) or xAPIC id in 47:40 (EIME clear; 39:32 and 63:48 reserved) |
//! | 79:64 | SID |
//! | 81:80 | SQ |
//! | 83:82 | SVT |
//! | 127:84 | reserved |
//!
//! Everything that changes when an interrupt moves — vector and destination — is in the
//! low 64 bits, so an affinity change is one 64-bit store ([`Irte::with_target`]).

use core::fmt;

use crate::source_id::{Bdf, SourceValidation, Sq, Svt};

/// Delivery mode, IRTE bits 7:5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryMode {
    /// Fixed (0): the vector, to the destination.
    Fixed,
    /// Lowest priority (1): the vector, to one of the destinations.
    LowestPriority,
    /// SMI (2).
    Smi,
    /// NMI (4).
    Nmi,
    /// INIT (5).
    Init,
    /// ExtINT (7).
    ExtInt,
}

impl DeliveryMode {
    /// The mode for a 3-bit field, or `None` for the reserved values 3 and 6.
    pub fn from_bits(bits: u8) -> Option<DeliveryMode> {
        Some(match bits & 7 {
            0 => DeliveryMode::Fixed,
            1 => DeliveryMode::LowestPriority,
            2 => DeliveryMode::Smi,
            4 => DeliveryMode::Nmi,
            5 => DeliveryMode::Init,
            7 => DeliveryMode::ExtInt,
            _ => return None,
        })
    }
    /// The DLM field's encoding.
    pub fn bits(self) -> u8 {
        match self {
            DeliveryMode::Fixed => 0,
            DeliveryMode::LowestPriority => 1,
            DeliveryMode::Smi => 2,
            DeliveryMode::Nmi => 4,
            DeliveryMode::Init => 5,
            DeliveryMode::ExtInt => 7,
        }
    }
    /// Whether the vector field means anything in this mode.
    pub fn uses_vector(self) -> bool {
        matches!(self, DeliveryMode::Fixed | DeliveryMode::LowestPriority)
    }
    /// The mode's name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            DeliveryMode::Fixed => "fixed",
            DeliveryMode::LowestPriority => "lowest-priority",
            DeliveryMode::Smi => "SMI",
            DeliveryMode::Nmi => "NMI",
            DeliveryMode::Init => "INIT",
            DeliveryMode::ExtInt => "ExtINT",
        }
    }
}

/// Trigger mode, IRTE bit 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerMode {
    /// Edge-triggered (0).
    Edge,
    /// Level-triggered (1).
    Level,
}

/// Destination mode, IRTE bit 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestinationMode {
    /// Physical: the destination is one APIC id (0).
    Physical,
    /// Logical: the destination is a logical APIC id or cluster (1).
    Logical,
}

/// An IRTE that cannot be built, or a raw entry that does not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IrteError {
    /// An APIC id above 255 without extended interrupt mode: it does not fit bits 47:40.
    DestinationNeedsEim(u32),
    /// Vectors 0..=15 are architecturally reserved; a fixed or lowest-priority
    /// interrupt on one is an illegal-vector APIC error.
    ReservedVector(u8),
    /// AVAIL is 4 bits.
    AvailTooWide(u8),
    /// Decoding: P is clear.
    NotPresent,
    /// Decoding: IM is set, a posted-format entry (§9.10), which this crate does not use.
    Posted,
    /// Decoding: reserved bits are set (`low`/`high`: the offending bits).
    ReservedBits {
        /// The set reserved bits of bits 63:0.
        low: u64,
        /// The set reserved bits of bits 127:64.
        high: u64,
    },
    /// Decoding: delivery mode 3 or 6.
    ReservedDeliveryMode(u8),
}

impl fmt::Display for IrteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IrteError::DestinationNeedsEim(d) => write!(
                f,
                "APIC id {:#x} does not fit an xAPIC IRTE destination (needs EIM)",
                d
            ),
            IrteError::ReservedVector(v) => write!(f, "vector {:#x} is reserved (0..=15)", v),
            IrteError::AvailTooWide(a) => write!(f, "AVAIL {:#x} is wider than 4 bits", a),
            IrteError::NotPresent => write!(f, "IRTE not present"),
            IrteError::Posted => write!(f, "IRTE is in posted format (IM set)"),
            IrteError::ReservedBits { low, high } => {
                write!(f, "IRTE reserved bits set: high {:#x} low {:#x}", high, low)
            }
            IrteError::ReservedDeliveryMode(m) => write!(f, "IRTE delivery mode {} is reserved", m),
        }
    }
}

/// The typed contents of a remapped-format IRTE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemappedEntry {
    /// V, bits 23:16.
    pub vector: u8,
    /// The APIC id: 8 bits without EIM, 32 bits with.
    pub destination: u32,
    /// TM, bit 4.
    pub trigger: TriggerMode,
    /// DLM, bits 7:5.
    pub delivery: DeliveryMode,
    /// DM, bit 2.
    pub destination_mode: DestinationMode,
    /// RH, bit 3: with logical destinations, deliver to one of them.
    pub redirection_hint: bool,
    /// FPD, bit 1: faults from this entry are not recorded.
    pub fault_processing_disable: bool,
    /// 4 bits for software.
    pub available: u8,
    /// SVT, SQ and SID, bits 83:64.
    pub source: SourceValidation,
}

impl RemappedEntry {
    /// A fixed-delivery, physical-destination entry: what Sluice uses for device
    /// interrupts.
    pub fn fixed(
        vector: u8,
        destination: u32,
        trigger: TriggerMode,
        source: SourceValidation,
    ) -> RemappedEntry {
        RemappedEntry {
            vector,
            destination,
            trigger,
            delivery: DeliveryMode::Fixed,
            destination_mode: DestinationMode::Physical,
            redirection_hint: false,
            fault_processing_disable: false,
            available: 0,
            source,
        }
    }

    /// The present entry, for a table whose IRTA.EIME is `eim`.
    pub fn encode(&self, eim: bool) -> Result<Irte, IrteError> {
        if self.delivery.uses_vector() && self.vector < 0x10 {
            return Err(IrteError::ReservedVector(self.vector));
        }
        if self.available > 0xf {
            return Err(IrteError::AvailTooWide(self.available));
        }
        let vector = if self.delivery.uses_vector() {
            self.vector
        } else {
            0
        };
        let low = 1
            | u64::from(self.fault_processing_disable) << 1
            | u64::from(self.destination_mode == DestinationMode::Logical) << 2
            | u64::from(self.redirection_hint) << 3
            | u64::from(self.trigger == TriggerMode::Level) << 4
            | u64::from(self.delivery.bits()) << 5
            | u64::from(self.available) << 8
            | u64::from(vector) << 16
            | destination_field(self.destination, eim)? << 32;
        let high = u64::from(self.source.sid)
            | u64::from(self.source.sq.bits()) << 16
            | u64::from(self.source.svt.bits()) << 18;
        Ok(Irte { low, high })
    }
}

/// DST, bits 63:32, for an APIC id.
fn destination_field(destination: u32, eim: bool) -> Result<u64, IrteError> {
    if eim {
        Ok(u64::from(destination))
    } else if destination <= 0xff {
        Ok(u64::from(destination) << 8)
    } else {
        Err(IrteError::DestinationNeedsEim(destination))
    }
}

/// One 128-bit IRTE as stored in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Irte {
    low: u64,
    high: u64,
}

/// Reserved bits of a remapped-format IRTE regardless of mode: 14:12 and 31:24.
const RESERVED_LOW: u64 = 0x7 << 12 | 0xff << 24;
/// With EIME clear, DST bits 39:32 and 63:48 are reserved too.
const RESERVED_LOW_XAPIC: u64 = 0xff << 32 | 0xffff << 48;
/// Bits 127:84.
const RESERVED_HIGH: u64 = !0xf_ffff;
const IM: u64 = 1 << 15;

impl Irte {
    /// An all-zero entry: not present.
    pub const NOT_PRESENT: Irte = Irte { low: 0, high: 0 };

    /// A present, fixed, physical entry for `vector` on APIC id `destination`.
    pub fn remapped(
        vector: u8,
        destination: u32,
        trigger: TriggerMode,
        source: SourceValidation,
        eim: bool,
    ) -> Result<Irte, IrteError> {
        RemappedEntry::fixed(vector, destination, trigger, source).encode(eim)
    }

    /// The entry with these halves (bits 63:0, bits 127:64).
    pub const fn from_halves(low: u64, high: u64) -> Irte {
        Irte { low, high }
    }
    /// Bits 63:0: P, modes, vector, destination.
    pub const fn low(self) -> u64 {
        self.low
    }
    /// Bits 127:64: source-id fields.
    pub const fn high(self) -> u64 {
        self.high
    }

    /// P, bit 0.
    pub fn present(self) -> bool {
        self.low & 1 != 0
    }
    /// FPD, bit 1.
    pub fn fault_processing_disable(self) -> bool {
        self.low & 2 != 0
    }
    /// IM, bit 15: a posted-format entry.
    pub fn posted(self) -> bool {
        self.low & IM != 0
    }
    /// V, bits 23:16.
    pub fn vector(self) -> u8 {
        (self.low >> 16) as u8
    }
    /// DST, bits 63:32, raw.
    pub fn destination_field(self) -> u32 {
        (self.low >> 32) as u32
    }
    /// The APIC id as a unit with IRTA.EIME = `eim` reads it.
    pub fn destination(self, eim: bool) -> u32 {
        if eim {
            self.destination_field()
        } else {
            (self.destination_field() >> 8) & 0xff
        }
    }
    /// SVT, SQ and SID.
    pub fn source(self) -> SourceValidation {
        SourceValidation {
            svt: Svt::from_bits((self.high >> 18) as u8),
            sq: Sq::from_bits((self.high >> 16) as u8),
            sid: self.high as u16,
        }
    }

    /// The reserved bits that are set, as (low, high) masks, for a table with
    /// IRTA.EIME = `eim` (VT-d §9.9). Both zero for a well-formed remapped entry.
    pub fn reserved_bits(self, eim: bool) -> (u64, u64) {
        let low_mask = RESERVED_LOW | if eim { 0 } else { RESERVED_LOW_XAPIC };
        (self.low & low_mask, self.high & RESERVED_HIGH)
    }

    /// The typed contents of a present remapped-format entry.
    pub fn decode(self, eim: bool) -> Result<RemappedEntry, IrteError> {
        if !self.present() {
            return Err(IrteError::NotPresent);
        }
        if self.posted() {
            return Err(IrteError::Posted);
        }
        let (low, high) = self.reserved_bits(eim);
        if low | high != 0 {
            return Err(IrteError::ReservedBits { low, high });
        }
        let dlm = ((self.low >> 5) & 7) as u8;
        let delivery = DeliveryMode::from_bits(dlm).ok_or(IrteError::ReservedDeliveryMode(dlm))?;
        Ok(RemappedEntry {
            vector: self.vector(),
            destination: self.destination(eim),
            trigger: if self.low & 1 << 4 != 0 {
                TriggerMode::Level
            } else {
                TriggerMode::Edge
            },
            delivery,
            destination_mode: if self.low & 1 << 2 != 0 {
                DestinationMode::Logical
            } else {
                DestinationMode::Physical
            },
            redirection_hint: self.low & 1 << 3 != 0,
            fault_processing_disable: self.fault_processing_disable(),
            available: ((self.low >> 8) & 0xf) as u8,
            source: self.source(),
        })
    }

    /// The same entry aimed at `vector` on `destination`: only the low half changes, so
    /// a live entry can be retargeted with one 64-bit store (docs/architecture.md, the first way to change affinity).
    pub fn with_target(self, vector: u8, destination: u32, eim: bool) -> Result<Irte, IrteError> {
        if vector < 0x10 {
            return Err(IrteError::ReservedVector(vector));
        }
        let dst = destination_field(destination, eim)?;
        let low = (self.low & !(0xff << 16) & 0xffff_ffff) | u64::from(vector) << 16 | dst << 32;
        Ok(Irte { low, ..self })
    }

    /// A one-line description for a table with IRTA.EIME = `eim`.
    pub fn display(self, eim: bool) -> IrteText {
        IrteText { irte: self, eim }
    }
}

/// Text form of an IRTE (the shell's `irq N`): decoded fields and the raw value.
pub struct IrteText {
    irte: Irte,
    eim: bool,
}

impl fmt::Display for IrteText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let irte = self.irte;
        write!(f, "IRTE {:#018x}_{:016x}: ", irte.high, irte.low)?;
        match irte.decode(self.eim) {
            Ok(e) => write!(
                f,
                "vector {:#04x} -> {} {:#x}, {}, {}, {}{}{}, AVAIL {:#x}, {}",
                e.vector,
                if self.eim { "x2APIC" } else { "xAPIC" },
                e.destination,
                e.delivery.name(),
                match e.destination_mode {
                    DestinationMode::Physical => "physical",
                    DestinationMode::Logical => "logical",
                },
                match e.trigger {
                    TriggerMode::Edge => "edge",
                    TriggerMode::Level => "level",
                },
                if e.redirection_hint { ", RH" } else { "" },
                if e.fault_processing_disable {
                    ", FPD"
                } else {
                    ""
                },
                e.available,
                e.source
            ),
            Err(IrteError::NotPresent) if irte.low | irte.high == 0 => write!(f, "not present"),
            Err(err) => write!(
                f,
                "{} (vector {:#04x}, DST {:#x}, SID {})",
                err,
                irte.vector(),
                irte.destination_field(),
                Bdf(irte.high as u16)
            ),
        }
    }
}
