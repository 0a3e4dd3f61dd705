use crate::support::Project;

const MINIMAL: &str = "sources:
  shop:
    type: files
    format: csv
    path: data/orders*.csv
    stream: orders
    primary_key: [id]
    write_mode: merge
    on_error: quarantine
";

#[test]
fn unknown_key_names_file_line_column_and_suggests() {
    let p = Project::new(&MINIMAL.replace("write_mode", "wirte_mode"));
    let err = p.fails(&["run"], 2);
    assert!(
        err.contains("sluice.yml:8:5: unknown field `wirte_mode`"),
        "{err}"
    );
    assert!(err.contains("hint: did you mean `write_mode`?"), "{err}");
    assert!(
        err.contains("wirte_mode: merge"),
        "the offending line is shown: {err}"
    );
}

#[test]
fn missing_variable_is_located_and_dotenv_fills_it() {
    let p = Project::new(&MINIMAL.replace("data/orders", "${ORDERS_DIR}/orders"));
    let err = p.fails(&["run"], 2);
    assert!(
        err.contains("sluice.yml:5:11: environment variable `ORDERS_DIR` is not set"),
        "{err}"
    );
    assert!(err.contains(".env"), "{err}");
    p.write(".env", "ORDERS_DIR=data\n");
    p.write("data/orders1.csv", "id,amount\n1,2.5\n");
    p.ok(&["run"]);
    assert_eq!(p.scalar("SELECT count(*) FROM shop.orders"), 1);
    // The environment wins over .env.
    let out = p
        .cmd(&["--json", "run"])
        .env("ORDERS_DIR", "elsewhere")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["streams"][0]["rows_read"], 0, "no file under elsewhere/");
}

#[test]
fn merge_without_key_is_refused_before_reading() {
    let p = Project::new(&MINIMAL.replace("    primary_key: [id]\n", ""));
    let err = p.fails(&["run"], 2);
    assert!(err.contains("sluice.yml:3:5"), "{err}");
    assert!(err.contains("no `primary_key`"), "{err}");
    assert!(err.contains("hint: add `primary_key"), "{err}");
}

#[test]
fn unknown_source_type_suggests() {
    let p = Project::new(&MINIMAL.replace("type: files", "type: file"));
    let err = p.fails(&["run"], 2);
    assert!(
        err.contains("sluice.yml:3:11: source `shop` has unknown type `file`"),
        "{err}"
    );
    assert!(err.contains("did you mean `type: files`"), "{err}");
}

#[test]
fn no_project_gives_a_way_forward() {
    let tmp = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("tables")
        .current_dir(tmp.path())
        .env_remove("SLUICE_PROJECT_DIR")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("No `sluice.yml`") && err.contains("sluice init"),
        "{err}"
    );
}

#[test]
fn unknown_source_and_primary_key_column_are_named() {
    let p = Project::new(MINIMAL);
    p.write("data/orders1.csv", "order_id,amount\n1,2\n");
    let err = p.fails(&["extract", "shp"], 1);
    assert!(
        err.contains("No source named `shp`") && err.contains("did you mean `shop`?"),
        "{err}"
    );
    let err = p.fails(&["extract", "shop"], 1);
    assert!(
        err.contains("primary key column `id` is not among its columns"),
        "{err}"
    );
    assert!(err.contains("order_id"), "{err}");
}

#[test]
fn debug_checks_every_connector() {
    let p = Project::new(&format!(
        "{MINIMAL}destinations:\n  out:\n    type: csv\n    path: out\n"
    ));
    let err = p.run(&["debug"]);
    assert_eq!(err.status.code(), Some(1), "no file matches yet");
    p.write("data/orders1.csv", "id,amount\n1,2\n");
    let out = p.ok(&["debug"]);
    assert!(
        out.contains("source shop") && out.contains("destination out") && !out.contains("FAILED"),
        "{out}"
    );
    let connectors = p.ok(&["connectors"]);
    for kind in ["files", "lake", "parquet", "csv", "jsonl"] {
        assert!(connectors.contains(kind), "{connectors}");
    }
}
