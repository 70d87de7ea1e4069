//! Painting into every pixel format, and reading the text back out of the pixels.

use sluice_console::paint::{Format, FormatError, Geometry, Painter, PixelLayout};
use sluice_console::read::read_screen;
use sluice_console::text::{Attr, Cell, TextModel};

fn screen(
    layout: PixelLayout,
    bpp: usize,
    w: usize,
    h: usize,
    stride: usize,
) -> (Painter, Vec<u8>) {
    let format = Format {
        width: w,
        height: h,
        stride,
        bytes_per_pixel: bpp,
        layout,
    };
    let fb = vec![0x55u8; stride * h * bpp];
    format.validate(fb.len()).unwrap();
    let geo = Geometry::for_screen(w, h).unwrap();
    (Painter::new(format, geo), fb)
}

fn paint_text(p: &Painter, fb: &mut [u8], text: &str, attr: Attr) {
    let g = p.geometry;
    let mut m = TextModel::<65536>::new();
    m.configure(g.cols, g.rows).unwrap();
    m.set_attr(attr);
    m.write_str(text);
    let mut cells = vec![Cell::BLANK; g.cols * g.rows];
    let info = m.view(&mut cells);
    p.clear(fb);
    for (r, row) in cells.chunks(g.cols).enumerate() {
        let cur = info.cursor.filter(|c| c.0 == r).map(|c| c.1);
        p.draw(fb, r, 0, row, cur);
    }
}

fn read_back(p: &Painter, fb: &[u8]) -> Vec<String> {
    let f = p.format;
    read_screen(&p.geometry, |x, y| {
        let o = (y * f.stride + x) * f.bytes_per_pixel;
        f.decode(&fb[o..o + f.bytes_per_pixel])
            .into_iter()
            .max()
            .unwrap()
    })
}

#[test]
fn every_layout_reads_back_as_the_text_painted() {
    let layouts = [
        (PixelLayout::Rgb, 4),
        (PixelLayout::Bgr, 4),
        (PixelLayout::Rgb, 3),
        (PixelLayout::Gray, 1),
        (
            PixelLayout::Bits {
                red: 24,
                green: 16,
                blue: 8,
            },
            4,
        ),
    ];
    let text = "sluice> info\nAPIC mode: x2APIC (CPU has x2APIC) ~!@#$%^&*()_+{}|:\"<>?\n";
    for (layout, bpp) in layouts {
        for attr in [Attr::Normal, Attr::Error] {
            let (p, mut fb) = screen(layout, bpp, 800, 600, 832);
            paint_text(&p, &mut fb, text, attr);
            let rows = read_back(&p, &fb);
            assert_eq!(rows[0], "sluice> info", "{layout:?}/{bpp}");
            assert_eq!(rows[1], text.lines().nth(1).unwrap(), "{layout:?}/{bpp}");
        }
    }
}

#[test]
fn font_grows_with_the_screen() {
    let h = |w, h| Geometry::for_screen(w, h).unwrap().cell_h;
    assert_eq!(h(800, 600), 16);
    assert_eq!(h(1280, 800), 16);
    assert_eq!(h(1920, 1080), 20);
    assert_eq!(h(3840, 2160), 32);
    assert!(Geometry::for_screen(4, 4).is_none());
}

#[test]
fn bad_formats_are_refused() {
    let f = |bpp, layout, stride, len| {
        Format {
            width: 100,
            height: 10,
            stride,
            bytes_per_pixel: bpp,
            layout,
        }
        .validate(len)
    };
    assert_eq!(
        f(0, PixelLayout::Gray, 100, 1000),
        Err(FormatError::BadBytesPerPixel)
    );
    assert_eq!(
        f(2, PixelLayout::Rgb, 100, 2000),
        Err(FormatError::BadBytesPerPixel)
    );
    assert_eq!(
        f(4, PixelLayout::Rgb, 90, 4000),
        Err(FormatError::StrideBelowWidth)
    );
    assert_eq!(
        f(4, PixelLayout::Rgb, 100, 3999),
        Err(FormatError::BufferShorterThanScreen)
    );
    let bits = PixelLayout::Bits {
        red: 10,
        green: 5,
        blue: 0,
    };
    assert_eq!(f(2, bits, 100, 2000), Err(FormatError::ChannelOutsidePixel));
}

#[test]
fn inverse_video_reads_back() {
    let (p, mut fb) = screen(PixelLayout::Bgr, 4, 800, 600, 800);
    paint_text(&p, &mut fb, "scrollback: 3 of 9 lines up\n", Attr::Status);
    assert_eq!(read_back(&p, &fb)[0], "scrollback: 3 of 9 lines up");
}

/// Clearing paints every visible pixel the background's colour and leaves the bytes
/// past each row's width (the stride's padding) alone, in every pixel size.
#[test]
fn clear_paints_every_visible_pixel_and_no_padding() {
    for (layout, bpp) in [
        (PixelLayout::Rgb, 4),
        (PixelLayout::Rgb, 3),
        (PixelLayout::Gray, 1),
    ] {
        let (w, h, stride) = (640, 400, 672);
        let (p, mut fb) = screen(layout, bpp, w, h, stride);
        p.clear(&mut fb);
        let f = p.format;
        let background = f.decode(&fb[..bpp]);
        assert_ne!(
            background,
            f.decode(&[0x55; 4][..bpp]),
            "{layout:?}: not painted"
        );
        for y in 0..h {
            for x in 0..stride {
                let o = (y * stride + x) * bpp;
                let px = &fb[o..o + bpp];
                if x < w {
                    assert_eq!(f.decode(px), background, "{layout:?} ({x},{y})");
                } else {
                    assert!(
                        px.iter().all(|&b| b == 0x55),
                        "{layout:?}: padding ({x},{y})"
                    );
                }
            }
        }
    }
}
