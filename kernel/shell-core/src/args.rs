//! One parser for every shell command's arguments.
//!
//! A command reads its words through [`Args`]: first its flags and options (which may
//! stand anywhere on the line), then its positional arguments in order, each as a
//! [`Kind`] that knows how to read it and what to call it in an error, and last
//! [`Args::finish`], which refuses whatever is left. Every error is an [`ArgError`]
//! naming the argument; the shell prints it after the command's name, then the command's
//! usage line.
//!
//! ```
//! use sluice_shell::args::{Args, Bdf, Count};
//!
//! // `msi-storm BDF [COUNT] [--naive]`
//! let mut a = Args::new(&["00:03.0", "--naive", "500"]);
//! let naive = a.flag("--naive");
//! let bdf = a.req(Bdf)?;
//! let links = a.opt(Count::new("COUNT", "link count", 1, 10_000_000))?.unwrap_or(100_000);
//! a.finish()?;
//! assert_eq!((bdf.device(), links, naive), (3, 500, true));
//! # Ok::<(), sluice_shell::args::ArgError>(())
//! ```

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::str::FromStr;

use sluice_irq_core::{CpuMask, Virq};
use sluice_pci::{AddressError, PciAddress};

/// A bad argument, naming it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArgError {
    /// A required argument is absent: `missing CPU number`.
    Missing(&'static str),
    /// A word that is not what the argument takes: `'x' is not a CPU number`.
    NotA {
        /// The word as typed.
        word: String,
        /// What the argument is, in words.
        what: &'static str,
        /// How one is written, where that helps (`0 or 0,2-3`).
        example: Option<&'static str>,
    },
    /// A number outside the argument's range: `COUNT must be 1..=10000, not '0'`.
    OutOfRange {
        /// The argument's name in the usage (`COUNT`).
        name: &'static str,
        /// The word as typed.
        word: String,
        /// The smallest value taken.
        min: u64,
        /// The largest value taken.
        max: u64,
    },
    /// A CPU number at or above the machine's CPU count.
    NoSuchCpu {
        /// The CPU number given.
        cpu: u64,
        /// How many CPUs the machine has.
        cpus: usize,
    },
    /// A word that is none of the argument's choices: `unknown subcommand 'x'`.
    Unknown {
        /// What the argument is, in words.
        what: &'static str,
        /// The word as typed.
        word: String,
    },
    /// A word that is not a PCI address, with the address parser's reason.
    BadAddress {
        /// The word as typed.
        word: String,
        /// Why it is not an address.
        error: AddressError,
    },
    /// An option the command does not take (or not in this form of it).
    UnknownOption(String),
    /// An option given without the value it takes: `--msi needs a PCI address`.
    NeedsValue {
        /// The option's name.
        option: &'static str,
        /// What its value is, in words.
        what: &'static str,
    },
    /// Two options that exclude each other, both given.
    Exclusive(&'static str, &'static str),
    /// A word left over once the command has every argument it takes.
    Unexpected(String),
}

/// `what` with its indefinite article: "an irq number", "a CPU list".
fn article(what: &str) -> &'static str {
    match what.bytes().next() {
        Some(b'a' | b'e' | b'i' | b'o' | b'u' | b'A' | b'E' | b'I' | b'O' | b'U') => "an",
        _ => "a",
    }
}

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArgError::Missing(what) => write!(f, "missing {what}"),
            ArgError::NotA {
                word,
                what,
                example,
            } => {
                write!(f, "'{word}' is not {} {what}", article(what))?;
                match example {
                    Some(e) => write!(f, " (e.g. {e})"),
                    None => Ok(()),
                }
            }
            ArgError::OutOfRange {
                name,
                word,
                min,
                max,
            } => write!(f, "{name} must be {min}..={max}, not '{word}'"),
            ArgError::NoSuchCpu { cpu, cpus } => {
                write!(f, "CPU {cpu} does not exist (this machine has {cpus})")
            }
            ArgError::Unknown { what, word } => write!(f, "unknown {what} '{word}'"),
            ArgError::BadAddress { word, error } => {
                write!(f, "'{word}': {error} (e.g. 0000:00:03.0)")
            }
            ArgError::UnknownOption(o) => write!(f, "unknown option '{o}'"),
            ArgError::NeedsValue { option, what } => {
                write!(f, "{option} needs {} {what}", article(what))
            }
            ArgError::Exclusive(a, b) => write!(f, "{a} and {b} exclude each other"),
            ArgError::Unexpected(w) => write!(f, "unexpected argument '{w}'"),
        }
    }
}

