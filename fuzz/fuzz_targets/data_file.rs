//! Data-file parsing and item validation: no panic, success or DATA_FORMAT_INVALID.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../../plugins/contacts/schema.json")).unwrap();
    match cds::store::parse_entity_file(std::path::Path::new("f.json"), "contacts", data) {
        Ok(f) => {
            for it in f.items {
                let _ = cds::schema::violations(&schema, &serde_json::Value::Object(it));
            }
        }
        Err(e) => assert_eq!(e.code, cds::Code::DataFormatInvalid),
    }
});
