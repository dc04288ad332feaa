//! A real llama.cpp server against the local backend, and HTTPS with a private CA.

use super::*;

// ---------------------------------------------------------------------------------------------
// The real server: llama.cpp (through llama-cpp-python) serving an f32 GGUF of the llama fixture.

/// Kills the server process when dropped, whatever happens in the test.
struct ServerGuard(Child);

impl Drop for ServerGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Start llama-cpp-python's server on the fixture's GGUF; `None` when SFT_EVAL_LLAMA_SERVER is
/// unset.
fn llama_server(dir: &Path) -> Option<(ServerGuard, String)> {
    let python = PathBuf::from(std::env::var_os("SFT_EVAL_LLAMA_SERVER")?);
    let gguf = dir.join("llama-f32.gguf");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/llama_to_gguf.py");
    let st = Command::new(&python)
        .arg(&script)
        .arg(model_dir("llama"))
        .arg(&gguf)
        .status()
        .unwrap();
    assert!(st.success(), "GGUF conversion failed");
    let port = free_port();
    let log = std::fs::File::create(dir.join("server.log")).unwrap();
    let child = Command::new(&python)
        .args(["-m", "llama_cpp.server", "--model"])
        .arg(&gguf)
        .args([
            "--model_alias",
            "tiny-llama",
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
        ])
        // f32 KV cache and one thread: the same arithmetic as the local backend's f32 path
        .args([
            "--n_ctx",
            "256",
            "--n_threads",
            "1",
            "--n_batch",
            "256",
            "--type_k",
            "0",
            "--type_v",
            "0",
        ])
        .args(["--logits_all", "true", "--verbose", "false"])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("SFT_EVAL_LLAMA_SERVER runs");
    let guard = ServerGuard(child);
    let url = format!("http://127.0.0.1:{port}/v1");
    let t0 = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "llama server did not start: {}",
            std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    Some((guard, url))
}

fn mc_suite() -> Suite {
    crate::common::lmeval_mc_suite("served_mc")
}

fn gen_suite(mc: &Suite) -> Suite {
    let mut spec = mc.spec.clone();
    spec.name = "served_gen".into();
    spec.scorer = ScorerKind::ExactMatch;
    spec.generation.max_new_tokens = 12;
    spec.generation.stop = vec!["\n".into()];
    let items = mc
        .items
        .iter()
        .map(|i| Item {
            target: Some("x".into()),
            choices: vec![],
            gold: None,
            ..i.clone()
        })
        .collect();
    Suite::new(spec, items, ".".into()).unwrap()
}

#[test]
fn served_f32_gguf_agrees_with_the_local_backend() {
    let tmp = tempdir();
    let Some((_server, url)) = llama_server(tmp.path()) else {
        eprintln!("SFT_EVAL_LLAMA_SERVER is not set: skipping the real-server test");
        return;
    };
    let mut o = OpenAiOptions::new(&url, "tiny-llama");
    o.concurrency = 2;
    o.max_retries = 2;
    o.timeout = Duration::from_secs(60);
    let served = OpenAiBackend::connect(o).unwrap();
    let local = load("llama");
    let settings = EvalSettings::default();
    let mc = mc_suite();
    let a = run_suite(&local, &mc, &settings, &mut NoProgress).unwrap();
    let b = run_suite(&served, &mc, &settings, &mut NoProgress).unwrap();
    let mut worst = 0f64;
    let mut n = 0;
    for (x, y) in a.items.iter().zip(&b.items) {
        assert_eq!(x.logliks.len(), y.logliks.len());
        for (p, q) in x.logliks.iter().zip(&y.logliks) {
            worst = worst.max((p - q).abs());
            n += 1;
            assert!(
                (p - q).abs() <= 1e-3,
                "item {}: local {p} vs served {q}",
                x.id
            );
        }
        assert_eq!(x.extracted, y.extracted, "item {}", x.id);
    }
    assert_eq!(a.mean, b.mean);
    eprintln!("served vs local: {n} continuation log-likelihoods, max |Δ| = {worst:.2e}");

    let g = gen_suite(&mc);
    let b = run_suite(&served, &g, &settings, &mut NoProgress).unwrap();
    // llama.cpp ends generation at every token it recognises as end-of-generation; the fixture's
    // generation_config lists 407 and 410 but not <|eom_id|> (411), so the local side gets the
    // same set here
    let opts = GenerateOptions {
        max_new_tokens: g.spec.generation.max_new_tokens,
        decoding: Decoding::Greedy,
        eos_token_ids: vec![407, 410, 411],
        stop_strings: g.spec.generation.stop.clone(),
    };
    let (mut same, mut budget) = (0, 0);
    for (item, y) in g.items.iter().zip(&b.items) {
        let prompt = format!("Question: {}\nAnswer:", item.input);
        let ids = local.tokenizer.encode(&prompt, true).unwrap();
        let x = generate(
            &local.decoder,
            &local.tokenizer,
            &ids,
            &opts,
            local.device(),
        )
        .unwrap();
        let served = y.output.as_deref().unwrap();
        // the random fixture emits byte tokens that do not form UTF-8: the local tokenizer
        // decodes them as U+FFFD, llama-cpp-python drops them; the tokens are the same
        let local_text = x.text.replace('\u{FFFD}', "");
        if x.stop == StopReason::MaxTokens {
            // llama-cpp-python 0.3.36 can return more tokens than `max_tokens` (14 for 12 seen
            // here, around tokens that decode to no text): the budget's worth must agree
            assert!(
                served.starts_with(&local_text),
                "greedy output of item {}: local {local_text:?}, served {served:?}",
                item.id
            );
            budget += 1;
        } else {
            assert_eq!(local_text, served, "greedy output of item {}", item.id);
        }
        same += (x.text == served) as usize;
    }
    eprintln!(
        "served vs local: {n} greedy outputs agree ({same} byte-identical; {budget} reached the token budget, compared up to it)",
        n = g.items.len()
    );
}

