//! `sluice init [DIR]`: a new project with a small sample data set.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::cli::InitArgs;
use crate::output::{Reporter, UserError};
use crate::project::PROJECT_FILE;

const SLUICE_YML: &str = r#"# Sluice project file. Reference: docs/config.md in the Sluice repository.
# Every stream lands in the lake (.sluice/lake, Delta tables) as <source>.<stream>.
sources:
  shop:
    type: files
    format: csv
    path: data/orders*.csv
    stream: orders
    primary_key: [id]
    write_mode: merge          # upsert on the key: re-loading a changed file updates rows
    on_error: quarantine       # bad rows go to shop.orders__quarantine with their reason
    checks:                    # data quality: on every batch before it is written, on the
                               # table after each load, and by `sluice check` (docs/quality.md)
      - not_null: [customer_id, amount]
      - accepted_values: {column: status, values: [pending, shipped, delivered, cancelled, returned]}
      - range: {column: amount, min: 0}
      - unique: id

  crm:
    type: files
    path: data/customers.jsonl # JSON Lines; the format comes from the extension
    primary_key: [id]
    write_mode: overwrite      # a snapshot: each run replaces the table in one commit

# Where else streams can land (`sluice extract crm --to export`).
destinations:
  export:
    type: parquet
    path: export
"#;

const PROJECT_README: &str = r#"# A Sluice project

```sh
sluice run                 # load every source into the lake (.sluice/lake)
sluice tables              # what the lake holds
sluice sql "SELECT status, count(*) AS orders, sum(amount) AS revenue FROM shop.orders GROUP BY status"
sluice sql "SELECT line, \"column\", value, reason FROM shop.orders__quarantine"
sluice check               # the data-quality checks, a report in .sluice/reports/checks/
sluice run                 # again: nothing new, nothing loaded (files are tracked in state)
sluice extract crm --to export    # the customers as Parquet files under export/ (own bookmark)
sluice state show          # bookmarks per stream
```

- `sluice.yml` declares the sources; `data/` holds the sample files.
- `data/orders_2024_02.csv` re-sends order 5 with a new status (merge updates
  it) and has one row whose amount is `n/a` (it lands in quarantine, the load
  goes on).
- Add a file `data/orders_2024_03.csv` and run again: only the new file is read.
- Secrets: write `${VAR}` in `sluice.yml`; values come from the environment or
  a `.env` file next to it (never committed: see `.gitignore`).
"#;

const GITIGNORE: &str = ".sluice/\n.env\nexport/\n";

const STATUSES: [&str; 5] = ["delivered", "shipped", "pending", "cancelled", "returned"];
const NOTES: [&str; 6] = [
    "",
    "",
    "gift wrap",
    "leave at door, please",
    "\"fragile\" item",
    "café order",
];

/// Deterministic sample rows (a tiny LCG, so every project gets the same data).
fn orders_csv(first_id: u64, rows: u64, month: u32, extra: &str) -> String {
    let mut out = String::from("id,customer_id,order_ts,status,amount,quantity,note,updated_at\n");
    let mut x: u64 = 42 + first_id;
    let mut next = || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        x >> 33
    };
    for id in first_id..first_id + rows {
        let customer = 1 + next() % 12;
        let day = 1 + next() % 28;
        let hour = next() % 24;
        let status = STATUSES[(next() % 5) as usize];
        let amount = (next() % 50_000) as f64 / 100.0 + 1.0;
        let qty = 1 + next() % 5;
        let note = NOTES[(next() % 6) as usize];
        let note = if note.contains('"') || note.contains(',') {
            format!("\"{}\"", note.replace('"', "\"\""))
        } else {
            note.to_string()
        };
        let _ = writeln!(
            out,
            "{id},{customer},2024-{month:02}-{day:02}T{hour:02}:15:00Z,{status},{amount:.2},{qty},{note},2024-{month:02}-{day:02}T{hour:02}:45:00Z"
        );
    }
    out.push_str(extra);
    out
}

fn customers_jsonl() -> String {
    let names = [
        "Ada", "Grace", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Margaret", "Niklaus",
        "Radia", "Tony", "Leslie",
    ];
    let cities = ["Lyon", "Oslo", "Porto", "Kraków", "Austin", "Kyoto"];
    let mut out = String::new();
    for (i, n) in names.iter().enumerate() {
        let _ = writeln!(
            out,
            r#"{{"id": {}, "name": "{n}", "email": "{}@example.com", "address": {{"city": "{}", "zip": "{:05}"}}, "tags": ["{}"], "signed_up": "2023-0{}-1{}"}}"#,
            i + 1,
            n.to_lowercase(),
            cities[i % cities.len()],
            10_000 + i * 137,
            if i % 3 == 0 { "vip" } else { "retail" },
            1 + i % 9,
            i % 10
        );
    }
    out
}

/// Write the sample project into `dir`.
pub fn scaffold(dir: &Path, force: bool) -> Result<()> {
    if dir.join(PROJECT_FILE).exists() && !force {
        return Err(UserError::error(
            format!("`{}` already has a `{PROJECT_FILE}`", dir.display()),
            Some("use another folder, or `--force` to overwrite the sample files".to_string()),
        ));
    }
    std::fs::create_dir_all(dir.join("data"))
        .with_context(|| format!("Cannot create `{}`", dir.display()))?;
    let files = [
        (PROJECT_FILE, SLUICE_YML.to_string()),
        ("README.md", PROJECT_README.to_string()),
        (".gitignore", GITIGNORE.to_string()),
        (".env.example", "# Copy to .env and fill in; referenced from sluice.yml as ${NAME}.\n# APP_DB_URL=postgres://user:password@localhost:5432/app\n".to_string()),
        ("data/orders_2024_01.csv", orders_csv(1, 20, 1, "")),
        (
            "data/orders_2024_02.csv",
            orders_csv(21, 20, 2, "5,3,2024-01-05T10:15:00Z,returned,49.90,1,customer changed their mind,2024-02-03T09:00:00Z\n41,7,2024-02-27T11:15:00Z,pending,n/a,2,amount missing in export,2024-02-27T11:45:00Z\n"),
        ),
        ("data/customers.jsonl", customers_jsonl()),
    ];
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::write(&path, text)
            .with_context(|| format!("Cannot write `{}`", path.display()))?;
    }
    Ok(())
}

/// `sluice init`.
pub fn init(args: &InitArgs, reporter: &Reporter) -> Result<ExitCode> {
    scaffold(&args.dir, args.force)?;
    let shown = args.dir.display();
    if reporter.json() {
        crate::outln!(
            "{}",
            serde_json::json!({"project": args.dir, "created": true})
        );
    } else {
        crate::outln!("Created a Sluice project in {shown} (sluice.yml, data/, README.md).");
        crate::outln!("Next: cd {shown} && sluice run && sluice tables");
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_data_is_deterministic_and_parses() {
        assert_eq!(orders_csv(1, 20, 1, ""), orders_csv(1, 20, 1, ""));
        let text = orders_csv(1, 3, 1, "");
        assert_eq!(text.lines().count(), 4);
        let p =
            sluice_core::config::parse_project(SLUICE_YML, Path::new("sluice.yml"), None, |_| None)
                .unwrap();
        assert_eq!(p.config.all_streams().unwrap().len(), 2);
    }
}
