//! Stack traces by walking saved frame pointers (the kernel is built with
//! `-C force-frame-pointers=yes`): each frame holds `[rbp]` = the caller's rbp,
//! `[rbp+8]` = the return address.

const MAX_FRAMES: usize = 24;

/// Prints return addresses from the caller's frame upwards. Stops at a null,
/// misaligned or unmapped frame pointer, so a corrupt stack cannot fault the trace.
pub fn print_from_here() {
    let mut rbp: u64;
    // SAFETY: reading rbp has no side effect.
    unsafe {
        core::arch::asm!("mov {}, rbp", out(reg) rbp, options(nomem, nostack, preserves_flags))
    };
    crate::error!("  stack trace (return addresses):");
    for depth in 0..MAX_FRAMES {
        if rbp == 0
            || !rbp.is_multiple_of(8)
            || !crate::memory::is_mapped(rbp)
            || !crate::memory::is_mapped(rbp + 8)
        {
            break;
        }
        // SAFETY: both words were just checked to be mapped and 8-byte aligned.
        let (next, ret) = unsafe { (*(rbp as *const u64), *((rbp + 8) as *const u64)) };
        if ret == 0 {
            break;
        }
        crate::error!("    #{:<2} {:#x}", depth, ret);
        if next <= rbp {
            break; // stacks grow down: a caller's frame is always above
        }
        rbp = next;
    }
}
