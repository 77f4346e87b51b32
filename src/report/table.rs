//! A small table model rendered as aligned text, CSV, JSON or Markdown.

use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
    Markdown,
}

/// A config value in TOML spelling as JSON, the one form every command prints: numbers, booleans
/// and lists keep their types (`[300, 100]` is a list), strings lose their quotes. (Parsed as
/// the value of a key: alone, `[32]` would read as a TOML table header.)
pub fn toml_json(v: &str) -> Value {
    toml::from_str::<toml::Table>(&format!("v = {v}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .and_then(|t| serde_json::to_value(t).ok())
        .unwrap_or_else(|| Value::String(v.trim_matches('"').to_string()))
}

/// One cell: the text people read, and the value scripts get in JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    pub text: String,
    pub json: Value,
    /// Best value of its column (marked `*` in table and Markdown output).
    pub best: bool,
}

impl Cell {
    pub fn text(s: impl Into<String>) -> Cell {
        let s = s.into();
        Cell {
            json: Value::String(s.clone()),
            text: s,
            best: false,
        }
    }

    pub fn empty() -> Cell {
        Cell {
            text: "-".into(),
            json: Value::Null,
            best: false,
        }
    }

    /// A config value in TOML spelling, typed in JSON by [`toml_json`].
    pub fn toml_value(v: &str) -> Cell {
        Cell {
            text: v.trim_matches('"').to_string(),
            json: toml_json(v),
            best: false,
        }
    }

    pub fn number(x: Option<f64>, decimals: usize) -> Cell {
        match x {
            Some(v) if v.is_finite() => Cell {
                text: format!("{v:.decimals$}"),
                json: Value::from(v),
                best: false,
            },
            _ => Cell::empty(),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Table {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
    /// Machine-only fields per row (same keys in every row), appended to CSV and JSON output:
    /// e.g. standard deviations and the runs behind a grouped row.
    pub extras: Vec<Map<String, Value>>,
    /// The JSON name of each column, where it differs from the header: JSON output uses the
    /// field names of `--json` objects (`test_accuracy`, not the column label `test_acc`).
    pub json_keys: Vec<String>,
}

impl Table {
    /// Removes the columns named (by header or JSON name: `hash`, `ms/step` or `ms_per_step`).
    /// A name that is no column is an error listing the columns.
    pub fn remove_columns(&mut self, names: &[String]) -> Result<(), String> {
        for name in names {
            let at = (0..self.headers.len())
                .find(|&i| &self.headers[i] == name || self.json_keys.get(i) == Some(name))
                .ok_or_else(|| {
                    format!(
                        "--columns -{name}: no such column (the columns: {})",
                        self.headers.join(", ")
                    )
                })?;
            self.headers.remove(at);
            if at < self.json_keys.len() {
                self.json_keys.remove(at);
            }
            for row in &mut self.rows {
                row.remove(at);
            }
        }
        Ok(())
    }

    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Table => self.aligned(),
            Format::Csv => self.csv(),
            Format::Json => self.json(),
            Format::Markdown => self.markdown(),
        }
    }

    /// A cell as the aligned table prints it: escaped to one line (a tag or name from a copied
    /// run cannot break the table or reach the terminal as an escape sequence).
    fn marked(cell: &Cell) -> String {
        let text = runner_spec::text::one_line(&cell.text);
        if cell.best {
            format!("{text}*")
        } else {
            text
        }
    }

    fn aligned(&self) -> String {
        let texts: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| r.iter().map(Self::marked).collect())
            .collect();
        let widths: Vec<usize> = (0..self.headers.len())
            .map(|c| {
                texts
                    .iter()
                    .map(|r| r[c].chars().count())
                    .chain([self.headers[c].chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let numeric: Vec<bool> = (0..self.headers.len())
            .map(|c| {
                self.rows
                    .iter()
                    .all(|r| r[c].json.is_number() || r[c].json.is_null())
                    && !self.rows.is_empty()
            })
            .collect();
        let line = |cells: &[String]| {
            let parts: Vec<String> = cells
                .iter()
                .enumerate()
                .map(|(c, s)| {
                    if numeric[c] {
                        format!("{s:>w$}", w = widths[c])
                    } else {
                        format!("{s:<w$}", w = widths[c])
                    }
                })
                .collect();
            parts.join("  ").trim_end().to_string() + "\n"
        };
        let mut out = line(&self.headers);
        out.push_str(&line(
            &widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>(),
        ));
        for row in &texts {
            out.push_str(&line(row));
        }
        out
    }

    /// CSV carries the raw values (fractions, not percentages) so that scripts can use them.
    fn csv(&self) -> String {
        let plain = |v: &Value| match v {
            Value::Null => String::new(),
            Value::String(s) => s.clone(),
            Value::Array(items) => items
                .iter()
                .map(|i| i.as_str().map_or(i.to_string(), str::to_string))
                .collect::<Vec<_>>()
                .join(" "),
            other => other.to_string(),
        };
        let mut w = csv::Writer::from_writer(Vec::new());
        let extra_keys: Vec<String> = self
            .extras
            .first()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        w.write_record(self.headers.iter().chain(&extra_keys))
            .expect("in-memory CSV");
        for (i, row) in self.rows.iter().enumerate() {
            let extras = self.extras.get(i);
            let extra_values = extra_keys
                .iter()
                .map(|k| extras.and_then(|m| m.get(k)).map_or(String::new(), plain));
            // A list in a cell keeps its TOML spelling (`[300, 100]`), one field.
            let cells = row.iter().map(|c| {
                if c.json.is_array() {
                    c.text.clone()
                } else {
                    plain(&c.json)
                }
            });
            w.write_record(cells.chain(extra_values))
                .expect("in-memory CSV");
        }
        String::from_utf8(w.into_inner().expect("in-memory CSV")).expect("CSV of UTF-8 text")
    }

    fn json(&self) -> String {
        let rows: Vec<Value> = self
            .rows
            .iter()
            .enumerate()
            .map(|(i, row)| {
                let mut obj = Map::new();
                for (j, c) in row.iter().enumerate() {
                    let key = self.json_keys.get(j).unwrap_or(&self.headers[j]);
                    obj.insert(key.clone(), c.json.clone());
                }
                if let Some(extras) = self.extras.get(i) {
                    obj.extend(extras.clone());
                }
                Value::Object(obj)
            })
            .collect();
        serde_json::to_string_pretty(&Value::Array(rows)).expect("JSON") + "\n"
    }

    fn markdown(&self) -> String {
        let esc = |s: &str| s.replace('|', "\\|");
        let mut out = format!(
            "| {} |\n",
            self.headers
                .iter()
                .map(|h| esc(h))
                .collect::<Vec<_>>()
                .join(" | ")
        );
        out.push_str(&format!("|{}\n", " --- |".repeat(self.headers.len())));
        for row in &self.rows {
            let cells: Vec<String> = row
                .iter()
                .map(|c| {
                    if c.best {
                        format!("**{}**", esc(&c.text))
                    } else {
                        esc(&c.text)
                    }
                })
                .collect();
            out.push_str(&format!("| {} |\n", cells.join(" | ")));
        }
        out
    }
}

/// `--columns` split into the columns to add and those to remove (written `-NAME`).
pub fn split_columns(asked: &[String]) -> (Vec<String>, Vec<String>) {
    let (removed, added): (Vec<&String>, Vec<&String>) =
        asked.iter().partition(|c| c.starts_with('-'));
    (
        added.into_iter().cloned().collect(),
        removed
            .into_iter()
            .map(|c| c.trim_start_matches('-').to_string())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 34, finding 3: `show --json` printed `[32]` as `{"32": {}}` (read as a TOML table
    /// header), `ls` and `compare` printed lists as strings.
    #[test]
    fn config_values_become_json_values() {
        assert_eq!(toml_json("0.001"), serde_json::json!(0.001));
        assert_eq!(toml_json("\"adam\""), serde_json::json!("adam"));
        assert_eq!(toml_json("[32]"), serde_json::json!([32]));
        assert_eq!(toml_json("[32, 64]"), serde_json::json!([32, 64]));
        assert_eq!(toml_json("true"), serde_json::json!(true));
    }
}
