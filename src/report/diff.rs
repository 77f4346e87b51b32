//! `runner diff`: resolved-config differences between two runs, key by key.

use super::runs::Run;
use super::table::{Cell, Table};
use std::collections::BTreeSet;

pub fn diff(a: &Run, b: &Run) -> Table {
    let keys: BTreeSet<&String> = a.config.keys().chain(b.config.keys()).collect();
    let mut table = Table {
        headers: vec!["key".into(), a.id.clone(), b.id.clone()],
        ..Table::default()
    };
    for key in keys {
        let (va, vb) = (a.config.get(key), b.config.get(key));
        if va != vb {
            let cell = |v: Option<&String>| {
                v.map_or_else(|| Cell::text("(absent)"), |v| Cell::toml_value(v))
            };
            table
                .rows
                .push(vec![Cell::text(key.as_str()), cell(va), cell(vb)]);
        }
    }
    table
}
