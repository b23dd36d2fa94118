//! `scontrol show nodes -o` output, parsed tolerantly, and node states as a
//! base state plus a set of flags, for Slurm 20.02 strings (`IDLE~`, `DOWN*`,
//! `+POWER`) and 21.08+ ones (`POWERED_DOWN`, `NOT_RESPONDING`, …) alike.

use std::collections::BTreeSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Flag {
    Cloud,
    Completing,
    Drain,
    Fail,
    NotResponding,
    PoweredDown,
    PoweringUp,
    /// A manual power-up request (`scontrol update state=power_up`), not yet acted on.
    PowerUp,
    PowerDown,
    PoweringDown,
    Maintenance,
    Reserved,
    RebootRequested,
    RebootIssued,
    Planned,
    InvalidReg,
    DynamicFuture,
    DynamicNorm,
    Blocked,
    Resume,
    External,
    PerfCtrs,
    Other,
}

impl Flag {
    fn from_token(token: &str) -> Flag {
        match token {
            "CLOUD" => Flag::Cloud,
            "COMPLETING" => Flag::Completing,
            "DRAIN" | "DRAINED" | "DRAINING" => Flag::Drain,
            "FAIL" | "FAILING" => Flag::Fail,
            "NOT_RESPONDING" | "NO_RESPOND" => Flag::NotResponding,
            // 20.02 printed POWER for a powered-down node.
            "POWERED_DOWN" | "POWER" => Flag::PoweredDown,
            "POWERING_UP" => Flag::PoweringUp,
            "POWER_UP" => Flag::PowerUp,
            "POWER_DOWN" => Flag::PowerDown,
            "POWERING_DOWN" => Flag::PoweringDown,
            "MAINTENANCE" | "MAINT" => Flag::Maintenance,
            "RESERVED" => Flag::Reserved,
            "REBOOT_REQUESTED" => Flag::RebootRequested,
            "REBOOT_ISSUED" => Flag::RebootIssued,
            "PLANNED" => Flag::Planned,
            "INVALID_REG" => Flag::InvalidReg,
            "DYNAMIC_FUTURE" => Flag::DynamicFuture,
            "DYNAMIC_NORM" => Flag::DynamicNorm,
            "BLOCKED" => Flag::Blocked,
            "RESUME" => Flag::Resume,
            "EXTERNAL" => Flag::External,
            "PERFCTRS" => Flag::PerfCtrs,
            _ => Flag::Other,
        }
    }

    /// The flag of one of sinfo's state suffixes, which 20.02 also put on the base state.
    fn from_suffix(c: char) -> Option<Flag> {
        Some(match c {
            '*' => Flag::NotResponding,
            '~' => Flag::PoweredDown,
            '#' => Flag::PoweringUp,
            '!' => Flag::PowerDown,
            '%' => Flag::PoweringDown,
            '$' => Flag::Maintenance,
            '@' => Flag::RebootRequested,
            '^' => Flag::RebootIssued,
            '-' => Flag::Planned,
            _ => return None,
        })
    }
}

/// Whether `word` (any case) is a base state or a flag Slurm prints, such as
/// `idle`, `down` or `powered_down`.
pub fn is_state_word(word: &str) -> bool {
    let word = word.to_ascii_uppercase();
    !matches!(BaseState::parse(&word), BaseState::Other(_))
        || Flag::from_token(&word) != Flag::Other
}

/// The base state Slurm prints first (`IDLE` of `IDLE+CLOUD+POWERED_DOWN`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseState {
    Idle,
    Allocated,
    Mixed,
    Down,
    Completing,
    Future,
    Unknown,
    /// A state this parser does not know, as printed.
    Other(String),
}

impl BaseState {
    fn parse(text: &str) -> BaseState {
        match text {
            "IDLE" => Self::Idle,
            "ALLOCATED" | "ALLOC" => Self::Allocated,
            "MIXED" => Self::Mixed,
            "DOWN" => Self::Down,
            "COMPLETING" => Self::Completing,
            "FUTURE" => Self::Future,
            "UNKNOWN" => Self::Unknown,
            other => Self::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Idle => "IDLE",
            Self::Allocated => "ALLOCATED",
            Self::Mixed => "MIXED",
            Self::Down => "DOWN",
            Self::Completing => "COMPLETING",
            Self::Future => "FUTURE",
            Self::Unknown => "UNKNOWN",
            Self::Other(text) => text,
        }
    }

