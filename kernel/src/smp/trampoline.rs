//! The real-mode start-up trampoline for application processors.
//!
//! A STARTUP IPI starts a CPU in real mode at `vector << 12` (Intel SDM vol. 3,
//! 9.4.4.1 / 11.6.1: the vector is a page number below 1 MiB). The trampoline goes real
//! mode → protected mode → long mode (SDM vol. 3, 10.8.5 "Initializing IA-32e Mode")
//! with a small page table of its own that identity-maps the first 2 MiB (so the code
//! keeps running at its physical address when paging turns on) and otherwise copies the
//! kernel's top-level entries (so the kernel's code and the AP's stack are reachable).
//! It then jumps to `ap::ap_entry(cpu, kernel_cr3)`, which switches to the kernel's own
//! page table.
//!
//! The four pages (code, PML4, PDPT, PD) are taken once, at boot, from memory the boot
//! memory map calls usable below 1 MiB; the frame allocator never hands out frames below
//! 1 MiB (memory::frames::LOW_RESERVE), so they stay reserved and usable after boot for
//! CPUs that come back online. One CPU uses the trampoline at a time (`ap::START`): it
//! has a single 4 KiB stack at the top of its page.

use bootloader_api::info::{MemoryRegionKind, MemoryRegions};
use core::sync::atomic::{AtomicU64, Ordering};

core::arch::global_asm!(
    r#"
    .pushsection .text.sluice_trampoline, "ax", @progbits
    .global sluice_trampoline_start
    .global sluice_trampoline_end
    .global sluice_trampoline_data
    .code16
sluice_trampoline_start:
    jmp 2f
    .balign 8
sluice_trampoline_data:
    .long 0                         /* +0  CR3 of the trampoline page table (< 4 GiB) */
    .long 0                         /* +4  stage reached: 1 real, 2 protected, 3 long  */
    .quad 0                         /* +8  kernel CR3 */
    .quad 0                         /* +16 stack top */
    .quad 0                         /* +24 entry (ap_entry) */
    .quad 0                         /* +32 argument (cpu index) */
    /* +40 GDT: null, 32-bit code (0x08), data (0x10), 64-bit code (0x18) */
    .quad 0
    .quad 0x00cf9a000000ffff
    .quad 0x00cf92000000ffff
    .quad 0x00af9a000000ffff
    /* +72 GDTR: limit, base (linear, written at run time) */
    .word 31
    .long 0
    .set TD, sluice_trampoline_data - sluice_trampoline_start
2:
    cli
    cld
    movw %cs, %ax
    movw %ax, %ds
    movw %ax, %ss
    movw $0x1000, %sp
    xorl %ebx, %ebx
    movw %ax, %bx
    shll $4, %ebx                   /* ebx = linear address of this page */
    movl $1, TD+4
    leal TD+40(%ebx), %eax
    movl %eax, TD+74
    lgdtl TD+72
    movl %cr0, %eax
    orl $1, %eax
    movl %eax, %cr0
    leal (3f - sluice_trampoline_start)(%ebx), %eax
    pushl $0x08
    pushl %eax
    lretl

    .code32
3:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movw %ax, %fs
    movw %ax, %gs
    leal 0x1000(%ebx), %esp
    movl $2, TD+4(%ebx)
    movl %cr4, %eax
    orl $0x20, %eax                 /* CR4.PAE */
    movl %eax, %cr4
    movl TD+0(%ebx), %eax
    movl %eax, %cr3
    movl $0xc0000080, %ecx          /* IA32_EFER */
    rdmsr
    orl $0x900, %eax                /* LME | NXE (the kernel's tables use XD) */
    wrmsr
    movl %cr0, %eax
    orl $0x80010001, %eax           /* PG | WP | PE */
    movl %eax, %cr0
    leal (4f - sluice_trampoline_start)(%ebx), %eax
    pushl $0x18
    pushl %eax
    lretl

    .code64
4:
    movl %ebx, %ebx
    movl $3, TD+4(%rbx)
    movq TD+16(%rbx), %rsp
    movq TD+32(%rbx), %rdi
    movq TD+8(%rbx), %rsi
    movq TD+24(%rbx), %rax
    xorl %ebp, %ebp
    pushq $0                        /* no return address: entry sees rsp = 8 mod 16 */
    jmp *%rax
sluice_trampoline_end:
    .popsection
"#,
    options(att_syntax)
);

unsafe extern "C" {
    static sluice_trampoline_start: u8;
    static sluice_trampoline_end: u8;
    static sluice_trampoline_data: u8;
}

/// Offsets in the data block (see the assembly).
const D_TRAMP_CR3: usize = 0;
const D_STAGE: usize = 4;
const D_KERNEL_CR3: usize = 8;
const D_STACK: usize = 16;
const D_ENTRY: usize = 24;
const D_ARG: usize = 32;

/// Physical address of the code page (0 = not installed) and of the PML4.
static CODE_PAGE: AtomicU64 = AtomicU64::new(0);
static PML4_PAGE: AtomicU64 = AtomicU64::new(0);

#[derive(Debug, Clone, Copy)]
pub enum TrampolineError {
    /// The memory map has fewer than four usable pages below 1 MiB.
    NoLowMemory,
    /// The kernel uses PML4 slot 0, which the trampoline needs for its identity map.
    TooBig,
}

