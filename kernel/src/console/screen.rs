//! The screen console: everything the serial console prints also goes to the UEFI
//! framebuffer the bootloader hands over (any resolution, RGB, BGR, grey or bit-position
//! pixels), in Noto Sans Mono, with a scrollback the keyboard's Page Up/Down browse.
//!
//! Two steps, two locks, so that drawing never holds off interrupts:
//! - `TEXT` (the text model: `sluice_console::text`): every print appends to it with
//!   interrupts off (an `IrqSpinLock`: handlers print), for as long as formatting one
//!   line takes. A leaf of the lock order (`sync::order`): taken from any context except
//!   an NMI that landed while its CPU held it (detected by `TEXT_OWNER`; that NMI's line
//!   reaches COM1 only).
//! - `RENDER` (the framebuffer and what is shown on it): the printer that finds it free
//!   copies the visible text out under `TEXT` and paints the differences with interrupts
//!   ON (a plain `SpinLock`). It is only ever `try_lock`ed, so nobody waits for a
//!   painter; a printer that finds it busy leaves its text to that painter, which loops
//!   until nothing is new. Lock order: a leaf, with `TEXT` under it.
//!
//! Painting happens only with interrupts enabled, so never from an interrupt or NMI
//! handler and never inside stop_machine (whose participants run with interrupts off):
//! what they print is painted by the next print from task context, or by the shell
//! before it sleeps (`flush`). Two exceptions, where nothing else could paint: early
//! boot (interrupts not yet enabled on the boot CPU) and a panic or fatal exception
//! (`panic_flush`, after every other CPU has been stopped).

use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use bootloader_api::info::{FrameBuffer, PixelFormat};
use sluice_console::paint::{Format, Geometry, MAX_COLS, MAX_ROWS, Painter, PixelLayout};
use sluice_console::text::{Attr, Cell, TextModel};
use sluice_sync::{IrqSpinLock, SpinLock};
use x86_64::instructions::interrupts;

/// Text storage: 2 MiB of cells, about 2,800 rows of scrollback at 182 columns.
const CELLS: usize = 512 * 1024;

/// See the module comment. Protects: the text model.
static TEXT: IrqSpinLock<TextModel<CELLS>> =
    IrqSpinLock::new(&crate::sync::order::SCREEN_TEXT, TextModel::new());
/// 1 + the CPU holding `TEXT`, 0 when free.
static TEXT_OWNER: AtomicU32 = AtomicU32::new(0);
/// See the module comment. Protects: the framebuffer and the record of what it shows.
static RENDER: SpinLock<Renderer> =
    SpinLock::new(&crate::sync::order::SCREEN_RENDER, Renderer::new());
/// A framebuffer was found and set up.
static READY: AtomicBool = AtomicBool::new(false);
/// Interrupts have not been seen enabled yet: the boot CPU is alone and painting
/// holds nothing up (and a hang during boot still shows how far it got).
static EARLY: AtomicBool = AtomicBool::new(true);
/// Lines dropped because an NMI found its own CPU inside `TEXT`.
static DROPPED: AtomicU64 = AtomicU64::new(0);
/// Painting passes and the nanoseconds they took (for `screen`).
static PASSES: AtomicU64 = AtomicU64::new(0);
static PAINT_NS: AtomicU64 = AtomicU64::new(0);
static PAINT_MAX_NS: AtomicU64 = AtomicU64::new(0);

/// The framebuffer and text grid in use.
static SHAPE: spin::Once<(Format, Geometry)> = spin::Once::new();

pub fn shape() -> Option<(Format, Geometry)> {
    SHAPE.get().copied()
}

const VIEW_CELLS: usize = MAX_COLS * MAX_ROWS;

struct Renderer {
    fb: Option<&'static mut [u8]>,
    painter: Option<Painter>,
    /// What the framebuffer shows, cell by cell.
    shown: [Cell; VIEW_CELLS],
    shown_cursor: Option<(usize, usize)>,
    /// The text to show next (copied out of `TEXT`).
    next: [Cell; VIEW_CELLS],
    generation: u64,
}

impl Renderer {
    const fn new() -> Renderer {
        Renderer {
            fb: None,
            painter: None,
            shown: [Cell::BLANK; VIEW_CELLS],
            shown_cursor: None,
            next: [Cell::BLANK; VIEW_CELLS],
            generation: 0,
        }
    }
}

/// Why the framebuffer is not used.
#[derive(Debug)]
pub enum ScreenError {
    PixelFormat(PixelFormat),
    Format(sluice_console::paint::FormatError),
}

impl core::fmt::Display for ScreenError {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        match self {
            ScreenError::PixelFormat(p) => write!(f, "pixel format {p:?} not supported"),
            ScreenError::Format(e) => write!(f, "{e}"),
        }
    }
}

