//! `CPUs`, `RealMemory` and `Gres` of a node group from its instance types
//! (`generate-conf --from-ec2`): the smallest of the group's types, so that
//! Slurm never schedules more than any of its instances holds. What the
//! group's `SlurmSpecifications` say explicitly always wins.

use std::collections::BTreeMap;

use crate::config::{Config, MemoryHeadroom, NodeGroup};
use crate::ec2::InstanceTypeSpec;

/// Keys that describe a node's CPUs: with any of them, `CPUs` is not added.
const CPU_KEYS: [&str; 5] = [
    "CPUs",
    "Boards",
    "Sockets",
    "CoresPerSocket",
    "ThreadsPerCore",
];

/// A node group's instance types could not all be described.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeSpecError {
    #[error(
        "{group}: LaunchTemplateOverrides[{index}] names no InstanceType and the launch template names none: give the override an InstanceType, or CPUs and RealMemory in SlurmSpecifications"
    )]
    NoInstanceType { group: String, index: usize },
    #[error("{group}: EC2 does not describe the instance type {instance_type}")]
    Unknown {
        group: String,
        instance_type: String,
    },
    #[error(
        "{group}: EC2 describes {instance_type} with {what}, which no instance has: refused (give CPUs, RealMemory and Gres in SlurmSpecifications)"
    )]
    Implausible {
        group: String,
        instance_type: String,
        what: String,
    },
}

/// The most vCPUs, MiB of memory and GPUs an instance type is believed to
/// have: several times the largest EC2 offers, far below what would make
/// Slurm's configuration or gres.conf absurd.
const MAX_VCPUS: u32 = 4096;
const MAX_MEMORY_MIB: u64 = 64 * 1024 * 1024;
const MAX_GPUS: u32 = 64;

/// What EC2 said of a type, bounded: a description is a hint, not a fact.
fn implausible(spec: &InstanceTypeSpec) -> Option<String> {
    let gpus: u64 = spec.gpus.iter().map(|(_, n)| u64::from(*n)).sum();
    if !(1..=MAX_VCPUS).contains(&spec.vcpus) {
        Some(format!("{} vCPUs", spec.vcpus))
    } else if !(1..=MAX_MEMORY_MIB).contains(&spec.memory_mib) {
        Some(format!("{} MiB of memory", spec.memory_mib))
    } else if gpus > u64::from(MAX_GPUS) {
        Some(format!("{gpus} GPUs"))
    } else {
        None
    }
}

/// What a node group takes from its types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Derived {
    pub cpus: u32,
    pub real_memory: u64,
    /// `gpu:<type>:<count>` (or `gpu:<count>` when the types' GPU models differ).
    pub gres: Option<String>,
    /// What differs between the types, worth the administrator's eye.
    pub notes: Vec<String>,
}

/// The smallest CPUs, memory (less `headroom`) and GPUs across `types`.
/// `types` is not empty.
pub fn derive(types: &[&InstanceTypeSpec], headroom: MemoryHeadroom) -> Derived {
    let mut notes = Vec::new();
    let cpus = types.iter().map(|t| t.vcpus).min().unwrap_or(0);
    let memory = types.iter().map(|t| t.memory_mib).min().unwrap_or(0);
    let names = |pick: &dyn Fn(&InstanceTypeSpec) -> String| {
        types.iter().map(|t| pick(t)).collect::<Vec<_>>().join(", ")
    };
    if types.iter().any(|t| t.vcpus != cpus) {
        notes.push(format!(
            "vCPUs differ ({}): CPUs={cpus}, the smallest",
            names(&|t| format!("{} {}", t.instance_type, t.vcpus))
        ));
    }
    if types.iter().any(|t| t.memory_mib != memory) {
        notes.push(format!(
            "memory differs ({}): RealMemory from the smallest",
            names(&|t| format!("{} {} MiB", t.instance_type, t.memory_mib))
        ));
    }
    let gpu_count = |t: &InstanceTypeSpec| t.gpus.iter().map(|(_, n)| *n).sum::<u32>();
    let gpus = types.iter().map(|t| gpu_count(t)).min().unwrap_or(0);
    if types.iter().any(|t| gpu_count(t) != gpus) {
        notes.push(format!(
            "GPU counts differ ({}): {gpus}, the smallest",
            names(&|t| format!("{} {}", t.instance_type, gpu_count(t)))
        ));
    }
    let mut models: Vec<String> = types
        .iter()
        .flat_map(|t| t.gpus.iter().map(|(name, _)| gres_type(name)))
        .collect();
    models.sort();
    models.dedup();
    let gres = match (gpus, models.as_slice()) {
        (0, _) => None,
        (n, [model]) => Some(format!("gpu:{model}:{n}")),
        (n, _) => {
            notes.push(format!(
                "GPU models differ ({}): Gres=gpu:{n} names no type",
                models.join(", ")
            ));
            Some(format!("gpu:{n}"))
        }
    };
    Derived {
        cpus,
        real_memory: headroom.real_memory(memory),
        gres,
        notes,
    }
}

