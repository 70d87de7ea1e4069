//! Where an HPET block's FSB interrupts (HPET-MSI) go, decided from the plan alone —
//! the same decision the domain tree of [`InterruptPlan::domains`] encodes, given with
//! its reason so the kernel can say why HPET-MSI is not offered.
//!
//! * Without interrupt remapping: `HPET-MSI-n` directly under VECTOR, compatibility-format
//!   messages (32-bit address: the FSB route has no upper address word).
//! * With remapping, when a DRHD's device scope names the block: `IR-HPET-MSI-n` under
//!   that unit's `INTEL-IR-u`, each comparator's IRTE validating the scope's source-id
//!   with SQ=3 (function bits ignored: some firmware lists one scope per comparator or
//!   gets the function wrong; Linux does the same).
//! * With remapping and no scope naming the block: not offered. Its messages would reach
//!   the unit with a source-id no IRTE could be written to validate, and a
//!   compatibility-format message is blocked under remapping. Linux gives up HPET-MSI
//!   in this case too (its HPET driver then finds no MSI parent domain).

use alloc::string::String;

use crate::plan::{DomainKind, InterruptPlan, ScopeSource};

/// HPET-MSI's place for one HPET block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HpetMsi {
    /// `HPET-MSI-n` under VECTOR.
    Direct,
    /// `IR-HPET-MSI-n` under `INTEL-IR-<unit>`, validating `source` with SQ=3.
    Remapped {
        /// The unit's position among the DRHDs.
        unit: usize,
        /// The source-id its IRTEs validate, from the scope naming the block.
        source: ScopeSource,
    },
    /// Not offered.
    Refused(Refusal),
}

/// Why a block has no HPET-MSI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Neither the HPET table nor any DMAR scope names this block.
    UnknownBlock {
        /// The HPET number asked about.
        number: u8,
    },
    /// Remapping is on and no DRHD device scope names the block.
    NoScopeUnderRemapping {
        /// The block's HPET number.
        number: u8,
    },
    /// Remapping is on and a scope names the block, but with no path to take a
    /// source-id from.
    ScopeWithoutPath {
        /// The block's HPET number.
        number: u8,
        /// The unit whose scope names it.
        unit: usize,
    },
    /// Remapping is off and only a DMAR scope names the block: no HPET table says where
    /// its registers are.
    NotInHpetTable {
        /// The block's HPET number.
        number: u8,
    },
}

impl InterruptPlan {
    /// HPET-MSI's place for HPET block `number` (the HPET table's sequence number, the
    /// DMAR scopes' enumeration id).
    pub fn hpet_msi(&self, number: u8) -> HpetMsi {
        let Some(h) = self.hpets.iter().find(|h| h.number == number) else {
            return HpetMsi::Refused(Refusal::UnknownBlock { number });
        };
        if self.remapping.enabled() {
            match (h.unit, &h.source) {
                (Some(unit), Some(source)) => HpetMsi::Remapped {
                    unit,
                    source: source.clone(),
                },
                (Some(unit), None) => HpetMsi::Refused(Refusal::ScopeWithoutPath { number, unit }),
                (None, _) => HpetMsi::Refused(Refusal::NoScopeUnderRemapping { number }),
            }
        } else if h.in_hpet_table {
            HpetMsi::Direct
        } else {
            HpetMsi::Refused(Refusal::NotInHpetTable { number })
        }
    }
}

impl HpetMsi {
    /// The name of the domain as built (Linux's: `HPET-MSI-n`, and its chip
    /// `IR-HPET-MSI` under remapping), or `None` when refused.
    pub fn domain_name(&self, number: u8) -> Option<String> {
        let kind = DomainKind::HpetMsi { n: number };
        match self {
            HpetMsi::Direct => Some(kind.core_name(None)),
            HpetMsi::Remapped { unit, .. } => Some(kind.core_name(Some(*unit))),
            HpetMsi::Refused(_) => None,
        }
    }

    /// The chip name of its irqs (`irqs` shows `HPET-MSI->APIC`).
    pub fn chip_name(&self) -> Option<&'static str> {
        match self {
            HpetMsi::Direct => Some("HPET-MSI"),
            HpetMsi::Remapped { .. } => Some("IR-HPET-MSI"),
            HpetMsi::Refused(_) => None,
        }
    }
}

impl core::fmt::Display for Refusal {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Refusal::UnknownBlock { number } => {
                write!(f, "neither the HPET table nor the DMAR names HPET {number}")
            }
            Refusal::NoScopeUnderRemapping { number } => write!(
                f,
                "interrupt remapping is on and no DMAR device scope names HPET {number}, so no IRTE could validate the source of its messages, and compatibility-format messages are blocked under remapping (Linux offers no HPET-MSI here either)"
            ),
            Refusal::ScopeWithoutPath { number, unit } => write!(
                f,
                "the DMAR scope naming HPET {number} (unit {unit}) has no path, so no source-id"
            ),
            Refusal::NotInHpetTable { number } => write!(
                f,
                "HPET {number} is named by a DMAR scope only: no HPET table says where its registers are"
            ),
        }
    }
}
