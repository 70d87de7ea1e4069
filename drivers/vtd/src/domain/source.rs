//! Who may send through an entry: the source-id check every IRTE of the domain makes
//! (VT-d §9.9), derived from the irq's source and the platform's DMAR and PCI facts.

use sluice_irq_core::{DmaAlias, IrqError, IrqSource, Result};

use super::binding::Platform;
use crate::source_id::{PciPath, SourceValidation};

/// The check an entry for `source` makes, and — for an I/O APIC input — the pin, which
/// the remappable redirection entry carries in its vector field. A source the domain
/// cannot remap (a vector-only irq, a unit's own fault event), an I/O APIC or HPET block
/// the DMAR names no source-id for, or a bus range that cannot be encoded is refused
/// with `InvalidArgument`: no entry is ever left unchecked.
pub fn entry_source<P: Platform + ?Sized>(
    platform: &P,
    source: &IrqSource,
) -> Result<(SourceValidation, Option<u32>)> {
    match *source {
        IrqSource::Pci { function, .. } => {
            let own = function.own_id();
            let (rid, path) = match function.alias {
                DmaAlias::Own => (own, PciPath::Own),
                DmaAlias::PciBridge => (
                    own,
                    PciPath::Alias {
                        requester_id: function.requester_id,
                    },
                ),
                DmaAlias::PcieToPciBridge => {
                    // The ids that can reach the unit are the bridge's alias and the id
                    // entering the bridge (a conventional bridge below it substitutes its
                    // own, on the bridge's secondary bus). The range ends at that id's
                    // bus, not at the device's: tighter than Linux's, and QEMU 10, which
                    // reads a range backwards, agrees with it whenever it is one bus.
                    let entering = platform.entering_id(&function).unwrap_or(own);
                    (
                        entering,
                        PciPath::BehindPcieToPciBridge {
                            alias_bus: (function.requester_id >> 8) as u8,
                        },
                    )
                }
            };
            let v = SourceValidation::pci(rid, path).map_err(|_| IrqError::InvalidArgument)?;
            Ok((v, None))
        }
        IrqSource::IoApic { id, pin, .. } => {
            let sid = platform
                .io_apic_source_id(id)
                .ok_or(IrqError::InvalidArgument)?;
            Ok((SourceValidation::io_apic(sid), Some(pin)))
        }
        IrqSource::Hpet { block, .. } => {
            let sid = platform
                .hpet_source_id(block)
                .ok_or(IrqError::InvalidArgument)?;
            Ok((SourceValidation::hpet(sid), None))
        }
        _ => Err(IrqError::InvalidArgument),
    }
}
