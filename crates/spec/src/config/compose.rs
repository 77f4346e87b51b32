//! Experiment files that build on others: `base = "other.toml"` (relative to the file) makes the
//! file a set of changes to that one, merged key by key before validation, so the resolved
//! config (and its hash) is that of the merged result. Chains are followed; a cycle is an error.

use crate::error::{Error, Result};
use std::path::{Component, Path, PathBuf};
use toml::{Table, Value};

/// The file's table merged over its `base` chain, `base` removed, and `data.dir` made absolute
/// against the directory of the file that set it.
pub fn read(file: &Path) -> Result<Table> {
    read_chain(file, &mut Vec::new())
}

fn read_chain(file: &Path, chain: &mut Vec<PathBuf>) -> Result<Table> {
    let text = read_text(file)?;
    let identity = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
    if chain.contains(&identity) {
        let names: Vec<String> = chain
            .iter()
            .chain([&identity])
            .map(|p| p.display().to_string())
            .collect();
        return Err(Error::Input(format!(
            "{}: key 'base': the chain of bases is a cycle: {}",
            file.display(),
            names.join(" -> ")
        )));
    }
    chain.push(identity);
    let mut table: Table = text.parse().map_err(|e: toml::de::Error| {
        Error::Input(format!(
            "{}: invalid TOML: {}",
            file.display(),
            e.to_string().trim_end()
        ))
    })?;
    expand_strings(&mut table).map_err(|e| Error::Input(format!("{}: {e}", file.display())))?;
    let dir = file.parent().unwrap_or(Path::new("."));
    absolute_data_dir(&mut table, dir);
    match table.remove("base") {
        None => Ok(table),
        Some(Value::String(base)) => {
            let base_path = dir.join(&base);
            if !base_path.is_file() {
                let what = if base_path.is_dir() {
                    "is a directory, not an experiment file"
                } else if base_path.exists() {
                    "is not a regular file"
                } else {
                    "does not exist"
                };
                return Err(Error::Input(format!(
                    "{}: key 'base': {} {what} (a base is the path of an experiment .toml \
                     file, relative to the file that names it)",
                    file.display(),
                    base_path.display()
                )));
            }
            let mut merged = read_chain(&base_path, chain)?;
            merge(&mut merged, table);
            Ok(merged)
        }
        Some(other) => Err(Error::Input(format!(
            "{}: key 'base': expected the path of another experiment file, found {other}",
            file.display()
        ))),
    }
}

/// Writes `over` into `base` key by key; tables merge recursively, other values replace. A table
/// whose `kind` changes replaces the base's table whole: the base's keys belong to another kind.
pub fn merge(base: &mut Table, over: Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(Value::Table(b)), Value::Table(o)) => {
                let kind_changes = o.get("kind").is_some_and(|k| b.get("kind") != Some(k));
                if kind_changes {
                    *b = o;
                } else {
                    merge(b, o);
                }
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Expands `${VAR}` and `${VAR:-default}` in every string value from the environment; an unset
/// variable without a default is an error naming it and its key.
fn expand_strings(table: &mut Table) -> std::result::Result<(), String> {
    fn walk(value: &mut Value, key: &str) -> std::result::Result<(), String> {
        match value {
            Value::String(s) => {
                *s = expand(s, &|name| std::env::var(name).ok())
                    .map_err(|e| format!("key '{key}': {e}"))?;
            }
            Value::Table(t) => {
                for (k, v) in t.iter_mut() {
                    walk(
                        v,
                        &if key.is_empty() {
                            k.clone()
                        } else {
                            format!("{key}.{k}")
                        },
                    )?;
                }
            }
            Value::Array(items) => items.iter_mut().try_for_each(|v| walk(v, key))?,
            _ => {}
        }
        Ok(())
    }
    for (k, v) in table.iter_mut() {
        walk(v, k)?;
    }
    Ok(())
}

/// `text` with each `${NAME}` replaced by `lookup(NAME)` and each `${NAME:-default}` by it or, when
/// unset or empty, the default.
pub fn expand(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> std::result::Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unclosed '${{' in {text:?}"))?;
        let inner = &after[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        let value = lookup(name).filter(|v| !v.is_empty() || default.is_none());
        match (value, default) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => {
                return Err(format!(
                    "environment variable {name} is not set (write ${{{name}:-default}} for a \
                     default)"
                ))
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `data.dir` made absolute against `dir` and normalised (`a/../b` is `b`), so that where a
/// checkout lives does not show in the path more than once.
fn absolute_data_dir(table: &mut Table, dir: &Path) {
    if let Some(Value::String(path)) = table
        .get_mut("data")
        .and_then(Value::as_table_mut)
        .and_then(|d| d.get_mut("dir"))
    {
        *path = absolute(dir, path).display().to_string();
    }
}

/// `path` against `dir` when relative, made absolute and normalised lexically.
pub fn absolute(dir: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        dir.join(p)
    };
    let abs = std::path::absolute(&joined).unwrap_or(joined);
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// The largest experiment or sweep file read (the largest shipped one is under 2 KB): a bigger
/// file is refused before it is read, so that no input costs memory in proportion to its size.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// A text file of at most [`MAX_FILE_BYTES`]; a larger one is an `InvalidInput` error saying so.
pub fn read_bounded(file: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(file)?
        .take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "larger than {} KiB; not an experiment or sweep file",
                MAX_FILE_BYTES >> 10
            ),
        ));
    }
    Ok(text)
}

