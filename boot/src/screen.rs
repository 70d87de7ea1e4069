//! Reading the guest's screen: a QMP screendump (PPM) turned back into text by matching
//! each cell of the console's grid against the console's own font (`sluice_console::
//! read`). The grid and font follow from the resolution exactly as the kernel chose
//! them, so the match is exact: no OCR engine, no extra package, and a glyph drawn in
//! the wrong place, format or colour channel shows up as a wrong character.

use std::path::Path;

use sluice_console::paint::Geometry;

/// An RGB picture.
pub struct Picture {
    /// Pixels per line.
    pub width: usize,
    /// Lines.
    pub height: usize,
    /// Three bytes per pixel, red, green, blue, line after line.
    pub rgb: Vec<u8>,
}

/// Parses a binary PPM (P6, maxval 255), as QEMU's `screendump` writes it.
pub fn read_ppm(path: &Path) -> Result<Picture, String> {
    let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut fields = Vec::new();
    let mut pos = 0;
    while fields.len() < 4 {
        while pos < data.len() && data[pos].is_ascii_whitespace() {
            pos += 1;
        }
        let start = pos;
        while pos < data.len() && !data[pos].is_ascii_whitespace() {
            pos += 1;
        }
        if start == pos {
            return Err("PPM header truncated".into());
        }
        fields.push(String::from_utf8_lossy(&data[start..pos]).into_owned());
    }
    let num = |i: usize| -> Result<usize, String> {
        fields[i]
            .parse()
            .map_err(|_| format!("PPM header field {:?}", fields[i]))
    };
    if fields[0] != "P6" || num(3)? != 255 {
        return Err(format!("not an 8-bit P6 PPM: {fields:?}"));
    }
    let (width, height) = (num(1)?, num(2)?);
    let rgb = data
        .get(pos + 1..pos + 1 + width * height * 3)
        .ok_or("PPM pixels truncated")?
        .to_vec();
    Ok(Picture { width, height, rgb })
}

/// The text on the screen, one string per grid row (trailing blanks trimmed).
pub fn text(p: &Picture) -> Result<Vec<String>, String> {
    let g = Geometry::for_screen(p.width, p.height).ok_or("screen too small for text")?;
    Ok(sluice_console::read::read_screen(&g, |x, y| {
        let o = (y * p.width + x) * 3;
        p.rgb[o..o + 3].iter().copied().max().unwrap_or(0)
    }))
}
