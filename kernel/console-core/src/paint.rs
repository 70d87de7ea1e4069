//! Painting text cells into a linear framebuffer of any of the formats UEFI's GOP (via
//! the bootloader's `FrameBufferInfo`) can report: RGB or BGR bytes, one grey byte, or
//! colour bits at given positions; any number of bytes per pixel, any stride.
//!
//! Glyphs come from `noto-sans-mono-bitmap`, the bootloader's own console font: one
//! byte of coverage per pixel, blended here between the cell's background and
//! foreground through a 256-entry table per attribute, so painting a pixel is one
//! table look-up and one store. The framebuffer is only ever written, never read back
//! (reading video memory is very slow on real hardware).

use noto_sans_mono_bitmap::{FontWeight, RasterHeight, get_raster, get_raster_width};

use crate::text::{Attr, Cell};

/// How a pixel's colour is laid out in its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PixelLayout {
    /// Red, green, blue bytes, then padding.
    Rgb,
    /// Blue, green, red bytes, then padding.
    Bgr,
    /// One grey byte, then padding.
    Gray,
    /// An 8-bit channel at each bit offset of a little-endian pixel word.
    Bits {
        /// Bit offset of the red byte.
        red: u8,
        /// Bit offset of the green byte.
        green: u8,
        /// Bit offset of the blue byte.
        blue: u8,
    },
}

/// A framebuffer's shape, as the firmware describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Format {
    /// Visible pixels per line.
    pub width: usize,
    /// Visible lines.
    pub height: usize,
    /// Pixels from the start of one line to the start of the next (>= width).
    pub stride: usize,
    /// Bytes per pixel (1 to 8).
    pub bytes_per_pixel: usize,
    /// Where the colour channels are in a pixel's bytes.
    pub layout: PixelLayout,
}

/// Why a framebuffer cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormatError {
    /// The screen is smaller than one text cell.
    TooSmall,
    /// Bytes per pixel outside 1..=8, or too few for the layout's channels.
    BadBytesPerPixel,
    /// The stride is below the width.
    StrideBelowWidth,
    /// The buffer is shorter than stride x height pixels.
    BufferShorterThanScreen,
    /// A colour channel lies outside the pixel's bytes.
    ChannelOutsidePixel,
}

impl core::fmt::Display for FormatError {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        f.write_str(match self {
            FormatError::TooSmall => "smaller than one text cell",
            FormatError::BadBytesPerPixel => "bytes per pixel outside 1..=8 or too few for RGB",
            FormatError::StrideBelowWidth => "stride below width",
            FormatError::BufferShorterThanScreen => "buffer shorter than stride x height",
            FormatError::ChannelOutsidePixel => "a colour channel lies outside the pixel",
        })
    }
}

impl Format {
    /// Checks the description against the buffer it came with.
    pub fn validate(&self, byte_len: usize) -> Result<(), FormatError> {
        let bpp = self.bytes_per_pixel;
        if !(1..=8).contains(&bpp) {
            return Err(FormatError::BadBytesPerPixel);
        }
        match self.layout {
            PixelLayout::Rgb | PixelLayout::Bgr if bpp < 3 => {
                return Err(FormatError::BadBytesPerPixel);
            }
            PixelLayout::Bits { red, green, blue }
                if [red, green, blue]
                    .iter()
                    .any(|&p| usize::from(p) + 8 > bpp * 8) =>
            {
                return Err(FormatError::ChannelOutsidePixel);
            }
            _ => {}
        }
        if self.stride < self.width {
            return Err(FormatError::StrideBelowWidth);
        }
        let needed = self
            .stride
            .checked_mul(self.height)
            .and_then(|p| p.checked_mul(bpp));
        if needed.is_none_or(|n| n > byte_len) {
            return Err(FormatError::BufferShorterThanScreen);
        }
        Ok(())
    }

