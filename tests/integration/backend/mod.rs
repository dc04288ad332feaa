//! `--backend openai`: scores from a real llama.cpp server equal the local backend's on the same
//! weights (when `SFT_EVAL_LLAMA_SERVER` names a Python with `llama-cpp-python[server]`, `gguf`
//! and `safetensors`; `.ci/run` installs one), and faults injected by a tiny loopback HTTP
//! server give retries or clear errors, never wrong scores.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sft_eval::backend::openai::{OpenAiBackend, OpenAiOptions};
use sft_eval::backend::{BackendError, Continuation, LanguageModel};
use sft_eval::model::generate::{generate, Decoding, GenerateOptions, StopReason};
use sft_eval::suite::item::Item;
use sft_eval::suite::runner::{run_suite, EvalSettings, NoProgress};
use sft_eval::suite::spec::{ScorerKind, Suite};

use super::common::{load, model_dir, sft_eval_command, tempdir};

mod served;

// ---------------------------------------------------------------------------------------------
// A tiny HTTP server for fault injection only (the agreement test below uses a real server).

/// What the fake answers to the `n`-th `/completions` request (0-based): `Some((status, body))`,
/// or `None` to die (stop listening) instead.
type Script = dyn Fn(usize, &Value) -> Option<(u16, String)> + Send + Sync;

struct FakeServer {
    url: String,
    completions: Arc<AtomicUsize>,
    /// every `Authorization` header the server received
    authorizations: Arc<std::sync::Mutex<Vec<String>>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

/// A connection the fake serves: plain TCP or TLS over it.
trait Conn: Read + Write {}
impl<T: Read + Write> Conn for T {}

impl FakeServer {
    fn start(script: Box<Script>) -> FakeServer {
        Self::start_on(TcpListener::bind("127.0.0.1:0").unwrap(), script)
    }

    fn start_on(listener: TcpListener, script: Box<Script>) -> FakeServer {
        Self::start_with(listener, None, script)
    }

    /// Serve https with `tls` (a certificate made by the test).
    fn start_tls(tls: Arc<rustls::ServerConfig>, script: Box<Script>) -> FakeServer {
        Self::start_with(TcpListener::bind("127.0.0.1:0").unwrap(), Some(tls), script)
    }

    fn start_with(
        listener: TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
        script: Box<Script>,
    ) -> FakeServer {
        let port = listener.local_addr().unwrap().port();
        let completions = Arc::new(AtomicUsize::new(0));
        let count = completions.clone();
        let authorizations = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = authorizations.clone();
        let scheme = if tls.is_some() { "https" } else { "http" };
        listener.set_nonblocking(true).unwrap();
        let handle = std::thread::spawn(move || {
            // bounded: the fake stops by itself after 60 s
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(60) {
                let stream = match listener.accept() {
                    Ok((s, _)) => s,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(2));
                        continue;
                    }
                };
                stream.set_nonblocking(false).unwrap();
                let mut stream: Box<dyn Conn> = match &tls {
                    Some(cfg) => {
                        let conn = rustls::ServerConnection::new(cfg.clone()).unwrap();
                        stream
                            .set_read_timeout(Some(Duration::from_secs(5)))
                            .unwrap();
                        Box::new(rustls::StreamOwned::new(conn, stream))
                    }
                    None => Box::new(stream),
                };
                let Some((path, body, auth)) = read_request(&mut stream) else {
                    continue;
                };
                seen.lock().unwrap().extend(auth);
                let (status, text) = if path.ends_with("/models") {
                    (200, json!({"object": "list", "data": [{"id": "fake", "object": "model", "created": t0.elapsed().as_nanos() as u64}]}).to_string())
                } else if path.ends_with("/completions") {
                    let n = count.fetch_add(1, Ordering::SeqCst);
                    match script(n, &body) {
                        Some(r) => r,
                        None => return, // dies: the listener is dropped
                    }
                } else {
                    (
                        404,
                        json!({"error": {"message": "no such route"}}).to_string(),
                    )
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                    text.len()
                );
                let _ = stream.flush();
            }
        });
        FakeServer {
            url: format!("{scheme}://127.0.0.1:{port}/v1"),
            completions,
            authorizations,
            handle: Some(handle),
        }
    }

    fn completions(&self) -> usize {
        self.completions.load(Ordering::SeqCst)
    }

    fn join(mut self) {
        if let Some(h) = self.handle.take() {
            h.join().unwrap();
        }
    }
}

