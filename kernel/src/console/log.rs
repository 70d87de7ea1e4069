//! Kernel log: every line carries a monotonic timestamp and the CPU number.
//! Each line goes to COM1 and, when there is one, to the screen (`screen`), where
//! warnings and errors keep their colour.

use core::fmt::Write;

use sluice_console::text::Attr;

#[doc(hidden)]
pub fn _print_line(args: core::fmt::Arguments, level: &str) {
    let ns = crate::time::nanos_since_boot();
    let cpu = crate::arch::cpu::current_index();
    let attr = match level {
        "warning: " => Attr::Warning,
        "error: " => Attr::Error,
        _ => Attr::Normal,
    };
    emit(
        attr,
        format_args!(
            "[{:5}.{:06}] cpu{} {}{}\n",
            ns / 1_000_000_000,
            (ns % 1_000_000_000) / 1000,
            cpu,
            level,
            args
        ),
    );
}

#[doc(hidden)]
pub fn _print(args: core::fmt::Arguments) {
    emit(Attr::Normal, args);
}

fn emit(attr: Attr, args: core::fmt::Arguments) {
    crate::console::serial::with_console(|c| {
        let _ = c.write_fmt(args);
    });
    crate::console::screen::write(attr, args);
}

/// Informational log line.
#[macro_export]
macro_rules! log {
    ($($arg:tt)*) => { $crate::console::log::_print_line(format_args!($($arg)*), "") };
}

/// Warning log line.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::console::log::_print_line(format_args!($($arg)*), "warning: ") };
}

/// Error log line.
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::console::log::_print_line(format_args!($($arg)*), "error: ") };
}

/// Raw console output without a prefix (shell output).
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::log::_print(format_args!($($arg)*)) };
}

/// Raw console output and a newline (shell output).
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::console::log::_print(format_args!("{}\n", format_args!($($arg)*))) };
}
