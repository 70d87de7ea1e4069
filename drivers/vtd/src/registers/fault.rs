//! FSTS (fault status), FECTL/IECTL (event control) and the 128-bit fault recording
//! registers, as raw bit fields (VT-d §11.4, "Fault Status", "Fault Event Control",
//! "Fault Recording Registers"). What a record means is decoded in [`crate::fault`].

use core::fmt;

use bitflags::bitflags;

use super::{bit, bits, write_flags};

bitflags! {
    /// FSTS_REG (offset 0x34). PFO, AFO, IQE, ICE and ITE are write-1-to-clear; PPF
    /// and APF follow the fault recording registers' F bits; FRI (bits 15:8) is the
    /// index of the first pending fault record.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct FaultStatus: u32 {
        /// Primary fault overflow: a fault was dropped because every record was full.
        const PFO = 1 << 0;
        /// Primary pending fault: some fault recording register has F set.
        const PPF = 1 << 1;
        /// Advanced fault overflow.
        const AFO = 1 << 2;
        /// Advanced pending fault.
        const APF = 1 << 3;
        /// Invalidation queue error: the descriptor at IQH is invalid; the queue is
        /// stopped until software clears this bit (VT-d §6.5.2.10).
        const IQE = 1 << 4;
        /// Invalidation completion error (device-TLB).
        const ICE = 1 << 5;
        /// Invalidation time-out error (device-TLB).
        const ITE = 1 << 6;
        /// Fault record index: the first pending fault record.
        const FRI = 0xff << 8;
    }
}

impl FaultStatus {
    /// The write-1-to-clear error bits.
    pub const ERRORS: FaultStatus = FaultStatus::PFO
        .union(FaultStatus::AFO)
        .union(FaultStatus::IQE)
        .union(FaultStatus::ICE)
        .union(FaultStatus::ITE);

    /// FRI, bits 15:8.
    pub fn fri(self) -> u8 {
        bits(u64::from(self.bits()), 8, 8) as u8
    }
}

impl fmt::Display for FaultStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FSTS {:#010x}: FRI {},", self.bits(), self.fri())?;
        write_flags(
            f,
            &[
                ("PFO", self.contains(FaultStatus::PFO)),
                ("PPF", self.contains(FaultStatus::PPF)),
                ("AFO", self.contains(FaultStatus::AFO)),
                ("APF", self.contains(FaultStatus::APF)),
                ("IQE", self.contains(FaultStatus::IQE)),
                ("ICE", self.contains(FaultStatus::ICE)),
                ("ITE", self.contains(FaultStatus::ITE)),
            ],
        )
    }
}

bitflags! {
    /// FECTL_REG (0x38) and IECTL_REG (0xa0): interrupt mask and pending. IM is set at
    /// reset; clearing it sends an event held while masked (IP).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct EventControl: u32 {
        /// Interrupt mask: events are held, not sent.
        const IM = 1 << 31;
        /// Interrupt pending: an event was held while masked.
        const IP = 1 << 30;
    }
}

impl fmt::Display for EventControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CTL {:#010x}:", self.bits())?;
        write_flags(
            f,
            &[
                ("IM", self.contains(EventControl::IM)),
                ("IP", self.contains(EventControl::IP)),
            ],
        )
    }
}

/// One 128-bit fault recording register, as two 64-bit halves (`lo` at the register's
/// offset, `hi` at offset + 8).
///
/// | bits | field |
/// |---|---|
/// | 63:12 | FI: faulting page address; for interrupt remapping faults the IRTE index in 63:48 |
/// | 79:64 | SID: requester's source-id |
/// | 92 | T2: type bit 2 (VT-d 3.0+) |
/// | 93 / 94 / 95 | PRIV / EXE / PP (PASID present) |
/// | 103:96 | FR: fault reason |
/// | 123:104 | PV: PASID |
/// | 125:124 | AT: address type |
/// | 126 | T1: type bit 1 (0 write, 1 read) |
/// | 127 | F: fault, write 1 to clear |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FaultRecording {
    /// Bits 63:0: the fault information (FI, 63:12).
    pub lo: u64,
    /// Bits 127:64: source id, reason, type and F.
    pub hi: u64,
}

impl FaultRecording {
    /// F as it sits in the high half: write `hi` = this to clear the record.
    pub const F_HI: u64 = 1 << 63;

    /// F, bit 127: the record holds a fault.
    pub fn fault(self) -> bool {
        bit(self.hi, 63)
    }
    /// FI, bits 63:12, in place (low 12 bits zero).
    pub fn fault_info(self) -> u64 {
        self.lo & !0xfff
    }
    /// SID, bits 79:64: the requester id.
    pub fn source_id(self) -> u16 {
        bits(self.hi, 0, 16) as u16
    }
    /// T2, bit 92: type bit 2.
    pub fn t2(self) -> bool {
        bit(self.hi, 28)
    }
    /// PRIV, bit 93: a privileged-mode request.
    pub fn privilege(self) -> bool {
        bit(self.hi, 29)
    }
    /// EXE, bit 94: an execute request.
    pub fn execute(self) -> bool {
        bit(self.hi, 30)
    }
    /// PP, bit 95: the request carried a PASID.
    pub fn pasid_present(self) -> bool {
        bit(self.hi, 31)
    }
    /// FR, bits 103:96: the fault reason.
    pub fn reason(self) -> u8 {
        bits(self.hi, 32, 8) as u8
    }
    /// PV, bits 123:104: the PASID, when PP is set.
    pub fn pasid(self) -> u32 {
        bits(self.hi, 40, 20) as u32
    }
    /// AT, bits 125:124: the request's address type.
    pub fn address_type(self) -> u8 {
        bits(self.hi, 60, 2) as u8
    }
    /// T1, bit 126: type bit 1 (0 write, 1 read).
    pub fn t1(self) -> bool {
        bit(self.hi, 62)
    }
}

impl fmt::Display for FaultRecording {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "FRCD {:#018x}_{:016x}: F {}, FR {:#04x}, SID {:#06x}, FI {:#x}, T1 {} T2 {}, AT {}, PP {} PV {:#x}",
            self.hi,
            self.lo,
            u8::from(self.fault()),
            self.reason(),
            self.source_id(),
            self.fault_info(),
            u8::from(self.t1()),
            u8::from(self.t2()),
            self.address_type(),
            u8::from(self.pasid_present()),
            self.pasid()
        )
    }
}