impl From<ArgError> for String {
    fn from(e: ArgError) -> String {
        e.to_string()
    }
}

/// How to read one argument, and what to call it in an error.
pub trait Kind<'a> {
    /// What a word parses to.
    type Value;
    /// The argument in words, for `missing ...`: "CPU number".
    fn what(&self) -> &'static str;
    /// Parses one word, or says in an error what was wrong with it.
    fn parse(&self, word: &'a str) -> Result<Self::Value, ArgError>;
}

fn not_a(word: &str, what: &'static str) -> ArgError {
    ArgError::NotA {
        word: word.into(),
        what,
        example: None,
    }
}

/// A decimal number of any size `T` holds, with no range of its own (the command or the
/// kernel below it judges the value): an entry number, a vector count.
#[derive(Clone, Copy, Debug)]
pub struct Number<T> {
    what: &'static str,
    _t: core::marker::PhantomData<T>,
}

impl<T> Number<T> {
    /// A number read as `T`, called `what` in errors.
    pub const fn new(what: &'static str) -> Self {
        Number {
            what,
            _t: core::marker::PhantomData,
        }
    }
}

impl<T: FromStr> Kind<'_> for Number<T> {
    type Value = T;
    fn what(&self) -> &'static str {
        self.what
    }
    fn parse(&self, word: &str) -> Result<T, ArgError> {
        word.parse().map_err(|_| not_a(word, self.what))
    }
}

/// An irq number.
#[derive(Clone, Copy, Debug)]
pub struct Irq;

impl Kind<'_> for Irq {
    type Value = Virq;
    fn what(&self) -> &'static str {
        "irq number"
    }
    fn parse(&self, word: &str) -> Result<Virq, ArgError> {
        Number::<Virq>::new(self.what()).parse(word)
    }
}

/// A CPU number, below the machine's CPU count where the command checks that.
#[derive(Clone, Copy, Debug)]
pub struct Cpu {
    cpus: Option<usize>,
}

impl Cpu {
    /// Any number: the command (or the kernel below it) says what is wrong with it.
    pub const ANY: Cpu = Cpu { cpus: None };
    /// A CPU of a machine with `cpus` CPUs.
    pub const fn below(cpus: usize) -> Cpu {
        Cpu { cpus: Some(cpus) }
    }
}

impl Kind<'_> for Cpu {
    type Value = usize;
    fn what(&self) -> &'static str {
        "CPU number"
    }
    fn parse(&self, word: &str) -> Result<usize, ArgError> {
        let cpu: usize = Number::new(self.what()).parse(word)?;
        match self.cpus {
            Some(cpus) if cpu >= cpus => Err(ArgError::NoSuchCpu {
                cpu: cpu as u64,
                cpus,
            }),
            _ => Ok(cpu),
        }
    }
}

/// A Linux-style CPU list (`0-3,6`) of CPUs a machine with `cpus` CPUs has.
#[derive(Clone, Copy, Debug)]
pub struct CpuList {
    /// How many CPUs the machine has.
    pub cpus: usize,
}

impl Kind<'_> for CpuList {
    type Value = CpuMask;
    fn what(&self) -> &'static str {
        "CPU list"
    }
    fn parse(&self, word: &str) -> Result<CpuMask, ArgError> {
        let mask = CpuMask::parse_list(word).ok_or(ArgError::NotA {
            word: word.into(),
            what: self.what(),
            example: Some("0 or 0,2-3"),
        })?;
        match mask.iter().find(|&c| c as usize >= self.cpus) {
            Some(cpu) => Err(ArgError::NoSuchCpu {
                cpu: cpu.into(),
                cpus: self.cpus,
            }),
            None => Ok(mask),
        }
    }
}

