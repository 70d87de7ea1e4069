//! The remapping unit's registers (VT-d §11.4): typed constants (`CAP.read(&block)` is
//! a [`Capability`]) and the typed views they hold, each with a one-line text decoder
//! for the shell's `iommu` command.
//!
//! | file | registers |
//! |---|---|
//! | `map.rs` | every fixed-offset register as a `Reg<T, A>` of its width and access; `name` |
//! | `value.rs` | how each view converts from and to its register's raw bits |
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
pub mod map;
pub mod queue;
pub mod snapshot;
mod value;

pub use cap::{Capability, ExtendedCapability, Version};
pub use command::{Command, GlobalCommand, GlobalStatus, gcmd_value};
pub use fault::{EventControl, FaultRecording, FaultStatus};
pub use layout::{RegisterError, RegisterLayout};
pub use map::{
    CAP, CCMD, ECAP, FEADDR, FECTL, FEDATA, FEUADDR, FRCD_HIGH, FRCD_LOW, FSTS, GCMD, GSTS, ICS,
    IEADDR, IECTL, IEDATA, IEUADDR, IQA, IQH, IQT, IRTA, RTADDR, VER, name,
};
pub use queue::{InvalidationCompletionStatus, Iqa, Irta, QueuePointer};
pub use snapshot::Snapshot;

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
