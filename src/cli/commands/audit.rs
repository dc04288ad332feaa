//! `sft-eval audit DATA.jsonl`

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::audit::{report, AuditError, AuditOptions, Limits};
use crate::error::{Error, ExitStatus};
use crate::model::Tokenizer;

const LIMITS: &str = "Limits (exit 1 when one is violated)";

#[derive(Debug, clap::Args)]
#[command(after_long_help = "\
A record's prompt is its `prompt`, or the turns before the last assistant turn; its response is \
its `completion`, its assistant turns, or the text of a text record.

Checks:
- exact duplicates: identical records (format, roles, fields; the task tag is ignored). \
Rate = copies beyond the first of each group / records.
- near duplicates: MinHash (--num-perm permutations) over --shingle-size character shingles of \
lower-cased text without punctuation, LSH banding, clusters of pairs with estimated Jaccard >= \
--near-threshold. Rate = records beyond the first of each cluster / records (exact duplicates included).
- repeated templates: prompts that are equal once numbers, quoted strings, URLs, e-mail addresses \
and fenced code are masked. Share = prompts with the template / non-empty prompts.
- lengths: characters, whitespace words and, with --model, tokens: min, p50, p90, p99 (nearest \
rank), max, mean.
- diversity: distinct-n = unique n-grams / all n-grams of normalised words, n = 1 and 2, for \
prompts and for responses.
- conflicts: the same prompt (whitespace collapsed) with two or more different responses.
- empty: prompts or responses that are only whitespace; over-long: prompt + response beyond \
--max-chars or --max-tokens.
- tasks: records per `task` tag.

Limits may also come from a TOML file (--limits) with the keys max_duplicate_rate, \
max_near_duplicate_rate, max_conflicts, max_empty, max_template_share, min_distinct_2 and \
max_over_long; flags override the file.

Exit codes: 0 no limit violated, 1 a limit violated (each one listed in the report), 2 an error \
(bad data: the message names file:line).")]
pub struct AuditArgs {
    /// JSONL data: one {"prompt","completion"}, {"messages":[...]} or {"text"} object per line, optional "task".
    pub data: PathBuf,

    /// Print the report as JSON (with a `schema_version`) instead of markdown.
    #[arg(long)]
    pub json: bool,

    /// Write the report to FILE (atomically: a temporary file, then a rename) instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// A checkpoint folder whose tokenizer.json counts tokens: adds token lengths, allows --max-tokens.
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,

    /// Flag records whose prompt + response exceed N characters as over-long.
    #[arg(long, value_name = "N")]
    pub max_chars: Option<usize>,

    /// Flag records whose prompt + response exceed N tokens (no special tokens) as over-long.
    #[arg(long, value_name = "N", requires = "model")]
    pub max_tokens: Option<usize>,

    /// Jaccard similarity at or above which two records are near duplicates, in (0, 1].
    #[arg(long, value_name = "J", default_value_t = 0.8, value_parser = parse_threshold)]
    pub near_threshold: f64,

    /// Characters per shingle for near duplicates.
    #[arg(long, value_name = "K", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub shingle_size: u64,

    /// MinHash permutations (more: a finer similarity estimate, slower).
    #[arg(long, value_name = "N", default_value_t = 128, value_parser = clap::value_parser!(u64).range(8..=1024))]
    pub num_perm: u64,

    /// Examples listed per check.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub top: usize,

    /// Worker threads for MinHash and tokenisation (default: available cores, at most 8).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=256))]
    pub threads: Option<u64>,

    /// Read limits from a TOML file (keys as the flags below, with `_` or `-`).
    #[arg(long, value_name = "FILE", help_heading = LIMITS)]
    pub limits: Option<PathBuf>,

    /// Fail when the exact-duplicate rate exceeds R (0–1).
    #[arg(long, value_name = "R", value_parser = parse_rate, help_heading = LIMITS)]
    pub max_duplicate_rate: Option<f64>,

    /// Fail when the near-duplicate rate exceeds R (0–1).
    #[arg(long, value_name = "R", value_parser = parse_rate, help_heading = LIMITS)]
    pub max_near_duplicate_rate: Option<f64>,

    /// Fail when more than N prompts have conflicting responses.
    #[arg(long, value_name = "N", help_heading = LIMITS)]
    pub max_conflicts: Option<usize>,

    /// Fail when more than N records have an empty prompt or response.
    #[arg(long, value_name = "N", help_heading = LIMITS)]
    pub max_empty: Option<usize>,

