//! The kernel's stack traces, named. On a panic or a fatal exception the kernel prints
//! one `#N 0x...` line per frame (kernel/src/arch/backtrace.rs): raw return addresses,
//! where the bootloader mapped the kernel. The launcher appends to each such line the
//! function and source line it returns into, read from the kernel ELF's DWARF with the
//! `addr2line` crate, and keeps the address: `#1  0x8000012345  kmain at
//! kernel/src/main.rs:120`. It does so as the output streams past (interactive and piped
//! runs) and in a session's collected output (the QEMU scenarios), holding nothing back:
//! only the end of a frame line is touched.

use std::io::Write;
use std::path::Path;

/// Where the bootloader maps a position-independent kernel: with `kernel_base` left
/// dynamic and ASLR off (the kernel's `BOOTLOADER_CONFIG`), bootloader 0.11 puts the
/// lowest loadable segment at the first level-4 entry that nothing else uses. The
/// identity map of physical memory takes entry 0 on every QEMU machine the launcher
/// starts (well under 512 GiB), so the kernel lands at entry 1: 0x80_0000_0000. A PC
/// with memory or devices above 512 GiB would push it further up.
pub const KERNEL_LOAD_BASE: u64 = 0x80_0000_0000;

/// What to add to the ELF's link addresses to get run-time addresses (GDB's
/// `symbol-file FILE -o OFFSET`): the load base minus the lowest `PT_LOAD` address.
pub fn load_offset(elf: &[u8]) -> Result<u64, String> {
    let min = lowest_load_address(elf).ok_or("not a 64-bit little-endian ELF with a PT_LOAD")?;
    KERNEL_LOAD_BASE
        .checked_sub(min)
        .ok_or_else(|| format!("the kernel links at {min:#x}, above its load base"))
}

