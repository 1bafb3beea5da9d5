//! Durable log appends (placeholder while the benchmark is written).

fn main() {}
