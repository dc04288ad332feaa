//! What CI reads: the gate's markdown and delta chart (snapshots), JUnit and GitHub annotations.

use super::*;

#[test]
fn gate_markdown_snapshot() {
    let cx = TestContext::new();
    let (_, baseline) = setup(&cx);
    let (base, ft) = (cx.join("base.json"), cx.join("ft.json"));
    // fixed, synthetic scores: half right at base; the fine-tune loses items 0, 2, 4 and gains 1
    for (path, lost) in [(&base, false), (&ft, true)] {
        rewrite_results(&baseline, path, |r| {
            r.model.path = if lost { "finetuned" } else { "base" }.into();
            scores(r, |i| {
                let mut s = if i % 2 == 0 { 1.0 } else { 0.0 };
                if lost && (i == 0 || i == 2 || i == 4) {
                    s = 0.0;
                }
                if lost && i == 1 {
                    s = 1.0;
                }
                s
            });
        });
    }
    let p = policy(&cx, "gate.toml", "[default]\nmargin = 0.15\n");
    let r = gate(&cx, &base, &ft, &["--policy", &p]);
    assert!(r.code == 0 || r.code == 1, "{}", r.stderr);
    insta::assert_snapshot!(r.stdout);
    // the default report folder: reports/<finetuned>-vs-<base>-<hash of both fingerprints>
    let reports: Vec<PathBuf> = std::fs::read_dir(cx.join("reports"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(reports.len(), 1, "{reports:?}");
    let dir = &reports[0];
    let id = dir.file_name().unwrap().to_str().unwrap();
    assert!(
        id.starts_with("ft-vs-base-") && id.len() == "ft-vs-base-".len() + 8,
        "{id}"
    );
    assert!(r.stderr.contains("report.md"), "{}", r.stderr);
    // report.md is the markdown with the chart in front of the verdicts
    let report = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert_eq!(
        report.replace(
            "\n### Charts\n\n![Δ with CI per suite, coloured by verdict](delta.svg)\n",
            ""
        ),
        r.stdout
    );
    assert!(report.find("### Charts").unwrap() < report.find("### Verdicts").unwrap());
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["passed"], r.code == 0);
    assert!(!dir.join("loss.svg").exists() && !dir.join("gain_vs_forgetting.svg").exists());
    let svg = std::fs::read_to_string(dir.join("delta.svg")).unwrap();
    roxmltree::Document::parse(&svg).unwrap();
    insta::assert_snapshot!("gate_delta_svg", svg);
    // the same comparison again writes the same folder
    let again = gate(&cx, &base, &ft, &["--policy", &p]);
    assert_eq!(again.code, r.code);
    assert_eq!(std::fs::read_dir(cx.join("reports")).unwrap().count(), 1);
}

/// CI reads a JUnit report (checked with a real consumer, Python's junitparser, where `.ci/run`
/// installed it) and, in GitHub Actions, annotations.
#[test]
fn junit_and_github_annotations_for_ci() {
    let cx = TestContext::new().env("GITHUB_ACTIONS", "true");
    let (_, baseline) = setup(&cx);
    let (base, ft) = (cx.join("base.json"), cx.join("ft.json"));
    rewrite_results(&baseline, &base, |r| scores(r, |_| 1.0));
    rewrite_results(&baseline, &ft, |r| scores(r, |i| (i >= 45) as u8 as f64));
    let junit = cx.join("gate.xml");
    let r = gate(&cx, &base, &ft, &["--junit", junit.to_str().unwrap()]).expect(1);
    assert!(
        r.stdout.contains("::error title=sft-eval gate: mc::Fail: "),
        "{}",
        r.stdout
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let case = doc
        .descendants()
        .find(|n| n.has_tag_name("testcase"))
        .unwrap();
    assert_eq!(case.attribute("name"), Some("mc"));
    let failure = case.children().find(|n| n.has_tag_name("failure")).unwrap();
    assert_eq!(failure.attribute("type"), Some("regression"));
    assert_eq!(doc.root_element().attribute("failures"), Some("1"));
    // a gate that cannot judge: one case in error, and an error annotation
    let p = policy(&cx, "bad.toml", "[default]\nmargin = 2\n");
    let err_xml = cx.join("err.xml");
    let r = gate(
        &cx,
        &base,
        &ft,
        &["--policy", &p, "--junit", err_xml.to_str().unwrap()],
    )
    .expect(2);
    assert!(
        r.stdout.starts_with("::error title=sft-eval gate::"),
        "{}",
        r.stdout
    );
    let err_doc = std::fs::read_to_string(&err_xml).unwrap();
    let d = roxmltree::Document::parse(&err_doc).unwrap();
    assert_eq!(d.root_element().attribute("errors"), Some("1"));
    // a real consumer reads both
    let Some(python) = std::env::var_os("SFT_EVAL_JUNIT_PYTHON") else {
        eprintln!(
            "skipping the junitparser check: SFT_EVAL_JUNIT_PYTHON is not set (.ci/run sets it)"
        );
        return;
    };
    let check = "import sys\nfrom junitparser import JUnitXml, Failure, Error\nx = JUnitXml.fromfile(sys.argv[1])\nres = [(c.name, [type(r).__name__ for r in c.result]) for s in x for c in s]\nprint(res)\n";
    for (file, want) in [
        (&junit, "[('mc', ['Failure'])]"),
        (&err_xml, "[('gate', ['Error'])]"),
    ] {
        let o = std::process::Command::new(&python)
            .args(["-c", check, file.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), want);
    }
}
