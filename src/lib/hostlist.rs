//! Slurm hostlist expressions, expanded and compressed natively.
//!
//! Follows `src/common/hostlist.c`: names are separated by commas or
//! whitespace; a bracket holds comma-separated numbers or `lo-hi` ranges whose
//! printed width is the width of `lo` (`node[099-100]` gives `node099`,
//! `node100`); several bracket groups form a cartesian product, the last one
//! varying fastest; one range holds at most 65536 hosts.

use std::collections::BTreeMap;

/// Slurm's `MAX_RANGE`: the most hosts one bracket range may name.
pub const MAX_RANGE: u64 = 64 * 1024;
/// A guard against expressions whose cartesian product would exhaust memory.
pub const MAX_EXPANDED: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid hostlist {expression:?}: {reason}")]
pub struct HostlistError {
    pub expression: String,
    pub reason: String,
}

fn invalid(expression: &str, reason: impl Into<String>) -> HostlistError {
    HostlistError {
        expression: expression.to_string(),
        reason: reason.into(),
    }
}

/// One piece of a host pattern: literal text, or the numbers of a bracket.
enum Segment<'a> {
    Literal(&'a str),
    Numbers(Vec<String>),
}

/// Expands a hostlist expression into host names, in Slurm's order. Duplicates
/// are kept, as `scontrol show hostnames` keeps them.
pub fn expand(expression: &str) -> Result<Vec<String>, HostlistError> {
    expand_at_most(expression, MAX_EXPANDED)
}

/// The same, refused before any work beyond `limit` names: for expressions
/// read from a tag or a file, which anyone who can write them could make name
/// a million hosts in a few characters.
pub fn expand_at_most(expression: &str, limit: usize) -> Result<Vec<String>, HostlistError> {
    let limit = limit.min(MAX_EXPANDED);
    let mut hosts = Vec::new();
    for pattern in split_top_level(expression)? {
        let segments = parse_pattern(expression, pattern)?;
        let mut partial = vec![String::new()];
        for segment in &segments {
            partial = match segment {
                Segment::Literal(text) => {
                    partial.iter_mut().for_each(|p| p.push_str(text));
                    partial
                }
                Segment::Numbers(numbers) => {
                    if partial
                        .len()
                        .saturating_mul(numbers.len())
                        .saturating_add(hosts.len())
                        > limit
                    {
                        return Err(invalid(
                            expression,
                            format!("expands to more than {limit} hosts"),
                        ));
                    }
                    partial
                        .iter()
                        .flat_map(|p| numbers.iter().map(move |n| format!("{p}{n}")))
                        .collect()
                }
            };
        }
        if partial.len().saturating_add(hosts.len()) > limit {
            return Err(invalid(
                expression,
                format!("expands to more than {limit} hosts"),
            ));
        }
        hosts.extend(partial);
    }
    Ok(hosts)
}

/// Splits at commas and whitespace that are outside brackets.
fn split_top_level(expression: &str) -> Result<Vec<&str>, HostlistError> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0usize;
    for (i, c) in expression.char_indices() {
        match c {
            '[' if depth > 0 => return Err(invalid(expression, "nested '['")),
            '[' => depth = 1,
            ']' if depth == 0 => return Err(invalid(expression, "']' without '['")),
            ']' => depth = 0,
            ',' | ' ' | '\t' | '\n' if depth == 0 => {
                if i > start {
                    parts.push(&expression[start..i]);
                }
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    if depth > 0 {
        return Err(invalid(expression, "'[' without ']'"));
    }
    if start < expression.len() {
        parts.push(&expression[start..]);
    }
    Ok(parts)
}

fn parse_pattern<'a>(
    expression: &str,
    pattern: &'a str,
) -> Result<Vec<Segment<'a>>, HostlistError> {
    let mut segments = Vec::new();
    let mut rest = pattern;
    while let Some(open) = rest.find('[') {
        if open > 0 {
            segments.push(Segment::Literal(&rest[..open]));
        }
        // split_top_level has checked that every '[' has its ']'.
        let close = open + rest[open..].find(']').unwrap_or(rest.len() - open);
        segments.push(Segment::Numbers(parse_bracket(
            expression,
            &rest[open + 1..close],
        )?));
        rest = &rest[close + 1..];
    }
    if !rest.is_empty() {
        segments.push(Segment::Literal(rest));
    }
    Ok(segments)
}

