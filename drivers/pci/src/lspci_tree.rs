//! The bus tree in the form of `lspci -t`:
//!
//! ```text
//! -[0000:00]-+-00.0
//!            +-1c.0-[01]----00.0
//!            \-1f.3
//! ```
//!
//! Each root bus is `[segment:bus]`, the highest first and `[0000:00]` last, as lspci
//! orders them; each function `dev.fn`; a bridge is followed by its
//! bus range (`[01]`, or `[01-03]` for several) and what is behind it. `+-` starts every
//! branch but the last, `\-` the last; a branch that continues below draws `|` in the
//! columns to its left. The drawing is pciutils 3.9.0's (`ls-tree.c`): one line buffer
//! written left to right and printed at each leaf, after which what was drawn becomes
//! the indentation of the next line.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::address::PciAddress;
use crate::topology::{PciFunction, Topology};

/// `lspci -t` for a set of functions.
pub struct Tree<'a> {
    /// Every function, with the bridge whose secondary bus it is on (`None`: a root bus).
    nodes: Vec<(&'a PciFunction, Option<PciAddress>)>,
    /// The root buses, as (segment, bus), in lspci's (descending) order.
    roots: Vec<(u16, u8)>,
}

/// The line being drawn, and the text finished so far.
struct Canvas {
    line: String,
    out: String,
}

impl Canvas {
    /// Prints the line, then keeps only its branch marks as the next line's indent:
    /// `+` and `|` become `|`, everything else a space.
    fn print(&mut self, len: usize) {
        self.line.truncate(len);
        self.out.push_str(&self.line);
        self.out.push('\n');
        self.line = self
            .line
            .chars()
            .map(|c| if c == '+' || c == '|' { '|' } else { ' ' })
            .collect();
    }

    /// Writes `text` at column `at` (cutting what was there), returning the new end.
    fn put(&mut self, at: usize, text: &str) -> usize {
        self.line.truncate(at);
        while self.line.len() < at {
            self.line.push(' ');
        }
        self.line.push_str(text);
        self.line.len()
    }
}

impl<'a> Tree<'a> {
    /// The tree of what enumeration found.
    pub fn of(topology: &'a Topology) -> Tree<'a> {
        let nodes = topology.functions.iter().map(|f| {
            let parent = f
                .parent
                .and_then(|p| topology.functions.get(p))
                .map(|b| b.address);
            (f, parent)
        });
        let roots = topology
            .buses
            .iter()
            .filter(|b| b.bridge.is_none())
            .map(|b| (b.segment, b.bus));
        Tree::new(nodes, roots)
    }

    /// The tree of `nodes` (each function with the bridge it is behind) under `roots`.
    pub fn new(
        nodes: impl IntoIterator<Item = (&'a PciFunction, Option<PciAddress>)>,
        roots: impl IntoIterator<Item = (u16, u8)>,
    ) -> Tree<'a> {
        let mut roots: Vec<(u16, u8)> = roots.into_iter().collect();
        // pciutils starts from its host bridge's bus 00 and puts each root bus it meets
        // later (in ascending order) in front of the list: descending, bus 00 last.
        roots.sort_unstable_by(|a, b| b.cmp(a));
        roots.dedup();
        Tree {
            nodes: nodes.into_iter().collect(),
            roots,
        }
    }

    /// The functions on `bus` of `segment` behind `bridge` (`None`: a root bus), in
    /// device/function order.
    fn on_bus(&self, segment: u16, bus: u8, bridge: Option<PciAddress>) -> Vec<&'a PciFunction> {
        let mut found: Vec<&PciFunction> = self
            .nodes
            .iter()
            .filter(|(f, parent)| {
                f.address.segment() == segment && f.address.bus() == bus && *parent == bridge
            })
            .map(|(f, _)| *f)
            .collect();
        found.sort_by_key(|f| f.address);
        found
    }

    fn function(&self, c: &mut Canvas, at: usize, f: &PciFunction) {
        let at = c.put(
            at,
            &alloc::format!("{:02x}.{:x}", f.address.device(), f.address.function()),
        );
        if !f.is_bridge() {
            c.print(at);
            return;
        }
        let Some(n) = f.bus_numbers() else {
            c.print(at);
            return;
        };
        let range = if n.secondary == 0 {
            String::from("-")
        } else if n.secondary == n.subordinate {
            alloc::format!("-[{:02x}]-", n.secondary)
        } else {
            alloc::format!("-[{:02x}-{:02x}]-", n.secondary, n.subordinate)
        };
        let at = c.put(at, &range);
        let at = c.put(at, "-");
        let behind = self.on_bus(f.address.segment(), n.secondary, Some(f.address));
        self.bus(c, at, &behind);
    }

    fn bus(&self, c: &mut Canvas, at: usize, functions: &[&PciFunction]) {
        match functions {
            [] => c.print(at),
            [only] => {
                let at = c.put(at, "--");
                self.function(c, at, only);
            }
            [rest @ .., last] => {
                for f in rest {
                    let at = c.put(at, "+-");
                    self.function(c, at, f);
                }
                let at = c.put(at, "\\-");
                self.function(c, at, last);
            }
        }
    }
}

impl fmt::Display for Tree<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let roots = &self.roots;
        let mut c = Canvas {
            line: String::new(),
            out: String::new(),
        };
        let at = c.put(0, "-");
        match roots.as_slice() {
            [] => {}
            [(segment, bus)] => {
                let at = c.put(at, &alloc::format!("[{segment:04x}:{bus:02x}]-"));
                let functions = self.on_bus(*segment, *bus, None);
                self.bus(&mut c, at, &functions);
            }
            [rest @ .., last] => {
                for (segment, bus) in rest {
                    let at = c.put(at, &alloc::format!("+-[{segment:04x}:{bus:02x}]-"));
                    let functions = self.on_bus(*segment, *bus, None);
                    self.bus(&mut c, at, &functions);
                }
                let (segment, bus) = last;
                let at = c.put(at, &alloc::format!("\\-[{segment:04x}:{bus:02x}]-"));
                let functions = self.on_bus(*segment, *bus, None);
                self.bus(&mut c, at, &functions);
            }
        }
        f.write_str(&c.out)
    }
}