/// A PCI address: `0000:00:03.0` or `00:03.0` (segment 0).
#[derive(Clone, Copy, Debug)]
pub struct Bdf;

impl Kind<'_> for Bdf {
    type Value = PciAddress;
    fn what(&self) -> &'static str {
        "PCI address"
    }
    fn parse(&self, word: &str) -> Result<PciAddress, ArgError> {
        word.parse().map_err(|error| ArgError::BadAddress {
            word: word.into(),
            error,
        })
    }
}

/// A count in `min..=max`; `name` is the argument as the usage line writes it
/// (`COUNT`, `MOVES`), `what` the same in words.
#[derive(Clone, Copy, Debug)]
pub struct Count {
    name: &'static str,
    what: &'static str,
    min: u64,
    max: u64,
}

impl Count {
    /// A count between `min` and `max` inclusive, `name` in the usage and `what` in words.
    pub const fn new(name: &'static str, what: &'static str, min: u64, max: u64) -> Count {
        Count {
            name,
            what,
            min,
            max,
        }
    }
}

impl Kind<'_> for Count {
    type Value = u64;
    fn what(&self) -> &'static str {
        self.what
    }
    fn parse(&self, word: &str) -> Result<u64, ArgError> {
        word.parse()
            .ok()
            .filter(|n| (self.min..=self.max).contains(n))
            .ok_or(ArgError::OutOfRange {
                name: self.name,
                word: word.into(),
                min: self.min,
                max: self.max,
            })
    }
}

/// One word of a fixed set: a subcommand, a benchmark's name.
#[derive(Clone, Copy, Debug)]
pub struct OneOf<'c> {
    /// What the word is, in words ("subcommand").
    pub what: &'static str,
    /// The words taken.
    pub choices: &'c [&'c str],
}

impl<'c> Kind<'_> for OneOf<'c> {
    type Value = &'c str;
    fn what(&self) -> &'static str {
        self.what
    }
    fn parse(&self, word: &str) -> Result<&'c str, ArgError> {
        self.choices
            .iter()
            .find(|&&c| c == word)
            .copied()
            .ok_or_else(|| ArgError::Unknown {
                what: self.what,
                word: word.into(),
            })
    }
}

/// Any word, as typed (a test filter).
#[derive(Clone, Copy, Debug)]
pub struct Word(pub &'static str);

impl<'a> Kind<'a> for Word {
    type Value = &'a str;
    fn what(&self) -> &'static str {
        self.0
    }
    fn parse(&self, word: &'a str) -> Result<&'a str, ArgError> {
        Ok(word)
    }
}

/// An option a command takes: a flag alone, or a name and the value after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opt {
    /// `--naive`: its name alone.
    Flag(&'static str),
    /// `--msi BDF`: the name, and what its value is in words.
    Value(&'static str, &'static str),
}

impl Opt {
    fn name(self) -> &'static str {
        match self {
            Opt::Flag(n) | Opt::Value(n, _) => n,
        }
    }
}

/// One option as given, in the order of the line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Given<'a> {
    /// The option's name.
    pub option: &'static str,
    /// The word after it, for an `Opt::Value`.
    pub value: Option<&'a str>,
}

/// Is `word` an option (`--naive`, `-x`) rather than a value? A lone `-` and negative
/// numbers are values.
fn is_option(word: &str) -> bool {
    let mut b = word.bytes();
    b.next() == Some(b'-') && b.next().is_some_and(|c| !c.is_ascii_digit())
}

/// A command's words, read once each. Take options that carry a value before any
/// positional argument (the value would otherwise be read as one); flags can be taken
/// at any time.
pub struct Args<'a> {
    words: Vec<&'a str>,
    taken: Vec<bool>,
}

