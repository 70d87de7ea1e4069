//! GCMD (offset 0x18, write-only) and GSTS (offset 0x1c, read-only), VT-d §11.4.4.
//!
//! GCMD has no memory of its own: every write is a complete command, and a bit written
//! as 0 turns its function off. So a command is built from what is on now — GSTS — and
//! the one change wanted ([`gcmd_value`]). GSTS also reports one-shot completions
//! (RTPS, FLS, WBFS, IRTPS) that are not states; writing those bits back to GCMD would
//! repeat the one-shot operation, so they are masked out (VT-d §11.4.4.1; Linux masks
//! GSTS with 0x96ffffff for the same reason).

use core::fmt;

use bitflags::bitflags;

use super::write_flags;

bitflags! {
    /// GCMD_REG bits (VT-d §11.4.4.1).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct GlobalCommand: u32 {
        /// Translation enable (DMA remapping).
        const TE = 1 << 31;
        /// Set root table pointer (one-shot).
        const SRTP = 1 << 30;
        /// Set fault log (one-shot).
        const SFL = 1 << 29;
        /// Enable advanced fault logging.
        const EAFL = 1 << 28;
        /// Write buffer flush (one-shot).
        const WBF = 1 << 27;
        /// Queued invalidation enable.
        const QIE = 1 << 26;
        /// Interrupt remapping enable.
        const IRE = 1 << 25;
        /// Set interrupt remap table pointer (one-shot).
        const SIRTP = 1 << 24;
        /// Compatibility format interrupts allowed (clear to block them).
        const CFI = 1 << 23;
    }
}

bitflags! {
    /// GSTS_REG bits (VT-d §11.4.4.2), at the same positions as their GCMD commands.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct GlobalStatus: u32 {
        /// Translation enable status.
        const TES = 1 << 31;
        /// Root table pointer status: the last SRTP completed.
        const RTPS = 1 << 30;
        /// Fault log status: the last SFL completed.
        const FLS = 1 << 29;
        /// Advanced fault logging status.
        const AFLS = 1 << 28;
        /// Write buffer flush status: set while a flush is in progress.
        const WBFS = 1 << 27;
        /// Queued invalidation enable status.
        const QIES = 1 << 26;
        /// Interrupt remapping enable status.
        const IRES = 1 << 25;
        /// Interrupt remap table pointer status: the last SIRTP completed.
        const IRTPS = 1 << 24;
        /// Compatibility format interrupt status: compatibility-format interrupts pass.
        const CFIS = 1 << 23;
    }
}

impl GlobalStatus {
    /// The status bits that reflect a persistent state, and so must be written back to
    /// GCMD unchanged: TES, AFLS, QIES, IRES, CFIS. Everything else — the one-shot
    /// completions and reserved bits 22:0 — is written as zero.
    pub const PERSISTENT: GlobalStatus = GlobalStatus::TES
        .union(GlobalStatus::AFLS)
        .union(GlobalStatus::QIES)
        .union(GlobalStatus::IRES)
        .union(GlobalStatus::CFIS);
}

impl fmt::Display for GlobalStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GSTS {:#010x}:", self.bits())?;
        write_flags(
            f,
            &[
                ("TES", self.contains(GlobalStatus::TES)),
                ("RTPS", self.contains(GlobalStatus::RTPS)),
                ("FLS", self.contains(GlobalStatus::FLS)),
                ("AFLS", self.contains(GlobalStatus::AFLS)),
                ("WBFS", self.contains(GlobalStatus::WBFS)),
                ("QIES", self.contains(GlobalStatus::QIES)),
                ("IRES", self.contains(GlobalStatus::IRES)),
                ("IRTPS", self.contains(GlobalStatus::IRTPS)),
                ("CFIS", self.contains(GlobalStatus::CFIS)),
            ],
        )
    }
}

impl fmt::Display for GlobalCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GCMD {:#010x}:", self.bits())?;
        write_flags(
            f,
            &[
                ("TE", self.contains(GlobalCommand::TE)),
                ("SRTP", self.contains(GlobalCommand::SRTP)),
                ("SFL", self.contains(GlobalCommand::SFL)),
                ("EAFL", self.contains(GlobalCommand::EAFL)),
                ("WBF", self.contains(GlobalCommand::WBF)),
                ("QIE", self.contains(GlobalCommand::QIE)),
                ("IRE", self.contains(GlobalCommand::IRE)),
                ("SIRTP", self.contains(GlobalCommand::SIRTP)),
                ("CFI", self.contains(GlobalCommand::CFI)),
            ],
        )
    }
}

