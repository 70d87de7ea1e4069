//! Every register the shell's `iommu` command shows, read once and printed one per line.

use alloc::vec::Vec;
use core::fmt;

use super::{
    Capability, EventControl, ExtendedCapability, FaultRecording, FaultStatus, GlobalStatus,
    InvalidationCompletionStatus, Iqa, Irta, QueuePointer, RegisterLayout, Version, offset,
};
use crate::hw::Registers;

/// The unit's registers at one moment. Reading has no side effects on VT-d registers
/// (none is read-to-clear), so the shell may take one at any time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// VER.
    pub version: Version,
    /// CAP.
    pub cap: Capability,
    /// ECAP.
    pub ecap: ExtendedCapability,
    /// GSTS.
    pub gsts: GlobalStatus,
    /// FSTS.
    pub fsts: FaultStatus,
    /// FECTL.
    pub fectl: EventControl,
    /// IRTA.
    pub irta: Irta,
    /// IQA.
    pub iqa: Iqa,
    /// IQH.
    pub iqh: QueuePointer,
    /// IQT.
    pub iqt: QueuePointer,
    /// ICS.
    pub ics: InvalidationCompletionStatus,
    /// IECTL.
    pub iectl: EventControl,
    /// Every fault recording register, pending or not.
    pub records: Vec<FaultRecording>,
}

impl Snapshot {
    /// Reads every register now. CAP and ECAP are shown as they read now; the fault
    /// records are read where `layout` (checked when the unit was probed) puts them, so
    /// a CAP that changed since cannot move the reads.
    pub fn read<H: Registers + ?Sized>(hw: &mut H, layout: &RegisterLayout) -> Snapshot {
        let records = layout
            .fault_record_offsets()
            .map(|off| FaultRecording {
                lo: hw.read64(off),
                hi: hw.read64(off + 8),
            })
            .collect();
        Snapshot {
            version: Version(hw.read32(offset::VER)),
            cap: Capability(hw.read64(offset::CAP)),
            ecap: ExtendedCapability(hw.read64(offset::ECAP)),
            gsts: GlobalStatus::from_bits_retain(hw.read32(offset::GSTS)),
            fsts: FaultStatus::from_bits_retain(hw.read32(offset::FSTS)),
            fectl: EventControl::from_bits_retain(hw.read32(offset::FECTL)),
            irta: Irta(hw.read64(offset::IRTA)),
            iqa: Iqa(hw.read64(offset::IQA)),
            iqh: QueuePointer(hw.read64(offset::IQH)),
            iqt: QueuePointer(hw.read64(offset::IQT)),
            ics: InvalidationCompletionStatus(hw.read32(offset::ICS)),
            iectl: EventControl::from_bits_retain(hw.read32(offset::IECTL)),
            records,
        }
    }
}

impl fmt::Display for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.version)?;
        writeln!(f, "{}", self.cap)?;
        writeln!(f, "{}", self.ecap)?;
        writeln!(f, "{}", self.gsts)?;
        writeln!(f, "{}", self.irta)?;
        writeln!(f, "{}", self.iqa)?;
        writeln!(f, "IQH {}, IQT {}", self.iqh, self.iqt)?;
        writeln!(f, "{}", self.ics)?;
        writeln!(f, "FE{}, IE{}", self.fectl, self.iectl)?;
        writeln!(f, "{}", self.fsts)?;
        for (i, r) in self.records.iter().enumerate() {
            write!(f, "[{}] {}", i, r)?;
            if let Some(fault) = crate::fault::Fault::decode(*r) {
                write!(f, " = {}", fault)?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}
