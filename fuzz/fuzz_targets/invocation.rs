//! Invocation arguments: no panic, a request or a contract error.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("personal")).unwrap();
    std::fs::create_dir_all(dir.path().join("business")).unwrap();
    let entities = vec!["contacts".to_string(), "tasks".to_string()];
    match cds::request::resolve(&v, &cds::config::Config::default(), &entities, dir.path(), "u") {
        Ok(r) => assert_ne!(r.source.name, r.target.name),
        Err(e) => assert!(matches!(
            e.code,
            cds::Code::InvalidArgument | cds::Code::DomainNotFound | cds::Code::EntityTypeUnsupported
        )),
    }
});
