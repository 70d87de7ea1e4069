//! The screen's text: a ring of rows (the visible screen is its newest rows, older
//! ones are the scrollback), a cursor, and the small part of a VT100 terminal the
//! kernel's output uses: `\n`, `\r`, `\x08`, `\t`, and the CSI sequences `K` (erase to
//! the end of the line), `C`/`D` (cursor right/left) and `J` (erase the screen). Other
//! escape sequences are consumed and ignored, so they never show as garbage.
//!
//! Rows are numbered absolutely from the first one written; the ring keeps the newest
//! `capacity_rows`. Nothing here draws: a renderer copies the visible window out with
//! `view` and paints it (`paint`).

/// One character cell: the character in bits 0..21, its `Attr` in bits 24..32. Zero
/// is a blank, so a model in a `static` lives in zeroed memory (.bss), not in the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Cell(pub u32);

impl Cell {
    /// A blank: a space in the normal attribute.
    pub const BLANK: Cell = Cell(0);

    /// The character `c` shown with `attr`.
    pub const fn new(c: char, attr: Attr) -> Cell {
        Cell(c as u32 | (attr as u32) << 24)
    }
    /// The cell's character (a blank is a space; an invalid one '?').
    pub fn ch(self) -> char {
        match self.0 & 0x1f_ffff {
            0 => ' ',
            c => char::from_u32(c).unwrap_or('?'),
        }
    }
    /// The cell's attribute.
    pub fn attr(self) -> Attr {
        Attr::from_u8((self.0 >> 24) as u8)
    }
}

/// How a cell is coloured. The log's warnings and errors keep their colour on screen,
/// so a photo of a failing machine shows at once what went wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Attr {
    /// Ordinary output.
    Normal = 0,
    /// A warning line of the log.
    Warning = 1,
    /// An error line of the log.
    Error = 2,
    /// Status lines drawn by the console itself (the scrollback indicator).
    Status = 3,
}

impl Attr {
    /// How many attributes there are (for tables indexed by one).
    pub const COUNT: usize = 4;
    /// The attribute with value `v`; an unknown value is `Normal`.
    pub const fn from_u8(v: u8) -> Attr {
        match v {
            1 => Attr::Warning,
            2 => Attr::Error,
            3 => Attr::Status,
            _ => Attr::Normal,
        }
    }
}

/// Escape-sequence parser state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Esc {
    None,
    /// After ESC.
    Start,
    /// Inside `ESC [`, with the first numeric parameter so far.
    Csi(u16),
}

/// What the renderer needs besides the cells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ViewInfo {
    /// The cursor's (row, col) on screen, if the cursor row is visible.
    pub cursor: Option<(usize, usize)>,
    /// Rows scrolled back from the live screen (0: live).
    pub back: usize,
    /// Rows of history that can be scrolled back to at most.
    pub max_back: usize,
}

/// The text model over `CELLS` cells of storage; `configure` sets the geometry.
pub struct TextModel<const CELLS: usize> {
    cells: [Cell; CELLS],
    cols: usize,
    screen_rows: usize,
    capacity_rows: usize,
    /// Absolute row of the cursor; it is also the newest row.
    cur_row: u64,
    cur_col: usize,
    /// Oldest row still in the ring.
    first_row: u64,
    /// No row above this one is on the live screen (set by erasing the screen).
    floor: u64,
    back: usize,
    attr: Attr,
    esc: Esc,
    generation: u64,
}

impl<const CELLS: usize> Default for TextModel<CELLS> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const CELLS: usize> TextModel<CELLS> {
    /// An unconfigured model (no columns: writes are dropped until `configure`).
    pub const fn new() -> Self {
        TextModel {
            cells: [Cell::BLANK; CELLS],
            cols: 0,
            screen_rows: 0,
            capacity_rows: 0,
            cur_row: 0,
            cur_col: 0,
            first_row: 0,
            floor: 0,
            back: 0,
            attr: Attr::Normal,
            esc: Esc::None,
            generation: 0,
        }
    }

