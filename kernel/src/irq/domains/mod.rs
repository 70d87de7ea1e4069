//! One file per box of the interrupt hierarchy (README "The interrupt hierarchy"):
//! each binds a domain of the interrupt core (`sluice-irq-core`) to the hardware that
//! stores its messages or routes.
//!
//! ```text
//! VECTOR (vector.rs) ─┬─ INTEL-IR-n (intel_ir.rs) ─┬─ IR-PCI-MSI  (pci_msi.rs)
//!                     │                            ├─ IR-IO-APIC  (ioapic.rs)
//!                     │                            └─ IR-HPET-MSI (hpet_msi.rs)
//!                     ├─ DMAR-MSI (dmar_msi.rs)       never remapped
//!                     └─ without remapping: PCI-MSI, IO-APIC, HPET-MSI directly
//! ```
//!
//! How the boxes are put together from the interrupt plan is `irq::hierarchy`.

pub mod dmar_msi;
pub mod hpet_msi;
pub mod intel_ir;
pub mod ioapic;
pub mod pci_msi;
pub mod vector;