fn parse_bracket(expression: &str, inside: &str) -> Result<Vec<String>, HostlistError> {
    if inside.trim().is_empty() {
        return Err(invalid(expression, "empty brackets"));
    }
    let mut numbers = Vec::new();
    for item in inside.split(',') {
        let (lo, hi) = range_bounds(expression, item)?;
        let parse = |s: &str| {
            s.parse::<u64>()
                .map_err(|_| invalid(expression, format!("{s:?} is too large")))
        };
        let (low, high) = (parse(lo)?, parse(hi)?);
        if low > high {
            return Err(invalid(expression, format!("range {item:?} is reversed")));
        }
        // `high - low` cannot wrap once low <= high; `+ 1` could, so compare before adding.
        let too_large = (high - low) >= MAX_RANGE;
        let total = numbers
            .len()
            .saturating_add(usize::try_from(high - low).unwrap_or(usize::MAX));
        if too_large || total >= MAX_EXPANDED {
            return Err(invalid(
                expression,
                format!("range too large: {item:?} names more than {MAX_RANGE} hosts"),
            ));
        }
        let width = lo.len();
        numbers.extend((low..=high).map(|n| format!("{n:0width$}")));
    }
    Ok(numbers)
}

/// The two ends of one bracket item (`7` or `lo-hi`). Slurm also reads
/// whitespace, a leading `+` and an open end (`1-`) here; slurm-ec2 refuses
/// them, since slurmctld never writes them and their width is ambiguous.
fn range_bounds<'a>(expression: &str, item: &'a str) -> Result<(&'a str, &'a str), HostlistError> {
    let refuse = |why: &str| Err(invalid(expression, format!("{item:?} {why}")));
    if item.contains(char::is_whitespace) {
        return refuse("holds whitespace, which is not accepted inside brackets");
    }
    if item.contains('+') {
        return refuse("holds a '+', which is not accepted inside brackets");
    }
    let (lo, hi) = item.split_once('-').unwrap_or((item, item));
    if !lo.is_empty() && hi.is_empty() {
        return refuse("is an open range; write both ends (lo-hi)");
    }
    let is_number = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !is_number(lo) || !is_number(hi) {
        return refuse("is not a number or a range");
    }
    Ok((lo, hi))
}

/// Compresses host names into the shortest expression of this form that Slurm
/// accepts: names sorted and de-duplicated, grouped by prefix, each number
/// keeping its zero padding (`node[099-100]`, `aws-node-[0-2,7]`).
pub fn compress<S: AsRef<str>>(names: &[S]) -> String {
    let mut by_prefix: BTreeMap<&str, Vec<(u64, &str)>> = BTreeMap::new();
    let mut literals: Vec<&str> = Vec::new();
    for name in names {
        let name = name.as_ref();
        let digits_at = name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
        let (prefix, digits) = name.split_at(digits_at);
        match digits.parse::<u64>() {
            Ok(value) if !prefix.is_empty() => {
                by_prefix.entry(prefix).or_default().push((value, digits))
            }
            _ => literals.push(name),
        }
    }
    let mut parts: Vec<(String, String)> = literals
        .into_iter()
        .map(|l| (l.to_string(), l.to_string()))
        .collect();
    for (prefix, mut numbers) in by_prefix {
        numbers.sort_unstable();
        numbers.dedup();
        let runs = consecutive_runs(&numbers);
        let text = if let [(lo, hi)] = runs.as_slice()
            && lo == hi
        {
            format!("{prefix}{lo}")
        } else {
            let items: Vec<String> = runs
                .iter()
                .map(|(lo, hi)| {
                    if lo == hi {
                        lo.to_string()
                    } else {
                        format!("{lo}-{hi}")
                    }
                })
                .collect();
            format!("{prefix}[{}]", items.join(","))
        };
        parts.push((prefix.to_string(), text));
    }
    parts.sort();
    parts.dedup();
    parts
        .into_iter()
        .map(|(_, text)| text)
        .collect::<Vec<_>>()
        .join(",")
}

