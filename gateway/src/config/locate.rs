//! Finds the line of a config field in the TOML text, so errors found after parsing
//! (cross-field rules, values from `validate`) can still point at a line.
//!
//! It understands what config files use: `[table]`, `[[array.of.tables]]`, dotted keys
//! and `key = value` lines. Fields inside inline tables or arrays resolve to the line of
//! their enclosing key.

/// One step of a field path: a key or an array index.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

fn parse_path(path: &str) -> Vec<Seg> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (key, rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            out.push(Seg::Key(key.to_string()));
        }
        for idx in rest.split('[').filter(|s| !s.is_empty()) {
            if let Ok(n) = idx.trim_end_matches(']').parse() {
                out.push(Seg::Index(n));
            }
        }
    }
    out
}

fn split_key(k: &str) -> Vec<String> {
    k.split('.').map(|s| s.trim().trim_matches('"').trim_matches('\'').to_string()).collect()
}

/// 1-based line number of the deepest part of `path` found in `text`.
pub fn line_of(text: &str, path: &str) -> Option<usize> {
    let target = parse_path(path);
    if target.is_empty() {
        return None;
    }
    let mut counts: Vec<(Vec<Seg>, usize)> = Vec::new();
    let mut table: Vec<Seg> = Vec::new();
    let mut best: Option<(usize, usize)> = None; // (matched depth, line)
    let consider = |full: &[Seg], line: usize, best: &mut Option<(usize, usize)>| {
        let depth = full.iter().zip(&target).take_while(|(a, b)| a == b).count();
        if depth == full.len() && depth > 0 && best.is_none_or(|(d, _)| depth > d) {
            *best = Some((depth, line));
        }
    };
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let lineno = i + 1;
        if line.starts_with("[[") {
            let name = line.trim_start_matches('[').split(']').next().unwrap_or("");
            let keys = split_key(name);
            let (last, parents) = keys.split_last().map_or((String::new(), &[][..]), |(l, p)| (l.clone(), p));
            let mut resolved = resolve(parents, &counts);
            resolved.push(Seg::Key(last));
            let n = match counts.iter_mut().find(|(p, _)| *p == resolved) {
                Some((_, n)) => {
                    *n += 1;
                    *n
                }
                None => {
                    counts.push((resolved.clone(), 0));
                    0
                }
            };
            table = resolved;
            table.push(Seg::Index(n));
            consider(&table, lineno, &mut best);
        } else if line.starts_with('[') {
            let name = line.trim_start_matches('[').split(']').next().unwrap_or("");
            table = resolve(&split_key(name), &counts);
            consider(&table, lineno, &mut best);
        } else if let Some((k, _)) = line.split_once('=') {
            if line.starts_with('#') {
                continue;
            }
            let mut full = table.clone();
            full.extend(split_key(k).into_iter().map(Seg::Key));
            consider(&full, lineno, &mut best);
        }
    }
    best.map(|(_, l)| l)
}

/// Inserts the current index after every prefix that is an array of tables.
fn resolve(keys: &[String], counts: &[(Vec<Seg>, usize)]) -> Vec<Seg> {
    let mut out = Vec::new();
    for k in keys {
        out.push(Seg::Key(k.clone()));
        if let Some((_, n)) = counts.iter().find(|(p, _)| *p == out) {
            out.push(Seg::Index(*n));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"
[node]
listen = "0.0.0.0:8080"

[[services]]
name = "a"

[[services]]
name = "b"
endpoints = ["http://x"]
[services.cache]
ttl = "5s"

[rate_limit.policies.default]
limit = 5
"#;

    #[test]
    fn finds_keys_in_tables_and_arrays_of_tables() {
        assert_eq!(line_of(TEXT, "node.listen"), Some(3));
        assert_eq!(line_of(TEXT, "services[1].name"), Some(9));
        assert_eq!(line_of(TEXT, "services[1].endpoints[0]"), Some(10));
        assert_eq!(line_of(TEXT, "services[1].cache.ttl"), Some(12));
        assert_eq!(line_of(TEXT, "services[0].prefix"), Some(5));
        assert_eq!(line_of(TEXT, "rate_limit.policies.default.limit"), Some(15));
        assert_eq!(line_of(TEXT, "redis.url"), None);
    }
}