/// Takes over the bootloader's framebuffer: clears it and shows the console from now on.
/// Returns the geometry chosen (for the boot log).
pub fn init(fb: FrameBuffer) -> Result<(Format, Geometry), ScreenError> {
    let info = fb.info();
    let layout = match info.pixel_format {
        PixelFormat::Rgb => PixelLayout::Rgb,
        PixelFormat::Bgr => PixelLayout::Bgr,
        PixelFormat::U8 => PixelLayout::Gray,
        PixelFormat::Unknown {
            red_position,
            green_position,
            blue_position,
        } => PixelLayout::Bits {
            red: red_position,
            green: green_position,
            blue: blue_position,
        },
        other => return Err(ScreenError::PixelFormat(other)),
    };
    let format = Format {
        width: info.width,
        height: info.height,
        stride: info.stride,
        bytes_per_pixel: info.bytes_per_pixel,
        layout,
    };
    let buffer = fb.into_buffer();
    format.validate(buffer.len()).map_err(ScreenError::Format)?;
    let geometry = Geometry::for_screen(format.width, format.height).ok_or(ScreenError::Format(
        sluice_console::paint::FormatError::TooSmall,
    ))?;
    with_text(|t| t.configure(geometry.cols, geometry.rows))
        .map_err(|_| ScreenError::Format(sluice_console::paint::FormatError::TooSmall))?;
    let painter = Painter::new(format, geometry);
    painter.clear(buffer);
    let mut r = RENDER.lock();
    r.fb = Some(buffer);
    r.painter = Some(painter);
    drop(r);
    SHAPE.call_once(|| (format, geometry));
    READY.store(true, Ordering::Release);
    Ok((format, geometry))
}

pub fn present() -> bool {
    READY.load(Ordering::Acquire)
}

/// Appends formatted text in `attr` (the log's warnings and errors keep their colour),
/// then paints if this context may (see the module comment).
pub fn write(attr: Attr, args: core::fmt::Arguments) {
    if !present() {
        return;
    }
    let me = crate::arch::cpu::current_index() + 1;
    if TEXT_OWNER.load(Ordering::Relaxed) == me && !crate::panic::in_progress() {
        // An NMI (or a print from inside a Display impl) on the CPU holding TEXT.
        DROPPED.fetch_add(1, Ordering::Relaxed);
        return;
    }
    if TEXT_OWNER.load(Ordering::Relaxed) == me {
        // SAFETY: panic path only: this CPU held TEXT when it panicked and will never
        // return to the code that held it.
        unsafe { TEXT.force_unlock() };
    }
    with_text(|text| {
        text.set_attr(attr);
        let _ = Appender(text).write_fmt(args);
        text.set_attr(Attr::Normal);
    });
    paint_if_allowed();
}

/// Paints now if this context may (interrupts on, early boot, or a panic); otherwise
/// the next print from task context, or the shell before it sleeps, will.
fn paint_if_allowed() {
    let enabled = interrupts::are_enabled();
    if enabled {
        EARLY.store(false, Ordering::Relaxed);
    }
    if enabled || EARLY.load(Ordering::Relaxed) || crate::panic::in_progress() {
        flush();
    }
}

/// Runs `f` on the text model with interrupts off, recording this CPU as the holder
/// (so that an NMI landing meanwhile skips the screen instead of waiting on itself).
#[track_caller]
fn with_text<R>(f: impl FnOnce(&mut TextModel<CELLS>) -> R) -> R {
    let mut text = TEXT.lock();
    TEXT_OWNER.store(crate::arch::cpu::current_index() + 1, Ordering::Relaxed);
    let r = f(&mut text);
    TEXT_OWNER.store(0, Ordering::Relaxed);
    r
}

struct Appender<'a>(&'a mut TextModel<CELLS>);

impl Write for Appender<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.0.write_str(s);
        Ok(())
    }
}

/// Painting passes one `flush` makes at most: with another CPU printing without pause
/// it would otherwise paint for that CPU forever; that CPU's next print paints instead.
const MAX_PASSES: usize = 4;

/// Paints whatever text is not on the screen yet, unless another CPU is painting (it
/// picks the new text up). Call with interrupts on (or at boot / on the panic path).
pub fn flush() {
    if !present() {
        return;
    }
    for _ in 0..MAX_PASSES {
        let Some(mut r) = RENDER.try_lock() else {
            return;
        };
        let t0 = crate::time::nanos_since_boot();
        let painted = paint_news(&mut r);
        let gen_painted = r.generation;
        drop(r);
        if painted {
            let ns = crate::time::nanos_since_boot().saturating_sub(t0);
            PASSES.fetch_add(1, Ordering::Relaxed);
            PAINT_NS.fetch_add(ns, Ordering::Relaxed);
            PAINT_MAX_NS.fetch_max(ns, Ordering::Relaxed);
        }
        // Text that arrived while we held RENDER was left to us by its printer.
        if with_text(|t| t.generation()) == gen_painted {
            return;
        }
    }
}

