//! Every misuse of the interrupt core is reported as an [`IrqError`] value.
//!
//! Library code never panics: a kernel that gets one of these can print it in the shell
//! (`affinity 4 7` -> "cpu 7 is offline") and carry on.

use core::fmt;

use crate::cpumask::CpuId;
use crate::vector::Vector;

/// A virtual interrupt number (Linux's "irq"): the index of a descriptor.
pub type Virq = u32;

/// Why an interrupt-core operation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IrqError {
    /// No descriptor (or no domain level) exists for this virtual irq.
    UnknownIrq(Virq),
    /// No domain with this id / no domain accepted the firmware specifier.
    UnknownDomain,
    /// The descriptor already has a handler, a vector move is still in flight, or the slot
    /// is taken. Retry later (a move completes on the first interrupt at its new target).
    Busy,
    /// No free vector (or hardware irq, or virq) is left where it was asked for.
    NoSpace,
    /// The requested CPU mask is empty, or names CPUs that do not exist.
    InvalidMask,
    /// The request targets only offline CPUs.
    OfflineTarget(CpuId),
    /// The CPU number is out of range for this machine.
    InvalidCpu(CpuId),
    /// The vector is a system vector, outside 0x20..=0xff, or not allocated where claimed.
    InvalidVector(Vector),
    /// Managed interrupts keep the affinity the kernel gave them; users may not change it.
    ManagedAffinity,
    /// The operation makes no sense in the irq's current state (e.g. activating twice).
    InvalidState,
    /// A parameter is malformed (non power-of-two vector count, hwirq out of range, ...).
    InvalidArgument,
    /// The chip or storage does not support this operation (e.g. masking non-maskable MSI).
    Unsupported,
    /// Refused to take the last online CPU offline.
    LastCpu,
    /// No multi-MSI block with this id (never reserved, or torn down).
    UnknownBlock,
    /// No online CPU (of the mask asked for) has this many contiguous, aligned free vectors
    /// for a multi-MSI block — the count is the block's size.
    NoBlockSpace(u32),
    /// A queued storage's command (or room in its queue) did not come in time.
    Timeout,
    /// This irq's storage must be waited for (a queued message whose device copy targets
    /// the CPU): it cannot be moved inside stop_machine. CPU offline moves such irqs in
    /// its first stage, before stop_machine; meeting one in the second refuses the
    /// offline, changing nothing.
    NeedsWait(Virq),
    /// The plan is not the one the irq's hardware waits for any more (withdrawn, replaced
    /// by a newer affinity change, settled by CPU hotplug, or the irq released): it was
    /// refused and nothing changed.
    StalePlan,
}

impl fmt::Display for IrqError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IrqError::UnknownIrq(v) => write!(f, "irq {v} does not exist"),
            IrqError::UnknownDomain => write!(f, "no such interrupt domain"),
            IrqError::Busy => write!(f, "busy (move in flight or slot taken)"),
            IrqError::NoSpace => write!(f, "no space left"),
            IrqError::InvalidMask => write!(f, "invalid cpu mask"),
            IrqError::OfflineTarget(c) => write!(f, "cpu {c} is offline"),
            IrqError::InvalidCpu(c) => write!(f, "cpu {c} does not exist"),
            IrqError::InvalidVector(v) => write!(f, "vector {:#04x} is not allocatable here", v.0),
            IrqError::ManagedAffinity => write!(f, "managed irq: affinity is fixed by the kernel"),
            IrqError::InvalidState => write!(f, "invalid in the irq's current state"),
            IrqError::InvalidArgument => write!(f, "invalid argument"),
            IrqError::Unsupported => write!(f, "operation not supported by this chip"),
            IrqError::LastCpu => write!(f, "refusing to offline the last online cpu"),
            IrqError::UnknownBlock => write!(f, "no such multi-MSI block"),
            IrqError::Timeout => write!(f, "a queued storage command did not complete in time"),
            IrqError::NeedsWait(v) => write!(
                f,
                "irq {v}'s storage is behind a command queue and still targets the cpu: it must move before stop_machine"
            ),
            IrqError::StalePlan => write!(
                f,
                "the affinity change was superseded before its plan ran (nothing written)"
            ),
            IrqError::NoBlockSpace(n) => write!(
                f,
                "no online cpu has {n} aligned free vectors for a multi-MSI block"
            ),
        }
    }
}

/// Result alias used throughout the crate.
pub type Result<T> = core::result::Result<T, IrqError>;
