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
    bootloader::UefiBoot::new(&kernel)
        .create_disk_image(&uefi_path)
        .expect("could not build the UEFI disk image");

    println!("cargo:rustc-env=SLUICE_UEFI_IMAGE={}", uefi_path.display());
    println!("cargo:rustc-env=SLUICE_KERNEL_ELF={}", kernel.display());
}
