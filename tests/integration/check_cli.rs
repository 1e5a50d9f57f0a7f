//! `nodewarden check` end to end through the binary: exit codes, messages on stderr with
//! source, line and key, the annotated output, and secrets never printed.

use std::io::Write;
use std::process::Output;

use crate::harness::{fixture, run_nodewarden};

const SECRET: &str = "hunter2-secret";

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn assert_no_secret(output: &Output) {
    let all = format!("{}{}", text(&output.stdout), text(&output.stderr));
    assert!(!all.contains(SECRET), "the secret leaked:\n{all}");
}

fn temp_file(contents: &[u8]) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().expect("creating a temp file");
    file.write_all(contents).expect("writing a temp file");
    file
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).expect("gzip to memory");
    encoder.finish().expect("gzip to memory")
}

fn check_file(contents: &str) -> (Output, tempfile::NamedTempFile) {
    let file = temp_file(contents.as_bytes());
    let path = file.path().to_str().expect("a UTF-8 temp path").to_string();
    (run_nodewarden(&["check", &path], None), file)
}

#[test]
fn accepts_the_brief_example_and_prints_sources_without_the_secret() {
    let path = fixture("brief-example.toml");
    let output = run_nodewarden(&["check", path.to_str().expect("UTF-8 path")], None);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(stdout.contains(&format!("cluster = \"prod-web\"  # file {}:2:11", path.display())), "{stdout}");
    assert!(stdout.contains("engine-auth-data = \"<redacted>\""), "{stdout}");
    assert!(stdout.contains("allow-remote = false  # default"), "{stdout}");
    assert_no_secret(&output);
}

#[test]
fn accepts_a_file_with_only_the_cluster() {
    let (output, _file) = check_file("[ecs]\ncluster = \"prod-web\"\n");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("gc-start = \"85%\"  # default"));
}

#[test]
fn rejects_each_bad_setting_with_source_line_key_and_exit_1() {
    let cases = [
        ("[ecs]\ncluster = \"c\"\ncolour = \"red\"\n", ":3:1: ecs.colour: unknown key"),
        (
            "[ecs]\ncluster = \"c\"\nagent-image = \"amazon/amazon-ecs-agent:latest\"\n",
            ":3:15: ecs.agent-image: expected a pinned image",
        ),
        (
            "[ecs]\ncluster = \"c\"\n[disk]\ngc-stop = \"90%\"\n",
            ":4:11: disk.gc-stop: expected disk.gc-stop (90%) to be below disk.gc-start (85%)",
        ),
        (
            "[ecs]\ncluster = \"c\"\n[disk]\ngc-start = \"85\"\n",
            ":4:12: disk.gc-start: expected a percentage such as \"85%\", found \"85\"",
        ),
        (
            "[ecs]\ncluster = \"c\"\n[docker]\nlog-max-size = \"sixteen\"\n",
            ":4:16: docker.log-max-size: expected a size",
        ),
        (
            "[ecs]\ncluster = \"c\"\n[ecs.config]\nECS_ENABLE_TASK_IAM_ROLE = \"maybe\"\n",
            ":4:28: ecs.config.ECS_ENABLE_TASK_IAM_ROLE: expected a boolean",
        ),
    ];
    for (contents, expected) in cases {
        let (output, file) = check_file(contents);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{contents}\n{stderr}");
        let location = format!("error: {}{expected}", file.path().display());
        assert!(stderr.contains(&location), "stderr lacks {location:?}:\n{stderr}");
        assert!(text(&output.stdout).is_empty(), "nothing on stdout when invalid");
    }
}

#[test]
fn reports_every_problem_at_once() {
    let (output, _file) = check_file("[ecs]\ncolour = 1\n[disk]\ngc-start = \"85\"\n[docker]\nlog-max-size = \"x\"\n");
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    for key in ["ecs.colour", "ecs.cluster", "disk.gc-start", "docker.log-max-size"] {
        assert!(stderr.contains(key), "{key} missing:\n{stderr}");
    }
    assert!(stderr.contains("settings are invalid: 4 problems"), "{stderr}");
}

#[test]
fn gzip_userdata_of_invalid_toml_is_rejected_naming_userdata() {
    let userdata = temp_file(&gzip(b"[ecs]\ncluster = \"c\"\n[disk\ngc-start = \"85%\"\n"));
    let path = userdata.path().to_str().expect("UTF-8 path");
    let output = run_nodewarden(&["check", "--userdata", path], None);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("error: userdata:3:"), "{stderr}");
    assert!(stderr.contains("invalid TOML"), "{stderr}");
}

#[test]
fn multipart_userdata_overrides_the_file_and_is_named_as_source() {
    let settings = temp_file(b"[ecs]\ncluster = \"from-file\"\n");
    let mime = "Content-Type: multipart/mixed; boundary=\"XX\"\nMIME-Version: 1.0\n\n--XX\n\
                Content-Type: text/cloud-config\n\n#cloud-config\nbootcmd: []\n--XX\n\
                Content-Type: application/toml\n\n[ecs]\ncluster = \"from-userdata\"\n--XX--\n";
    let userdata = temp_file(mime.as_bytes());
    let output = run_nodewarden(
        &[
            "check",
            "--settings",
            settings.path().to_str().expect("UTF-8 path"),
            "--userdata",
            userdata.path().to_str().expect("UTF-8 path"),
        ],
        None,
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("cluster = \"from-userdata\"  # userdata:2:11"), "{}", text(&output.stdout));
}

