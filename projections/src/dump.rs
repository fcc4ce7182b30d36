//! A canonical text dump of read-model tables, for comparing a live model with a rebuilt one
//! byte for byte and for snapshot tests of replayed fixtures.

use rusqlite::types::ValueRef;
use rusqlite::Connection;
use serde_json::{Map, Value};

/// Every row of `table` as a JSON object, sorted by all columns so the order does not
/// depend on insertion history.
pub fn table_rows(conn: &Connection, table: &str) -> rusqlite::Result<Vec<Value>> {
    let n: usize = conn
        .prepare(&format!("SELECT * FROM \"{table}\" LIMIT 0"))?
        .column_count();
    let order: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
    let mut stmt = conn.prepare(&format!(
        "SELECT * FROM \"{table}\" ORDER BY {}",
        order.join(",")
    ))?;
    let names: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
    let rows = stmt.query_map([], |row| {
        let mut m = Map::new();
        for (i, name) in names.iter().enumerate() {
            let v = match row.get_ref(i)? {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(x) => Value::from(x),
                ValueRef::Real(x) => Value::from(x),
                ValueRef::Text(t) => Value::String(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Blob(b) => Value::String(format!("blob:{}", b.len())),
            };
            m.insert(name.clone(), v);
        }
        Ok(Value::Object(m))
    })?;
    rows.collect()
}

/// All the given tables as one pretty JSON document `{table: [rows]}`.
pub fn dump_tables(conn: &Connection, tables: &[&str]) -> rusqlite::Result<String> {
    let mut m = Map::new();
    for t in tables {
        m.insert((*t).to_string(), Value::Array(table_rows(conn, t)?));
    }
    Ok(serde_json::to_string_pretty(&Value::Object(m)).unwrap_or_default())
}

/// Every projection table.
pub fn dump_all(conn: &Connection) -> rusqlite::Result<String> {
    dump_tables(conn, &crate::all_tables())
}
