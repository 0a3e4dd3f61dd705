//! `sluice sql`, `tables`, `state`, `discover`.

use crate::support::{Project, orders_csv};

const P: &str = "sources:\n  s:\n    type: files\n    path: data/*.csv\n    stream: t\n";

fn loaded() -> Project {
    let p = Project::new(P);
    p.write("data/a.csv", orders_csv(0, 3));
    p.ok(&["run"]);
    p
}

#[test]
fn sql_output_formats() {
    let p = loaded();
    let q = "SELECT id, name FROM s.t ORDER BY id LIMIT 2";
    assert_eq!(
        p.ok(&["sql", q, "--format", "csv"]),
        "id,name\n0,name 0\n1,name 1\n"
    );
    assert_eq!(
        p.ok(&["sql", q, "--format", "jsonl"]),
        "{\"id\":0,\"name\":\"name 0\"}\n{\"id\":1,\"name\":\"name 1\"}\n"
    );
    let json: serde_json::Value =
        serde_json::from_str(&p.ok(&["sql", q, "--format", "json"])).unwrap();
    assert_eq!(json[1]["name"], "name 1");
    let json = p.json(&["sql", q]);
    assert_eq!(
        json.as_array().unwrap().len(),
        2,
        "--json means --format json"
    );
    let table = p.ok(&["sql", q]);
    assert!(
        table.contains("| id | name   |") && table.contains("(2 rows)"),
        "{table}"
    );
    let err = p.fails(&["sql", "SELECT * FROM s.nope"], 1);
    assert!(err.contains("nope") && err.contains("hint:"), "{err}");
}

#[test]
fn tables_lists_rows_versions_and_last_load() {
    let p = loaded();
    let t = p.json(&["tables"]);
    assert_eq!(t[0]["name"], "s.t");
    assert_eq!(t[0]["rows"], 3);
    assert_eq!(t[0]["columns"], 3);
    assert!(t[0]["last_run_id"].is_string());
    assert!(t[0]["last_load"].is_string());
    let text = p.ok(&["tables"]);
    assert!(text.contains("s.t") && text.contains("version"), "{text}");
}

#[test]
fn state_show_clear_and_set() {
    let p = loaded();
    let st = p.json(&["state", "show"]);
    assert_eq!(st[0]["stream_id"], "s.t");
    assert!(st[0]["value"]["files"]["data/a.csv"].is_object(), "{st:#}");
    // Clear: the next run reads everything again (append: rows twice).
    p.ok(&["state", "clear", "s.t"]);
    let s = p.run_json(&[], "s.t");
    assert_eq!(s["rows_read"], 3);
    assert_eq!(p.scalar("SELECT count(*) FROM s.t"), 6);
    // Set: pretend a.csv was never loaded but keep b.csv's entry out.
    p.write("data/b.csv", orders_csv(3, 4));
    let state = serde_json::json!({"version": 1, "files": {}}).to_string();
    p.ok(&["state", "set", "s.t", &state]);
    let s = p.run_json(&[], "s.t");
    assert_eq!(s["rows_read"], 4);
    // Errors are named.
    let err = p.fails(&["state", "set", "s.x", "{}"], 1);
    assert!(
        err.contains("No stream `s.x`") && err.contains("did you mean `s.t`?"),
        "{err}"
    );
    let err = p.fails(&["state", "set", "s.t", "{nope"], 1);
    assert!(err.contains("not valid JSON"), "{err}");
    let err = p.fails(&["state", "clear"], 1);
    assert!(err.contains("--all"), "{err}");
}

#[test]
fn discover_shows_columns() {
    let p = Project::new(P);
    p.write("data/a.csv", "id,at,ok\n1,2024-01-01T00:00:00Z,true\n");
    let d = p.json(&["discover", "s"]);
    let cols: Vec<(String, String)> = d[0]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().into(),
                c["type"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        cols,
        vec![
            ("id".into(), "int64".into()),
            ("at".into(), "timestamptz".into()),
            ("ok".into(), "bool".into())
        ]
    );
    let text = p.ok(&["discover", "s"]);
    assert!(
        text.contains("s.t") && text.contains("timestamptz"),
        "{text}"
    );
}
