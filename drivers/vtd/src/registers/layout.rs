//! Where a unit's variable-offset registers lie, from CAP and ECAP, checked before any of
//! them becomes an offset (VT-d §11.4.2 CAP.FRO/NFR, §11.4.3 ECAP.IRO).
//!
//! Most registers sit at fixed offsets below 0xf0. Two blocks are placed by the unit
//! itself: the fault recording registers (CAP.FRO · 16, CAP.NFR + 1 of 16 bytes each)
//! and the IOTLB registers (ECAP.IRO · 16, 16 bytes). A unit that places one of them over
//! the fixed registers or over the other would have the driver read a fault record from,
//! say, ECAP, and clear it by writing bit 63 to GCMD. Real units put them at 0x100–0x500;
//! QEMU at 0x220 and 0xf0.
//!
//! CAP and ECAP are read once, here; the sequences then take offsets only from a checked
//! [`RegisterLayout`], and the binding maps [`RegisterLayout::window`] bytes, so a unit
//! whose CAP changes between reads cannot send an access past the mapping.

use core::fmt;
use core::ops::Range;

use sluice_regs::{ReadOnly, RegArray};

use super::{CAP, Capability, ECAP, ExtendedCapability, FaultRecording};
use crate::hw::Registers;

/// The first byte after the fixed-offset registers: PEUADDR at 0xec is the last (VT-d
/// §11.4, register address map). The variable blocks must start at or after it.
pub const FIXED_END: usize = 0xf0;

/// Bytes of IOTLB registers at ECAP.IRO · 16: IVA, then IOTLB.
const IOTLB_BYTES: usize = 16;
/// Bytes per fault recording register.
const RECORD_BYTES: usize = 16;

/// CAP or ECAP describes a register layout no unit can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterError {
    /// CAP or ECAP reads all ones, or CAP reads 0: nothing answers at the register base
    /// (a master abort reads all ones).
    NotAnswering {
        /// CAP as read.
        cap: u64,
        /// ECAP as read.
        ecap: u64,
    },
    /// The block `what` at `start..end` overlaps `with`.
    Overlap {
        /// The block.
        what: &'static str,
        /// Its first byte.
        start: usize,
        /// The byte after it.
        end: usize,
        /// The block it overlaps.
        with: &'static str,
    },
}

impl fmt::Display for RegisterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegisterError::NotAnswering { cap, ecap } => write!(
                f,
                "no unit answers (CAP reads {:#x}, ECAP {:#x})",
                cap, ecap
            ),
            RegisterError::Overlap {
                what,
                start,
                end,
                with,
            } => write!(
                f,
                "the unit places its {} at {:#x}..{:#x}, over {}",
                what, start, end, with
            ),
        }
    }
}

/// CAP and ECAP, read once, with the variable register blocks checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegisterLayout {
    cap: Capability,
    ecap: ExtendedCapability,
}

impl RegisterLayout {
    /// Checks a CAP/ECAP pair.
    pub fn new(cap: Capability, ecap: ExtendedCapability) -> Result<RegisterLayout, RegisterError> {
        if cap.0 == 0 || cap.0 == u64::MAX || ecap.0 == u64::MAX {
            return Err(RegisterError::NotAnswering {
                cap: cap.0,
                ecap: ecap.0,
            });
        }
        let layout = RegisterLayout { cap, ecap };
        let records = layout.fault_records();
        let iotlb = layout.iotlb();
        let fixed = 0..FIXED_END;
        let overlaps = |a: &Range<usize>, b: &Range<usize>| a.start < b.end && b.start < a.end;
        let checks = [
            (
                "fault recording registers",
                &records,
                "the fixed registers",
                &fixed,
            ),
            ("IOTLB registers", &iotlb, "the fixed registers", &fixed),
            (
                "fault recording registers",
                &records,
                "the IOTLB registers",
                &iotlb,
            ),
        ];
        for (what, block, with, other) in checks {
            if overlaps(block, other) {
                return Err(RegisterError::Overlap {
                    what,
                    start: block.start,
                    end: block.end,
                    with,
                });
            }
        }
        Ok(layout)
    }

    /// Reads CAP and ECAP (once each) and checks them.
    pub fn read<H: Registers + ?Sized>(hw: &mut H) -> Result<RegisterLayout, RegisterError> {
        let cap = CAP.read(&hw.registers());
        let ecap = ECAP.read(&hw.registers());
        RegisterLayout::new(cap, ecap)
    }

    /// CAP as read.
    pub fn cap(&self) -> Capability {
        self.cap
    }
    /// ECAP as read.
    pub fn ecap(&self) -> ExtendedCapability {
        self.ecap
    }

    /// The fault recording registers' bytes (at most 0x3ff0 + 256 · 16).
    pub fn fault_records(&self) -> Range<usize> {
        let start = self.cap.fault_recording_offset();
        start..start + self.cap.fault_recording_count() * RECORD_BYTES
    }

    /// The fault recording registers, in register order.
    pub fn fault_recording_registers(&self) -> RegArray<FaultRecording, ReadOnly> {
        RegArray::new(
            self.cap.fault_recording_offset(),
            RECORD_BYTES,
            self.cap.fault_recording_count(),
        )
    }

    /// Byte offsets of the fault recording registers, in register order.
    pub fn fault_record_offsets(&self) -> impl Iterator<Item = usize> + use<> {
        self.fault_records().step_by(RECORD_BYTES)
    }

    /// The IOTLB registers' bytes (IVA and IOTLB). This crate never accesses them.
    pub fn iotlb(&self) -> Range<usize> {
        let start = self.ecap.iotlb_offset();
        start..start + IOTLB_BYTES
    }

    /// Bytes from the register base that the driver may access: the binding must map at
    /// least this many (at most 0x4ff0, whatever the unit says).
    pub fn window(&self) -> usize {
        self.fault_records().end.max(FIXED_END)
    }
}
