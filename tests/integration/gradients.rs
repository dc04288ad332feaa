//! Every trainable tensor receives a non-zero gradient (candle's fused ops would silently cut
//! the graph and leave only the head training), untied heads included.

use crate::common::*;

#[test]
fn every_parameter_receives_a_nonzero_gradient() {
    for v in variants() {
        let m = load_trainable(&v);
        let text = "The quick brown fox jumps over the lazy dog. 12345";
        let row = m.tokenizer.encode(text, true).unwrap();
        let n = row.len();
        let logits = m.forward_batch(std::slice::from_ref(&row)).unwrap();
        let logits = logits.narrow(1, 0, n - 1).unwrap().squeeze(0).unwrap();
        let targets = candle_core::Tensor::new(&row[1..], m.device()).unwrap();
        let loss = candle_nn::loss::cross_entropy(&logits, &targets).unwrap();
        let grads = loss.backward().unwrap();
        let vars = m.params.vars();
        assert!(!vars.is_empty(), "{v}: no trainable vars");
        let mut missing = Vec::new();
        for (name, var) in vars {
            match grads.get(var.as_tensor()) {
                None => missing.push(format!("{name} (no gradient)")),
                Some(g) => {
                    let norm: f32 = g.sqr().unwrap().sum_all().unwrap().to_scalar().unwrap();
                    if !(norm > 0.0 && norm.is_finite()) {
                        missing.push(format!("{name} (|g|² = {norm})"));
                    }
                }
            }
        }
        assert!(
            missing.is_empty(),
            "{v}: {} of {} tensors get no gradient: {missing:?}",
            missing.len(),
            vars.len()
        );
    }
}

/// The fused CPU kernels (RMSNorm, RoPE, masked softmax, SwiGLU, the output head fused with the
/// cross-entropy at supervised positions only) give the same loss and the same gradient for every
/// tensor as the differentiable compositions over full logits, through every fixture model (f32:
/// relative to the largest gradient of each tensor).
#[test]
fn fused_kernels_match_the_compositions_through_every_model() {
    use sft_eval::model::kernels::with_fused;
    use sft_eval::train::batch::{Example, MicroBatch};
    use sft_eval::train::loss::masked_nll_sum;
    for v in variants() {
        let m = load_trainable(&v);
        let rows = [
            "The quick brown fox jumps over the lazy dog. 12345",
            "Short one.",
        ];
        let examples: Vec<Example> = rows
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let ids = m.tokenizer.encode(t, true).unwrap();
                // the second row is supervised on its last three tokens only
                let n = ids.len();
                Example {
                    supervised: (0..n).map(|j| i == 0 || j + 3 >= n).collect(),
                    ids,
                    task: None,
                    replay: false,
                    line: 0,
                    docs: vec![],
                }
            })
            .collect();
        let refs: Vec<&Example> = examples.iter().collect();
        let mb = MicroBatch::padded(&refs, m.device()).unwrap();
        let run = |fused: bool| {
            with_fused(fused, || {
                let loss = if fused {
                    sft_eval::train::nll_sum(&m.decoder, &mb).unwrap()
                } else {
                    let logits = m.decoder.forward(&mb.ids, &mb.lengths).unwrap();
                    masked_nll_sum(&logits, &mb.targets, &mb.loss_mask).unwrap()
                };
                let grads = loss.backward().unwrap();
                (loss.to_scalar::<f32>().unwrap(), grads)
            })
        };
        let before = sft_eval::model::kernels::fused_path_taken();
        let (lf, gf) = run(true);
        assert!(
            sft_eval::model::kernels::fused_path_taken() > before,
            "{v}: the fused path was not taken"
        );
        let (lc, gc) = run(false);
        assert!(
            (lf - lc).abs() <= 1e-5 * lc.abs().max(1.0),
            "{v}: loss {lf} fused vs {lc} composed"
        );
        for (name, var) in m.params.vars() {
            let (a, b) = (
                gf.get(var.as_tensor()).unwrap(),
                gc.get(var.as_tensor()).unwrap(),
            );
            let scale: f32 = b.abs().unwrap().max_all().unwrap().to_scalar().unwrap();
            let diff: f32 = (a - b)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar()
                .unwrap();
            assert!(
                diff <= 1e-4 * scale.max(1e-6),
                "{v}: {name}: max |fused − composed| {diff:e}, max |g| {scale:e}"
            );
        }
    }
}
