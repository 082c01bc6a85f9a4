//! Unit tests of `config`.

use super::*;

#[test]
fn tmpfs_specs() {
    assert_eq!(parse_tmpfs("/tmp").unwrap(), TmpfsMount { path: "/tmp".into(), size_bytes: None });
    assert_eq!(
        parse_tmpfs("/scratch:64M").unwrap(),
        TmpfsMount { path: "/scratch".into(), size_bytes: Some(64 << 20) }
    );
    assert!(matches!(parse_tmpfs("tmp"), Err(ConfigError::SandboxPath { .. })));
    assert!(matches!(parse_tmpfs("/a/../b"), Err(ConfigError::SandboxPath { .. })));
    assert!(matches!(parse_tmpfs("/tmp:lots"), Err(ConfigError::Unit(_))));
    assert!(matches!(parse_tmpfs(":5M"), Err(ConfigError::Spec { .. })));
}

#[test]
fn bind_specs() {
    assert_eq!(
        parse_bind("/data:/mnt/data:ro").unwrap(),
        BindMount { source: "/data".into(), target: "/mnt/data".into(), read_only: true }
    );
    assert_eq!(parse_bind("/data").unwrap().target, PathBuf::from("/data"));
    assert!(!parse_bind("/a:/b").unwrap().read_only);
    for bad in ["/a:/b:rx", "/a:/b:ro:x", ":/b", "/a:", "/a:b"] {
        assert!(parse_bind(bad).is_err(), "{bad}");
    }
}

#[test]
fn numbers() {
    assert_eq!(parse_cpu("0.3").unwrap(), 0.3);
    for bad in ["0", "-1", "nan", "inf", "lots"] {
        assert!(parse_cpu(bad).is_err(), "{bad}");
    }
    assert_eq!(parse_pids("20"), Ok(20));
    assert!(parse_pids("0").unwrap_err().contains("at least 1"));
    assert!(parse_pids("-3").unwrap_err().contains("whole number"));
}

#[test]
fn validation_catches_missing_host_paths() {
    let mut config = Config::default();
    config.validate().unwrap();
    config.rootfs = Some("/nonexistent/rootfs".into());
    let err = config.validate().unwrap_err();
    assert!(err.to_string().starts_with("--rootfs '/nonexistent/rootfs' does not exist"), "{err}");

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    config.rootfs = Some(dir.to_path_buf());
    let err = config.validate().unwrap_err();
    assert!(matches!(err, ConfigError::RootfsMountPoint { .. }), "{err}");
    std::fs::create_dir_all(dir.join("proc")).unwrap();
    std::fs::create_dir_all(dir.join("tmp")).unwrap();
    config.validate().unwrap();

    config.rootfs = None;
    config.tmpfs.push(TmpfsMount { path: "/nonexistent-mount-point".into(), size_bytes: None });
    assert!(matches!(config.validate(), Err(ConfigError::TmpfsMountPoint { .. })));
    config.tmpfs.pop();
    config.tmpfs.push(TmpfsMount { path: "/tmp/created/below".into(), size_bytes: None });
    config.validate().unwrap();
    config.hostname = "bad host".into();
    assert!(matches!(config.validate(), Err(ConfigError::Hostname(_))));
}

#[test]
fn file_system_modes_and_writable_paths() {
    assert_eq!(FsMode::parse("ro"), Some(FsMode::ReadOnly));
    assert_eq!(FsMode::parse("host"), Some(FsMode::Host));
    assert_eq!(FsMode::parse("overlay"), Some(FsMode::Overlay));
    assert_eq!(FsMode::parse("overly"), None);

    // Not the working directory: a checkout below /tmp would lie in the sandbox's tmpfs.
    let here = PathBuf::from("/var/tmp");
    let mut config = Config { writable: vec![here.clone()], ..Config::default() };
    assert_eq!(
        config.validate().unwrap_err().to_string(),
        format!("--writable '{}' needs --fs ro or --fs overlay (with --fs host every path is writable already)", here.display())
    );
    config.fs = FsMode::ReadOnly;
    config.validate().unwrap();
    // Under an overlay a writable path is written straight to the host, past the layer.
    config.fs = FsMode::Overlay;
    config.validate().unwrap();
    config.writable = vec!["/nonexistent/writable".into()];
    assert!(config.validate().unwrap_err().to_string().starts_with("--writable path '/nonexistent/writable' does not exist"));
    config.writable = vec!["relative".into()];
    assert!(matches!(config.validate(), Err(ConfigError::SandboxPath { what: "--writable", .. })));
    config.writable = vec!["/tmp/x".into()];
    assert_eq!(
        config.validate().unwrap_err().to_string(),
        "--writable '/tmp/x' lies in the sandbox's tmpfs /tmp, which is writable but hides the host's files there: \
         to write those, bind them instead (--bind /tmp/x)"
    );
}

#[test]
fn overlay_options_need_the_overlay() {
    assert_eq!(HostWrites::parse("discard"), Some(HostWrites::Discard));
    assert_eq!(HostWrites::parse("fail"), Some(HostWrites::Fail));
    assert_eq!(HostWrites::parse("maybe"), None);

    let overlay = Config {
        fs: FsMode::Overlay,
        fs_size: Some(64 << 20),
        host_writes: HostWrites::Fail,
        keep_changes: Some("/nonexistent/kept".into()),
        ..Config::default()
    };
    overlay.validate().unwrap();
    for (config, option) in [
        (Config { fs_size: Some(1 << 20), ..Config::default() }, "--fs-size"),
        (Config { host_writes: HostWrites::Fail, ..Config::default() }, "--host-writes fail"),
        (Config { keep_changes: Some("/x".into()), fs: FsMode::ReadOnly, ..Config::default() }, "--keep-changes"),
    ] {
        assert_eq!(
            config.validate().unwrap_err().to_string(),
            format!("{option} needs --fs overlay: only an overlay run has a layer and a list of changes")
        );
    }
    // `--host-writes discard` is the default, so it needs no overlay.
    Config { host_writes: HostWrites::Discard, ..Config::default() }.validate().unwrap();
}