/// The request's path, JSON body and `Authorization` header, if any.
fn read_request(stream: &mut impl Read) -> Option<(String, Value, Option<String>)> {
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_string();
    let mut len = 0;
    let mut auth = None;
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        if h.trim().is_empty() {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().ok()?;
        }
        if h.to_ascii_lowercase().starts_with("authorization:") {
            auth = Some(h["authorization:".len()..].trim().to_string());
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some((
        path,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
        auth,
    ))
}

/// A well-formed answer: with `echo`, every character of the prompt is a token of log-prob −1
/// (the first has none), plus one generated token; without, the text " 7".
fn good(body: &Value) -> (u16, String) {
    if body["echo"] == json!(true) {
        let prompt = body["prompt"].as_str().unwrap();
        let n = prompt.chars().count();
        let tokens: Vec<String> = prompt
            .chars()
            .map(String::from)
            .chain(["x".into()])
            .collect();
        let lps: Vec<Value> = (0..=n)
            .map(|i| if i == 0 { Value::Null } else { json!(-1.0) })
            .collect();
        let tops: Vec<Value> = tokens.iter().map(|t| json!({ t.clone(): -1.0 })).collect();
        let v = json!({"choices": [{"text": format!("{prompt}x"), "logprobs": {
            "tokens": tokens, "token_logprobs": lps, "top_logprobs": tops,
            "text_offset": (0..=n).collect::<Vec<_>>()}}]});
        (200, v.to_string())
    } else {
        (
            200,
            json!({"choices": [{"text": " 7", "logprobs": null}]}).to_string(),
        )
    }
}

fn opts(url: &str) -> OpenAiOptions {
    let mut o = OpenAiOptions::new(url, "fake");
    o.backoff = Duration::from_millis(1);
    o.max_retries = 6;
    o.timeout = Duration::from_secs(20);
    o
}

fn reqs() -> Vec<Continuation> {
    [
        ("Question: 2+2?\nAnswer:", " 4"),
        ("Hello", " world"),
        ("The cat ", "sat"),
    ]
    .iter()
    .map(|(c, x)| Continuation {
        context: c.to_string(),
        continuation: x.to_string(),
        add_special_tokens: true,
    })
    .collect()
}

#[test]
fn a_429_storm_is_retried_and_scores_are_right() {
    let fake = FakeServer::start(Box::new(|n, b| {
        Some(if n < 5 {
            (429, "{\"error\": \"slow down\"}".into())
        } else {
            good(b)
        })
    }));
    let mut o = opts(&fake.url);
    o.concurrency = 1;
    let b = OpenAiBackend::connect(o).unwrap();
    let l = b.loglikelihood(&reqs(), 8).unwrap();
    // one token per character of the continuation (trailing context space moved into it)
    let got: Vec<f64> = l.iter().map(|l| l.logprob).collect();
    assert_eq!(got, vec![-2.0, -6.0, -4.0]);
    assert_eq!(l[2].tokens, 4);
    assert_eq!(fake.completions(), 5 + 3);
}

#[test]
fn a_500_then_success_is_retried() {
    let fake = FakeServer::start(Box::new(|n, b| {
        Some(if n == 0 {
            (500, "oops".into())
        } else {
            good(b)
        })
    }));
    let b = OpenAiBackend::connect(opts(&fake.url)).unwrap();
    let l = b.loglikelihood(&reqs()[..1], 1).unwrap();
    assert_eq!(l[0].logprob, -2.0);
    assert_eq!(fake.completions(), 2);
}

#[test]
fn retries_give_up_with_the_status_and_url() {
    let fake = FakeServer::start(Box::new(|_, _| Some((503, "overloaded".into()))));
    let mut o = opts(&fake.url);
    o.max_retries = 2;
    let b = OpenAiBackend::connect(o).unwrap();
    let e = b.loglikelihood(&reqs()[..1], 1).unwrap_err().to_string();
    assert!(e.contains(&fake.url) && e.contains("503"), "{e}");
    assert_eq!(fake.completions(), 3);
}

#[test]
fn missing_logprobs_is_an_error_not_a_score() {
    let fake = FakeServer::start(Box::new(|_, _| {
        Some((
            200,
            json!({"choices": [{"text": "x", "logprobs": null}]}).to_string(),
        ))
    }));
    let b = OpenAiBackend::connect(opts(&fake.url)).unwrap();
    let e = b.loglikelihood(&reqs(), 1).unwrap_err();
    assert!(matches!(e, BackendError::BadResponse { .. }), "{e}");
    let e = e.to_string();
    assert!(e.contains(&fake.url) && e.contains("logprobs"), "{e}");
}

#[test]
fn null_logprob_inside_the_continuation_is_an_error() {
    let fake = FakeServer::start(Box::new(|_, b| {
        let (s, t) = good(b);
        let mut v: Value = serde_json::from_str(&t).unwrap();
        v["choices"][0]["logprobs"]["token_logprobs"][6] = Value::Null;
        Some((s, v.to_string()))
    }));
    let b = OpenAiBackend::connect(opts(&fake.url)).unwrap();
    let e = b.loglikelihood(&reqs()[1..2], 1).unwrap_err().to_string();
    assert!(e.contains("no log-probability"), "{e}");
}

#[test]
fn an_unknown_model_name_is_an_error_listing_the_served_ones() {
    let fake = FakeServer::start(Box::new(|_, b| Some(good(b))));
    let mut o = opts(&fake.url);
    o.model = "llama-70b".into();
    let e = OpenAiBackend::connect(o).err().unwrap();
    assert!(matches!(e, BackendError::UnknownModel { .. }), "{e}");
    let e = e.to_string();
    assert!(
        e.contains("llama-70b") && e.contains("`fake`") && e.contains(&fake.url),
        "{e}"
    );
}

#[test]
fn a_wrong_url_is_an_error_naming_it() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/v1");
    let mut o = opts(&url);
    o.max_retries = 1;
    let e = OpenAiBackend::connect(o).err().unwrap();
    assert!(matches!(e, BackendError::Unreachable { .. }), "{e}");
    assert!(e.to_string().contains(&url), "{e}");
}