#[test]
fn engine_auth_data_never_appears_valid_or_not() {
    let valid = format!(
        "[ecs]\ncluster = \"c\"\nengine-auth-type = \"docker\"\nengine-auth-data = '{{\"r\":{{\"username\":\"u\",\"password\":\"{SECRET}\"}}}}'\n"
    );
    let invalid_json =
        format!("[ecs]\ncluster = \"c\"\nengine-auth-type = \"docker\"\nengine-auth-data = \"{SECRET}\"\n");
    let wrong_type =
        format!("[ecs]\ncluster = \"c\"\nengine-auth-type = \"basic\"\nengine-auth-data = '{{\"p\":\"{SECRET}\"}}'\n");
    for (contents, code) in [(valid, 0), (invalid_json, 1), (wrong_type, 1)] {
        let (output, _file) = check_file(&contents);
        assert_eq!(output.status.code(), Some(code), "{}", text(&output.stderr));
        assert_no_secret(&output);
    }
}

#[test]
fn reads_standard_input_with_a_dash() {
    let output = run_nodewarden(&["check", "-"], Some(b"[ecs]\ncluster = \"piped\"\n"));
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("cluster = \"piped\"  # file -:2:11"));
}

#[test]
fn the_default_settings_file_is_taken_under_root() {
    let root = tempfile::tempdir().expect("a temp root");
    let dir = root.path().join("etc/nodewarden");
    std::fs::create_dir_all(&dir).expect("creating etc/nodewarden");
    std::fs::write(dir.join("settings.toml"), "[ecs]\ncluster = \"rooted\"\n").expect("writing settings");
    let output = run_nodewarden(&["check", "--root", root.path().to_str().expect("UTF-8 path")], None);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("cluster = \"rooted\""));
    // Without the file under root, the only problem is the missing cluster.
    let empty = tempfile::tempdir().expect("a temp root");
    let output = run_nodewarden(&["check", "--root", empty.path().to_str().expect("UTF-8 path")], None);
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("ecs.cluster: missing"), "{}", text(&output.stderr));
}

#[test]
fn a_missing_explicit_settings_file_is_an_error_naming_it() {
    let output = run_nodewarden(&["check", "--settings", "/nonexistent/nodewarden.toml"], None);
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("/nonexistent/nodewarden.toml"), "{}", text(&output.stderr));
}

#[test]
fn a_secret_in_a_file_others_can_read_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let settings =
        "[ecs]\ncluster = \"c\"\nengine-auth-type = \"docker\"\nengine-auth-data = '{\"r\":{\"auth\":\"x\"}}'\n";
    let (output, file) = check_file(settings);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(!text(&output.stderr).contains("warning"), "a 0600 file is fine: {}", text(&output.stderr));
    std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
    let output = run_nodewarden(&["check", file.path().to_str().unwrap()], None);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "valid still: {stderr}");
    assert!(stderr.contains("holds ecs.engine-auth-data and is readable by others (mode 0644): chmod 600"), "{stderr}");
    // Without a secret, a readable file is ordinary.
    let (output, plain) = check_file("[ecs]\ncluster = \"c\"\n");
    std::fs::set_permissions(plain.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
    let _ = output;
    let output = run_nodewarden(&["check", plain.path().to_str().unwrap()], None);
    assert!(!text(&output.stderr).contains("warning"), "{}", text(&output.stderr));
}

#[test]
fn an_unchecked_key_whose_name_looks_secret_is_printed_redacted() {
    let settings = format!(
        "[ecs]\ncluster = \"c\"\nconfig-unchecked = [\"ECS_REGISTRY_TOKEN\", \"ECS_DB_PASSWORD\", \"ECS_X_SECRET\", \
         \"ECS_PROXY_AUTH\", \"ECS_NEW_FEATURE\"]\n[ecs.config]\nECS_REGISTRY_TOKEN = \"{SECRET}-1\"\n\
         ECS_DB_PASSWORD = \"{SECRET}-2\"\nECS_X_SECRET = \"{SECRET}-3\"\nECS_PROXY_AUTH = \"{SECRET}-4\"\n\
         ECS_NEW_FEATURE = \"on\"\n"
    );
    let (output, _file) = check_file(&settings);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_no_secret(&output);
    let stdout = text(&output.stdout);
    for key in ["ECS_REGISTRY_TOKEN", "ECS_DB_PASSWORD", "ECS_X_SECRET", "ECS_PROXY_AUTH"] {
        assert!(stdout.contains(&format!("{key} = \"<redacted>\"  # file ")), "{key}:\n{stdout}");
    }
    assert!(stdout.contains("ECS_NEW_FEATURE = \"on\"  # file "), "a plain unchecked key is shown:\n{stdout}");
}
