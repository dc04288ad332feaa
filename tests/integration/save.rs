//! Saving writes the same tensors (names, shapes, dtypes, bytes, shard layout) that were read,
//! with transformers' metadata, atomically.

use std::collections::BTreeMap;

use crate::common::*;

fn tensors_of(dir: &std::path::Path) -> BTreeMap<String, (String, Vec<usize>, Vec<u8>, String)> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "safetensors") {
            let bytes = std::fs::read(&p).unwrap();
            let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
            let file = p.file_name().unwrap().to_string_lossy().to_string();
            for (name, view) in st.tensors() {
                out.insert(
                    name,
                    (
                        format!("{:?}", view.dtype()),
                        view.shape().to_vec(),
                        view.data().to_vec(),
                        file.clone(),
                    ),
                );
            }
        }
    }
    out
}

#[test]
fn save_then_load_round_trips_bit_exactly() {
    let tmp = tempdir();
    for v in variants() {
        let m = load(&v);
        let out = tmp.path().join(&v);
        m.save(&out, false).unwrap();
        let a = tensors_of(&model_dir(&v));
        let b = tensors_of(&out);
        assert_eq!(
            a.keys().collect::<Vec<_>>(),
            b.keys().collect::<Vec<_>>(),
            "{v}: tensor names"
        );
        for (name, x) in &a {
            assert!(
                x == &b[name],
                "{v}: tensor {name} differs after save (dtype/shape/bytes/shard)"
            );
        }
        for f in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
            assert!(out.join(f).exists(), "{v}: {f} not saved");
        }
        if model_dir(&v).join("model.safetensors.index.json").exists() {
            let idx: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(out.join("model.safetensors.index.json")).unwrap(),
            )
            .unwrap();
            assert_eq!(
                idx["weight_map"].as_object().unwrap().len(),
                a.len(),
                "{v}: index lists every tensor"
            );
        }
        // transformers refuses safetensors without {"format": "pt"}
        let bytes = std::fs::read(out.join(b.values().next().unwrap().3.as_str())).unwrap();
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        assert_eq!(
            meta.metadata()
                .as_ref()
                .and_then(|m| m.get("format"))
                .map(String::as_str),
            Some("pt")
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(out.join("config.json"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o644, "{v}: saved files are readable by all");
        }
        // and the saved folder computes the same logits
        let m2 = sft_eval::model::Model::load(&out, &Default::default()).unwrap();
        let row = m.tokenizer.encode("round trip", true).unwrap();
        let d = max_abs_diff(
            &m.forward_batch(std::slice::from_ref(&row)).unwrap(),
            &m2.forward_batch(&[row]).unwrap(),
        );
        assert_eq!(d, 0.0, "{v}");
    }
}

#[test]
fn trained_weights_are_what_gets_saved() {
    let tmp = tempdir();
    let m = load_trainable("llama");
    let (name, var) = m
        .params
        .vars()
        .iter()
        .next()
        .map(|(n, v)| (n.clone(), v.clone()))
        .unwrap();
    var.set(&(var.as_tensor() + 1.0).unwrap()).unwrap();
    let out = tmp.path().join("trained");
    m.save(&out, false).unwrap();
    let saved =
        candle_core::safetensors::load(out.join("model.safetensors"), &candle_core::Device::Cpu)
            .unwrap();
    let d = max_abs_diff(
        &saved[&name].to_dtype(candle_core::DType::F32).unwrap(),
        var.as_tensor(),
    );
    assert_eq!(d, 0.0);
}

#[test]
fn save_refuses_to_overwrite_and_leaves_no_temporary_folder() {
    let tmp = tempdir();
    let m = load("gpt2");
    let out = tmp.path().join("out");
    m.save(&out, false).unwrap();
    let err = m.save(&out, false).unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    m.save(&out, true).unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n != "out")
        .collect();
    assert!(
        leftovers.is_empty(),
        "temporary folders left behind: {leftovers:?}"
    );
}