#[test]
fn a_chat_only_server_says_why_loglikelihood_needs_completions() {
    let fake = FakeServer::start(Box::new(|_, _| {
        Some((404, "{\"detail\": \"Not Found\"}".into()))
    }));
    let b = OpenAiBackend::connect(opts(&fake.url)).unwrap();
    let e = b.loglikelihood(&reqs()[..1], 1).unwrap_err().to_string();
    assert!(
        e.contains("chat-completions cannot return the log-probabilities"),
        "{e}"
    );
}

#[test]
fn generation_sends_stop_and_max_tokens_and_cuts_at_stop() {
    let seen = Arc::new(std::sync::Mutex::new(Value::Null));
    let s2 = seen.clone();
    let fake = FakeServer::start(Box::new(move |_, b| {
        *s2.lock().unwrap() = b.clone();
        Some((
            200,
            json!({"choices": [{"text": "42\n\nQ: more"}]}).to_string(),
        ))
    }));
    let b = OpenAiBackend::connect(opts(&fake.url)).unwrap();
    let req = sft_eval::backend::GenerateRequest {
        max_new_tokens: 7,
        decoding: Decoding::Greedy,
        stop: vec!["Q:".into()],
    };
    assert_eq!(b.generate("Q: 6*7?\nA:", true, &req).unwrap(), "42\n\n");
    let body = seen.lock().unwrap().clone();
    assert_eq!(body["max_tokens"], 7);
    assert_eq!(body["temperature"], 0.0);
    assert_eq!(body["stop"], json!(["Q:"]));
}

