//! What raises an interrupt: the typed allocation request that every domain of a
//! hierarchy sees, unchanged, from the vector level to the device.
//!
//! A remapping domain builds an IRTE's source-id from it (a PCI function's requester id
//! or its bridge's bus range, an I/O APIC's or HPET's id from the DMAR scopes), an I/O
//! APIC domain takes its pin and line settings from it, an MSI domain its message index.
//! The descriptor keeps it for as long as the irq exists, so `irq N` can say who owns
//! the irq and every chip operation can see it.

use core::fmt;

use crate::msi::Trigger;

/// Polarity of an interrupt line (I/O APIC inputs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Polarity {
    /// Asserted when high (ISA default).
    #[default]
    ActiveHigh,
    /// Asserted when low (PCI INTx, many ACPI overrides).
    ActiveLow,
}

/// How a PCI function's requests reach the IOMMU: under its own id, or under an id a
/// bridge on the way substitutes (PCI Express to PCI/PCI-X Bridge spec 1.0 §2.3; what
/// Linux's `pci_for_each_dma_alias` walks).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DmaAlias {
    /// The function's own bus/device/function.
    #[default]
    Own,
    /// Behind a PCIe-to-PCI/PCI-X bridge: requests carry (the bridge's secondary bus,
    /// devfn 0); an IRTE verifies the bus range from that bus to the device's.
    PcieToPciBridge,
    /// Behind a conventional PCI-to-PCI bridge: requests carry the bridge's own id.
    PciBridge,
}

/// A PCI function as the interrupt hierarchy needs to know it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PciFunction {
    /// PCI segment group.
    pub segment: u16,
    /// Bus number.
    pub bus: u8,
    /// Device number (0..32).
    pub device: u8,
    /// Function number (0..8).
    pub function: u8,
    /// The requester id its MSIs carry as the platform sees them (its own id, or the
    /// alias `alias` describes).
    pub requester_id: u16,
    /// Where `requester_id` comes from.
    pub alias: DmaAlias,
}

impl PciFunction {
    /// A function on its own id (no bridge substitutes one).
    pub fn new(segment: u16, bus: u8, device: u8, function: u8) -> Self {
        Self {
            segment,
            bus,
            device,
            function,
            requester_id: Self::rid(bus, device, function),
            alias: DmaAlias::Own,
        }
    }

    /// `bus << 8 | device << 3 | function`.
    pub fn rid(bus: u8, device: u8, function: u8) -> u16 {
        u16::from(bus) << 8 | u16::from(device & 0x1f) << 3 | u16::from(function & 7)
    }

    /// The function's own id.
    pub fn own_id(&self) -> u16 {
        Self::rid(self.bus, self.device, self.function)
    }
}

impl fmt::Display for PciFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{}",
            self.segment, self.bus, self.device, self.function
        )
    }
}

/// Who raises an interrupt, as an allocation request names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IrqSource {
    /// Nothing below the vector level: the interrupt is raised by IPI (benchmarks,
    /// tests). Only the vector domain serves it.
    VectorOnly,
    /// An I/O APIC input, after the MADT's source overrides were applied.
    IoApic {
        /// I/O APIC id (MADT; the DMAR's I/O APIC scopes use the same id).
        id: u8,
        /// Input pin.
        pin: u32,
        /// Edge or level.
        trigger: Trigger,
        /// Active high or low.
        polarity: Polarity,
    },
    /// Message `index` of a PCI function's MSI or MSI-X capability.
    Pci {
        /// The function.
        function: PciFunction,
        /// MSI message number or MSI-X table entry.
        index: u32,
    },
    /// A comparator of an HPET block delivering through its FSB route.
    Hpet {
        /// The block's HPET number (HPET table; DMAR HPET scopes' enumeration id).
        block: u8,
        /// Comparator (timer) number.
        comparator: u8,
    },
    /// A remapping unit's own fault-event interrupt.
    Iommu {
        /// Index of the unit among the DMAR's DRHDs.
        unit: u32,
    },
}

impl IrqSource {
    /// Trigger mode the source asks for (only I/O APIC lines can be level).
    pub fn trigger(&self) -> Trigger {
        match self {
            IrqSource::IoApic { trigger, .. } => *trigger,
            _ => Trigger::Edge,
        }
    }
}

impl fmt::Display for IrqSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IrqSource::VectorOnly => f.write_str("vector only (IPI)"),
            IrqSource::IoApic {
                id,
                pin,
                trigger,
                polarity,
            } => write!(
                f,
                "I/O APIC {id} pin {pin}, {}, active {}",
                match trigger {
                    Trigger::Edge => "edge",
                    Trigger::Level => "level",
                },
                match polarity {
                    Polarity::ActiveHigh => "high",
                    Polarity::ActiveLow => "low",
                }
            ),
            IrqSource::Pci { function, index } => {
                write!(f, "PCI {function} message {index}")?;
                match function.alias {
                    DmaAlias::Own => Ok(()),
                    DmaAlias::PcieToPciBridge => write!(
                        f,
                        " (requester id {:04x}, behind a PCIe-to-PCI bridge)",
                        function.requester_id
                    ),
                    DmaAlias::PciBridge => write!(
                        f,
                        " (requester id {:04x}, behind a PCI bridge)",
                        function.requester_id
                    ),
                }
            }
            IrqSource::Hpet { block, comparator } => {
                write!(f, "HPET {block} comparator {comparator}")
            }
            IrqSource::Iommu { unit } => write!(f, "IOMMU unit {unit} fault event"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requester_ids_and_display() {
        let f = PciFunction::new(0, 0x12, 3, 1);
        assert_eq!(f.requester_id, 0x1219);
        assert_eq!(f.own_id(), 0x1219);
        assert_eq!(alloc::format!("{f}"), "0000:12:03.1");
        let s = IrqSource::Pci {
            function: PciFunction {
                requester_id: 0x0500,
                alias: DmaAlias::PcieToPciBridge,
                ..PciFunction::new(0, 6, 1, 0)
            },
            index: 2,
        };
        assert_eq!(
            alloc::format!("{s}"),
            "PCI 0000:06:01.0 message 2 (requester id 0500, behind a PCIe-to-PCI bridge)"
        );
        assert_eq!(s.trigger(), Trigger::Edge);
        let io = IrqSource::IoApic {
            id: 0,
            pin: 9,
            trigger: Trigger::Level,
            polarity: Polarity::ActiveLow,
        };
        assert_eq!(io.trigger(), Trigger::Level);
        assert_eq!(
            alloc::format!("{io}"),
            "I/O APIC 0 pin 9, level, active low"
        );
    }
}