    /// Sets the screen's size in cells and clears everything. The scrollback holds as
    /// many rows as the storage allows (at least the screen). Errors if even one
    /// screen does not fit.
    pub fn configure(&mut self, cols: usize, screen_rows: usize) -> Result<(), &'static str> {
        if cols == 0 || screen_rows == 0 {
            return Err("a screen needs at least one row and one column");
        }
        if cols * screen_rows > CELLS {
            return Err("the screen has more cells than the text storage");
        }
        *self = Self::new();
        self.cols = cols;
        self.screen_rows = screen_rows;
        self.capacity_rows = CELLS / cols;
        Ok(())
    }

    /// Columns of the screen.
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// Rows of the visible screen.
    pub fn screen_rows(&self) -> usize {
        self.screen_rows
    }
    /// Bumped by every change a renderer must show.
    pub fn generation(&self) -> u64 {
        self.generation
    }
    /// Rows in the ring (history plus the screen), at most `capacity_rows`.
    pub fn rows_kept(&self) -> u64 {
        self.cur_row + 1 - self.first_row
    }

    /// The attribute of the characters written from now on.
    pub fn set_attr(&mut self, attr: Attr) {
        self.attr = attr;
    }

    fn index(&self, row: u64, col: usize) -> usize {
        (row % self.capacity_rows as u64) as usize * self.cols + col
    }

    fn row_mut(&mut self, row: u64) -> &mut [Cell] {
        let start = self.index(row, 0);
        let cols = self.cols;
        &mut self.cells[start..start + cols]
    }

    /// The newest visible row is the cursor's; the screen shows the rows above it.
    fn live_top(&self) -> u64 {
        (self.cur_row + 1)
            .saturating_sub(self.screen_rows as u64)
            .max(self.first_row)
            .max(self.floor)
    }

    fn max_back(&self) -> usize {
        (self.live_top() - self.first_row) as usize
    }

    fn new_line(&mut self) {
        let top_before = self.live_top();
        self.cur_row += 1;
        self.cur_col = 0;
        if self.cur_row - self.first_row >= self.capacity_rows as u64 {
            self.first_row = self.cur_row + 1 - self.capacity_rows as u64;
        }
        let row = self.cur_row;
        self.row_mut(row).fill(Cell::BLANK);
        // A view scrolled back stays on the same text while output goes on (until that
        // text leaves the ring).
        if self.back > 0 {
            let moved = (self.live_top() - top_before) as usize;
            self.back = (self.back + moved).min(self.max_back());
        }
    }

    fn put(&mut self, c: char) {
        if self.cur_col >= self.cols {
            self.new_line();
        }
        let i = self.index(self.cur_row, self.cur_col);
        self.cells[i] = Cell::new(c, self.attr);
        self.cur_col += 1;
    }

    /// Appends text, interpreting the control characters and escapes listed above.
    pub fn write_str(&mut self, s: &str) {
        if self.cols == 0 {
            return;
        }
        for c in s.chars() {
            self.write_char(c);
        }
        self.generation += 1;
    }

    fn write_char(&mut self, c: char) {
        match self.esc {
            Esc::Start => {
                self.esc = if c == '[' { Esc::Csi(0) } else { Esc::None };
                return;
            }
            Esc::Csi(n) => {
                self.csi(n, c);
                return;
            }
            Esc::None => {}
        }
        match c {
            '\n' => self.new_line(),
            '\r' => self.cur_col = 0,
            '\x08' => self.cur_col = self.cur_col.min(self.cols).saturating_sub(1),
            '\t' => {
                let next = (self.cur_col / 8 + 1) * 8;
                while self.cur_col < next.min(self.cols) {
                    self.put(' ');
                }
            }
            '\x1b' => self.esc = Esc::Start,
            c if c.is_control() => {}
            c => self.put(c),
        }
    }

    fn csi(&mut self, n: u16, c: char) {
        if let Some(d) = c.to_digit(10) {
            self.esc = Esc::Csi(n.saturating_mul(10).saturating_add(d as u16));
            return;
        }
        if c == ';' || c == '?' {
            return; // further parameters: only the first one is used
        }
        self.esc = Esc::None;
        let count = usize::from(n.max(1));
        match c {
            'K' => {
                let (row, col) = (self.cur_row, self.cur_col.min(self.cols));
                self.row_mut(row)[col..].fill(Cell::BLANK);
            }
            'C' => self.cur_col = (self.cur_col + count).min(self.cols - 1),
            'D' => self.cur_col = self.cur_col.min(self.cols).saturating_sub(count),
            'J' if n == 2 => {
                // The old screen stays in the scrollback; the cursor starts a fresh top.
                self.new_line();
                self.floor = self.cur_row;
            }
            _ => {}
        }
    }

    /// Scrolls the view `delta` rows back into history (negative: towards the live
    /// screen), clamped to what is kept. Returns whether the view moved.
    pub fn scroll(&mut self, delta: isize) -> bool {
        let target = (self.back as isize + delta).clamp(0, self.max_back() as isize) as usize;
        let moved = target != self.back;
        self.back = target;
        if moved {
            self.generation += 1;
        }
        moved
    }

    /// Back to the live screen (a key was typed).
    pub fn scroll_to_live(&mut self) -> bool {
        self.scroll(-(self.back as isize))
    }

    /// Copies the visible rows into `out` (`screen_rows * cols` cells, row-major); rows
    /// below the newest one are blank.
    pub fn view(&self, out: &mut [Cell]) -> ViewInfo {
        let top = self.live_top() - self.back as u64;
        for (r, dst) in out
            .chunks_exact_mut(self.cols)
            .take(self.screen_rows)
            .enumerate()
        {
            let row = top + r as u64;
            if row <= self.cur_row {
                let i = self.index(row, 0);
                dst.copy_from_slice(&self.cells[i..i + self.cols]);
            } else {
                dst.fill(Cell::BLANK);
            }
        }
        let cursor =
            (self.cur_row >= top && self.cur_row < top + self.screen_rows as u64).then(|| {
                (
                    (self.cur_row - top) as usize,
                    self.cur_col.min(self.cols - 1),
                )
            });
        ViewInfo {
            cursor,
            back: self.back,
            max_back: self.max_back(),
        }
    }
}
