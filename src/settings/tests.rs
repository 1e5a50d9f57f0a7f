//! Table tests of the whole pipeline: the brief's example, the minimal file, each rejection the
//! foundation issue lists, and a property test that no input panics.

use super::*;
use proptest::prelude::*;
use std::time::Duration;

/// The settings example from the brief (with a JSON engine-auth-data so it validates).
const BRIEF_EXAMPLE: &str = include_str!("../../tests/fixtures/brief-example.toml");

fn file() -> Source {
    Source::File("/etc/nodewarden/settings.toml".into())
}

fn load_file(text: &str) -> Result<Loaded, Vec<Problem>> {
    load(&Layers { file: Some((file(), text)), userdata: None, ..Layers::default() })
}

fn problems_of(text: &str) -> Vec<String> {
    load_file(text).expect_err("settings should be invalid").iter().map(ToString::to_string).collect()
}

#[test]
fn the_brief_example_is_valid() {
    let loaded = load_file(BRIEF_EXAMPLE).unwrap_or_else(|p| panic!("{p:#?}"));
    let s = &loaded.settings;
    assert_eq!(s.ecs.cluster.as_str(), "prod-web");
    assert_eq!(s.ecs.agent_image.to_string(), "amazon/amazon-ecs-agent:v1.105.1");
    assert_eq!(s.ecs.config.get("ECS_ENABLE_TASK_IAM_ROLE").map(String::as_str), Some("true"));
    assert_eq!(s.ecs.engine_auth.as_ref().map(|a| a.kind), Some(EngineAuthType::Docker));
    assert_eq!(s.docker.log_max_size.bytes(), 16 << 20);
    assert_eq!(s.disk.check_interval, Duration::from_secs(1));
    assert_eq!(s.disk.gc_start.value(), 85.0);
    assert_eq!(s.gc.min_image_age, Duration::from_secs(120));
    assert_eq!(s.drain.max_draining_fraction.fraction(), 0.2);
    assert!(!s.health.listen.ip().is_unspecified());
}

#[test]
fn a_file_with_only_the_cluster_is_valid_and_takes_defaults() {
    let loaded = load_file("[ecs]\ncluster = \"prod-web\"\n").unwrap_or_else(|p| panic!("{p:#?}"));
    assert_eq!(loaded.settings.disk.gc_stop.value(), 80.0);
    assert_eq!(loaded.settings.ecs.agent_image.tag.as_deref(), Some("v1.105.1"));
    assert!(loaded.settings.ecs.engine_auth.is_none());
}

#[test]
fn the_cluster_is_required() {
    let problems = load(&Layers::default()).unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_eq!(problems[0].key.as_deref(), Some("ecs.cluster"));
    assert!(problems[0].message.contains("required"));
}

#[test]
fn each_listed_rejection_names_source_line_and_key() {
    let cases: &[(&str, &str, &str)] = &[
        ("[ecs]\ncluster = \"c\"\ncolour = \"red\"\n", ":3:1: ecs.colour:", "unknown key"),
        (
            "[ecs]\ncluster = \"c\"\nagent-image = \"amazon/amazon-ecs-agent:latest\"\n",
            ":3:15: ecs.agent-image:",
            "latest",
        ),
        ("[ecs]\ncluster = \"c\"\nagent-image = \"amazon/amazon-ecs-agent\"\n", ":3:15: ecs.agent-image:", "pinned"),
        ("[ecs]\ncluster = \"c\"\n[disk]\ngc-stop = \"90%\"\n", ":4:11: disk.gc-stop:", "below disk.gc-start (85%)"),
        ("[ecs]\ncluster = \"c\"\n[disk]\ngc-start = \"85\"\n", ":4:12: disk.gc-start:", "expected a percentage"),
        ("[ecs]\ncluster = \"c\"\n[docker]\nlog-max-size = \"sixteen\"\n", ":4:16: docker.log-max-size:", "sixteen"),
        (
            "[ecs]\ncluster = \"c\"\n[ecs.config]\nECS_ENABLE_TASK_IAM_ROLE = \"maybe\"\n",
            ":4:28: ecs.config.ECS_ENABLE_TASK_IAM_ROLE:",
            "expected a boolean",
        ),
    ];
    for (text, location, detail) in cases {
        let problems = problems_of(text);
        assert_eq!(problems.len(), 1, "{text}: {problems:#?}");
        let problem = &problems[0];
        assert!(problem.starts_with("/etc/nodewarden/settings.toml:"), "{problem}");
        assert!(problem.contains(location), "{problem} lacks {location}");
        assert!(problem.contains(detail), "{problem} lacks {detail}");
    }
}

