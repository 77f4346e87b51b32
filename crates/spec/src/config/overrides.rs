//! `--set KEY=VALUE` overrides: parsed and typed by the schema, applied to the raw TOML table.

use super::schema::{self, ValueType};
use crate::error::{Error, Result};
use toml::{Table, Value};

/// One parsed `--set` override: `KEY=VALUE` sets a key, `~KEY` removes it (Hydra's grammar).
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    pub key: String,
    /// The value to set; `None` removes the key.
    pub value: Option<Value>,
}

impl Override {
    pub fn set(key: &str, value: Value) -> Override {
        Override {
            key: key.to_string(),
            value: Some(value),
        }
    }
}

impl std::fmt::Display for Override {
    /// As given on the command line: `KEY=VALUE` or `~KEY`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{}={v}", self.key),
            None => write!(f, "~{}", self.key),
        }
    }
}

/// Parses `KEY=VALUE` or `~KEY`, checking the key exists in the schema and the value has its
/// type.
pub fn parse(arg: &str) -> Result<Override> {
    if let Some(key) = arg.trim().strip_prefix('~') {
        let key = key.trim();
        if schema::find(key).is_none() {
            let hint = super::unknown_key_hint(key);
            return Err(Error::Input(format!(
                "--set {arg:?}: unknown key '{key}'{hint}"
            )));
        }
        return Ok(Override {
            key: key.to_string(),
            value: None,
        });
    }
    let Some((key, raw)) = arg.split_once('=') else {
        return Err(Error::Input(format!(
            "--set {arg:?}: expected KEY=VALUE with a dotted schema key, e.g. --set \
             optimizer.lr=3e-4, or ~KEY to remove a key the file sets"
        )));
    };
    let key = key.trim();
    let raw = raw.trim();
    let Some(spec) = schema::find(key) else {
        let hint = super::unknown_key_hint(key);
        return Err(Error::Input(format!(
            "--set {arg:?}: unknown key '{key}'{hint}"
        )));
    };
    let value = parse_typed(raw, &spec.ty).ok_or_else(|| {
        Error::Input(format!(
            "--set {arg:?}: key '{key}' expects {}, got {raw:?}",
            spec.ty.describe()
        ))
    })?;
    Ok(Override::set(key, value))
}

/// Reads a command-line string as a TOML value of the given type. Range checks come later,
/// with the rest of the validation, so that messages are the same as for the file.
fn parse_typed(raw: &str, ty: &ValueType) -> Option<Value> {
    let unquoted = raw
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(raw);
    match ty {
        ValueType::Int { .. } => {
            let raw = raw.replace('_', "");
            raw.parse::<i64>()
                .ok()
                .or_else(|| raw.parse::<f64>().ok().and_then(exact_integer))
                .map(Value::Integer)
        }
        ValueType::Float(_) => raw.parse::<f64>().ok().map(Value::Float),
        ValueType::Bool => raw.parse::<bool>().ok().map(Value::Boolean),
        ValueType::Str | ValueType::Enum(_) => Some(Value::String(unquoted.to_string())),
        ValueType::IntList { .. } => {
            let inner = raw
                .strip_prefix('[')
                .and_then(|s| s.strip_suffix(']'))
                .unwrap_or(raw);
            if inner.trim().is_empty() {
                return Some(Value::Array(vec![]));
            }
            inner
                .split(',')
                .map(|s| s.trim().parse::<i64>().ok().map(Value::Integer))
                .collect::<Option<Vec<_>>>()
                .map(Value::Array)
        }
        ValueType::PerBlock(inner) => match raw.trim().strip_prefix('[') {
            Some(rest) => rest
                .strip_suffix(']')?
                .split(',')
                .map(|item| parse_typed(item.trim(), inner))
                .collect::<Option<Vec<_>>>()
                .map(Value::Array),
            None => parse_typed(raw, inner),
        },
    }
}

/// A float that spells an integer exactly (`1e3`, `2.0`), as that integer.
pub(crate) fn exact_integer(f: f64) -> Option<i64> {
    (f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i64)
}

