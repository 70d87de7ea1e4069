//! The i8042 PS/2 controller (data port 0x60, status/command port 0x64), set up for the
//! keyboard on its first port. Every wait on the controller is bounded: a PC whose
//! 8042 is absent (the ports float to 0xFF) or dead (many USB-only machines without
//! legacy emulation) gets an error value, never a hang.
//!
//! Sequence (after the controller descriptions in the IBM PC/AT technical reference and
//! the OSDev "8042" notes): both ports off, output drained, controller self-test, first
//! port's interface test, configuration with interrupts off, port on, keyboard scanning
//! on, then the scancode set: with translation on (the configuration byte's bit 6,
//! how firmware and QEMU leave it) the controller turns the keyboard's set 2 into set 1;
//! with it off the keyboard is asked which set it sends. Only then is IRQ 1 enabled.

use bitflags::bitflags;
use sluice_console::keys::ScancodeSetKind;
use x86_64::instructions::port::Port;

const DATA: u16 = 0x60;
const STATUS_COMMAND: u16 = 0x64;

bitflags! {
    /// Status register (read at 0x64).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Status: u8 {
        /// A byte waits in the output buffer (read it at 0x60).
        const OUTPUT_FULL = 1 << 0;
        /// The controller has not taken the last byte written yet.
        const INPUT_FULL = 1 << 1;
        const SYSTEM = 1 << 2;
        const LAST_WAS_COMMAND = 1 << 3;
        /// The waiting byte came from the second (mouse) port.
        const AUX_DATA = 1 << 5;
        const TIMEOUT = 1 << 6;
        const PARITY = 1 << 7;
    }
}

bitflags! {
    /// Controller configuration byte (commands 0x20 / 0x60).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Config: u8 {
        const PORT1_IRQ = 1 << 0;
        const PORT2_IRQ = 1 << 1;
        const SYSTEM = 1 << 2;
        const PORT1_CLOCK_OFF = 1 << 4;
        const PORT2_CLOCK_OFF = 1 << 5;
        /// Translate the keyboard's set 2 to set 1.
        const TRANSLATE = 1 << 6;
    }
}

/// Controller commands (written to 0x64).
#[derive(Clone, Copy, Debug)]
#[repr(u8)]
enum Command {
    ReadConfig = 0x20,
    WriteConfig = 0x60,
    DisablePort2 = 0xa7,
    SelfTest = 0xaa,
    TestPort1 = 0xab,
    DisablePort1 = 0xad,
    EnablePort1 = 0xae,
}

/// Keyboard commands (written to 0x60) and its answers.
const KBD_SCANCODE_SET: u8 = 0xf0;
const KBD_ENABLE_SCANNING: u8 = 0xf4;
const KBD_ACK: u8 = 0xfa;
const SELF_TEST_PASSED: u8 = 0x55;
const PORT_TEST_PASSED: u8 = 0x00;