    pub fn contains(&self, c: char) -> bool {
        self.as_str().contains(c)
    }
}

impl PartialEq<&str> for BaseState {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::fmt::Display for BaseState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeState {
    pub base: BaseState,
    pub flags: BTreeSet<Flag>,
}

impl NodeState {
    pub fn parse(text: &str) -> NodeState {
        let mut tokens = text.trim().split('+');
        let first = tokens.next().unwrap_or_default();
        let base_end = first
            .trim_end_matches(|c| Flag::from_suffix(c).is_some())
            .len();
        let mut flags: BTreeSet<Flag> = first[base_end..]
            .chars()
            .filter_map(Flag::from_suffix)
            .collect();
        flags.extend(tokens.map(Flag::from_token));
        let mut base = BaseState::parse(&first[..base_end].to_ascii_uppercase());
        // 20.02 and 20.11 print MAINT, REBOOT or RESERVED in place of an IDLE
        // (or FUTURE, UNKNOWN) base state; ALLOCATED, MIXED and DOWN keep their own.
        let flag_as_base = match base.as_str() {
            "MAINT" => Some(Flag::Maintenance),
            "REBOOT" => Some(Flag::RebootRequested),
            "RESERVED" | "RESV" => Some(Flag::Reserved),
            _ => None,
        };
        if let Some(flag) = flag_as_base {
            flags.insert(flag);
            base = BaseState::Idle;
        }
        NodeState { base, flags }
    }

    pub fn has(&self, flag: Flag) -> bool {
        self.flags.contains(&flag)
    }

    pub fn is_down(&self) -> bool {
        self.base == BaseState::Down
    }

    pub fn powered_down(&self) -> bool {
        self.has(Flag::PoweredDown)
    }

    pub fn powering_down(&self) -> bool {
        self.has(Flag::PoweringDown)
    }

    pub fn powering_up(&self) -> bool {
        self.has(Flag::PoweringUp)
    }

    /// sinfo's short form (`idle~`, `alloc#`, `down*`, `mix`, `drain~`): the
    /// base state, `drain` for a drained idle node, then the suffix of the
    /// flag sinfo shows first.
    pub fn symbol(&self) -> String {
        let base = match (&self.base, self.has(Flag::Drain)) {
            (BaseState::Idle | BaseState::Down, true) => "drain",
            (BaseState::Idle, false) => "idle",
            (BaseState::Allocated, _) => "alloc",
            (BaseState::Mixed, _) => "mix",
            (BaseState::Down, false) => "down",
            (BaseState::Completing, _) => "comp",
            (BaseState::Future, _) => "futr",
            (BaseState::Unknown, _) => "unk",
            (BaseState::Other(text), _) => return text.to_ascii_lowercase(),
        };
        let suffix = [
            (Flag::PoweringDown, "%"),
            (Flag::PoweredDown, "~"),
            (Flag::PoweringUp, "#"),
            (Flag::NotResponding, "*"),
            (Flag::PowerDown, "!"),
            (Flag::Maintenance, "$"),
            (Flag::RebootRequested, "@"),
            (Flag::RebootIssued, "^"),
            (Flag::Planned, "-"),
        ]
        .iter()
        .find(|(flag, _)| self.has(*flag))
        .map_or("", |(_, suffix)| suffix);
        format!("{base}{suffix}")
    }