/// The lowest virtual address of the ELF's loadable segments (ELF64, little-endian).
fn lowest_load_address(elf: &[u8]) -> Option<u64> {
    let u16_at = |o: usize| Some(u16::from_le_bytes(elf.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(elf.get(o..o + 4)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(elf.get(o..o + 8)?.try_into().ok()?));
    // e_ident: magic, ELFCLASS64, ELFDATA2LSB.
    if elf.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let phoff = usize::try_from(u64_at(0x20)?).ok()?;
    let phentsize = usize::from(u16_at(0x36)?);
    let phnum = usize::from(u16_at(0x38)?);
    const PT_LOAD: u32 = 1;
    (0..phnum)
        .filter_map(|i| {
            let ph = phoff.checked_add(i.checked_mul(phentsize)?)?;
            (u32_at(ph)? == PT_LOAD)
                .then(|| u64_at(ph + 0x10))
                .flatten()
        })
        .min()
}

/// Names addresses in the kernel.
pub struct Symbolizer {
    loader: addr2line::Loader,
    offset: u64,
}

impl Symbolizer {
    /// The kernel build.rs made, mapped where the bootloader maps it.
    pub fn kernel() -> Result<Symbolizer, String> {
        Symbolizer::load(Path::new(crate::KERNEL_ELF))
    }

    /// The kernel ELF at `elf`, mapped where the bootloader maps it.
    pub fn load(elf: &Path) -> Result<Symbolizer, String> {
        let bytes = std::fs::read(elf).map_err(|e| format!("{}: {e}", elf.display()))?;
        let offset = load_offset(&bytes).map_err(|e| format!("{}: {e}", elf.display()))?;
        let loader = addr2line::Loader::new(elf).map_err(|e| format!("{}: {e}", elf.display()))?;
        Ok(Symbolizer { loader, offset })
    }

    /// `function at file:line` for the call that returns to `ret` (a run-time return
    /// address: the call is the byte before it), with the functions it was inlined
    /// into; `None` outside the kernel.
    pub fn describe_return(&self, ret: u64) -> Option<String> {
        let probe = ret.checked_sub(self.offset)?.checked_sub(1)?;
        let mut parts = Vec::new();
        if let Ok(mut frames) = self.loader.find_frames(probe) {
            while let Ok(Some(f)) = frames.next() {
                let name = f
                    .function
                    .as_ref()
                    .and_then(|n| n.demangle().ok().map(|d| d.into_owned()));
                let Some(name) = name else { continue };
                let place = f
                    .location
                    .as_ref()
                    .and_then(|l| Some(format!("{}:{}", short_path(l.file?), l.line?)));
                parts.push(match place {
                    Some(p) => format!("{name} at {p}"),
                    None => name,
                });
            }
        }
        if parts.is_empty() {
            // No line information: the symbol table still names the function.
            let name = self.loader.find_symbol(probe)?;
            parts.push(rustc_demangle_lossy(name));
        }
        Some(parts.join(", inlined in "))
    }
}

/// The symbol table's name, demangled without its hash.
fn rustc_demangle_lossy(name: &str) -> String {
    addr2line::demangle_auto(name.into(), None).into_owned()
}

/// Source paths as a reader finds them: relative to the repository, a crate's folder
/// under the registry, or the standard library's `library/...`.
fn short_path(file: &str) -> String {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/");
    if let Some(rest) = file.strip_prefix(root) {
        return rest.to_string();
    }
    for marker in ["/registry/src/", "/git/checkouts/"] {
        if let Some(i) = file.find(marker) {
            // `index.crates.io-HASH/CRATE-VERSION/src/...`: keep from the crate on.
            let rest = &file[i + marker.len()..];
            return rest.split_once('/').map_or(rest, |(_, r)| r).to_string();
        }
    }
    if let Some(i) = file.find("/library/") {
        return file[i + 1..].to_string();
    }
    file.to_string()
}

/// The return address of a frame line, `... #N 0xADDR` (the kernel's format:
/// `[   1.000000] cpu1 error:     #0  0x8000012345`).
pub fn frame_address(line: &str) -> Option<u64> {
    let line = line.trim_end();
    let (_, rest) = line.rsplit_once('#')?;
    let (depth, addr) = rest.split_once(char::is_whitespace)?;
    if depth.is_empty() || !depth.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let hex = addr.trim_start().strip_prefix("0x")?;
    if hex.is_empty() || hex.len() > 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// Appends names to frame lines as bytes pass through. Nothing is delayed: the name is
/// written when the line's end (`\r` or `\n`) arrives, before it.
pub struct FrameAnnotator {
    line: Vec<u8>,
    done: bool,
    symbols: Option<Option<Symbolizer>>,
    load: fn() -> Result<Symbolizer, String>,
}

/// Longer lines are not frame lines; only their start is kept for matching.
const LINE_KEPT: usize = 200;

impl Default for FrameAnnotator {
    fn default() -> Self {
        FrameAnnotator::new(Symbolizer::kernel)
    }
}

impl FrameAnnotator {
    /// `load` is called once, at the first frame line.
    pub fn new(load: fn() -> Result<Symbolizer, String>) -> Self {
        FrameAnnotator {
            line: Vec::new(),
            done: false,
            symbols: None,
            load,
        }
    }

    /// `chunk`, with names added to the frame lines it ends.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(chunk.len());
        for &b in chunk {
            if (b == b'\r' || b == b'\n') && !self.done {
                self.done = true;
                if let Some(name) = self.name_of_line() {
                    out.extend_from_slice(b"  ");
                    out.extend_from_slice(name.as_bytes());
                }
            }
            out.push(b);
            if b == b'\n' {
                self.line.clear();
                self.done = false;
            } else if self.line.len() < LINE_KEPT {
                self.line.push(b);
            }
        }
        out
    }

    fn name_of_line(&mut self) -> Option<String> {
        let line = std::str::from_utf8(&self.line).ok()?;
        // A frame line is an error line of the kernel's log; the check on the text is
        // cheap, loading the symbols is not.
        if !line.contains("error:") {
            return None;
        }
        let addr = frame_address(line)?;
        let load = self.load;
        let symbols = self.symbols.get_or_insert_with(|| match load() {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("sluice: cannot name stack frames: {e}");
                None
            }
        });
        symbols.as_ref()?.describe_return(addr)
    }

    /// The whole of `text` with its frame lines named (a last line without its end
    /// stays as it is).
    pub fn annotate(&mut self, text: &str) -> String {
        String::from_utf8_lossy(&self.feed(text.as_bytes())).into_owned()
    }
}

/// A writer that names frame lines on their way to `inner`.
pub struct Annotating<W: Write> {
    inner: W,
    frames: FrameAnnotator,
}

impl<W: Write> Annotating<W> {
    /// A writer that passes everything on to `inner`, frame lines with their names.
    pub fn new(inner: W) -> Self {
        Annotating {
            inner,
            frames: FrameAnnotator::default(),
        }
    }
}

impl<W: Write> Write for Annotating<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let out = self.frames.feed(buf);
        self.inner.write_all(&out)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_symbols() -> Result<Symbolizer, String> {
        Err("none in this test".into())
    }

    #[test]
    fn frame_lines_are_recognised_in_the_kernels_format() {
        assert_eq!(
            frame_address("[    1.000123] cpu1 error:     #0  0x8000012345"),
            Some(0x80_0001_2345)
        );
        assert_eq!(frame_address("cpu0 error:     #12 0xffff\r"), Some(0xffff));
        for not in [
            "cpu0 error:   stack trace (return addresses):",
            "#x 0x1234",
            "# 0x1234",
            "#1 1234",
            "#1 0x",
            "#1 0x12345678901234567",
            "#1 0x12 and more",
            "sluice> echo #1",
        ] {
            assert_eq!(frame_address(not), None, "{not}");
        }
    }

    #[test]
    fn lines_without_frames_pass_through_untouched_whatever_the_chunking() {
        let text = "sluice> irqs\r\n[ 1.0] cpu0 error: EXCEPTION\r\n  #1 0x10 not in an error line\npartial";
        for split in 0..text.len() {
            let mut a = FrameAnnotator::new(no_symbols);
            let mut out = a.feed(&text.as_bytes()[..split]);
            out.extend(a.feed(&text.as_bytes()[split..]));
            assert_eq!(String::from_utf8(out).unwrap(), text, "split at {split}");
        }
    }

    #[test]
    fn the_real_kernel_is_mapped_at_its_load_base() {
        let elf = std::fs::read(crate::KERNEL_ELF).expect("build.rs built the kernel");
        let offset = load_offset(&elf).unwrap();
        assert_eq!(
            offset + lowest_load_address(&elf).unwrap(),
            KERNEL_LOAD_BASE
        );
        assert_eq!(
            load_offset(b"not an elf"),
            Err("not a 64-bit little-endian ELF with a PT_LOAD".into())
        );
    }

    /// Addresses taken from the kernel's own symbol table name the right functions,
    /// in a frame line, however the line arrives.
    #[test]
    fn frame_lines_of_the_real_kernel_are_named() {
        let s = Symbolizer::kernel().unwrap();
        let elf = std::fs::read(crate::KERNEL_ELF).unwrap();
        let kmain = symbol_address(&elf, "kmain").expect("kmain in the symbol table");
        // A return address a few bytes into kmain: the call before it is in kmain.
        let ret = kmain + s.offset + 8;
        let named = s.describe_return(ret).unwrap();
        assert!(named.contains("kmain at kernel/src/main.rs:"), "{named}");
        let line = format!("[    2.000001] cpu0 error:     #3  {ret:#x}\r\nsluice> ");
        for split in [0, 10, line.find('\r').unwrap(), line.len()] {
            let mut a = FrameAnnotator::default();
            let mut out = a.feed(&line.as_bytes()[..split]);
            out.extend(a.feed(&line.as_bytes()[split..]));
            let out = String::from_utf8(out).unwrap();
            assert_eq!(
                out,
                format!("[    2.000001] cpu0 error:     #3  {ret:#x}  {named}\r\nsluice> ")
            );
        }
        // Outside the kernel: left alone.
        assert_eq!(s.describe_return(0x1000), None);
    }

    /// The link address of a symbol whose demangled name ends in `::name` (or is
    /// `name`), from the ELF's symbol table.
    fn symbol_address(elf: &[u8], name: &str) -> Option<u64> {
        let u16_at = |o: usize| u16::from_le_bytes(elf[o..o + 2].try_into().unwrap()) as usize;
        let u32_at = |o: usize| u32::from_le_bytes(elf[o..o + 4].try_into().unwrap()) as usize;
        let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap());
        let shoff = u64_at(0x28) as usize;
        let (shentsize, shnum) = (u16_at(0x3a), u16_at(0x3c));
        const SHT_SYMTAB: usize = 2;
        for i in 0..shnum {
            let sh = shoff + i * shentsize;
            if u32_at(sh + 4) != SHT_SYMTAB {
                continue;
            }
            let (off, size, link, entsize) = (
                u64_at(sh + 0x18) as usize,
                u64_at(sh + 0x20) as usize,
                u32_at(sh + 0x28),
                u64_at(sh + 0x38) as usize,
            );
            let strtab = u64_at(shoff + link * shentsize + 0x18) as usize;
            for s in (off..off + size).step_by(entsize) {
                let n = strtab + u32_at(s);
                let end = elf[n..].iter().position(|&b| b == 0).unwrap();
                let raw = std::str::from_utf8(&elf[n..n + end]).unwrap_or("");
                let d = rustc_demangle_lossy(raw);
                if d == name || d.ends_with(&format!("::{name}")) {
                    return Some(u64_at(s + 8));
                }
            }
        }
        None
    }
}
