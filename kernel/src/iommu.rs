//! What the kernel knows of the platform's IOMMUs (from the DMAR table).

use crate::println;

pub fn print_summary() {
    match &crate::acpi::platform().dmar {
        None => println!("IOMMU: none (no DMAR table): interrupt remapping unavailable"),
        Some(raw) => println!("IOMMU: DMAR table present ({} bytes)", raw.len()),
    }
}
