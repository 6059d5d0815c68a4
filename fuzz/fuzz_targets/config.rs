//! Config loading (`Config::from_toml`: TOML, `GATEWAY__*` overrides, typed
//! deserialization, `validate`). Leading comment lines `#GATEWAY__A__B=value` are passed
//! as environment overrides, so seeds stay valid TOML. Any text must load or give an
//! error whose line is inside the file.
#![no_main]

use gateway::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let env: Vec<(String, String)> = text
        .lines()
        .map_while(|l| l.strip_prefix('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    match Config::from_toml(text, env.into_iter()) {
        Ok(_) => {}
        Err(e) => {
            if let Some(line) = e.line {
                assert!(line >= 1 && line <= text.lines().count().max(1), "line {line} outside the file: {e}");
            }
            let _ = e.to_string();
        }
    }
});