    /// The bytes of one pixel of colour `rgb` (the first `bytes_per_pixel` are used).
    pub fn encode(&self, [r, g, b]: [u8; 3]) -> [u8; 8] {
        let mut px = [0u8; 8];
        match self.layout {
            PixelLayout::Rgb => px[..3].copy_from_slice(&[r, g, b]),
            PixelLayout::Bgr => px[..3].copy_from_slice(&[b, g, r]),
            PixelLayout::Gray => px[0] = luminance([r, g, b]),
            PixelLayout::Bits { red, green, blue } => {
                let v = u64::from(r) << red | u64::from(g) << green | u64::from(b) << blue;
                px = v.to_le_bytes();
            }
        }
        px
    }

    /// The colour of the pixel whose bytes are `px` (for reading a screen back).
    pub fn decode(&self, px: &[u8]) -> [u8; 3] {
        match self.layout {
            PixelLayout::Rgb => [px[0], px[1], px[2]],
            PixelLayout::Bgr => [px[2], px[1], px[0]],
            PixelLayout::Gray => [px[0]; 3],
            PixelLayout::Bits { red, green, blue } => {
                let mut b = [0u8; 8];
                b[..px.len()].copy_from_slice(px);
                let v = u64::from_le_bytes(b);
                [(v >> red) as u8, (v >> green) as u8, (v >> blue) as u8]
            }
        }
    }
}

/// ITU-R BT.601 luma, integer.
pub fn luminance([r, g, b]: [u8; 3]) -> u8 {
    ((u32::from(r) * 77 + u32::from(g) * 150 + u32::from(b) * 29) >> 8) as u8
}

/// Largest text grid the console keeps (a 4K screen with the 16-pixel font is wider;
/// the font chosen for it is larger, so this is not reached in practice).
pub const MAX_COLS: usize = 256;
/// Tallest text grid the console keeps.
pub const MAX_ROWS: usize = 160;

/// Where the text grid lies on the screen and with which font.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// The font height chosen for the screen.
    pub font: RasterHeight,
    /// A cell's width in pixels.
    pub cell_w: usize,
    /// A cell's height in pixels.
    pub cell_h: usize,
    /// Text columns.
    pub cols: usize,
    /// Text rows.
    pub rows: usize,
}

/// The heights available, largest first.
pub const FONT_HEIGHTS: [RasterHeight; 4] = [
    RasterHeight::Size32,
    RasterHeight::Size24,
    RasterHeight::Size20,
    RasterHeight::Size16,
];

impl Geometry {
    /// The largest font that still gives at least 48 rows and 100 columns (16 pixels
    /// on 1280x800, 20 on 1920x1080, 32 on 4K); the smallest on smaller screens.
    /// `None` if not even one cell fits.
    pub fn for_screen(width: usize, height: usize) -> Option<Geometry> {
        let fits = |h: RasterHeight| {
            height / h.val() >= 48 && width / get_raster_width(FontWeight::Regular, h) >= 100
        };
        let font = FONT_HEIGHTS
            .into_iter()
            .find(|&h| fits(h))
            .unwrap_or(RasterHeight::Size16);
        Geometry::with_font(width, height, font)
    }

    /// The grid for one font height.
    pub fn with_font(width: usize, height: usize, font: RasterHeight) -> Option<Geometry> {
        let cell_w = get_raster_width(FontWeight::Regular, font);
        let cell_h = font.val();
        let cols = (width / cell_w).min(MAX_COLS);
        let rows = (height / cell_h).min(MAX_ROWS);
        (cols > 0 && rows > 0).then_some(Geometry {
            font,
            cell_w,
            cell_h,
            cols,
            rows,
        })
    }
}

/// Foreground and background of each attribute.
pub fn colours(attr: Attr) -> ([u8; 3], [u8; 3]) {
    const BLACK: [u8; 3] = [0, 0, 0];
    match attr {
        Attr::Normal => ([0xd8, 0xd8, 0xd8], BLACK),
        Attr::Warning => ([0xff, 0xd0, 0x40], BLACK),
        Attr::Error => ([0xff, 0x60, 0x60], BLACK),
        Attr::Status => (BLACK, [0xb0, 0xb0, 0xb0]),
    }
}

/// The coverage bytes of `c`'s glyph (U+FFFD, then '?', for characters the font lacks).
pub fn glyph(c: char, font: RasterHeight) -> &'static [u8] {
    [c, '\u{fffd}', '?']
        .into_iter()
        .find_map(|c| get_raster(c, FontWeight::Regular, font))
        .map_or(&[], |r| r.pixels())
}

