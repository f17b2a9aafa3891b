//! Executions per second of the explorer driving the simulator.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use frontrun::engine::sim::{explore, Program, SimOp};
use frontrun::engine::Config;

fn counter(threads: usize) -> Program {
    Program::parallel(vec![vec![SimOp::Read((1, 0)), SimOp::WriteInc((1, 0))]; threads])
}

fn locked_counter(threads: usize) -> Program {
    let body =
        vec![SimOp::Lock(7), SimOp::Read((1, 0)), SimOp::WriteInc((1, 0)), SimOp::Unlock(7), SimOp::Read((2, 0))];
    Program::parallel(vec![body; threads])
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("engine");
    for (name, program, executions) in
        [("counter_4_threads", counter(4), 576), ("locked_counter_5_threads", locked_counter(5), 0)]
    {
        let executions =
            if executions == 0 { explore(&program, Config::default(), &|_| true).stats.executions } else { executions };
        group.throughput(Throughput::Elements(executions));
        group.bench_function(name, |b| {
            b.iter(|| {
                let report = explore(&program, Config::default(), &|_| true);
                assert_eq!(report.stats.executions, executions);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
