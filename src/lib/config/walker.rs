//! Walks one JSON document: reads values with their JSON path, collects every
//! problem and warning, and records every key it reads, so that the keys
//! nobody read are reported (with the nearest known one) from the same source
//! as the code that reads them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::{Map, Value};

use super::Problem;
use super::json::join;

/// Collects problems and warnings for one file.
pub(super) struct Walker<'a> {
    pub file: PathBuf,
    pub problems: &'a mut Vec<Problem>,
    pub warnings: &'a mut Vec<Problem>,
    /// The keys read of each object, by the object's JSON path.
    known: BTreeMap<String, BTreeSet<&'static str>>,
}

pub(super) fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {s:?}"),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// A slurm.conf parameter name.
fn is_slurm_word(key: &str) -> bool {
    let mut bytes = key.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl<'a> Walker<'a> {
    pub fn new(
        file: PathBuf,
        problems: &'a mut Vec<Problem>,
        warnings: &'a mut Vec<Problem>,
    ) -> Self {
        Walker {
            file,
            problems,
            warnings,
            known: BTreeMap::new(),
        }
    }

    pub fn problem(&mut self, path: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            file: self.file.clone(),
            path: path.to_string(),
            message: message.into(),
        });
    }

    pub fn warning(&mut self, path: &str, message: impl Into<String>) {
        self.warnings.push(Problem {
            file: self.file.clone(),
            path: path.to_string(),
            message: message.into(),
        });
    }

    /// Reads `key` of the object at `path`, and records it as known there.
    pub fn get<'v>(
        &mut self,
        map: &'v Map<String, Value>,
        path: &str,
        key: &'static str,
    ) -> Option<&'v Value> {
        self.known.entry(path.to_string()).or_default().insert(key);
        map.get(key)
    }

    /// Warns about every key of the object at `path` that nothing read,
    /// naming the nearest key that was read. Call it after the object's reads.
    pub fn unread_keys(&mut self, map: &Map<String, Value>, path: &str, what: &str) {
        let known = self.known.get(path).cloned().unwrap_or_default();
        for key in map.keys().filter(|k| !known.contains(k.as_str())) {
            let nearest = known
                .iter()
                .map(|k| {
                    let distance = strsim::levenshtein(&key.to_lowercase(), &k.to_lowercase());
                    (distance, *k)
                })
                .min()
                .filter(|(distance, k)| *distance <= 2.max(k.len() / 3));
            let hint = match nearest {
                Some((_, k)) => format!("; did you mean \"{k}\"?"),
                None => String::new(),
            };
            self.warning(&join(path, key), format!("unknown key, {what}{hint}"));
        }
    }

    pub fn object<'v>(&mut self, value: &'v Value, path: &str) -> Option<&'v Map<String, Value>> {
        match value {
            Value::Object(map) => Some(map),
            other => {
                self.problem(path, format!("must be an object, got {}", describe(other)));
                None
            }
        }
    }

    pub fn array<'v>(&mut self, value: &'v Value, path: &str) -> Option<&'v Vec<Value>> {
        match value {
            Value::Array(items) => Some(items),
            other => {
                self.problem(path, format!("must be an array, got {}", describe(other)));
                None
            }
        }
    }

    pub fn required<'v>(
        &mut self,
        map: &'v Map<String, Value>,
        path: &str,
        key: &'static str,
    ) -> Option<&'v Value> {
        let value = self.get(map, path, key);
        if value.is_none() {
            self.problem(&join(path, key), "required key is missing");
        }
        value
    }

    pub fn string(&mut self, value: &Value, path: &str) -> Option<String> {
        match value {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::String(_) => {
                self.problem(path, "must not be empty");
                None
            }
            other => {
                self.problem(path, format!("must be a string, got {}", describe(other)));
                None
            }
        }
    }

    /// A file system path: a non-empty string without a NUL byte.
    pub fn path(&mut self, value: &Value, path: &str) -> Option<PathBuf> {
        let text = self.string(value, path)?;
        if text.contains('\0') {
            self.problem(path, "holds a NUL byte, which no file name can hold");
            return None;
        }
        Some(PathBuf::from(text))
    }

    pub fn required_string(
        &mut self,
        map: &Map<String, Value>,
        path: &str,
        key: &'static str,
    ) -> Option<String> {
        let value = self.required(map, path, key)?;
        self.string(value, &join(path, key))
    }

    pub fn optional_string(
        &mut self,
        map: &Map<String, Value>,
        path: &str,
        key: &'static str,
    ) -> Option<String> {
        self.get(map, path, key)
            .and_then(|v| self.string(v, &join(path, key)))
    }

    /// A required name, checked by `parse` (one of the name types).
    pub fn name<T>(
        &mut self,
        map: &Map<String, Value>,
        path: &str,
        key: &'static str,
        parse: fn(&str) -> Result<T, String>,
    ) -> Option<T> {
        let name = self.required_string(map, path, key)?;
        parse(&name)
            .map_err(|why| self.problem(&join(path, key), why))
            .ok()
    }

    /// A whole number in `range`; booleans and fractions are refused.
    pub fn integer(&mut self, value: &Value, path: &str, low: i64, high: i64) -> Option<i64> {
        match value.as_i64() {
            Some(n) if value.is_number() && (low..=high).contains(&n) => Some(n),
            _ => {
                let got = describe(value);
                self.problem(
                    path,
                    format!("must be a whole number from {low} to {high}, got {got}"),
                );
                None
            }
        }
    }

    pub fn optional_integer(
        &mut self,
        map: &Map<String, Value>,
        path: &str,
        key: &'static str,
        (low, high): (i64, i64),
    ) -> Option<i64> {
        self.get(map, path, key)
            .and_then(|v| self.integer(v, &join(path, key), low, high))
    }

    pub fn boolean(
        &mut self,
        map: &Map<String, Value>,
        path: &str,
        key: &'static str,
    ) -> Option<bool> {
        match self.get(map, path, key)? {
            Value::Bool(b) => Some(*b),
            other => {
                let got = describe(other);
                self.problem(
                    &join(path, key),
                    format!("must be true or false, got {got}"),
                );
                None
            }
        }
    }

    /// An object of Slurm `Key=Value` settings, in file order, values rendered
    /// for slurm.conf. Keys must be Slurm words, values one non-empty line;
    /// booleans only for the keys in `booleans` (rendered YES or NO).
    pub fn slurm_pairs(
        &mut self,
        value: &Value,
        path: &str,
        booleans: &[&str],
    ) -> Vec<(String, String)> {
        let Some(map) = self.object(value, path) else {
            return Vec::new();
        };
        let mut pairs = Vec::new();
        for (key, value) in map {
            let key_path = join(path, key);
            if !is_slurm_word(key) {
                let why = "is not a Slurm parameter name (a letter, then letters, digits or _)";
                self.problem(&key_path, why);
                continue;
            }
            let takes_boolean = booleans.iter().any(|k| k.eq_ignore_ascii_case(key));
            if let Some(rendered) = self.slurm_value(value, &key_path, takes_boolean) {
                pairs.push((key.clone(), rendered));
            }
        }
        pairs
    }

    fn slurm_value(&mut self, value: &Value, path: &str, takes_boolean: bool) -> Option<String> {
        let rendered = match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) if takes_boolean => if *b { "YES" } else { "NO" }.to_string(),
            Value::Bool(_) => {
                let why =
                    "takes no boolean in slurm.conf; write the value Slurm expects as a string";
                self.problem(path, why);
                return None;
            }
            other => {
                let got = describe(other);
                self.problem(
                    path,
                    format!("must be a string, number or boolean, got {got}"),
                );
                return None;
            }
        };
        if rendered.trim().is_empty() {
            self.problem(path, "must not be empty");
            return None;
        }
        if rendered.contains(char::is_control) {
            let why = "holds a control character (a newline, a tab, …): slurm.conf takes one line per setting";
            self.problem(path, why);
            return None;
        }
        if rendered.contains(' ') && !rendered.starts_with('"') {
            self.warning(path, "holds whitespace; slurm.conf needs it quoted");
        }
        Some(rendered)
    }
}
