//! How many tensors a train step's autograd graph holds, and how many floats: candle's backward
//! gives every node a zero-filled gradient and adds each contribution into it (a `memset` and an
//! elementwise add of the node's size), so that total is the step's gradient-accumulation traffic.
//!
//!     cargo run --release --example graph_nodes -- CHECKPOINT_DIR [BATCH] [SEQ]
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;

use candle_core::{DType, Device};
use sft_eval::model::checkpoint::WeightFiles;
use sft_eval::model::params::Params;
use sft_eval::model::{read_config, Decoder};
use sft_eval::train::batch::{Example, MicroBatch};
use sft_eval::train::nll_sum;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::Path::new(&args[1]);
    let batch: usize = args.get(2).map_or(4, |s| s.parse().unwrap());
    let seq: usize = args.get(3).map_or(256, |s| s.parse().unwrap());
    let (arch, _, cfg) = read_config(dir).unwrap();
    let dev = Device::Cpu;
    let mut p = Params::new(
        WeightFiles::open(dir).unwrap(),
        dev.clone(),
        DType::F32,
        true,
    );
    let dec = Decoder::load(&cfg, arch.layout, &mut p).unwrap();
    let examples: Vec<Example> = (0..batch)
        .map(|r| Example {
            ids: (0..seq).map(|i| ((i * 7 + r * 13) % 1000) as u32).collect(),
            supervised: vec![true; seq],
            task: None,
            replay: false,
            line: 0,
            docs: vec![],
        })
        .collect();
    let refs: Vec<&Example> = examples.iter().collect();
    let mb = MicroBatch::padded(&refs, &dev).unwrap();
    let loss = (nll_sum(&dec, &mb).unwrap() / mb.n_supervised as f64).unwrap();
    let nodes = loss.sorted_nodes();
    let mut by_shape: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
    let (mut total, mut vars, mut var_elems) = (0usize, 0usize, 0usize);
    for n in &nodes {
        let e = n.elem_count();
        if n.is_variable() {
            vars += 1;
            var_elems += e;
            continue;
        }
        total += e;
        let k = format!("{:?} contiguous={}", n.dims(), n.is_contiguous());
        let s = by_shape.entry(k).or_default();
        s.0 += 1;
        s.1 += e;
        s.2 = e;
    }
    println!(
        "nodes {} (+{vars} variables), non-variable floats {:.1} M, variable floats {:.1} M",
        nodes.len() - vars,
        total as f64 / 1e6,
        var_elems as f64 / 1e6
    );
    let mut rows: Vec<_> = by_shape.into_iter().collect();
    rows.sort_by_key(|(_, (_, e, _))| std::cmp::Reverse(*e));
    for (k, (c, e, _)) in rows.iter().take(25) {
        println!("{c:5} × {k:50} {:8.1} M", *e as f64 / 1e6);
    }
}
