//! QEMU-only devices used by the test harness: `isa-debug-exit` and `fw_cfg`.

use x86_64::instructions::port::Port;

/// `-device isa-debug-exit,iobase=0xf4,iosize=0x04`: QEMU exits with `(code << 1) | 1`.
const DEBUG_EXIT_PORT: u16 = 0xf4;

/// Exit codes the host harness maps to results (host sees `(code << 1) | 1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ExitCode {
    Passed = 0x10,
    Failed = 0x11,
    Panicked = 0x12,
}

/// Asks QEMU to exit. Returns only if there is no debug-exit device (real hardware).
/// QEMU 10 turns the write into a shutdown request that completes asynchronously, so
/// the guest waits a moment before concluding nobody listened.
pub fn exit(code: ExitCode) {
    // SAFETY: port 0xf4 is the isa-debug-exit device in our QEMU profiles; on a machine
    // without it the write goes to an unclaimed ISA port and is ignored.
    unsafe { Port::<u32>::new(DEBUG_EXIT_PORT).write(code as u32) };
    crate::time::spin_for_ns(2_000_000_000);
}

/// QEMU's firmware configuration interface (docs/specs/fw_cfg.rst): selector at 0x510,
/// data at 0x511, signature "QEMU" under key 0.
const FW_CFG_SELECTOR: u16 = 0x510;
const FW_CFG_DATA: u16 = 0x511;
const FW_CFG_SIGNATURE: u16 = 0x00;
const FW_CFG_NB_CPUS: u16 = 0x05;
const FW_CFG_FILE_DIR: u16 = 0x19;

fn fw_cfg_read(key: u16, out: &mut [u8]) {
    // SAFETY: fw_cfg ports; selecting a key and streaming its bytes has no other effect.
    unsafe {
        Port::<u16>::new(FW_CFG_SELECTOR).write(key);
        let mut data = Port::<u8>::new(FW_CFG_DATA);
        for b in out.iter_mut() {
            *b = data.read();
        }
    }
}

/// True when running under QEMU (the fw_cfg signature answers).
pub fn present() -> bool {
    let mut sig = [0u8; 4];
    fw_cfg_read(FW_CFG_SIGNATURE, &mut sig);
    &sig == b"QEMU"
}

/// The `-smp` CPU count as QEMU itself reports it: an independent check on the MADT.
pub fn cpu_count() -> Option<u16> {
    if !present() {
        return None;
    }
    let mut n = [0u8; 2];
    fw_cfg_read(FW_CFG_NB_CPUS, &mut n);
    Some(u16::from_le_bytes(n))
}

/// The selector and size of fw_cfg file `name` (`-fw_cfg name=opt/...`), if QEMU has it.
/// Tests use such files as switches (e.g. to emulate firmware quirks OVMF lacks).
pub fn fw_cfg_file(name: &str) -> Option<(u16, u32)> {
    if !present() {
        return None;
    }
    let mut count = [0u8; 4];
    fw_cfg_read(FW_CFG_FILE_DIR, &mut count);
    // The directory's entries follow its count on the data port (fw_cfg.rst: size
    // be32, select be16, reserved u16, name[56]).
    let mut data = Port::<u8>::new(FW_CFG_DATA);
    for _ in 0..u32::from_be_bytes(count).min(4096) {
        let mut e = [0u8; 64];
        for b in e.iter_mut() {
            // SAFETY: fw_cfg data port; streaming the selected directory has no effect.
            *b = unsafe { data.read() };
        }
        let n = &e[8..];
        let len = n.iter().position(|&b| b == 0).unwrap_or(n.len());
        if &n[..len] == name.as_bytes() {
            let size = u32::from_be_bytes([e[0], e[1], e[2], e[3]]);
            return Some((u16::from_be_bytes([e[4], e[5]]), size));
        }
    }
    None
}

/// The contents of fw_cfg file `name` as text (at most `max` bytes), trimmed; `None` if
/// QEMU has no such file. Tests pass settings this way (`-fw_cfg name=opt/...,string=...`).
pub fn fw_cfg_text(name: &str, max: usize) -> Option<alloc::string::String> {
    let (selector, size) = fw_cfg_file(name)?;
    let mut buf = alloc::vec![0u8; (size as usize).min(max)];
    fw_cfg_read(selector, &mut buf);
    let text = core::str::from_utf8(&buf).ok()?;
    Some(alloc::string::String::from(
        text.trim_matches(|c: char| c.is_whitespace() || c == '\0'),
    ))
}
