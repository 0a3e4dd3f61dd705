//! Other destinations than the lake.

use crate::support::{Project, orders_csv};

const P: &str = "sources:
  s:
    type: files
    path: data/*.csv
    stream: t
destinations:
  pq: { type: parquet, path: out/pq }
  text: { type: csv, path: out/csv }
  lines: { type: jsonl, path: out/jsonl }
";

fn parts(p: &Project, dir: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(p.path().join(dir))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("part-"))
        .collect();
    v.sort();
    v
}

#[test]
fn extract_to_file_destinations() {
    let p = Project::new(P);
    p.write("data/a.csv", orders_csv(0, 5));
    for (dest, dir, ext) in [
        ("pq", "out/pq/s/t", "parquet"),
        ("text", "out/csv/s/t", "csv"),
        ("lines", "out/jsonl/s/t", "jsonl"),
    ] {
        let v = p.json(&["extract", "s", "--to", dest, "--full-refresh"]);
        assert_eq!(v["streams"][0]["rows_written"], 5, "{v:#}");
        assert_eq!(v["streams"][0]["destination"], ext);
        let files = parts(&p, dir);
        assert_eq!(files.len(), 1, "{files:?}");
        assert!(files[0].ends_with(ext));
    }
    let csv = std::fs::read_to_string(
        p.path()
            .join("out/csv/s/t")
            .join(&parts(&p, "out/csv/s/t")[0]),
    )
    .unwrap();
    assert!(csv.starts_with("id,name,amount\n0,name 0,0.5\n"), "{csv}");
    // The lake was not touched.
    assert_eq!(p.json(&["tables"]).as_array().unwrap().len(), 0);
}

#[test]
fn merge_into_files_is_refused_with_a_hint() {
    let p = Project::new(&P.replace(
        "    stream: t\n",
        "    stream: t\n    primary_key: [id]\n    write_mode: merge\n",
    ));
    p.write("data/a.csv", orders_csv(0, 5));
    let v = p.json(&["extract", "s", "--to", "pq"]);
    assert_eq!(v["streams"][0]["status"], "failed");
    assert!(
        v["streams"][0]["error"]
            .as_str()
            .unwrap()
            .contains("does not support"),
        "{v:#}"
    );
    assert!(
        v["streams"][0]["hint"].as_str().unwrap().contains("lake"),
        "{v:#}"
    );
}

#[test]
fn lake_at_another_folder() {
    let p = Project::new(&format!("lake:\n  url: warehouse/lake\n{P}"));
    p.write("data/a.csv", orders_csv(0, 3));
    p.ok(&["run"]);
    assert!(p.path().join("warehouse/lake/s/t/_delta_log").exists());
    assert_eq!(p.scalar("SELECT count(*) FROM s.t"), 3);
}

#[test]
fn each_destination_keeps_its_own_bookmark() {
    let p = Project::new(P);
    p.write("data/a.csv", orders_csv(0, 4));
    p.ok(&["run"]);
    // The lake has the rows; exporting to files still sends all of them.
    let v = p.json(&["extract", "s", "--to", "text"]);
    assert_eq!(v["streams"][0]["rows_written"], 4, "{v:#}");
    // And each keeps its own position.
    p.write("data/b.csv", orders_csv(4, 6));
    let v = p.json(&["extract", "s", "--to", "text"]);
    assert_eq!(v["streams"][0]["rows_written"], 2);
    let v = p.json(&["run"]);
    assert_eq!(v["streams"][0]["rows_written"], 2);
    let states = p.json(&["state", "show", "s.t"]);
    let keys: Vec<&str> = states
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stream_id"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["s.t", "s.t@text"]);
    p.ok(&["state", "clear", "s.t@text"]);
    let v = p.json(&["extract", "s", "--to", "text"]);
    assert_eq!(v["streams"][0]["rows_written"], 6);
}