/// Groups sorted numbers into runs that print back as they were written: a run
/// has the width of its first number when that one is zero-padded, else 1.
fn consecutive_runs<'a>(numbers: &[(u64, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut runs: Vec<(&str, &str)> = Vec::new();
    let mut current: Option<(usize, u64, &str, &str)> = None;
    for &(value, digits) in numbers {
        if let Some((width, last, lo, _)) = current
            && value == last + 1
            && format!("{value:0width$}") == digits
        {
            current = Some((width, value, lo, digits));
            continue;
        }
        if let Some((_, _, lo, hi)) = current {
            runs.push((lo, hi));
        }
        let width = if digits.len() > 1 && digits.starts_with('0') {
            digits.len()
        } else {
            1
        };
        current = Some((width, value, digits, digits));
    }
    if let Some((_, _, lo, hi)) = current {
        runs.push((lo, hi));
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[test]
    fn expands_the_table_of_cases() {
        let cases: &[(&str, &[&str])] = &[
            ("aws-node-0", &["aws-node-0"]),
            ("a,b , c", &["a", "b", "c"]),
            ("a[1-3,5]", &["a1", "a2", "a3", "a5"]),
            ("node[099-100]", &["node099", "node100"]),
            ("node[08-10]", &["node08", "node09", "node10"]),
            ("node[8-10]", &["node8", "node9", "node10"]),
            (
                "r[1-2]n[1-3]",
                &["r1n1", "r1n2", "r1n3", "r2n1", "r2n2", "r2n3"],
            ),
            (
                "aws-node-[0-2]",
                &["aws-node-0", "aws-node-1", "aws-node-2"],
            ),
            ("x-[1-2],y-[3],z", &["x-1", "x-2", "y-3", "z"]),
            (
                "aws-a-[0-1] aws-b-2\taws-c-3",
                &["aws-a-0", "aws-a-1", "aws-b-2", "aws-c-3"],
            ),
            ("n[0001-0003]-int", &["n0001-int", "n0002-int", "n0003-int"]),
            ("a1,a1", &["a1", "a1"]),
            ("", &[]),
        ];
        for (expression, expected) in cases {
            assert_eq!(
                expand(expression).unwrap(),
                *expected,
                "expanding {expression:?}"
            );
        }
    }

    #[test]
    fn rejects_malformed_expressions() {
        let cases = [
            ("node[3-1]", "reversed"),
            ("node[1-3", "without ']'"),
            ("node1-3]", "without '['"),
            ("node[]", "empty"),
            ("node[a-b]", "not a number"),
            ("node[1--3]", "not a number"),
            ("node[1-2[3]]", "nested"),
            ("node[0-65536]", "range too large"),
            ("aws-ondemand-[0-18446744073709551615]", "range too large"),
            ("n[0-18446744073709551616]", "too large"),
            ("n[ 1-2]", "whitespace"),
            ("n[1, 2]", "whitespace"),
            ("n[+1]", "'+'"),
            ("n[1-]", "open range"),
            ("node[0-65535]x[0-65535]", "more than"),
        ];
        for (expression, reason) in cases {
            let error = expand(expression).unwrap_err();
            assert!(error.reason.contains(reason), "{expression}: {error}");
            assert_eq!(error.expression, expression);
        }
        assert_eq!(expand("node[0-65535]").unwrap().len(), 65536);
    }

    #[test]
    fn compresses_the_table_of_cases() {
        let cases: &[(&[&str], &str)] = &[
            (&["aws-node-0"], "aws-node-0"),
            (
                &["aws-node-2", "aws-node-0", "aws-node-1", "aws-node-7"],
                "aws-node-[0-2,7]",
            ),
            (&["node099", "node100"], "node[099-100]"),
            (&["node08", "node09", "node10"], "node[08-10]"),
            (&["node8", "node9", "node10"], "node[8-10]"),
            (&["n07", "n7"], "n[07,7]"),
            (&["b-1", "a-3", "a-4", "c"], "a-[3-4],b-1,c"),
            (&["a1", "a1", "a2"], "a[1-2]"),
        ];
        for (names, expected) in cases {
            assert_eq!(compress(names), *expected, "compressing {names:?}");
        }
        assert_eq!(compress::<&str>(&[]), "");
    }

    fn name_strategy() -> impl Strategy<Value = String> {
        (
            prop::sample::select(vec!["aws-node-", "n", "r1n", "gpu-a-", "x"]),
            0u64..400,
            0usize..5,
        )
            .prop_map(|(prefix, n, width)| format!("{prefix}{n:0width$}"))
    }

    proptest! {
        #[test]
        fn any_expression_expands_or_is_refused_with_a_reason(
            text in "\\PC{0,40}",
            shaped in "([a-z]{0,3}(\\[[0-9, +-]{0,12}\\]?)?[,]?){0,4}",
        ) {
            for expression in [text.as_str(), shaped.as_str()] {
                match expand(expression) {
                    Ok(hosts) => prop_assert!(hosts.len() <= MAX_EXPANDED),
                    Err(error) => {
                        prop_assert_eq!(&error.expression, expression);
                        prop_assert!(!error.reason.is_empty());
                    }
                }
            }
        }

        #[test]
        fn compress_then_expand_gives_the_same_set(names in prop::collection::vec(name_strategy(), 0..60)) {
            let expression = compress(&names);
            let expanded: BTreeSet<String> = expand(&expression).unwrap().into_iter().collect();
            let original: BTreeSet<String> = names.into_iter().collect();
            prop_assert_eq!(expanded, original);
        }
    }
}
