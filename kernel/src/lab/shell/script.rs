//! The boot script: commands a USB image carries in the bootloader's ramdisk file
//! (written by `sluice usb --run/--script`, format in `sluice_console::script`), run
//! unattended before the first prompt. Each command is shown as if typed, after a
//! `script N/M> ` prompt, on the screen and COM1; a command this kernel does not have is skipped, not
//! an error, so one report script serves every version. The shell stays open after
//! the script, unless the script itself powers off.

use alloc::vec::Vec;

use super::{execute, find};
use crate::println;

/// The script's bytes, copied off the ramdisk at boot. Protects: nothing after boot
/// (taken once by the shell). Task context only; a leaf of the lock order.
static SCRIPT: sluice_sync::SpinLock<Option<Vec<u8>>> =
    sluice_sync::SpinLock::new(&crate::sync::order::SHELL_SCRIPT, None);

/// Copies the ramdisk, if the bootloader loaded one (the memory map gives its frames
/// back to nobody, but a copy keeps the shell independent of it).
pub fn load(boot: &bootloader_api::BootInfo) {
    let Some(addr) = boot.ramdisk_addr.into_option() else {
        return;
    };
    let len = boot.ramdisk_len as usize;
    // SAFETY: the bootloader mapped the ramdisk file at `addr`, `len` bytes, readable,
    // and nothing writes it.
    let bytes = unsafe { core::slice::from_raw_parts(addr as *const u8, len) };
    crate::log!("ramdisk: {} bytes at {:#x}", len, addr);
    *SCRIPT.lock() = Some(bytes.to_vec());
}

/// Runs the boot script, if the image has one.
pub fn run_boot_script() {
    let Some(bytes) = SCRIPT.lock().take() else {
        return;
    };
    let commands = match sluice_console::script::parse(&bytes) {
        Ok(c) => c,
        Err(e) => {
            crate::warn!("ramdisk is not a boot script ({}); ignored", e);
            return;
        }
    };
    println!(
        "boot script: {} command(s) from the boot image, run unattended",
        commands.len()
    );
    let (mut ran, mut skipped) = (0, 0);
    for (i, line) in commands.iter().enumerate() {
        // Not the shell's prompt: a program driving the shell waits for that one, and
        // it appears only once the script is done.
        println!("script {}/{}> {}", i + 1, commands.len(), line);
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(c) = find(name) else {
            println!("(skipped: this kernel has no '{}' command)", name);
            skipped += 1;
            continue;
        };
        if let Some(why) = c.withheld() {
            println!("(skipped: '{}' is not offered here: {})", name, why);
            skipped += 1;
            continue;
        }
        execute(line);
        ran += 1;
    }
    print_summary(ran, skipped);
}

fn print_summary(ran: usize, skipped: usize) {
    println!(
        "boot script done: {} command(s) run, {} skipped (not in this kernel or not offered here)",
        ran, skipped
    );
    if let Some(t) = crate::lab::ktest::last_summary() {
        println!(
            "in-kernel tests: {} passed, {} failed, {} skipped{}",
            t.passed,
            t.failed,
            t.skipped,
            if t.failed == 0 {
                ""
            } else {
                "  <-- FAILURES: see above"
            }
        );
    }
    if crate::console::screen::present() {
        println!("PgUp/PgDn scroll back through the report; photograph each page.");
    }
}