/// The name of a single GSTS bit, for messages.
pub fn status_name(bit: GlobalStatus) -> &'static str {
    const NAMES: [(GlobalStatus, &str); 9] = [
        (GlobalStatus::TES, "TES"),
        (GlobalStatus::RTPS, "RTPS"),
        (GlobalStatus::FLS, "FLS"),
        (GlobalStatus::AFLS, "AFLS"),
        (GlobalStatus::WBFS, "WBFS"),
        (GlobalStatus::QIES, "QIES"),
        (GlobalStatus::IRES, "IRES"),
        (GlobalStatus::IRTPS, "IRTPS"),
        (GlobalStatus::CFIS, "CFIS"),
    ];
    NAMES
        .iter()
        .find(|(b, _)| *b == bit)
        .map_or("(several bits)", |(_, n)| n)
}

/// One change to the unit's global state: turn a persistent function on or off, or
/// fire a one-shot operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// TE: DMA translation on or off.
    TranslationEnable(bool),
    /// EAFL: advanced fault logging on or off.
    AdvancedFaultLogging(bool),
    /// QIE: queued invalidation on or off.
    QueuedInvalidation(bool),
    /// IRE: interrupt remapping on or off.
    InterruptRemapping(bool),
    /// `true` lets compatibility-format interrupts through; `false` blocks them.
    CompatibilityFormat(bool),
    /// SRTP: latch RTADDR.
    SetRootTablePointer,
    /// SFL: latch the advanced fault log pointer.
    SetFaultLog,
    /// WBF: flush the write buffer.
    WriteBufferFlush,
    /// SIRTP: latch IRTA.
    SetInterruptRemapTablePointer,
}

impl Command {
    /// The GCMD bit this command writes.
    pub fn command_bit(self) -> GlobalCommand {
        match self {
            Command::TranslationEnable(_) => GlobalCommand::TE,
            Command::AdvancedFaultLogging(_) => GlobalCommand::EAFL,
            Command::QueuedInvalidation(_) => GlobalCommand::QIE,
            Command::InterruptRemapping(_) => GlobalCommand::IRE,
            Command::CompatibilityFormat(_) => GlobalCommand::CFI,
            Command::SetRootTablePointer => GlobalCommand::SRTP,
            Command::SetFaultLog => GlobalCommand::SFL,
            Command::WriteBufferFlush => GlobalCommand::WBF,
            Command::SetInterruptRemapTablePointer => GlobalCommand::SIRTP,
        }
    }

    /// The GSTS bit that reports completion, and the value it has once done. Persistent
    /// commands are done when their status equals the request; one-shots when their
    /// status is set, except the write-buffer flush, whose status is set while the flush
    /// is in progress and clears when it is done.
    pub fn completion(self) -> (GlobalStatus, bool) {
        let status = GlobalStatus::from_bits_retain(self.command_bit().bits());
        match self {
            Command::TranslationEnable(on)
            | Command::AdvancedFaultLogging(on)
            | Command::QueuedInvalidation(on)
            | Command::InterruptRemapping(on)
            | Command::CompatibilityFormat(on) => (status, on),
            Command::WriteBufferFlush => (status, false),
            Command::SetRootTablePointer
            | Command::SetFaultLog
            | Command::SetInterruptRemapTablePointer => (status, true),
        }
    }
}

/// The value to write to GCMD to carry out `command` without disturbing anything else:
/// the persistent bits of `gsts` as they are, with the command's bit set or cleared
/// (VT-d §11.4.4.1: "software must read GSTS, and write back its state with the one
/// field changed").
pub fn gcmd_value(gsts: GlobalStatus, command: Command) -> GlobalCommand {
    let keep = GlobalCommand::from_bits_retain((gsts & GlobalStatus::PERSISTENT).bits());
    let bit = command.command_bit();
    match command {
        Command::TranslationEnable(false)
        | Command::AdvancedFaultLogging(false)
        | Command::QueuedInvalidation(false)
        | Command::InterruptRemapping(false)
        | Command::CompatibilityFormat(false) => keep - bit,
        _ => keep | bit,
    }
}
