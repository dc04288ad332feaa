use super::*;
use serde_json::json;

mod apply;

const REFERENCE: &str = include_str!("../../../../tests/fixtures/expected/rope_reference.json");

fn rel_err(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-30)
}

/// Every case of `tests/fixtures/expected/rope_reference.json` (written by
/// `tests/fixtures/rope_reference.py` from transformers' own rotary-embedding modules).
///
/// * `inv_freq`: relative error < 1e-6, and at most 2 float32 ulps. Our `pow` is correctly
///   rounded; torch's vectorised CPU `pow` (SLEEF) is off by one ulp for ~1-2% of the
///   frequencies, depending on the CPU (tail elements use libm and do agree); the roundings
///   after the `pow` (a product and a reciprocal for longrope/yarn) can make that 2 ulps.
/// * cos/sin from the reference's own `inv_freq`: abs error < 1e-6 at every stored position
///   (this isolates the position x frequency product, cos/sin and attention scaling).
/// * cos/sin from our `inv_freq` ([`RopeSpec::cos_sin`]): abs error < 1e-6 for every frequency
///   whose `inv_freq` is bit-identical to transformers'; for the others the exact
///   consequence of those ulps, |angle| * ulps * 2^-23, is allowed on top.
#[test]
fn matches_transformers_reference() {
    let reference: Value = serde_json::from_str(REFERENCE).unwrap();
    let cases = reference["cases"].as_array().unwrap();
    assert!(cases.len() >= 12);
    let mut seen = std::collections::BTreeSet::new();
    let floats = |v: &Value| -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let head_dim = case["head_dim"].as_u64().unwrap() as usize;
        let seq_len = case["seq_len"].as_u64().unwrap() as usize;
        let spec = RopeSpec::from_config(&case["config"], head_dim)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            spec.rope_type(),
            case["rope_type"].as_str().unwrap(),
            "{name}"
        );
        assert_eq!(
            spec.rotary_dim(),
            case["rotary_dim"].as_u64().unwrap() as usize,
            "{name}"
        );
        seen.insert(spec.rope_type());

        let (inv, scaling) = spec.inv_freq(seq_len);
        let want_inv: Vec<f32> = floats(&case["inv_freq"])
            .iter()
            .map(|&v| v as f32)
            .collect();
        assert_eq!(inv.len(), want_inv.len(), "{name}");
        let mut off_by_ulp = vec![0i64; inv.len()];
        for (k, (&got, &want)) in inv.iter().zip(&want_inv).enumerate() {
            assert!(
                rel_err(got as f64, want as f64) < 1e-6,
                "{name}: inv_freq[{k}] {got} vs {want}"
            );
            let ulps = (got.to_bits() as i64 - want.to_bits() as i64).abs();
            assert!(
                ulps <= 2,
                "{name}: inv_freq[{k}] {got} vs {want}: {ulps} ulps"
            );
            off_by_ulp[k] = ulps;
        }
        let want_scaling = case["attention_scaling"].as_f64().unwrap();
        assert!(
            rel_err(scaling as f64, want_scaling) < 1e-6,
            "{name}: attention_scaling {scaling} vs {want_scaling}"
        );

        let positions: Vec<usize> = case["positions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        let want_cos: Vec<Vec<f64>> = case["cos"].as_array().unwrap().iter().map(floats).collect();
        let want_sin: Vec<Vec<f64>> = case["sin"].as_array().unwrap().iter().map(floats).collect();
        let half = inv.len();

        // (a) the cos/sin path alone, from transformers' inv_freq: strict
        let (ref_cos, ref_sin) = cos_sin_tables(&want_inv, scaling, &positions);
        let mut max_err_a = 0f64;
        for (row, &p) in positions.iter().enumerate() {
            for k in 0..half {
                for (got, want, key) in [
                    (ref_cos[row * half + k], want_cos[row][k], "cos"),
                    (ref_sin[row * half + k], want_sin[row][k], "sin"),
                ] {
                    let err = (got as f64 - want).abs();
                    max_err_a = max_err_a.max(err);
                    assert!(
                        err < 1e-6,
                        "{name}: {key}[pos {p}][{k}] from reference inv_freq: {got} vs {want}"
                    );
                }
            }
        }

        // (b) the full pipeline, through the public API
        let (cos, sin) = spec.cos_sin(seq_len, &Device::Cpu).unwrap();
        assert_eq!(cos.dims(), &[seq_len, half], "{name}");
        let (cos_at, sin_at) = spec.cos_sin_at(&positions, seq_len, &Device::Cpu).unwrap();
        let mut max_err_b = 0f64;
        for (row, &p) in positions.iter().enumerate() {
            for (table, at, want, key) in [
                (&cos, &cos_at, &want_cos, "cos"),
                (&sin, &sin_at, &want_sin, "sin"),
            ] {
                let got: Vec<f32> = table.get(p).unwrap().to_vec1().unwrap();
                let got_at: Vec<f32> = at.get(row).unwrap().to_vec1().unwrap();
                assert_eq!(
                    got, got_at,
                    "{name}: cos_sin_at row {row} differs from the table"
                );
                for k in 0..half {
                    let err = (got[k] as f64 - want[row][k]).abs();
                    let angle = p as f64 * inv[k] as f64;
                    let tol = 1e-6 + angle * scaling as f64 * off_by_ulp[k] as f64 * 2f64.powi(-23);
                    assert!(
                        err < tol,
                        "{name}: {key}[pos {p}][{k}] {} vs {}",
                        got[k],
                        want[row][k]
                    );
                    if off_by_ulp[k] == 0 {
                        max_err_b = max_err_b.max(err);
                    }
                }
            }
        }
        eprintln!(
            "{name:30} {:8} inv_freq bit-exact {:3}/{:3}; max |cos/sin err|: from ref inv_freq {max_err_a:.1e}, \
             ours (bit-exact freqs) {max_err_b:.1e}",
            spec.rope_type(),
            off_by_ulp.iter().filter(|x| **x == 0).count(),
            inv.len()
        );
    }
    for t in SUPPORTED_ROPE_TYPES {
        assert!(seen.contains(t), "no reference case for rope_type {t}");
    }
}

