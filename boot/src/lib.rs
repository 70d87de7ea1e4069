//! Host side of Sluice: the command line, the disk images build.rs made, QEMU
//! profiles, a serial session that drives the kernel's shell (used by `sluice run` and
//! `sluice bench`, and by the QEMU scenarios under `tests/`), stack traces named from
//! the kernel's DWARF, `sluice debug`'s GDB, the benchmark report (beside Linux booted in the same machine, as a table, JSON and an SVG chart), the ACPI tables a
//! user has, and writing a USB stick.

pub mod acpi_input;
pub mod bench;
pub mod chart;
pub mod cli;
pub mod debug;
pub mod image;
pub mod linux;
pub mod profile;
pub mod qmp;
pub mod screen;
pub mod session;
pub mod sitting;
pub mod symbolize;
pub mod usb_write;

/// UEFI GPT disk image with the kernel (built by build.rs).
pub const UEFI_IMAGE: &str = env!("SLUICE_UEFI_IMAGE");
/// The kernel ELF, with its symbols and DWARF (GDB, stack traces).
pub const KERNEL_ELF: &str = env!("SLUICE_KERNEL_ELF");
/// The shell's prompt, as printed by kernel/src/lab/shell/mod.rs.
pub const PROMPT: &str = "sluice> ";

pub use profile::{Profile, QemuConfig};
pub use session::{Outcome, Session};
