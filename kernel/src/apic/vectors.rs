//! System vectors: fixed on every CPU, never handed to devices. Device vectors are
//! 0x20..=0xff minus these. (Higher vector = higher priority class, SDM vol. 3 11.8.3.)

pub const FIRST_DEVICE: u8 = 0x20;
/// Where a reserved-but-not-started or shut-down irq points: its handler only reports.
pub const SHUTDOWN: u8 = 0xef;
pub const LOCAL_TIMER: u8 = 0xec;
pub const CALL_FUNCTION: u8 = 0xfb;
pub const RESCHEDULE: u8 = 0xfc;
pub const ERROR: u8 = 0xfe;
pub const SPURIOUS: u8 = 0xff;

pub const SYSTEM: [u8; 6] = [SHUTDOWN, LOCAL_TIMER, CALL_FUNCTION, RESCHEDULE, ERROR, SPURIOUS];