#[test]
fn a_threshold_conflict_blames_the_key_the_higher_layer_set() {
    // The file lowers gc-start below the default gc-stop: gc-start is the one to fix.
    let problems = problems_of("[ecs]\ncluster = \"c\"\n[disk]\ngc-start = \"70%\"\n");
    assert!(
        problems
            .iter()
            .any(|p| p.contains(":4:12: disk.gc-start: expected disk.gc-stop (80%) to be below disk.gc-start (70%)")),
        "{problems:#?}"
    );
}

#[test]
fn every_problem_is_reported_not_only_the_first() {
    let text = "[ecs]\ncluster = \"has space\"\ncolour = 1\n[disk]\ngc-start = \"85\"\ncheck-interval = \"0s\"\n[docker]\nlog-max-files = 0\n";
    let problems = problems_of(text);
    for key in ["ecs.cluster", "ecs.colour", "disk.gc-start", "disk.check-interval", "docker.log-max-files"] {
        assert!(problems.iter().any(|p| p.contains(&format!(" {key}: "))), "{key} missing from {problems:#?}");
    }
}

#[test]
fn userdata_overrides_the_file_and_is_named_as_the_source() {
    let layers = Layers {
        file: Some((file(), "[ecs]\ncluster = \"from-file\"\n")),
        userdata: Some("[disk]\ngc-start = \"eighty\"\n"),
        ..Layers::default()
    };
    let problems: Vec<String> = load(&layers).unwrap_err().iter().map(ToString::to_string).collect();
    assert_eq!(
        problems,
        vec!["userdata:2:12: disk.gc-start: expected a percentage such as \"85%\", found \"eighty\"".to_string()]
    );
    let layers = Layers {
        file: Some((file(), "[ecs]\ncluster = \"from-file\"\n")),
        userdata: Some("[ecs]\ncluster = \"from-userdata\"\n"),
        ..Layers::default()
    };
    assert_eq!(load(&layers).unwrap().settings.ecs.cluster.as_str(), "from-userdata");
}

#[test]
fn health_must_stay_on_loopback_unless_allowed() {
    let problems = problems_of("[ecs]\ncluster = \"c\"\n[health]\nlisten = \"0.0.0.0:51690\"\n");
    assert!(problems[0].contains("health.listen: expected a loopback address"), "{problems:#?}");
    let allowed = load_file("[ecs]\ncluster = \"c\"\n[health]\nlisten = \"0.0.0.0:51690\"\nallow-remote = true\n");
    assert!(allowed.is_ok());
    assert!(load_file("[ecs]\ncluster = \"c\"\n[health]\nlisten = \"[::1]:51690\"\n").is_ok());
}

#[test]
fn the_health_port_stays_out_of_the_dynamic_host_port_range() {
    let inside = "[ecs]\ncluster = \"c\"\n[ecs.config]\nECS_DYNAMIC_HOST_PORT_RANGE = \"30000-40000\"\n";
    let problems = problems_of(inside);
    assert!(
        problems.iter().any(|p| p
            .contains("health.listen: expected a port outside ECS_DYNAMIC_HOST_PORT_RANGE (30000-40000), found 31690")),
        "{problems:#?}"
    );
    let moved = format!("{inside}[health]\nlisten = \"127.0.0.1:9100\"\n");
    assert!(load_file(&moved).is_ok());
    // The default is below every default ephemeral range.
    let default = load_file("[ecs]\ncluster = \"c\"\n").unwrap().settings.health.listen.port();
    assert!(default < 32768, "{default}");
}

#[test]
fn proxy_keys_are_accepted_and_an_unknown_key_only_when_listed() {
    let proxy = "[ecs]\ncluster = \"c\"\n[ecs.config]\nHTTP_PROXY = \"10.0.0.131:3128\"\nNO_PROXY = \"169.254.169.254,169.254.170.2,/var/run/docker.sock\"\n";
    let loaded = load_file(proxy).unwrap();
    assert_eq!(loaded.settings.ecs.config["HTTP_PROXY"], "10.0.0.131:3128");
    let future = "[ecs]\ncluster = \"c\"\n[ecs.config]\nECS_FUTURE_FEATURE = \"on\"\n";
    assert!(problems_of(future)[0].contains("config-unchecked"), "{:#?}", problems_of(future));
    let listed = future.replace("[ecs.config]", "config-unchecked = [\"ECS_FUTURE_FEATURE\"]\n[ecs.config]");
    assert_eq!(load_file(&listed).unwrap().settings.ecs.config["ECS_FUTURE_FEATURE"], "on");
}

