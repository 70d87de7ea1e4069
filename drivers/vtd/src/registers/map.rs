//! The register address map (VT-d §11.4, "Register Address Map"): each fixed-offset
//! register as a typed constant, with the width and access the specification gives it,
//! so reading CAP as 32 bits, writing GSTS or reading GCMD does not compile.
//!
//! The fault recording registers are not at a fixed offset: CAP places them
//! ([`super::Capability::fault_recording_registers`], checked by
//! [`super::RegisterLayout`]); [`FRCD_LOW`] and [`FRCD_HIGH`] are their halves relative
//! to a record.

use sluice_regs::{ReadOnly, Reg, WriteOnly};

use super::{
    Capability, EventControl, ExtendedCapability, FaultStatus, GlobalCommand, GlobalStatus,
    InvalidationCompletionStatus, Iqa, Irta, QueuePointer, Version,
};

/// VER_REG, 32-bit, read-only (§11.4.1).
pub const VER: Reg<Version, ReadOnly> = Reg::new(0x00);
/// CAP_REG, 64-bit, read-only (§11.4.2).
pub const CAP: Reg<Capability, ReadOnly> = Reg::new(0x08);
/// ECAP_REG, 64-bit, read-only (§11.4.3).
pub const ECAP: Reg<ExtendedCapability, ReadOnly> = Reg::new(0x10);
/// GCMD_REG, 32-bit, write-only (§11.4.4.1): a command is built from GSTS
/// ([`super::gcmd_value`]), never from a read of GCMD.
pub const GCMD: Reg<GlobalCommand, WriteOnly> = Reg::new(0x18);
/// GSTS_REG, 32-bit, read-only (§11.4.4.2).
pub const GSTS: Reg<GlobalStatus, ReadOnly> = Reg::new(0x1c);
/// RTADDR_REG, 64-bit. Not used for interrupt remapping.
pub const RTADDR: Reg<u64> = Reg::new(0x20);
/// CCMD_REG, 64-bit. Not used for interrupt remapping.
pub const CCMD: Reg<u64> = Reg::new(0x28);
/// FSTS_REG, 32-bit; its status bits are written 1 to clear.
pub const FSTS: Reg<FaultStatus> = Reg::new(0x34);
/// FECTL_REG, 32-bit.
pub const FECTL: Reg<EventControl> = Reg::new(0x38);
/// FEDATA_REG, 32-bit: the fault event's message data.
pub const FEDATA: Reg<u32> = Reg::new(0x3c);
/// FEADDR_REG, 32-bit: the fault event's message address.
pub const FEADDR: Reg<u32> = Reg::new(0x40);
/// FEUADDR_REG, 32-bit: the fault event's upper address (x2APIC ids).
pub const FEUADDR: Reg<u32> = Reg::new(0x44);
/// IQH_REG, 64-bit, read-only: only the unit moves the head.
pub const IQH: Reg<QueuePointer, ReadOnly> = Reg::new(0x80);
/// IQT_REG, 64-bit.
pub const IQT: Reg<QueuePointer> = Reg::new(0x88);
/// IQA_REG, 64-bit.
pub const IQA: Reg<Iqa> = Reg::new(0x90);
/// ICS_REG, 32-bit; IWC is written 1 to clear.
pub const ICS: Reg<InvalidationCompletionStatus> = Reg::new(0x9c);
/// IECTL_REG, 32-bit.
pub const IECTL: Reg<EventControl> = Reg::new(0xa0);
/// IEDATA_REG, 32-bit.
pub const IEDATA: Reg<u32> = Reg::new(0xa4);
/// IEADDR_REG, 32-bit.
pub const IEADDR: Reg<u32> = Reg::new(0xa8);
/// IEUADDR_REG, 32-bit.
pub const IEUADDR: Reg<u32> = Reg::new(0xac);
/// IRTA_REG, 64-bit.
pub const IRTA: Reg<Irta> = Reg::new(0xb8);

/// A fault recording register's low half (bits 63:0, the fault information), relative
/// to the record: place it with [`Reg::at`].
pub const FRCD_LOW: Reg<u64, ReadOnly> = Reg::new(0);
/// A fault recording register's high half (bits 127:64), relative to the record. F
/// (bit 63 of this half) is written 1 to clear; the rest is read-only.
pub const FRCD_HIGH: Reg<u64> = Reg::new(8);

/// The register's name, for traces and test failure messages.
pub fn name(offset: usize) -> &'static str {
    const NAMES: [(usize, &str); 21] = [
        (VER.offset(), "VER"),
        (CAP.offset(), "CAP"),
        (ECAP.offset(), "ECAP"),
        (GCMD.offset(), "GCMD"),
        (GSTS.offset(), "GSTS"),
        (RTADDR.offset(), "RTADDR"),
        (CCMD.offset(), "CCMD"),
        (FSTS.offset(), "FSTS"),
        (FECTL.offset(), "FECTL"),
        (FEDATA.offset(), "FEDATA"),
        (FEADDR.offset(), "FEADDR"),
        (FEUADDR.offset(), "FEUADDR"),
        (IQH.offset(), "IQH"),
        (IQT.offset(), "IQT"),
        (IQA.offset(), "IQA"),
        (ICS.offset(), "ICS"),
        (IECTL.offset(), "IECTL"),
        (IEDATA.offset(), "IEDATA"),
        (IEADDR.offset(), "IEADDR"),
        (IEUADDR.offset(), "IEUADDR"),
        (IRTA.offset(), "IRTA"),
    ];
    NAMES
        .iter()
        .find(|(o, _)| *o == offset)
        .map_or("FRCD/other", |(_, n)| n)
}