#[test]
fn seq_len_dependence() {
    // dynamic: plain frequencies up to max_position_embeddings, scaled beyond
    let cfg = json!({"max_position_embeddings": 2048, "rope_theta": 10000.0,
                     "rope_scaling": {"type": "dynamic", "factor": 2.0}});
    let dynamic = RopeSpec::from_config(&cfg, 64).unwrap();
    let plain = RopeSpec::from_config(&json!({"rope_theta": 10000.0}), 64).unwrap();
    assert_eq!(dynamic.inv_freq(1).0, plain.inv_freq(1).0);
    assert_eq!(dynamic.inv_freq(2048).0, plain.inv_freq(2048).0);
    let (beyond, _) = dynamic.inv_freq(2049);
    assert_eq!(beyond[0], 1.0);
    assert!(beyond[1..]
        .iter()
        .zip(&plain.inv_freq(1).0[1..])
        .all(|(a, b)| a < b));

    // longrope: short factors up to original_max_position_embeddings, long beyond
    let cfg = json!({"model_type": "phi3", "max_position_embeddings": 16384, "original_max_position_embeddings": 4096,
                     "rope_scaling": {"type": "longrope", "short_factor": [1.0, 1.0], "long_factor": [2.0, 4.0]}});
    let lr = RopeSpec::from_config(&cfg, 4).unwrap();
    let (short, a1) = lr.inv_freq(4096);
    let (long, a2) = lr.inv_freq(4097);
    assert_eq!(short, vec![1.0, 0.01]);
    assert_eq!(long, vec![0.5, 0.0025]);
    assert_eq!(a1, a2);
    assert!((a1 as f64 - (1.0 + 4f64.ln() / 4096f64.ln()).sqrt()).abs() < 1e-7);
}

