//! Why something failed, as the log, the event log and Slurm's node reasons
//! say it: EC2's own error code, kept as EC2 wrote it, or one of ours.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Code {
    /// An error code EC2 gave.
    Ec2(String),
    Ours(Ours),
}

/// Our own codes, for failures EC2 did not name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Ours {
    /// An EC2 call that got no answer in time.
    Timeout,
    /// EC2 could not be reached.
    Unreachable,
    /// EC2's answer could not be read.
    InvalidResponse,
    /// An EC2 call failed in a way the SDK does not name.
    Unknown,
    /// A call not made: the run's budget ends before its turn.
    OutOfTime,
    /// EC2 launched fewer instances than asked and said nothing of why.
    UnfulfilledCapacity,
    /// An instance that had no private address before the run's budget ended.
    InstanceAddressUnavailable,
    /// Slurm refused the node's address.
    SlurmUpdateFailed,
    /// The log cannot be written: resume launches nothing it could not account for.
    LogFileUnavailable,
    /// No certificate authority on this host: no AWS call can be made.
    NoCACertificates,
    /// An all-or-nothing job of more nodes than one CreateFleet launches.
    AllOrNothingOver1000Nodes,
    /// A node group's work failed inside this program.
    InternalError,
}

impl Ours {
    pub fn as_str(self) -> &'static str {
        match self {
            Ours::Timeout => "Timeout",
            Ours::Unreachable => "Unreachable",
            Ours::InvalidResponse => "InvalidResponse",
            Ours::Unknown => "Unknown",
            Ours::OutOfTime => "OutOfTime",
            Ours::UnfulfilledCapacity => "UnfulfilledCapacity",
            Ours::InstanceAddressUnavailable => "InstanceAddressUnavailable",
            Ours::SlurmUpdateFailed => "SlurmUpdateFailed",
            Ours::LogFileUnavailable => "LogFileUnavailable",
            Ours::NoCACertificates => "NoCACertificates",
            Ours::AllOrNothingOver1000Nodes => "AllOrNothingOver1000Nodes",
            Ours::InternalError => "InternalError",
        }
    }
}

impl Code {
    pub fn as_str(&self) -> &str {
        match self {
            Code::Ec2(code) => code,
            Code::Ours(ours) => ours.as_str(),
        }
    }

    /// Whether EC2 gave exactly this code.
    pub fn is(&self, ec2_code: &str) -> bool {
        matches!(self, Code::Ec2(code) if code == ec2_code)
    }
}

impl From<Ours> for Code {
    fn from(ours: Ours) -> Code {
        Code::Ours(ours)
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Ours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ec2_code_is_never_taken_for_one_of_ours() {
        let ec2 = Code::Ec2("OutOfTime".to_string());
        assert_ne!(ec2, Code::from(Ours::OutOfTime));
        assert_eq!(ec2.as_str(), Code::from(Ours::OutOfTime).as_str());
        assert!(ec2.is("OutOfTime"));
        assert!(!Code::from(Ours::OutOfTime).is("OutOfTime"));
    }
}
