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
    /// Version.
    pub const VER: usize = 0x00;
    /// Capability.
    pub const CAP: usize = 0x08;
    /// Extended capability.
    pub const ECAP: usize = 0x10;
    /// Global command (32-bit).
    pub const GCMD: usize = 0x18;
    /// Global status (32-bit).
    pub const GSTS: usize = 0x1c;
    /// Root table address.
    pub const RTADDR: usize = 0x20;
    /// Context command.
    pub const CCMD: usize = 0x28;
    /// Fault status (32-bit).
    pub const FSTS: usize = 0x34;
    /// Fault event control (32-bit).
    pub const FECTL: usize = 0x38;
    /// Fault event data (32-bit).
    pub const FEDATA: usize = 0x3c;
    /// Fault event address (32-bit).
    pub const FEADDR: usize = 0x40;
    /// Fault event upper address (32-bit).
    pub const FEUADDR: usize = 0x44;
    /// Invalidation queue head.
    pub const IQH: usize = 0x80;
    /// Invalidation queue tail.
    pub const IQT: usize = 0x88;
    /// Invalidation queue address.
    pub const IQA: usize = 0x90;
    /// Invalidation completion status (32-bit).
    pub const ICS: usize = 0x9c;
    /// Invalidation event control (32-bit).
    pub const IECTL: usize = 0xa0;
    /// Invalidation event data (32-bit).
    pub const IEDATA: usize = 0xa4;
    /// Invalidation event address (32-bit).
    pub const IEADDR: usize = 0xa8;
    /// Invalidation event upper address (32-bit).
    pub const IEUADDR: usize = 0xac;
    /// Interrupt remapping table address.
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