/// Generation for many items goes out `--concurrency` at a time and comes back in the items'
/// order, with the token counts the server reports.
#[test]
fn batched_generation_keeps_the_order_and_reads_the_token_counts() {
    let fake = FakeServer::start(Box::new(|_, b| {
        let prompt = b["prompt"].as_str().unwrap_or("").to_string();
        let n: u64 = prompt.trim_start_matches('p').parse().unwrap_or(0);
        Some((
            200,
            json!({"choices": [{"text": format!("to {prompt}")}], "usage": {"completion_tokens": n + 1}})
                .to_string(),
        ))
    }));
    let mut o = opts(&fake.url);
    o.concurrency = 4;
    let b = OpenAiBackend::connect(o).unwrap();
    let jobs: Vec<sft_eval::backend::GenerateJob> = (0..12)
        .map(|i| sft_eval::backend::GenerateJob {
            prompt: format!("p{i}"),
            add_special_tokens: true,
            request: sft_eval::backend::GenerateRequest {
                max_new_tokens: 5,
                decoding: Decoding::Greedy,
                stop: vec![],
            },
        })
        .collect();
    let mut done = Vec::new();
    let texts = b
        .generate_batch(&jobs, 8, &mut |j, tokens| done.push((j, tokens)))
        .unwrap();
    let want: Vec<String> = (0..12).map(|i| format!("to p{i}")).collect();
    assert_eq!(texts, want);
    done.sort();
    assert_eq!(done, (0..12).map(|i| (i, Some(i + 1))).collect::<Vec<_>>());
    assert_eq!(fake.completions(), 12);
}

/// A server that dies after the first suite: `eval` fails naming the URL, and a rerun against
/// the restarted server takes the finished suite from the cache (no request for it).
#[test]
fn a_server_dying_mid_run_keeps_the_finished_suites() {
    let tmp = tempdir();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // qa: 2 items × 4 choices = 8 log-likelihood requests, then math's first generation dies
    let fake = FakeServer::start_on(
        listener,
        Box::new(|n, b| if n < 8 { Some(good(b)) } else { None }),
    );
    let url = fake.url.clone();
    let suites = Path::new(env!("CARGO_MANIFEST_DIR")).join("suites");
    let run = |extra: &[&str]| {
        let mut c = sft_eval_command();
        c.current_dir(tmp.path())
            .args([
                "eval",
                "--backend",
                "openai",
                "--base-url",
                &url,
                "--model",
                "fake",
            ])
            .args([
                "--suites",
                "qa,math",
                "--limit",
                "2",
                "--max-retries",
                "1",
                "--retry-backoff-ms",
                "1",
            ])
            .arg("--suites-dir")
            .arg(&suites)
            .arg("--cache-dir")
            .arg(tmp.path().join("cache"))
            .args(extra)
            .env("SFT_EVAL_NO_PROGRESS", "1");
        c.output().unwrap()
    };
    let out = run(&[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&url), "{err}");
    assert!(
        err.contains("qa: acc"),
        "qa finished before the server died: {err}"
    );
    fake.join();
    // the server comes back on the same address
    let back = FakeServer::start_on(
        TcpListener::bind(addr).unwrap(),
        Box::new(|_, b| Some(good(b))),
    );
    let out = run(&["-o", tmp.path().join("r.json").to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        back.completions(),
        2,
        "only math's two generations are requested again"
    );
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("r.json")).unwrap()).unwrap();
    assert!(r["model"]["path"]
        .as_str()
        .unwrap()
        .starts_with("openai:fake@"));
    assert_eq!(r["suites"][0]["suite"], "qa");
    assert_eq!(
        r["suites"][0]["items"][0]["logliks"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
}

/// `compare` mixes backends: a local base against a served fine-tune written `openai:NAME`.
#[test]
fn compare_mixes_a_local_base_with_a_served_side() {
    let tmp = tempdir();
    let fake = FakeServer::start(Box::new(|_, b| Some(good(b))));
    let suites = Path::new(env!("CARGO_MANIFEST_DIR")).join("suites");
    let out = sft_eval_command()
        .current_dir(tmp.path())
        .arg("compare")
        .arg(model_dir("llama"))
        .arg("openai:fake")
        .args([
            "--base-url",
            &fake.url,
            "--suites",
            "qa",
            "--limit",
            "3",
            "--resamples",
            "200",
        ])
        .arg("--suites-dir")
        .arg(&suites)
        .arg("--cache-dir")
        .arg(tmp.path().join("cache"))
        .arg("--report-dir")
        .arg(tmp.path().join("report"))
        .env("SFT_EVAL_NO_PROGRESS", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(fake.completions(), 3 * 4, "one request per choice");
    let md = String::from_utf8_lossy(&out.stdout);
    assert!(md.contains("qa"), "{md}");
    assert!(tmp.path().join("report/report.json").is_file());
}