impl core::fmt::Display for TrampolineError {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        f.write_str(match self {
            TrampolineError::NoLowMemory => {
                "no four usable pages below 1 MiB in the boot memory map"
            }
            TrampolineError::TooBig => "trampoline code does not fit its page",
        })
    }
}

fn blob() -> &'static [u8] {
    // SAFETY: the symbols delimit the assembled trampoline in the kernel's text.
    unsafe {
        let start = &raw const sluice_trampoline_start;
        let end = &raw const sluice_trampoline_end;
        core::slice::from_raw_parts(start, end as usize - start as usize)
    }
}

fn data_offset() -> usize {
    // Both symbols are in the same blob; only their addresses are taken.
    (&raw const sluice_trampoline_data) as usize - (&raw const sluice_trampoline_start) as usize
}

/// Reserves the trampoline pages from the boot memory map and copies the code there.
pub fn install(map: &MemoryRegions) -> Result<u64, TrampolineError> {
    if CODE_PAGE.load(Ordering::Acquire) != 0 {
        return Ok(CODE_PAGE.load(Ordering::Acquire));
    }
    if blob().len() > 0x800 {
        return Err(TrampolineError::TooBig);
    }
    // Four usable pages in [4 KiB, 640 KiB): page 0 holds the real-mode IVT/BDA and the
    // range above 640 KiB is legacy video/ROM on PCs.
    let mut pages = [0u64; 4];
    let mut n = 0;
    'outer: for r in map.iter().filter(|r| r.kind == MemoryRegionKind::Usable) {
        let mut p = r.start.max(0x1000).next_multiple_of(4096);
        while p + 4096 <= r.end.min(0xa_0000) {
            pages[n] = p;
            n += 1;
            if n == 4 {
                break 'outer;
            }
            p += 4096;
        }
    }
    if n < 4 {
        return Err(TrampolineError::NoLowMemory);
    }
    let (code, pml4, pdpt, pd) = (pages[0], pages[1], pages[2], pages[3]);
    let phys = crate::memory::phys_to_virt;
    // SAFETY: the four pages are usable RAM per the memory map and below the frame
    // allocator's reserve, so nothing else owns them; they are reached through the
    // bootloader's physical-memory map.
    unsafe {
        for p in pages {
            core::ptr::write_bytes(phys(p), 0, 4096);
        }
        core::ptr::copy_nonoverlapping(blob().as_ptr(), phys(code), blob().len());
        // PD[0]: 2 MiB identity page (present | writable | page size), executable.
        (phys(pd) as *mut u64).write(0x83);
        (phys(pdpt) as *mut u64).write(pd | 0x3);
        (phys(pml4) as *mut u64).write(pdpt | 0x3);
        (phys(code).add(data_offset() + D_TRAMP_CR3) as *mut u32).write(pml4 as u32);
    }
    PML4_PAGE.store(pml4, Ordering::Release);
    CODE_PAGE.store(code, Ordering::Release);
    Ok(code)
}

/// Physical address of the trampoline page, if installed.
pub fn code_page() -> Option<u64> {
    match CODE_PAGE.load(Ordering::Acquire) {
        0 => None,
        p => Some(p),
    }
}

/// Fills in the per-start parameters and refreshes the kernel half of the trampoline's
/// PML4 (the kernel may have populated new top-level slots since the last start).
/// Caller holds `ap::START`.
pub fn prepare(
    kernel_cr3: u64,
    stack_top: u64,
    entry: u64,
    arg: u64,
) -> Result<(), TrampolineError> {
    let code = code_page().ok_or(TrampolineError::NoLowMemory)?;
    let pml4 = PML4_PAGE.load(Ordering::Acquire);
    let phys = crate::memory::phys_to_virt;
    let kernel_l4 = phys(kernel_cr3 & 0x000f_ffff_ffff_f000) as *const u64;
    // SAFETY: both tables are live page-table pages reached through the physical-memory
    // map; the trampoline's is used by no CPU while START is held. Slot 0 stays ours.
    unsafe {
        for i in 1..512 {
            (phys(pml4) as *mut u64)
                .add(i)
                .write(kernel_l4.add(i).read());
        }
        let d = phys(code).add(data_offset());
        (d.add(D_STAGE) as *mut u32).write_volatile(0);
        (d.add(D_KERNEL_CR3) as *mut u64).write(kernel_cr3);
        (d.add(D_STACK) as *mut u64).write(stack_top);
        (d.add(D_ENTRY) as *mut u64).write(entry);
        (d.add(D_ARG) as *mut u64).write(arg);
    }
    core::sync::atomic::fence(Ordering::SeqCst);
    Ok(())
}

/// How far the starting CPU got in the trampoline (0 = never ran it).
pub fn stage() -> u32 {
    let Some(code) = code_page() else { return 0 };
    // SAFETY: the data block is in the trampoline page; the AP writes this word.
    unsafe {
        (crate::memory::phys_to_virt(code).add(data_offset() + D_STAGE) as *const u32)
            .read_volatile()
    }
}

/// True if the kernel's own mappings that an AP needs before it reloads CR3 (its code,
/// heap stacks) avoid PML4 slot 0, which the trampoline takes for its identity map.
pub fn kernel_avoids_slot0(entry: u64, stack_top: u64) -> bool {
    (entry >> 39) & 0x1ff != 0 && ((stack_top - 1) >> 39) & 0x1ff != 0
}
