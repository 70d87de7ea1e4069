//! The IDT: exception handlers that report and stop, and one entry stub per device
//! vector (0x20..=0xff) that hands the vector number to `irq::dispatch`.

use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::registers::control::Cr2;
use x86_64::structures::idt::{InterruptDescriptorTable, InterruptStackFrame, PageFaultErrorCode};

use crate::arch::gdt;

static IDT: spin::Lazy<InterruptDescriptorTable> = spin::Lazy::new(|| {
    let mut idt = InterruptDescriptorTable::new();
    idt.divide_error.set_handler_fn(divide_error);
    idt.debug.set_handler_fn(debug);
    idt.breakpoint.set_handler_fn(breakpoint);
    idt.overflow.set_handler_fn(overflow);
    idt.bound_range_exceeded.set_handler_fn(bound_range);
    idt.invalid_opcode.set_handler_fn(invalid_opcode);
    idt.device_not_available
        .set_handler_fn(device_not_available);
    idt.invalid_tss.set_handler_fn(invalid_tss);
    idt.segment_not_present.set_handler_fn(segment_not_present);
    idt.stack_segment_fault.set_handler_fn(stack_segment_fault);
    idt.general_protection_fault
        .set_handler_fn(general_protection);
    idt.page_fault.set_handler_fn(page_fault);
    idt.x87_floating_point.set_handler_fn(x87_fp);
    idt.alignment_check.set_handler_fn(alignment_check);
    idt.simd_floating_point.set_handler_fn(simd_fp);
    idt.virtualization.set_handler_fn(virtualization);
    // SAFETY: the IST indices name stacks that gdt::init_* installs in every CPU's TSS.
    unsafe {
        idt.double_fault
            .set_handler_fn(double_fault)
            .set_stack_index(gdt::DOUBLE_FAULT_IST);
        idt.non_maskable_interrupt
            .set_handler_fn(nmi)
            .set_stack_index(gdt::NMI_IST);
        idt.machine_check
            .set_handler_fn(machine_check)
            .set_stack_index(gdt::MACHINE_CHECK_IST);
    }
    seq_macro::seq!(V in 32..=255 {
        idt[V].set_handler_fn(vector_~V);
    });
    idt[crate::apic::vectors::BENCH_FLOOR].set_handler_fn(bench_floor);
    idt
});

/// The dispatch benchmark's floor: acknowledge and count, nothing else (`bench`).
extern "x86-interrupt" fn bench_floor(_frame: InterruptStackFrame) {
    crate::apic::local::eoi();
    crate::arch::cpu::current()
        .bench_hits
        .fetch_add(1, Ordering::Relaxed);
}

seq_macro::seq!(V in 32..=255 {
    extern "x86-interrupt" fn vector_~V(_frame: InterruptStackFrame) {
        crate::irq::dispatch(V);
    }
});

/// Loads the IDT on the calling CPU.
pub fn load() {
    IDT.load();
}

/// Breakpoints taken since boot (tests check that `int3` is caught and resumed).
pub static BREAKPOINTS: AtomicU64 = AtomicU64::new(0);

extern "x86-interrupt" fn breakpoint(frame: InterruptStackFrame) {
    BREAKPOINTS.fetch_add(1, Ordering::Relaxed);
    crate::log!(
        "breakpoint (#BP) at {:#x}",
        frame.instruction_pointer.as_u64()
    );
}

/// Runs `op` (which may fault) with recovery armed: a fault inside it resumes after it
/// instead of stopping the kernel. Returns the fault as (vector, error code, address).
///
/// Used by tests to prove the page-fault path reports correctly without dying.
pub fn probe_read(addr: u64) -> Result<u64, (u8, u64, u64)> {
    let pc = crate::arch::cpu::current();
    pc.fault_recorded.store(0, Ordering::SeqCst);
    let value: u64;
    // SAFETY: the load may fault; the page-fault handler sees `fault_resume` armed and
    // resumes at label 2 with the fault recorded. No memory is written.
    unsafe {
        core::arch::asm!(
            "lea {tmp}, [rip + 2f]",
            "mov [{slot}], {tmp}",
            "xor {val:e}, {val:e}",
            "mov {val}, [{addr}]",
            "2:",
            "mov qword ptr [{slot}], 0",
            slot = in(reg) pc.fault_resume.as_ptr(),
            addr = in(reg) addr,
            val = out(reg) value,
            tmp = out(reg) _,
        );
    }
    match pc.fault_recorded.swap(0, Ordering::SeqCst) {
        0 => Ok(value),
        r => Err((
            (r >> 56) as u8,
            r & 0x00ff_ffff_ffff_ffff,
            pc.fault_address.load(Ordering::SeqCst),
        )),
    }
}

/// If a probe is armed on this CPU, records the fault and redirects the frame to its
/// resume address. Returns true when the fault was consumed.
fn try_recover(frame: &mut InterruptStackFrame, vector: u8, error: u64, address: u64) -> bool {
    if !crate::arch::cpu::ready() {
        return false;
    }
    let pc = crate::arch::cpu::current();
    let resume = pc.fault_resume.swap(0, Ordering::SeqCst);
    if resume == 0 {
        return false;
    }
    pc.fault_address.store(address, Ordering::SeqCst);
    pc.fault_recorded.store(
        ((vector as u64) << 56) | (error & 0x00ff_ffff_ffff_ffff) | (1 << 55),
        Ordering::SeqCst,
    );
    crate::log!(
        "recovered fault: vector {} error {:#x} at rip {:#x} address {:#x}",
        vector,
        error,
        frame.instruction_pointer.as_u64(),
        address
    );
    // SAFETY: the resume address is a label in `probe_read`'s own asm block, which
    // expects to be resumed there with the same stack.
    unsafe {
        frame
            .as_mut()
            .update(|f| f.instruction_pointer = x86_64::VirtAddr::new(resume));
    }
    true
}