    /// Fail when the most common repeated template covers more than R (0–1) of prompts.
    #[arg(long, value_name = "R", value_parser = parse_rate, help_heading = LIMITS)]
    pub max_template_share: Option<f64>,

    /// Fail when prompt distinct-2 (text data: of the texts) is below R (0–1).
    #[arg(long = "min-distinct-2", value_name = "R", value_parser = parse_rate, help_heading = LIMITS)]
    pub min_distinct_2: Option<f64>,

    /// Fail when more than N records are over-long (needs --max-chars or --max-tokens).
    #[arg(long, value_name = "N", help_heading = LIMITS)]
    pub max_over_long: Option<usize>,
}

fn parse_f64(s: &str) -> Result<f64, String> {
    s.trim()
        .parse::<f64>()
        .map_err(|_| format!("`{s}` is not a number"))
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let v = parse_f64(s)?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is not between 0 and 1"))
    }
}

fn parse_threshold(s: &str) -> Result<f64, String> {
    let v = parse_f64(s)?;
    if v > 0.0 && v <= 1.0 {
        Ok(v)
    } else {
        Err(format!("{v} is not in (0, 1]"))
    }
}

fn to_error(e: AuditError) -> Error {
    match e {
        AuditError::Data(d) => Error::Data(d),
        AuditError::Tokenizer(t) => Error::Model(t.into()),
        AuditError::Io { path, source } => Error::Io { path, source },
        e @ (AuditError::Limits { .. } | AuditError::Options(_)) => Error::Usage(e.to_string()),
    }
}

pub fn run(args: &AuditArgs) -> Result<ExitStatus, Error> {
    let flags = Limits {
        max_duplicate_rate: args.max_duplicate_rate,
        max_near_duplicate_rate: args.max_near_duplicate_rate,
        max_conflicts: args.max_conflicts,
        max_empty: args.max_empty,
        max_template_share: args.max_template_share,
        min_distinct_2: args.min_distinct_2,
        max_over_long: args.max_over_long,
    };
    let limits = match &args.limits {
        Some(path) => Limits::from_file(path)
            .map_err(to_error)?
            .overridden_by(&flags),
        None => flags,
    };
    let defaults = AuditOptions::default();
    let opts = AuditOptions {
        near_threshold: args.near_threshold,
        shingle_size: args.shingle_size as usize,
        num_perm: args.num_perm as usize,
        top: args.top,
        max_chars: args.max_chars,
        max_tokens: args.max_tokens,
        limits,
        threads: args.threads.map_or(defaults.threads, |t| t as usize),
    };
    let tokenizer = match &args.model {
        Some(dir) => Some(Tokenizer::from_dir(dir).map_err(|e| Error::Model(e.into()))?),
        None => None,
    };
    let r = crate::audit::audit_file(&args.data, &opts, tokenizer.as_ref()).map_err(to_error)?;
    let text = if args.json {
        report::to_json(&r)
    } else {
        report::to_markdown(&r)
    };
    match &args.output {
        Some(path) => {
            write_atomically(path, text.as_bytes())?;
            #[allow(clippy::print_stderr)]
            {
                if r.passed {
                    eprintln!(
                        "audit: {} records, report written to {}",
                        r.records,
                        path.display()
                    );
                } else {
                    eprintln!(
                        "audit: {} limits violated (report in {})",
                        r.violations.len(),
                        path.display()
                    );
                    for v in &r.violations {
                        eprintln!("  {}: {}", v.limit, v.message);
                    }
                }
            }
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
                .map_err(|e| Error::Io {
                    path: "<stdout>".into(),
                    source: e,
                })?;
        }
    }
    Ok(if r.passed {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}

/// Write `bytes` to a temporary file beside `path`, then rename it over `path`.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    if std::fs::metadata(path).is_ok_and(|m| !m.is_file()) {
        // /dev/stdout, a pipe: nothing to replace atomically.
        return std::fs::write(path, bytes).map_err(io);
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".sft-eval-audit")
        .tempfile_in(dir)
        .map_err(io)?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_thresholds_are_checked() {
        assert_eq!(parse_rate("0.25"), Ok(0.25));
        assert!(
            parse_rate("1.5").is_err() && parse_rate("x").is_err() && parse_rate("-0.1").is_err()
        );
        assert_eq!(parse_threshold("1"), Ok(1.0));
        assert!(parse_threshold("0").is_err());
    }

    #[test]
    fn atomic_write_replaces_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.md");
        std::fs::write(&p, "old").unwrap();
        write_atomically(&p, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert!(write_atomically(&dir.path().join("missing/r.md"), b"x").is_err());
    }
}
