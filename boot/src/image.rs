//! USB-stick images: the UEFI disk image build.rs made, copied, with an optional boot
//! script added to its EFI system partition as the file `ramdisk` — the name the
//! bootloader loads and hands to the kernel (`BootInfo::ramdisk_addr`), which runs it
//! before the first prompt (kernel/src/lab/shell/script.rs). The partition is a FAT
//! filesystem the bootloader sized with at least a megabyte to spare, so a script
//! always fits; it is written through the same `gpt` and `fatfs` crates that made it.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// The bootloader's name for the ramdisk file on the EFI system partition.
pub const RAMDISK_FILE: &str = "ramdisk";

/// What the image runs at boot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Script {
    /// No script: the shell's prompt, as `sluice run` boots.
    None,
    /// The report (`sluice_console::script::REPORT`).
    Report,
    /// These commands, one per line.
    Commands(Vec<String>),
}

impl Script {
    /// The ramdisk file's text, or `None` for no file.
    pub fn text(&self) -> Result<Option<String>, String> {
        let cmds: Vec<&str> = match self {
            Script::None => return Ok(None),
            Script::Report => sluice_console::script::REPORT.to_vec(),
            Script::Commands(c) => c.iter().map(String::as_str).collect(),
        };
        sluice_console::script::build(&cmds)
            .map(Some)
            .map_err(|e| format!("bad boot script: {e}"))
    }
}

/// Writes `out`: the built image, plus `script` in its EFI system partition.
pub fn write_usb_image(out: &Path, script: &Script) -> Result<(), String> {
    let text = script.text()?;
    std::fs::copy(crate::UEFI_IMAGE, out)
        .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    if let Some(text) = text {
        add_file(out, RAMDISK_FILE, text.as_bytes())
            .map_err(|e| format!("cannot add the boot script to {}: {e}", out.display()))?;
    }
    Ok(())
}

/// The EFI system partition's byte range in a GPT image (its only partition).
fn esp_range(image: &Path) -> io::Result<(u64, u64)> {
    let disk = gpt::GptConfig::new().writable(false).open(image)?;
    let lb = *disk.logical_block_size();
    let part = disk
        .partitions()
        .values()
        .find(|p| p.is_used())
        .ok_or_else(|| io::Error::other("the image has no partition"))?;
    let start = part.bytes_start(lb).map_err(io::Error::other)?;
    let len = part.bytes_len(lb).map_err(io::Error::other)?;
    Ok((start, len))
}

/// Adds (or replaces) a file in the root of the image's EFI system partition.
pub fn add_file(image: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let (start, len) = esp_range(image)?;
    let file = OpenOptions::new().read(true).write(true).open(image)?;
    let fs = fatfs::FileSystem::new(Partition::new(file, start, len), fatfs::FsOptions::new())?;
    let mut f = fs.root_dir().create_file(name)?;
    f.truncate()?;
    f.write_all(bytes)?;
    f.flush()?;
    drop(f);
    fs.unmount()
}

/// Reads a file from the root of the image's EFI system partition (tests check what
/// was written).
pub fn read_file(image: &Path, name: &str) -> io::Result<Vec<u8>> {
    let (start, len) = esp_range(image)?;
    let file = File::open(image)?;
    let fs = fatfs::FileSystem::new(Partition::new(file, start, len), fatfs::FsOptions::new())?;
    let mut out = Vec::new();
    fs.root_dir().open_file(name)?.read_to_end(&mut out)?;
    Ok(out)
}

/// A byte range of a file, as a seekable stream (what `fatfs` works on).
struct Partition<F> {
    inner: F,
    start: u64,
    len: u64,
    pos: u64,
}

impl<F: Seek> Partition<F> {
    fn new(inner: F, start: u64, len: u64) -> Self {
        Partition {
            inner,
            start,
            len,
            pos: 0,
        }
    }

    /// Positions the file at `pos` and returns how many bytes remain before the end.
    fn at(&mut self, want: usize) -> io::Result<usize> {
        self.inner.seek(SeekFrom::Start(self.start + self.pos))?;
        Ok(want.min(self.len.saturating_sub(self.pos) as usize))
    }
}

impl<F: Read + Seek> Read for Partition<F> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.at(buf.len())?;
        let n = self.inner.read(&mut buf[..n])?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<F: Write + Seek> Write for Partition<F> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.at(buf.len())?;
        if n == 0 && !buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "past the partition's end",
            ));
        }
        let n = self.inner.write(&buf[..n])?;
        self.pos += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<F: Seek> Seek for Partition<F> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let pos = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
        };
        self.pos = pos.filter(|&p| p <= self.len).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "seek outside the partition")
        })?;
        Ok(self.pos)
    }
}
