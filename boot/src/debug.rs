//! `sluice debug`: QEMU paused with its GDB stub, and GDB attached with the kernel's
//! symbols where the bootloader maps the kernel, stopped at `kmain`.
//!
//! The kernel is position-independent and the bootloader relocates it (see
//! `symbolize::KERNEL_LOAD_BASE`), so the symbols are loaded with `symbol-file ELF -o
//! OFFSET`. The breakpoint is a hardware one (`hbreak`): when GDB connects, the guest
//! is at the reset vector and the kernel's pages do not exist yet, so a software
//! breakpoint could not be written into them.

use std::path::{Path, PathBuf};

/// The kernel's entry as GDB names it (`bootloader_api::entry_point!(kmain)`).
pub const ENTRY: &str = "sluice_kernel::kmain";

/// A TCP port on the loopback interface that nothing listens on now (the kernel picks
/// it; it is released for QEMU to take a moment later).
pub fn free_local_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free local port for QEMU's GDB stub: {e}"))
}

/// `$GDB` if set, else `rust-gdb` (GDB with Rust's pretty-printers; it needs `gdb`),
/// else `gdb`.
pub fn find_gdb() -> Result<PathBuf, String> {
    if let Some(g) = std::env::var_os("GDB") {
        return Ok(PathBuf::from(g));
    }
    let gdb = in_path("gdb").ok_or(
        "gdb not found: install it (Debian: sudo apt-get install gdb), or set GDB to its path",
    )?;
    Ok(in_path("rust-gdb").unwrap_or(gdb))
}

fn in_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// GDB's arguments: symbols at `offset`, connect to the stub on `port`, a hardware
/// breakpoint at the entry, continue to it; then `extra` (say `-batch -ex bt`).
pub fn gdb_args(elf: &Path, offset: u64, port: u16, extra: &[String]) -> Vec<String> {
    let mut a: Vec<String> = vec!["-q".into()];
    let mut ex = |cmd: String| {
        a.push("-ex".into());
        a.push(cmd);
    };
    // Quitting GDB ends the session without a question about the live target.
    ex("set confirm off".into());
    ex(format!("symbol-file {} -o {offset:#x}", elf.display()));
    ex(format!("target remote 127.0.0.1:{port}"));
    ex(format!("hbreak {ENTRY}"));
    ex("continue".into());
    a.extend(extra.iter().cloned());
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gdb_loads_symbols_at_the_offset_and_runs_to_the_entry() {
        let a = gdb_args(
            Path::new("/k/sluice-kernel"),
            0x80_0000_0000,
            40123,
            &["-batch".into(), "-ex".into(), "bt".into()],
        );
        let s = a.join(" ");
        assert_eq!(
            s,
            "-q -ex set confirm off -ex symbol-file /k/sluice-kernel -o 0x8000000000 \
             -ex target remote 127.0.0.1:40123 -ex hbreak sluice_kernel::kmain -ex continue \
             -batch -ex bt"
        );
    }

    #[test]
    fn a_free_port_is_free() {
        let p = free_local_port().unwrap();
        std::net::TcpListener::bind(("127.0.0.1", p)).expect("the port can be taken");
    }
}
