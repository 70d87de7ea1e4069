//! The screen's text model: wrapping, the VT subset, scrollback, the ring.

use sluice_console::text::{Attr, Cell, TextModel};

fn rows<const N: usize>(m: &TextModel<N>) -> Vec<String> {
    let mut cells = vec![Cell::BLANK; m.cols() * m.screen_rows()];
    m.view(&mut cells);
    cells
        .chunks(m.cols())
        .map(|r| {
            r.iter()
                .map(|c| c.ch())
                .collect::<String>()
                .trim_end()
                .to_string()
        })
        .collect()
}

#[test]
fn lines_wrap_and_scroll_off_the_top() {
    let mut m = TextModel::<400>::new();
    m.configure(5, 3).unwrap();
    m.write_str("abcdefg\nxy\nz");
    assert_eq!(rows(&m), ["fg", "xy", "z"]);
    let info = m.view(&mut [Cell::BLANK; 15]);
    assert_eq!(info.cursor, Some((2, 1)));
    assert_eq!(info.max_back, 1);
}

#[test]
fn backspace_erase_and_cursor_moves() {
    let mut m = TextModel::<400>::new();
    m.configure(10, 2).unwrap();
    m.write_str("hello\x08\x08\x1b[K");
    assert_eq!(rows(&m)[0], "hel");
    m.write_str("\r> ab\x1b[2Dz");
    assert_eq!(rows(&m)[0], "> zb");
    m.write_str("\x1b[1;31mq"); // colour sequences are swallowed, not printed
    assert_eq!(rows(&m)[0], "> zq");
}

#[test]
fn scrollback_keeps_its_text_while_output_continues() {
    let mut m = TextModel::<40>::new(); // 10 rows of 4
    m.configure(4, 2).unwrap();
    for i in 0..6 {
        m.write_str(&format!("{i}\n"));
    }
    assert_eq!(rows(&m), ["5", ""]);
    assert!(m.scroll(2));
    assert_eq!(rows(&m), ["3", "4"]);
    m.write_str("6\n");
    assert_eq!(rows(&m), ["3", "4"], "the view stays on its text");
    assert!(m.scroll_to_live());
    assert_eq!(rows(&m), ["6", ""]);
    // Only 10 rows are kept: scrolling stops at the oldest.
    for i in 7..20 {
        m.write_str(&format!("{i}\n"));
    }
    m.scroll(100);
    assert_eq!(rows(&m), ["11", "12"], "rows 11..=20 are kept");
    assert_eq!(m.rows_kept(), 10);
}

#[test]
fn erase_screen_starts_at_the_top_and_keeps_history() {
    let mut m = TextModel::<100>::new();
    m.configure(5, 3).unwrap();
    m.write_str("a\nb\nc\nd\x1b[2Jx");
    assert_eq!(rows(&m), ["x", "", ""]);
    m.scroll(3);
    assert_eq!(rows(&m), ["b", "c", "d"]);
}

#[test]
fn attributes_are_kept_per_cell() {
    let mut m = TextModel::<100>::new();
    m.configure(5, 2).unwrap();
    m.set_attr(Attr::Error);
    m.write_str("e");
    m.set_attr(Attr::Normal);
    m.write_str("n");
    let mut cells = [Cell::BLANK; 10];
    m.view(&mut cells);
    assert_eq!(cells[0], Cell::new('e', Attr::Error));
    assert_eq!(cells[1].attr(), Attr::Normal);
}

#[test]
fn unconfigured_or_oversized_screens() {
    let mut m = TextModel::<10>::new();
    m.write_str("dropped");
    assert_eq!(m.generation(), 0);
    assert!(m.configure(4, 3).is_err());
    assert!(m.configure(0, 1).is_err());
}