#[test]
fn engine_auth_is_checked_and_never_echoed() {
    let secret = "s3cr3t-token-value";
    let half = format!("[ecs]\ncluster = \"c\"\nengine-auth-data = '{{\"r\":\"{secret}\"}}'\n");
    let problems = problems_of(&half);
    assert!(problems[0].contains("together"), "{problems:#?}");
    let bad_json = format!("[ecs]\ncluster = \"c\"\nengine-auth-type = \"docker\"\nengine-auth-data = \"{secret}\"\n");
    let problems = problems_of(&bad_json);
    assert_eq!(problems.len(), 1);
    assert!(problems[0].contains("<redacted>") && !problems[0].contains(secret), "{}", problems[0]);
}

#[test]
fn rendering_redacts_secrets_names_sources_and_reparses_to_the_same_settings() {
    let loaded = load(&Layers {
        file: Some((file(), BRIEF_EXAMPLE)),
        userdata: Some("[disk]\ngc-start = \"86%\"\n"),
        ..Layers::default()
    })
    .unwrap();
    let rendered = loaded.render();
    assert!(!rendered.contains("hunter2-secret"), "{rendered}");
    assert!(
        rendered.contains("engine-auth-data = \"<redacted>\"  # file /etc/nodewarden/settings.toml:7:20"),
        "{rendered}"
    );
    assert!(rendered.contains("gc-start = \"86%\"  # userdata:2:12"), "{rendered}");
    assert!(rendered.contains("allow-remote = false  # default"), "{rendered}");
    assert!(rendered.contains("[ecs.config]\nECS_ENABLE_TASK_IAM_ROLE = \"true\""), "{rendered}");
    // Without secrets the printed settings are themselves valid and equal.
    let plain = load_file("[ecs]\ncluster = \"c\"\n[ecs.config]\nECS_LOGLEVEL = \"debug\"\n").unwrap();
    let again = load_file(&plain.render()).unwrap();
    assert_eq!(plain.settings, again.settings);
}

#[test]
fn an_unchecked_keys_value_is_not_printed_when_its_name_looks_secret() {
    let text = "[ecs]\ncluster = \"c\"\nconfig-unchecked = [\"ECS_REGISTRY_TOKEN\", \"MY_DB_PASSWORD\", \
                \"CLIENT_SECRET\", \"ECS_X_AUTH_HEADER\", \"ECS_FUTURE_FEATURE\"]\n[ecs.config]\n\
                ECS_REGISTRY_TOKEN = \"tok-1\"\nMY_DB_PASSWORD = \"pw-2\"\nCLIENT_SECRET = \"sec-3\"\n\
                ECS_X_AUTH_HEADER = \"auth-4\"\nECS_FUTURE_FEATURE = \"visible-5\"\n";
    let rendered = load_file(text).unwrap().render();
    for (key, value) in [
        ("ECS_REGISTRY_TOKEN", "tok-1"),
        ("MY_DB_PASSWORD", "pw-2"),
        ("CLIENT_SECRET", "sec-3"),
        ("ECS_X_AUTH_HEADER", "auth-4"),
    ] {
        assert!(!rendered.contains(value), "{key}'s value printed:\n{rendered}");
        assert!(rendered.contains(&format!("{key} = \"<redacted>\"")), "{key} not shown redacted:\n{rendered}");
    }
    assert!(rendered.contains("ECS_FUTURE_FEATURE = \"visible-5\""), "{rendered}");
}

#[test]
fn a_proxys_credentials_are_never_printed() {
    let text = "[ecs]\ncluster = \"c\"\n[ecs.config]\nHTTP_PROXY = \"http://bob:hunter2@10.0.0.131:3128\"\n\
                HTTPS_PROXY = \"alice:pw@proxy.corp:8443/\"\nNO_PROXY = \"169.254.169.254\"\n";
    let rendered = load_file(text).unwrap().render();
    assert!(!rendered.contains("hunter2") && !rendered.contains(":pw@"), "{rendered}");
    assert!(rendered.contains("HTTP_PROXY = \"http://<redacted>@10.0.0.131:3128\""), "{rendered}");
    assert!(rendered.contains("HTTPS_PROXY = \"<redacted>@proxy.corp:8443/\""), "{rendered}");
    assert!(rendered.contains("NO_PROXY = \"169.254.169.254\""), "{rendered}");
    // Nor in setup's notes and errors about ecs.config keys.
    assert!(!super::ecs_key_may_show_value("HTTP_PROXY") && super::ecs_key_may_show_value("ECS_LOGLEVEL"));
    for plain in ["10.0.0.131:3128", "http://proxy:3128/path@x"] {
        assert_eq!(super::render::without_credentials(plain), plain);
    }
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
        let _ = load_file(&text);
    }

    #[test]
    fn arbitrary_tomlish_text_never_panics(
        lines in proptest::collection::vec(
            "(\\[(ecs|disk|docker|gc|drain|health|ecs\\.config)\\]|[a-z-]{1,20} = (\"[ -~]{0,20}\"|[0-9]{1,5}|true|\\[\"[a-z:*]{0,10}\"\\])|ECS_[A-Z_]{1,30} = \"[ -~]{0,20}\")",
            0..20,
        )
    ) {
        let _ = load_file(&lines.join("\n"));
    }
}

