use crate::support::Project;

#[test]
fn quickstart_creates_loads_and_queries() {
    let tmp = tempfile::tempdir().unwrap();
    let demo = tmp.path().join("demo");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["--no-progress", "quickstart"])
        .arg(&demo)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("revenue"), "{stdout}");
    assert!(stdout.contains("shop.orders"), "{stdout}");
    // Query the demo project itself.
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("--project-dir")
            .arg(&demo)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(
        run(&["sql", "SELECT count(*) FROM shop.orders", "-f", "csv"]),
        "count(*)\n40\n"
    );
    assert_eq!(
        run(&[
            "sql",
            "SELECT status FROM shop.orders WHERE id = 5",
            "-f",
            "csv"
        ]),
        "status\nreturned\n",
        "the second file's row 5 merged over the first's"
    );
    assert_eq!(
        run(&[
            "sql",
            "SELECT file, line, \"column\", value FROM shop.orders__quarantine",
            "-f",
            "csv"
        ]),
        "file,line,column,value\ndata/orders_2024_02.csv,23,amount,n/a\n"
    );
    assert_eq!(
        run(&["sql", "SELECT count(*) FROM crm.customers", "-f", "csv"]),
        "count(*)\n12\n"
    );
    // Running it again reuses the project and loads nothing new.
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["--no-progress", "--json", "run", "--project-dir"])
        .arg(&demo)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(v["streams"][0]["rows_read"], 0);
}

#[test]
fn the_minimal_project_file_works_as_written() {
    let p = Project::new(
        "sources:
  shop:
    type: files
    format: csv
    path: data/orders*.csv
    stream: orders
    primary_key: [id]
    write_mode: merge
    on_error: quarantine
",
    );
    p.write(
        "data/orders1.csv",
        "id,status,amount\n1,new,10.5\n2,new,20\n",
    );
    p.write(
        "data/orders2.csv",
        "id,status,amount\n2,paid,20\n3,new,x\n4,new,7.25\n",
    );
    let s = p.run_json(&[], "shop.orders");
    assert_eq!(s["status"], "success");
    assert_eq!(s["table"], "shop.orders");
    assert_eq!(
        (
            s["rows_read"].as_u64(),
            s["rows_written"].as_u64(),
            s["rows_quarantined"].as_u64()
        ),
        (Some(5), Some(4), Some(1))
    );
    assert_eq!(
        p.query("SELECT id, status, amount FROM shop.orders ORDER BY id"),
        vec![
            vec!["1", "new", "10.5"],
            vec!["2", "paid", "20.0"],
            vec!["4", "new", "7.25"]
        ]
    );
    let q = p.query("SELECT file, line, \"column\", value, reason FROM shop.orders__quarantine");
    assert_eq!(q[0][..4], ["data/orders2.csv", "3", "amount", "x"]);
    assert!(q[0][4].starts_with("expected float64"), "{q:?}");
    // The summary table and the quarantine pointer are printed for people.
    p.write("data/orders3.csv", "id,status,amount\n5,new,1\n");
    let out = p.ok(&["run"]);
    assert!(out.contains("shop.orders") && out.contains("ok"), "{out}");
}

#[test]
fn init_scaffolds_a_project_that_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("new");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["init"])
        .arg(&dir)
        .status()
        .unwrap();
    assert!(status.success());
    for f in [
        "sluice.yml",
        "README.md",
        ".gitignore",
        "data/orders_2024_01.csv",
        "data/customers.jsonl",
    ] {
        assert!(dir.join(f).exists(), "{f}");
    }
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["init"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
}
