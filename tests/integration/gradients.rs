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
