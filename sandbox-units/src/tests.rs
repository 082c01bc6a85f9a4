use super::*;

#[test]
fn tolerances_are_a_share_plus_an_amount() {
    assert_eq!(parse_tolerance("25%"), Ok(Tolerance { percent: 25, bytes: 0 }));
    assert_eq!(parse_tolerance("4M"), Ok(Tolerance { percent: 0, bytes: 4 << 20 }));
    assert_eq!(parse_tolerance("1M + 10%"), Ok(Tolerance::DEFAULT));
    assert_eq!(Tolerance::DEFAULT.allowed(10 << 20), 12 << 20);
    assert_eq!(Tolerance::DEFAULT.to_string(), "10 % + 1.0 MiB");
    assert_eq!(Tolerance { percent: 1, bytes: 1 }.allowed(u64::MAX), u64::MAX);
    for (input, reason) in [
        ("10%+20%", "it has two percentages"),
        ("1M+2M", "it has two sizes"),
        ("1.5%", "'1.5%' is not a whole percentage"),
        ("20000%", "the percentage is above 10000"),
        ("10%+1Q", "the size '1Q': unknown unit"),
        ("", "the size '': it is empty"),
    ] {
        let err = parse_tolerance(input).unwrap_err().to_string();
        assert!(err.starts_with(&format!("invalid tolerance '{input}': {reason}; ")), "{err}");
    }
}

#[test]
fn sizes_use_binary_units() {
    assert_eq!(parse_size("4096"), Ok(4096));
    assert_eq!(parse_size("512K"), Ok(512 << 10));
    assert_eq!(parse_size("100M"), Ok(100 << 20));
    assert_eq!(parse_size("100m"), Ok(100 << 20));
    assert_eq!(parse_size("100MiB"), Ok(100 << 20));
    assert_eq!(parse_size("100 MB"), Ok(100 << 20));
    assert_eq!(parse_size("1G"), Ok(1 << 30));
    assert_eq!(parse_size("2T"), Ok(2 << 40));
}

#[test]
fn bad_sizes_name_the_cause() {
    let cases = [
        ("100Q", "unknown unit"),
        ("", "it is empty"),
        ("-5M", "it is negative"),
        ("1.5G", "fractions are not supported"),
        ("M", "it does not start with a number"),
        ("0", "it must be greater than zero"),
        ("99999999999999999999", "the number is too large"),
        ("20000000T", "it is too large"),
    ];
    for (input, reason) in cases {
        let err = parse_size(input).unwrap_err();
        assert_eq!(err, UnitError::Size { input: input.into(), reason }, "{input}");
        assert!(err.to_string().contains("e.g. 100M"), "{err}");
    }
}

#[test]
fn durations_need_a_unit() {
    assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
    assert_eq!(parse_duration("3s"), Ok(Duration::from_secs(3)));
    assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
    assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
    for (input, reason) in [
        ("soon", "it does not start with a number"),
        ("3", "the unit is missing"),
        ("3d", "unknown unit"),
        ("0s", "it must be greater than zero"),
        ("1.5s", "fractions are not supported"),
    ] {
        assert_eq!(
            parse_duration(input),
            Err(UnitError::Duration { input: input.into(), reason }),
            "{input}"
        );
    }
}

#[test]
fn human_formats() {
    assert_eq!(format_bytes(512), "512 B");
    assert_eq!(format_bytes(3 << 20 | 100 << 10), "3.1 MiB");
    assert_eq!(format_duration(Duration::from_millis(12)), "12 ms");
    assert_eq!(format_duration(Duration::from_millis(3040)), "3.0 s");
}