// ---------------------------------------------------------------------------------------------
// TLS and API keys: a loopback https server with a certificate made here (a private CA).

/// A CA certificate (PEM) and a server config whose certificate for `127.0.0.1`/`localhost`
/// that CA signed.
fn private_ca() -> (String, Arc<rustls::ServerConfig>) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "sft-eval test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf_params =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
    // ring, as ureq's client uses (the test server needs no post-quantum key exchange)
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .unwrap();
    (ca_cert.pem(), Arc::new(cfg))
}

/// `https://` with `--ca-cert` and `--api-key-env`: the server gets the key on every request and
/// the scores come back; the key is nowhere in what sft-eval prints or writes. Without the CA
/// the certificate is refused at once (no retries), and an unset key variable is named.
#[test]
fn https_with_a_private_ca_and_an_api_key_that_is_never_written() {
    let tmp = tempdir();
    let (ca_pem, tls) = private_ca();
    let ca = tmp.path().join("ca.pem");
    std::fs::write(&ca, &ca_pem).unwrap();
    let fake = FakeServer::start_tls(tls.clone(), Box::new(|_, b| Some(good(b))));
    let key = "sk-test-5f2a9c1e7b";
    let suites = Path::new(env!("CARGO_MANIFEST_DIR")).join("suites");
    let eval = |extra: &[&str], env: &[(&str, &str)]| {
        let mut c = sft_eval_command();
        c.current_dir(tmp.path())
            .args([
                "eval",
                "--backend",
                "openai",
                "--model",
                "fake",
                "--base-url",
                &fake.url,
            ])
            .args(["--suites", "qa", "--limit", "2", "-o", "r.json"])
            .arg("--suites-dir")
            .arg(&suites)
            .arg("--cache-dir")
            .arg(tmp.path().join("cache"))
            .args(extra);
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    let ca_arg = ca.to_str().unwrap();
    let out = eval(
        &["--ca-cert", ca_arg, "--api-key-env", "SFT_EVAL_TEST_KEY"],
        &[("SFT_EVAL_TEST_KEY", key)],
    );
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    let auth = fake.authorizations.lock().unwrap().clone();
    assert!(auth.len() >= 3, "{auth:?}");
    assert!(
        auth.iter().all(|a| a == &format!("Bearer {key}")),
        "{auth:?}"
    );
    // the key is in no output and no file sft-eval wrote
    assert!(!stdout.contains(key) && !stderr.contains(key));
    let mut files = vec![tmp.path().join("r.json")];
    for e in walk(&tmp.path().join("cache")) {
        files.push(e);
    }
    for f in &files {
        let text = String::from_utf8_lossy(&std::fs::read(f).unwrap()).into_owned();
        assert!(!text.contains(key), "{} holds the API key", f.display());
    }
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("r.json")).unwrap()).unwrap();
    assert_eq!(r["suites"][0]["n"], 2);

    // without the private CA: refused at once, saying how to trust it
    let t0 = Instant::now();
    let out = eval(&["--no-cache"], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("TLS") && stderr.contains("--ca-cert"),
        "{stderr}"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "retried a certificate error"
    );

    // an API key variable that is not set is named
    let out = eval(
        &[
            "--ca-cert",
            ca_arg,
            "--api-key-env",
            "SFT_EVAL_TEST_UNSET_KEY",
            "--no-cache",
        ],
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("SFT_EVAL_TEST_UNSET_KEY") && stderr.contains("not set"),
        "{stderr}"
    );
    drop(fake);
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}
