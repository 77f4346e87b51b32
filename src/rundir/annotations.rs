//! `annotations.json`: a run's tags and notes, added by people after the fact (`runner tag`,
//! `runner note`). Not part of the hash and not checked by `verify`: they describe the run,
//! they are not its result.

use super::{meta, RunDir};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const ANNOTATIONS: &str = "annotations.json";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Annotations {
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub notes: Vec<Note>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Note {
    /// When it was written (RFC 3339).
    pub at: String,
    pub text: String,
}

impl Annotations {
    /// The run's annotations; none when it has no file (or an unreadable one).
    pub fn read(dir: &RunDir) -> Annotations {
        std::fs::read_to_string(dir.file(ANNOTATIONS))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    pub fn write(&self, dir: &RunDir) -> Result<()> {
        dir.write_json(ANNOTATIONS, self)
    }

    /// Applies `key=value` (set) or `~key` (remove) to the tags.
    pub fn edit_tag(&mut self, edit: &str) -> Result<()> {
        if let Some(key) = edit.strip_prefix('~') {
            return match self.tags.remove(key) {
                Some(_) => Ok(()),
                None => Err(Error::Input(format!(
                    "tag '{key}' is not set on this run, so there is nothing to remove"
                ))),
            };
        }
        let (key, value) = edit
            .split_once('=')
            .filter(|(k, _)| is_tag_key(k))
            .ok_or_else(|| {
                Error::Input(format!(
                    "tag {edit:?}: expected KEY=VALUE (KEY of A-Z a-z 0-9 - _ .) or ~KEY, e.g. \
                     baseline=yes"
                ))
            })?;
        self.tags.insert(key.to_string(), value.to_string());
        Ok(())
    }

    pub fn add_note(&mut self, text: &str) {
        self.notes.push(Note {
            at: meta::now(),
            text: text.to_string(),
        });
    }

    /// `k=v, k2=v2`, for tables.
    pub fn tag_list(&self) -> String {
        self.tags
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn is_tag_key(k: &str) -> bool {
    !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_set_replace_and_remove() {
        let mut a = Annotations::default();
        a.edit_tag("status=keep").unwrap();
        a.edit_tag("paper=fig3").unwrap();
        a.edit_tag("status=final").unwrap();
        assert_eq!(a.tag_list(), "paper=fig3, status=final");
        a.edit_tag("~paper").unwrap();
        assert_eq!(a.tag_list(), "status=final");
        assert!(a.edit_tag("~paper").is_err());
        assert!(a.edit_tag("no value").is_err());
        assert!(a.edit_tag("=x").is_err());
    }
}