/// Reports an exception with everything needed to debug it, then stops.
fn fatal(
    name: &str,
    vector: u8,
    frame: &InterruptStackFrame,
    error: Option<u64>,
    cr2: Option<u64>,
) -> ! {
    crate::console::serial::force_unlock();
    crate::error!("EXCEPTION {} (vector {})", name, vector);
    if let Some(e) = error {
        crate::error!("  error code {:#x}", e);
    }
    if let Some(a) = cr2 {
        crate::error!("  CR2 (faulting address) {:#x}", a);
    }
    crate::error!(
        "  RIP {:#x} CS {:#x} RFLAGS {:#x} RSP {:#x} SS {:#x}",
        frame.instruction_pointer.as_u64(),
        frame.code_segment.0,
        frame.cpu_flags.bits(),
        frame.stack_pointer.as_u64(),
        frame.stack_segment.0
    );
    crate::arch::backtrace::print_from_here();
    crate::panic::stop(crate::qemu::ExitCode::Panicked)
}

macro_rules! fatal_handler {
    ($fn:ident, $name:expr, $vec:expr) => {
        extern "x86-interrupt" fn $fn(frame: InterruptStackFrame) {
            fatal($name, $vec, &frame, None, None)
        }
    };
    ($fn:ident, $name:expr, $vec:expr, error) => {
        extern "x86-interrupt" fn $fn(frame: InterruptStackFrame, error: u64) {
            fatal($name, $vec, &frame, Some(error), None)
        }
    };
}

fatal_handler!(divide_error, "divide error (#DE)", 0);
fatal_handler!(debug, "debug (#DB)", 1);
fatal_handler!(overflow, "overflow (#OF)", 4);
fatal_handler!(bound_range, "bound range exceeded (#BR)", 5);
fatal_handler!(invalid_opcode, "invalid opcode (#UD)", 6);
fatal_handler!(device_not_available, "device not available (#NM)", 7);
fatal_handler!(invalid_tss, "invalid TSS (#TS)", 10, error);
fatal_handler!(segment_not_present, "segment not present (#NP)", 11, error);
fatal_handler!(stack_segment_fault, "stack-segment fault (#SS)", 12, error);
fatal_handler!(x87_fp, "x87 floating point (#MF)", 16);
fatal_handler!(alignment_check, "alignment check (#AC)", 17, error);
fatal_handler!(simd_fp, "SIMD floating point (#XM)", 19);
fatal_handler!(virtualization, "virtualization (#VE)", 20);

extern "x86-interrupt" fn general_protection(mut frame: InterruptStackFrame, error: u64) {
    if try_recover(&mut frame, 13, error, 0) {
        return;
    }
    fatal("general protection (#GP)", 13, &frame, Some(error), None)
}

extern "x86-interrupt" fn page_fault(mut frame: InterruptStackFrame, error: PageFaultErrorCode) {
    let addr = Cr2::read_raw();
    if try_recover(&mut frame, 14, error.bits(), addr) {
        return;
    }
    crate::console::serial::force_unlock();
    crate::error!("page fault: {:?}", error);
    fatal(
        "page fault (#PF)",
        14,
        &frame,
        Some(error.bits()),
        Some(addr),
    )
}

extern "x86-interrupt" fn double_fault(frame: InterruptStackFrame, error: u64) -> ! {
    // A page fault that could not push its frame leaves its address in CR2.
    let cr2 = x86_64::registers::control::Cr2::read_raw();
    let name = if crate::memory::stacks::overflowed(cr2, frame.stack_pointer.as_u64()) {
        "double fault (#DF): kernel stack overflow into the guard page at CR2"
    } else {
        "double fault (#DF)"
    };
    fatal(name, 8, &frame, Some(error), Some(cr2))
}

extern "x86-interrupt" fn machine_check(frame: InterruptStackFrame) -> ! {
    fatal("machine check (#MC)", 18, &frame, None, None)
}

/// NMIs are how one CPU stops the others on panic, and how a CPU waiting with
/// interrupts off is woken (`smp::nmi_wait`); otherwise they are reported.
extern "x86-interrupt" fn nmi(mut frame: InterruptStackFrame) {
    if crate::panic::in_progress() {
        crate::panic::park_this_cpu();
    }
    if crate::smp::nmi_wait::on_nmi(&mut frame) {
        return;
    }
    let _in_nmi = crate::sync::NmiContext::enter();
    if crate::console::serial::held_by_this_cpu() {
        NMIS_UNREPORTED.fetch_add(1, Ordering::Relaxed);
        return;
    }
    crate::warn!("NMI at {:#x}", frame.instruction_pointer.as_u64());
    let missed = NMIS_UNREPORTED.swap(0, Ordering::Relaxed);
    if missed > 0 {
        crate::warn!("{missed} earlier NMI(s) arrived mid-print and went unreported");
    }
}

/// NMIs that arrived while their CPU held the console, so could not be logged.
static NMIS_UNREPORTED: AtomicU64 = AtomicU64::new(0);