/// One painting pass: copy the visible text out, paint the cells that changed.
/// False if nothing was new.
fn paint_news(r: &mut Renderer) -> bool {
    let Renderer {
        fb,
        painter,
        shown,
        shown_cursor,
        next,
        generation,
    } = r;
    let (Some(fb), Some(p)) = (fb.as_deref_mut(), painter.as_ref()) else {
        return false;
    };
    let (cols, rows) = (p.geometry.cols, p.geometry.rows);
    let n = cols * rows;
    let snapshot = with_text(|text| {
        (text.generation() != *generation).then(|| (text.generation(), text.view(&mut next[..n])))
    });
    let Some((latest, info)) = snapshot else {
        return false;
    };
    *generation = latest;
    if info.back > 0 {
        status_line(&mut next[(rows - 1) * cols..n], info.back, info.max_back);
    }
    for row in 0..rows {
        let cells = row * cols..(row + 1) * cols;
        let mut span = first_last_diff(&next[cells.clone()], &shown[cells.clone()]);
        for cur in [*shown_cursor, info.cursor].into_iter().flatten() {
            if cur.0 == row && *shown_cursor != info.cursor {
                span = Some(span.map_or((cur.1, cur.1), |(a, b)| (a.min(cur.1), b.max(cur.1))));
            }
        }
        if let Some((a, b)) = span {
            let cursor = info
                .cursor
                .filter(|c| c.0 == row)
                .map(|c| c.1.wrapping_sub(a));
            p.draw(fb, row, a, &next[row * cols + a..=row * cols + b], cursor);
            shown[row * cols + a..=row * cols + b]
                .copy_from_slice(&next[row * cols + a..=row * cols + b]);
        }
    }
    *shown_cursor = info.cursor;
    true
}

/// The first and last column where two rows differ.
fn first_last_diff(a: &[Cell], b: &[Cell]) -> Option<(usize, usize)> {
    let first = a.iter().zip(b).position(|(x, y)| x != y)?;
    let last = a.iter().zip(b).rposition(|(x, y)| x != y)?;
    Some((first, last))
}

/// The bottom row while scrolled back says so, and how to return.
fn status_line(row: &mut [Cell], back: usize, max_back: usize) {
    let mut s = alloc::string::String::new();
    let _ = write!(
        s,
        " scrollback: {back} of {max_back} lines up; PgUp/PgDn scroll, any other key returns "
    );
    row.fill(Cell::new(' ', Attr::Status));
    for (cell, c) in row.iter_mut().zip(s.chars()) {
        *cell = Cell::new(c, Attr::Status);
    }
}

/// Scrolls the view by pages (positive: back into history); painted now if this
/// context may paint, else soon after (the keyboard's handler calls this).
pub fn scroll_pages(pages: isize) {
    if !present() {
        return;
    }
    let moved = with_text(|t| {
        let page = t.screen_rows().saturating_sub(1).max(1) as isize;
        t.scroll(pages * page)
    });
    if moved {
        paint_if_allowed();
    }
}

/// Back to the live screen (any key other than paging does this).
pub fn scroll_to_live() {
    if present() && with_text(|t| t.scroll_to_live()) {
        paint_if_allowed();
    }
}

/// Panic and fatal-exception path, once the other CPUs are stopped: takes both locks
/// whoever held them, and paints the report.
pub fn panic_flush() {
    if !present() {
        return;
    }
    // SAFETY: every other CPU is parked (smp::stop_others) and this one is on its way
    // to halting: nobody will use what the previous holders were in the middle of,
    // except this painter, which redraws from the text model.
    unsafe {
        TEXT.force_unlock();
        RENDER.force_unlock();
    }
    // A painter stopped mid-pass left cells its record does not know: repaint all.
    let mut r = RENDER.lock();
    r.shown.fill(Cell(u32::MAX));
    r.generation = u64::MAX;
    drop(r);
    flush();
}

/// Figures for the `screen` command.
pub struct Stats {
    /// Rows of text kept (screen and scrollback).
    pub rows_kept: u64,
    pub passes: u64,
    pub paint_ns: u64,
    pub paint_max_ns: u64,
    pub dropped: u64,
}

pub fn stats() -> Stats {
    Stats {
        rows_kept: with_text(|t| t.rows_kept()),
        passes: PASSES.load(Ordering::Relaxed),
        paint_ns: PAINT_NS.load(Ordering::Relaxed),
        paint_max_ns: PAINT_MAX_NS.load(Ordering::Relaxed),
        dropped: DROPPED.load(Ordering::Relaxed),
    }
}
