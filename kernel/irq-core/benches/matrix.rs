//! Allocate/free throughput of the vector matrix at 1, 64 and 1024 CPUs.
//!
//! Each iteration allocates one unmanaged vector on the full online mask (so the
//! "CPU with the most free vectors" scan covers every CPU) and frees it again, on a matrix
//! pre-loaded to about half occupancy so the scan and bitmap search do real work.

use criterion::{BenchmarkId, Criterion, criterion_main};
use sluice_irq_core::CpuMask;
use sluice_irq_core::matrix::VectorMatrix;
use sluice_irq_core::vecdomain::{VectorAlloc, VectorDomain};

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("matrix_alloc_free");
    for &n in &[1usize, 64, 1024] {
        let mut m = VectorMatrix::new(n).unwrap();
        for cpu in 0..n as u32 {
            m.online(cpu).unwrap();
        }
        let all = CpuMask::first_n(n);
        for _ in 0..(n * 100) {
            m.alloc(&all, false).unwrap();
        }
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                let (cpu, v) = m.alloc(&all, false).unwrap();
                m.free(cpu, v).unwrap();
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("vecdomain_alloc_free_irq");
    for &n in &[1usize, 64, 1024] {
        let mut d = VectorDomain::new(n).unwrap();
        for cpu in 0..n as u32 {
            d.online_cpu(cpu).unwrap();
        }
        let req = VectorAlloc {
            affinity: CpuMask::first_n(n),
            managed: false,
            reserve: false,
            count: 1,
        };
        for i in 0..(n as u32 * 100) {
            d.alloc(100_000 + i, &req).unwrap();
        }
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                d.alloc(1, &req).unwrap();
                d.free(1).unwrap();
            })
        });
    }
    g.finish();
}

// In a module of its own: the `pub fn` the macro makes cannot carry a doc comment, and
// inside a private module it is not public, so `missing_docs` does not ask for one.
mod group {
    criterion::criterion_group!(benches, super::bench);
}
criterion_main!(group::benches);
