//! The legacy 8259 pair: remapped clear of the exception vectors, then fully masked.
//! The I/O APIC carries every ISA line; the PICs must not deliver anything (a stray
//! PIC interrupt would land on 0x20..0x2f as a spurious device vector).

/// Vectors the PICs would use if an unmasked line fired anyway.
const PIC_OFFSET: u8 = 0x20;

pub fn disable() {
    // SAFETY: the 8259 ports are standard on PCs; on machines without PICs writes to
    // these ports are ignored.
    unsafe {
        let mut pics = pic8259::ChainedPics::new(PIC_OFFSET, PIC_OFFSET + 8);
        pics.initialize();
        pics.disable();
    }
}
