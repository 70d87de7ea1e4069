//! The remapping unit's registers (VT-d §11.4): offsets and typed views, each with a
//! one-line text decoder for the shell's `iommu` command.
//!
//! | file | registers |
//! |---|---|
//! | `cap.rs` | VER, CAP, ECAP |
//! | `command.rs` | GCMD, GSTS and the read-modify-write rule for GCMD |
//! | `queue.rs` | IRTA, IQA, IQH/IQT, ICS |
//! | `fault.rs` | FSTS, FECTL/IECTL, fault recording registers |
//! | `layout.rs` | where CAP/ECAP place the fault recording and IOTLB registers, checked |
//! | `snapshot.rs` | all of them read at once, for the shell |

pub mod cap;
pub mod command;
pub mod fault;
pub mod layout;
pub mod queue;
pub mod snapshot;

pub use cap::{Capability, ExtendedCapability, Version};
pub use command::{Command, GlobalCommand, GlobalStatus, gcmd_value};
pub use fault::{EventControl, FaultRecording, FaultStatus};
pub use layout::{RegisterError, RegisterLayout};
pub use queue::{InvalidationCompletionStatus, Iqa, Irta, QueuePointer};
pub use snapshot::Snapshot;

/// Register offsets from the unit's register base (VT-d §11.4, Table "Register Address
/// Map"). Fault recording registers are not at a fixed offset: see
/// [`RegisterLayout::fault_record_offsets`].
pub mod offset {
    pub const VER: usize = 0x00;
    pub const CAP: usize = 0x08;
    pub const ECAP: usize = 0x10;
    pub const GCMD: usize = 0x18;
    pub const GSTS: usize = 0x1c;
    pub const RTADDR: usize = 0x20;
    pub const CCMD: usize = 0x28;
    pub const FSTS: usize = 0x34;
    pub const FECTL: usize = 0x38;
    pub const FEDATA: usize = 0x3c;
    pub const FEADDR: usize = 0x40;
    pub const FEUADDR: usize = 0x44;
    pub const IQH: usize = 0x80;
    pub const IQT: usize = 0x88;
    pub const IQA: usize = 0x90;
    pub const ICS: usize = 0x9c;
    pub const IECTL: usize = 0xa0;
    pub const IEDATA: usize = 0xa4;
    pub const IEADDR: usize = 0xa8;
    pub const IEUADDR: usize = 0xac;
    pub const IRTA: usize = 0xb8;

    /// The register's name, for traces and test failure messages.
    pub fn name(offset: usize) -> &'static str {
        match offset {
            VER => "VER",
            CAP => "CAP",
            ECAP => "ECAP",
            GCMD => "GCMD",
            GSTS => "GSTS",
            RTADDR => "RTADDR",
            CCMD => "CCMD",
            FSTS => "FSTS",
            FECTL => "FECTL",
            FEDATA => "FEDATA",
            FEADDR => "FEADDR",
            FEUADDR => "FEUADDR",
            IQH => "IQH",
            IQT => "IQT",
            IQA => "IQA",
            ICS => "ICS",
            IECTL => "IECTL",
            IEDATA => "IEDATA",
            IEADDR => "IEADDR",
            IEUADDR => "IEUADDR",
            IRTA => "IRTA",
            _ => "FRCD/other",
        }
    }
}

/// Bits `lo..lo+len` of `value`.
pub(crate) const fn bits(value: u64, lo: u32, len: u32) -> u64 {
    (value >> lo) & ((1u64 << len) - 1)
}

/// Bit `n` of `value`.
pub(crate) const fn bit(value: u64, n: u32) -> bool {
    (value >> n) & 1 == 1
}

/// Writes `" NAME"` for each set flag, or `" none"` when none is.
pub(crate) fn write_flags(
    f: &mut core::fmt::Formatter<'_>,
    flags: &[(&str, bool)],
) -> core::fmt::Result {
    let mut any = false;
    for (name, on) in flags {
        if *on {
            write!(f, " {}", name)?;
            any = true;
        }
    }
    if !any {
        write!(f, " none")?;
    }
    Ok(())
}