    /// Up and usable or in use: not powered or powering down, not powering up, not down.
    pub fn in_service(&self) -> bool {
        matches!(
            self.base,
            BaseState::Idle | BaseState::Allocated | BaseState::Mixed | BaseState::Completing
        ) && !self.powered_down()
            && !self.powering_down()
            && !self.powering_up()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub name: String,
    pub state: NodeState,
    pub state_text: String,
    pub address: Option<String>,
    pub reason: Option<String>,
    /// `InstanceId` (23.11+), when set.
    pub instance_id: Option<String>,
    /// `InstanceType` (23.11+), when set.
    pub instance_type: Option<String>,
}

/// A field's value, unless Slurm printed one of its words for "none".
fn set_value(value: Option<&str>) -> Option<String> {
    value
        .filter(|v| !v.is_empty() && !matches!(*v, "(null)" | "N/A" | "n/a" | "None"))
        .map(str::to_string)
}

/// Splits a `-o` line into `Key=Value` fields. A key is a word of letters,
/// digits and `_` that starts with a capital and follows a space; a value runs
/// to the next key, so it may hold spaces and `=`. The first of a repeated key wins.
fn fields(line: &str) -> Vec<(&str, &str)> {
    let bytes = line.as_bytes();
    let mut starts = Vec::new();
    for (i, _) in line.match_indices('=') {
        let key_start = line[..i].rfind(' ').map_or(0, |s| s + 1);
        let key = &line[key_start..i];
        let is_key = !key.is_empty()
            && key.as_bytes()[0].is_ascii_uppercase()
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && (key_start == 0 || bytes[key_start - 1] == b' ');
        if is_key && starts.last().is_none_or(|&(_, end)| key_start > end) {
            starts.push((key_start, i));
        }
    }
    let mut result: Vec<(&str, &str)> = Vec::new();
    for (n, &(key_start, eq)) in starts.iter().enumerate() {
        let value_end = starts.get(n + 1).map_or(line.len(), |&(next, _)| next);
        let key = &line[key_start..eq];
        if !result.iter().any(|(k, _)| *k == key) {
            result.push((key, line[eq + 1..value_end].trim_end()));
        }
    }
    result
}

/// Parses `scontrol show nodes -o`: one node a line; blank lines and lines
/// without `NodeName=` are skipped.
pub fn parse_nodes(text: &str) -> Vec<NodeInfo> {
    text.lines()
        .filter_map(|line| {
            let fields = fields(line);
            let get = |key: &str| fields.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
            let name = get("NodeName")?;
            let state_text = get("State").unwrap_or("UNKNOWN");
            Some(NodeInfo {
                name: name.to_string(),
                state: NodeState::parse(state_text),
                state_text: state_text.to_string(),
                address: get("NodeAddr").map(str::to_string),
                reason: get("Reason")
                    .filter(|r| !r.is_empty() && *r != "(null)")
                    .map(str::to_string),
                instance_id: set_value(get("InstanceId")),
                instance_type: set_value(get("InstanceType")),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_of_both_versions() {
        let old = NodeState::parse("IDLE~+CLOUD+POWER");
        assert_eq!(old.base, "IDLE");
        assert!(old.powered_down() && old.has(Flag::Cloud));
        let old_down = NodeState::parse("DOWN*+CLOUD");
        assert!(old_down.is_down() && old_down.has(Flag::NotResponding));
        let new = NodeState::parse("DOWN+CLOUD+POWERED_DOWN+NOT_RESPONDING");
        assert!(new.is_down() && new.powered_down() && new.has(Flag::NotResponding));
        let up = NodeState::parse("ALLOCATED+CLOUD+NOT_RESPONDING+POWERING_UP");
        assert!(up.powering_up() && !up.in_service());
        assert!(NodeState::parse("IDLE+CLOUD").in_service());
        assert!(NodeState::parse("MIXED+CLOUD").in_service());
        assert!(!NodeState::parse("IDLE+CLOUD+POWERING_DOWN").in_service());
        assert!(NodeState::parse("IDLE#+CLOUD").powering_up());
    }

    #[test]
    fn symbols_as_sinfo_prints_them() {
        for (state, symbol) in [
            ("IDLE+CLOUD+POWERED_DOWN", "idle~"),
            ("ALLOCATED+CLOUD+NOT_RESPONDING+POWERING_UP", "alloc#"),
            ("IDLE+CLOUD+POWERING_DOWN", "idle%"),
            ("DOWN+CLOUD+POWERED_DOWN+NOT_RESPONDING", "down~"),
            ("DOWN+CLOUD+NOT_RESPONDING", "down*"),
            ("IDLE+CLOUD+DRAIN+POWERED_DOWN", "drain~"),
            ("MIXED+CLOUD", "mix"),
            ("IDLE+CLOUD+POWER_DOWN", "idle!"),
            ("WEIRD+CLOUD", "weird"),
        ] {
            assert_eq!(NodeState::parse(state).symbol(), symbol, "{state}");
        }
    }

    #[test]
    fn the_base_states_of_20_02_that_are_flags() {
        for (text, flag) in [
            ("MAINT+CLOUD", Flag::Maintenance),
            ("MAINT*+CLOUD", Flag::Maintenance),
            ("REBOOT+CLOUD", Flag::RebootRequested),
            ("RESERVED+CLOUD", Flag::Reserved),
        ] {
            let state = NodeState::parse(text);
            assert_eq!(state.base, "IDLE", "{text}");
            assert!(state.has(flag) && state.has(Flag::Cloud), "{text}");
            assert!(!state.powered_down(), "{text}");
        }
        assert!(NodeState::parse("MAINT+CLOUD").in_service());
        assert!(NodeState::parse("MAINT*+CLOUD").has(Flag::NotResponding));
    }

    #[test]
    fn a_power_up_request_is_not_powering_up() {
        let requested = NodeState::parse("IDLE+CLOUD+POWERED_DOWN+POWER_UP");
        assert!(requested.has(Flag::PowerUp));
        assert!(!requested.powering_up());
        assert!(requested.powered_down());
        for (token, flag) in [
            ("DYNAMIC_FUTURE", Flag::DynamicFuture),
            ("DYNAMIC_NORM", Flag::DynamicNorm),
            ("BLOCKED", Flag::Blocked),
            ("RESUME", Flag::Resume),
            ("EXTERNAL", Flag::External),
            ("PERFCTRS", Flag::PerfCtrs),
            ("PLANNED", Flag::Planned),
            ("REBOOT_ISSUED", Flag::RebootIssued),
            ("INVALID_REG", Flag::InvalidReg),
        ] {
            let state = NodeState::parse(&format!("IDLE+CLOUD+{token}"));
            assert!(state.has(flag), "{token}");
            assert!(!state.has(Flag::Other), "{token}");
        }
    }

    #[test]
    fn lines_with_spaces_and_equals_in_reasons() {
        let text = "\
NodeName=aws-node-0 Arch=x86_64 CoresPerSocket=1 CPUAlloc=0 CPUTot=2 AvailableFeatures=(null) NodeAddr=127.1.0.4 NodeHostName=ip-127-1-0-4 Version=22.05.8 State=DOWN+CLOUD+POWERED_DOWN+NOT_RESPONDING ThreadsPerCore=1 Partitions=aws BootTime=None LastBusyTime=2026-11-21T12:00:00 Reason=ResumeTimeout reached State=IDLE x=y [slurm@2026-11-21T12:01:00]

garbage line without the key
NodeName=aws-node-1 State=IDLE+CLOUD+POWERED_DOWN Reason=(null) SomeFutureField=1
";
        let nodes = parse_nodes(text);
        assert_eq!(nodes.len(), 2);
        assert_eq!(nodes[0].name, "aws-node-0");
        assert_eq!(
            nodes[0].state_text,
            "DOWN+CLOUD+POWERED_DOWN+NOT_RESPONDING"
        );
        assert_eq!(nodes[0].address.as_deref(), Some("127.1.0.4"));
        assert!(
            nodes[0]
                .reason
                .as_deref()
                .unwrap()
                .starts_with("ResumeTimeout reached")
        );
        assert_eq!(nodes[1].reason, None);
        assert!(nodes[1].state.powered_down());
    }

    proptest::proptest! {
        #[test]
        fn any_text_parses_without_panic(text in "\\PC{0,200}", line in "(NodeName|State|Reason|NodeAddr|=| |[a-zA-Z0-9_+~*#%$@^!-]){0,60}") {
            for input in [text.as_str(), line.as_str()] {
                for node in parse_nodes(input) {
                    proptest::prop_assert!(input.contains(&node.name));
                    proptest::prop_assert!(!node.state.base.contains('+'));
                }
            }
        }
    }

    #[test]
    fn real_output_of_slurm_22_05() {
        // Captured from Debian's slurmctld 22.05.8 in the end-to-end suite.
        let nodes = parse_nodes(include_str!("testdata/show-nodes-22.05.txt"));
        let summary: Vec<(&str, &str, bool)> = nodes
            .iter()
            .map(|n| {
                (
                    n.name.as_str(),
                    n.state.base.as_str(),
                    n.state.powered_down(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("big-a-0", "IDLE", true),
                ("fail-a-0", "IDLE", true),
                ("ice-a-0", "IDLE", false),
                ("stuck-a-0", "IDLE", true),
                ("ice-a-0", "DOWN", true),
                ("notag-a-0", "ALLOCATED", false),
                ("notag-a-0", "IDLE", false),
            ]
        );
        assert_eq!(
            nodes[1].reason.as_deref(),
            Some(
                "(Code:InvalidLaunchTemplateId.NotFound)Failure when resuming nodes [root@2026-11-22T03:04:54]"
            )
        );
        assert!(nodes[2].state.powering_down());
        assert!(nodes[3].state.has(Flag::NotResponding));
        assert!(
            nodes[4]
                .reason
                .as_deref()
                .unwrap()
                .contains("Held until 2026-11-22T03:07:41")
        );
        assert!(nodes[5].state.in_service());
        assert_eq!(nodes[5].address.as_deref(), Some("127.1.0.11"));
    }

    /// (name, base state, flags) of each node in a fixture.
    fn summary(text: &str) -> Vec<(String, String, Vec<Flag>)> {
        parse_nodes(text)
            .into_iter()
            .map(|n| {
                let mut flags: Vec<Flag> = n.state.flags.iter().copied().collect();
                flags.retain(|f| *f != Flag::Cloud);
                (n.name, n.state.base.as_str().to_string(), flags)
            })
            .collect()
    }

    #[test]
    fn real_output_of_slurm_24_11() {
        // Captured from Debian 13's slurmctld 24.11.5 in the end-to-end suite.
        let nodes = parse_nodes(include_str!("testdata/show-nodes-24.11.txt"));
        assert!(nodes.len() > 20);
        assert!(nodes.iter().all(|n| n.state.has(Flag::Cloud)));
        let burst = nodes.iter().find(|n| n.name == "burst-a-0").unwrap();
        assert!(burst.state.powering_down(), "{burst:?}");
        assert_eq!(burst.address.as_deref(), Some("127.1.0.4"));
        let recorded: Vec<&NodeInfo> = nodes.iter().filter(|n| n.instance_id.is_some()).collect();
        assert!(!recorded.is_empty());
        for node in recorded {
            assert!(
                node.instance_id.as_deref().unwrap().starts_with("i-"),
                "{node:?}"
            );
            assert_eq!(node.instance_type.as_deref(), Some("t3.micro"), "{node:?}");
            // The record outlives the power-down.
            assert!(
                node.state.powered_down() || node.state.powering_down(),
                "{node:?}"
            );
        }
        let failed = nodes.iter().find(|n| n.name == "fail-a-0").unwrap();
        assert!(
            failed
                .reason
                .as_deref()
                .unwrap()
                .starts_with("(Code:InvalidLaunchTemplateId.NotFound)")
        );
        assert!(
            nodes
                .iter()
                .filter(|n| n.instance_id.is_none())
                .all(|n| n.instance_type.is_none())
        );
    }

    #[test]
    fn real_output_of_slurm_26_05() {
        // Sampled from Debian's slurmctld 26.05.5 during a run of the end-to-end
        // suite: one line per state seen, so a node may stand more than once.
        let nodes = parse_nodes(include_str!("testdata/show-nodes-26.05.txt"));
        assert_eq!(nodes.len(), 12);
        assert!(nodes.iter().all(|n| n.state.has(Flag::Cloud)));
        assert!(nodes.iter().any(|n| n.state.powering_up()));
        assert!(nodes.iter().any(|n| n.state.powering_down()));
        assert!(
            nodes
                .iter()
                .any(|n| n.state.is_down() && n.state.has(Flag::PowerDown))
        );
        let recorded: Vec<&NodeInfo> = nodes.iter().filter(|n| n.instance_id.is_some()).collect();
        assert!(!recorded.is_empty());
        for node in recorded {
            assert!(
                node.instance_id.as_deref().unwrap().starts_with("i-"),
                "{node:?}"
            );
            assert_eq!(node.instance_type.as_deref(), Some("t3.micro"), "{node:?}");
        }
        let failed = nodes.iter().find(|n| n.name == "fail-a-0").unwrap();
        assert!(
            failed
                .reason
                .as_deref()
                .unwrap()
                .starts_with("(Code:InvalidLaunchTemplateId.NotFound)")
        );
    }

    #[test]
    fn output_of_slurm_23_02_to_25_05() {
        use Flag::*;
        let expect = |text: &str, wanted: &[(&str, &str, &[Flag])]| {
            let wanted: Vec<(String, String, Vec<Flag>)> = wanted
                .iter()
                .map(|(n, b, f)| (n.to_string(), b.to_string(), f.to_vec()))
                .collect();
            assert_eq!(summary(text), wanted);
        };
        expect(
            include_str!("testdata/show-nodes-23.02.txt"),
            &[
                ("aws-node-0", "IDLE", &[PoweredDown]),
                // ResumeTimeout since 23.02.5: no NOT_RESPONDING.
                ("aws-node-1", "DOWN", &[PoweredDown]),
                ("aws-node-2", "MIXED", &[]),
                ("aws-node-3", "ALLOCATED", &[NotResponding, PoweringUp]),
            ],
        );
        expect(
            include_str!("testdata/show-nodes-23.11.txt"),
            &[
                ("aws-node-0", "IDLE", &[PoweredDown]),
                ("aws-node-1", "ALLOCATED", &[]),
                ("aws-node-2", "DOWN", &[PoweredDown]),
            ],
        );
        expect(
            include_str!("testdata/show-nodes-24.05.txt"),
            &[
                ("aws-node-0", "IDLE", &[PoweredDown, PowerDown]),
                ("aws-node-1", "IDLE", &[PoweringDown]),
                ("aws-node-2", "IDLE", &[PoweredDown, PowerUp]),
            ],
        );
        expect(
            include_str!("testdata/show-nodes-25.05.txt"),
            &[
                ("aws-node-0", "IDLE", &[NotResponding, PoweredDown]),
                ("aws-node-1", "MIXED", &[]),
                ("aws-node-2", "DOWN", &[PoweredDown]),
            ],
        );
        let modern = parse_nodes(include_str!("testdata/show-nodes-23.11.txt"));
        assert_eq!(modern[0].instance_id, None);
        assert_eq!(
            modern[1].instance_id.as_deref(),
            Some("i-0123456789abcdef0")
        );
        assert_eq!(modern[1].instance_type.as_deref(), Some("c5.xlarge"));
        assert_eq!(
            modern[2].reason.as_deref(),
            Some("ResumeTimeout reached [slurm@2026-11-21T12:01:00]")
        );
        assert_eq!(
            modern[2].instance_id.as_deref(),
            Some("i-0fedcba9876543210")
        );
    }

    #[test]
    fn output_of_slurm_20_02() {
        // The 20.02 strings the original plugin was written for.
        let nodes = parse_nodes(include_str!("testdata/show-nodes-20.02.txt"));
        assert_eq!(nodes.len(), 5);
        assert!(nodes[0].state.powered_down() && nodes[0].state.base == "IDLE");
        assert!(nodes[1].state.is_down() && nodes[1].state.has(Flag::NotResponding));
        assert_eq!(
            nodes[1].reason.as_deref(),
            Some("Not responding [slurm@2020-09-11T10:00:00]")
        );
        assert!(nodes[2].state.has(Flag::NotResponding) && !nodes[2].state.is_down());
        assert!(nodes[3].state.has(Flag::Drain) && nodes[3].state.powered_down());
        assert!(nodes[4].state.has(Flag::Completing) && nodes[4].state.has(Flag::Drain));
        assert_eq!(nodes[0].address.as_deref(), Some("aws-node-0"));
    }
}