/// Bound on one wait for the controller (real controllers answer within a few ms).
const WAIT_NS: u64 = 50_000_000;
/// Bytes drained at most when emptying the output buffer.
const DRAIN_MAX: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum I8042Error {
    /// The status port reads 0xFF: nothing decodes it.
    Absent,
    /// The controller did not take a byte, or did not answer, within the bound.
    Timeout(&'static str),
    SelfTest(u8),
    PortTest(u8),
    /// The keyboard did not acknowledge a command.
    NoAck(&'static str, u8),
}

impl core::fmt::Display for I8042Error {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        match self {
            I8042Error::Absent => f.write_str("no controller (status port reads 0xff)"),
            I8042Error::Timeout(what) => write!(f, "no answer to {what} within 50 ms"),
            I8042Error::SelfTest(v) => write!(f, "controller self-test answered {v:#x}"),
            I8042Error::PortTest(v) => write!(f, "keyboard port test answered {v:#x}"),
            I8042Error::NoAck(what, v) => write!(f, "keyboard answered {what} with {v:#x}"),
        }
    }
}

/// What `init` found.
#[derive(Clone, Copy, Debug)]
pub struct Setup {
    /// The configuration byte as firmware left it.
    pub firmware_config: Config,
    pub set: ScancodeSetKind,
    pub translated: bool,
    /// The configuration to write with the interrupt on (`enable_irq`).
    running: Config,
}

pub fn status() -> Status {
    // SAFETY: reading the 8042 status register has no side effect.
    Status::from_bits_retain(unsafe { Port::<u8>::new(STATUS_COMMAND).read() })
}

/// Reads the data port (the caller saw OUTPUT_FULL).
pub fn read_data() -> u8 {
    // SAFETY: reading 0x60 takes the byte out of the controller's output buffer.
    unsafe { Port::<u8>::new(DATA).read() }
}

fn wait_for(what: &'static str, ready: impl Fn(Status) -> bool) -> Result<(), I8042Error> {
    let deadline = crate::time::nanos_since_boot() + WAIT_NS;
    loop {
        if ready(status()) {
            return Ok(());
        }
        if crate::time::nanos_since_boot() > deadline {
            return Err(I8042Error::Timeout(what));
        }
        core::hint::spin_loop();
    }
}

fn write_port(port: u16, byte: u8, what: &'static str) -> Result<(), I8042Error> {
    wait_for(what, |s| !s.contains(Status::INPUT_FULL))?;
    // SAFETY: 0x60/0x64 belong to the 8042; the controller took the previous byte.
    unsafe { Port::<u8>::new(port).write(byte) };
    Ok(())
}

fn command(c: Command) -> Result<(), I8042Error> {
    write_port(STATUS_COMMAND, c as u8, "a controller command")
}

fn read_answer(what: &'static str) -> Result<u8, I8042Error> {
    wait_for(what, |s| s.contains(Status::OUTPUT_FULL))?;
    Ok(read_data())
}

fn write_config(c: Config) -> Result<(), I8042Error> {
    command(Command::WriteConfig)?;
    write_port(DATA, c.bits(), "the configuration byte")
}

/// Sends a byte to the keyboard and expects its acknowledgement.
fn keyboard_command(byte: u8, what: &'static str) -> Result<(), I8042Error> {
    write_port(DATA, byte, what)?;
    match read_answer(what)? {
        KBD_ACK => Ok(()),
        other => Err(I8042Error::NoAck(what, other)),
    }
}

/// Empties the output buffer (bytes typed before the kernel took over).
fn drain() {
    for _ in 0..DRAIN_MAX {
        if !status().contains(Status::OUTPUT_FULL) {
            return;
        }
        read_data();
    }
}

/// Sets the controller up for the keyboard with its interrupt still off (the caller
/// routes IRQ 1, then calls `enable_irq`). `untranslated` turns translation off first
/// (a QEMU test switch: firmware normally leaves it on, and the set-2 path is otherwise
/// only seen on real PCs whose firmware turned it off).
pub fn init(untranslated: bool) -> Result<Setup, I8042Error> {
    if status().bits() == 0xff {
        return Err(I8042Error::Absent);
    }
    command(Command::DisablePort1)?;
    command(Command::DisablePort2)?;
    drain();
    command(Command::ReadConfig)?;
    let firmware_config = Config::from_bits_retain(read_answer("reading the configuration")?);
    let mut quiet = firmware_config - Config::PORT1_IRQ - Config::PORT2_IRQ;
    if untranslated {
        quiet -= Config::TRANSLATE;
    }
    write_config(quiet)?;
    command(Command::SelfTest)?;
    match read_answer("the self-test")? {
        SELF_TEST_PASSED => {}
        other => return Err(I8042Error::SelfTest(other)),
    }
    // The self-test may reset the configuration on some controllers.
    write_config(quiet)?;
    command(Command::TestPort1)?;
    match read_answer("the port test")? {
        PORT_TEST_PASSED => {}
        other => return Err(I8042Error::PortTest(other)),
    }
    command(Command::EnablePort1)?;
    drain();
    keyboard_command(KBD_ENABLE_SCANNING, "enable scanning")?;
    let translated = quiet.contains(Config::TRANSLATE);
    let set = if translated {
        ScancodeSetKind::One
    } else {
        untranslated_set()?
    };
    Ok(Setup {
        firmware_config,
        set,
        translated,
        running: quiet - Config::PORT1_CLOCK_OFF,
    })
}

/// Without translation: asks the keyboard for its set; anything but 1 is switched to 2.
fn untranslated_set() -> Result<ScancodeSetKind, I8042Error> {
    keyboard_command(KBD_SCANCODE_SET, "the scancode-set command")?;
    keyboard_command(0, "the scancode-set query")?;
    if read_answer("the scancode-set query")? == 1 {
        return Ok(ScancodeSetKind::One);
    }
    keyboard_command(KBD_SCANCODE_SET, "the scancode-set command")?;
    keyboard_command(2, "selecting set 2")?;
    Ok(ScancodeSetKind::Two)
}

/// Turns the keyboard port's interrupt on (IRQ 1 is routed by then). The byte is
/// written, not read back: a key pressed meanwhile would be taken for the answer.
pub fn enable_irq(setup: &Setup) -> Result<(), I8042Error> {
    write_config(setup.running | Config::PORT1_IRQ)
}
