//! Host side of Sluice: the disk images build.rs made, QEMU profiles, a serial session
//! that drives the kernel's shell (used by `sluice run` and `sluice bench`, and by the
//! QEMU scenarios under `tests/`), and the benchmark report.

pub mod bench;
pub mod image;
pub mod profile;
pub mod qmp;
pub mod screen;
pub mod session;

/// UEFI GPT disk image with the kernel (built by build.rs).
pub const UEFI_IMAGE: &str = env!("SLUICE_UEFI_IMAGE");
/// The kernel ELF, for GDB.
pub const KERNEL_ELF: &str = env!("SLUICE_KERNEL_ELF");
/// Where the bootloader loads the (position-independent) kernel; GDB needs it.
pub const KERNEL_LOAD_OFFSET: u64 = 0x80_0000_0000;
/// The shell's prompt, as printed by kernel/src/lab/shell/mod.rs.
pub const PROMPT: &str = "sluice> ";

pub use profile::{Profile, QemuConfig};
pub use session::{Outcome, Session};
