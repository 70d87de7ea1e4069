pub const UEFI_IMAGE: &str = env!("SLUICE_UEFI_IMAGE");
