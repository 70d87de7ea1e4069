//! Reading text back from a picture of the screen: each grid cell is matched against
//! every printable ASCII glyph of the same font, coverage against coverage. Tests use
//! it on QEMU's screendump to check what a person would see; it needs no OCR engine,
//! and since the font is known exactly the match is exact, not a guess.

use alloc::string::String;
use alloc::vec::Vec;

use crate::paint::{Geometry, glyph};

/// Cells darker than this everywhere are blank.
const INK: u8 = 48;

/// The text on a screen whose pixel (x, y) has brightness `bright(x, y)` (0..=255,
/// e.g. the largest colour channel), one string per grid row, trailing blanks trimmed.
pub fn read_screen(g: &Geometry, bright: impl Fn(usize, usize) -> u8) -> Vec<String> {
    let candidates: Vec<(char, &'static [u8])> = (0x21u8..0x7f)
        .map(|b| (b as char, glyph(b as char, g.font)))
        .collect();
    let mut cell = alloc::vec![0u8; g.cell_w * g.cell_h];
    (0..g.rows)
        .map(|row| {
            let mut line = String::new();
            for col in 0..g.cols {
                for y in 0..g.cell_h {
                    for x in 0..g.cell_w {
                        cell[y * g.cell_w + x] = bright(col * g.cell_w + x, row * g.cell_h + y);
                    }
                }
                line.push(best_match(&mut cell, &candidates));
            }
            line.truncate(line.trim_end().len());
            line
        })
        .collect()
}

/// The candidate whose coverage is nearest the cell's, brightness normalised (coloured
/// text is dimmer than white in some channels); light cells are read inverted.
fn best_match(cell: &mut [u8], candidates: &[(char, &[u8])]) -> char {
    // Inverse video (the scrollback status line): dark ink on a light background.
    let mut sorted = [0u8; 64];
    for (s, v) in sorted
        .iter_mut()
        .zip(cell.iter().step_by(cell.len().div_ceil(64).max(1)))
    {
        *s = *v;
    }
    sorted.sort_unstable();
    let background = sorted[sorted.len() / 2];
    if background > 2 * INK {
        cell.iter_mut()
            .for_each(|v| *v = background.saturating_sub(*v));
    }
    let max = cell.iter().copied().max().unwrap_or(0);
    if max < INK {
        return ' ';
    }
    let scale = |v: u8| u32::from(v) * 255 / u32::from(max);
    candidates
        .iter()
        .min_by_key(|(_, g)| {
            cell.iter()
                .zip(g.iter())
                .map(|(&v, &c)| scale(v).abs_diff(u32::from(c)))
                .sum::<u32>()
        })
        .map_or('?', |(c, _)| *c)
}