fn read_text(file: &Path) -> Result<String> {
    read_bounded(file).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            Error::Input(format!("experiment file {} does not exist", file.display()))
        }
        _ if file.is_dir() => Error::Input(format!(
            "{} is a directory; expected an experiment .toml file",
            file.display()
        )),
        std::io::ErrorKind::InvalidData => {
            Error::Input(format!("{} is not valid UTF-8 text", file.display()))
        }
        std::io::ErrorKind::InvalidInput => Error::Input(format!("{}: {e}", file.display())),
        _ => Error::io("read experiment file", file, e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn a_chain_merges_key_by_key_and_a_cycle_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("sub")).unwrap();
        write(
            d,
            "a.toml",
            "name = \"a\"\n[model]\nkind = \"mlp\"\nhidden = [64]\n[optimizer]\nkind = \"sgd\"\n\
             lr = 0.1\nmomentum = 0.9\n[data]\ndir = \"data/x\"\n",
        );
        write(d, "b.toml", "base = \"a.toml\"\n[optimizer]\nlr = 0.05\n");
        let c = write(
            &d.join("sub"),
            "c.toml",
            "base = \"../b.toml\"\nname = \"c\"\n[optimizer]\nkind = \"adam\"\nlr = 0.001\n",
        );
        let t = read(&c).unwrap();
        assert_eq!(t["name"].as_str(), Some("c"));
        assert_eq!(t["model"]["hidden"].as_array().unwrap().len(), 1);
        // The kind changed: the base's optimizer table (momentum) is replaced, not merged.
        assert_eq!(t["optimizer"].as_table().unwrap().len(), 2, "{t}");
        assert!(t.get("base").is_none());
        // data.dir is relative to a.toml, where it was written, and normalised.
        let want = absolute(d, "data/x");
        assert_eq!(t["data"]["dir"].as_str(), Some(want.to_str().unwrap()));
        assert!(!want.to_str().unwrap().contains(".."));

        write(d, "x.toml", "base = \"y.toml\"\nname = \"x\"\n");
        let y = write(d, "y.toml", "base = \"x.toml\"\n");
        let err = read(&y).unwrap_err().to_string();
        assert!(err.contains("cycle") && err.contains("x.toml"), "{err}");
        let missing = write(d, "m.toml", "base = \"nope.toml\"\n");
        let err = read(&missing).unwrap_err().to_string();
        assert!(
            err.contains("key 'base'") && err.contains("nope.toml"),
            "{err}"
        );
    }

    #[test]
    fn environment_variables_expand_with_defaults() {
        let env = |name: &str| (name == "DATA").then(|| "/srv/data".to_string());
        assert_eq!(expand("${DATA}/mnist", &env).unwrap(), "/srv/data/mnist");
        assert_eq!(expand("${NOPE:-/tmp}/x", &env).unwrap(), "/tmp/x");
        assert_eq!(expand("${DATA:-/tmp}", &env).unwrap(), "/srv/data");
        assert_eq!(expand("plain", &env).unwrap(), "plain");
        let err = expand("${NOPE}/x", &env).unwrap_err();
        assert!(err.contains("NOPE is not set"), "{err}");
        assert!(expand("${DATA", &env).unwrap_err().contains("unclosed"));
    }

    #[test]
    fn paths_are_normalised() {
        assert_eq!(
            absolute(Path::new("/r/experiments"), "../data/mnist"),
            PathBuf::from("/r/data/mnist")
        );
        assert_eq!(
            absolute(Path::new("/r"), "/abs/./x/../y"),
            PathBuf::from("/abs/y")
        );
    }
}
