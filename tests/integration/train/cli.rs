//! `sft-eval train` from the command line: resume after SIGKILL, bad input and invalid settings,
//! forgetting budgets, early stopping, config files, chat-template training.

use super::*;

#[test]
fn resume_after_sigkill_reproduces_the_uninterrupted_losses_bit_for_bit() {
    let tmp = tempdir();
    let steps = 600;
    let full = tmp.path().join("full");
    let st = sft_eval_command()
        .args(cli_args(&full, steps))
        .status()
        .unwrap();
    assert!(st.success());
    let killed = tmp.path().join("killed");
    let mut child = sft_eval_command()
        .args(cli_args(&killed, steps))
        .spawn()
        .unwrap();
    // wait until a checkpoint past step 50 exists, then SIGKILL mid-run
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let ck = killed.join("checkpoints");
        let n = std::fs::read_dir(&ck).map(|d| d.count()).unwrap_or(0);
        if n >= 2 || std::time::Instant::now() > deadline {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL on unix
    child.wait().unwrap();
    assert!(
        !killed.join("final").exists(),
        "the run finished before it could be killed; raise `steps`"
    );
    let st = sft_eval_command()
        .args(["train", "--resume", "-o", killed.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(st.success());
    let (a, b) = (losses(&full), losses(&killed));
    assert_eq!(a.len(), steps);
    assert_eq!(
        a, b,
        "losses after resume differ from the uninterrupted run"
    );
    assert_eq!(
        weights(&full.join("final")).len(),
        weights(&killed.join("final")).len()
    );
    for (name, t) in weights(&full.join("final")) {
        assert_eq!(
            max_abs_diff(&t, &weights(&killed.join("final"))[&name]),
            0.0,
            "{name}"
        );
    }
}

#[test]
fn bad_input_exits_2_with_clear_errors() {
    let tmp = tempdir();
    let bad = tmp.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"prompt\":\"a\",\"completion\":\"b\"}\n{\"prompt\": \"a\", \"completion\": \n",
    )
    .unwrap();
    let model = model_dir("llama");
    let run = |args: &[&str]| {
        let o = sft_eval_command().args(args).output().unwrap();
        (
            o.status.code().unwrap(),
            String::from_utf8_lossy(&o.stderr).to_string(),
        )
    };
    let out = tmp.path().join("r1");
    let (code, err) = run(&[
        "train",
        model.to_str().unwrap(),
        "--data",
        bad.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("bad.jsonl:2:") && err.contains("invalid JSON"),
        "{err}"
    );

    let good = trl_dir().join("prompt_completion.jsonl");
    let out = tmp.path().join("r2");
    let (code, err) = run(&[
        "train",
        model.to_str().unwrap(),
        "--data",
        good.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--replay",
        "/no/such/replay.jsonl",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("/no/such/replay.jsonl"), "{err}");

    let bad_role = tmp.path().join("role.jsonl");
    std::fs::write(
        &bad_role,
        "{\"messages\":[{\"role\":\"narrator\",\"content\":\"x\"}]}\n",
    )
    .unwrap();
    let (code, err) = run(&[
        "train",
        model.to_str().unwrap(),
        "--data",
        bad_role.to_str().unwrap(),
        "-o",
        tmp.path().join("r3").to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("role.jsonl:1:") && err.contains("unknown role `narrator`"),
        "{err}"
    );

    // a learning rate that blows up: stopped with the step named, no final checkpoint written
    let out = tmp.path().join("r4");
    let (code, err) = run(&[
        "train",
        model.to_str().unwrap(),
        "--data",
        good.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--lr",
        "1e30",
        "--max-grad-norm",
        "0",
        "--max-steps",
        "20",
        "--checkpoint-every",
        "1",
        "--no-shuffle",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("at step") && err.contains("last good checkpoint"),
        "{err}"
    );
    assert!(!out.join("final").exists());
    assert!(out.join("checkpoints").exists());
}

/// Settings no run can use are refused before the run directory holds anything, and a start
/// that fails once the model or data is read leaves nothing behind either.
#[test]
fn invalid_settings_fail_before_anything_is_written() {
    let cx = TestContext::new();
    let model = model_dir("llama");
    let good = trl_dir().join("prompt_completion.jsonl");
    let empty = cx.write("empty.jsonl", "\n");
    let base = |out: &Path, data: &Path| -> Vec<String> {
        [
            "train",
            model.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--max-length",
            "64",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    for (extra, expect) in [
        (&["--max-steps", "0"][..], "max_steps"),
        (&["--epochs", "0"][..], "epochs"),
        (&["--weight-decay=-0.1"][..], "weight_decay"),
        (&["--l2sp=-1"][..], "l2sp"),
        (&["--kl=-0.5"][..], "kl"),
        (&["--max-grad-norm", "NaN"][..], "max_grad_norm"),
        (&["--max-grad-norm=-1"][..], "max_grad_norm"),
        (&["--freeze-layers", "99"][..], "freeze_layers"),
        (&["--lr", "inf"][..], "lr"),
    ] {
        let out = cx.join(format!("run-{}", expect));
        let mut a = base(&out, &good);
        a.extend(extra.iter().map(|s| s.to_string()));
        let r = cx.cli(&a).expect(2);
        assert!(r.stderr.contains(expect), "{extra:?}: {}", r.stderr);
        assert!(!out.exists(), "{extra:?} left {}", out.display());
    }
    let out = cx.join("run-empty");
    let r = cx.cli(&base(&out, &empty)).expect(2);
    assert!(r.stderr.contains("empty.jsonl"), "{}", r.stderr);
    assert!(!out.exists());

    // resuming with settings other than the run's is refused, naming them
    let out = cx.join("run-a");
    let mut a = base(&out, &good);
    a.extend(
        ["--max-steps", "2", "--checkpoint-every", "1"]
            .iter()
            .map(|s| s.to_string()),
    );
    cx.cli(&a).expect(0);
    let r = cx
        .cli(&[
            "train",
            "--resume",
            "-o",
            out.to_str().unwrap(),
            "--lr",
            "0.5",
            "--seed",
            "9",
        ])
        .expect(2);
    assert!(
        r.stderr.contains("lr (") && r.stderr.contains("seed ("),
        "{}",
        r.stderr
    );
    // with the run's own settings it resumes (nothing left to do: the run is complete)
    cx.cli(&["train", "--resume", "-o", out.to_str().unwrap()])
        .expect(0);
}

#[test]
fn forgetting_budget_stops_the_run_and_keeps_the_best_checkpoint() {
    let tmp = tempdir();
    let mut c = small_cfg(30);
    c.eval = Some(sft_eval::train::config::EvalConfig {
        path: None,
        split: 0.1,
        every: 2,
        patience: 0,
        min_delta: 0.0,
        probe: Some(trl_dir().join("packed.jsonl")),
        // tiny budget: the first evaluation after training starts is already over it
        max_kl: Some(1e-6),
    });
    let s = train(c, &tmp.path().join("r"), false, &mut Silent).unwrap();
    assert!(
        s.stopped_early
            .as_deref()
            .is_some_and(|m| m.contains("forgetting budget")),
        "{:?}",
        s.stopped_early
    );
    assert!(s.steps < 30);
    let log = std::fs::read_to_string(tmp.path().join("r/log.jsonl")).unwrap();
    assert!(log.lines().any(|l| l.contains("probe_kl")));
}

#[test]
fn early_stopping_on_a_held_out_split() {
    let tmp = tempdir();
    let mut c = small_cfg(30);
    c.lr = 0.5; // diverges: held-out loss stops improving quickly
    c.max_grad_norm = 0.0;
    c.eval = Some(sft_eval::train::config::EvalConfig {
        path: None,
        split: 0.2,
        every: 1,
        patience: 2,
        min_delta: 0.0,
        probe: None,
        max_kl: None,
    });
    let s = train(c, &tmp.path().join("r"), false, &mut Silent).unwrap();
    assert!(
        s.stopped_early
            .as_deref()
            .is_some_and(|m| m.contains("early stopping")),
        "{:?}",
        s.stopped_early
    );
    assert!(tmp.path().join("r/best/model.safetensors").exists());
}

#[test]
fn a_config_file_can_name_the_model_and_flags_override_it() {
    let tmp = tempdir();
    let cfg = tmp.path().join("run.toml");
    std::fs::write(
        &cfg,
        format!(
            "model = {:?}\ndata = {:?}\nlr = 0.5\nmax_steps = 3\n[freeze]\nembeddings = true\n",
            model_dir("llama").to_str().unwrap(),
            trl_dir().join("prompt_completion.jsonl").to_str().unwrap()
        ),
    )
    .unwrap();
    let o = sft_eval_command()
        .args([
            "train",
            "--config",
            cfg.to_str().unwrap(),
            "-o",
            tmp.path().join("r").to_str().unwrap(),
            "--lr",
            "0.01",
            "--show-settings",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["lr"].as_f64(), Some(0.01), "the flag wins over the file");
    assert_eq!(
        v["max_steps"].as_u64(),
        Some(3),
        "the file wins over defaults"
    );
    assert_eq!(v["freeze"]["embeddings"], true);
    assert!(v["model"].as_str().unwrap().ends_with("llama"));
}

/// `messages` data on a template without `{% generation %}` markers trains each assistant turn's
/// content, its end-of-turn token and the separator the template writes after it — the tokens
/// TRL 1.16 trains with its own patched training templates (tests/fixtures/make_eot_masks.py:
/// `<|im_end|>\n` for ChatML, `<end_of_turn>\n` for Gemma, `<|end|>\n` for Phi-3, `<|eot_id|>`
/// for Llama 3, which writes no separator; the EOS Phi-3's template appends after the last turn
/// with it). TRL's Qwen2.5 patch also trains the newline that ends the `<|im_start|>assistant`
/// header, which sft-eval leaves to the prompt (it is what `add_generation_prompt` writes).
/// Every other token is trained by both or by neither.
#[test]
fn messages_train_the_end_of_turn_and_its_separator_as_trls_patched_templates_do() {
    let fx: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("eot/masks.json")).unwrap())
            .unwrap();
    let dir = fixtures().join("models/llama-t5-sharded");
    let tok = sft_eval::model::Tokenizer::from_dir(&dir).unwrap();
    let mut separators = 0;
    for case in fx["cases"].as_array().unwrap() {
        let name = case["template"].as_str().unwrap();
        let path = fixtures().join("templates").join(name);
        let template = sft_eval::model::ChatTemplate::new(
            std::fs::read_to_string(&path).unwrap(),
            tok.bos_token().map(str::to_string),
            tok.eos_token().map(str::to_string),
            path,
        )
        .unwrap();
        let messages: Vec<sft_eval::model::Message> = case["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                sft_eval::model::Message::new(
                    m["role"].as_str().unwrap(),
                    m["content"].as_str().unwrap(),
                )
            })
            .collect();
        let enc = Encoder {
            tokenizer: &tok,
            template: Some(&template),
            max_length: 4096,
            policy: TemplatePolicy::Auto,
        };
        let sample = sft_eval::data::Sample {
            line: 1,
            record: sft_eval::data::Record::Messages(messages),
            task: None,
        };
        let (ids, ours) = enc.encode(&sample).unwrap();
        assert_eq!(
            ids,
            crate::common::ids(&case["input_ids"]),
            "{name}: token ids"
        );
        let trl: Vec<bool> = case["assistant_masks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m.as_i64().unwrap() == 1)
            .collect();
        let text = |i: usize| tok.decode(&ids[i..=i], false).unwrap();
        for i in 0..ids.len() {
            // a newline right after an assistant turn's end-of-turn marker: the separator
            let before = tok.decode(&ids[..i], false).unwrap();
            if i > 0
                && trl[i - 1]
                && text(i).starts_with('\n')
                && ["<|im_end|>", "<end_of_turn>", "<|end|>"]
                    .iter()
                    .any(|m| before.ends_with(m))
            {
                separators += 1;
                assert!(
                    ours[i] && trl[i],
                    "{name}: separator at {i}: ours {} TRL {}",
                    ours[i],
                    trl[i]
                );
            }
            if ours[i] == trl[i] {
                continue;
            }
            let header_newline = name == "qwen2.5.jinja"
                && text(i) == "\n"
                && tok
                    .decode(&ids[i.saturating_sub(3)..i], false)
                    .unwrap()
                    .ends_with("<|im_start|>assistant");
            assert!(
                !ours[i] && header_newline,
                "{name}: token {i} {:?}: ours {} TRL {}",
                text(i),
                ours[i],
                trl[i]
            );
        }
    }
    assert!(separators >= 9, "{separators} separators checked");
}