impl<'a> Args<'a> {
    /// The words after the command's name, none read yet.
    pub fn new(words: &[&'a str]) -> Args<'a> {
        Args {
            words: words.to_vec(),
            taken: alloc::vec![false; words.len()],
        }
    }

    /// Whether `name` was given (every occurrence is taken).
    pub fn flag(&mut self, name: &'static str) -> bool {
        let mut given = false;
        for (w, t) in self.words.iter().zip(self.taken.iter_mut()) {
            if !*t && *w == name {
                *t = true;
                given = true;
            }
        }
        given
    }

    /// Which one of flags that exclude each other was given, if any.
    pub fn exclusive(&mut self, names: &[&'static str]) -> Result<Option<&'static str>, ArgError> {
        let mut chosen = None;
        for &n in names {
            if self.flag(n) {
                if let Some(first) = chosen {
                    return Err(ArgError::Exclusive(first, n));
                }
                chosen = Some(n);
            }
        }
        Ok(chosen)
    }

    /// Every occurrence of the options in `spec`, in the order of the line, each with
    /// its value if it takes one.
    pub fn options(&mut self, spec: &[Opt]) -> Result<Vec<Given<'a>>, ArgError> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.words.len() {
            let found = spec.iter().find(|o| o.name() == self.words[i]);
            match found {
                Some(&opt) if !self.taken[i] => {
                    self.taken[i] = true;
                    let value = match opt {
                        Opt::Flag(_) => None,
                        Opt::Value(option, what) => {
                            let v = self
                                .words
                                .get(i + 1)
                                .filter(|v| !is_option(v) && !self.taken[i + 1])
                                .ok_or(ArgError::NeedsValue { option, what })?;
                            i += 1;
                            self.taken[i] = true;
                            Some(*v)
                        }
                    };
                    out.push(Given {
                        option: opt.name(),
                        value,
                    });
                }
                _ => {}
            }
            i += 1;
        }
        Ok(out)
    }

    /// The index of the next positional word not yet read.
    fn next_positional(&self) -> Option<usize> {
        (0..self.words.len()).find(|&i| !self.taken[i] && !is_option(self.words[i]))
    }

    /// Whether the next positional word is `word` (read if so): an optional keyword.
    pub fn keyword(&mut self, word: &str) -> bool {
        match self.next_positional() {
            Some(i) if self.words[i] == word => {
                self.taken[i] = true;
                true
            }
            _ => false,
        }
    }

    /// The next positional argument, if there is one.
    pub fn opt<K: Kind<'a>>(&mut self, kind: K) -> Result<Option<K::Value>, ArgError> {
        let Some(i) = self.next_positional() else {
            return Ok(None);
        };
        self.taken[i] = true;
        kind.parse(self.words[i]).map(Some)
    }

    /// The next positional argument, which must be there.
    pub fn req<K: Kind<'a>>(&mut self, kind: K) -> Result<K::Value, ArgError> {
        let what = kind.what();
        self.opt(kind)?.ok_or(ArgError::Missing(what))
    }

    /// Every remaining positional argument, at least one.
    pub fn rest<K: Kind<'a> + Copy>(&mut self, kind: K) -> Result<Vec<K::Value>, ArgError> {
        let mut out = alloc::vec![self.req(kind)?];
        while let Some(v) = self.opt(kind)? {
            out.push(v);
        }
        Ok(out)
    }

    /// Refuses the first word no argument took: an unknown option or an extra argument.
    pub fn finish(self) -> Result<(), ArgError> {
        match self.words.iter().zip(&self.taken).find(|(_, t)| !**t) {
            Some((w, _)) if is_option(w) => Err(ArgError::UnknownOption((*w).into())),
            Some((w, _)) => Err(ArgError::Unexpected((*w).into())),
            None => Ok(()),
        }
    }
}

/// For commands that take no argument.
pub fn none(words: &[&str]) -> Result<(), ArgError> {
    Args::new(words).finish()
}
