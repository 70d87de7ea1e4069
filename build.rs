//! Turns the kernel ELF (an artifact dependency built for x86_64-unknown-none) into the
//! disk images the launcher boots: a UEFI GPT image for QEMU and USB sticks.
use std::path::PathBuf;

fn main() {
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let kernel = PathBuf::from(
        std::env::var_os("CARGO_BIN_FILE_SLUICE_KERNEL_sluice-kernel")
            .expect("cargo sets the kernel artifact path (bindeps)"),
    );

    let uefi_path = out_dir.join("sluice-uefi.img");
    // The bootloader's own INFO lines would mix with the kernel's console; keep its
    // warnings (useful on real hardware), drop the chatter.
    let mut boot_config = bootloader::BootConfig::default();
    boot_config.log_level = bootloader_boot_config::LevelFilter::Warn;
    bootloader::UefiBoot::new(&kernel)
        .set_boot_config(&boot_config)
        .create_disk_image(&uefi_path)
        .expect("could not build the UEFI disk image");

    println!("cargo:rustc-env=SLUICE_UEFI_IMAGE={}", uefi_path.display());
    println!("cargo:rustc-env=SLUICE_KERNEL_ELF={}", kernel.display());
}
