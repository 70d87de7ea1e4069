//! Every register the shell's `iommu` command shows, read once and printed one per line.

use alloc::vec::Vec;
use core::fmt;

use super::{
    CAP, Capability, ECAP, EventControl, ExtendedCapability, FECTL, FSTS, FaultRecording,
    FaultStatus, GSTS, GlobalStatus, ICS, IECTL, IQA, IQH, IQT, IRTA, InvalidationCompletionStatus,
    Iqa, Irta, QueuePointer, RegisterLayout, VER, Version,
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
        let frcd = layout.fault_recording_registers();
        let records = (0..frcd.len())
            .filter_map(|i| frcd.get(i))
            .map(|record| record.read(&hw.registers()))
            .collect();
        let regs = hw.registers();
        Snapshot {
            version: VER.read(&regs),
            cap: CAP.read(&regs),
            ecap: ECAP.read(&regs),
            gsts: GSTS.read(&regs),
            fsts: FSTS.read(&regs),
            fectl: FECTL.read(&regs),
            irta: IRTA.read(&regs),
            iqa: IQA.read(&regs),
            iqh: IQH.read(&regs),
            iqt: IQT.read(&regs),
            ics: ICS.read(&regs),
            iectl: IECTL.read(&regs),
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