#[test]
fn ecs_config_errors_never_show_a_value_that_may_be_a_secret() {
    let text = "[ecs]\ncluster = \"c\"\n[ecs.config]\n\
                ECS_ENGINE_AUTH_DATA = \"s3cret-one\"\nECS_MY_REGISTRY_PASSWORD = \"s3cret-two\"\n\
                ECS_CLUSTER = \"s3cret-three\"\nNOT_ECS = \"s3cret-four\"\nECS_LOGLEVEL = \"loud\"\n";
    let problems = problems_of(text);
    assert_eq!(problems.len(), 5, "{problems:#?}");
    for problem in &problems {
        assert!(!problem.contains("s3cret"), "{problem}");
    }
    assert!(problems.iter().any(|p| p.contains("ECS_ENGINE_AUTH_DATA") && p.contains("10 characters (not shown")));
    // A known, ordinary key still says what was found.
    assert!(problems.iter().any(|p| p.contains("ECS_LOGLEVEL") && p.contains("found \"loud\"")), "{problems:#?}");
}

#[test]
fn other_containers_and_their_volumes_are_removed_only_when_opted_in_volumes_only_with_containers() {
    let gc_of = |extra: &str| load_file(&format!("[ecs]\ncluster = \"c\"\n[gc]\n{extra}")).map(|l| l.settings.gc);
    let defaults = gc_of("").unwrap();
    assert!(!defaults.remove_other_containers && !defaults.remove_other_volumes, "both default off");
    let accepted: &[(&str, bool, bool)] = &[
        ("remove-other-containers = false\n", false, false),
        ("remove-other-containers = true\n", true, false),
        ("remove-other-containers = true\nremove-other-volumes = true\n", true, true),
        ("remove-other-containers = true\nremove-other-volumes = false\n", true, false),
    ];
    for (text, containers, volumes) in accepted {
        let gc = gc_of(text).unwrap_or_else(|p| panic!("{text}: {p:#?}"));
        assert_eq!((gc.remove_other_containers, gc.remove_other_volumes), (*containers, *volumes), "{text}");
    }
    let refused: &[(&str, &str)] = &[
        (
            "remove-other-volumes = true\n",
            ":4:24: gc.remove-other-volumes: expected false while [gc] remove-other-containers is false",
        ),
        (
            "remove-other-containers = false\nremove-other-volumes = true\n",
            ":5:24: gc.remove-other-volumes: expected false",
        ),
        ("remove-other-containers = \"yes\"\n", "gc.remove-other-containers:"),
        ("remove-other-volumes = 1\n", "gc.remove-other-volumes:"),
    ];
    for (text, wanted) in refused {
        let problems = problems_of(&format!("[ecs]\ncluster = \"c\"\n[gc]\n{text}"));
        assert!(problems.iter().any(|p| p.contains(wanted)), "{text}: {problems:#?}");
        assert_eq!(problems.len(), 1, "{text}: {problems:#?}");
    }
}

#[test]
fn agent_self_update_is_off_where_nodewarden_runs_the_agent() {
    let with = |agent: &str, value: &str| {
        load_file(&format!(
            "[ecs]\ncluster = \"c\"\nagent = \"{agent}\"\n[ecs.config]\nECS_UPDATES_ENABLED = \"{value}\"\n"
        ))
    };
    let problems = with("nodewarden", "true").unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_eq!(problems[0].key.as_deref(), Some("ecs.config.ECS_UPDATES_ENABLED"));
    assert!(problems[0].message.contains("agent-image"), "{}", problems[0]);
    assert!(with("nodewarden", "false").is_ok());
    assert!(with("ecs-init", "true").is_ok(), "ecs-init's to decide");
}