/// Writes the override into the table, creating intermediate tables as needed, or removes its
/// key (an error if the experiment does not set it).
pub fn apply(table: &mut Table, ov: &Override) -> Result<()> {
    let mut parts: Vec<&str> = ov.key.split('.').collect();
    let leaf = parts.pop().expect("split yields at least one part");
    let Some(value) = &ov.value else {
        let mut current = Some(&mut *table);
        for part in &parts {
            current = current
                .and_then(|t| t.get_mut(*part))
                .and_then(Value::as_table_mut);
        }
        return match current.and_then(|t| t.remove(leaf)) {
            Some(_) => Ok(()),
            None => Err(Error::Input(format!(
                "--set ~{}: the experiment does not set '{}', so there is nothing to remove",
                ov.key, ov.key
            ))),
        };
    };
    let mut current = table;
    for part in parts {
        let entry = current
            .entry(part.to_string())
            .or_insert_with(|| Value::Table(Table::new()));
        current = entry.as_table_mut().ok_or_else(|| {
            Error::Input(format!(
                "--set {}: '{part}' is not a table in the experiment file",
                ov.key
            ))
        })?;
    }
    current.insert(leaf.to_string(), value.clone());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_by_schema() {
        assert_eq!(
            parse("optimizer.lr=3e-4").unwrap().value.unwrap(),
            Value::Float(3e-4)
        );
        assert_eq!(
            parse("train.steps=200").unwrap().value.unwrap(),
            Value::Integer(200)
        );
        assert_eq!(
            parse("train.steps=1e3").unwrap().value.unwrap(),
            Value::Integer(1000)
        );
        assert!(parse("train.steps=1.5e0").is_err());
        assert_eq!(
            parse("optimizer.nesterov=true").unwrap().value.unwrap(),
            Value::Boolean(true)
        );
        assert_eq!(
            parse("model.kind=cnn").unwrap().value.unwrap(),
            Value::String("cnn".into())
        );
        assert_eq!(
            parse("model.hidden=[256, 128]").unwrap().value.unwrap(),
            Value::Array(vec![Value::Integer(256), Value::Integer(128)])
        );
        assert_eq!(
            parse("model.hidden=64").unwrap().value.unwrap(),
            Value::Array(vec![Value::Integer(64)])
        );
    }

    #[test]
    fn bad_overrides_name_key_value_and_type() {
        let msg = parse("train.steps=abc").unwrap_err().to_string();
        assert!(
            msg.contains("train.steps") && msg.contains("abc") && msg.contains("integer"),
            "{msg}"
        );
        let msg = parse("optimizer.lrr=1").unwrap_err().to_string();
        assert!(
            msg.contains("unknown key 'optimizer.lrr'") && msg.contains("optimizer.lr"),
            "{msg}"
        );
        let msg = parse("optimizer.lr").unwrap_err().to_string();
        assert!(msg.contains("KEY=VALUE"), "{msg}");
    }

    #[test]
    fn a_tilde_removes_a_key_the_experiment_sets() {
        let mut t: Table = "[optimizer]\nkind = \"sgd\"\nmomentum = 0.9\n"
            .parse()
            .unwrap();
        let remove = parse("~optimizer.momentum").unwrap();
        assert_eq!(remove.to_string(), "~optimizer.momentum");
        apply(&mut t, &remove).unwrap();
        assert!(t["optimizer"].get("momentum").is_none());
        let msg = apply(&mut t, &remove).unwrap_err().to_string();
        assert!(msg.contains("nothing to remove"), "{msg}");
        let msg = parse("~optimizer.momentun").unwrap_err().to_string();
        assert!(msg.contains("did you mean 'optimizer.momentum'"), "{msg}");
    }

    #[test]
    fn apply_creates_tables() {
        let mut t = Table::new();
        apply(&mut t, &parse("train.steps=5").unwrap()).unwrap();
        assert_eq!(t["train"]["steps"].as_integer(), Some(5));
    }
}
