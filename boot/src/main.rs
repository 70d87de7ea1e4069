fn main() { println!("{}", sluice::UEFI_IMAGE); }
