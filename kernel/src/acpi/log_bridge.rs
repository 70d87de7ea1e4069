//! The `log` crate's records (the `acpi` crate logs through it: a bad RSDP, an
//! unsupported register kind, AML trouble) reach the kernel's log, each with its level.
//!
//! Errors and warnings go through `error!` and `warn!`, so they keep their colour on the
//! screen; info lines through `log!`. Debug and trace records are filtered out by the
//! maximum level set here: the crates' chatter would flood the serial console under TCG.

use log::{Level, LevelFilter, Log, Metadata, Record};

/// The one logger; stateless.
struct KernelLog;

static LOGGER: KernelLog = KernelLog;

/// The most detailed level passed on.
const MAX_LEVEL: LevelFilter = LevelFilter::Info;

impl Log for KernelLog {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= MAX_LEVEL
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let target = record.target();
        let args = record.args();
        match record.level() {
            Level::Error => crate::error!("{}: {}", target, args),
            Level::Warn => crate::warn!("{}: {}", target, args),
            Level::Info => crate::log!("{}: {}", target, args),
            Level::Debug => crate::log!("debug: {}: {}", target, args),
            Level::Trace => crate::log!("trace: {}: {}", target, args),
        }
    }

    fn flush(&self) {}
}

/// Installs the bridge (once; a second call changes nothing). Call before the first
/// table is read, so the `acpi` crate's first messages are not lost.
pub fn install() {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(MAX_LEVEL);
    }
}
