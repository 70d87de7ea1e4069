//! System vectors: fixed on every CPU, never handed to devices. The numbers are the
//! interrupt core's (`sluice_irq_core::vector`), so the matrix and the IDT agree by
//! construction; the core also reserves the ones the kernel does not use yet
//! (reschedule, single-target call, stop). Higher vector = higher priority class
//! (SDM vol. 3 11.8.3).

use sluice_irq_core::vector as v;

/// Where a reserved-but-not-started or shut-down irq points: its handler only reports.
pub const SHUTDOWN: u8 = v::SHUTDOWN_VECTOR.0;
pub const LOCAL_TIMER: u8 = v::LOCAL_TIMER_VECTOR.0;
pub const CALL_FUNCTION: u8 = v::CALL_FUNCTION_VECTOR.0;
/// Wakes a CPU's idle loop to run posted task-context work (`smp::task`).
pub const RESCHEDULE: u8 = v::RESCHEDULE_VECTOR.0;
/// The dispatch benchmark's floor: its IDT stub only EOIs (`bench`).
pub const BENCH_FLOOR: u8 = v::BENCH_FLOOR_VECTOR.0;
/// Asks a CPU to free vectors left behind by a completed move.
pub const VECTOR_CLEANUP: u8 = v::VECTOR_CLEANUP_VECTOR.0;
pub const ERROR: u8 = v::ERROR_VECTOR.0;
pub const SPURIOUS: u8 = v::SPURIOUS_VECTOR.0;

/// True for vectors no device may use.
pub fn is_system(vector: u8) -> bool {
    v::is_system(v::Vector(vector))
}