#[test]
fn config_styles_and_resolution() {
    // classic and transformers-5 styles give the same spec
    let classic = json!({"rope_theta": 500000.0, "max_position_embeddings": 131072,
        "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}});
    let t5 = json!({"max_position_embeddings": 131072,
        "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                            "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}});
    let a = RopeSpec::from_config(&classic, 128).unwrap();
    assert_eq!(a, RopeSpec::from_config(&t5, 128).unwrap());
    assert_eq!(a.rope_type(), "llama3");

    // legacy `type`; `rope_type` wins over it; non-empty rope_scaling wins over rope_parameters
    let s = RopeSpec::from_config(
        &json!({"rope_scaling": {"type": "linear", "factor": 2}}),
        64,
    )
    .unwrap();
    assert_eq!(s.scaling, RopeScaling::Linear { factor: 2.0 });
    let s = RopeSpec::from_config(
        &json!({"rope_scaling": {"type": "dynamic", "rope_type": "linear", "factor": 2}}),
        64,
    )
    .unwrap();
    assert_eq!(s.rope_type(), "linear");
    let s = RopeSpec::from_config(
        &json!({"rope_scaling": {"type": "linear", "factor": 3.0},
                "rope_parameters": {"rope_type": "default", "rope_theta": 5.0}}),
        64,
    )
    .unwrap();
    assert_eq!(
        (s.rope_type(), s.rope_theta),
        ("linear", DEFAULT_ROPE_THETA)
    );
    let s = RopeSpec::from_config(
        &json!({"rope_scaling": {}, "rope_parameters": {"rope_theta": 5.0}}),
        64,
    )
    .unwrap();
    assert_eq!((s.rope_type(), s.rope_theta), ("default", 5.0));
    // no RoPE fields at all: default RoPE with base 10000
    let s = RopeSpec::from_config(&json!({}), 64).unwrap();
    assert_eq!(
        (s.rope_type(), s.rope_theta, s.rotary_dim()),
        ("default", 10000.0, 64)
    );

    // rope_theta / partial_rotary_factor: dict wins over top level
    let s = RopeSpec::from_config(
        &json!({"rope_theta": 7.0, "partial_rotary_factor": 0.5,
                "rope_parameters": {"rope_type": "default", "rope_theta": 99.0, "partial_rotary_factor": 0.25}}),
        128,
    )
    .unwrap();
    assert_eq!((s.rope_theta, s.rotary_dim()), (99.0, 32));
    let s = RopeSpec::from_config(&json!({"partial_rotary_factor": 0.4}), 80).unwrap();
    assert_eq!(s.rotary_dim(), 32);
    // int(96 * 0.4) = 38 (truncation of 38.400000000000006)
    let s = RopeSpec::from_config(&json!({"partial_rotary_factor": 0.4}), 96).unwrap();
    assert_eq!(s.rotary_dim(), 38);
    // odd rotary dims are rounded up as in transformers (arange(0, 33, 2) has 17 entries)
    let s = RopeSpec::from_config(&json!({"partial_rotary_factor": 0.5}), 66).unwrap();
    assert_eq!((s.rotary_dim(), s.inv_freq(1).0.len()), (34, 17));

    // original_max_position_embeddings: top level > dict > max_position_embeddings
    let omax = |cfg: Value| match RopeSpec::from_config(&cfg, 64).unwrap().scaling {
        RopeScaling::Yarn {
            original_max_position_embeddings,
            ..
        } => original_max_position_embeddings,
        RopeScaling::LongRope {
            original_max_position_embeddings,
            ..
        } => original_max_position_embeddings,
        s => panic!("{s:?}"),
    };
    let yarn = json!({"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 1024});
    assert_eq!(
        omax(
            json!({"max_position_embeddings": 8192, "original_max_position_embeddings": 2048, "rope_scaling": yarn})
        ),
        2048
    );
    assert_eq!(
        omax(json!({"max_position_embeddings": 8192, "rope_scaling": yarn})),
        1024
    );
    assert_eq!(
        omax(
            json!({"max_position_embeddings": 8192, "rope_scaling": {"type": "yarn", "factor": 4.0}})
        ),
        8192
    );
    // Phi-3: the top-level field always wins, default 4096
    let ones = vec![1.0; 32];
    let lr = json!({"type": "longrope", "short_factor": ones, "long_factor": ones,
                    "original_max_position_embeddings": 1000});
    assert_eq!(
        omax(json!({"model_type": "phi3", "max_position_embeddings": 8192, "rope_scaling": lr})),
        4096
    );
    assert_eq!(
        omax(
            json!({"model_type": "phi3", "max_position_embeddings": 8192, "original_max_position_embeddings": 2048,
                    "rope_scaling": lr})
        ),
        2048
    );

    // aliases: su -> longrope everywhere, yarn -> longrope for Phi-3 only
    let mut su = lr.clone();
    su["type"] = json!("su");
    let s = RopeSpec::from_config(
        &json!({"max_position_embeddings": 8192, "rope_scaling": su}),
        64,
    )
    .unwrap();
    assert_eq!(s.rope_type(), "longrope");
    let mut phi_yarn = lr.clone();
    phi_yarn["type"] = json!("yarn");
    let s = RopeSpec::from_config(
        &json!({"model_type": "phi3", "max_position_embeddings": 8192, "rope_scaling": phi_yarn}),
        64,
    )
    .unwrap();
    assert_eq!(s.rope_type(), "longrope");

    // yarn: missing factor falls back to max/original; attention factor rules
    let s = RopeSpec::from_config(
        &json!({"max_position_embeddings": 163840,
                "rope_scaling": {"type": "yarn", "original_max_position_embeddings": 4096, "mscale": 1.0, "mscale_all_dim": 1.0}}),
        64,
    )
    .unwrap();
    match s.scaling {
        RopeScaling::Yarn {
            factor,
            attention_factor,
            beta_fast,
            beta_slow,
            truncate,
            ..
        } => {
            assert_eq!(
                (factor, attention_factor, beta_fast, beta_slow, truncate),
                (40.0, 1.0, 32.0, 1.0, true)
            )
        }
        s => panic!("{s:?}"),
    }
    let s = RopeSpec::from_config(&json!({"rope_scaling": {"type": "yarn", "factor": 4.0, "attention_factor": 1.5,
                                                           "original_max_position_embeddings": 100}}), 64)
        .unwrap();
    assert_eq!(s.inv_freq(1).1, 1.5);
}

#[test]
fn layer_types() {
    // transformers-5 nested style
    let cfg = json!({"rope_theta": 123.0, "max_position_embeddings": 131072,
        "layer_types": ["sliding_attention", "full_attention"],
        "rope_parameters": {
            "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
            "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0}}});
    let err = RopeSpec::from_config(&cfg, 256).unwrap_err().to_string();
    assert!(err.contains("from_config_for_layer_type"), "{err}");
    let local = RopeSpec::from_config_for_layer_type(&cfg, 256, "sliding_attention").unwrap();
    assert_eq!((local.rope_type(), local.rope_theta), ("default", 10000.0));
    let global = RopeSpec::from_config_for_layer_type(&cfg, 256, "full_attention").unwrap();
    assert_eq!(
        (global.scaling.clone(), global.rope_theta),
        (RopeScaling::Linear { factor: 8.0 }, 1e6)
    );
    // classic Gemma-3 style
    let cfg = json!({"model_type": "gemma3_text", "rope_theta": 1000000.0, "rope_local_base_freq": 10000.0,
                     "rope_scaling": {"rope_type": "linear", "factor": 8.0}});
    let local = RopeSpec::from_config_for_layer_type(&cfg, 256, "sliding_attention").unwrap();
    assert_eq!((local.rope_type(), local.rope_theta), ("default", 10000.0));
    assert_eq!(
        global,
        RopeSpec::from_config_for_layer_type(&cfg, 256, "full_attention").unwrap()
    );
    // flat configs: every layer type gets the same spec
    let flat = json!({"rope_theta": 5e5});
    assert_eq!(
        RopeSpec::from_config_for_layer_type(&flat, 64, "full_attention").unwrap(),
        RopeSpec::from_config(&flat, 64).unwrap()
    );
}

#[test]
fn errors_name_the_problem() {
    let err = RopeSpec::from_config(&json!({"rope_scaling": {"type": "mrope2"}}), 64).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, RopeError::UnknownRopeType { .. }));
    for t in SUPPORTED_ROPE_TYPES {
        assert!(msg.contains(t), "{msg}");
    }
    assert!(msg.contains("mrope2"));
    let err = RopeSpec::from_config(&json!({"rope_scaling": {"type": "linear"}}), 64).unwrap_err();
    assert!(
        matches!(&err, RopeError::MissingField { field, .. } if field == "factor"),
        "{err}"
    );
    let err = RopeSpec::from_config(
        &json!({"rope_scaling": {"type": "dynamic", "factor": 2.0}}),
        64,
    )
    .unwrap_err();
    assert!(
        matches!(&err, RopeError::MissingField { field, .. } if field == "max_position_embeddings"),
        "{err}"
    );
    let err = RopeSpec::from_config(
        &json!({"rope_scaling": {"rope_type": "llama3", "factor": 8.0, "high_freq_factor": 4.0}}),
        64,
    )
    .unwrap_err();
    assert!(err.to_string().contains("low_freq_factor"), "{err}");
    let err = RopeSpec::from_config(
        &json!({"max_position_embeddings": 8192, "rope_scaling": {"type": "longrope", "short_factor": [1.0], "long_factor": [1.0]}}),
        64,
    )
    .unwrap_err();
    assert!(
        matches!(&err, RopeError::InvalidField { field, .. } if field == "short_factor"),
        "{err}"
    );
    let err = RopeSpec::from_config(
        &json!({"rope_scaling": {"type": "linear", "factor": "2"}}),
        64,
    )
    .unwrap_err();
    assert!(
        matches!(&err, RopeError::InvalidField { field, .. } if field == "factor"),
        "{err}"
    );
    let err = RopeSpec::from_config(&json!({"partial_rotary_factor": 1.5}), 64).unwrap_err();
    assert!(err.to_string().contains("partial_rotary_factor"), "{err}");
    assert!(RopeSpec::from_config(&json!([1, 2]), 64).is_err());
}
