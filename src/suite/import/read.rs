//! Shared readers for the importers: files (plain or gzip), JSONL with Python's non-finite
//! numbers, CSV, and typed field access whose errors name the file, line and field.

use super::*;
pub(crate) use crate::data::type_name;

pub(crate) fn io_err(path: &Path, source: std::io::Error) -> ImportError {
    ImportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// If `path` is a folder, the first of `candidates` (relative paths) that exists in it;
/// otherwise `path` itself.
pub(crate) fn resolve(path: &Path, candidates: &[&str]) -> Result<PathBuf, ImportError> {
    if !path.is_dir() {
        return Ok(path.to_path_buf());
    }
    candidates
        .iter()
        .map(|c| path.join(c))
        .find(|p| p.is_file())
        .ok_or_else(|| ImportError::MissingFile {
            path: path.to_path_buf(),
            expected: candidates.join(" or "),
        })
}

/// The whole file as bytes, gunzipped when the name ends in `.gz`.
fn read_bytes(path: &Path) -> Result<Vec<u8>, ImportError> {
    let raw = std::fs::read(path).map_err(|e| io_err(path, e))?;
    if path.extension().is_some_and(|e| e == "gz") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| io_err(path, e))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// The whole file as UTF-8 text (gunzipped for `.gz`), without a leading byte-order mark.
pub(crate) fn read_text(path: &Path) -> Result<String, ImportError> {
    let bytes = read_bytes(path)?;
    let text = String::from_utf8(bytes).map_err(|e| {
        io_err(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidData, e.utf8_error()),
        )
    })?;
    Ok(match text.strip_prefix('\u{feff}') {
        Some(t) => t.to_string(),
        None => text,
    })
}

/// JSONL records: (1-based line, object).
pub(crate) type Records = Vec<(usize, Map<String, Value>)>;

/// JSONL records as (1-based line, object); blank lines skipped.
pub(crate) fn jsonl(path: &Path, text: &str) -> Result<Records, ImportError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = Loc::Line(i + 1);
        if let Some(reason) = crate::data::line_too_long(line) {
            return Err(ImportError::Json {
                path: path.to_path_buf(),
                at,
                reason,
            });
        }
        let parsed = serde_json::from_str::<Value>(line).or_else(|e| {
            // EvalPlus files are written by Python's json.dumps, which emits bare
            // NaN / Infinity / -Infinity (in test inputs we do not use): read them as null.
            let relaxed = python_nonfinite_to_null(line);
            if relaxed == line {
                Err(e)
            } else {
                serde_json::from_str::<Value>(&relaxed).map_err(|_| e)
            }
        });
        match parsed {
            Ok(Value::Object(o)) => out.push((i + 1, o)),
            Ok(other) => {
                return Err(ImportError::Json {
                    path: path.to_path_buf(),
                    at,
                    reason: format!("expected a JSON object, found {}", type_name(&other)),
                })
            }
            Err(e) => {
                return Err(ImportError::Json {
                    path: path.to_path_buf(),
                    at,
                    reason: e.to_string(),
                })
            }
        }
    }
    if out.is_empty() {
        return Err(ImportError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(out)
}

/// Replace Python's non-standard JSON tokens `NaN`, `Infinity` and `-Infinity` outside
/// strings with `null`.
pub(super) fn python_nonfinite_to_null(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut in_str = false;
    let mut escaped = false;
    let mut rest = line;
    while let Some(c) = rest.chars().next() {
        if in_str {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_str = false;
            }
        } else if c == '"' {
            in_str = true;
        } else {
            let tok = ["-Infinity", "Infinity", "NaN"]
                .into_iter()
                .find(|t| rest.starts_with(t));
            if let Some(t) = tok {
                out.push_str("null");
                rest = &rest[t.len()..];
                continue;
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

pub(crate) fn read_jsonl(path: &Path) -> Result<Records, ImportError> {
    let text = read_text(path)?;
    jsonl(path, &text)
}

/// A required string field.
pub(crate) fn str_field(
    obj: &Map<String, Value>,
    field: &str,
    path: &Path,
    at: &Loc,
) -> Result<String, ImportError> {
    match obj.get(field) {
        Some(Value::String(s)) => Ok(s.clone()),
        None => Err(ImportError::field(path, at.clone(), field, "missing")),
        Some(other) => Err(ImportError::field(
            path,
            at.clone(),
            field,
            format!("must be a string, found {}", type_name(other)),
        )),
    }
}

/// A required list-of-strings field.
pub(crate) fn str_list_field(
    obj: &Map<String, Value>,
    field: &str,
    path: &Path,
    at: &Loc,
) -> Result<Vec<String>, ImportError> {
    let bad = |reason: String| ImportError::field(path, at.clone(), field, reason);
    match obj.get(field) {
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(bad(format!(
                    "list elements must be strings, found {}",
                    type_name(other)
                ))),
            })
            .collect(),
        None => Err(bad("missing".into())),
        Some(other) => Err(bad(format!("must be a list, found {}", type_name(other)))),
    }
}

/// Parsed CSV: a header (if any) and the records, each with its location.
pub(crate) struct Csv {
    pub path: PathBuf,
    pub headers: Vec<String>,
    pub rows: Vec<(Loc, csv::StringRecord)>,
}

impl Csv {
    /// Column index of `name` in the header.
    pub fn col(&self, name: &str) -> Result<usize, ImportError> {
        self.headers.iter().position(|h| h == name).ok_or_else(|| {
            ImportError::field(
                &self.path,
                Loc::Line(1),
                name,
                format!(
                    "column missing from the header (found: {})",
                    self.headers.join(", ")
                ),
            )
        })
    }

    /// Field `col` (named `name` for errors) of a record.
    pub fn get(
        &self,
        rec: &csv::StringRecord,
        at: &Loc,
        col: usize,
        name: &str,
    ) -> Result<String, ImportError> {
        rec.get(col).map(str::to_string).ok_or_else(|| {
            ImportError::field(
                &self.path,
                at.clone(),
                name,
                format!("missing (record has {} fields)", rec.len()),
            )
        })
    }
}

/// Read a CSV file (RFC 4180: quoted fields may span lines). A leading BOM is dropped.
pub(crate) fn read_csv(path: &Path, has_headers: bool) -> Result<Csv, ImportError> {
    let text = read_text(path)?;
    parse_csv(path, &text, has_headers)
}

fn parse_csv(path: &Path, text: &str, has_headers: bool) -> Result<Csv, ImportError> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(has_headers)
        .flexible(true)
        .from_reader(text.as_bytes());
    let csv_err = |e: csv::Error| {
        let line = e.position().map(|p| p.line() as usize).unwrap_or(0);
        ImportError::Csv {
            path: path.to_path_buf(),
            at: Loc::Line(line),
            reason: e.to_string(),
        }
    };
    let headers = if has_headers {
        rdr.headers()
            .map_err(csv_err)?
            .iter()
            .map(|h| h.trim().to_string())
            .collect()
    } else {
        Vec::new()
    };
    let mut rows = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(csv_err)?;
        let line = rec.position().map(|p| p.line() as usize).unwrap_or(0);
        rows.push((Loc::Row { row: i + 1, line }, rec));
    }
    if rows.is_empty() {
        return Err(ImportError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(Csv {
        path: path.to_path_buf(),
        headers,
        rows,
    })
}
