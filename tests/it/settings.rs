//! One settings module: nothing else in the crate reads the environment,
//! and every setting is shown in `scorehook serve --help` and in the docs'
//! table, with its variable.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

#[test]
fn no_module_but_settings_reads_the_environment() {
    let mut files = Vec::new();
    rust_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut files);
    assert!(files.len() > 50, "the crate's sources were found");
    let readers: Vec<String> = files
        .iter()
        .filter(|f| !f.ends_with("src/settings.rs"))
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            text.contains("env::var") || text.contains("env::vars") || text.contains("try_from_default_env")
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(readers.is_empty(), "read the environment outside src/settings.rs: {readers:?}");
}

/// Every variable the settings take, as `serve --help` names them.
fn help() -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_scorehook")).args(["serve", "--help"]).output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn every_setting_is_in_serve_help_and_in_the_docs_table() {
    let help = help();
    let docs = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/settings.md")).unwrap();
    let variables = [
        "SCOREHOOK_ADMIN_TOKEN",
        "SCOREHOOK_ALLOW_PRIVATE_TARGETS",
        "SCOREHOOK_INBOUND_PER_SECOND",
        "SCOREHOOK_BODY_READ_TIMEOUT_SECS",
        "SCOREHOOK_RETRY_FIRST_MS",
        "SCOREHOOK_MAX_ATTEMPTS",
        "SCOREHOOK_PUBLIC_URL",
        "SCOREHOOK_ALERT_URL",
        "SCOREHOOK_ALERT_SECRET",
        "SCOREHOOK_LOG_FORMAT",
        "RUST_LOG",
        "SCOREHOOK_TABLE",
        "DYNAMODB_ENDPOINT",
        "SCOREHOOK_HISTORY_DAYS",
        "SCOREHOOK_KMS_KEY_ID",
        "SCOREHOOK_SECRETS_KEY_FILE",
        "SCOREHOOK_HOST",
        "SCOREHOOK_PORT",
        "SCOREHOOK_DATA_DIR",
        "SCOREHOOK_STORE",
        "SCOREHOOK_CONFIG_REFRESH_SECS",
        "SCOREHOOK_COMMIT",
    ];
    for variable in variables {
        assert!(help.contains(&format!("env: {variable}")), "serve --help lacks {variable}:\n{help}");
        assert!(docs.contains(&format!("`{variable}`")), "docs/settings.md lacks {variable}");
    }
    assert!(docs.contains("`SCOREHOOK_ADMIN_TOKEN_PARAMETER`"), "the Lambda-only one is in the table too");
}