/// A GPU model as a Gres type: `T4` is `t4`, `Radeon Pro V520` is `radeon_pro_v520`.
fn gres_type(model: &str) -> String {
    model
        .chars()
        .map(|c| match c.is_ascii_alphanumeric() || c == '-' {
            true => c.to_ascii_lowercase(),
            false => '_',
        })
        .collect()
}

/// The instance types a node group launches: each override's, else the
/// launch template's (`template_type`).
pub fn group_types(
    group: &NodeGroup,
    template_type: Option<&str>,
) -> Result<Vec<String>, NodeSpecError> {
    let mut types = Vec::new();
    for (index, item) in group.overrides.iter().enumerate() {
        let Some(instance_type) = item.instance_type.as_deref().or(template_type) else {
            return Err(NodeSpecError::NoInstanceType {
                group: group.node_range(),
                index,
            });
        };
        if !types.iter().any(|t| t == instance_type) {
            types.push(instance_type.to_string());
        }
    }
    Ok(types)
}

fn has_key(group: &NodeGroup, key: &str) -> bool {
    group
        .slurm_specifications
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case(key))
}

/// Whether `--from-ec2` has anything to add to `group`.
pub fn wants_lookup(group: &NodeGroup) -> bool {
    !CPU_KEYS.iter().any(|k| has_key(group, k))
        || !has_key(group, "RealMemory")
        || !has_key(group, "Gres")
}