/// Paints cells for one framebuffer format and grid.
pub struct Painter {
    /// The framebuffer painted into.
    pub format: Format,
    /// The text grid on it.
    pub geometry: Geometry,
    /// Per attribute, the pixel bytes for each coverage value.
    lut: [[[u8; 8]; 256]; Attr::COUNT],
}

impl Painter {
    /// A painter for `format` and `geometry`, its colour tables computed once here.
    pub fn new(format: Format, geometry: Geometry) -> Painter {
        let mut lut = [[[0u8; 8]; 256]; Attr::COUNT];
        for (a, table) in lut.iter_mut().enumerate() {
            let (fg, bg) = colours(Attr::from_u8(a as u8));
            for (i, px) in table.iter_mut().enumerate() {
                let mix = |f: u8, b: u8| {
                    ((u32::from(f) * i as u32 + u32::from(b) * (255 - i as u32)) / 255) as u8
                };
                *px = format.encode([mix(fg[0], bg[0]), mix(fg[1], bg[1]), mix(fg[2], bg[2])]);
            }
        }
        Painter {
            format,
            geometry,
            lut,
        }
    }

    /// Fills the whole screen with the normal background.
    pub fn clear(&self, fb: &mut [u8]) {
        let f = &self.format;
        let bpp = f.bytes_per_pixel;
        let px = &self.lut[Attr::Normal as usize][0][..bpp];
        // One row painted pixel by pixel, then copied: a million single-pixel stores take
        // tens of milliseconds under TCG; row copies are a few block moves.
        let row_bytes = f.width * bpp;
        let (first, rest) = fb.split_at_mut(row_bytes);
        for p in first.chunks_exact_mut(bpp) {
            p.copy_from_slice(px);
        }
        let stride = f.stride * bpp;
        for y in 1..f.height {
            rest[y * stride - row_bytes..][..row_bytes].copy_from_slice(first);
        }
    }

    /// Paints `cells` on grid row `row` from column `col`; `cursor` (an index into
    /// `cells`) gets an underline.
    pub fn draw(
        &self,
        fb: &mut [u8],
        row: usize,
        col: usize,
        cells: &[Cell],
        cursor: Option<usize>,
    ) {
        let g = &self.geometry;
        let cells = &cells[..cells.len().min(g.cols.saturating_sub(col))];
        if row >= g.rows || cells.is_empty() {
            return;
        }
        let mut glyphs: [&[u8]; MAX_COLS] = [&[]; MAX_COLS];
        for (slot, c) in glyphs.iter_mut().zip(cells) {
            *slot = glyph(c.ch(), g.font);
        }
        let bpp = self.format.bytes_per_pixel;
        for y in 0..g.cell_h {
            let underline = y + 2 >= g.cell_h;
            let start = ((row * g.cell_h + y) * self.format.stride + col * g.cell_w) * bpp;
            let line = &mut fb[start..start + cells.len() * g.cell_w * bpp];
            for (k, (cell, out)) in cells
                .iter()
                .zip(line.chunks_exact_mut(g.cell_w * bpp))
                .enumerate()
            {
                let lut = &self.lut[cell.attr() as usize];
                let cov = glyphs[k]
                    .get(y * g.cell_w..(y + 1) * g.cell_w)
                    .unwrap_or(&[]);
                let solid = underline && cursor == Some(k);
                for (x, px) in out.chunks_exact_mut(bpp).enumerate() {
                    let i = if solid {
                        255
                    } else {
                        cov.get(x).copied().unwrap_or(0)
                    };
                    put(px, &lut[usize::from(i)]);
                }
            }
        }
    }
}

/// Stores one pixel; fixed-size copies for the common widths become single stores.
#[inline(always)]
fn put(dst: &mut [u8], px: &[u8; 8]) {
    match dst.len() {
        4 => dst.copy_from_slice(&px[..4]),
        3 => dst.copy_from_slice(&px[..3]),
        1 => dst[0] = px[0],
        n => dst.copy_from_slice(&px[..n]),
    }
}
