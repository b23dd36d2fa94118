//! `Gres` node specifications (`gpu:2`, `gpu:volta:4`, `gpu:2,mps:100`) and the
//! `gres.conf` lines they need.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gres {
    pub name: String,
    pub kind: Option<String>,
    pub count: u64,
}

impl Gres {
    /// The `gres.conf` line for these nodes: GPUs get their device files,
    /// other resources a count.
    pub fn conf_line(&self, node_range: &str) -> String {
        let mut line = format!("NodeName={node_range} Name={}", self.name);
        if let Some(kind) = &self.kind {
            line.push_str(&format!(" Type={kind}"));
        }
        if self.name.eq_ignore_ascii_case("gpu") {
            match self.count {
                1 => line.push_str(" File=/dev/nvidia[0]"),
                n => line.push_str(&format!(" File=/dev/nvidia[0-{}]", n - 1)),
            }
        } else {
            line.push_str(&format!(" Count={}", self.count));
        }
        line
    }
}

/// Parses a comma-separated list of `name[:type]:count` entries.
pub fn parse(value: &str) -> Result<Vec<Gres>, String> {
    value
        .split(',')
        .map(|entry| {
            let fields: Vec<&str> = entry.trim().split(':').collect();
            let (name, kind, count) = match fields.as_slice() {
                [name, count] => (*name, None, *count),
                [name, kind, count] => (*name, Some(*kind), *count),
                _ => return Err(format!("{entry:?} is not name:count or name:type:count")),
            };
            let valid = |s: &str| {
                !s.is_empty()
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            };
            if !valid(name) || kind.is_some_and(|k| !valid(k)) {
                return Err(format!("{entry:?} has an empty or invalid name or type"));
            }
            let count = count
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    format!("{entry:?}: the count {count:?} is not a positive whole number")
                })?;
            Ok(Gres {
                name: name.to_string(),
                kind: kind.map(str::to_string),
                count,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_renders_gres() {
        let list = parse("gpu:2,mps:100").unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(
            list[0].conf_line("g-a-[0-2]"),
            "NodeName=g-a-[0-2] Name=gpu File=/dev/nvidia[0-1]"
        );
        assert_eq!(
            list[1].conf_line("g-a-[0-2]"),
            "NodeName=g-a-[0-2] Name=mps Count=100"
        );
        let volta = parse("gpu:volta:4").unwrap();
        assert_eq!(
            volta[0].conf_line("gpu-p3-0"),
            "NodeName=gpu-p3-0 Name=gpu Type=volta File=/dev/nvidia[0-3]"
        );
        assert_eq!(
            parse("gpu:1").unwrap()[0].conf_line("n"),
            "NodeName=n Name=gpu File=/dev/nvidia[0]"
        );
    }

    #[test]
    fn refuses_malformed_gres() {
        for (value, expected) in [
            ("gpu", "not name:count"),
            ("gpu:a:b:c", "not name:count"),
            ("gpu:two", "not a positive whole number"),
            ("gpu:0", "not a positive whole number"),
            (":2", "empty or invalid"),
        ] {
            let error = parse(value).unwrap_err();
            assert!(error.contains(expected), "{value}: {error}");
        }
    }
}