/// `config` with each group's missing `CPUs`, `RealMemory` and `Gres` taken
/// from `types_of` (the group's instance types, by `node_prefix`) and
/// `specs`, and `GresTypes=gpu` when a GPU was added and `SlurmConf` has no
/// `GresTypes`. Returns the notes worth showing.
pub fn complete(
    config: &Config,
    types_of: &BTreeMap<String, Vec<String>>,
    specs: &[InstanceTypeSpec],
) -> Result<(Config, Vec<String>), NodeSpecError> {
    let mut completed = config.clone();
    let mut notes = Vec::new();
    let mut added_gpu = false;
    let headroom = config.settings.memory_headroom;
    for group in completed
        .partitions
        .iter_mut()
        .flat_map(|p| p.node_groups.iter_mut())
    {
        let Some(names) = types_of.get(&group.node_prefix()) else {
            continue;
        };
        let mut types = Vec::new();
        for name in names {
            let spec = specs
                .iter()
                .find(|s| &s.instance_type == name)
                .ok_or_else(|| NodeSpecError::Unknown {
                    group: group.node_range(),
                    instance_type: name.clone(),
                })?;
            if let Some(what) = implausible(spec) {
                return Err(NodeSpecError::Implausible {
                    group: group.node_range(),
                    instance_type: name.clone(),
                    what,
                });
            }
            types.push(spec);
        }
        if types.is_empty() {
            continue;
        }
        let derived = derive(&types, headroom);
        let prefix = group.node_range();
        notes.extend(derived.notes.iter().map(|n| format!("{prefix}: {n}")));
        let mut added = Vec::new();
        if !CPU_KEYS.iter().any(|k| has_key(group, k)) {
            added.push(("CPUs".to_string(), derived.cpus.to_string()));
        }
        if !has_key(group, "RealMemory") {
            added.push(("RealMemory".to_string(), derived.real_memory.to_string()));
        }
        if let Some(gres) = derived.gres.filter(|_| !has_key(group, "Gres")) {
            added_gpu = true;
            added.push(("Gres".to_string(), gres));
        }
        if !added.is_empty() {
            let list: Vec<String> = added.iter().map(|(k, v)| format!("{k}={v}")).collect();
            notes.push(format!(
                "{prefix}: {} from {}",
                list.join(" "),
                names.join(", ")
            ));
        }
        group.slurm_specifications.extend(added);
    }
    if added_gpu && completed.slurm_conf_value("GresTypes").is_none() {
        completed
            .slurm_conf
            .push(("GresTypes".to_string(), "gpu".to_string()));
    }
    Ok((completed, notes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, vcpus: u32, memory_mib: u64, gpus: &[(&str, u32)]) -> InstanceTypeSpec {
        InstanceTypeSpec {
            instance_type: name.to_string(),
            vcpus,
            memory_mib,
            gpus: gpus.iter().map(|(n, c)| (n.to_string(), *c)).collect(),
        }
    }

    const HEADROOM: MemoryHeadroom = MemoryHeadroom {
        percent: 5,
        mib: 1024,
    };

    #[test]
    fn headroom_is_the_larger_of_the_share_and_the_amount() {
        assert_eq!(HEADROOM.real_memory(8192), 8192 - 1024);
        assert_eq!(HEADROOM.real_memory(196_608), 196_608 - 9830);
        assert_eq!(HEADROOM.real_memory(512), 1);
        let none = MemoryHeadroom { percent: 0, mib: 0 };
        assert_eq!(none.real_memory(7680), 7680);
    }

    #[test]
    fn the_smallest_type_decides() {
        let c5 = spec("c5.xlarge", 4, 8192, &[]);
        let c4 = spec("c4.xlarge", 4, 7680, &[]);
        let derived = derive(&[&c5, &c4], HEADROOM);
        assert_eq!(derived.cpus, 4);
        assert_eq!(derived.real_memory, 7680 - 1024);
        assert_eq!(derived.gres, None);
        assert_eq!(derived.notes.len(), 1, "{:?}", derived.notes);
    }

    #[test]
    fn gpus_of_one_model_get_a_typed_gres_and_of_two_an_untyped_one() {
        let small = spec("g4dn.xlarge", 4, 16384, &[("T4", 1)]);
        let large = spec("g4dn.2xlarge", 8, 32768, &[("T4", 1)]);
        assert_eq!(
            derive(&[&small, &large], HEADROOM).gres.as_deref(),
            Some("gpu:t4:1")
        );
        let a10g = spec("g5.12xlarge", 48, 196_608, &[("A10G", 4)]);
        let mixed = derive(&[&a10g, &small], HEADROOM);
        assert_eq!(mixed.gres.as_deref(), Some("gpu:1"));
        assert!(mixed.notes.iter().any(|n| n.contains("GPU models differ")));
        let cpu_only = spec("c5.xlarge", 4, 8192, &[]);
        assert_eq!(derive(&[&a10g, &cpu_only], HEADROOM).gres, None);
        assert_eq!(gres_type("Radeon Pro V520"), "radeon_pro_v520");
    }

    #[test]
    fn what_ec2_says_of_a_type_is_bounded() {
        let config = crate::fixtures::example();
        let group = config.node_groups().next().unwrap();
        let types_of = BTreeMap::from([(group.node_prefix(), vec!["c5.xlarge".to_string()])]);
        for (spec, what) in [
            (spec("c5.xlarge", 0, 8192, &[]), "0 vCPUs"),
            (spec("c5.xlarge", 4, 0, &[]), "0 MiB of memory"),
            (
                spec("c5.xlarge", 4, 8192, &[("T4", 1 << 31)]),
                "2147483648 GPUs",
            ),
        ] {
            let error = complete(&config, &types_of, &[spec]).unwrap_err();
            assert!(error.to_string().contains(what), "{error}");
        }
        assert!(complete(&config, &types_of, &[spec("c5.xlarge", 4, 8192, &[])]).is_ok());
    }
}
